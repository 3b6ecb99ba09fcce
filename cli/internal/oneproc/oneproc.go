// Package oneproc runs lockmgr's goroutines on one P (GOMAXPROCS=1), as
// its plugins run theirs, unless GOMAXPROCS says otherwise. The lockmgr
// command imports it for its initialiser alone, which runs before main
// and before any other of lockmgr's own initialisers; set in main, the
// second P has already kept heap spans and woken a thread of its own.
//
// A lock command's work is a few system calls at a time, which a second
// P does not speed up: measured on 2 CPUs, `lockmgr run FILE true` is 6%
// faster on one P, and a command that waits for a lock keeps 12% less
// private memory, which is what 200 of them waiting on one lock cost
// (docs/performance.rst).
package oneproc

import (
	"os"
	"runtime"
)

func init() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
