package lockmgr_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
)

// Generous bounds: these tests assert what happens, not how fast.
const (
	promptly = 10 * time.Second
	shortly  = 200 * time.Millisecond
)

// newHandle returns a Handle on path through a fresh in-process flock
// backend, closed when the test ends.
func newHandle(t *testing.T, path string, opts ...lockmgr.Option) *lockmgr.Handle {
	t.Helper()
	h := lockmgr.New(path, append([]lockmgr.Option{lockmgr.WithLockMgr(flockBackend())}, opts...)...)
	t.Cleanup(func() { h.Close() })
	return h
}

func lockPath(t *testing.T) string { return filepath.Join(t.TempDir(), "lock") }

func try(t *testing.T, what string, ok bool, err error, want bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if ok != want {
		t.Fatalf("%s = %v, want %v", what, ok, want)
	}
}

// named insists that err names the lock file and the backend.
func named(t *testing.T, err error, path string) {
	t.Helper()
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "(test-flock)") {
		t.Fatalf("error %q does not name the path %s and the backend test-flock", msg, path)
	}
}

func TestAcquireLockWithoutWaiting(t *testing.T) {
	p := lockPath(t)
	a, b := newHandle(t, p), newHandle(t, p)
	ok, err := a.AcquireLock(false, 0)
	try(t, "a.AcquireLock(false, 0)", ok, err, true)
	ok, err = b.AcquireLock(false, 0)
	try(t, "b.AcquireLock(false, 0) while a holds", ok, err, false)
	if err := a.ReleaseLock(); err != nil {
		t.Fatalf("a.ReleaseLock: %v", err)
	}
	ok, err = b.AcquireLock(false, 0)
	try(t, "b.AcquireLock(false, 0) after a.ReleaseLock", ok, err, true)
}

func TestAcquireLockTimeout(t *testing.T) {
	p := lockPath(t)
	a, b := newHandle(t, p), newHandle(t, p)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ok, err := b.AcquireLock(true, shortly)
	try(t, "AcquireLock(true, 200ms) while held", ok, err, false)
	if elapsed := time.Since(start); elapsed < shortly {
		t.Fatalf("AcquireLock gave up after %v, before its %v timeout", elapsed, shortly)
	}
	// The timed-out wait left b usable, and unlocked.
	if err := b.Unlock(); !errors.Is(err, lockmgr.ErrNotLocked) {
		t.Fatalf("Unlock after a timed-out AcquireLock: %v, want ErrNotLocked", err)
	}
}

func TestAcquireLockWaits(t *testing.T) {
	p := lockPath(t)
	a, b := newHandle(t, p), newHandle(t, p)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	type result struct {
		ok  bool
		err error
	}
	got := make(chan result, 1)
	go func() {
		ok, err := b.AcquireLock(true, 0) // no timeout: as long as it takes
		got <- result{ok, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("AcquireLock(true, 0) returned %v, %v while the lock was held", r.ok, r.err)
	case <-time.After(shortly):
	}
	if err := a.ReleaseLock(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		try(t, "AcquireLock(true, 0) after release", r.ok, r.err, true)
	case <-time.After(promptly):
		t.Fatalf("AcquireLock(true, 0) still waiting %v after release", promptly)
	}
}

func TestReleaseLock(t *testing.T) {
	p := lockPath(t)
	h := newHandle(t, p)
	if err := h.ReleaseLock(); !errors.Is(err, lockmgr.ErrNotLocked) {
		t.Fatalf("ReleaseLock before any lock: %v, want ErrNotLocked", err)
	}
	ok, err := h.AcquireLock(false, 0)
	try(t, "AcquireLock", ok, err, true)
	if err := h.ReleaseLock(); err != nil {
		t.Fatalf("ReleaseLock: %v", err)
	}
	err = h.ReleaseLock()
	if !errors.Is(err, lockmgr.ErrNotLocked) {
		t.Fatalf("second ReleaseLock: %v, want ErrNotLocked", err)
	}
	named(t, err, p)
}

func TestLockOnHeldHandle(t *testing.T) {
	p := lockPath(t)
	h := newHandle(t, p)
	if err := h.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Asking again for what is held is a no-op.
	if err := h.Lock(context.Background()); err != nil {
		t.Fatalf("Lock on a handle holding an exclusive lock: %v, want nil", err)
	}
	ok, err := h.TryLock()
	try(t, "TryLock on a handle holding an exclusive lock", ok, err, true)

	// The other mode would need a conversion, which flock(2) does not
	// make atomically: refused rather than done behind the caller's back.
	err = h.RLock(context.Background())
	if !errors.Is(err, lockmgr.ErrInvalid) {
		t.Fatalf("RLock on a handle holding an exclusive lock: %v, want ErrInvalid", err)
	}
	named(t, err, p)
	if ok, err := h.TryRLock(); ok || !errors.Is(err, lockmgr.ErrInvalid) {
		t.Fatalf("TryRLock on a handle holding an exclusive lock: %v, %v; want false, ErrInvalid", ok, err)
	}
	// And the refusal did not drop the lock.
	ok, err = newHandle(t, p).TryLock()
	try(t, "another handle's TryLock", ok, err, false)

	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := h.RLock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.RLock(context.Background()); err != nil {
		t.Fatalf("RLock on a handle holding a shared lock: %v, want nil", err)
	}
	if err := h.Lock(context.Background()); !errors.Is(err, lockmgr.ErrInvalid) {
		t.Fatalf("Lock on a handle holding a shared lock: %v, want ErrInvalid", err)
	}
}

func TestSharedLocks(t *testing.T) {
	p := lockPath(t)
	a, b, c := newHandle(t, p), newHandle(t, p), newHandle(t, p)
	ok, err := a.TryRLock()
	try(t, "a.TryRLock", ok, err, true)
	ok, err = b.TryRLock()
	try(t, "b.TryRLock beside a shared lock", ok, err, true)
	ok, err = c.TryLock()
	try(t, "c.TryLock beside shared locks", ok, err, false)
	a.Unlock()
	b.Unlock()
	ok, err = c.TryLock()
	try(t, "c.TryLock once the shared locks are gone", ok, err, true)
}

func TestLockWhileLocking(t *testing.T) {
	p := lockPath(t)
	holder, h := newHandle(t, p), newHandle(t, p)
	if err := holder.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waited := make(chan error, 1)
	go func() {
		for {
			err := h.Lock(ctx)
			if errors.Is(err, lockmgr.ErrInvalid) && strings.Contains(err.Error(), "in progress") {
				// The probe below was in flight: try again.
				time.Sleep(time.Millisecond)
				continue
			}
			waited <- err
			return
		}
	}()
	// Until the waiter is in flight, a TryLock simply reports busy.
	deadline := time.Now().Add(promptly)
	for {
		_, err := h.TryLock()
		if errors.Is(err, lockmgr.ErrInvalid) {
			named(t, err, p)
			break
		}
		if err != nil {
			t.Fatalf("TryLock beside a waiting Lock: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("TryLock beside a waiting Lock never said a lock was in progress")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-waited:
		if !errors.Is(err, lockmgr.ErrCanceled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled Lock: %v, want ErrCanceled and context.Canceled", err)
		}
		named(t, err, p)
	case <-time.After(promptly):
		t.Fatal("Lock still waiting after its context was canceled")
	}
}

func TestLockTimeoutError(t *testing.T) {
	p := lockPath(t)
	a, b := newHandle(t, p), newHandle(t, p)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shortly)
	defer cancel()
	err := b.Lock(ctx)
	if !errors.Is(err, lockmgr.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock past its deadline: %v, want ErrTimeout and context.DeadlineExceeded", err)
	}
	named(t, err, p)
	var e *lockmgr.Error
	if !errors.As(err, &e) || e.Op != "lock" || e.Path != p || e.Backend != "test-flock" {
		t.Fatalf("Lock past its deadline: %#v, want a *lockmgr.Error with op lock, the path and the backend", err)
	}
}

func TestOpenErrorsNamePathAndBackend(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no-such-dir", "lock")
	_, err := newHandle(t, p).TryLock()
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("TryLock in a missing directory: %v, want ErrNotExist", err)
	}
	named(t, err, p)
}

func TestUseAfterClose(t *testing.T) {
	p := lockPath(t)
	h := newHandle(t, p)
	if err := h.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close released the lock.
	ok, err := newHandle(t, p).TryLock()
	try(t, "TryLock after the holder closed", ok, err, true)

	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	err = h.Lock(context.Background())
	if !errors.Is(err, lockmgr.ErrClosed) || !errors.Is(err, lockmgr.ErrInvalid) {
		t.Fatalf("Lock after Close: %v, want ErrClosed (an ErrInvalid)", err)
	}
	named(t, err, p)
	if ok, err := h.TryLock(); ok || !errors.Is(err, lockmgr.ErrClosed) {
		t.Fatalf("TryLock after Close: %v, %v; want false, ErrClosed", ok, err)
	}
	if ok, err := h.AcquireLock(true, shortly); ok || !errors.Is(err, lockmgr.ErrClosed) {
		t.Fatalf("AcquireLock after Close: %v, %v; want false, ErrClosed", ok, err)
	}
	if err := h.Unlock(); !errors.Is(err, lockmgr.ErrNotLocked) {
		t.Fatalf("Unlock after Close: %v, want ErrNotLocked", err)
	}
	if _, err := h.Info(context.Background()); !errors.Is(err, lockmgr.ErrClosed) {
		t.Fatalf("Info after Close: %v, want ErrClosed", err)
	}
	if _, err := h.Status(context.Background()); !errors.Is(err, lockmgr.ErrClosed) {
		t.Fatalf("Status after Close: %v, want ErrClosed", err)
	}
}

func TestCloseCancelsWait(t *testing.T) {
	p := lockPath(t)
	holder, h := newHandle(t, p), newHandle(t, p)
	if err := holder.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- h.Lock(context.Background()) }()
	time.Sleep(shortly)
	if err := h.Close(); err != nil {
		t.Fatalf("Close during a wait: %v", err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, lockmgr.ErrClosed) {
			t.Fatalf("Lock on a handle closed while it waited: %v, want ErrClosed", err)
		}
	case <-time.After(promptly):
		t.Fatal("Close did not end the wait")
	}
	holder.Unlock()
	ok, err := newHandle(t, p).TryLock()
	try(t, "TryLock after the closed waiter", ok, err, true)
}

func TestLost(t *testing.T) {
	h := newHandle(t, lockPath(t))
	if ch := h.Lost(); ch != nil {
		t.Fatal("Lost() is not nil before any lock")
	}
	if err := h.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	lost := h.Lost()
	if lost == nil {
		t.Fatal("Lost() is nil while a lock is held")
	}
	select {
	case <-lost:
		t.Fatal("Lost() fired for a lock this backend never loses")
	default:
	}
	h.Unlock()
	if ch := h.Lost(); ch != nil {
		t.Fatal("Lost() is not nil after Unlock")
	}
}

func TestBackendAndPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	h := newHandle(t, "relative.lock")
	if want := filepath.Join(dir, "relative.lock"); h.Path() != want {
		t.Fatalf("Path() = %q, want the absolute %q", h.Path(), want)
	}
	if name := h.Backend(); name != "" {
		t.Fatalf("Backend() before any lock = %q, want \"\"", name)
	}
	ok, err := h.TryLock()
	try(t, "TryLock", ok, err, true)
	if name := h.Backend(); name != "test-flock" {
		t.Fatalf("Backend() = %q, want test-flock", name)
	}
	info, err := h.Info(context.Background())
	if err != nil || info.Name != "test-flock" {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	st, err := h.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if !st.Locked() || st.Holders[0].PID != os.Getpid() || st.Holders[0].Kind != "flock" || st.Holders[0].Mode != backend.Exclusive {
		t.Fatalf("Status while held = %+v, want an exclusive flock held by this process (%d)", st, os.Getpid())
	}
}

func TestRemoveOnRelease(t *testing.T) {
	p := lockPath(t)
	h := newHandle(t, p, lockmgr.WithRemoveOnRelease(), lockmgr.WithFileMode(0o600))
	if err := h.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatalf("lock file while held: %v", err)
	}
	if st.Mode().Perm()&^0o600 != 0 {
		t.Fatalf("lock file mode %#o, want at most 0600", st.Mode().Perm())
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after Unlock with remove-on-release: %v, want ErrNotExist", err)
	}
}

func TestRangeOnFlockUnsupported(t *testing.T) {
	p := lockPath(t)
	_, err := newHandle(t, p, lockmgr.WithRange(0, 10)).TryLock()
	if !errors.Is(err, lockmgr.ErrUnsupported) {
		t.Fatalf("byte range on a flock backend: %v, want ErrUnsupported", err)
	}
	named(t, err, p)
}
