package kernelwait

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv names the one check a re-executed test binary makes, in a
// process whose signals no other test has touched.
const childEnv = "KERNELWAIT_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "before-enable":
		os.Exit(childBeforeEnable())
	case "ignored":
		os.Exit(childIgnored())
	case "blocked":
		os.Exit(childBlocked())
	case "no-signal-queue":
		os.Exit(childNoSignalQueue())
	case "ignored-after-enable":
		os.Exit(childTakenAfterEnable(false))
	case "reinstalled-after-enable":
		os.Exit(childTakenAfterEnable(true))
	}
	os.Exit(2)
}

// childBeforeEnable: Wait must not run the lock call in a process that did
// not enable kernel waits (a library in its user's process).
func childBeforeEnable() int {
	called := false
	if err := Wait(context.Background(), func() error { called = true; return nil }); !errors.Is(err, ErrUnavailable) || called {
		os.Stderr.WriteString("Wait before Enable: want ErrUnavailable and no call\n")
		return 1
	}
	return 0
}

// childIgnored: with the signal ignored, a lock call could not be
// interrupted, so Enable must refuse.
func childIgnored() int {
	signal.Ignore(Signal)
	if err := Enable(); err == nil {
		os.Stderr.WriteString("Enable with the signal ignored: want an error\n")
		return 1
	}
	if err := Wait(context.Background(), func() error { return nil }); !errors.Is(err, ErrUnavailable) {
		os.Stderr.WriteString("Wait after a failed Enable: want ErrUnavailable\n")
		return 1
	}
	return 0
}

// childBlocked: a process that inherits Signal blocked (the runtime keeps
// an inherited mask for every signal it does not need) must still have
// its waits interrupted.
func childBlocked() int {
	status, _ := os.ReadFile("/proc/self/status")
	if !blockedIn(string(status), int(Signal)) {
		os.Stderr.WriteString("the child does not have signal 40 blocked: the test set-up failed\n")
		return 1
	}
	if err := Enable(); err != nil {
		os.Stderr.WriteString("Enable: " + err.Error() + "\n")
		return 1
	}
	waiter, cleanup, err := heldElsewhere("blocked")
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	defer cleanup()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Wait(ctx, blockingFlock(waiter)) }()
	select {
	case err := <-done:
		if err != unix.EINTR {
			os.Stderr.WriteString(fmt.Sprintf("Wait past its deadline: %v, want EINTR\n", err))
			return 1
		}
	case <-time.After(10 * time.Second):
		os.Stderr.WriteString("with signal 40 blocked at start, the deadline did not interrupt the lock call\n")
		return 1
	}
	return 0
}

// heldElsewhere makes a file that this process holds locked (flock)
// through one open file description, and returns another description of
// it for a waiter, which then waits as on any other holder; cleanup
// removes the file.
func heldElsewhere(tag string) (waiter *os.File, cleanup func(), err error) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("kernelwait-%s-%d", tag, os.Getpid()))
	cleanup = func() { os.Remove(path) }
	holder, err := os.Create(path)
	if err != nil {
		return nil, cleanup, err
	}
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		return nil, cleanup, err
	}
	if waiter, err = os.Open(path); err != nil {
		return nil, cleanup, err
	}
	// The holder's description lives as long as the process: it is what
	// the waiter waits on.
	heldOpen = append(heldOpen, holder)
	return waiter, cleanup, nil
}

// heldOpen keeps the holders' files from the collector.
var heldOpen []*os.File

// hangBound tells a wait that ends at its deadline from one that hangs:
// far beyond the deadlines these checks give.
const hangBound = 30 * time.Second

// waitsPastDeadline has Wait block on a lock another description of this
// process holds, with a short deadline, and says whether it ended within
// hangBound: interrupted (EINTR), or refused before it blocked
// (ErrUnavailable, on which the caller waits its other way, which ends at
// the deadline).
func waitsPastDeadline() int {
	waiter, cleanup, err := heldElsewhere("deadline")
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	defer cleanup()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Wait(ctx, blockingFlock(waiter)) }()
	select {
	case err := <-done:
		if err != unix.EINTR && !errors.Is(err, ErrUnavailable) {
			os.Stderr.WriteString(fmt.Sprintf("Wait past its deadline: %v, want EINTR or ErrUnavailable\n", err))
			return 1
		}
	case <-time.After(hangBound):
		os.Stderr.WriteString(fmt.Sprintf("a wait with a 50ms deadline still blocked in flock(2) %v later\n", hangBound))
		return 1
	}
	return 0
}

// childNoSignalQueue: with RLIMIT_SIGPENDING reached (ulimit -i 0) no
// real-time signal can be queued, so a signal sent to interrupt the lock
// call is refused; the wait must end at its deadline all the same.
func childNoSignalQueue() int {
	if err := unix.Setrlimit(unix.RLIMIT_SIGPENDING, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		os.Stderr.WriteString("setrlimit: " + err.Error() + "\n")
		return 1
	}
	if err := Enable(); err != nil {
		os.Stderr.WriteString("Enable: " + err.Error() + "\n")
		return 1
	}
	return waitsPastDeadline()
}

// childTakenAfterEnable: a plugin of someone else's takes Signal for its
// own use after Enable, through os/signal: it ignores it, or ignores it
// and then asks for it, which puts the runtime's handler back with
// SA_RESTART. Either way its waits must still end at their deadlines.
func childTakenAfterEnable(reinstall bool) int {
	if err := Enable(); err != nil {
		os.Stderr.WriteString("Enable: " + err.Error() + "\n")
		return 1
	}
	signal.Ignore(Signal)
	if reinstall {
		signal.Notify(make(chan os.Signal, 1), Signal)
	}
	return waitsPastDeadline()
}

// blockedIn reports whether /proc/PID/status text shows signal sig in
// SigBlk, the blocked mask (hexadecimal, bit sig-1).
func blockedIn(status string, sig int) bool {
	for _, line := range strings.Split(status, "\n") {
		if hex, ok := strings.CutPrefix(line, "SigBlk:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && mask&(1<<(sig-1)) != 0
		}
	}
	return false
}

func runChild(t *testing.T, check string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+check)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", check, err, out)
	}
}

func TestUnavailableBeforeEnable(t *testing.T) { runChild(t, "before-enable") }

func TestDeadlineWithoutSignalQueue(t *testing.T) { runChild(t, "no-signal-queue") }

func TestDeadlineWithSignalIgnoredAfterEnable(t *testing.T) { runChild(t, "ignored-after-enable") }

func TestDeadlineWithHandlerReinstalledAfterEnable(t *testing.T) {
	runChild(t, "reinstalled-after-enable")
}

func TestEnableRefusesAnIgnoredSignal(t *testing.T) { runChild(t, "ignored") }

// TestInterruptsWithTheSignalBlockedAtStart: python3 blocks signal 40
// and execs the test binary, as any caller may start lockmgr (and so its
// plugin) with it blocked.
func TestInterruptsWithTheSignalBlockedAtStart(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to start a process with signal 40 blocked")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {40}); os.execv(sys.argv[1], sys.argv[1:])", exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=blocked")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// pair opens path twice: two open file descriptions, whose flock(2) locks
// conflict as two processes' would.
func pair(t *testing.T) (holder, waiter *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lock")
	var err error
	if holder, err = os.Create(path); err != nil {
		t.Fatal(err)
	}
	if waiter, err = os.Open(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close(); waiter.Close() })
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return holder, waiter
}

func blockingFlock(f *os.File) func() error {
	fd := int(f.Fd())
	return func() error { return unix.Flock(fd, unix.LOCK_EX) }
}

func mustEnable(t *testing.T) {
	t.Helper()
	if err := Enable(); err != nil {
		t.Fatalf("Enable: %v", err)
	}
}

// free reports whether f's file can be locked now by a third description:
// after a canceled wait, no thread may still be blocked, about to take it.
func free(t *testing.T, f *os.File) bool {
	t.Helper()
	g, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	return unix.Flock(int(g.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}

func TestGrantedWhenTheHolderLetsGo(t *testing.T) {
	mustEnable(t)
	holder, waiter := pair(t)
	done := make(chan error, 1)
	go func() { done <- Wait(context.Background(), blockingFlock(waiter)) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v while the lock was held", err)
	case <-time.After(50 * time.Millisecond):
	}
	unix.Flock(int(holder.Fd()), unix.LOCK_UN)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait after the release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait was not granted the released lock")
	}
	if free(t, holder) {
		t.Fatal("the waiter was granted the lock, but a third description could take it too")
	}
}

func TestCancelInterruptsTheLockCall(t *testing.T) {
	mustEnable(t)
	holder, waiter := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Wait(ctx, blockingFlock(waiter)) }()
	time.Sleep(20 * time.Millisecond) // most likely in the kernel by now; either way it must end
	cancel()
	select {
	case err := <-done:
		if err != unix.EINTR {
			t.Fatalf("canceled Wait: got %v, want EINTR", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not interrupt the blocked lock call")
	}
	unix.Flock(int(holder.Fd()), unix.LOCK_UN)
	if !free(t, holder) {
		t.Fatal("a canceled wait took the lock after all")
	}
}

func TestDeadlineInterruptsTheLockCall(t *testing.T) {
	mustEnable(t)
	_, waiter := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Wait(ctx, blockingFlock(waiter)) }()
	select {
	case err := <-done:
		if err != unix.EINTR || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("Wait past its deadline: got %v (ctx %v), want EINTR", err, ctx.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deadline did not interrupt the blocked lock call")
	}
}

// TestCancelAtEveryMoment cancels waits at random points, including
// before the thread reaches the lock call, where a single signal would
// interrupt nothing. Every wait must end, either granted or with EINTR,
// and none may hold the lock afterwards unless it said so.
func TestCancelAtEveryMoment(t *testing.T) {
	mustEnable(t)
	holder, waiter := pair(t)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 200 {
		release := r.IntN(4) == 0
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Wait(ctx, blockingFlock(waiter)) }()
		time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
		if release {
			unix.Flock(int(holder.Fd()), unix.LOCK_UN)
		}
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("wait %d did not end after its cancel", i)
		}
		switch {
		case err == nil && release:
			unix.Flock(int(waiter.Fd()), unix.LOCK_UN)
		case err == nil:
			t.Fatalf("wait %d: granted a lock that was never released", i)
		case err != unix.EINTR:
			t.Fatalf("wait %d: %v", i, err)
		}
		if release {
			// Whatever the wait said, the lock must now be free to take
			// back: a waiter that said EINTR must not hold it, nor take
			// it later.
			if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
				t.Fatalf("wait %d: the lock is not free after the waiter let go: %v", i, err)
			}
		}
	}
}

// TestBeyondMaxWaitersFallsBack: the waiters past MaxWaiters are told to
// wait their other way, at once, rather than pin more threads.
func TestBeyondMaxWaitersFallsBack(t *testing.T) {
	mustEnable(t)
	holder, _ := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	blocked := make(chan struct{}, MaxWaiters)
	for range MaxWaiters {
		f, err := os.Open(holder.Name())
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			fd := int(f.Fd())
			Wait(ctx, func() error {
				blocked <- struct{}{}
				return unix.Flock(fd, unix.LOCK_EX)
			})
		}()
	}
	for range MaxWaiters {
		<-blocked
	}
	called := false
	err := Wait(ctx, func() error { called = true; return nil })
	cancel()
	wg.Wait()
	if !errors.Is(err, ErrUnavailable) || called {
		t.Fatalf("wait number %d: got %v (called %v), want ErrUnavailable without a call", MaxWaiters+1, err, called)
	}
}
