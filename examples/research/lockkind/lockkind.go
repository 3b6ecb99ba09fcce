// Package lockkind takes the three kinds of Linux advisory file lock with
// their bare system calls, so that the research programs beside it can set
// them side by side:
//
//   - Flock, flock(2): the whole file, owned by the open file description;
//   - POSIX, fcntl(2) F_SETLK: byte ranges, owned by the process (lockf(3)
//     and Python's fcntl.lockf set these too);
//   - OFD, fcntl(2) F_OFD_SETLK (Linux 3.15): byte ranges, owned by the
//     open file description.
//
// It also runs the other process every experiment needs (see Other): a
// process never conflicts with its own POSIX locks, so a lock is only shown
// to be held when a different process asks for it and is refused.
//
// The calls are lockmgr's own, without lockmgr around them: the research
// notes are about what the kernel does, and lockmgr's backends are built on
// these rules (see backends/*/ for the same rules in production code).
package lockkind

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Kind is a kind of kernel lock.
type Kind string

// The three kinds.
const (
	Flock Kind = "flock"
	POSIX Kind = "posix"
	OFD   Kind = "ofd"
)

// Kinds lists the three kinds in the order the programs print them.
var Kinds = []Kind{Flock, POSIX, OFD}

// ParseKind returns the Kind named s, for the programs' -kind flags.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown lock kind %q (want flock, posix or ofd)", s)
}

// Type is what a lock excludes: Read (shared) locks admit each other,
// a Write (exclusive) lock admits nothing. The names are struct flock's.
type Type int16

// The two types, with struct flock's values.
const (
	Read  Type = unix.F_RDLCK
	Write Type = unix.F_WRLCK
)

// String returns "read" or "write".
func (t Type) String() string {
	if t == Read {
		return "read"
	}
	return "write"
}

// Range is the bytes a lock covers: Len bytes from Start or, with Len 0,
// every byte from Start on, however long the file grows (struct flock's
// rule). The zero Range is the whole file.
type Range struct {
	Start, Len int64
}

// String returns "the whole file" or "bytes 0-99".
func (r Range) String() string {
	switch {
	case r == Range{}:
		return "the whole file"
	case r.Len == 0:
		return fmt.Sprintf("bytes %d-EOF", r.Start)
	default:
		return fmt.Sprintf("bytes %d-%d", r.Start, r.Start+r.Len-1)
	}
}

// ErrBusy means another owner holds a conflicting lock and the request
// did not wait: flock(2)'s EWOULDBLOCK, fcntl(2)'s EAGAIN or EACCES
// (POSIX allows either).
var ErrBusy = errors.New("busy")

// ErrNoRanges is Flock's answer to a byte range: flock(2) takes no range
// and always locks the whole file.
var ErrNoRanges = errors.New("flock(2) has no byte ranges: it locks the whole file")

// Lock takes a lock of type t on r of the file open on fd. With wait it
// blocks until the lock is granted (or the kernel refuses the wait, as
// EDEADLK); without, a conflicting lock is ErrBusy at once.
func (k Kind) Lock(fd int, t Type, r Range, wait bool) error {
	switch k {
	case Flock:
		if r != (Range{}) {
			return ErrNoRanges
		}
		how := unix.LOCK_EX
		if t == Read {
			how = unix.LOCK_SH
		}
		if !wait {
			how |= unix.LOCK_NB
		}
		return busy(restart(func() error { return unix.Flock(fd, how) }))
	case POSIX, OFD:
		cmd := k.fcntlCmd(wait)
		// Every field not named here is zero, l_pid included: the F_OFD_*
		// commands refuse a non-zero l_pid with EINVAL (see ../ofdpid).
		lk := unix.Flock_t{Type: int16(t), Whence: io.SeekStart, Start: r.Start, Len: r.Len}
		return busy(restart(func() error { return unix.FcntlFlock(uintptr(fd), cmd, &lk) }))
	}
	return fmt.Errorf("unknown lock kind %q", k)
}

// Unlock releases the lock of kind k on r of the file open on fd.
func (k Kind) Unlock(fd int, r Range) error {
	switch k {
	case Flock:
		return unix.Flock(fd, unix.LOCK_UN)
	case POSIX, OFD:
		lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: io.SeekStart, Start: r.Start, Len: r.Len}
		return unix.FcntlFlock(uintptr(fd), k.fcntlCmd(false), &lk)
	}
	return fmt.Errorf("unknown lock kind %q", k)
}

// fcntlCmd is the fcntl(2) command that sets a lock of kind k.
func (k Kind) fcntlCmd(wait bool) int {
	switch {
	case k == OFD && wait:
		return unix.F_OFD_SETLKW
	case k == OFD:
		return unix.F_OFD_SETLK
	case wait:
		return unix.F_SETLKW
	default:
		return unix.F_SETLK
	}
}

// restart repeats call while a signal interrupts it: Go's runtime sends
// its threads signals, and a blocked lock call may return EINTR for one.
func restart(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}

// busy turns the kernel's several words for a conflict into ErrBusy.
func busy(err error) error {
	if err == unix.EWOULDBLOCK || err == unix.EAGAIN || err == unix.EACCES {
		return ErrBusy
	}
	return err
}

// Open opens the file at path for reading and writing, creating it if it
// does not exist: every kind of lock, read or write, can be set on it.
func Open(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}

// Result says in one word how a lock request ended: "granted", "busy", or
// the errno's name (such as "EDEADLK" or "EINVAL"); the programs print it.
func Result(err error) string {
	var errno unix.Errno
	switch {
	case err == nil:
		return "granted"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.As(err, &errno) && unix.ErrnoName(errno) != "":
		return unix.ErrnoName(errno)
	default:
		return "error: " + err.Error()
	}
}
