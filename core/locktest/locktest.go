// Package locktest is the conformance suite every lockmgr backend must
// pass, in-process and through its real plugin binary. A third-party
// backend runs it the same way lockmgr's own do:
//
//	func TestMain(m *testing.M) {
//		locktest.Main(m, "mybackend", func() backend.LockMgr { return newBackend() })
//	}
//
//	func TestConformance(t *testing.T) { locktest.Run(t) }
//
// Main builds the package's plugin binary once, and makes the test binary
// serve as the second process that contends for a lock: a lock is only
// proven exclusive when a real other process is refused it.
package locktest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"golang.org/x/sys/unix"
)

// Environment variables that turn the test binary into a helper process.
const (
	childEnv = "LOCKTEST_CHILD" // "inproc" or "plugin"
)

var suite struct {
	name      string
	impl      func() backend.LockMgr
	pluginDir string
}

// Main runs a backend package's tests. name is the backend's name and impl
// returns a fresh in-process instance. Main builds the package (a main
// package serving the backend) as the plugin binary lockmgr-backend-NAME
// in a temporary directory, unless the test binary was started as a
// helper process, in which case it runs the helper and exits.
func Main(m *testing.M, name string, impl func() backend.LockMgr) {
	os.Exit(RunMain(m, name, impl))
}

// RunMain is Main for a TestMain that has work of its own to do after the
// tests, such as stopping a lock service it started for them: it returns
// the code to exit with instead of exiting. In a helper process it runs
// the helper and exits, as Main does.
func RunMain(m *testing.M, name string, impl func() backend.LockMgr) int {
	suite.name, suite.impl = name, impl
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	dir, err := os.MkdirTemp("", "locktest-plugin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "locktest:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	if err := BuildPlugin(".", name, dir); err != nil {
		fmt.Fprintln(os.Stderr, "locktest:", err)
		return 2
	}
	suite.pluginDir = dir
	// Shared plugins meet only the test's own hosts, and end with it.
	if os.Getenv(pluginhost.RuntimeDirEnv) == "" {
		os.Setenv(pluginhost.RuntimeDirEnv, filepath.Join(dir, "run"))
	}
	defer KillSharedPlugins(os.Getenv(pluginhost.RuntimeDirEnv))
	return m.Run()
}

// KillSharedPlugins kills the shared plugins whose sockets are in dir:
// what a test that started them leaves, rather than wait for them to
// exit when idle.
func KillSharedPlugins(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, env := range procs {
		b, err := os.ReadFile(env)
		if err != nil || !strings.Contains(string(b), "\x00"+pluginrpc.SocketEnv+"="+dir+"/") {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(env, "/")[2])
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
		}
	}
}

// IsChild reports whether the test binary was started as the suite's
// helper process. A TestMain that starts a lock service for its tests
// checks it first: the helper reaches the parent's service through the
// environment it inherits, and must not start one of its own.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// BuildPlugin builds the main package in pkgDir as dir/lockmgr-backend-NAME.
func BuildPlugin(pkgDir, name, dir string) error {
	out := filepath.Join(dir, pluginhost.BinaryPrefix+name)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = pkgDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building plugin %s: %v\n%s", name, err, b)
	}
	return nil
}

// PluginDir returns the directory holding the plugin binary Main built.
func PluginDir() string { return suite.pluginDir }

// Target is one way of reaching the backend under test.
type Target struct {
	// Name is "inproc" or "plugin".
	Name string
	// Options make a Handle that locks through this target.
	Options func() []lockmgr.Option
}

// Targets returns the targets for the backend Main was given: in
// process, a plugin of the test's own ("plugin"), and the user's shared
// plugin ("shared"; a backend that cannot be shared gets a private one).
func Targets() []Target {
	return []Target{
		{Name: "inproc", Options: func() []lockmgr.Option { return targetOptions("inproc", suite.pluginDir) }},
		{Name: "plugin", Options: PluginOptions},
		{Name: "shared", Options: func() []lockmgr.Option { return targetOptions("shared", suite.pluginDir) }},
	}
}

// targetOptions returns the options of target by its name, for a test
// and for its helper processes alike.
func targetOptions(target, pluginDir string) []lockmgr.Option {
	opts := []lockmgr.Option{lockmgr.WithPluginDir(pluginDir), lockmgr.WithBackend(suite.name)}
	switch target {
	case "inproc":
		return []lockmgr.Option{lockmgr.WithLockMgr(suite.impl())}
	case "plugin":
		return append(opts, lockmgr.WithPrivatePlugin())
	}
	return opts
}

// PluginOptions returns the options that lock through a plugin of the
// test's own, of the binary Main built.
func PluginOptions() []lockmgr.Option { return targetOptions("plugin", suite.pluginDir) }

// Generous bounds: CI machines are loaded, and the tight figures are
// measured by `make bench`, not asserted here.
const (
	promptly = 5 * time.Second
	shortly  = 300 * time.Millisecond
)

// Run runs the whole conformance suite against both targets.
func Run(t *testing.T) {
	if suite.impl == nil {
		t.Fatal("locktest.Run needs locktest.Main in TestMain")
	}
	for _, tgt := range Targets() {
		t.Run(tgt.Name, func(t *testing.T) { RunTarget(t, tgt) })
	}
}

// RunTarget runs the suite against one target.
func RunTarget(t *testing.T, tgt Target) {
	s := &suiteRun{tgt: tgt}
	s.info = s.describe(t)
	t.Run("ExclusiveExcludesExclusive", s.exclusiveExcludesExclusive)
	t.Run("SharedAdmitsSharedExcludesExclusive", s.sharedLocks)
	t.Run("TryLockBusyIsNotAnError", s.tryLockBusy)
	t.Run("WaiterAcquiresAfterRelease", s.waiterAcquires)
	t.Run("TimeoutAfterDeadline", s.timeout)
	t.Run("ContextCancel", s.cancel)
	t.Run("CloseCancelsWait", s.closeCancelsWait)
	t.Run("DoubleUnlock", s.doubleUnlock)
	t.Run("OtherProcessExcluded", s.otherProcess)
	t.Run("ByteRanges", s.byteRanges)
	t.Run("DroppedHandleKeepsItsLock", s.droppedHandle)
	t.Run("DeadlineWithoutSignalQueue", s.deadlineWithoutSignalQueue)
	// A distributed backend locks a name, not a file: it creates, opens and
	// removes nothing, so the file's own rules do not apply to it.
	fileOnly := func(name string, f func(*testing.T)) {
		t.Run(name, func(t *testing.T) {
			if s.info.Capabilities.Distributed {
				t.Skip("a distributed backend locks a name, not a file")
			}
			f(t)
		})
	}
	fileOnly("RemoveOnRelease", s.removeOnRelease)
	fileOnly("RefusesSymlink", s.refusesSymlink)
	fileOnly("MissingDirectory", s.missingDirectory)
	fileOnly("RefusesFIFO", s.refusesFIFO)
	fileOnly("NewFileMode", s.newFileMode)
	if tgt.Name == "plugin" {
		t.Run("HostKilledFreesLock", s.hostKilled)
		t.Run("PluginKilled", s.pluginKilled)
		t.Run("OnlyTheHolderHasTheLockFile", s.onlyTheHolder)
		t.Run("DescriptorLimitNamed", s.descriptorLimit)
		t.Run("StaleHandleReleasesNothingAfterRestart", s.staleHandleAfterRestart)
		t.Run("LockAfterPluginDeathHoldsALock", s.lockAfterPluginDeath)
		t.Run("LifelineKeepsThePluginsLock", s.lifelineKeepsLock)
		t.Run("Model", s.model)
	}
	if tgt.Name == "shared" {
		t.Run("HostKilledFreesLock", s.hostKilled)
	}
}

type suiteRun struct {
	tgt  Target
	info backend.Info
}

func (s *suiteRun) handle(t *testing.T, path string, extra ...lockmgr.Option) *lockmgr.Handle {
	t.Helper()
	h := lockmgr.New(path, append(s.tgt.Options(), extra...)...)
	t.Cleanup(func() { h.Close() })
	return h
}

func (s *suiteRun) describe(t *testing.T) backend.Info {
	t.Helper()
	h := s.handle(t, filepath.Join(t.TempDir(), "describe"))
	info, err := h.Info(context.Background())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != suite.name {
		t.Fatalf("backend describes itself as %q, want %q", info.Name, suite.name)
	}
	return info
}

// lockPath returns a lock for one test: a file in a directory of its own,
// or, for a distributed backend, a relative name of its own. A name means
// the same on every host and lives in the lock service, not in a temporary
// directory; a random part keeps it apart from the same test's locks in
// earlier runs against the same service.
func (s *suiteRun) lockPath(t *testing.T) string {
	if s.info.Capabilities.Distributed {
		return "locktest/" + t.Name() + "/" + rand.Text()
	}
	return filepath.Join(t.TempDir(), "lock")
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

func (s *suiteRun) exclusiveExcludesExclusive(t *testing.T) {
	p := s.lockPath(t)
	a, b := s.handle(t, p), s.handle(t, p)
	ok, err := a.TryLock()
	mustTry(t, "a.TryLock", ok, err, true)
	ok, err = b.TryLock()
	mustTry(t, "b.TryLock while a holds", ok, err, false)
	ok, err = b.TryRLock()
	if s.info.Capabilities.Shared {
		mustTry(t, "b.TryRLock while a holds", ok, err, false)
	}
	if err := a.Unlock(); err != nil {
		t.Fatalf("a.Unlock: %v", err)
	}
	ok, err = b.TryLock()
	mustTry(t, "b.TryLock after a.Unlock", ok, err, true)
}

func (s *suiteRun) sharedLocks(t *testing.T) {
	p := s.lockPath(t)
	a, b, c := s.handle(t, p), s.handle(t, p), s.handle(t, p)
	if !s.info.Capabilities.Shared {
		_, err := a.TryRLock()
		if !errorsIs(err, lockmgr.ErrUnsupported) {
			t.Fatalf("shared lock on a backend without them: %v, want ErrUnsupported", err)
		}
		return
	}
	ok, err := a.TryRLock()
	mustTry(t, "a.TryRLock", ok, err, true)
	ok, err = b.TryRLock()
	mustTry(t, "b.TryRLock beside a shared lock", ok, err, true)
	ok, err = c.TryLock()
	mustTry(t, "c.TryLock beside two shared locks", ok, err, false)
	a.Unlock()
	ok, err = c.TryLock()
	mustTry(t, "c.TryLock beside one shared lock", ok, err, false)
	b.Unlock()
	ok, err = c.TryLock()
	mustTry(t, "c.TryLock once the shared locks are gone", ok, err, true)
}

func (s *suiteRun) tryLockBusy(t *testing.T) {
	p := s.lockPath(t)
	a, b := s.handle(t, p), s.handle(t, p)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	ok, err := b.AcquireLock(false, 0)
	mustTry(t, "AcquireLock(wait=false) while held", ok, err, false)
	err = b.Lock(canceledContext())
	if !errorsIs(err, lockmgr.ErrCanceled) {
		t.Fatalf("Lock with a canceled context: %v, want ErrCanceled", err)
	}
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func (s *suiteRun) waiterAcquires(t *testing.T) {
	p := s.lockPath(t)
	a, b := s.handle(t, p), s.handle(t, p)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*promptly)
		defer cancel()
		got <- b.Lock(ctx)
	}()
	select {
	case err := <-got:
		t.Fatalf("waiter returned while the lock was held: %v", err)
	case <-time.After(shortly):
	}
	released := time.Now()
	a.Unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
		t.Logf("waiter acquired %v after release", time.Since(released))
	case <-time.After(promptly):
		t.Fatalf("waiter still waiting %v after release", promptly)
	}
}

func (s *suiteRun) timeout(t *testing.T) {
	p := s.lockPath(t)
	a, b := s.handle(t, p), s.handle(t, p)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ok, err := b.AcquireLock(true, shortly)
	elapsed := time.Since(start)
	mustTry(t, "AcquireLock(wait, timeout) while held", ok, err, false)
	if elapsed < shortly {
		t.Fatalf("timed out after %v, before the %v deadline", elapsed, shortly)
	}
	if elapsed > shortly+promptly {
		t.Fatalf("timed out after %v, long after the %v deadline", elapsed, shortly)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shortly)
	defer cancel()
	err = b.Lock(ctx)
	if !errorsIs(err, lockmgr.ErrTimeout) || !errorsIs(err, context.DeadlineExceeded) {
		t.Fatalf("Lock past its deadline: %v, want ErrTimeout and context.DeadlineExceeded", err)
	}
	checkNamed(t, err, p, s.info.Name)
}

// checkNamed insists that an error names the lock file and the backend,
// since a person reading it must know both.
func checkNamed(t *testing.T, err error, path, backendName string) {
	t.Helper()
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, backendName) {
		t.Fatalf("error %q does not name the path %s and the backend %s", msg, path, backendName)
	}
}

func (s *suiteRun) cancel(t *testing.T) {
	p := s.lockPath(t)
	a, b := s.handle(t, p), s.handle(t, p)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(shortly/3, cancel)
	err := b.Lock(ctx)
	if !errorsIs(err, lockmgr.ErrCanceled) || !errorsIs(err, context.Canceled) {
		t.Fatalf("canceled Lock: %v, want ErrCanceled and context.Canceled", err)
	}
	// The canceled wait must leave nothing behind: once a lets go, a third
	// handle gets the lock at once.
	a.Unlock()
	ok, err := s.handle(t, p).TryLock()
	mustTry(t, "TryLock after a canceled wait", ok, err, true)
}

func (s *suiteRun) closeCancelsWait(t *testing.T) {
	p := s.lockPath(t)
	a, b := s.handle(t, p), s.handle(t, p)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(context.Background()) }()
	time.Sleep(shortly / 3)
	b.Close()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("Lock succeeded on a handle closed while it waited")
		}
	case <-time.After(promptly):
		t.Fatal("Close did not end the wait")
	}
	a.Unlock()
	ok, err := s.handle(t, p).TryLock()
	mustTry(t, "TryLock after a closed waiter", ok, err, true)
}

func (s *suiteRun) doubleUnlock(t *testing.T) {
	p := s.lockPath(t)
	a := s.handle(t, p)
	if err := a.Unlock(); !errorsIs(err, lockmgr.ErrNotLocked) {
		t.Fatalf("Unlock before Lock: %v, want ErrNotLocked", err)
	}
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.ReleaseLock(); err != nil {
		t.Fatalf("first Unlock: %v", err)
	}
	err := a.Unlock()
	if !errorsIs(err, lockmgr.ErrNotLocked) {
		t.Fatalf("second Unlock: %v, want ErrNotLocked", err)
	}
	checkNamed(t, err, p, s.info.Name)
}

func (s *suiteRun) otherProcess(t *testing.T) {
	p := s.lockPath(t)
	modes := []string{"exclusive"}
	if s.info.Capabilities.Shared {
		modes = append(modes, "shared")
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := startChild(t, s.tgt.Name, p, mode)
			c.Expect(t, "locked")
			h := s.handle(t, p)
			ok, err := h.TryLock()
			mustTry(t, "TryLock while another process holds a "+mode+" lock", ok, err, false)
			if mode == "shared" {
				ok, err = h.TryRLock()
				mustTry(t, "TryRLock beside another process's shared lock", ok, err, true)
				h.Unlock()
			}
			c.Release(t)
			if err := h.Lock(timeoutContext(t, promptly)); err != nil {
				t.Fatalf("Lock after the other process let go: %v", err)
			}
			// And the other way round: the other process is refused.
			c2 := startChild(t, s.tgt.Name, p, "try-"+mode)
			c2.Expect(t, "busy")
			c2.Release(t)
		})
	}
}

func timeoutContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func (s *suiteRun) byteRanges(t *testing.T) {
	p := s.lockPath(t)
	if !s.info.Capabilities.ByteRanges {
		_, err := s.handle(t, p, lockmgr.WithRange(0, 10)).TryLock()
		if !errorsIs(err, lockmgr.ErrUnsupported) {
			t.Fatalf("byte range on a backend without them: %v, want ErrUnsupported", err)
		}
		checkNamed(t, err, p, s.info.Name)
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("a refused request left the lock file behind (stat: %v)", err)
		}
		return
	}
	a := s.handle(t, p, lockmgr.WithRange(0, 10))
	b := s.handle(t, p, lockmgr.WithRange(10, 10))
	c := s.handle(t, p, lockmgr.WithRange(5, 10))
	d := s.handle(t, p, lockmgr.WithRange(20, 0)) // to EOF
	ok, err := a.TryLock()
	mustTry(t, "lock [0,10)", ok, err, true)
	ok, err = b.TryLock()
	mustTry(t, "lock disjoint [10,20)", ok, err, true)
	ok, err = c.TryLock()
	mustTry(t, "lock overlapping [5,15)", ok, err, false)
	ok, err = d.TryLock()
	mustTry(t, "lock [20,EOF)", ok, err, true)
	a.Unlock()
	ok, err = c.TryLock()
	mustTry(t, "lock [5,15) with [10,20) still held", ok, err, false)
	b.Unlock()
	ok, err = c.TryLock()
	mustTry(t, "lock [5,15) once free", ok, err, true)
	whole := s.handle(t, p)
	ok, err = whole.TryLock()
	mustTry(t, "whole-file lock beside range locks", ok, err, false)
	_, err = s.handle(t, p, lockmgr.WithRange(-1, 10)).TryLock()
	if !errorsIs(err, lockmgr.ErrInvalid) {
		t.Fatalf("negative range start: %v, want ErrInvalid", err)
	}
}

func (s *suiteRun) removeOnRelease(t *testing.T) {
	p := s.lockPath(t)
	a := s.handle(t, p, lockmgr.WithRemoveOnRelease())
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("lock file missing while held: %v", err)
	}
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("lock file still there after release with remove-on-release (stat: %v)", err)
	}
	// A waiter that opened the file before the holder removed it must not
	// end up holding a lock on the unlinked file beside a new holder.
	b := s.handle(t, p, lockmgr.WithRemoveOnRelease())
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(timeoutContext(t, promptly)) }()
	time.Sleep(shortly / 3)
	a.Unlock()
	if err := <-got; err != nil {
		t.Fatalf("waiter after a removing release: %v", err)
	}
	ok, err := s.handle(t, p).TryLock()
	mustTry(t, "TryLock on the path while the waiter holds it", ok, err, false)
}

func (s *suiteRun) refusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	_, err := s.handle(t, link).TryLock()
	if err == nil {
		t.Fatal("locked through a symbolic link")
	}
	checkNamed(t, err, link, s.info.Name)
	if _, serr := os.Lstat(target); !os.IsNotExist(serr) {
		t.Fatalf("the link's target was created (stat: %v)", serr)
	}
}

func (s *suiteRun) missingDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no-such-dir", "lock")
	_, err := s.handle(t, p).TryLock()
	if !errorsIs(err, os.ErrNotExist) {
		t.Fatalf("lock in a missing directory: %v, want ErrNotExist", err)
	}
	checkNamed(t, err, p, s.info.Name)
}

func (s *suiteRun) newFileMode(t *testing.T) {
	p := s.lockPath(t)
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	h := s.handle(t, p, lockmgr.WithFileMode(0o640))
	if err := h.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o640 {
		t.Fatalf("new lock file has mode %#o, want 0640", got)
	}
}

// hostKilled: a host SIGKILLed while holding a lock must not leave the
// lock, or its plugin, behind.
func (s *suiteRun) hostKilled(t *testing.T) {
	p := s.lockPath(t)
	c := startChild(t, s.tgt.Name, p, "exclusive")
	c.Expect(t, "locked")
	// A plugin of the host's own must go with it; a shared one serves
	// others, and stays.
	plugins := PluginProcesses(c.Cmd.Process.Pid)
	if len(plugins) == 0 && s.tgt.Name == "plugin" {
		t.Fatal("found no plugin process under the helper process")
	}
	killed := time.Now()
	c.Cmd.Process.Kill()
	h := s.handle(t, p)
	if err := h.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatalf("lock still held %v after its host was killed: %v", promptly, err)
	}
	t.Logf("lock free %v after the host's SIGKILL", time.Since(killed))
	for _, pid := range plugins {
		waitGone(t, pid, "its host was killed")
	}
}

// pluginKilled: a plugin SIGKILLed while its host holds a lock. A backend
// that hands its locks over loses nothing: the host holds the lock, as a
// descriptor, and another process is still refused it. Any other loses the
// lock, and must say so on Lost and at Unlock.
func (s *suiteRun) pluginKilled(t *testing.T) {
	p := s.lockPath(t)
	h := s.handle(t, p, lockmgr.WithHost(privateHost(t)))
	if err := h.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	lost := h.Lost()
	if err := h.LostCause(); err != nil {
		t.Fatalf("LostCause of a lock not lost: %v, want nil", err)
	}
	if !killPlugin(t, nil) {
		t.Fatal("found no plugin process to kill")
	}
	if s.info.Capabilities.HandsOver {
		c := startChild(t, s.tgt.Name, p, "try-exclusive")
		c.Expect(t, "busy")
		c.Release(t)
		if isClosed(lost) {
			t.Fatal("Lost() fired for a lock the host holds itself")
		}
		if err := h.Unlock(); err != nil {
			t.Fatalf("Unlock after the plugin died: %v", err)
		}
	} else {
		select {
		case <-lost:
		case <-time.After(promptly):
			t.Fatalf("Lost() did not fire %v after the plugin was killed", promptly)
		}
		if err := h.LostCause(); !errorsIs(err, lockmgr.ErrPluginExited) || !errorsIs(err, lockmgr.ErrLost) {
			t.Fatalf("LostCause after the plugin died: %v, want ErrPluginExited, which is ErrLost", err)
		}
		if err := h.Unlock(); !errorsIs(err, lockmgr.ErrLost) {
			t.Fatalf("Unlock after the plugin died: %v, want ErrLost", err)
		}
	}
	if err := h.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatalf("Lock through a fresh plugin: %v", err)
	}
}

// lifelineKeepsLock: a lock its plugin holds lives as long as some
// process holds a copy of the plugin's lifeline (Handle.Lifeline), even
// after its host is SIGKILLed, and ends when the last copy goes. A lock
// that is a locked file has no lifeline, and neither has a plugin that
// dies with its host.
func (s *suiteRun) lifelineKeepsLock(t *testing.T) {
	p := s.lockPath(t)
	h := s.handle(t, p, lockmgr.WithHost(privateHost(t)))
	if _, err := h.Lifeline(); !errorsIs(err, lockmgr.ErrNotLocked) {
		t.Fatalf("Lifeline with no lock held: %v, want ErrNotLocked", err)
	}
	if err := h.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatal(err)
	}
	_, err := h.Lifeline()
	h.Unlock()
	if !errorsIs(err, lockmgr.ErrUnsupported) {
		t.Fatalf("Lifeline of a lock whose plugin dies with its host: %v, want ErrUnsupported", err)
	}
	if s.info.Capabilities.HandsOver {
		return // the lock is a locked file: Detach, not Lifeline
	}
	c := startChild(t, s.tgt.Name, p, "lifeline")
	line := c.Next(t, promptly)
	var heir int
	if _, err := fmt.Sscanf(line, "locked %d", &heir); err != nil {
		t.Fatalf("the host said %q, want \"locked PID\"", line)
	}
	t.Cleanup(func() { syscall.Kill(heir, syscall.SIGKILL) })
	plugins := PluginProcesses(c.Cmd.Process.Pid)
	if len(plugins) == 0 {
		t.Fatal("found no plugin process under the helper process")
	}
	c.Cmd.Process.Kill()
	c.Cmd.Wait()
	// A plugin whose lifeline is cut exits within milliseconds; give it
	// far longer, then it must still be there, holding the lock.
	time.Sleep(shortly)
	for _, pid := range plugins {
		if !alive(pid) {
			t.Fatalf("plugin %d exited with its host, though an heir holds its lifeline", pid)
		}
	}
	other := s.handle(t, p)
	if ok, err := other.TryLock(); err != nil || ok {
		t.Fatalf("with its host killed and an heir holding the lifeline, the lock was free to take (%v, %v)", ok, err)
	}
	syscall.Kill(heir, syscall.SIGKILL)
	if err := other.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatalf("the lock still held %v after the last lifeline holder died: %v", promptly, err)
	}
	for _, pid := range plugins {
		waitGone(t, pid, "the last holder of its lifeline died")
	}
}

// privateHost returns a host of the test's own, configured as the shared
// one would be: a backend that needs settings (a lock service's
// endpoints) gets them.
func privateHost(t *testing.T) *pluginhost.Host {
	t.Helper()
	cfg, err := config.Load(config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	settings, err := cfg.BackendSettings()
	if err != nil {
		t.Fatal(err)
	}
	return pluginhost.New(pluginhost.Options{Dirs: []string{suite.pluginDir}, Settings: settings})
}

// settle calls h.Status until it answers, which it does once the host has
// noticed its plugin's death and started a new one.
func settle(t *testing.T, h *lockmgr.Handle) {
	t.Helper()
	deadline := time.Now().Add(promptly)
	for {
		_, err := h.Status(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status still failing %v after the plugin was killed: %v", promptly, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// staleHandleAfterRestart: a handle whose lock was granted by a plugin
// that has since died must never release a lock that the plugin started
// after it granted to another handle, though both plugins number their
// locks alike.
func (s *suiteRun) staleHandleAfterRestart(t *testing.T) {
	host := privateHost(t)
	pa, pb := s.lockPath(t), s.lockPath(t)
	a := s.handle(t, pa, lockmgr.WithHost(host))
	b := s.handle(t, pb, lockmgr.WithHost(host))
	if err := a.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatal(err)
	}
	if !killPlugin(t, host) {
		t.Fatal("found no plugin process to kill")
	}
	settle(t, a) // A moves onto a fresh plugin
	if err := b.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatal(err)
	}
	lostB := b.Lost()
	_ = a.Unlock() // ErrLost, or nothing if the lock outlived its plugin
	c := startChild(t, s.tgt.Name, pb, "try-exclusive")
	c.Expect(t, "busy")
	c.Release(t)
	if isClosed(lostB) {
		t.Fatal("B's Lost() fired, though B's plugin is alive")
	}
	if err := b.Unlock(); err != nil {
		t.Fatalf("B's Unlock: %v", err)
	}
}

// lockAfterPluginDeath: Lock on a handle whose plugin died either takes a
// real lock or fails; it never answers nil while holding nothing.
func (s *suiteRun) lockAfterPluginDeath(t *testing.T) {
	host := privateHost(t)
	p := s.lockPath(t)
	h := s.handle(t, p, lockmgr.WithHost(host))
	if err := h.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatal(err)
	}
	lost := h.Lost()
	if !killPlugin(t, host) {
		t.Fatal("found no plugin process to kill")
	}
	// Give a loss the time to be announced, if this backend loses locks
	// with their plugin.
	select {
	case <-lost:
	case <-time.After(shortly):
	}
	if err := h.Lock(timeoutContext(t, promptly)); err != nil {
		return // an error is an honest answer
	}
	c := startChild(t, s.tgt.Name, p, "try-exclusive")
	c.Expect(t, "busy")
	c.Release(t)
}

// onlyTheHolder: once a lock is granted, no process but its holder has
// the lock file open: not the plugin (a handed-over lock left behind
// there would outlive Unlock), and not a child the host starts, which
// must not inherit a lock it was not given.
func (s *suiteRun) onlyTheHolder(t *testing.T) {
	if !s.info.Capabilities.HandsOver {
		t.Skip("the plugin holds this backend's locks")
	}
	p := s.lockPath(t)
	h := s.handle(t, p)
	if err := h.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	pids := append(PluginProcesses(os.Getpid()), child.Process.Pid)
	for _, pid := range pids {
		if fds := openFilesOf(pid, p); len(fds) > 0 {
			t.Errorf("process %d (%s) has the lock file open as descriptor(s) %v", pid, processExe(pid), fds)
		}
	}
	if fds := openFilesOf(os.Getpid(), p); len(fds) != 1 {
		t.Errorf("the holder has the lock file open as descriptors %v, want exactly one", fds)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if fds := openFilesOf(os.Getpid(), p); len(fds) != 0 {
		t.Errorf("after Unlock the holder still has the lock file open as descriptors %v", fds)
	}
}

// openFilesOf lists the descriptors of process pid open on path, as
// lsof finds them.
func openFilesOf(pid int, path string) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == path {
			out = append(out, e.Name())
		}
	}
	return out
}

// descriptorLimit: a host that holds as many locks as its descriptor
// limit allows is told so, in an error that names the limit, and keeps
// every lock it was granted.
func (s *suiteRun) descriptorLimit(t *testing.T) {
	if !s.info.Capabilities.HandsOver {
		t.Skip("the plugin holds this backend's locks")
	}
	c := startChild(t, s.tgt.Name, filepath.Join(t.TempDir(), "lock"), "fill-descriptors")
	line := c.Next(t, promptly)
	if !strings.Contains(line, "RLIMIT_NOFILE") || !strings.Contains(line, "limit of 128 ") {
		t.Fatalf("the host at its descriptor limit said %q; want an error naming RLIMIT_NOFILE and its value, 128", line)
	}
	c.Expect(t, "all held")
	c.Release(t)
}
