package proclocks

// Finding the owner of a lock that belongs to an open file description.
//
// flock and OFD locks belong to an open file description, which any
// number of descriptors in any number of processes may share (dup, fork,
// SCM_RIGHTS). /proc/locks names no process for an OFD lock (pid -1) and,
// for a flock lock, the process that called flock(2), which may be gone.
// What the kernel does show is, in /proc/PID/fdinfo/FD, a "lock:" line
// for each lock whose open file description that descriptor refers to
// (fs/locks.c, show_fd_locks), printed like a /proc/locks line. So the
// owners of a lock are the processes with a descriptor whose fdinfo shows
// a lock of the same kind, mode and range on the same inode.
//
// Two open file descriptions can hold identical locks on one file (two
// shared locks on the same range), and then fdinfo alone cannot tell
// which descriptors share which description. kcmp(2) with KCMP_FILE can:
// it reports whether two descriptors, in two processes, refer to the same
// open file description. Where kcmp is unavailable (a kernel without
// CONFIG_KCMP, a seccomp filter, no ptrace access), descriptors in one
// process are taken to share a description and those in different
// processes not to, which is right unless a description is shared across
// processes.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/lockmgr/lockmgr/core/backend"
)

// kcmpFile is KCMP_FILE from <linux/kcmp.h>, which golang.org/x/sys/unix
// does not define: kcmp compares two descriptors' open file descriptions.
const kcmpFile = 0

// owned is a lock from /proc/locks with the owner ForFile settled on.
type owned struct {
	Lock
	// detail explains an owner that is not simply the pid /proc/locks
	// shows; it becomes backend.LockOwner.Detail.
	detail string
}

// lockKey is what a "lock:" line in fdinfo has in common with the
// /proc/locks line of the same lock, once the file is fixed. (The IDs
// differ: fdinfo numbers each descriptor's locks from 1.)
type lockKey struct {
	kind string
	mode backend.Mode
	rng  backend.Range
}

// keyOf returns l's lockKey.
func keyOf(l Lock) lockKey {
	return lockKey{kind: l.Kind, mode: l.Mode, rng: l.Range}
}

// fdLock is a lock seen in the fdinfo of descriptor fd of process pid.
type fdLock struct {
	pid, fd int
	key     lockKey
}

// description is a set of descriptors sharing one open file description
// that holds a lock.
type description struct {
	first fdLock // the descriptor others are compared with
	pids  []int  // sorted, without repeats
}

// resolveOwners settles the owner of each lock in mine, all on the inode
// that /proc/locks names id. It scans /proc/*/fdinfo only if some granted
// lock lacks a live owner: an OFD lock, or a flock lock whose process has
// exited. (A flock lock whose process exited and whose pid was reused
// since would be credited to the newcomer; telling those apart would
// mean scanning fdinfo for every flock lock, and pids are not reused
// until they wrap around.)
func resolveOwners(mine []Lock, id fileID) ([]owned, error) {
	out := make([]owned, len(mine))
	var unresolved []int // indexes into out, in /proc/locks order
	named := make(map[lockKey][]int)
	for i, l := range mine {
		out[i] = owned{Lock: l}
		switch {
		case l.Waiting:
			// fdinfo lists granted locks only; a waiter keeps its pid,
			// which is -1 for an OFD request.
		case l.Kind == KindOFD && l.PID < 0:
			unresolved = append(unresolved, i)
		case l.Kind == KindFlock && !alive(l.PID):
			out[i].PID = -1
			out[i].detail = fmt.Sprintf("taken by pid %d, which has exited", l.PID)
			unresolved = append(unresolved, i)
		case l.Kind == KindFlock && strings.HasPrefix(Command(l.PID), backend.PluginComm()):
			// A lockmgr plugin that took a flock lock hands the locked
			// descriptor to its host, which then holds it; the plugin may
			// keep it only in a few cases (remove-on-release). Whoever has
			// the description open holds the lock.
			unresolved = append(unresolved, i)
		default:
			named[keyOf(l)] = append(named[keyOf(l)], l.PID)
		}
	}
	if len(unresolved) == 0 {
		return out, nil
	}
	found, err := scanFdinfo(id)
	if err != nil {
		return nil, err
	}
	groups := groupDescriptions(found)
	// Hand out each key's descriptions, lowest pid first, to that key's
	// unresolved locks in order. A description that holds a lock already
	// named to a live process (a flock holder that forked) is that lock's,
	// not an unresolved one's.
	next := make(map[lockKey]int)
	for _, i := range unresolved {
		k := keyOf(out[i].Lock)
		for next[k] < len(groups[k]) {
			d := groups[k][next[k]]
			next[k]++
			if slices.ContainsFunc(d.pids, func(pid int) bool { return slices.Contains(named[k], pid) }) {
				continue
			}
			out[i].PID = d.pids[0]
			var others []string
			for _, pid := range d.pids[1:] {
				others = append(others, strconv.Itoa(pid))
			}
			var notes []string
			if out[i].detail != "" {
				notes = append(notes, out[i].detail+"; held through a descriptor it passed on")
			}
			if len(others) > 0 {
				notes = append(notes, "open file description shared with pid "+strings.Join(others, ", "))
			}
			out[i].detail = strings.Join(notes, "; ")
			break
		}
	}
	return out, nil
}

// scanFdinfo returns every flock and OFD lock on inode id that some
// process's fdinfo shows. Processes come and go during the scan, and
// those of other users may be unreadable; such a process is skipped, as
// if it held no lock, since there is nothing better to report for it.
func scanFdinfo(id fileID) ([]fdLock, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes to find lock owners: %w", err)
	}
	var found []fdLock
	buf := make([]byte, 0, 4096)
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 0 {
			continue // not a process: /proc/self, /proc/locks, ...
		}
		dir := "/proc/" + p.Name() + "/fdinfo/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			if gone(err) {
				continue
			}
			return nil, fmt.Errorf("finding lock owners: %w", err)
		}
		for _, e := range fds {
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			buf, err = readInto(buf[:0], dir+e.Name())
			if err != nil {
				if gone(err) {
					continue
				}
				return nil, fmt.Errorf("finding lock owners: %w", err)
			}
			for _, line := range strings.Split(string(buf), "\n") {
				rest, ok := strings.CutPrefix(line, "lock:")
				if !ok {
					continue
				}
				l, err := parseLine(rest)
				if err != nil {
					// One odd line in an unrelated process must not make
					// the whole inspection fail; it cannot be about
					// our file in any way we could use.
					continue
				}
				if (l.Kind == KindOFD || l.Kind == KindFlock) && l.on(id) {
					found = append(found, fdLock{pid: pid, fd: fd, key: keyOf(l)})
				}
			}
		}
	}
	return found, nil
}

// gone reports whether err from reading /proc/PID means the process or
// descriptor vanished mid-scan (ENOENT, ESRCH) or is not ours to read
// (EACCES, EPERM).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ESRCH)
}

// readInto reads the file at path into buf, reusing its storage: the scan
// reads one small file per descriptor on the system, and os.ReadFile
// would allocate a buffer and fstat each one.
func readInto(buf []byte, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, &fs.PathError{Op: "read", Path: path, Err: err}
		}
	}
}

// groupDescriptions sorts the descriptors in found into the open file
// descriptions they refer to, per lock key; each key's descriptions come
// lowest pid first.
func groupDescriptions(found []fdLock) map[lockKey][]*description {
	groups := make(map[lockKey][]*description)
	for _, e := range found {
		joined := false
		for _, d := range groups[e.key] {
			if sameDescription(d.first, e) {
				if !slices.Contains(d.pids, e.pid) {
					d.pids = append(d.pids, e.pid)
				}
				joined = true
				break
			}
		}
		if !joined {
			groups[e.key] = append(groups[e.key], &description{first: e, pids: []int{e.pid}})
		}
	}
	for _, ds := range groups {
		for _, d := range ds {
			d.pids = inheritanceOrder(d.pids)
		}
		slices.SortStableFunc(ds, func(a, b *description) int { return a.pids[0] - b.pids[0] })
	}
	return groups
}

// inheritanceOrder puts first, among the processes sharing one open file
// description, the one the others inherited it from: the sharer none of
// whose ancestors shares it (the eldest such, if the description was
// passed between unrelated processes). That is the process a person must
// end for the lock to go, such as `lockmgr run`, whose command and the
// command's children (a `sleep` in a shell loop) share its descriptor.
// The lowest pid is not it: pids wrap around, at 32768 on many systems,
// and a busy machine soon gives a new child a pid below its parent's.
func inheritanceOrder(pids []int) []int {
	type sharer struct {
		pid     int
		heir    bool   // an ancestor shares the description too
		started uint64 // clock ticks after boot
	}
	set := make(map[int]bool, len(pids))
	for _, pid := range pids {
		set[pid] = true
	}
	sharers := make([]sharer, 0, len(pids))
	for _, pid := range pids {
		if slices.ContainsFunc(sharers, func(s sharer) bool { return s.pid == pid }) {
			continue
		}
		sharers = append(sharers, sharer{pid: pid, heir: hasAncestorIn(pid, set), started: startTime(pid)})
	}
	slices.SortFunc(sharers, func(a, b sharer) int {
		switch {
		case a.heir != b.heir:
			if a.heir {
				return 1
			}
			return -1
		case a.started != b.started:
			// One that cannot be read (0) goes last.
			if a.started != 0 && (b.started == 0 || a.started < b.started) {
				return -1
			}
			return 1
		}
		return a.pid - b.pid
	})
	out := make([]int, len(sharers))
	for i, s := range sharers {
		out[i] = s.pid
	}
	return out
}

// hasAncestorIn reports whether some ancestor of pid is in set. The walk
// is bounded, since a process tree read piecewise from /proc can change
// under it.
func hasAncestorIn(pid int, set map[int]bool) bool {
	for range 64 {
		pid = ParentPID(pid)
		if pid <= 1 {
			return false
		}
		if set[pid] {
			return true
		}
	}
	return false
}

// sameDescription reports whether descriptors a and b refer to one open
// file description, by kcmp(2); where kcmp fails it guesses that they do
// exactly when they are in the same process (see the top of this file).
func sameDescription(a, b fdLock) bool {
	if a.pid == b.pid && a.fd == b.fd {
		return true
	}
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a.pid), uintptr(b.pid), kcmpFile, uintptr(a.fd), uintptr(b.fd), 0)
	if errno == 0 {
		return r == 0
	}
	return a.pid == b.pid
}
