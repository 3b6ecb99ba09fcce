// Package fdslot keeps, from the moment lockmgr starts, the descriptor
// number at which `lockmgr run -F` (and flock -F) gives its command the
// lock: the lowest number of 3 and up that lockmgr's caller left free, as
// flock(1)'s command finds the lock file it opened.
//
// -F execs the command in lockmgr's place, so the locked descriptor must
// be moved to that number in lockmgr itself, just before execve(2). By
// then lockmgr has opened descriptors of its own (its plugin's sockets
// and pipes, the poller), and the lowest free number may be one of them,
// which another goroutine may close at any moment: a dup3 over it, then
// that close, and the command runs with the lock free. So the number is
// taken at start, before anything else can open it, by a close-on-exec
// placeholder that nothing else uses; Place replaces the placeholder with
// the lock in one dup3(2), and no descriptor of lockmgr's is ever
// overwritten.
//
// The number is reserved in the package's initializer, which runs before
// main: lockmgr starts its plugin, and makes the sockets and pipes that
// go with it, only once main has read the command line.
package fdslot

import (
	"errors"

	"golang.org/x/sys/unix"
)

// slot is the placeholder's number, or -1 if none could be reserved.
var slot = -1

func init() {
	slot = reserve()
}

// reserve opens the placeholder at the lowest number, from 3, that is
// not one of the caller's descriptors, and returns its number, or -1.
// Were that number already one of lockmgr's own (an open file the Go
// runtime keeps), the placeholder takes the lowest free one above it:
// the command then finds the lock a little higher than flock(1) would
// put it, rather than lockmgr overwriting its own descriptor.
func reserve() int {
	n := 3
	for CallerDescriptor(n) {
		n++
	}
	tmp, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	if tmp >= n {
		// open(2) returns the lowest free number: n itself, or the
		// lowest free one above it.
		return tmp
	}
	// Only a closed 0, 1 or 2 lies below n. F_DUPFD_CLOEXEC takes the
	// lowest free number from n up, atomically.
	fd, err := unix.FcntlInt(uintptr(tmp), unix.F_DUPFD_CLOEXEC, n)
	unix.Close(tmp)
	if err != nil {
		return -1
	}
	return fd
}

// ErrNoSlot is Place's error when no number could be reserved at start
// (lockmgr was out of descriptors).
var ErrNoSlot = errors.New("no descriptor number was reserved for the command's lock")

// Number returns the reserved number, or -1 if there is none.
func Number() int { return slot }

// Place moves the descriptor fd to the reserved number, where it is not
// close-on-exec, replacing the placeholder, and returns the number. It is
// meant for the last step before execve(2); the slot is spent: a second
// Place would replace the first one's descriptor, so it fails.
func Place(fd int) (int, error) {
	n := slot
	if n < 0 {
		return -1, ErrNoSlot
	}
	if err := unix.Dup3(fd, n, 0); err != nil {
		return -1, err
	}
	slot = -1
	return n, nil
}

// CallerDescriptor reports whether fd is open and was inherited from
// lockmgr's caller, which shows as not close-on-exec: a descriptor
// inherited across execve(2) cannot be close-on-exec, while every
// descriptor the Go runtime and lockmgr open is.
func CallerDescriptor(fd int) bool {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil && flags&unix.FD_CLOEXEC == 0
}
