// Package proclocks reads who holds and who waits for a file lock from the
// kernel itself, as util-linux lslocks does: the table of every lock in
// /proc/locks, and the per-descriptor lock lines in /proc/PID/fdinfo.
//
// lockmgr uses it to answer backend.LockMgr.Inspect for the kernel lock
// backends. Asking the kernel, rather than keeping a record of its own, is
// what lets lockmgr report locks taken by flock(1), by other programs, and
// by lockmgr processes that have since crashed or been forked away.
//
// What the kernel shows has limits that callers should know:
//
//   - /proc/locks lists only locks whose owner is visible in the PID
//     namespace of the procfs mount; locks held from outside it are left
//     out by the kernel, not by this package.
//   - An OFD lock belongs to an open file description, not a process, so
//     /proc/locks shows its PID as -1. ForFile finds the owner through
//     /proc/PID/fdinfo, which needs permission to inspect the owning
//     process (the same user, or CAP_SYS_PTRACE); otherwise PID stays -1.
//   - The tables are read line by line while locks come and go, so a
//     result is a snapshot that may already be stale when it is returned.
//
// The package is Linux-only, like the locks it reports.
package proclocks

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/lockmgr/lockmgr/core/backend"
)

// The Kind of a Lock for each kernel lock mechanism lockmgr has a backend
// for; they are the words backend.LockOwner.Kind uses for them.
const (
	// KindFlock is a flock(2) lock: whole-file, owned by an open file
	// description.
	KindFlock = "flock"
	// KindPOSIX is a POSIX record lock (fcntl F_SETLK): owned by a process
	// and an inode.
	KindPOSIX = "posix"
	// KindOFD is an open file description lock (fcntl F_OFD_SETLK): byte
	// ranges like POSIX locks, owned like flock locks.
	KindOFD = "ofd"
)

// procLocks is the kernel's table of every file lock on the system.
const procLocks = "/proc/locks"

// Lock is one line of /proc/locks: a lock granted, or a request blocked
// waiting for one.
type Lock struct {
	// ID is the line's number in /proc/locks. A waiter carries the ID of
	// the granted lock at the head of the queue it waits in, which is not
	// necessarily the lock it conflicts with. IDs are renumbered on every
	// read, so they only relate lines of one read to each other.
	ID int
	// Kind is KindFlock, KindPOSIX or KindOFD. Other kernel entries keep
	// their /proc/locks word in lower case ("lease", "deleg", "access",
	// "unknown"), so that a caller can skip them without Parse failing on a
	// kernel that prints a kind this package does not know.
	Kind string
	// Mode is backend.Shared for READ and backend.Exclusive for WRITE. A
	// lease being broken to nothing shows UNLCK; it is reported as
	// Exclusive, because until the break completes it still blocks the
	// opens that caused it.
	Mode backend.Mode
	// PID is the owner as /proc/locks shows it: -1 for an OFD lock, whose
	// owner is an open file description; for a flock lock the process that
	// called flock(2), which may have exited since, leaving the lock to the
	// processes that inherited its descriptor.
	PID int
	// Major and Minor are the device number of the filesystem holding the
	// locked inode (its superblock's, which is not always a stat's st_dev:
	// see ForFile).
	Major, Minor uint32
	// Inode is the locked file's inode number.
	Inode uint64
	// Range is the locked byte range. /proc/locks prints an inclusive last
	// byte; Range.End is one past it, or backend.ToEOF for "EOF".
	Range backend.Range
	// Waiting is true for a blocked request (a "->" line) rather than a
	// granted lock.
	Waiting bool
}

// Read returns every lock and blocked lock request on the system, from
// /proc/locks.
func Read() ([]Lock, error) {
	locks, err := readTable(procLocks)
	if err != nil {
		return nil, fmt.Errorf("proclocks: %w", err)
	}
	return locks, nil
}

// readTable reads and parses the lock table at path. Its errors carry no
// package prefix, so that each exported caller adds its own context.
func readTable(path string) ([]Lock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the kernel lock table: %w", err)
	}
	defer f.Close()
	return parse(f, path)
}

// Parse reads lines in the format of /proc/locks, for a caller that has
// the table from elsewhere (a saved copy, a test). Blank lines are skipped
// and kinds it does not know are kept (see Lock.Kind), so that a newer
// kernel does not break it; a line it cannot read at all is an error that
// quotes the line and its number.
func Parse(r io.Reader) ([]Lock, error) {
	locks, err := parse(r, "")
	if err != nil {
		return nil, fmt.Errorf("proclocks: %w", err)
	}
	return locks, nil
}

// parse implements Parse; source, if not empty, names where the lines came
// from in errors.
func parse(r io.Reader, source string) ([]Lock, error) {
	where := "parsing"
	if source != "" {
		where += " " + source
	}
	var locks []Lock
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		l, err := parseLine(text)
		if err != nil {
			return nil, fmt.Errorf("%s line %d %q: %w", where, n, text, err)
		}
		locks = append(locks, l)
	}
	if err := sc.Err(); err != nil {
		if source == "" {
			source = "lock table"
		}
		return nil, fmt.Errorf("reading %s: %w", source, err)
	}
	return locks, nil
}

// parseLine parses one line of /proc/locks, or the part of an fdinfo
// "lock:" line after the tab. The kernel (fs/locks.c, lock_get_status)
// prints
//
//	ID: [-> ]KIND SUBKIND TYPE PID MAJOR:MINOR:INODE START END
//
// where a waiter's "->" is indented one more space for each level of the
// queue it waits in, SUBKIND is ADVISORY or MANDATORY for locks and
// ACTIVE, BREAKING or BREAKER for leases, and END is the inclusive last
// byte or "EOF".
func parseLine(text string) (Lock, error) {
	f := strings.Fields(text)
	if len(f) == 0 {
		return Lock{}, fmt.Errorf("empty line")
	}
	idField, ok := strings.CutSuffix(f[0], ":")
	if !ok {
		return Lock{}, fmt.Errorf("no \"ID:\" at the start")
	}
	var l Lock
	var err error
	if l.ID, err = strconv.Atoi(idField); err != nil {
		return Lock{}, fmt.Errorf("bad lock ID: %w", err)
	}
	f = f[1:]
	for len(f) > 0 && f[0] == "->" {
		l.Waiting = true
		f = f[1:]
	}
	if len(f) != 7 {
		return Lock{}, fmt.Errorf("%d fields after the ID, want 7 (kind, subkind, type, pid, device:inode, start, end)", len(f))
	}
	switch f[0] {
	case "FLOCK":
		l.Kind = KindFlock
	case "POSIX":
		l.Kind = KindPOSIX
	case "OFDLCK":
		l.Kind = KindOFD
	default:
		l.Kind = strings.ToLower(f[0])
	}
	// f[1], the subkind, says nothing lockmgr acts on: mandatory locking
	// is gone from Linux since 5.15, and leases are not reported anyway.
	switch f[2] {
	case "READ":
		l.Mode = backend.Shared
	case "WRITE", "UNLCK":
		l.Mode = backend.Exclusive
	default:
		return Lock{}, fmt.Errorf("lock type %q is none of READ, WRITE, UNLCK", f[2])
	}
	if l.PID, err = strconv.Atoi(f[3]); err != nil {
		return Lock{}, fmt.Errorf("bad pid: %w", err)
	}
	if l.Major, l.Minor, l.Inode, err = parseDevIno(f[4]); err != nil {
		return Lock{}, err
	}
	if l.Range, err = parseRange(f[5], f[6]); err != nil {
		return Lock{}, err
	}
	return l, nil
}

// parseDevIno parses "MAJOR:MINOR:INODE", the device in hex as the kernel
// prints it with %02x and the inode in decimal. A lock with no inode,
// which the kernel prints as "<none>:0", gets zeros: no file has inode 0,
// so it matches none.
func parseDevIno(s string) (major, minor uint32, ino uint64, err error) {
	if s == "<none>:0" {
		return 0, 0, 0, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("device and inode %q are not MAJOR:MINOR:INODE", s)
	}
	maj, err := strconv.ParseUint(parts[0], 16, 32)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bad device major number: %w", err)
	}
	min, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bad device minor number: %w", err)
	}
	ino, err = strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bad inode number: %w", err)
	}
	return uint32(maj), uint32(min), ino, nil
}

// parseRange turns /proc/locks' start and inclusive end (or "EOF") into a
// half-open backend.Range.
func parseRange(startField, endField string) (backend.Range, error) {
	start, err := strconv.ParseInt(startField, 10, 64)
	if err != nil {
		return backend.Range{}, fmt.Errorf("bad range start: %w", err)
	}
	if start < 0 {
		return backend.Range{}, fmt.Errorf("negative range start %d", start)
	}
	if endField == "EOF" {
		return backend.Range{Start: start, End: backend.ToEOF}, nil
	}
	last, err := strconv.ParseInt(endField, 10, 64)
	if err != nil {
		return backend.Range{}, fmt.Errorf("bad range end: %w", err)
	}
	if last < start {
		return backend.Range{}, fmt.Errorf("range ends at %d, before its start %d", last, start)
	}
	if last == math.MaxInt64 {
		// The kernel's OFFSET_MAX; it prints "EOF" for it, but an end
		// of MaxInt64 must not overflow either way.
		return backend.Range{Start: start, End: backend.ToEOF}, nil
	}
	return backend.Range{Start: start, End: last + 1}, nil
}
