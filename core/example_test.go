package lockmgr_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
	"golang.org/x/sys/unix"
)

// flockBackend is a flock(2) backend built in-process, so that the
// examples and tests run without a plugin binary (core does not import
// the backends; a program normally names one with WithBackend instead).
func flockBackend() backend.LockMgr {
	return fdlock.New(fdlock.Mechanism{
		Info: backend.Info{
			Name: "test-flock",
			Capabilities: backend.Capabilities{
				Shared: true,
				Owner:  backend.OwnerOpenFileDescription,
			},
		},
		TryLock: func(fd int, mode backend.Mode, _ backend.Range) error {
			how := unix.LOCK_EX
			if mode == backend.Shared {
				how = unix.LOCK_SH
			}
			return unix.Flock(fd, how|unix.LOCK_NB)
		},
		Unlock: func(fd int, _ backend.Range) error { return unix.Flock(fd, unix.LOCK_UN) },
	})
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
