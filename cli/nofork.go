package main

import (
	"github.com/lockmgr/lockmgr/cli/internal/fdslot"
	lockmgr "github.com/lockmgr/lockmgr/core"
)

// execLocked is -F (--no-fork): the command replaces lockmgr, as with
// flock(1) -F, and holds the lock through the locked descriptor it
// inherits, at the lowest number the caller left free. It reports whether
// it took over; it does not for a backend that keeps its locks in the
// plugin (posix, etcd), whose lock needs lockmgr to stay, nor when no
// number could be reserved for the lock at start; run then runs the
// command as its child, which holds the lock just as long.
//
// The number was reserved when lockmgr started (cli/internal/fdslot), so
// that none of lockmgr's own descriptors, such as its connection to the
// plugin, which the plugin's shutdown closes on another goroutine, can be
// there: the lock replaces the placeholder in one dup3 just before
// execve(2). If the exec fails, lockmgr exits at once with the error.
func (o *runOptions) execLocked(h *lockmgr.Handle, path string, argv []string) (bool, error) {
	if fdslot.Number() < 0 {
		return false, nil
	}
	env := commandEnv(handleEnv(h))
	f, err := h.Detach()
	if err != nil {
		return false, nil
	}
	h.Close() // the plugin is not needed: the descriptor is the lock
	if _, err := fdslot.Place(int(f.Fd())); err != nil {
		f.Close()
		return true, commandError(argv[0], err)
	}
	return true, commandError(argv[0], execCommand(path, argv, env))
}
