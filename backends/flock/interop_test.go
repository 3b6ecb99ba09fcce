package main

// The flock backend takes the same kernel lock as every other flock(2)
// user, so it must exclude, and be excluded by, util-linux flock(1) and
// Python's fcntl.flock: the tools a shell script or a cron job would use
// on the same lock file.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/locktest"
)

// Generous bounds: the tests assert what happens, not how fast, and a
// loaded machine may take seconds to start a process.
const (
	promptly = 10 * time.Second
	// shortly is how long a waiter must stay waiting to show it waits.
	shortly = 200 * time.Millisecond
)

// busyExit is the exit code flock(1) is told to use when the lock is
// held (-E), so that a conflict is told apart from any other failure.
const busyExit = 75

// pyFlock holds or tries a flock(2) lock from Python: argv is the path,
// "exclusive" or "shared", and "hold" (print "locked", keep the lock until
// stdin closes) or "try" (print "locked" or "busy" and exit).
const pyFlock = `
import fcntl, sys
path, mode, action = sys.argv[1:4]
how = fcntl.LOCK_SH if mode == "shared" else fcntl.LOCK_EX
f = open(path, "a")
if action == "try":
    try:
        fcntl.flock(f, how | fcntl.LOCK_NB)
    except BlockingIOError:
        print("busy", flush=True)
        sys.exit(0)
else:
    fcntl.flock(f, how)
print("locked", flush=True)
if action == "hold":
    sys.stdin.read()
`

func lookPath(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not installed: %v", tool, err)
	}
	return p
}

// start starts name as a peer process (see locktest.Peer).
func start(t *testing.T, name string, args ...string) *locktest.Peer {
	t.Helper()
	return locktest.StartPeer(t, exec.Command(name, args...))
}

// exitCode runs a command to completion and returns its exit code.
func exitCode(t *testing.T, name string, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), promptly)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode()
	}
	t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	return -1
}

func handle(t *testing.T, tgt locktest.Target, path string) *lockmgr.Handle {
	t.Helper()
	h := lockmgr.New(path, tgt.Options()...)
	t.Cleanup(func() { h.Close() })
	return h
}

func mustTry(t *testing.T, what string, ok bool, err error, want bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if ok != want {
		t.Fatalf("%s = %v, want %v", what, ok, want)
	}
}

func lockPath(t *testing.T) string { return filepath.Join(t.TempDir(), "lock") }

// expectWaiterWakes checks that h.Lock, waiting while o holds the lock,
// is granted once o lets go.
func expectWaiterWakes(t *testing.T, h *lockmgr.Handle, o *locktest.Peer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*promptly)
	defer cancel()
	got := make(chan error, 1)
	go func() { got <- h.Lock(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("Lock returned (%v) while %s held the lock", err, o.Cmd.Path)
	case <-time.After(shortly):
	}
	o.Release(t)
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Lock after %s let go: %v", o.Cmd.Path, err)
		}
	case <-time.After(promptly):
		t.Fatalf("Lock still waiting %v after %s let go", promptly, o.Cmd.Path)
	}
}

func TestInteropFlockCommand(t *testing.T) {
	flock := lookPath(t, "flock")
	code := func(t *testing.T, args ...string) int {
		t.Helper()
		return exitCode(t, flock, append([]string{"-n", "-E", fmt.Sprint(busyExit)}, args...)...)
	}
	// hold starts flock(1) holding the lock until its stdin closes.
	hold := func(t *testing.T, path string, flags ...string) *locktest.Peer {
		t.Helper()
		o := start(t, flock, append(flags, path, "-c", "echo locked; read x || :")...)
		o.Expect(t, "locked")
		return o
	}
	for _, tgt := range locktest.Targets() {
		t.Run(tgt.Name, func(t *testing.T) {
			t.Run("WeExcludeIt", func(t *testing.T) {
				p := lockPath(t)
				h := handle(t, tgt, p)
				if err := h.Lock(context.Background()); err != nil {
					t.Fatal(err)
				}
				if c := code(t, p, "true"); c != busyExit {
					t.Fatalf("flock -n (exclusive) while we hold an exclusive lock: exit %d, want %d", c, busyExit)
				}
				if c := code(t, "-s", p, "true"); c != busyExit {
					t.Fatalf("flock -n -s while we hold an exclusive lock: exit %d, want %d", c, busyExit)
				}
				if err := h.Unlock(); err != nil {
					t.Fatal(err)
				}
				if c := code(t, p, "true"); c != 0 {
					t.Fatalf("flock -n after we let go: exit %d, want 0", c)
				}
			})
			t.Run("ItExcludesUs", func(t *testing.T) {
				p := lockPath(t)
				o := hold(t, p)
				h := handle(t, tgt, p)
				ok, err := h.TryLock()
				mustTry(t, "TryLock while flock(1) holds an exclusive lock", ok, err, false)
				ok, err = h.TryRLock()
				mustTry(t, "TryRLock while flock(1) holds an exclusive lock", ok, err, false)
				o.Release(t)
				ok, err = h.TryLock()
				mustTry(t, "TryLock after flock(1) exited", ok, err, true)
			})
			t.Run("WaiterWakes", func(t *testing.T) {
				p := lockPath(t)
				o := hold(t, p)
				expectWaiterWakes(t, handle(t, tgt, p), o)
			})
			t.Run("Shared", func(t *testing.T) {
				p := lockPath(t)
				h := handle(t, tgt, p)
				if err := h.RLock(context.Background()); err != nil {
					t.Fatal(err)
				}
				if c := code(t, "-s", p, "true"); c != 0 {
					t.Fatalf("flock -n -s beside our shared lock: exit %d, want 0", c)
				}
				if c := code(t, p, "true"); c != busyExit {
					t.Fatalf("flock -n (exclusive) beside our shared lock: exit %d, want %d", c, busyExit)
				}
				if err := h.Unlock(); err != nil {
					t.Fatal(err)
				}

				o := hold(t, p, "-s")
				ok, err := h.TryRLock()
				mustTry(t, "TryRLock beside flock -s", ok, err, true)
				if err := h.Unlock(); err != nil {
					t.Fatal(err)
				}
				ok, err = h.TryLock()
				mustTry(t, "TryLock beside flock -s", ok, err, false)
				o.Release(t)
				ok, err = h.TryLock()
				mustTry(t, "TryLock after flock -s exited", ok, err, true)
			})
			t.Run("Directory", func(t *testing.T) {
				// flock(1) locks directories; so do we, and they conflict.
				dir := t.TempDir()
				h := handle(t, tgt, dir)
				ok, err := h.TryLock()
				mustTry(t, "TryLock on a directory", ok, err, true)
				if c := code(t, dir, "true"); c != busyExit {
					t.Fatalf("flock -n on a directory we hold: exit %d, want %d", c, busyExit)
				}
			})
		})
	}
}

func TestInteropPythonFlock(t *testing.T) {
	python := lookPath(t, "python3")
	py := func(t *testing.T, path, mode, action string) *locktest.Peer {
		t.Helper()
		return start(t, python, "-c", pyFlock, path, mode, action)
	}
	for _, tgt := range locktest.Targets() {
		t.Run(tgt.Name, func(t *testing.T) {
			t.Run("WeExcludeIt", func(t *testing.T) {
				p := lockPath(t)
				h := handle(t, tgt, p)
				if err := h.Lock(context.Background()); err != nil {
					t.Fatal(err)
				}
				py(t, p, "exclusive", "try").Expect(t, "busy")
				py(t, p, "shared", "try").Expect(t, "busy")
				if err := h.Unlock(); err != nil {
					t.Fatal(err)
				}
				py(t, p, "exclusive", "try").Expect(t, "locked")
			})
			t.Run("ItExcludesUs", func(t *testing.T) {
				p := lockPath(t)
				o := py(t, p, "exclusive", "hold")
				o.Expect(t, "locked")
				h := handle(t, tgt, p)
				ok, err := h.TryLock()
				mustTry(t, "TryLock while Python holds LOCK_EX", ok, err, false)
				ok, err = h.TryRLock()
				mustTry(t, "TryRLock while Python holds LOCK_EX", ok, err, false)
				o.Release(t)
				ok, err = h.TryLock()
				mustTry(t, "TryLock after Python exited", ok, err, true)
			})
			t.Run("WaiterWakes", func(t *testing.T) {
				p := lockPath(t)
				o := py(t, p, "exclusive", "hold")
				o.Expect(t, "locked")
				expectWaiterWakes(t, handle(t, tgt, p), o)
			})
			t.Run("Shared", func(t *testing.T) {
				p := lockPath(t)
				h := handle(t, tgt, p)
				if err := h.RLock(context.Background()); err != nil {
					t.Fatal(err)
				}
				py(t, p, "shared", "try").Expect(t, "locked")
				py(t, p, "exclusive", "try").Expect(t, "busy")
				if err := h.Unlock(); err != nil {
					t.Fatal(err)
				}
				o := py(t, p, "shared", "hold")
				o.Expect(t, "locked")
				ok, err := h.TryRLock()
				mustTry(t, "TryRLock beside Python's LOCK_SH", ok, err, true)
				h.Unlock()
				ok, err = h.TryLock()
				mustTry(t, "TryLock beside Python's LOCK_SH", ok, err, false)
			})
		})
	}
}
