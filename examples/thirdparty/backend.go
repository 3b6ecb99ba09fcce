package main

// The example backend takes flock(2) locks, as lockmgr's own flock
// backend does, under its own name. A lock on an open file description
// (flock, OFD) needs no code of its own: core/fdlock has both kernel
// calls (fdlock.Flock, fdlock.OFD) and does the rest (the symlink-proof
// open, waiting, hand-over, remove-on-release, inspection). A backend
// whose lock is something else implements backend.LockMgr itself, and the
// conformance suite says what it misses.

import (
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
)

// name is what the backend answers to: the NAME of lockmgr-backend-NAME,
// of --backend NAME and of the configuration's backend = "NAME".
const name = "example"

// newBackend returns the backend, for main to serve and the tests to use
// in-process.
func newBackend() backend.LockMgr {
	// The mechanism promises only what flock(2) keeps (its Info's
	// Capabilities), since callers and the conformance suite rely on each
	// capability. Among them is HandsOver: the lock is the open file, so
	// it is handed to the host, which then holds it itself, beyond this
	// plugin's life.
	return fdlock.New(fdlock.Flock(name, version))
}
