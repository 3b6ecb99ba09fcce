package lockmgr_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
)

// flockBackend is a flock(2) backend built in-process, so that the
// examples and tests run without a plugin binary (core does not import
// the backends; a program normally names one with WithBackend instead).
func flockBackend() backend.LockMgr {
	mech := fdlock.Flock("test-flock", "")
	// The backend keeps each lock, and the Handle gives it back through
	// Release, as with the posix and etcd backends, rather than take the
	// locked file and close it itself: that is the path these tests were
	// written for, and the one every backend can take.
	mech.Info.Capabilities.HandsOver = false
	return fdlock.New(mech)
}

// exampleDir makes a directory for an example's lock file.
func exampleDir() string {
	dir, err := os.MkdirTemp("", "lockmgr-example-")
	if err != nil {
		panic(err)
	}
	return dir
}

func ExampleHandle_Lock() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "backup.lock")

	h := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer h.Close()
	// Wait at most a minute for whoever holds the lock.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Lock(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("locked through", h.Backend())

	// Any other holder, in this process or another, is now refused.
	other := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer other.Close()
	ok, err := other.TryLock()
	fmt.Println("another handle got it:", ok, err)

	if err := h.Unlock(); err != nil {
		fmt.Println(err)
	}
	ok, err = other.TryLock()
	fmt.Println("after Unlock, the other handle got it:", ok, err)
	// Output:
	// locked through test-flock
	// another handle got it: false <nil>
	// after Unlock, the other handle got it: true <nil>
}

func ExampleHandle_TryLock() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "cron.lock")

	first := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer first.Close()
	second := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer second.Close()

	for _, h := range []*lockmgr.Handle{first, second} {
		ok, err := h.TryLock()
		switch {
		case err != nil:
			fmt.Println("error:", err)
		case ok:
			fmt.Println("got the lock: run the job")
		default:
			fmt.Println("busy: another run is in progress, skip this one")
		}
	}
	// Output:
	// got the lock: run the job
	// busy: another run is in progress, skip this one
}

func ExampleHandle_AcquireLock() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "job.lock")

	holder := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer holder.Close()
	if ok, err := holder.AcquireLock(false, 0); !ok {
		fmt.Println("holder:", ok, err)
		return
	}

	h := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer h.Close()
	// Without waiting: false at once while another holds it.
	ok, err := h.AcquireLock(false, 0)
	fmt.Println("without waiting:", ok, err)
	// Waiting, with a timeout: false, and no error, once it passes.
	ok, err = h.AcquireLock(true, 100*time.Millisecond)
	fmt.Println("waiting 100ms:", ok, err)

	if err := holder.ReleaseLock(); err != nil {
		fmt.Println(err)
	}
	ok, err = h.AcquireLock(true, time.Minute)
	fmt.Println("after the holder let go:", ok, err)
	fmt.Println(h.ReleaseLock())
	// Output:
	// without waiting: false <nil>
	// waiting 100ms: false <nil>
	// after the holder let go: true <nil>
	// <nil>
}

func ExampleHandle_RLock() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data.lock")
	ctx := context.Background()

	// Readers share the lock...
	reader1 := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer reader1.Close()
	reader2 := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer reader2.Close()
	fmt.Println("reader 1:", reader1.RLock(ctx))
	fmt.Println("reader 2:", reader2.RLock(ctx))

	// ...and a writer waits until the last of them lets go.
	writer := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer writer.Close()
	ok, err := writer.TryLock()
	fmt.Println("writer beside two readers:", ok, err)
	reader1.Unlock()
	ok, err = writer.TryLock()
	fmt.Println("writer beside one reader:", ok, err)
	reader2.Unlock()
	ok, err = writer.TryLock()
	fmt.Println("writer alone:", ok, err)
	// Output:
	// reader 1: <nil>
	// reader 2: <nil>
	// writer beside two readers: false <nil>
	// writer beside one reader: false <nil>
	// writer alone: true <nil>
}

// leasedBackend stands for a backend that can lose a lock it granted, as
// every plugin can (its process dies) and a lease-based backend does when
// the lease runs out: Expire closes the Lost channel of its latest lock.
type leasedBackend struct {
	backend.LockMgr
	lost chan struct{}
}

func (b *leasedBackend) Acquire(ctx context.Context, req backend.Request) (backend.Held, error) {
	held, err := b.LockMgr.Acquire(ctx, req)
	b.lost = make(chan struct{})
	held.Lost = b.lost
	return held, err
}

func (b *leasedBackend) Expire() { close(b.lost) }

func ExampleHandle_Lost() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	lease := &leasedBackend{LockMgr: flockBackend()}
	h := lockmgr.New(filepath.Join(dir, "job.lock"), lockmgr.WithLockMgr(lease))
	defer h.Close()
	if err := h.Lock(context.Background()); err != nil {
		fmt.Println(err)
		return
	}

	// Work under the lock, and stop as soon as it is gone: through a
	// plugin, that is when the plugin process dies. Here the lease ends.
	lease.Expire()
	select {
	case <-h.Lost():
		fmt.Println("lock lost: stop writing")
	case <-time.After(time.Minute):
		fmt.Println("the lock was never lost")
	}

	// Unlock still ends the handle's hold, and says the lock was lost.
	err := h.Unlock()
	fmt.Println(errors.Is(err, lockmgr.ErrLost))
	// Output:
	// lock lost: stop writing
	// true
}

// Every error lockmgr returns for a lock operation is a *lockmgr.Error
// that names the operation, the file and the backend, and wraps a cause
// that errors.Is can test, the same in-process and across the plugin
// boundary.
func Example_errors() {
	dir := exampleDir()
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "report.lock")

	holder := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer holder.Close()
	if err := holder.Lock(context.Background()); err != nil {
		fmt.Println(err)
		return
	}

	h := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := h.Lock(ctx)
	fmt.Println("timed out:", errors.Is(err, lockmgr.ErrTimeout), errors.Is(err, context.DeadlineExceeded))

	var lerr *lockmgr.Error
	if errors.As(err, &lerr) {
		fmt.Printf("op %q, file %s, backend %s\n", lerr.Op, filepath.Base(lerr.Path), lerr.Backend)
	}

	// A byte range on a backend without them is refused before any lock.
	ranged := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()), lockmgr.WithRange(0, 100))
	defer ranged.Close()
	_, err = ranged.TryLock()
	fmt.Println("unsupported:", errors.Is(err, lockmgr.ErrUnsupported))
	// Output:
	// timed out: true true
	// op "lock", file report.lock, backend test-flock
	// unsupported: true
}
