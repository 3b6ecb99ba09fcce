package fdlock

import (
	"fmt"
	"os"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"golang.org/x/sys/unix"
)

// Flock returns the mechanism of flock(2) locks, for a backend that
// answers to name at version: lockmgr's flock backend, an in-process
// backend in a test, or a third party's. The kernel call is written here
// once so that all of them lock the same way.
//
// flock(2) locks belong to an open file description: every descriptor
// dup'ed or inherited from it across fork and exec shares the lock, and it
// is released when the last of them closes (or on LOCK_UN). They cover the
// whole file, and a directory may be locked too, as flock(1) allows.
// Converting between shared and exclusive is not atomic: the kernel drops
// the old lock before it queues for the new one.
//
// They are a different kind from fcntl locks: on a local filesystem a
// flock lock and a POSIX or OFD lock on the same file do not conflict.
// On NFS, Linux emulates flock with a whole-file POSIX lock, which other
// clients see but which then does conflict with fcntl locks; Warn says so.
func Flock(name, version string) Mechanism {
	return Mechanism{
		Info:   info(name, version),
		Lock:   flockLock,
		Unlock: func(fd int, _ backend.Range) error { return unix.Flock(fd, unix.LOCK_UN) },
		Warn: func(f *os.File) []string {
			if fs := lockfile.NetworkFS(f); fs != "" {
				return []string{fmt.Sprintf("%s is on %s, where Linux emulates flock(2) with a POSIX lock: "+
					"other clients see it, but it conflicts with fcntl locks; consider the posix backend", f.Name(), fs)}
			}
			return nil
		},
	}
}

// flockLock is Mechanism.Lock for flock(2), which locks the whole file
// whatever the range.
func flockLock(fd int, mode backend.Mode, _ backend.Range, wait bool) error {
	how := unix.LOCK_EX
	if mode == backend.Shared {
		how = unix.LOCK_SH
	}
	if !wait {
		how |= unix.LOCK_NB
	}
	return unix.Flock(fd, how)
}
