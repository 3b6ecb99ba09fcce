// Package fdlock is the body of a backend whose locks belong to an open
// file description: flock(2) locks and Linux OFD (F_OFD_SETLK) locks.
//
// Such a lock lives exactly as long as the open file description it was
// taken on, so each handle opens the lock file afresh and releasing it is
// closing that descriptor. The two backends differ only in the kernel call
// that takes the lock, their Mechanism, which is defined here too (Flock,
// OFD) so that the backends, the tests and the third-party example share
// it; everything else, from the symlink-proof open to waiting and
// remove-on-release, lives here once.
package fdlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/kernelwait"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"github.com/lockmgr/lockmgr/core/lockwait"
	"github.com/lockmgr/lockmgr/core/proclocks"
	"golang.org/x/sys/unix"
)

// Mechanism is the kernel call behind a Backend. Flock and OFD return
// the two that Linux has; a backend takes one of them rather than write
// its own, so that each kernel call is written once.
type Mechanism struct {
	// Info describes the backend.
	Info backend.Info
	// Lock takes a lock on fd. Without wait it does not block: nil when
	// granted, and unix.EWOULDBLOCK or unix.EAGAIN when another owner
	// holds a conflicting lock. It is also called so on a held lock, with
	// Exclusive, to convert it before remove-on-release unlinks the file.
	//
	// With wait it blocks in the kernel until the lock is granted
	// (flock(2) without LOCK_NB, F_OFD_SETLKW), and returns unix.EINTR
	// when a signal interrupts it. A waiter in a process that enabled
	// core/kernelwait (a plugin) sleeps so and is granted the lock the
	// moment its holder lets go, as under flock(1); elsewhere, or where
	// kernel waits are unavailable, it sleeps on inotify (core/lockwait)
	// and Lock is only ever called without wait.
	Lock func(fd int, mode backend.Mode, r backend.Range, wait bool) error
	// Unlock releases the lock on fd in r. Closing the descriptor is
	// enough when it is our own; Unlock is for a descriptor inherited from
	// the host, whose open file description outlives the release.
	Unlock func(fd int, r backend.Range) error
	// Warn returns caveats about locking the open file f, or nil.
	Warn func(f *os.File) []string
}

// info describes a backend named name at version whose locks belong to
// an open file description: what both kinds of lock can do, and what
// Backend does for them (lock a descriptor the host passes, hand the
// locked file over). Each mechanism adds what is its own.
func info(name, version string) backend.Info {
	return backend.Info{
		Name:    name,
		Version: version,
		Capabilities: backend.Capabilities{
			Shared:              true,
			Owner:               backend.OwnerOpenFileDescription,
			InheritedAcrossFork: true,
			InheritedFD:         true,
			HandsOver:           true,
		},
	}
}

// Backend implements backend.LockMgr with one open file description per
// handle.
type Backend struct {
	mech Mechanism
	mu   sync.Mutex
	next backend.HandleID
	held map[backend.HandleID]*handle
}

type handle struct {
	path      string
	file      *lockfile.Opened
	mode      backend.Mode
	rng       backend.Range
	remove    bool
	inherited bool // the host's descriptor: unlock, do not just close
}

// New returns a Backend that locks with mech.
func New(mech Mechanism) *Backend {
	return &Backend{mech: mech, held: make(map[backend.HandleID]*handle)}
}

var _ backend.LockMgr = (*Backend)(nil)

// Describe implements backend.LockMgr.
func (b *Backend) Describe(context.Context) (backend.Info, error) { return b.mech.Info, nil }

func (b *Backend) fail(op, path string, err error) error {
	return backend.Errorf(op, path, b.mech.Info.Name, err)
}

// Acquire implements backend.LockMgr.
func (b *Backend) Acquire(ctx context.Context, req backend.Request) (backend.Held, error) {
	if err := req.Validate(b.mech.Info.Capabilities); err != nil {
		return backend.Held{}, b.fail("lock", req.Path, err)
	}
	req.Range = req.Range.Normalize()
	var (
		o   *lockfile.Opened
		err error
	)
	if req.FD > 0 {
		o, err = inherit(req.FD)
	} else {
		o, err = lockfile.Open(req.Path, req.FileMode)
	}
	if err != nil {
		return backend.Held{}, b.fail("lock", req.Path, err)
	}
	o, err = b.lockLoop(ctx, req, o)
	if err != nil {
		return backend.Held{}, b.fail("lock", req.Path, err)
	}
	var warnings []string
	if b.mech.Warn != nil {
		warnings = b.mech.Warn(o.File)
	}
	if req.HandOver && b.mech.Info.Capabilities.HandsOver && req.FD <= 0 && !req.RemoveOnRelease {
		// The lock is the open file description's, so the file is the
		// whole of it: give it away and keep nothing, where the backend
		// says it does (Capabilities.HandsOver), so that what it promises
		// and what it does agree. Remove-on-release
		// stays here, since the unlink must happen while this code, which
		// knows how to convert the lock, still holds it.
		return backend.Held{File: o.File, Warnings: warnings}, nil
	}
	h := &handle{path: req.Path, file: o, mode: req.Mode, rng: req.Range, remove: req.RemoveOnRelease, inherited: req.FD > 0}
	b.mu.Lock()
	b.next++
	id := b.next
	b.held[id] = h
	b.mu.Unlock()
	return backend.Held{ID: id, Warnings: warnings}, nil
}

// lockLoop tries to lock o until it is granted, refused, or ctx ends. It
// returns the file actually locked, which differs from o when the file at
// the path was replaced meanwhile; on error, o is closed.
func (b *Backend) lockLoop(ctx context.Context, req backend.Request, o *lockfile.Opened) (*lockfile.Opened, error) {
	var watch *lockwait.Watch
	defer func() {
		if watch != nil {
			watch.Close()
		}
	}()
	for {
		err := b.mech.Lock(int(o.File.Fd()), req.Mode, req.Range, false)
		switch {
		case err == nil:
			if req.FD > 0 {
				return o, nil
			}
			// A holder with remove-on-release may have unlinked the file
			// we opened; a lock on it excludes no one who opens the path.
			same, serr := o.StillAt(req.Path)
			if serr != nil {
				o.File.Close()
				return nil, serr
			}
			if same {
				return o, nil
			}
			o.File.Close()
			if o, err = lockfile.Open(req.Path, req.FileMode); err != nil {
				return nil, err
			}
			if watch != nil {
				watch.Close()
				watch = lockwait.New(o.File, o.Key)
			}
			continue
		case err == unix.EINTR:
			continue
		case err != unix.EWOULDBLOCK && err != unix.EAGAIN:
			o.Discard(req.Path, func(fd int) error {
				return b.mech.Lock(fd, backend.Exclusive, backend.WholeFile, false)
			})
			return nil, explain(err, req.Mode)
		case !req.Wait:
			o.File.Close()
			return nil, backend.ErrBusy
		}
		fd := int(o.File.Fd())
		werr := kernelwait.Wait(ctx, func() error { return b.mech.Lock(fd, req.Mode, req.Range, true) })
		switch {
		case werr == nil:
			// Granted: the next try, on a lock this description
			// already holds, succeeds at once and checks the path.
			continue
		case werr == unix.EINTR:
			o.File.Close()
			return nil, backend.WaitError(ctx)
		case werr != kernelwait.ErrUnavailable:
			o.File.Close()
			return nil, explain(werr, req.Mode)
		}
		if watch == nil {
			// Subscribe, then try once more before sleeping, so that a
			// release between the failed try and the subscription is seen.
			watch = lockwait.New(o.File, o.Key)
			continue
		}
		if werr := watch.Next(ctx); werr != nil {
			o.File.Close()
			return nil, backend.WaitError(ctx)
		}
	}
}

func explain(err error, mode backend.Mode) error {
	switch err {
	case unix.EBADF:
		if mode == backend.Shared {
			return fmt.Errorf("a shared lock needs the file open for reading, and it is write-only here: %w", err)
		}
		return fmt.Errorf("an exclusive lock needs the file open for writing, and it is read-only here: %w", err)
	case unix.EINVAL, unix.ENOSYS:
		return fmt.Errorf("%w: the kernel refused the lock call (%v)", backend.ErrUnsupported, err)
	}
	return err
}

// inherit wraps a copy of the host-given descriptor fd. The copy shares
// fd's open file description, so a lock taken on it is a lock on what the
// host's shell holds open, and it outlives this process.
func inherit(fd int) (*lockfile.Opened, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("descriptor %d: %w", fd, err)
	}
	f := os.NewFile(uintptr(dup), fmt.Sprintf("fd %d", fd))
	key, err := lockfile.KeyOf(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	flags, err := unix.FcntlInt(uintptr(dup), unix.F_GETFL, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("descriptor %d: %w", fd, err)
	}
	return &lockfile.Opened{File: f, Key: key, Writable: flags&unix.O_ACCMODE != unix.O_RDONLY}, nil
}

// Release implements backend.LockMgr.
func (b *Backend) Release(_ context.Context, id backend.HandleID) error {
	b.mu.Lock()
	h, ok := b.held[id]
	delete(b.held, id)
	b.mu.Unlock()
	if !ok {
		return b.fail("unlock", "", backend.ErrNotLocked)
	}
	var err error
	if h.remove && !h.inherited {
		err = b.removeWhileHeld(h)
	}
	if h.inherited {
		if uerr := b.mech.Unlock(int(h.file.File.Fd()), h.rng); uerr != nil && err == nil {
			err = uerr
		}
	}
	// Closing our only descriptor of the open file description releases
	// the lock, and fires the inotify event other processes' waiters sleep on.
	if cerr := h.file.File.Close(); cerr != nil && err == nil {
		err = cerr
	}
	lockwait.Wake(h.file.Key)
	if err != nil {
		return b.fail("unlock", h.path, err)
	}
	return nil
}

// removeWhileHeld unlinks the lock file while still holding it, and only
// if no one else holds it: a shared holder first converts to exclusive,
// without waiting, and leaves the file alone if others still share it.
func (b *Backend) removeWhileHeld(h *handle) error {
	if !h.rng.IsWholeFile() {
		return nil
	}
	if h.mode == backend.Shared {
		if err := b.mech.Lock(int(h.file.File.Fd()), backend.Exclusive, h.rng, false); err != nil {
			if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EAGAIN) {
				return nil
			}
			return err
		}
	}
	return h.file.RemoveIfStillAt(h.path)
}

// Inspect implements backend.LockMgr.
func (b *Backend) Inspect(_ context.Context, path string) (backend.Status, error) {
	st, err := proclocks.ForFile(path)
	if err != nil {
		return backend.Status{}, b.fail("inspect", path, err)
	}
	return st, nil
}

// ReleaseDescription releases every lock that f's open file description
// holds, of either kind (flock, and OFD over the whole file), without
// closing f. Closing the last descriptor of a description is how its
// locks end; but a host handed a locked file by its plugin cannot know
// that the plugin has closed its own copy yet (it closes it just after
// the packet that carried the file is sent), and an Unlock must free the
// lock at once, not when a plugin thread is next scheduled. Either kind
// of unlock is harmless where the description holds no such lock.
func ReleaseDescription(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr, oerr error
	if err := raw.Control(func(fd uintptr) {
		ferr = Flock("", "").Unlock(int(fd), backend.WholeFile)
		oerr = OFD("", "").Unlock(int(fd), backend.WholeFile)
	}); err != nil {
		return err
	}
	if errors.Is(oerr, unix.EINVAL) {
		oerr = nil // a kernel without OFD locks: there is none to release
	}
	return errors.Join(ferr, oerr)
}
