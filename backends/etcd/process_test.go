package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/locktest"
)

// The test binary re-run as another lockmgr host: helperEnv names what it
// does, and the rest of its instructions come in these variables. Every
// helper locks through its own etcd plugin, started by its own host, and
// finds etcd through the LOCKMGR_ETCD_* variables, as `lockmgr` would.
const (
	helperEnv       = "ETCDTEST_HELPER"     // "hold", "try", "loop", or "etcd" (server_test.go)
	helperName      = "ETCDTEST_NAME"       // the lock's name
	helperPluginDir = "ETCDTEST_PLUGIN_DIR" // where the plugin binary is
	helperDir       = "ETCDTEST_DIR"        // loop: the shared counter's directory
	helperFor       = "ETCDTEST_FOR"        // loop: how long to go on
	helperShared    = "ETCDTEST_SHARED"     // set: lock through the user's shared plugin instead
)

// helper runs the helper process's whole life and returns its exit code.
func helper(mode string) int {
	if mode == "etcd" {
		return serveEtcd()
	}
	opts := []lockmgr.Option{lockmgr.WithPluginDir(os.Getenv(helperPluginDir)), lockmgr.WithBackend(backendName)}
	if os.Getenv(helperShared) == "" {
		opts = append(opts, lockmgr.WithPrivatePlugin())
	}
	h := lockmgr.New(os.Getenv(helperName), opts...)
	defer h.Close()
	switch mode {
	case "hold", "try":
		return helperHold(h, mode == "hold")
	case "loop":
		return helperLoop(h)
	}
	fmt.Println("error: unknown helper mode", mode)
	return 2
}

// helperHold takes the lock (waiting for it, or trying once) and says
// "locked TOKEN", "busy" or "error: ...". Holding, it lets go when its
// stdin closes, or says "lost" and exits 3 when the lock is lost.
func helperHold(h *lockmgr.Handle, wait bool) int {
	stdinClosed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	var err error
	if wait {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = h.Lock(ctx)
		cancel()
	} else {
		var ok bool
		if ok, err = h.TryLock(); err == nil && !ok {
			fmt.Println("busy")
			<-stdinClosed
			return 0
		}
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked", h.FencingToken())
	select {
	case <-stdinClosed:
		if err := h.Unlock(); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return 0
	case <-h.Lost():
		fmt.Println("lost")
		return 3
	}
}

// helperLoop locks, runs a critical section on a counter file shared with
// the other loops, and unlocks, again and again for helperFor. The
// critical section would catch two holders at once twice over: a marker
// file made with O_EXCL, and a read-sleep-write increment that loses
// counts when interleaved. It ends by saying "done ok=N failed=N lost=N
// violations=N after=N", where after counts the sections begun once the
// test made the file "restarted".
func helperLoop(h *lockmgr.Handle) int {
	dir := os.Getenv(helperDir)
	d, err := time.ParseDuration(os.Getenv(helperFor))
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	counter, marker := filepath.Join(dir, "counter"), filepath.Join(dir, "marker")
	var ok, failed, lost, violations, after int
	for until := time.Now().Add(d); time.Now().Before(until); {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := h.Lock(ctx)
		cancel()
		if err != nil {
			// etcd is down, or restarting: try again.
			failed++
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "restarted")); err == nil {
			after++
		}
		mine := true
		if f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err != nil {
			violations++
			mine = false
			fmt.Fprintln(os.Stderr, "violation: marker exists:", err)
		} else {
			f.Close()
		}
		b, _ := os.ReadFile(counter)
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil && len(b) > 0 {
			violations++
			fmt.Fprintf(os.Stderr, "violation: counter reads %q\n", b)
		}
		time.Sleep(2 * time.Millisecond)
		os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o644)
		if mine {
			os.Remove(marker)
		}
		select {
		case <-h.Lost():
			lost++
		default:
		}
		h.Unlock()
		ok++
	}
	fmt.Printf("done ok=%d failed=%d lost=%d violations=%d after=%d\n", ok, failed, lost, violations, after)
	return 0
}

// hostProc is a helper host process seen from the test: a locktest.Peer
// whose stderr is kept, to show when the test fails.
type hostProc struct {
	*locktest.Peer
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startHost starts a helper host in mode on the lock name, with env added
// to (and overriding) the test's own environment.
func startHost(t *testing.T, mode, name string, env ...string) *hostProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperName+"="+name, helperPluginDir+"="+locktest.PluginDir())
	cmd.Env = append(cmd.Env, env...)
	p := &hostProc{stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	t.Cleanup(func() {
		if t.Failed() && p.stderr.String() != "" {
			t.Logf("%s helper's stderr:\n%s", mode, p.stderr)
		}
	})
	p.Peer = locktest.StartPeer(t, cmd)
	return p
}

// locked waits for "locked TOKEN" and returns the token.
func (p *hostProc) locked(t *testing.T, d time.Duration) uint64 {
	t.Helper()
	line := p.Next(t, d)
	tok, ok := strings.CutPrefix(line, "locked ")
	n, err := strconv.ParseUint(tok, 10, 64)
	if !ok || err != nil || n == 0 {
		t.Fatalf("helper said %q, want \"locked TOKEN\"", line)
	}
	return n
}

// TestTwoHostsExclude: two host processes, each with its own plugin and
// so its own etcd client and lease, exclude each other, and a waiter in a
// third is granted the lock when the holder lets go, with a larger token.
func TestTwoHostsExclude(t *testing.T) {
	name := uniqueName("two-hosts")
	a := startHost(t, "hold", name)
	tokenA := a.locked(t, 20*time.Second)
	b := startHost(t, "try", name)
	if line := b.Next(t, 20*time.Second); line != "busy" {
		t.Fatalf("second host's try while the first holds: %q, want busy", line)
	}
	b.Release(t)
	c := startHost(t, "hold", name)
	// Wait until c's waiter key is there, so that what follows measures
	// the hand-over and not c's start.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := inprocBackend().Inspect(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Waiters) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the third host is not waiting 20s after it started: %+v", st)
		}
	}
	c.Silent(t, 300*time.Millisecond)
	released := time.Now()
	a.LetGo() // its exit is waited for below
	tokenC := c.locked(t, 10*time.Second)
	t.Logf("waiting host granted the lock %v after the holder was told to let go", time.Since(released))
	a.Release(t)
	if tokenC <= tokenA {
		t.Fatalf("second holder's token %d is not above the first's %d", tokenC, tokenA)
	}
	c.Release(t)
}

// TestKilledHolderFreesAfterTTL: a holder whose host and plugin are both
// SIGKILLed revokes nothing; its lease expires, and a waiter is granted
// the lock within about a TTL.
func TestKilledHolderFreesAfterTTL(t *testing.T) {
	name := uniqueName("killed")
	a := startHost(t, "hold", name)
	a.locked(t, 20*time.Second)
	plugins := locktest.PluginProcesses(a.Cmd.Process.Pid)
	if len(plugins) == 0 {
		t.Fatal("found no plugin process under the helper host")
	}
	// The plugins first: a plugin that outlived its host by a moment
	// would revoke its lease (TestKilledHostFreesPromptly), and this test
	// is about a holder that vanishes at once, as with a crashed machine.
	for _, pid := range plugins {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	a.Cmd.Process.Kill()
	killed := time.Now()
	h := lockmgr.New(name, lockmgr.WithLockMgr(inprocBackend()))
	defer h.Close()
	// The lease outlives its holder by up to a TTL: that is what a lease is.
	if ok, err := h.TryLock(); ok || err != nil {
		t.Fatalf("TryLock just after the holder was killed: %v, %v; want busy until its lease expires", ok, err)
	}
	if err := h.Lock(timeoutContext(t, 5*testTTL)); err != nil {
		t.Fatalf("lock still held %v after its holder was killed: %v", 5*testTTL, err)
	}
	t.Logf("lock free %v after its holder was SIGKILLed (TTL %v)", time.Since(killed), testTTL)
}

// TestLostViaPlugin: a host's lost channel fires, across the plugin
// boundary, when etcd goes away while the lock is held.
func TestLostViaPlugin(t *testing.T) {
	srv, err := startEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	a := startHost(t, "hold", uniqueName("lost-plugin"),
		"LOCKMGR_ETCD_ENDPOINTS="+srv.Endpoint(), "LOCKMGR_ETCD_DIAL_TIMEOUT=1")
	a.locked(t, 20*time.Second)
	a.Silent(t, 3*time.Second/2)
	stopped := time.Now()
	srv.Stop()
	if line := a.Next(t, 15*time.Second); line != "lost" {
		t.Fatalf("holder said %q after etcd stopped, want lost", line)
	}
	t.Logf("the host heard of the loss %v after etcd stopped (TTL %v)", time.Since(stopped), testTTL)
}

// TestConfigOverTheWire: a host's LOCKMGR_ETCD_* variables reach the
// plugin, and a bad one is an ErrConfig naming its key.
func TestConfigOverTheWire(t *testing.T) {
	a := startHost(t, "try", uniqueName("config"), "LOCKMGR_ETCD_TTL=soon")
	line := a.Next(t, 20*time.Second)
	if !strings.HasPrefix(line, "error:") || !strings.Contains(line, "ttl") || !strings.Contains(line, "invalid backend settings") {
		t.Fatalf("host with LOCKMGR_ETCD_TTL=soon said %q, want a settings error naming ttl", line)
	}
}

// TestRestartNeverTwoHolders: several hosts loop lock, critical section,
// unlock while etcd is stopped and started again on the same data: never
// are two in the critical section at once, no increment is lost, and the
// loops go on once etcd is back.
func TestRestartNeverTwoHolders(t *testing.T) {
	srv, err := startEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	dir := t.TempDir()
	name := uniqueName("restart")
	const hosts = 3
	var procs []*hostProc
	for range hosts {
		procs = append(procs, startHost(t, "loop", name,
			"LOCKMGR_ETCD_ENDPOINTS="+srv.Endpoint(), "LOCKMGR_ETCD_TTL=5", "LOCKMGR_ETCD_DIAL_TIMEOUT=1",
			helperDir+"="+dir, helperFor+"=9s"))
	}
	time.Sleep(2 * time.Second)
	srv.Stop()
	time.Sleep(time.Second)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "restarted"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var ok, after, lost, failed int
	for i, p := range procs {
		line := p.Next(t, 30*time.Second)
		var o, f, l, v, a int
		if _, err := fmt.Sscanf(line, "done ok=%d failed=%d lost=%d violations=%d after=%d", &o, &f, &l, &v, &a); err != nil {
			t.Fatalf("host %d said %q: %v", i, line, err)
		}
		if v != 0 {
			t.Errorf("host %d saw %d violations of mutual exclusion; stderr:\n%s", i, v, p.stderr)
		}
		ok, after, lost, failed = ok+o, after+a, lost+l, failed+f
		p.Release(t)
	}
	b, err := os.ReadFile(filepath.Join(dir, "counter"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(string(b)); n != ok {
		t.Errorf("counter is %d after %d critical sections: increments were lost to overlapping holders", n, ok)
	}
	if after == 0 {
		t.Errorf("no critical section after etcd restarted (%d in all)", ok)
	}
	t.Logf("%d hosts: %d critical sections, %d after the restart; %d failed attempts while etcd was away, %d locks lost", hosts, ok, after, failed, lost)
}

// TestKilledHostFreesPromptly: when only the host is SIGKILLed, its
// plugin sees the lifeline close and revokes its leases before it exits,
// so the lock frees at once rather than a TTL later.
func TestKilledHostFreesPromptly(t *testing.T) {
	name := uniqueName("host-killed")
	// A long TTL, so that the bound below tells a revoked lease from an
	// expired one with room to spare on a loaded machine: with the
	// package's 2 s TTL the bound was 1.5 s, which a busy machine missed.
	const ttl = 30 * time.Second
	a := startHost(t, "hold", name, fmt.Sprintf("LOCKMGR_ETCD_TTL=%d", int(ttl/time.Second)))
	a.locked(t, 20*time.Second)
	plugins := locktest.PluginProcesses(a.Cmd.Process.Pid)
	if len(plugins) == 0 {
		t.Fatal("found no plugin process under the helper host")
	}
	a.Cmd.Process.Kill()
	killed := time.Now()
	h := lockmgr.New(name, lockmgr.WithLockMgr(inprocBackend()))
	defer h.Close()
	// Well under the TTL: generous for a loaded machine, yet only a
	// revoked lease, not an expired one, can meet it.
	if err := h.Lock(timeoutContext(t, ttl*2/3)); err != nil {
		t.Fatalf("lock still held %v after its host was killed (TTL %v): %v", ttl*2/3, ttl, err)
	}
	t.Logf("lock free %v after its host was SIGKILLed (TTL %v)", time.Since(killed), ttl)
}

// runningLockmgr is a `lockmgr run` a test started: its command's
// standard output line by line, its standard error for the test's log,
// and its end.
type runningLockmgr struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	lines  chan string
	exited chan error
}

// startLockmgr starts cmd, a `lockmgr run`, and kills it when the test
// ends, logging its standard error if the test failed.
func startLockmgr(t *testing.T, cmd *exec.Cmd) *runningLockmgr {
	t.Helper()
	r := &runningLockmgr{cmd: cmd, lines: make(chan string, 16), exited: make(chan error, 1)}
	cmd.Stderr = &r.stderr
	// A pipe of our own, not StdoutPipe, whose reads must all end before
	// Wait: here Wait runs beside the reader.
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		defer out.Close()
		s := bufio.NewScanner(out)
		for s.Scan() {
			r.lines <- s.Text()
		}
		close(r.lines)
	}()
	go func() { r.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("lockmgr run's stderr:\n%s", r.stderr.String())
		}
	})
	return r
}

// next returns the command's next line, failing the test if none comes
// within d (a bound against a hang, not a measure).
func (r *runningLockmgr) next(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-r.lines:
		if !ok {
			t.Fatalf("lockmgr run's command said nothing more; stderr:\n%s", r.stderr.String())
		}
		return line
	case <-time.After(d):
		t.Fatalf("lockmgr run's command said nothing in %v; stderr:\n%s", d, r.stderr.String())
	}
	return ""
}

// exitCode waits up to d for lockmgr run to exit and returns its status.
func (r *runningLockmgr) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case err := <-r.exited:
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &exit):
			return exit.ExitCode()
		}
		t.Fatalf("lockmgr run: %v", err)
	case <-time.After(d):
		t.Fatalf("lockmgr run still running after %v", d)
	}
	return -1
}

// TestSharedPluginHostKilledFreesPromptly: two hosts lock through one
// shared etcd plugin. Each lock is recorded as its own host's, not the
// plugin's nor its starter's; and when one host is SIGKILLed, the plugin
// gives back that host's lock at once, and no other: it lives on for the
// others.
func TestSharedPluginHostKilledFreesPromptly(t *testing.T) {
	const ttl = 30 * time.Second
	ttlEnv := fmt.Sprintf("LOCKMGR_ETCD_TTL=%d", int(ttl/time.Second))
	first, second := uniqueName("shared-a"), uniqueName("shared-b")
	a := startHost(t, "hold", first, helperShared+"=1", ttlEnv)
	a.locked(t, 20*time.Second)
	b := startHost(t, "hold", second, helperShared+"=1", ttlEnv)
	b.locked(t, 20*time.Second)
	if plugins := locktest.PluginProcesses(b.Cmd.Process.Pid); len(plugins) != 0 {
		t.Fatalf("the second host started plugins %v of its own, want the first's shared one", plugins)
	}
	for _, c := range []struct {
		name string
		pid  int
	}{{first, a.Cmd.Process.Pid}, {second, b.Cmd.Process.Pid}} {
		st, err := inprocBackend().Inspect(context.Background(), c.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Holders) != 1 || st.Holders[0].PID != c.pid {
			t.Fatalf("%s is held by %+v, want its host, pid %d", c.name, st.Holders, c.pid)
		}
	}
	a.Cmd.Process.Kill()
	killed := time.Now()
	h := lockmgr.New(first, lockmgr.WithLockMgr(inprocBackend()))
	defer h.Close()
	if err := h.Lock(timeoutContext(t, 20*time.Second)); err != nil {
		t.Fatalf("lock still held 20s after its host was killed (TTL %v): %v", ttl, err)
	}
	t.Logf("lock free %v after its host was SIGKILLed", time.Since(killed))
	other := lockmgr.New(second, lockmgr.WithLockMgr(inprocBackend()))
	defer other.Close()
	if ok, err := other.TryLock(); ok || err != nil {
		t.Fatalf("the other host's lock after the kill: %v, %v; want still held", ok, err)
	}
	b.Release(t)
}
