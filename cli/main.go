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

	// Starts run's plugin while lockmgr's own packages initialize; see
	// its documentation.
	_ "github.com/lockmgr/lockmgr/cli/internal/prestart"
)

func main() {
	// A signal the caller ignored stays ignored, in lockmgr and in what
	// it runs (sigentry.go).
	restoreIgnored()
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
