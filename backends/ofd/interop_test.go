package main

// The kernel keeps OFD locks and POSIX record locks in one per-inode list
// and checks every request against both, so an ofd lock and a POSIX lock
// on overlapping ranges conflict, whoever took them; disjoint ranges do
// not. flock(2) locks live in a list of their own: on a local filesystem
// an ofd lock and a flock lock on the same file never conflict. These
// tests hold lockmgr's ofd backend to those rules against other programs.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/locktest"
	"golang.org/x/sys/unix"
)

// promptly bounds every wait for another process: generous, since the
// tests assert what happens, not how fast.
const promptly = 10 * time.Second

// posixHelperEnv makes the test binary a process that takes a POSIX
// record lock (F_SETLK). It is handled in init, before TestMain, so that
// the helper does not first build the plugin as locktest.Main would.
const posixHelperEnv = "OFD_TEST_POSIX_LOCK"

func init() {
	if args := os.Getenv(posixHelperEnv); args != "" {
		os.Exit(posixHelper(args))
	}
}

// posixHelper does what testdata/ofd_lock.c does, with F_SETLK instead
// of F_OFD_SETLK: args are "PATH r|w START LEN hold|try", separated by
// spaces (which t.TempDir's paths do not contain).
func posixHelper(args string) int {
	var path, typ, action string
	var start, length int64
	if _, err := fmt.Sscan(args, &path, &typ, &start, &length, &action); err != nil {
		fmt.Fprintln(os.Stderr, "posix helper:", err)
		return 2
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "posix helper:", err)
		return 2
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: start, Len: length}
	if typ == "r" {
		lk.Type = unix.F_RDLCK
	}
	err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	switch {
	case err == unix.EAGAIN || err == unix.EACCES:
		fmt.Println("busy")
		return 0
	case err != nil:
		fmt.Fprintln(os.Stderr, "posix helper: F_SETLK:", err)
		return 2
	}
	fmt.Println("locked")
	if action == "hold" {
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
	return 0
}

// locker starts another process that takes a lock of type "r" or "w" on
// length bytes from start of path, and either holds it ("hold") or
// reports and exits ("try").
type locker func(t *testing.T, path, typ string, start, length int64, action string) *locktest.Peer

// posixLocker is the test binary itself, taking a POSIX record lock.
func posixLocker(t *testing.T, path, typ string, start, length int64, action string) *locktest.Peer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d %s", posixHelperEnv, path, typ, start, length, action),
		quickRaceExit())
	return locktest.StartPeer(t, cmd)
}

// quickRaceExit returns the GORACE setting that spares a helper built
// with -race the race runtime's one-second sleep at exit, which would
// otherwise add up over the helpers a test starts.
func quickRaceExit() string {
	return "GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0"
}

// ofdLocker compiles testdata/ofd_lock.c and returns a locker running it.
func ofdLocker(t *testing.T) locker {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc is not installed: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ofd_lock")
	if out, err := exec.Command(gcc, "-Wall", "-Wextra", "-Werror", "-o", bin, filepath.Join("testdata", "ofd_lock.c")).CombinedOutput(); err != nil {
		t.Fatalf("compiling testdata/ofd_lock.c: %v\n%s", err, out)
	}
	return func(t *testing.T, path, typ string, start, length int64, action string) *locktest.Peer {
		t.Helper()
		return locktest.StartPeer(t, exec.Command(bin, path, typ, strconv.FormatInt(start, 10), strconv.FormatInt(length, 10), action))
	}
}

func handle(t *testing.T, tgt locktest.Target, path string, start, length int64) *lockmgr.Handle {
	t.Helper()
	opts := tgt.Options()
	if start != 0 || length != 0 {
		opts = append(opts, lockmgr.WithRange(start, length))
	}
	h := lockmgr.New(path, opts...)
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

// rangeRules runs the kernel's range rules between the ofd backend,
// through tgt, and another process's locks taken by lock.
func rangeRules(t *testing.T, tgt locktest.Target, kind string, lock locker) {
	t.Run("ItExcludesUs", func(t *testing.T) {
		p := lockPath(t)
		o := lock(t, p, "w", 0, 10, "hold")
		o.Expect(t, "locked")
		ok, err := handle(t, tgt, p, 5, 10).TryLock()
		mustTry(t, "TryLock [5,15) beside "+kind+" write lock [0,10)", ok, err, false)
		ok, err = handle(t, tgt, p, 5, 10).TryRLock()
		mustTry(t, "TryRLock [5,15) beside "+kind+" write lock [0,10)", ok, err, false)
		ok, err = handle(t, tgt, p, 0, 0).TryLock()
		mustTry(t, "whole-file TryLock beside "+kind+" write lock [0,10)", ok, err, false)
		disjoint := handle(t, tgt, p, 10, 10)
		ok, err = disjoint.TryLock()
		mustTry(t, "TryLock disjoint [10,20) beside "+kind+" write lock [0,10)", ok, err, true)
		disjoint.Unlock()
		o.Release(t)
		ok, err = handle(t, tgt, p, 5, 10).TryLock()
		mustTry(t, "TryLock [5,15) after the "+kind+" holder exited", ok, err, true)
	})
	t.Run("ItSharesWithUs", func(t *testing.T) {
		p := lockPath(t)
		o := lock(t, p, "r", 0, 10, "hold")
		o.Expect(t, "locked")
		ok, err := handle(t, tgt, p, 5, 10).TryRLock()
		mustTry(t, "TryRLock [5,15) beside "+kind+" read lock [0,10)", ok, err, true)
		ok, err = handle(t, tgt, p, 5, 10).TryLock()
		mustTry(t, "TryLock [5,15) beside "+kind+" read lock [0,10)", ok, err, false)
	})
	t.Run("WeExcludeIt", func(t *testing.T) {
		p := lockPath(t)
		h := handle(t, tgt, p, 0, 10)
		if err := h.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
		lock(t, p, "w", 5, 10, "try").Said(t, "busy")
		lock(t, p, "r", 5, 10, "try").Said(t, "busy")
		lock(t, p, "w", 10, 10, "try").Said(t, "locked")
		if err := h.Unlock(); err != nil {
			t.Fatal(err)
		}
		lock(t, p, "w", 5, 10, "try").Said(t, "locked")

		if err := h.RLock(context.Background()); err != nil {
			t.Fatal(err)
		}
		lock(t, p, "r", 5, 10, "try").Said(t, "locked")
		lock(t, p, "w", 5, 10, "try").Said(t, "busy")
	})
}

func TestInteropPOSIXLocks(t *testing.T) {
	for _, tgt := range locktest.Targets() {
		t.Run(tgt.Name, func(t *testing.T) { rangeRules(t, tgt, "POSIX", posixLocker) })
	}
}

func TestInteropOFDProgram(t *testing.T) {
	lock := ofdLocker(t)
	for _, tgt := range locktest.Targets() {
		t.Run(tgt.Name, func(t *testing.T) { rangeRules(t, tgt, "another program's OFD", lock) })
	}
}

// TestNoConflictWithFlock: flock(2) and OFD locks are different kinds,
// and on a local filesystem the kernel never checks one against the other.
// (On NFS, flock is emulated with a POSIX lock and they would conflict;
// the test's temporary directory is local.)
func TestNoConflictWithFlock(t *testing.T) {
	for _, tgt := range locktest.Targets() {
		t.Run(tgt.Name, func(t *testing.T) {
			p := lockPath(t)
			f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
				t.Fatalf("flock(LOCK_EX): %v", err)
			}
			// The flock lock is real: another flock of the file is refused.
			if !flockBusy(t, p) {
				t.Fatal("a second flock(LOCK_EX) was granted: the first one is not held")
			}

			h := handle(t, tgt, p, 0, 0)
			ok, err := h.TryLock()
			mustTry(t, "ofd whole-file TryLock while a flock(2) lock is held", ok, err, true)
			// And the ofd lock is real too: another ofd handle is refused.
			ok, err = handle(t, tgt, p, 0, 0).TryLock()
			mustTry(t, "second ofd TryLock", ok, err, false)

			// The other way round: with only the ofd lock held, flock(2)
			// is granted.
			if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
				t.Fatal(err)
			}
			if flockBusy(t, p) {
				t.Fatal("flock(LOCK_EX) refused while only an ofd lock is held")
			}
		})
	}
}

// flockBusy reports whether a flock(LOCK_EX) on a fresh open of path is
// refused; a granted one is released again at once.
func flockBusy(t *testing.T, path string) bool {
	t.Helper()
	g, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	switch err := unix.Flock(int(g.Fd()), unix.LOCK_EX|unix.LOCK_NB); err {
	case nil:
		return false
	case unix.EWOULDBLOCK:
		return true
	default:
		t.Fatalf("flock: %v", err)
		return false
	}
}
