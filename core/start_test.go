package lockmgr_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"golang.org/x/sys/unix"
)

// hangBound tells a call that honours its context from one that waits
// for a plugin's start: far beyond any deadline these tests give, far
// below the start timeout they give their host.
const hangBound = 30 * time.Second

// slowPlugin is a real flock plugin whose start the test holds up: its
// binary is a script that says it has started, then waits for the test
// to let it go on before it execs the plugin. It returns a Handle on a
// host of its own, which would wait ten minutes for the start, and a
// channel closed once the script runs.
func slowPlugin(t *testing.T) (*lockmgr.Handle, <-chan struct{}) {
	t.Helper()
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := locktest.BuildPlugin("../backends/flock", "flock", real); err != nil {
		t.Fatal(err)
	}
	startedFIFO, goFIFO := filepath.Join(dir, "started"), filepath.Join(dir, "go")
	for _, f := range []string{startedFIFO, goFIFO} {
		if err := unix.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("#!/bin/sh\necho started > %s\nread x < %s\nexec %s\n",
		startedFIFO, goFIFO, filepath.Join(real, "lockmgr-backend-flock"))
	if err := os.WriteFile(filepath.Join(dir, "lockmgr-backend-flock"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	host := pluginhost.New(pluginhost.Options{Dirs: []string{dir}, StartTimeout: 10 * time.Minute})
	h := lockmgr.New(filepath.Join(t.TempDir(), "lock"), lockmgr.WithHost(host), lockmgr.WithBackend("flock"))
	t.Cleanup(func() { h.Close() })
	// Runs before the Close above: let the script go on, if it still
	// waits, so that nothing is left waiting for it.
	t.Cleanup(func() {
		fd, err := unix.Open(goFIFO, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Write(fd, []byte("go\n"))
			unix.Close(fd)
		}
	})
	started := make(chan struct{})
	go func() {
		os.ReadFile(startedFIFO) // returns once the script has written
		close(started)
	}()
	return h, started
}

func waitStarted(t *testing.T, started <-chan struct{}) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(hangBound):
		t.Fatalf("the plugin's script did not run in %v", hangBound)
	}
}

// TestLockDeadlineWhilePluginStarts: a Lock whose deadline passes while
// its plugin is still starting returns at the deadline, not when the
// start ends.
func TestLockDeadlineWhilePluginStarts(t *testing.T) {
	h, started := slowPlugin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Lock(ctx) }()
	waitStarted(t, started)
	select {
	case err := <-done:
		if !errors.Is(err, lockmgr.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock past its deadline while the plugin starts: %v, want ErrTimeout", err)
		}
		t.Logf("%v", err)
	case <-time.After(hangBound):
		t.Fatalf("a Lock with a 100ms deadline still waits for its plugin's start %v later", hangBound)
	}
}

// TestCloseWhilePluginStarts: Close from another goroutine, while a Lock
// waits for its plugin to start, returns at once, and ends the Lock.
func TestCloseWhilePluginStarts(t *testing.T) {
	h, started := slowPlugin(t)
	done := make(chan error, 1)
	go func() { done <- h.Lock(context.Background()) }()
	waitStarted(t, started)
	closed := make(chan error, 1)
	go func() { closed <- h.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(hangBound):
		t.Fatalf("Close still waits for the plugin's start %v later", hangBound)
	}
	select {
	case err := <-done:
		if !errors.Is(err, lockmgr.ErrClosed) {
			t.Fatalf("Lock on a Handle closed while its plugin started: %v, want ErrClosed", err)
		}
	case <-time.After(hangBound):
		t.Fatalf("Lock still waits %v after Close", hangBound)
	}
}

// TestLockDeadlineWhileUnlockWaitsOnPlugin: a Lock on a Handle whose
// Unlock, on another goroutine, waits for a plugin that does not answer
// (stopped with SIGSTOP) still returns at its deadline.
func TestLockDeadlineWhileUnlockWaitsOnPlugin(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := locktest.BuildPlugin("../backends/posix", "posix", dir); err != nil {
		t.Fatal(err)
	}
	host := pluginhost.New(pluginhost.Options{Dirs: []string{dir}})
	h := lockmgr.New(filepath.Join(t.TempDir(), "lock"), lockmgr.WithHost(host), lockmgr.WithBackend("posix"))
	t.Cleanup(func() { h.Close() })
	if err := h.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, err := host.Get("posix")
	if err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	p.Done()
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Runs before the Close above.
	t.Cleanup(func() { unix.Kill(pid, unix.SIGCONT) })
	// kill(2) returns before the plugin has stopped: on a busy machine
	// it could still answer the Unlock, and the RLocks below would then
	// meet a plugin that stopped under them instead.
	waitStopped(t, pid)
	go h.Unlock()
	// Until the Unlock has the Handle, a shared lock is refused at once
	// (the Handle holds an exclusive one); from then on it waits for the
	// Handle, and must give up at its deadline.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- h.RLock(ctx) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(hangBound):
			t.Fatalf("an RLock with a 100ms deadline still waits %v later for an Unlock that waits on its plugin", hangBound)
		}
		cancel()
		if errors.Is(err, lockmgr.ErrInvalid) {
			continue
		}
		if !errors.Is(err, lockmgr.ErrTimeout) {
			t.Fatalf("RLock while an Unlock waits on the plugin: %v, want ErrTimeout", err)
		}
		return
	}
}

// waitStopped waits until process pid is stopped (state T in
// /proc/PID/stat).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] == "T" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d not stopped %v after SIGSTOP", pid, hangBound)
		}
		time.Sleep(time.Millisecond)
	}
}
