package main

import (
	"errors"
	"syscall"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"golang.org/x/sys/unix"
)

// execLocked is -F (--no-fork): the command replaces lockmgr, as with
// flock(1) -F, and holds the lock through the locked descriptor it
// inherits, at the lowest number the caller left free. It reports whether
// it took over; it does not for a backend that keeps its locks in the
// plugin (posix, etcd), whose lock needs lockmgr to stay, and then run
// runs the command as its child, which holds the lock just as long.
//
// The descriptor is moved to its number just before execve(2): the
// number may be one of lockmgr's own close-on-exec descriptors (the Go
// runtime's), which exec would close anyway. If the exec fails, lockmgr
// exits at once with the error: it may have lost that descriptor.
func (o *runOptions) execLocked(h *lockmgr.Handle, path string, argv []string) (bool, error) {
	env := childEnv(h)
	f, err := h.Detach()
	if err != nil {
		return false, nil
	}
	h.Close() // the plugin is not needed: the descriptor is the lock
	n := 3
	for callerDescriptor(n) {
		n++
	}
	if int(f.Fd()) != n {
		if err := unix.Dup3(int(f.Fd()), n, 0); err != nil {
			f.Close()
			return true, commandError(argv[0], err)
		}
	} else if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
		f.Close()
		return true, commandError(argv[0], err)
	}
	err = withCallerMask(func() error { return syscall.Exec(path, argv, env) })
	if errors.Is(err, syscall.ENOEXEC) {
		// A script without #!: /bin/sh runs it, as execvp does.
		err = withCallerMask(func() error {
			return syscall.Exec("/bin/sh", append([]string{"/bin/sh", path}, argv[1:]...), env)
		})
	}
	return true, commandError(argv[0], err)
}
