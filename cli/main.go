// The runtime's cgroup-aware GOMAXPROCS keeps the cgroup's CPU limit
// files open for the life of the process, at the lowest numbers: where
// flock(1)'s -F command finds its lock at the lowest number the caller
// left free (3, usually), lockmgr's would find it above them (see
// cli/internal/fdslot). A lock command gains nothing from a GOMAXPROCS
// below the number of CPUs, so the runtime reads the limit once and
// closes the files.

//go:debug containermaxprocs=0

// Command lockmgr takes advisory file locks for shell scripts and other
// programs: `lockmgr run FILE -- COMMAND` runs COMMAND while holding a
// lock on FILE, as flock(1) does, through a backend chosen by
// configuration (flock, posix, ofd, or a third-party plugin).
//
// The commands, one file each, are run, lock and unlock, status,
// backends, config, version and completion; exitcodes.go documents the
// exit codes scripts rely on.
package main

import (
	"os"
	"path/filepath"

	// One P, from before main (oneproc's doc says why).
	_ "github.com/lockmgr/lockmgr/cli/internal/oneproc"
)

func main() {
	// A signal the caller ignored stays ignored, in lockmgr and in what
	// it runs (sigentry.go).
	restoreIgnored()
	useFullBuildForPrivatePlugins()
	if filepath.Base(os.Args[0]) == flockName {
		// The flock personality (flockcompat.go).
		code, sig := executeFlock(os.Args)
		if sig != 0 {
			dieBySignal(sig)
		}
		os.Exit(code)
	}
	os.Exit(execute(os.Args[1:]))
}
