package lockmgr_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/proclocks"
	"golang.org/x/sys/unix"
)

// TestSharedPluginKilledWhileGranting: the user's shared plugin is killed
// just as the lock a Handle waits for is let go, so that it dies before
// granting, while granting (the grant sent, its copy of the file not yet
// closed), or just after. Whichever it is, the Lock ends granted, through
// a new plugin if need be; the file is then locked (nobody else gets it)
// and nothing else of the dead plugin's grant is left holding it: once the
// Handle unlocks, the file is free.
func TestSharedPluginKilledWhileGranting(t *testing.T) {
	dir := pluginBinaryDir(t, "../backends/flock", "flock")
	run := filepath.Join(t.TempDir(), "run")
	t.Setenv(lockmgr.RuntimeDirEnv, run)
	t.Cleanup(func() { locktest.KillSharedPlugins(run) })
	cfg := &config.Config{Backend: config.BackendFlock, LockFileMode: 0o600, SharedPluginIdle: time.Minute}
	path := lockPath(t)
	holder, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	free := func() bool {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			return false
		}
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return true
	}
	for i := range 20 {
		if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		h := lockmgr.New(path, lockmgr.WithConfig(cfg), lockmgr.WithPluginDir(dir))
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), failureBound)
			defer cancel()
			done <- h.Lock(ctx)
		}()
		// The plugin waits in the kernel for the holder.
		for deadline := time.Now().Add(failureBound); ; time.Sleep(time.Millisecond) {
			if st, err := proclocks.ForFile(path); err == nil && len(st.Waiters) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the plugin is not waiting after %v", i, failureBound)
			}
		}
		// The kill comes before the release, at once after it, or a
		// little after: before the grant, during it, or after.
		plugin := sharedPluginOf(t, run)
		kill := func() { _ = unix.PidfdSendSignal(plugin, unix.SIGKILL, nil, 0) }
		switch i % 3 {
		case 0:
			kill()
			_ = unix.Flock(int(holder.Fd()), unix.LOCK_UN)
		case 1:
			_ = unix.Flock(int(holder.Fd()), unix.LOCK_UN)
			kill()
		default:
			_ = unix.Flock(int(holder.Fd()), unix.LOCK_UN)
			time.Sleep(time.Duration(i) * 10 * time.Microsecond)
			kill()
		}
		unix.Close(plugin)
		if err := <-done; err != nil {
			t.Fatalf("round %d: Lock across the plugin's death: %v; want a lock through a new plugin", i, err)
		}
		if free() {
			t.Fatalf("round %d: the Handle holds the lock, yet the file is free", i)
		}
		if err := h.Unlock(); err != nil {
			t.Fatalf("round %d: Unlock: %v", i, err)
		}
		if !free() {
			t.Fatalf("round %d: the file is still locked after Unlock: a copy of the dead plugin's grant holds it", i)
		}
		h.Close()
	}
}

// sharedPluginOf returns a pidfd of the one shared plugin whose socket is
// in the runtime directory run.
func sharedPluginOf(t *testing.T, run string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, env := range procs {
		b, err := os.ReadFile(env)
		if err != nil || !strings.Contains(string(b), "LOCKMGR_SOCKET="+run+"/") {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(env, "/")[2])
		fd, err := unix.PidfdOpen(pid, 0)
		if err == nil {
			return fd
		}
	}
	t.Fatal("no shared plugin runs")
	return -1
}
