package main

// lockmgr's exit codes are a contract that shell scripts test, so they
// follow flock(1): the codes of <sysexits.h> for lockmgr's own failures,
// the -E code for a lock someone else holds, and the command's own status
// when the command ran. Each code means one kind of trouble, whichever
// command hits it.

import (
	"errors"
	"io/fs"
	"syscall"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
)

const (
	// exitHeld is the default -E code, and status's answer when a lock
	// is held: 1, as flock(1) exits on a conflict.
	exitHeld = 1
	// exitUsage (EX_USAGE) is a bad flag, argument or value.
	exitUsage = 64
	// exitNoInput (EX_NOINPUT) is a lock file that cannot be opened or
	// created: a missing directory, no permission, a read-only
	// filesystem, a symbolic link, something other than a regular file
	// or a directory (a FIFO, a device, a socket), or a --fd that is not
	// open.
	exitNoInput = 66
	// exitUnavailable (EX_UNAVAILABLE) is a backend that cannot serve: no
	// plugin by that name, a plugin refused (unsafe permissions, checksum
	// mismatch) or one that failed its handshake or died, or a lock
	// service (etcd) that cannot be reached.
	exitUnavailable = 69
	// exitSoftware (EX_SOFTWARE) is a failure lockmgr has no better word
	// for; it should not happen.
	exitSoftware = 70
	// exitLost (EX_TEMPFAIL) means the lock was lost while the command ran
	// and lockmgr stopped the command for it: trying again may succeed.
	exitLost = 75
	// exitConfig (EX_CONFIG) is a configuration file that cannot be read
	// or is invalid, or a bad LOCKMGR_BACKEND.
	exitConfig = 78
	// exitCannotExec and exitNotFound are the shell's codes for a command
	// that exists but cannot be run, and for one that does not exist.
	exitCannotExec = 126
	exitNotFound   = 127
	// exitSignal plus N is the code for a command ended by signal N, as a
	// shell reports it.
	exitSignal = 128
)

// exitCodesHelp documents the codes; `lockmgr run --help` and the man
// pages show it.
const exitCodesHelp = `Exit status:
  N        the command's own exit status, when it ran
  128+N    the command was ended by signal N (or lockmgr by signal N
           while it waited for the lock): lockmgr ends itself by signal
           N, which a shell reports as 128+N
  1        the lock is held by someone else, or --timeout passed
           (change it with --conflict-exit-code)
  64       usage error: unknown flag, bad value, missing argument
  66       the lock file cannot be opened or created (missing directory,
           no permission, read-only filesystem, symbolic link, not a
           regular file or directory: a FIFO, a device, a socket)
  69       the backend is unavailable: no such plugin, plugin rejected
           (unsafe permissions, sha256 mismatch), handshake failed, or
           its lock service (etcd) cannot be reached
  70       internal error
  75       the lock was lost while the command ran, and the command was
           stopped for it (--on-lost)
  78       configuration error (config file, LOCKMGR_BACKEND, a
           backend's settings or credentials)
  126      the command cannot be executed
  127      the command was not found`

// exitCode says which exit code err means. A lock conflict is not
// decided here: the commands that take locks turn it into their -E code
// before it gets this far.
func exitCode(err error) int {
	var ee *exitError
	var cfgErr *config.Error
	var errno syscall.Errno
	var pathErr *fs.PathError
	var be *backend.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &cfgErr), errors.Is(err, lockmgr.ErrConfig):
		// A config file, or a backend refusing its settings table.
		return exitConfig
	case errors.Is(err, lockmgr.ErrBackendNotFound), errors.Is(err, lockmgr.ErrPluginRejected),
		errors.Is(err, lockmgr.ErrUnavailable):
		return exitUnavailable
	case errors.As(err, &be) && be.Op == "start":
		// The plugin could not be started at all (no socket directory,
		// say): the backend is unavailable, whatever the cause.
		return exitUnavailable
	case errors.Is(err, lockmgr.ErrLost):
		// A lock operation cut short by the plugin's death.
		return exitUnavailable
	case errors.Is(err, lockmgr.ErrInvalid), errors.Is(err, lockmgr.ErrUnsupported):
		// The request itself: a byte range on flock, a shared lock on a
		// backend without them, a descriptor on posix.
		return exitUsage
	case errors.As(err, &errno), errors.As(err, &pathErr):
		// What is left with an errno is the lock file: the backend's open
		// (ENOENT, EACCES, EROFS, ELOOP) or a lock call the file's mode
		// refuses (EBADF for a write lock on a read-only file).
		return exitNoInput
	}
	return exitSoftware
}
