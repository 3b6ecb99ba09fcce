// Command lockmgr-backend-etcd is lockmgr's etcd backend plugin: locks
// that exclude processes on every host that reaches the same etcd
// cluster. lockmgr starts it; it is not meant to be run by hand.
//
// # Key layout
//
// A lock named NAME lives under the etcd key prefix PREFIX+NAME, where
// PREFIX is the [backends.etcd] prefix setting ("/lockmgr/" unless set);
// when PREFIX ends with "/" and NAME begins with one, one of the two is
// dropped, so that the lock /var/run/job is /lockmgr/var/run/job. Every
// holder and waiter puts one key under that prefix,
//
//	PREFIX+NAME + "/" + LEASE
//
// where LEASE is its etcd lease id in lower-case hex, attached to that
// lease. The key with the lowest create revision holds the lock; the
// others wait, each for the deletion of the key created just before its
// own. That is etcd's own concurrency.Mutex, the one `etcdctl lock NAME`
// uses with an empty prefix: with prefix = "" in the configuration, a
// lockmgr lock on NAME and `etcdctl lock NAME` exclude each other.
//
// lockmgr's holder writes a small JSON value on its key once it holds the
// lock ({"host":..., "pid":..., "command":...}) so that `lockmgr status`
// can say who holds it; etcdctl's keys have empty values.
//
// The holder's key's create revision is the lock's fencing token: every
// new holder's key is created after the previous holder's, so the token
// increases strictly across holders of one lock.
//
// Two cautions follow from the layout. A lock whose name is another's
// followed by "/" (job and job/nightly) shares its key range with it, so
// the two exclude each other, as they would with etcdctl. And a lock is
// only as safe as its lease: under a network partition the lease can
// expire while the holder still runs. The holder hears of it through the
// lost channel (lockmgr run --on-lost), but only a guarded resource that
// checks the fencing token can refuse a holder that has not yet heard.
package main

import (
	"os"

	"github.com/lockmgr/lockmgr/core/pluginrpc"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The plugin is its host's child: the host is the process that asked
	// for the lock, and the one `lockmgr status` should name.
	pluginrpc.Serve(newBackend(os.Getppid()))
}
