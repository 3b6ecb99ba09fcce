package fdlock

import (
	"github.com/lockmgr/lockmgr/core/backend"
	"golang.org/x/sys/unix"
)

// OFD returns the mechanism of open file description locks, for a backend
// that answers to name at version: lockmgr's ofd backend, or an
// in-process backend in a test. The kernel call is written here once so
// that all of them lock the same way.
//
// Open file description locks (Linux 3.15, F_OFD_SETLK) are fcntl
// byte-range locks owned by the open file description, like flock(2)
// locks, instead of by the (process, inode) pair, like POSIX locks. So
// two descriptors opened separately conflict even within one process,
// closing some other descriptor of the file does not drop them, and they
// are inherited across fork. They conflict with POSIX locks on
// overlapping ranges, since both live in the same per-inode list, but not
// with flock(2) locks. Converting between read and write is atomic.
func OFD(name, version string) Mechanism {
	i := info(name, version)
	// Unlike flock(2) locks, they take byte ranges, and as fcntl locks
	// they are seen by the other clients of an NFS mount.
	i.Capabilities.ByteRanges = true
	i.Capabilities.NetworkFilesystems = true
	return Mechanism{
		Info: i,
		Lock: func(fd int, mode backend.Mode, r backend.Range, wait bool) error {
			typ := int16(unix.F_WRLCK)
			if mode == backend.Shared {
				typ = unix.F_RDLCK
			}
			cmd := unix.F_OFD_SETLK
			if wait {
				cmd = unix.F_OFD_SETLKW
			}
			return setlk(fd, cmd, typ, r)
		},
		Unlock: func(fd int, r backend.Range) error {
			return setlk(fd, unix.F_OFD_SETLK, unix.F_UNLCK, r)
		},
	}
}

// setlk sets an OFD lock of type typ on r of fd with cmd. The kernel
// requires l_pid to be zero in the request: a stale value from an
// uninitialised struct flock is EINVAL.
func setlk(fd, cmd int, typ int16, r backend.Range) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: r.Start, Len: r.Len(), Pid: 0}
	err := unix.FcntlFlock(uintptr(fd), cmd, &lk)
	if err == unix.EINVAL && typ != unix.F_UNLCK {
		// EINVAL on a valid request means a kernel without OFD locks.
		return backend.Unsupportedf("this kernel has no open file description locks (F_OFD_SETLK needs Linux 3.15)")
	}
	return err
}
