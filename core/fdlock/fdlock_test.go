package fdlock_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
	"github.com/lockmgr/lockmgr/core/locktest"
	"golang.org/x/sys/unix"
)

// holderEnv turns the test binary into another process that opens the
// file it names, takes an exclusive flock(2) lock on it, says "locked",
// and holds it until its stdin closes.
const holderEnv = "FDLOCK_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holderEnv); path != "" {
		os.Exit(hold(path))
	}
	os.Exit(m.Run())
}

func hold(path string) int {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		fmt.Println("error:", err)
		return 2
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// failingOnce returns a flock backend whose first lock call runs between()
// and then fails with ENOLCK, a refusal that is not "busy"; later calls
// are real flock(2) calls, Flock's own.
func failingOnce(between func()) *fdlock.Backend {
	first := true
	mech := fdlock.Flock("test-flock", "")
	lock := mech.Lock
	mech.Lock = func(fd int, mode backend.Mode, r backend.Range, wait bool) error {
		if first {
			first = false
			between()
			return unix.ENOLCK
		}
		return lock(fd, mode, r, wait)
	}
	return fdlock.New(mech)
}

// TestFailedAcquireKeepsFileAnotherLocked: Acquire creates the lock file;
// before its own lock call fails (not busy), another process opens the
// new file and locks it. The failed Acquire must not unlink the file
// that process holds, or a third process would create a fresh file at
// the path and lock it too. It used to unlink it without holding any
// lock on it.
func TestFailedAcquireKeepsFileAnotherLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	var holder *locktest.Peer
	b := failingOnce(func() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), holderEnv+"="+p)
		holder = locktest.StartPeer(t, cmd)
		holder.Expect(t, "locked")
	})
	_, err := b.Acquire(context.Background(), backend.Request{Path: p})
	if !errors.Is(err, unix.ENOLCK) {
		t.Fatalf("Acquire: %v, want ENOLCK", err)
	}
	if _, err := os.Lstat(p); err != nil {
		t.Fatalf("the failed Acquire removed the lock file another process holds: %v", err)
	}
	// The file at the path is the one the other process holds: a fresh
	// open of the path cannot lock it.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("flock of the file at the path while the other process holds its lock: %v, want EWOULDBLOCK", err)
	}
}

// TestFailedAcquireRemovesItsFile: with no one else on the file, a
// failed Acquire leaves no lock file where there was none.
func TestFailedAcquireRemovesItsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	b := failingOnce(func() {})
	if _, err := b.Acquire(context.Background(), backend.Request{Path: p}); !errors.Is(err, unix.ENOLCK) {
		t.Fatalf("Acquire: %v, want ENOLCK", err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed Acquire left its lock file behind (lstat: %v)", err)
	}
}
