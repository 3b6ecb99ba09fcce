package lockmgr_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"golang.org/x/sys/unix"
)

// trylockEnv turns the test binary into a Peer that tries once for the
// exclusive lock on the file it names, through an in-process flock
// backend, says "locked" or "busy", and holds what it got until its
// stdin closes.
const trylockEnv = "LOCKMGR_TEST_TRYLOCK"

// TestFirstLockOnExitingThread: the first lock of a host is taken from a
// goroutine locked to its OS thread that then returns without unlocking,
// so that Go ends the thread. The plugin was started from that thread;
// the thread's death must not end the plugin (as a Pdeathsig tied to it
// would), nor lose the lock.
func TestFirstLockOnExitingThread(t *testing.T) {
	if path := os.Getenv(trylockEnv); path != "" {
		os.Exit(tryOnce(path))
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := locktest.BuildPlugin("../backends/flock", "flock", dir); err != nil {
		t.Fatal(err)
	}
	host := pluginhost.New(pluginhost.Options{Dirs: []string{dir}})
	path := lockPath(t)
	h := lockmgr.New(path, lockmgr.WithHost(host), lockmgr.WithPluginDir(dir), lockmgr.WithBackend("flock"))
	t.Cleanup(func() { h.Close() })

	locked := make(chan error, 1)
	onExitingThread(t, func() { locked <- h.Lock(context.Background()) })
	if err := <-locked; err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Lost():
		t.Fatal("Lost() fired after the thread that took the first lock exited")
	case <-time.After(500 * time.Millisecond):
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFirstLockOnExitingThread$")
	cmd.Env = append(os.Environ(), trylockEnv+"="+path)
	locktest.StartPeer(t, cmd).Said(t, "busy")
	select {
	case <-h.Lost():
		t.Fatal("Lost() fired after the thread that took the first lock exited")
	default:
	}
	if err := h.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
}

// onExitingThread runs f on a goroutine locked to an OS thread other
// than the main one, and returns as the goroutine does, without
// unlocking, so that Go ends the thread. (Go never ends the main thread,
// it parks it: a goroutine that lands there is kept there, so that the
// next one cannot, until the test ends.)
func onExitingThread(t *testing.T, f func()) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	for {
		onMain := make(chan bool, 1)
		go func() {
			runtime.LockOSThread()
			if unix.Gettid() == os.Getpid() {
				onMain <- true
				<-release
				runtime.UnlockOSThread()
				return
			}
			f()
			onMain <- false
		}()
		if !<-onMain {
			return
		}
	}
}

// tryOnce is the trylockEnv helper's whole life.
func tryOnce(path string) int {
	h := lockmgr.New(path, lockmgr.WithLockMgr(flockBackend()))
	defer h.Close()
	ok, err := h.TryLock()
	switch {
	case err != nil:
		fmt.Println("error:", err)
		return 1
	case ok:
		fmt.Println("locked")
	default:
		fmt.Println("busy")
	}
	_, _ = os.Stdin.Read(make([]byte, 1))
	return 0
}
