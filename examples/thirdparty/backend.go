package main

// The example backend takes flock(2) locks, as lockmgr's own flock
// backend does, under its own name. A lock on an open file description
// (flock, OFD) needs only its lock and unlock calls: core/fdlock does
// the rest (the symlink-proof open, waiting, remove-on-release,
// inspection). A backend whose lock is something else implements
// backend.LockMgr itself, and the conformance suite says what it misses.

import (
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
	"golang.org/x/sys/unix"
)

// name is what the backend answers to: the NAME of lockmgr-backend-NAME,
// of --backend NAME and of the configuration's backend = "NAME".
const name = "example"

// newBackend returns the backend, for main to serve and the tests to use
// in-process.
func newBackend() backend.LockMgr {
	return fdlock.New(fdlock.Mechanism{
		Info: backend.Info{
			Name:    name,
			Version: version,
			// Promise only what holds: callers and the conformance suite
			// rely on each capability.
			Capabilities: backend.Capabilities{
				Shared:              true,
				Owner:               backend.OwnerOpenFileDescription,
				InheritedAcrossFork: true,
				InheritedFD:         true,
				// The lock is the open file: hand it to the host, which
				// then holds it itself, beyond this plugin's life.
				HandsOver: true,
			},
		},
		TryLock: func(fd int, mode backend.Mode, _ backend.Range) error {
			how := unix.LOCK_EX
			if mode == backend.Shared {
				how = unix.LOCK_SH
			}
			return unix.Flock(fd, how|unix.LOCK_NB)
		},
		Unlock: func(fd int, _ backend.Range) error {
			return unix.Flock(fd, unix.LOCK_UN)
		},
	})
}
