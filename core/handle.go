package lockmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"golang.org/x/sys/unix"
)

// state is where a Handle is in its life; each method moves it along one
// explicit transition, instead of a set of booleans that could disagree.
type state int

const (
	unlocked state = iota // no lock held; may Lock
	locking               // an acquire is in flight
	locked                // a lock is held; may Unlock
	closed                // done for good
)

// ErrClosed is the cause reported by a Handle used after Close.
var ErrClosed = fmt.Errorf("%w: handle is closed", backend.ErrInvalid)

// Handle is one lock on one file, made by New: it is taken with Lock,
// RLock, TryLock or TryRLock and given up with Unlock, any number of
// times, until Close.
// Its methods are safe for concurrent use, but it holds at most one lock
// at a time; two Handles on the same file exclude each other exactly as
// two processes would, whatever the backend.
//
// A lock lives until Unlock, Close, Detach or the process's exit, whether
// or not its Handle is still reachable: a program may take a lock at
// start-up and drop the Handle, and the garbage collector releases
// nothing. Such a lock, like any Handle never closed, also keeps its
// plugin running until the process exits.
type Handle struct {
	path  string
	given string // the path as the caller wrote it, for Request.Name
	opts  options

	mu       mutex
	state    state
	mgr      backend.LockMgr
	plugin   *pluginhost.Plugin
	name     string
	fileMode uint32
	// lock is the lock held, in state locked only; the process-wide
	// registry (holding) refers to it too, so that it outlives the Handle.
	lock      *heldLock
	stopWait  context.CancelFunc
	closeDone chan struct{}
}

// New returns a Handle for the lock file at path. It does not touch the
// file or start a plugin: that happens at the first lock, and errors in
// the configuration or the backend show there. With WithFile, the file
// locked is the caller's, and path only names it.
func New(path string, opts ...Option) *Handle {
	h := &Handle{path: path, given: path, mu: make(mutex, 1)}
	for _, opt := range opts {
		opt(&h.opts)
	}
	if abs, err := filepath.Abs(path); err == nil && h.opts.file == nil {
		// The plugin resolves paths, and a person reads them in errors.
		// The name of a file open already (WithFile) is not resolved, but
		// shown as the caller has it ("pipe:[1234]" is no relative path).
		h.path = abs
	}
	return h
}

// Path returns the absolute path of the lock file.
func (h *Handle) Path() string { return h.path }

// Lock takes an exclusive lock, waiting until it is free or ctx ends:
// ErrTimeout after ctx's deadline, ErrCanceled on cancel, whatever it is
// waiting for, the start of the backend's plugin included. The lock is
// held until Unlock, Close, Detach or the process's exit, even if the
// Handle is dropped.
func (h *Handle) Lock(ctx context.Context) error {
	return h.acquire(ctx, Exclusive, true)
}

// RLock takes a shared lock, waiting like Lock.
func (h *Handle) RLock(ctx context.Context) error {
	return h.acquire(ctx, Shared, true)
}

// TryLock takes an exclusive lock if it is free, without waiting. It
// reports false, and no error, when someone else holds the lock. A lock
// it takes is held as Lock's is: until Unlock, Close, Detach or the
// process's exit, even if the Handle is dropped.
func (h *Handle) TryLock() (bool, error) {
	return tried(h.acquire(context.Background(), Exclusive, false))
}

// TryRLock takes a shared lock if no one holds an exclusive one, without
// waiting, like TryLock.
func (h *Handle) TryRLock() (bool, error) {
	return tried(h.acquire(context.Background(), Shared, false))
}

func tried(err error) (bool, error) {
	if errors.Is(err, backend.ErrBusy) {
		return false, nil
	}
	return err == nil, err
}

// AcquireLock is the seed's acquire_lock(wait, timeout): an exclusive
// lock, without waiting unless wait is set, and then for at most timeout
// (zero: as long as it takes). It reports false, and no error, when the
// lock was held or the timeout passed.
func (h *Handle) AcquireLock(wait bool, timeout time.Duration) (bool, error) {
	if !wait {
		return h.TryLock()
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := h.Lock(ctx)
	if errors.Is(err, backend.ErrTimeout) {
		return false, nil
	}
	return err == nil, err
}

// ReleaseLock is the seed's release_lock(): Unlock.
func (h *Handle) ReleaseLock() error { return h.Unlock() }

func (h *Handle) errorf(op string, err error) error {
	if errors.Is(err, backend.ErrConfig) {
		// The backend's settings are wrong, whatever the lock: naming the
		// lock (a path made absolute, for an etcd name) would mislead.
		return backend.Errorf(op, "", h.name, err)
	}
	return backend.Errorf(op, h.path, h.name, err)
}

func (h *Handle) acquire(ctx context.Context, mode Mode, wait bool) error {
	if h.mu.lockContext(ctx) != nil {
		return h.errorf("lock", backend.WaitError(ctx))
	}
	var refused error
	switch h.state {
	case closed:
		refused = h.errorf("lock", ErrClosed)
	case locking:
		refused = h.errorf("lock", backend.Invalidf("another lock on this handle is already in progress"))
	case locked:
		switch {
		case isClosed(h.lock.Lost):
			// The lock this handle held is gone (its loss was announced on
			// Lost): this Lock takes a new one rather than answer for a lock
			// that nobody holds.
			_ = h.releaseLocked()
		case h.lock.mode == mode:
			h.mu.Unlock()
			return nil
		default:
			refused = h.errorf("lock", backend.Invalidf("the handle already holds a %s lock; unlock it first", h.lock.mode))
		}
	}
	if refused != nil {
		h.mu.Unlock()
		return refused
	}
	if ctx.Err() != nil {
		h.mu.Unlock()
		return h.errorf("lock", backend.WaitError(ctx))
	}
	h.state = locking
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	h.stopWait = stop
	mgr, plugin, err := h.backendLocked(ctx)
	// The Handle can keep a lock that is a locked file: then the kernel
	// holds it on the Handle's behalf, and no plugin can lose it. Not a
	// lock on the caller's file (WithFile), whose release must unlock the
	// file, which closing a copy of it would not.
	req := backend.Request{
		Path: h.path, Name: h.given, Mode: mode, Range: h.opts.rng, Wait: wait,
		FileMode: h.opts.fileMode, RemoveOnRelease: h.opts.remove, HandOver: h.opts.file == nil,
	}
	if h.opts.file != nil {
		req.FD = pluginhost.FirstExtraFD
	}
	h.mu.Unlock()

	var held backend.Held
	for attempt := 1; ; attempt++ {
		if err == nil {
			held, err = mgr.Acquire(ctx, req)
		}
		if !retryOnNewPlugin(ctx, err, plugin, attempt) {
			break
		}
		h.mu.Lock()
		if h.state == closed {
			h.mu.Unlock()
			break
		}
		mgr, plugin, err = h.backendLocked(ctx)
		h.mu.Unlock()
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopWait = nil
	if h.state == closed {
		// Close ran while we waited; give back whatever we got.
		if err == nil {
			_ = giveBack(mgr, held)
		}
		close(h.closeDone)
		return h.errorf("lock", ErrClosed)
	}
	if err != nil {
		h.state = unlocked
		return h.errorf("lock", err)
	}
	h.state, h.lock = locked, hold(held, mode, mgr, plugin)
	return nil
}

// sharedPluginAttempts bounds how many shared plugins one Lock tries
// when each dies under it.
const sharedPluginAttempts = 3

// retryOnNewPlugin says whether a Lock that failed with err, on attempt
// number attempt, is tried again on a new plugin: when the user's shared
// plugin it waited on died (killed, or exited idle as this host
// connected). No lock was granted to this host, or its answer would have
// come before the end of the session; and a shared plugin holds nothing
// of this host's, so a new one serves it as well.
func retryOnNewPlugin(ctx context.Context, err error, p *pluginhost.Plugin, attempt int) bool {
	return err != nil && p != nil && p.Shared() && attempt < sharedPluginAttempts &&
		ctx.Err() == nil && errors.Is(err, pluginrpc.ErrPluginExited)
}

// backendLocked returns the backend to lock through, and its plugin if
// it is one, starting the plugin on first use, or afresh if the one used
// before has died. h.mu is held, but not while a plugin starts, so that
// Close and every other method go on meanwhile; it is held again on
// return. A Handle closed meanwhile is ErrClosed, and keeps no plugin.
func (h *Handle) backendLocked(ctx context.Context) (backend.LockMgr, *pluginhost.Plugin, error) {
	if err := h.opts.check(); err != nil {
		return nil, nil, err
	}
	if h.opts.impl != nil {
		if h.mgr == nil {
			info, err := h.opts.impl.Describe(ctx)
			if err != nil {
				return nil, nil, err
			}
			h.mgr, h.name = h.opts.impl, info.Name
		}
		return h.mgr, nil, nil
	}
	if live := h.livePluginLocked(); live != nil {
		return live, live, nil
	}
	cfg := h.opts.cfg
	if cfg == nil {
		var err error
		if cfg, err = loadDefaultConfig(); err != nil {
			return nil, nil, err
		}
	}
	h.name = resolveBackend(&h.opts, cfg, h.path)
	if h.opts.fileMode == 0 {
		h.opts.fileMode = cfg.LockFileMode
	}
	host, err := h.opts.hostFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	name := h.name
	h.mu.Unlock()
	p, err := host.GetContext(ctx, name)
	h.mu.Lock()
	switch {
	case err != nil:
		return nil, nil, err
	case h.state == closed:
		h.giveUp(p)
		return nil, nil, ErrClosed
	}
	if live := h.livePluginLocked(); live != nil {
		// Another call on this Handle started one meanwhile.
		h.giveUp(p)
		return live, live, nil
	}
	h.plugin, h.mgr = p, p
	return p, p, nil
}

// giveUp gives up the Handle's use of plugin p. A plugin that was handed
// the caller's file (WithFile) holds a copy of it, which may keep a lock on
// it alive after the caller has closed its own: the last use waits until
// that plugin has exited.
func (h *Handle) giveUp(p *pluginhost.Plugin) {
	if h.opts.file != nil {
		p.DoneAndWait()
		return
	}
	p.Done()
}

// livePluginLocked returns the Handle's plugin if it has one that lives,
// and gives up one that has died. h.mu is held.
func (h *Handle) livePluginLocked() *pluginhost.Plugin {
	if h.plugin == nil {
		return nil
	}
	select {
	case <-h.plugin.Dead():
		h.giveUp(h.plugin)
		h.plugin, h.mgr = nil, nil
		return nil
	default:
		return h.plugin
	}
}

// Unlock releases the lock. It is ErrNotLocked when none is held, and
// ErrLost when the lock was lost while held (the backend died); either
// way no lock is held afterwards.
func (h *Handle) Unlock() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != locked {
		return h.errorf("unlock", backend.ErrNotLocked)
	}
	return h.releaseLocked()
}

func (h *Handle) releaseLocked() error {
	l := h.lock
	h.state, h.lock = unlocked, nil
	wasLost := isClosed(l.Lost)
	err := l.letGo()
	if wasLost {
		return h.errorf("unlock", backend.ErrLost)
	}
	if err != nil {
		return h.errorf("unlock", err)
	}
	return nil
}

// Detach hands the caller the lock the handle holds, as the locked file
// itself, and leaves the handle holding nothing: the lock now lasts as
// long as that file, and every copy of it the caller gives away, stays
// open. It is how a command inherits a lock, as under flock(1): pass the
// file to the child, close the caller's copy, and the lock ends when the
// child and whatever inherited from it have exited. The file is the
// caller's to keep: once nothing refers to it, the garbage collector
// closes it, and the lock ends. Only a lock that is a locked file can be
// detached (the flock and ofd backends'); any other is
// ErrUnsupported, and stays held. A lock on the caller's own file
// (WithFile) is left with it: Detach returns that file, and the lock
// lasts as long as it, or a copy of it, stays open.
func (h *Handle) Detach() (*os.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != locked {
		return nil, h.errorf("detach", backend.ErrNotLocked)
	}
	if h.opts.file != nil {
		// The plugin that took the lock keeps a copy of the file until
		// Close ends it (giveUp), and nothing is released here.
		h.lock.forget()
		h.state, h.lock = unlocked, nil
		return h.opts.file, nil
	}
	if h.lock.File == nil {
		return nil, h.errorf("detach", backend.Unsupportedf("detaching a lock that its backend holds (only a lock that is a locked file can be)"))
	}
	f := h.lock.detach()
	h.state, h.lock = unlocked, nil
	return f, nil
}

// Lifeline hands the caller a copy of the keeper of the lock the handle
// holds (posix, etcd): while any process holds a copy, the plugin keeps
// that lock, and no other, even after this process is killed. It is how a
// command inherits such a lock (lockmgr run): pass the copy to the child
// and close it here. A lock has a keeper only if the Handle was made
// WithLifeline (or with a WithHost host made with
// pluginhost.Options.ShareLifeline); any other ends with this process,
// and its Lifeline is ErrUnsupported. A lock that is a locked file has no
// keeper: Detach it instead.
func (h *Handle) Lifeline() (*os.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.state != locked:
		return nil, h.errorf("lifeline", backend.ErrNotLocked)
	case h.lock.File != nil:
		return nil, h.errorf("lifeline", backend.Unsupportedf("a lock that is a locked file has no lifeline: detach it"))
	case h.lock.Keeper == nil:
		return nil, h.errorf("lifeline", backend.Unsupportedf("this lock ends with its host whatever holds its lifeline (the Handle was made without WithLifeline)"))
	}
	f, err := dupCloexec(h.lock.Keeper)
	if err != nil {
		return nil, h.errorf("lifeline", err)
	}
	return f, nil
}

func dupCloexec(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// LostCause says why the lock the handle holds was lost, once Lost has
// fired: ErrPluginExited when the plugin that held it exited, else ErrLost,
// the backend's own report (an etcd lease that expired while the cluster
// was out of reach). It is nil while the lock is held and not lost, and
// when none is held.
func (h *Handle) LostCause() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != locked || !isClosed(h.lock.Lost) {
		return nil
	}
	if h.plugin != nil && isClosed(h.plugin.Dead()) {
		return ErrPluginExited
	}
	return ErrLost
}

func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Lost returns a channel that is closed if the lock now held is lost
// before Unlock: its plugin died, or its lease expired. When no lock is
// held it returns nil, a channel that never fires.
func (h *Handle) Lost() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != locked {
		return nil
	}
	if h.lock.Lost == nil {
		return make(chan struct{}) // this backend never loses a lock it holds
	}
	return h.lock.Lost
}

// FencingToken returns the held lock's fencing token, or 0 when the
// backend gives none (see backend.Held).
func (h *Handle) FencingToken() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lock == nil {
		return 0
	}
	return h.lock.FencingToken
}

// Warnings returns the backend's caveats about the held lock.
func (h *Handle) Warnings() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lock == nil {
		return nil
	}
	return h.lock.Warnings
}

// Backend returns the name of the backend the handle locks through, once
// a lock has been tried; "" before.
func (h *Handle) Backend() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.name
}

// Info describes the backend the handle locks through, starting its
// plugin if need be.
func (h *Handle) Info(ctx context.Context) (backend.Info, error) {
	mgr, err := h.use(ctx)
	if err != nil {
		return backend.Info{}, h.errorf("describe", err)
	}
	info, err := mgr.Describe(ctx)
	if err != nil {
		return backend.Info{}, h.errorf("describe", err)
	}
	return info, nil
}

// Status reports who holds and who waits for the lock file, as the
// handle's backend sees it.
func (h *Handle) Status(ctx context.Context) (backend.Status, error) {
	mgr, err := h.use(ctx)
	if err != nil {
		return backend.Status{}, h.errorf("inspect", err)
	}
	st, err := mgr.Inspect(ctx, h.LockName(ctx))
	if err != nil {
		return backend.Status{}, h.errorf("inspect", err)
	}
	return st, nil
}

// LockName returns what the backend locks: for a distributed backend
// (one that locks names, such as etcd) the name as it was given to New,
// which means the same on every host; for a file backend, Path. Before
// the backend is known, and if it cannot be asked, it is Path.
func (h *Handle) LockName(ctx context.Context) string {
	if h.mu.lockContext(ctx) != nil {
		return h.path
	}
	name, mgr := h.name, h.mgr
	h.mu.Unlock()
	switch name {
	case "", config.BackendFlock, config.BackendPOSIX, config.BackendOFD:
		// Known not to be distributed: no need to ask.
		return h.path
	}
	if mgr == nil {
		return h.path
	}
	info, err := mgr.Describe(ctx)
	if err != nil || !info.Capabilities.Distributed {
		return h.path
	}
	return h.given
}

func (h *Handle) use(ctx context.Context) (backend.LockMgr, error) {
	if h.mu.lockContext(ctx) != nil {
		return nil, backend.WaitError(ctx)
	}
	defer h.mu.Unlock()
	if h.state == closed {
		return nil, ErrClosed
	}
	mgr, _, err := h.backendLocked(ctx)
	return mgr, err
}

// Close releases the lock if one is held, cancels a wait in progress,
// and gives up the handle's use of its plugin; the plugin stops when its
// last handle closes (with WithFile, Close waits until it has exited).
// Close is idempotent.
func (h *Handle) Close() error {
	h.mu.Lock()
	var err error
	switch h.state {
	case closed:
		h.mu.Unlock()
		return nil
	case locked:
		err = h.releaseLocked()
	case locking:
		// Let the acquire give back whatever it gets before the plugin goes.
		h.closeDone = make(chan struct{})
		h.stopWait()
		h.state = closed
		done := h.closeDone
		h.mu.Unlock()
		<-done
		h.mu.Lock()
	}
	h.state = closed
	p := h.plugin
	h.plugin, h.mgr = nil, nil
	h.mu.Unlock()
	if p != nil {
		h.giveUp(p)
	}
	return err
}

// mutex guards a Handle. A method with a context gives up waiting for it
// when the context ends, so that every call honours its context from its
// first instruction, even while another holds the Handle through a round
// trip to a plugin that does not answer (an Unlock of a posix or etcd
// lock).
type mutex chan struct{}

func (m mutex) Lock()   { m <- struct{}{} }
func (m mutex) Unlock() { <-m }

func (m mutex) lockContext(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	select {
	case m <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
