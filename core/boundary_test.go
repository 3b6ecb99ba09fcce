package lockmgr_test

// Failures at the plugin boundary (issue #20), each shown through the
// public API with a real plugin process and, where the kernel must
// agree, a real second process. Each test failed, by design, on the
// session protocol as it stood when it was written (gRPC stream, one
// lifeline per plugin), and asserts what the boundary must do instead:
// whatever goes wrong with one request or one process, the host's word
// about every other lock matches the kernel's.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"github.com/lockmgr/lockmgr/core/proclocks"
	"golang.org/x/sys/unix"
)

const (
	// failureBound bounds every wait for an event these tests need (a
	// release the kernel shows, a process's exit, a call's return). It is
	// reached only when the event never comes: it is a failure bound,
	// never a figure the tests expect.
	failureBound = 30 * time.Second
	// cancelBound bounds a Lock whose context was canceled while its
	// plugin ignores the cancel: far beyond the few seconds the host
	// gives a plugin to answer a cancel before it kills it.
	cancelBound = 60 * time.Second
)

// Environment variables that make the test binary a helper process for
// one of the tests in this file; a helper is the test binary run again
// with -test.run naming that test, which calls boundaryHelper first.
const (
	// ofdTryEnv names a file: the helper tries once for an exclusive OFD
	// lock on it (tryOFD).
	ofdTryEnv = "LOCKMGR_TEST_OFD_TRY"
	// lifelineHostEnv names a plugin directory: the helper is a host that
	// hands one lock's lifeline on and waits to be killed
	// (runLifelineHost), on the files lockAEnv and lockBEnv name.
	lifelineHostEnv = "LOCKMGR_TEST_LIFELINE_HOST"
	lockAEnv        = "LOCKMGR_TEST_LOCK_A"
	lockBEnv        = "LOCKMGR_TEST_LOCK_B"
	// heirEnv makes the helper hold its descriptor 3 (a lifeline) until
	// its stdin closes: the command a host handed a lock to.
	heirEnv = "LOCKMGR_TEST_HEIR"
)

// boundaryHelper runs the helper the environment asks for, if any, and
// exits with its status.
func boundaryHelper() {
	switch {
	case os.Getenv(heirEnv) != "":
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case os.Getenv(ofdTryEnv) != "":
		os.Exit(tryOFD(os.Getenv(ofdTryEnv)))
	case os.Getenv(lifelineHostEnv) != "":
		os.Exit(runLifelineHost(os.Getenv(lifelineHostEnv)))
	}
}

// helperCommand returns the test binary, run again within the test t
// as the helper env asks for.
func helperCommand(t *testing.T, env ...string) *exec.Cmd {
	return helperCommandFor("-test.run=^"+t.Name()+"$", env...)
}

// helperCommandFor is helperCommand for a helper, which has no test to
// name but its own -test.run argument, run.
func helperCommandFor(run string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], run)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, k := range []string{ofdTryEnv, lifelineHostEnv, lockAEnv, lockBEnv, heirEnv} {
			if strings.HasPrefix(kv, k+"=") {
				return true
			}
		}
		return false
	})
	// A helper built with -race would sleep a second at exit.
	cmd.Env = append(cmd.Env, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// tryOFD is the ofdTryEnv helper: it tries once for an exclusive open
// file description lock on path, which conflicts with a POSIX lock that
// any other process holds on the file, says "locked" or "busy", and holds
// what it got until its stdin closes.
func tryOFD(path string) int {
	h := lockmgr.New(path, lockmgr.WithLockMgr(fdlock.New(fdlock.OFD("test-ofd", ""))))
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
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// anotherProcessIsTold returns what another process is told when it
// tries for the lock on path without waiting: "locked" or "busy". That
// process has let go of whatever it got when this returns.
func anotherProcessIsTold(t *testing.T, path string) string {
	t.Helper()
	p := locktest.StartPeer(t, helperCommand(t, ofdTryEnv+"="+path))
	told := p.Next(t, failureBound)
	p.Release(t)
	return told
}

// anotherProcessMustBeTold checks that another process trying for the
// lock on path is told want.
func anotherProcessMustBeTold(t *testing.T, path, want, why string) {
	t.Helper()
	if told := anotherProcessIsTold(t, path); told != want {
		t.Fatalf("another process trying for %s %s was told %q, want %q", filepath.Base(path), why, told, want)
	}
}

// pluginBinaryDir builds the main package in pkgDir as backend name's
// plugin, in a fresh directory that only its owner may write, as the
// host insists, and returns the directory.
func pluginBinaryDir(t *testing.T, pkgDir, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := locktest.BuildPlugin(pkgDir, name, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pluginHandle returns a Handle on path through backend name's plugin,
// started by host, closed when the test ends.
func pluginHandle(t *testing.T, path string, host *pluginhost.Host, name string) *lockmgr.Handle {
	t.Helper()
	h := lockmgr.New(path, lockmgr.WithHost(host), lockmgr.WithBackend(name))
	t.Cleanup(func() { h.Close() })
	return h
}

// kernelHolders returns who holds a lock on path, as the kernel says
// (/proc/locks): the plugin process, for a POSIX lock it took.
func kernelHolders(t *testing.T, path string) []backend.LockOwner {
	t.Helper()
	st, err := proclocks.ForFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Holders
}

func describeHolders(holders []backend.LockOwner) string {
	var s []string
	for _, o := range holders {
		s = append(s, fmt.Sprintf("pid %d (%s, a %s lock)", o.PID, o.Command, o.Kind))
	}
	return strings.Join(s, ", ")
}

// waitReleased polls /proc/locks until the kernel holds no lock on path:
// there is no event to wait on for a release but the table itself.
func waitReleased(t *testing.T, path, what string) {
	t.Helper()
	deadline := time.Now().Add(failureBound)
	for {
		holders := kernelHolders(t, path)
		if len(holders) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still held in the kernel %v later, by %s", what, failureBound, describeHolders(holders))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// process is a process the test watches through a pidfd, opened while
// the process was known to run: unlike its pid, which the kernel may
// give another process once this one is reaped (by init, for an orphan),
// the pidfd names this process for good.
type process struct {
	pid, fd int
}

// watch opens a pidfd for pid, closed when the test ends.
func watch(t *testing.T, pid int) *process {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("no process to watch (pid %d)", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &process{pid: pid, fd: fd}
}

// kill sends SIGKILL; it does nothing once the process has exited.
func (p *process) kill() { _ = unix.PidfdSendSignal(p.fd, unix.SIGKILL, nil, 0) }

// exited waits until the process has exited, for at most failureBound:
// a pidfd becomes readable when its process exits.
func (p *process) exited() bool {
	deadline := time.Now().Add(failureBound)
	for {
		wait := max(time.Until(deadline).Milliseconds(), 0)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}, int(wait))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return false
		}
		return n > 0
	}
}

// returnsWithin runs f and returns its error, failing the test if f has
// not returned after d: a watchdog against a hang, not a speed figure.
func returnsWithin(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s: still blocked %v later", what, d)
	}
	return nil
}

// abbreviate shortens s, an error that quotes a path megabytes long, to
// something a log can show.
func abbreviate(s string) string {
	if len(s) <= 300 {
		return s
	}
	return fmt.Sprintf("%s[... %d bytes ...]%s", s[:150], len(s)-300, s[len(s)-150:])
}

// TestOversizedRequestLosesNoOtherLock: one request too big to cross the
// plugin boundary (a lock on a 5 MiB path, which nothing refuses before it
// is sent) fails on its own, with an error, and the host's word about
// every other lock of that plugin still matches the kernel's: lock A is
// either kept, not lost, and free to another process once its Unlock
// returns (what a host that refuses such a request before sending it
// does), or reported lost and really released.
//
// Issue #20, on the gRPC session: the request ends the plugin's session
// but not the plugin, so A is reported lost while the plugin, alive,
// holds it in the kernel, and a new Lock of A waits behind that orphan.
func TestOversizedRequestLosesNoOtherLock(t *testing.T) {
	boundaryHelper()
	host := pluginhost.New(pluginhost.Options{Dirs: []string{pluginBinaryDir(t, "../backends/posix", "posix")}})
	pathA := lockPath(t)
	a := pluginHandle(t, pathA, host, "posix")
	ctx, cancel := context.WithTimeout(context.Background(), failureBound)
	defer cancel()
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}

	huge := filepath.Join(t.TempDir(), strings.Repeat("x", 5<<20))
	big := pluginHandle(t, huge, host, "posix")
	err := returnsWithin(t, failureBound, "Lock on a 5 MiB path", func() error { return big.Lock(context.Background()) })
	if err == nil {
		t.Fatal("Lock on a 5 MiB path succeeded")
	}
	t.Logf("Lock on a 5 MiB path: %s", abbreviate(err.Error()))

	// The host's word about A must match the kernel's, whichever way the
	// request failed. The kernel is asked first (another process tries for
	// A), the host then (A's Unlock): a host that ends the plugin may
	// announce the loss a moment after the request fails, or after the
	// kernel has let A go, but never not at all.
	told := anotherProcessIsTold(t, pathA)
	t.Logf("after the oversized request, another process trying for A was told %q", told)
	switch told {
	case "busy":
		switch err := a.Unlock(); {
		case err == nil:
			if holders := kernelHolders(t, pathA); len(holders) > 0 {
				t.Fatalf("A's Unlock returned nil, yet the kernel still holds A, for %s", describeHolders(holders))
			}
		case errors.Is(err, lockmgr.ErrLost):
			waitReleased(t, pathA, fmt.Sprintf("A was reported lost (%v) after an oversized request on another Handle", err))
		default:
			t.Fatalf("A's Unlock after an oversized request on another Handle: %v, want nil (or ErrLost)", err)
		}
		anotherProcessMustBeTold(t, pathA, "locked", "after A's Unlock")
	case "locked":
		// The kernel let A go: its Handle must hear of it.
		select {
		case <-a.Lost():
		case <-time.After(failureBound):
			t.Fatalf("another process took A after an oversized request on another Handle, yet A's Handle was not told A was lost %v later", failureBound)
		}
		if err := a.Unlock(); !errors.Is(err, lockmgr.ErrLost) {
			t.Fatalf("A's Unlock, when another process could take A: %v, want ErrLost", err)
		}
	default:
		t.Fatalf("another process trying for A said %q", told)
	}
}

// lifelineOptions returns the options of every Handle of a host whose
// locks may be handed on with Handle.Lifeline, as lockmgr run takes
// them: both Handles of runLifelineHost get the same options, so that
// their locks are held by one plugin process.
func lifelineOptions(dir string) []lockmgr.Option {
	return []lockmgr.Option{lockmgr.WithPluginDir(dir), lockmgr.WithBackend("posix"), lockmgr.WithLifeline()}
}

// runLifelineHost is the lifelineHostEnv helper: a host that takes posix
// locks on the files lockAEnv and lockBEnv name, through two Handles,
// hands A's lifeline to an heir (the heirEnv helper, which reads this
// process's stdin), says "ready PID" with the heir's pid, and waits for
// the heir, or to be killed.
func runLifelineHost(dir string) int {
	fail := func(err error) int {
		fmt.Println("error:", err)
		return 1
	}
	opts := lifelineOptions(dir)
	a := lockmgr.New(os.Getenv(lockAEnv), opts...)
	b := lockmgr.New(os.Getenv(lockBEnv), opts...)
	for _, h := range []*lockmgr.Handle{a, b} {
		if err := h.Lock(context.Background()); err != nil {
			return fail(err)
		}
	}
	f, err := a.Lifeline()
	if err != nil {
		return fail(err)
	}
	heir := helperCommandFor(os.Args[1], heirEnv+"=1")
	heir.ExtraFiles = []*os.File{f}
	heir.Stdin = os.Stdin
	if err := heir.Start(); err != nil {
		return fail(err)
	}
	f.Close()
	fmt.Println("ready", heir.Process.Pid)
	_ = heir.Wait()
	return 0
}

// TestHandedLifelineKeepsOnlyItsLock: a lifeline handed to a child keeps
// the lock it was taken from, and no other. A host holds posix locks A
// and B, hands A's lifeline to an heir, as lockmgr run hands it to its
// command, and is SIGKILLed: B is released, since its holder is dead; A
// stays held while the heir lives, and is released once the heir is
// killed.
//
// Issue #20, with one lifeline per plugin: the lifeline is the whole
// plugin's, so the heir keeps the plugin alive, and with it B, for a host
// that is gone.
func TestHandedLifelineKeepsOnlyItsLock(t *testing.T) {
	boundaryHelper()
	dir := pluginBinaryDir(t, "../backends/posix", "posix")
	locks := t.TempDir()
	pathA, pathB := filepath.Join(locks, "a"), filepath.Join(locks, "b")

	host := helperCommand(t, lifelineHostEnv+"="+dir, lockAEnv+"="+pathA, lockBEnv+"="+pathB,
		// The plugin's socket directory goes in a directory of the test's
		// own: a plugin killed with its host cannot remove it.
		"XDG_RUNTIME_DIR="+t.TempDir())
	// The heir reads the host's stdin, whose other end the test holds:
	// closing it ends the heir, whatever became of the host.
	heirIn, toHeir, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	host.Stdin = heirIn
	stdout, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	heirIn.Close()
	t.Cleanup(func() {
		toHeir.Close()
		host.Process.Kill()
		host.Wait()
	})
	said := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		s.Scan()
		said <- s.Text()
	}()
	var heirPID int
	select {
	case line := <-said:
		if _, err := fmt.Sscanf(line, "ready %d", &heirPID); err != nil {
			t.Fatalf("the host said %q, want \"ready PID\"", line)
		}
	case <-time.After(failureBound):
		t.Fatalf("the host did not say it was ready in %v", failureBound)
	}
	// The heir cannot exit yet: it waits for the test's end of its stdin.
	heir := watch(t, heirPID)
	t.Cleanup(heir.kill)
	for _, p := range []string{pathA, pathB} {
		holders := kernelHolders(t, p)
		if len(holders) == 0 {
			t.Fatalf("the host said it was ready, but the kernel holds no lock on %s", p)
		}
		for _, o := range holders {
			t.Logf("%s held by %s", filepath.Base(p), describeHolders([]backend.LockOwner{o}))
			// The holders (plugins) are alive: watch them from now on, so
			// that whatever the test finds, none outlives it.
			t.Cleanup(watch(t, o.PID).kill)
		}
	}

	if err := host.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait() // returns once the host has exited
	waitReleased(t, pathB, "B, whose host was SIGKILLed and whose lifeline no one was given")
	anotherProcessMustBeTold(t, pathB, "locked", "once B's host was killed")

	if holders := kernelHolders(t, pathA); len(holders) == 0 {
		t.Fatal("A was released with its host, though the heir holds its lifeline")
	}
	anotherProcessMustBeTold(t, pathA, "busy", "while the heir holds its lifeline")

	heir.kill()
	if !heir.exited() {
		t.Fatalf("the heir %d did not exit %v after SIGKILL", heirPID, failureBound)
	}
	waitReleased(t, pathA, "A, once the heir holding its lifeline was SIGKILLed")
	anotherProcessMustBeTold(t, pathA, "locked", "once the heir was killed")
}

// TestUnansweredCancelIsBounded: a plugin that never answers a cancel
// (testdata/nocancel, whose wait ignores its context) cannot keep a Lock
// waiting once its context is canceled. The host answers the cancel
// itself within a bound: the Lock returns ErrCanceled, the plugin is
// killed, and every lock it held is announced lost (here: one it keeps,
// no hand-over, taken through another Handle) and released; the next
// Lock starts a fresh plugin.
//
// Issue #20, on the gRPC session: the host sends the cancel and waits
// for an answer that never comes; the Lock never returns.
func TestUnansweredCancelIsBounded(t *testing.T) {
	boundaryHelper()
	// A short bound makes the test quick; it asserts only that the Lock
	// returns within cancelBound.
	host := pluginhost.New(pluginhost.Options{Dirs: []string{pluginBinaryDir(t, "testdata/nocancel", "nocancel")}, CancelTimeout: time.Second})
	pathHeld := lockPath(t)
	held := pluginHandle(t, pathHeld, host, "nocancel")
	// The plugin's wait says it has begun into its lock file, a FIFO.
	pathWait := filepath.Join(t.TempDir(), "wait")
	if err := unix.Mkfifo(pathWait, 0o600); err != nil {
		t.Fatal(err)
	}
	waiter := pluginHandle(t, pathWait, host, "nocancel")

	ok, err := held.TryLock()
	if err != nil || !ok {
		t.Fatalf("TryLock: %v, %v", ok, err)
	}
	holders := kernelHolders(t, pathHeld)
	if len(holders) != 1 {
		t.Fatalf("the plugin's lock on %s shows as %s, want one holder", pathHeld, describeHolders(holders))
	}
	plugin := watch(t, holders[0].PID)
	// Runs before the Handles' Close: a Lock still waiting on the plugin
	// ends with it.
	t.Cleanup(plugin.kill)
	lost := held.Lost()

	began := make(chan struct{})
	go func() {
		_, _ = os.ReadFile(pathWait) // returns once the plugin has written and closed
		close(began)
	}()
	t.Cleanup(func() {
		// Lets the reader go, if the plugin never came.
		if fd, err := unix.Open(pathWait, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	locked := make(chan error, 1)
	go func() { locked <- waiter.Lock(ctx) }()
	select {
	case <-began:
	case err := <-locked:
		t.Fatalf("Lock returned before the plugin's wait began: %v", err)
	case <-time.After(failureBound):
		t.Fatalf("the plugin's wait did not begin in %v", failureBound)
	}

	cancel()
	select {
	case err = <-locked:
	case <-time.After(cancelBound):
		t.Fatalf("Lock still waiting %v after its context was canceled, on a plugin that never answers the cancel", cancelBound)
	}
	if !errors.Is(err, lockmgr.ErrCanceled) {
		t.Fatalf("Lock canceled while its plugin ignores the cancel: %v, want ErrCanceled", err)
	}
	if !plugin.exited() {
		t.Fatalf("the plugin %d that never answered a cancel still runs %v after the Lock gave up", plugin.pid, failureBound)
	}
	select {
	case <-lost:
	case <-time.After(failureBound):
		t.Fatalf("the lock the plugin kept was not announced lost %v after the plugin was killed", failureBound)
	}
	if cause := held.LostCause(); !errors.Is(cause, lockmgr.ErrLost) {
		t.Fatalf("LostCause of a lock whose plugin was killed: %v, want ErrLost", cause)
	}
	if holders := kernelHolders(t, pathHeld); len(holders) > 0 {
		t.Fatalf("the killed plugin's lock is still held, by %s", describeHolders(holders))
	}
	if err := held.Unlock(); !errors.Is(err, lockmgr.ErrLost) {
		t.Fatalf("Unlock of a lock whose plugin was killed: %v, want ErrLost", err)
	}

	again := pluginHandle(t, pathHeld, host, "nocancel")
	ok, err = again.TryLock()
	if err != nil || !ok {
		t.Fatalf("TryLock after the plugin was killed: %v, %v; want a lock through a fresh plugin", ok, err)
	}
	if holders := kernelHolders(t, pathHeld); len(holders) != 1 || holders[0].PID == plugin.pid {
		t.Fatalf("the lock taken after the plugin was killed is held by %s, want one fresh plugin", describeHolders(holders))
	}
}

// TestPluginKilledWhileIdleIsHeard kills a plugin while no call is in
// flight and it keeps no lock (a flock lock was handed over): no
// goroutine reads its session then, so the host must hear of the death
// from reaping the process. Otherwise the next Lock would be sent to the
// dead plugin and fail, rather than start a fresh one.
func TestPluginKilledWhileIdleIsHeard(t *testing.T) {
	boundaryHelper()
	host := pluginhost.New(pluginhost.Options{Dirs: []string{pluginBinaryDir(t, "../backends/flock", "flock")}})
	p, err := host.Get("flock")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Done()
	plugin := watch(t, p.PID())
	h := pluginHandle(t, lockPath(t), host, "flock")
	ctx := context.Background()
	if err := h.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}

	plugin.kill()
	select {
	case <-p.Dead():
	case <-time.After(failureBound):
		t.Fatalf("the host did not hear of its idle plugin's death in %v", failureBound)
	}
	if err := h.Lock(ctx); err != nil {
		t.Fatalf("Lock after the idle plugin was killed: %v; want a lock through a fresh plugin", err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
}
