package locktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"golang.org/x/sys/unix"
)

// collectBound bounds how long the garbage collector may take to find a
// dropped Handle: far beyond what it needs on an idle machine, since the
// test waits for the collection itself, not for time to pass.
const collectBound = 30 * time.Second

// droppedHandle: a lock lives until Unlock, Close, Detach or the
// process's exit, whether or not its Handle is still reachable. A program
// that takes its lock at start-up and keeps nothing of it
// (lockmgr.New(pidfile).TryLock(), the one-instance idiom) must go on
// holding it after the garbage collector has found the Handle.
func (s *suiteRun) droppedHandle(t *testing.T) {
	p := s.lockPath(t)
	opts := s.tgt.Options()
	if s.tgt.Name == "plugin" {
		// A host of its own, which nothing but the Handle refers to: its
		// plugin, and a lock that plugin holds, must outlive the Handle too.
		opts = append(opts, lockmgr.WithHost(privateHost(t)))
	}
	gone := lockAndDrop(t, p, opts)
	deadline := time.Now().Add(collectBound)
	for !gone.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the dropped Handle was not collected in %v: something still refers to it", collectBound)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	drainFinalizers(t)
	c := startChild(t, s.tgt.Name, p, "try-exclusive")
	c.Expect(t, "busy")
	c.Release(t)
}

// lockAndDrop takes the lock at p through a Handle that it then drops,
// and returns what turns true once the collector has freed that Handle.
//
//go:noinline
func lockAndDrop(t *testing.T, p string, opts []lockmgr.Option) *atomic.Bool {
	t.Helper()
	h := lockmgr.New(p, opts...)
	ok, err := h.TryLock()
	if err != nil || !ok {
		h.Close()
		t.Fatalf("TryLock on a free lock: %v, %v", ok, err)
	}
	gone := new(atomic.Bool)
	runtime.AddCleanup(h, func(b *atomic.Bool) { b.Store(true) }, gone)
	return gone
}

// drainFinalizers returns once every finalizer queued before it was
// called has run: os.File's among them, which closes a descriptor that
// nothing refers to. The runtime runs its queue in batches, in no set
// order within one, and a batch to the end before it takes the next; so
// once a finalizer queued after the first one ran has run too, the batch
// holding anything queued before has finished.
func drainFinalizers(t *testing.T) {
	t.Helper()
	for range 2 {
		ran := make(chan struct{})
		setSentinel(ran)
		deadline := time.Now().Add(collectBound)
		for waiting := true; waiting; {
			runtime.GC()
			select {
			case <-ran:
				waiting = false
			case <-time.After(time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatalf("a finalizer did not run in %v", collectBound)
				}
			}
		}
	}
}

// setSentinel makes an object that nothing refers to, whose finalizer
// closes ran. It is big enough to get an allocation of its own: the
// runtime may never finalize a tiny one.
//
//go:noinline
func setSentinel(ran chan struct{}) {
	x := new([64]byte)
	runtime.SetFinalizer(x, func(*[64]byte) { close(ran) })
}

// refusesFIFO: a FIFO at the lock path, which any user may plant in a
// shared directory, is refused at once, even by a try that must not wait:
// opening it must not block until some process opens its other end.
// The process that tries may read the FIFO but not write it, as a
// stranger's FIFO would be, so that a read-only open is what it falls
// back to (for root, that means a process without the capability to
// override file permissions: dropDAC).
func (s *suiteRun) refusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	if err := syscall.Mkfifo(p, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o444); err != nil { // whatever the umask
		t.Fatal(err)
	}
	c := startChild(t, s.tgt.Name, p, "try-exclusive", dropDACEnv+"=1")
	line := c.Next(t, collectBound)
	if !strings.HasPrefix(line, "error:") || !strings.Contains(line, "FIFO") {
		t.Fatalf("TryLock on a FIFO said %q, want an error that says it is a FIFO", line)
	}
	checkNamed(t, errors.New(line), p, s.info.Name)
	c.Release(t)
	// And here, where the FIFO may be opened for writing, which does not
	// block either: refused all the same, with a cause that survives the
	// plugin boundary.
	_, err := s.handle(t, p).TryLock()
	if !errorsIs(err, syscall.EBADFD) {
		t.Fatalf("TryLock on a FIFO: %v, want an error matching EBADFD", err)
	}
}

// dropDACEnv makes a helper process that runs as root give up
// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, for itself and every process
// it starts, so that file permissions bind it as they bind anyone else.
const dropDACEnv = "LOCKTEST_DROP_DAC"

// dropDAC takes the two capabilities out of the bounding set and execs the
// test binary again: an exec as root grants the bounding set, so the new
// image, on every thread, and the plugins it starts lack them. The
// bounding set is a thread's, hence the thread locked around it.
func dropDAC() error {
	if os.Geteuid() != 0 || os.Getenv(dropDACEnv) == "dropped" {
		return nil
	}
	runtime.LockOSThread()
	for _, c := range []uintptr{unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH} {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			return fmt.Errorf("dropping capability %d: %w", c, err)
		}
	}
	env := []string{dropDACEnv + "=dropped"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, dropDACEnv+"=") {
			env = append(env, kv)
		}
	}
	return syscall.Exec("/proc/self/exe", os.Args, env)
}

// deadlineWithoutSignalQueue: a wait ends at its deadline whatever the
// process's limits. With RLIMIT_SIGPENDING reached (ulimit -i 0) no
// real-time signal can be queued to the process waiting, nor to the
// plugin it starts, which inherits the limit; a backend that interrupts
// a blocked lock call with one must still end the wait.
func (s *suiteRun) deadlineWithoutSignalQueue(t *testing.T) {
	p := s.lockPath(t)
	if err := s.handle(t, p).Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, s.tgt.Name, p, "wait-without-signal-queue")
	if line := c.Next(t, collectBound); line != "timeout" {
		t.Fatalf("a wait with a 1s deadline, without a signal queue, said %q, want \"timeout\"", line)
	}
	c.Release(t)
}

// waitWithoutSignalQueue is the helper's side of
// deadlineWithoutSignalQueue: it takes RLIMIT_SIGPENDING to 0, then waits
// a second for the lock, and says "timeout" if the wait ended at its
// deadline.
func waitWithoutSignalQueue(h *lockmgr.Handle) int {
	if err := unix.Setrlimit(unix.RLIMIT_SIGPENDING, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		fmt.Println("error: setrlimit:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	switch err := h.Lock(ctx); {
	case errors.Is(err, lockmgr.ErrTimeout):
		fmt.Println("timeout")
	case err != nil:
		fmt.Println("error:", err)
	default:
		fmt.Println("locked")
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}
