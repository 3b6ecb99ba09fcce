package main

// util-linux flock(1)'s options for `lockmgr run`, with flock(1)'s
// meanings, so that `flock` can be replaced by `lockmgr run` in a script
// without touching anything else on the line: -u, -F (--no-fork),
// --fcntl, -V, and the descriptor forms `lockmgr run [-u] N`. How they
// are spelt, with flock(1)'s other spellings (-e, --nb, --nonblocking,
// --wait), is lockOptions'.

import (
	"fmt"
	"strconv"
	"time"

	"github.com/lockmgr/lockmgr/core/config"
	"golang.org/x/sys/unix"
)

// checkFlock refuses flock(1)'s options in combinations flock(1) refuses,
// and turns --fcntl into the backend it means.
func (o *runOptions) checkFlock() error {
	if o.noFork && o.close {
		return usageErrorf("--no-fork (-F) and --close (-o) cannot be used together: with -F the command is lockmgr, and holds the lock as long as it runs")
	}
	if o.fcntl {
		if o.backend != "" && o.backend != config.BackendOFD {
			return usageErrorf("--fcntl takes an ofd lock, but --backend says %s", o.backend)
		}
		o.backend = config.BackendOFD
	}
	return nil
}

// fdArg reports whether run's arguments are flock(1)'s descriptor form,
// a lone descriptor number: `lockmgr run 9` locks descriptor 9, `lockmgr
// run -u 9` unlocks it. A lock file named by a number alone still works
// with a command after it.
func fdArg(args []string) (int, bool) {
	if len(args) != 1 || args[0] == "" {
		return 0, false
	}
	for _, c := range args[0] {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	fd, err := strconv.Atoi(args[0])
	return fd, err == nil
}

// runWithFD is flock(1)'s --fd N COMMAND: lock the file open on the
// caller's descriptor N, run the command with N inherited (unless
// --close), and leave the lock where it is, with N, whose holders (the
// caller, the command) release it by closing it.
func (o *runOptions) runWithFD(g *globals, fd int, argv []string) error {
	start := time.Now()
	var (
		lock lockEnv // none with -u: the command runs under no lock
		err  error
	)
	if o.unlock {
		err = unlockFD(g, o.backend, fd, false)
	} else {
		f := o.lockFlags
		if o.compat != nil {
			f.verbose = false // flock(1)'s lines instead
		}
		lock, err = lockDescriptor(g, &f, fd)
		compatFailed(o.compat, err, &o.lockFlags)
	}
	if err != nil {
		return err
	}
	o.compat.Acquired(time.Since(start))
	c := findCommand(argv)
	if err := o.ready(c); err != nil {
		return err
	}
	if o.close {
		// --close keeps fd, and only fd, out of the command.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return withCode(exitNoInput, fmt.Errorf("--close: descriptor %d: %w", fd, err))
		}
	}
	// Nothing to give: every descriptor the caller passed, fd among them,
	// is open in lockmgr without close-on-exec and reaches the command at
	// its own number, as under flock(1).
	return o.runCommand(c, launch{env: lock})
}

// runFD is the descriptor form: `lockmgr lock --fd N`, or with -u
// `lockmgr unlock --fd N`.
func (o *runOptions) runFD(g *globals, fd int) error {
	if o.unlock {
		return unlockFD(g, o.backend, fd, o.verbose)
	}
	return lockFD(g, &o.lockFlags, fd)
}
