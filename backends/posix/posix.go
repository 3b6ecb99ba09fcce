package main

// POSIX record locks (fcntl F_SETLK) belong to a (process, inode) pair, not
// to a descriptor or an open file description. Three kernel rules follow
// from that, and this file is built around them:
//
//   - A process never conflicts with itself. Two handles served by this one
//     plugin process would both be granted overlapping write locks, so the
//     backend keeps its own table of what each handle holds and refuses a
//     conflict between handles before it asks the kernel.
//   - A process has one lock state per byte of a file. Locking a range the
//     process already holds replaces its type there (a read lock over a
//     write lock is a downgrade), neighbouring locks of one type merge, and
//     unlocking a range unlocks it whichever handle asked. So the kernel is
//     given exactly the union of the handles' locks, and a release unlocks
//     only the bytes no other handle still holds.
//   - Closing any descriptor of the file releases every POSIX lock the
//     process holds on it, whichever descriptor took them (fcntl(2), under
//     "Record locking"). So each inode gets one table entry owning every
//     descriptor this backend has open on it, and those are closed only
//     once no handle holds a lock there and no acquire is using them.
//
// The last rule reaches beyond this file: nothing else in the process may
// open and close a lock file while it is locked. The plugin process does
// nothing else; proclocks.ForFile, behind Inspect, never opens the file;
// and lockwait watches the inode through /proc/self/fd without opening it.
// An application embedding this backend in its own process must keep to
// the same rule.
//
// The locks are not inherited across fork, and they die with the process
// that took them, which is the plugin process here. That is why a
// descriptor handed over by the host (lockmgr lock --fd) is refused: the
// lock would belong to the plugin, not to the shell that holds the
// descriptor.
//
// Two more kernel rules the code relies on: converting a held range
// between read and write is atomic (F_SETLK replaces the type without
// releasing the range first), and a refused F_SETLK leaves the process's
// existing locks as they were. Remove-on-release depends on both.
//
// On NFS the client forwards POSIX locks to the server's lock manager, so
// that other clients see them: this is the backend for network
// filesystems (Linux emulates flock(2) there with these same locks).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"github.com/lockmgr/lockmgr/core/lockwait"
	"github.com/lockmgr/lockmgr/core/proclocks"
	"golang.org/x/sys/unix"
)

// name is the backend's name, in its Info and in every error it returns.
const name = "posix"

// Backend implements backend.LockMgr with POSIX record locks. Its handles
// exclude each other, and handles of other Backends in the same process,
// exactly as handles in different processes would, which the kernel alone
// does not do for POSIX locks.
type Backend struct {
	info backend.Info

	mu   sync.Mutex // guards next and held
	next backend.HandleID
	held map[backend.HandleID]*hold
}

var _ backend.LockMgr = (*Backend)(nil)

// newBackend returns a Backend. Every Backend of the process shares one
// table of locked inodes (see inodes), so any number may be made.
func newBackend() *Backend {
	return &Backend{
		info: backend.Info{
			Name:    name,
			Version: version,
			Capabilities: backend.Capabilities{
				Shared:             true,
				ByteRanges:         true,
				Owner:              backend.OwnerProcess,
				NetworkFilesystems: true,
			},
		},
		held: make(map[backend.HandleID]*hold),
	}
}

// Describe implements backend.LockMgr.
func (b *Backend) Describe(context.Context) (backend.Info, error) { return b.info, nil }

// errInheritedFD refuses Request.FD. backend.Request.Validate refuses it
// too, but in terms of open file descriptions; a person reading this error
// needs the POSIX reason.
var errInheritedFD = backend.Unsupportedf("locking an inherited descriptor: a POSIX lock belongs to the process " +
	"that takes it and dies with that process, which here is the backend's plugin, not the process that " +
	"handed over the descriptor; use the ofd or flock backend, whose locks live as long as the descriptor")

// errReadOnly is the cause when an exclusive lock is asked of a file that
// can only be opened read-only. It wraps EBADF, which is what fcntl itself
// says to F_WRLCK on such a descriptor, as the flock and ofd backends'
// errors do.
var errReadOnly = fmt.Errorf("an exclusive (write) lock needs the file open for writing, "+
	"and it can only be opened read-only here; a shared lock would work: %w", syscall.EBADF)

// Acquire implements backend.LockMgr. With req.Wait it waits without
// blocking in the kernel (see lockwait), so that ctx can end the wait.
func (b *Backend) Acquire(ctx context.Context, req backend.Request) (backend.Held, error) {
	if req.FD > 0 {
		return backend.Held{}, backend.Errorf("lock", req.Path, name, errInheritedFD)
	}
	if err := req.Validate(b.info.Capabilities); err != nil {
		return backend.Held{}, backend.Errorf("lock", req.Path, name, err)
	}
	req.Range = req.Range.Normalize()
	h, err := lockLoop(ctx, req)
	if err != nil {
		return backend.Held{}, backend.Errorf("lock", req.Path, name, err)
	}
	b.mu.Lock()
	b.next++
	id := b.next
	b.held[id] = h
	b.mu.Unlock()
	return backend.Held{ID: id}, nil
}

// lockLoop tries to take the lock req describes until it is granted,
// refused, or ctx ends, as fdlock does for flock and OFD locks. Every
// attempt is non-blocking: F_SETLKW could not be interrupted when ctx ends
// (Go restarts system calls after its signals), and it is the only call
// that reports EDEADLK, whose detection counts the whole process as one
// owner and so can cry deadlock when two goroutines merely wait.
func lockLoop(ctx context.Context, req backend.Request) (*hold, error) {
	e, created, err := inodes.use(req.Path, req.FileMode, req.Mode)
	if err != nil {
		return nil, err
	}
	var watch *lockwait.Watch
	defer func() {
		if watch != nil {
			watch.Close()
		}
	}()
	for {
		h := &hold{ino: e, path: req.Path, mode: req.Mode, rng: req.Range, remove: req.RemoveOnRelease}
		err := e.try(h)
		switch {
		case err == nil:
			// A holder with remove-on-release may have unlinked the file we
			// locked; a lock on it excludes no one who opens the path.
			same, serr := e.first.StillAt(req.Path)
			if serr == nil && same {
				// The reference use gave passes to the hold; Release
				// gives it back.
				return h, nil
			}
			h.remove = false
			rerr := e.release(h)
			if cerr := inodes.unref(e, ""); rerr == nil {
				rerr = cerr
			}
			lockwait.Wake(e.key)
			if serr != nil {
				return nil, serr
			}
			if rerr != nil {
				return nil, rerr
			}
			if e, created, err = inodes.use(req.Path, req.FileMode, req.Mode); err != nil {
				return nil, err
			}
			if watch != nil {
				watch.Close()
				watch = lockwait.New(e.first.File, e.key)
			}
			continue
		case !errors.Is(err, backend.ErrBusy):
			// Leave no lock file behind where there was none, unless
			// another handle has meanwhile come to use it.
			remove := ""
			if created {
				remove = req.Path
			}
			_ = inodes.unref(e, remove)
			return nil, err
		case !req.Wait:
			_ = inodes.unref(e, "")
			return nil, backend.ErrBusy
		}
		if watch == nil {
			// Subscribe, then try once more before sleeping, so that a
			// release between the failed try and the subscription is seen.
			watch = lockwait.New(e.first.File, e.key)
			continue
		}
		if werr := watch.Next(ctx); werr != nil {
			_ = inodes.unref(e, "")
			return nil, backend.WaitError(ctx)
		}
	}
}

// Release implements backend.LockMgr.
func (b *Backend) Release(_ context.Context, id backend.HandleID) error {
	b.mu.Lock()
	h, ok := b.held[id]
	delete(b.held, id)
	b.mu.Unlock()
	if !ok {
		return backend.Errorf("unlock", "", name, backend.ErrNotLocked)
	}
	err := h.ino.release(h)
	if cerr := inodes.unref(h.ino, ""); err == nil {
		err = cerr
	}
	// Other processes' waiters wake on the inotify event that closing the
	// descriptors fires, or on their backoff when another handle keeps them
	// open; an unlock that closes nothing fires no event, so this
	// process's waiters are woken directly.
	lockwait.Wake(h.ino.key)
	if err != nil {
		return backend.Errorf("unlock", h.path, name, err)
	}
	return nil
}

// Inspect implements backend.LockMgr. It reads the kernel's lock table
// rather than asking F_GETLK, which names one conflicting lock at most and
// never this process's own. proclocks.ForFile does not open the file: a
// descriptor opened and closed here would drop every lock this process
// holds on it.
func (b *Backend) Inspect(_ context.Context, path string) (backend.Status, error) {
	st, err := proclocks.ForFile(path)
	if err != nil {
		return backend.Status{}, backend.Errorf("inspect", path, name, err)
	}
	return st, nil
}

// inodes is the process's table of lock files that handles hold or are
// acquiring locks on. It is one per process, not one per Backend, because
// the kernel's lock owner is the process: two Backends in one process (the
// conformance suite's in-process handles each have their own, and so may an
// application embedding the backend) would otherwise neither exclude each
// other nor keep from closing each other's descriptors.
var inodes = inodeTable{byKey: make(map[lockfile.Key]*inode)}

// inodeTable maps each locked inode to its entry.
type inodeTable struct {
	mu    sync.Mutex // guards byKey and every entry's refs
	byKey map[lockfile.Key]*inode
}

// inode is the table entry of one lock file: the descriptors this process
// has open on it, and the locks its handles hold there.
type inode struct {
	key   lockfile.Key
	first *lockfile.Opened // the descriptor the entry was made with; it stays
	refs  int              // holds, plus acquires in flight; guarded by inodeTable.mu

	// mu guards files and holds, and is held around every fcntl on the
	// inode, so that the in-process check and the kernel call are one step.
	// Lock order: inodeTable.mu, then inode.mu.
	mu    sync.Mutex
	files []*lockfile.Opened // every descriptor open on the inode, first included
	holds []*hold
}

// hold is one handle's granted lock.
type hold struct {
	ino    *inode
	path   string
	mode   backend.Mode
	rng    backend.Range // normalized
	remove bool
}

// use returns the entry of the file at path, opening (and perhaps
// creating) the file unless it already has an entry with a descriptor
// that can take a lock of this mode. The caller owns one reference to the
// entry and gives it back with unref, or passes it to a hold. created
// reports whether this call created the file.
func (t *inodeTable) use(path string, perm os.FileMode, mode backend.Mode) (e *inode, created bool, err error) {
	// A second handle on a file reuses its entry's descriptor rather than
	// opening another. The path may be replaced right after the lstat; then
	// the lock lands on the old inode, and lockLoop's StillAt after the
	// grant notices.
	var (
		st    unix.Stat_t
		known bool
		o     *lockfile.Opened
	)
	if unix.Lstat(path, &st) == nil {
		if e, known = t.ref(lockfile.Key{Dev: st.Dev, Ino: st.Ino}, mode); e != nil {
			return e, false, nil
		}
	}
	if known {
		// The file has an entry, but only read-only descriptors, and this
		// is an exclusive lock. Another read-only descriptor would be of no
		// use and could not be closed while the entry's locks are held, so
		// open the file for writing or not at all. (It may have become
		// writable: a running program's file can only be opened read-only
		// until the program exits, say.)
		o, err = openWritable(path)
	} else {
		o, err = lockfile.Open(path, perm)
	}
	if err != nil {
		return nil, false, err
	}
	e = t.add(o)
	if mode == backend.Exclusive && !o.Writable {
		// Not created: lockfile.Open creates only with write access.
		_ = t.unref(e, "")
		return nil, false, errReadOnly
	}
	return e, o.Created, nil
}

// ref returns the entry for key with a new reference. It returns nil if
// there is no entry (known is false then), or if mode is exclusive and the
// entry has no descriptor open for writing.
func (t *inodeTable) ref(key lockfile.Key, mode backend.Mode) (e *inode, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e = t.byKey[key]
	if e == nil {
		return nil, false
	}
	e.mu.Lock()
	writable := e.fdFor(unix.F_WRLCK) >= 0
	e.mu.Unlock()
	if mode == backend.Exclusive && !writable {
		return nil, true
	}
	e.refs++
	return e, true
}

// openWritable opens the existing file at path for reading and writing,
// as lockfile.Open would, without its read-only fallback. It returns
// errReadOnly if the file cannot be opened for writing.
func openWritable(path string) (*lockfile.Opened, error) {
	o, err := lockfile.OpenWritable(path)
	for _, e := range []error{unix.EACCES, unix.EPERM, unix.EROFS, unix.EISDIR, unix.ETXTBSY} {
		if errors.Is(err, e) {
			return nil, errReadOnly
		}
	}
	return o, err
}

// add enters the newly opened o in the table and returns its entry with a
// new reference.
//
// The inode may have an entry already: the entry's descriptors are
// read-only and this one is writable, for an exclusive lock; or, in a
// race, the path named another file at the lstat in use, or another handle
// opened the file meanwhile. Then o joins that entry rather than being
// closed, since closing it would drop every lock the process holds on the
// inode; it is closed with the others once the entry is unused. An entry
// collects at most a few such descriptors: one writable one, and one per
// lost race.
func (t *inodeTable) add(o *lockfile.Opened) *inode {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.byKey[o.Key]; e != nil {
		e.mu.Lock()
		e.files = append(e.files, o)
		e.mu.Unlock()
		e.refs++
		return e
	}
	e := &inode{key: o.Key, first: o, refs: 1, files: []*lockfile.Opened{o}}
	t.byKey[o.Key] = e
	return e
}

// unref gives back a reference to e. The last one removes e from the
// table and closes its descriptors: no handle holds a lock on the inode
// then, so closing releases nothing, and it fires the inotify close event
// that other processes' waiters sleep on. If removePath is set, the file
// is first unlinked from it, if it is still there and no other process
// holds any lock on it (see lockfile.Opened.Discard).
func (t *inodeTable) unref(e *inode, removePath string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.refs--; e.refs > 0 {
		return nil
	}
	delete(t.byKey, e.key)
	var err error
	if removePath != "" {
		// Another process may have opened the file since we created it,
		// and locked it: unlink only under a write lock over the whole
		// file, which no handle of ours holds any part of now (it has no
		// references left), so the kernel grants it only if no other
		// process holds any of it. Closing the descriptors below drops it.
		e.mu.Lock()
		if e.setlk(unix.F_WRLCK, backend.WholeFile) == nil {
			err = e.first.RemoveIfStillAt(removePath)
		}
		e.mu.Unlock()
	}
	for _, o := range e.files {
		if cerr := o.File.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// fdFor returns a descriptor of e that can set a lock of type typ, or -1.
// A read lock needs the file open for reading, which every descriptor of
// ours is; a write lock needs it open for writing; unlocking needs neither.
// e.mu is held.
func (e *inode) fdFor(typ int16) int {
	for _, o := range e.files {
		if typ != unix.F_WRLCK || o.Writable {
			return int(o.File.Fd())
		}
	}
	return -1
}

// try takes the lock h describes without blocking. It returns
// backend.ErrBusy when another handle of this process, or another process,
// holds a conflicting lock.
func (e *inode) try(h *hold) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, o := range e.holds {
		if o.rng.Overlaps(h.rng) && (o.mode == backend.Exclusive || h.mode == backend.Exclusive) {
			return backend.ErrBusy
		}
	}
	// Setting h's type over all of h.rng is safe for the other handles:
	// after the check above, an exclusive h overlaps no other hold, so it
	// changes only bytes no handle holds; a shared h overlaps only shared
	// holds, so it turns read into read. It never downgrades another
	// handle's write lock.
	typ := int16(unix.F_WRLCK)
	if h.mode == backend.Shared {
		typ = unix.F_RDLCK
	}
	switch err := e.setlk(typ, h.rng); err {
	case nil:
		e.holds = append(e.holds, h)
		return nil
	case unix.EAGAIN, unix.EACCES:
		// POSIX lets F_SETLK report a conflict with either.
		return backend.ErrBusy
	case unix.EDEADLK:
		// Only F_SETLKW detects deadlocks, and this never calls it; should
		// a kernel or filesystem say so anyway, the lock was not granted
		// and no one waits in the kernel, so it is busy: a waiter tries
		// again, rather than failing.
		return backend.ErrBusy
	default:
		return explain(err)
	}
}

// release gives up h's lock: it unlocks the bytes of h.rng that no other
// handle holds, and leaves those it shares with other handles' locks,
// which are all read locks since the table admits nothing else beside
// another lock. It never unlocks and relocks, which would let another
// process in between.
//
// With remove-on-release, and no other handle of this process holding any
// of the inode, it first converts to a write lock over the whole file,
// which succeeds only if no other process holds any of it either, and
// unlinks the file while holding that. A holder with only a read-only
// descriptor cannot convert, so it leaves the file in place.
func (e *inode) release(h *hold) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.holds = slices.DeleteFunc(e.holds, func(o *hold) bool { return o == h })
	var err error
	unlock := uncovered(h.rng, e.holds)
	if h.remove && len(e.holds) == 0 && e.fdFor(unix.F_WRLCK) >= 0 {
		// The conversion is atomic and, if refused, changes nothing, so
		// at no point is h's range unlocked before the release below.
		switch cerr := e.setlk(unix.F_WRLCK, backend.WholeFile); cerr {
		case nil:
			err = e.first.RemoveIfStillAt(h.path)
			unlock = []backend.Range{backend.WholeFile}
		case unix.EAGAIN, unix.EACCES, unix.EDEADLK:
			// Someone else holds part of the file: it stays.
		default:
			err = explain(cerr)
		}
	}
	for _, r := range unlock {
		if uerr := e.setlk(unix.F_UNLCK, r); err == nil && uerr != nil {
			err = uerr
		}
	}
	return err
}

// setlk sets a lock of type typ (F_UNLCK to release) on r with F_SETLK,
// which never blocks. e.mu is held.
func (e *inode) setlk(typ int16, r backend.Range) error {
	fd := e.fdFor(typ)
	if fd < 0 {
		return errReadOnly
	}
	// A zero Len reaches the end of the file however long it grows.
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: r.Start, Len: r.Len()}
	for {
		// EINTR: on NFS the call waits for the server, and a signal may
		// interrupt that; the lock was not set, so ask again.
		if err := unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk); err != unix.EINTR {
			return err
		}
	}
}

// uncovered returns the parts of r that none of holds covers, in order.
func uncovered(r backend.Range, holds []*hold) []backend.Range {
	var cover []backend.Range
	for _, o := range holds {
		if o.rng.Overlaps(r) {
			cover = append(cover, backend.Range{Start: max(o.rng.Start, r.Start), End: min(o.rng.End, r.End)})
		}
	}
	slices.SortFunc(cover, func(a, b backend.Range) int { return cmp.Compare(a.Start, b.Start) })
	var gaps []backend.Range
	next := r.Start
	for _, c := range cover {
		if c.Start > next {
			gaps = append(gaps, backend.Range{Start: next, End: c.Start})
		}
		next = max(next, c.End)
	}
	if next < r.End {
		gaps = append(gaps, backend.Range{Start: next, End: r.End})
	}
	return gaps
}

// explain says what a lock call's unexpected error means.
func explain(err error) error {
	switch err {
	case unix.EBADF:
		return errReadOnly
	case unix.ENOLCK:
		return fmt.Errorf("the kernel could not record the lock (on NFS, is the server's lock manager reachable?): %w", err)
	case unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP:
		return fmt.Errorf("%w: this file's filesystem refused the POSIX lock (%v)", backend.ErrUnsupported, err)
	}
	return err
}
