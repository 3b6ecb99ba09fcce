package main

// util-linux flock(1)'s options for `lockmgr run`, with flock(1)'s
// meanings, so that `flock` can be replaced by `lockmgr run` in a script
// without touching anything else on the line: -u, -F (--no-fork),
// --fcntl, -V, and the descriptor forms `lockmgr run [-u] N`. The other
// spellings (-e, --nb, --nonblocking, --wait) are lockFlags', since `lock`
// takes them too.

import (
	"strconv"

	"github.com/lockmgr/lockmgr/core/config"
	"github.com/spf13/pflag"
)

// registerFlockFlags adds flock(1)'s options that only `run` has.
func (o *runOptions) registerFlockFlags(fs *pflag.FlagSet) {
	fs.BoolVarP(&o.unlock, "unlock", "u", false, "with a descriptor number N instead of FILE: release the lock held through N, as 'lockmgr unlock --fd N'")
	fs.BoolVarP(&o.noFork, "no-fork", "F", false, "run the command in lockmgr's place rather than as its child (not with --close)")
	fs.BoolVar(&o.fcntl, "fcntl", false, "take an open file description lock, as flock(1)'s --fcntl: the same as --backend ofd")
	fs.BoolVarP(&o.version, "version", "V", false, "print lockmgr's version, as 'lockmgr version'")
}

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

// runFD is the descriptor form: `lockmgr lock --fd N`, or with -u
// `lockmgr unlock --fd N`.
func (o *runOptions) runFD(g *globals, fd int) error {
	if o.unlock {
		return unlockFD(g, o.backend, fd, o.verbose)
	}
	return lockFD(g, &o.lockFlags, fd)
}
