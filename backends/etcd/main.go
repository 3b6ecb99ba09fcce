// Command lockmgr-backend-etcd is lockmgr's etcd backend plugin: locks
// that exclude processes on every host that reaches the same etcd
// cluster. lockmgr starts it; it is not meant to be run by hand.
//
// # Key layout
//
// A lock named NAME lives under the etcd key prefix PREFIX+SPELLED, where
// PREFIX is the [backends.etcd] prefix setting ("/lockmgr/" unless set),
// used as it is, and SPELLED is NAME with every "/" written "%2F" and
// every "%" written "%25": /var/run/job is /lockmgr/%2Fvar%2Frun%2Fjob,
// and job is /lockmgr/job. Every holder and waiter puts one key under
// that prefix,
//
//	PREFIX+SPELLED + "/" + LEASE
//
// where LEASE is its etcd lease id in lower-case hex, attached to that
// lease. The key with the lowest create revision holds the lock; the
// others wait, each for the deletion of the key created just before its
// own. That is etcd's own concurrency.Mutex, the one `etcdctl lock NAME`
// uses with an empty prefix: with prefix = "" in the configuration, a
// lockmgr lock on NAME and `etcdctl lock SPELLED` exclude each other,
// which for a name without "/" or "%" is `etcdctl lock NAME`.
//
// The Mutex takes every key under SPELLED+"/" for a holder or waiter, so
// an unspelled job/x would lie in the range of job and block it, though
// job would not block job/x. Spelled, no name holds a "/", no name's range
// holds another's keys, and distinct names are distinct locks.
//
// lockmgr's holder writes a small JSON value on its key once it holds the
// lock ({"host":..., "pid":..., "command":...}) so that `lockmgr status`
// can say who holds it; etcdctl's keys have empty values.
//
// The holder's key's create revision is the lock's fencing token: every
// new holder's key is created after the previous holder's, so the token
// increases strictly across holders of one lock.
//
// A lock is only as safe as its lease: under a network partition the
// lease can expire while the holder still runs, at about the moment the
// holder hears of it through the lost channel (lockmgr run --on-lost), and
// only a guarded resource that checks the fencing token can refuse a
// holder that has not yet stopped.
package main

import (
	"os"

	"github.com/lockmgr/lockmgr/core/plugin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The plugin is its host's child: the host is the process that asked
	// for the lock, and the one `lockmgr status` should name.
	b := newBackend(os.Getppid())
	// A shared plugin serves one command after another: it keeps a lease
	// granted ahead of the next lock (spare.go).
	b.keepSpare = plugin.Shared()
	plugin.Serve(b)
}
