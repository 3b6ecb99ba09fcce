package main

import (
	"strings"

	"github.com/lockmgr/lockmgr/core/backend"
)

// ownerRecord is the value a holder puts on its key, for Inspect.
type ownerRecord struct {
	Host    string `json:"host"`
	PID     int    `json:"pid"`
	Command string `json:"command,omitempty"`
}

// lockName is the name a request's lock is keyed on: the name as the
// user wrote it, which means the same on every host.
func lockName(req backend.Request) string {
	if req.Name != "" {
		return req.Name
	}
	return req.Path
}

// keyPrefix returns the etcd key prefix of the lock name under prefix:
// the prefix as it is, then the name with "/" written as "%2F" and "%" as
// "%25" (see keyName).
func keyPrefix(prefix, name string) string { return prefix + keyName(name) }

// keyName is a lock name as its etcd keys spell it. concurrency.Mutex
// keys a lock's holder and waiters under NAME+"/", and takes every key in
// that range for one of them, so a name with a "/" in it would land in the
// range of the name before the slash: a holder of job/x would block job,
// though job would not block job/x. Writing "/" as "%2F" keeps every
// spelled name free of "/", so no name's range holds another's keys and
// distinct names are distinct locks; writing "%" as "%25" keeps two names
// from being spelled alike (a/b and a%2Fb). A name with neither is spelled
// as it is, so that `etcdctl lock NAME` takes the very same lock.
func keyName(name string) string {
	if !strings.ContainsAny(name, "/%") {
		return name
	}
	var b strings.Builder
	for i := range len(name) {
		switch c := name[i]; c {
		case '/':
			b.WriteString("%2F")
		case '%':
			b.WriteString("%25")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
