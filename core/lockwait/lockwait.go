// Package lockwait lets a backend wait for a held lock without blocking a
// thread in the kernel and without polling at a coarse fixed delay.
//
// A plugin's flock and OFD waiters block in the kernel instead
// (core/kernelwait), which can interrupt the lock call because the plugin
// owns its signals. lockwait serves every other waiter: POSIX locks (a
// blocked F_SETLKW is the process's, not the waiter's), backends running
// in their user's process (whose signals are not the library's to
// change), and plugin waiters beyond kernelwait.MaxWaiters. A waiter makes
// non-blocking attempts and sleeps between them until one of these wakes
// it:
//
//   - an inotify event on the lock file's inode. A holder that exits or
//     releases by closing its descriptor closes the file, which fires
//     IN_CLOSE_WRITE or IN_CLOSE_NOWRITE; an unlink fires IN_ATTRIB, a
//     rename IN_MOVE_SELF.
//   - Wake, called by a backend in the same process when it releases a lock,
//     since a release that closes nothing (a POSIX unlock that must keep
//     the descriptor open) fires no event.
//   - a capped exponential backoff, for releases that close nothing in
//     another process, and for filesystems whose remote changes produce no
//     local inotify events (NFS).
//
// One inotify instance serves the whole process: the kernel allows few
// instances per user (128 by default), and a plugin may have thousands of
// waiters.
package lockwait

import (
	"context"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/lockmgr/lockmgr/core/lockfile"
	"golang.org/x/sys/unix"
)

// Backoff bounds: the first sleep without an event, and the longest.
// The cap bounds how late a waiter notices a release that fired no event.
const (
	FirstDelay = 1 * time.Millisecond
	MaxDelay   = 32 * time.Millisecond
)

// events are the inotify events that may mean a lock was released.
const events = unix.IN_CLOSE_WRITE | unix.IN_CLOSE_NOWRITE | unix.IN_ATTRIB |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// A Watch is one waiter's subscription to changes of one lock file.
// Subscribe before the first attempt, so that a release between the
// attempt and the sleep is not missed.
type Watch struct {
	key   lockfile.Key
	wd    int32 // -1 without inotify
	ch    chan struct{}
	delay time.Duration
}

type watched struct {
	subs map[*Watch]struct{}
}

// hub is the process's one inotify instance and its subscribers.
type hub struct {
	once    sync.Once
	ino     *os.File // nil when inotify is unavailable
	mu      sync.Mutex
	byWD    map[int32]*watched
	byKey   map[lockfile.Key]map[*Watch]struct{}
	initErr error
}

var theHub = hub{
	byWD:  make(map[int32]*watched),
	byKey: make(map[lockfile.Key]map[*Watch]struct{}),
}

func (h *hub) start() {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		h.initErr = err
		return
	}
	// A non-blocking descriptor joins Go's poller, so the reader below
	// parks a goroutine, not a thread.
	h.ino = os.NewFile(uintptr(fd), "inotify")
	go h.read()
}

func (h *hub) read() {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := h.ino.Read(buf)
		if err != nil {
			// The instance is never closed, so this is not expected; the
			// waiters still have their backoff.
			return
		}
		h.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			w := h.byWD[ev.Wd]
			if w == nil {
				continue
			}
			for s := range w.subs {
				s.signal()
			}
			if ev.Mask&unix.IN_IGNORED != 0 {
				// The kernel dropped the watch (the inode is gone); the
				// subscribers keep their backoff.
				for s := range w.subs {
					s.wd = -1
				}
				delete(h.byWD, ev.Wd)
			}
		}
		h.mu.Unlock()
	}
}

// New subscribes to changes of the lock file open as f, whose identity is
// key. It never fails: without inotify the watch wakes on Wake and on its
// backoff alone.
func New(f *os.File, key lockfile.Key) *Watch {
	h := &theHub
	h.once.Do(h.start)
	w := &Watch{key: key, wd: -1, ch: make(chan struct{}, 1), delay: FirstDelay}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byKey[key] == nil {
		h.byKey[key] = make(map[*Watch]struct{})
	}
	h.byKey[key][w] = struct{}{}
	if h.ino != nil {
		// Watching through /proc/self/fd names exactly the inode open as f,
		// even if the path has been replaced since it was opened.
		wd, err := unix.InotifyAddWatch(int(h.ino.Fd()), "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), events)
		if err == nil {
			w.wd = int32(wd)
			if h.byWD[w.wd] == nil {
				h.byWD[w.wd] = &watched{subs: make(map[*Watch]struct{})}
			}
			h.byWD[w.wd].subs[w] = struct{}{}
		}
	}
	return w
}

func (w *Watch) signal() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// Next sleeps until the lock file may have changed hands or the backoff
// delay passes, then returns nil so that the caller tries again; it
// returns ctx's error once ctx ends.
func (w *Watch) Next(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(w.delay)
	defer t.Stop()
	select {
	case <-w.ch:
		w.delay = FirstDelay
		return nil
	case <-t.C:
		w.delay = min(2*w.delay, MaxDelay)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the subscription.
func (w *Watch) Close() {
	h := &theHub
	h.mu.Lock()
	defer h.mu.Unlock()
	if subs := h.byKey[w.key]; subs != nil {
		delete(subs, w)
		if len(subs) == 0 {
			delete(h.byKey, w.key)
		}
	}
	if w.wd < 0 {
		return
	}
	if ws := h.byWD[w.wd]; ws != nil {
		delete(ws.subs, w)
		if len(ws.subs) == 0 {
			delete(h.byWD, w.wd)
			_, _ = unix.InotifyRmWatch(int(h.ino.Fd()), uint32(w.wd))
		}
	}
	w.wd = -1
}

// Wake wakes every waiter in this process on the file whose identity is
// key. Backends call it after each release.
func Wake(key lockfile.Key) {
	h := &theHub
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.byKey[key] {
		w.signal()
	}
}

// Until calls attempt until it reports done or fails, sleeping on w
// between attempts; it returns ctx's error once ctx ends.
func (w *Watch) Until(ctx context.Context, attempt func() (done bool, err error)) error {
	for {
		done, err := attempt()
		if done || err != nil {
			return err
		}
		if err := w.Next(ctx); err != nil {
			return err
		}
	}
}
