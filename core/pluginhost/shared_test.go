package pluginhost_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// Helper processes of the shared-plugin tests, each the test binary run
// again with one of these variables set (TestMain dispatches).
const (
	// waitingHostEnv: a host that waits for the lock on the file it
	// names, through the shared plugin, says "granted" once it has it,
	// and then waits to be killed.
	waitingHostEnv = "PLUGINHOST_TEST_WAITING_HOST"
	// foreignListenerEnv: a process of another user that listens on the
	// bound socket it inherits as descriptor 3, until its stdin closes.
	foreignListenerEnv = "PLUGINHOST_TEST_FOREIGN_LISTENER"
	// foreignHostEnv: a process of another user that connects to the
	// socket it names and asks the plugin there about itself.
	foreignHostEnv = "PLUGINHOST_TEST_FOREIGN_HOST"
)

// runSharedHelper runs the helper process the environment asks for, if
// any, and reports whether it did and with what exit code.
func runSharedHelper() (int, bool) {
	switch {
	case os.Getenv(waitingHostEnv) != "":
		return runWaitingHost(os.Getenv(waitingHostEnv)), true
	case os.Getenv(foreignListenerEnv) != "":
		return runForeignListener(), true
	case os.Getenv(foreignHostEnv) != "":
		return runForeignHost(os.Getenv(foreignHostEnv)), true
	}
	return 0, false
}

// sharedRuntime gives the test a runtime directory of its own, so that it
// meets no shared plugin but its own, and kills at its end every shared
// plugin it started.
func sharedRuntime(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lockmgr")
	t.Setenv(pluginhost.RuntimeDirEnv, dir)
	t.Cleanup(func() { locktest.KillSharedPlugins(dir) })
	return dir
}

func sharedOptions(dirs ...string) pluginhost.Options {
	if len(dirs) == 0 {
		dirs = []string{pluginDir}
	}
	return pluginhost.Options{Dirs: dirs, Shared: true, Idle: time.Minute}
}

// getShared connects a new host to the shared flock plugin.
func getShared(t *testing.T, opts pluginhost.Options) *pluginhost.Plugin {
	t.Helper()
	p := getFlock(t, pluginhost.New(opts))
	t.Cleanup(p.Done)
	if !p.Shared() {
		t.Fatal("the flock plugin is not the shared one")
	}
	return p
}

func lockFile(t *testing.T, p *pluginhost.Plugin, path string, wait bool) (backend.Held, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), promptly)
	defer cancel()
	return p.Acquire(ctx, backend.Request{Path: path, Mode: backend.Exclusive, Wait: wait, FileMode: 0o600, HandOver: true})
}

func hosts(t *testing.T, p *pluginhost.Plugin) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), promptly)
	defer cancel()
	st, err := p.Stat(ctx)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	return st.Hosts
}

// TestSharedPluginServesEveryHost: two hosts reach one plugin process,
// each on a session of its own, and the locks it grants them exclude each
// other.
func TestSharedPluginServesEveryHost(t *testing.T) {
	dir := sharedRuntime(t)
	a := getShared(t, sharedOptions())
	b := getShared(t, sharedOptions())
	if a.PID() != b.PID() {
		t.Fatalf("two hosts got plugins %d and %d, want one shared", a.PID(), b.PID())
	}
	if n := hosts(t, a); n != 2 {
		t.Errorf("the plugin counts %d hosts, want 2", n)
	}
	path := filepath.Join(t.TempDir(), "lock")
	held, err := lockFile(t, a, path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer held.File.Close()
	if _, err := lockFile(t, b, path, false); !errors.Is(err, backend.ErrBusy) {
		t.Fatalf("second host's try of a held lock: %v, want ErrBusy", err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("runtime directory: %v, %v; want mode 0700", st.Mode(), err)
	}
}

// TestSharedPluginStartRace: hosts that all find no plugin at once start
// one between them.
func TestSharedPluginStartRace(t *testing.T) {
	sharedRuntime(t)
	const n = 8
	pids := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			p, err := pluginhost.New(sharedOptions()).Get("flock")
			if err != nil {
				t.Errorf("host %d: %v", i, err)
				return
			}
			t.Cleanup(p.Done)
			if !p.Shared() {
				t.Errorf("host %d got a private plugin", i)
			}
			pids[i] = p.PID()
		}()
	}
	close(start)
	wg.Wait()
	for i, pid := range pids {
		if pid != pids[0] {
			t.Fatalf("host %d reached plugin %d, host 0 plugin %d: the race started two", i, pid, pids[0])
		}
	}
}

// TestSharedPluginStaleSocket: a plugin killed outright leaves its
// socket's name behind; the next host replaces it with a new plugin.
func TestSharedPluginStaleSocket(t *testing.T) {
	dir := sharedRuntime(t)
	a := getShared(t, sharedOptions())
	old := a.PID()
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, old, "SIGKILL")
	if socks, _ := filepath.Glob(filepath.Join(dir, "*.sock")); len(socks) != 1 {
		t.Fatalf("sockets after the kill: %v, want the dead plugin's", socks)
	}
	b := getShared(t, sharedOptions())
	if b.PID() == old {
		t.Fatal("reached the dead plugin")
	}
	if _, err := lockFile(t, b, filepath.Join(t.TempDir(), "lock"), false); err != nil {
		t.Fatalf("lock on the new plugin: %v", err)
	}
}

// TestSharedPluginIdleExit: with no host left, the plugin exits once its
// idle time has passed, and takes its socket's name with it.
func TestSharedPluginIdleExit(t *testing.T) {
	dir := sharedRuntime(t)
	opts := sharedOptions()
	opts.Idle = 50 * time.Millisecond
	p := getFlock(t, pluginhost.New(opts))
	pid := p.PID()
	p.Done()
	waitGone(t, pid, "its last host left")
	if socks, _ := filepath.Glob(filepath.Join(dir, "*.sock")); len(socks) != 0 {
		t.Fatalf("sockets left after the idle exit: %v", socks)
	}
}

// TestSharedPluginBinaryReplaced: a plugin binary replaced while its
// shared plugin runs (an upgrade) starts a new plugin for new hosts,
// while the old one goes on serving its own.
func TestSharedPluginBinaryReplaced(t *testing.T) {
	sharedRuntime(t)
	dir := privateDir(t)
	bin := copyPlugin(t, dir, "flock")
	a := getShared(t, sharedOptions(dir))
	fresh := copyPlugin(t, privateDir(t), "flock")
	if err := os.Rename(fresh, bin); err != nil {
		t.Fatal(err)
	}
	b := getShared(t, sharedOptions(dir))
	if a.PID() == b.PID() {
		t.Fatal("a host reached the plugin of the replaced binary")
	}
	if hosts(t, a) != 1 || hosts(t, b) != 1 {
		t.Error("each plugin should serve one host")
	}
}

// TestSharedPluginKilledWhileWaiting: every host waiting on a shared
// plugin hears of its death at once, as an error the library retries on
// a new plugin (core's Handle); none is left waiting for no one.
func TestSharedPluginKilledWhileWaiting(t *testing.T) {
	sharedRuntime(t)
	path := filepath.Join(t.TempDir(), "lock")
	holder := getShared(t, sharedOptions())
	held, err := lockFile(t, holder, path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer held.File.Close()
	const n = 3
	errs := make(chan error, n)
	for range n {
		w := getShared(t, sharedOptions())
		go func() {
			_, err := lockFile(t, w, path, true)
			errs <- err
		}()
	}
	waitWaiters(t, holder, path, n)
	if err := holder.Kill(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; !errors.Is(err, pluginrpc.ErrPluginExited) {
			t.Errorf("a waiter whose plugin was killed: %v, want ErrPluginExited", err)
		}
	}
}

// waitWaiters waits until the plugin p reports n waiters for path.
func waitWaiters(t *testing.T, p *pluginhost.Plugin, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(promptly)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), promptly)
		st, err := p.Inspect(ctx, path)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Waiters) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters after %v, want %d", len(st.Waiters), promptly, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSharedPluginManyHosts: 200 hosts on one plugin, all waiting for one
// lock, each get it in turn, and never two at once.
func TestSharedPluginManyHosts(t *testing.T) {
	sharedRuntime(t)
	path := filepath.Join(t.TempDir(), "lock")
	const n = 200
	var inside, most, granted atomic.Int32
	var wg sync.WaitGroup
	pid := 0
	for i := range n {
		p := getShared(t, sharedOptions())
		if i == 0 {
			pid = p.PID()
		} else if p.PID() != pid {
			t.Fatalf("host %d reached plugin %d, not %d", i, p.PID(), pid)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*promptly)
			defer cancel()
			held, err := p.Acquire(ctx, backend.Request{Path: path, Mode: backend.Exclusive, Wait: true, FileMode: 0o600, HandOver: true})
			if err != nil {
				t.Errorf("host %d: %v", i, err)
				return
			}
			now := inside.Add(1)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			granted.Add(1)
			inside.Add(-1)
			_ = fdlock.ReleaseDescription(held.File)
			held.File.Close()
		}()
	}
	wg.Wait()
	if granted.Load() != n || most.Load() != 1 {
		t.Fatalf("%d of %d hosts granted, at most %d at once; want all, one at a time", granted.Load(), n, most.Load())
	}
}

// TestSharedPluginHostKilledWhileWaiting: a host killed while it waits has
// its wait cancelled: once the holder lets go, the lock is not granted to
// the dead host and kept, but free for the next. So even when a child of
// the host, forked without exec, holds a copy of its session: the plugin
// ends a session with its host's process.
func TestSharedPluginHostKilledWhileWaiting(t *testing.T) {
	dir := sharedRuntime(t)
	path := filepath.Join(t.TempDir(), "lock")
	holder := getShared(t, sharedOptions())
	held, err := lockFile(t, holder, path, false)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), waitingHostEnv+"="+path, "PLUGINHOST_TEST_DIR="+pluginDir, pluginhost.RuntimeDirEnv+"="+dir, quickRaceExit())
	cmd.Stderr = os.Stderr
	// The host's child, which holds a copy of its session, lives until
	// this pipe closes, at the test's end.
	// (Not StdinPipe, which Wait closes.)
	stdin, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	cmd.Stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	waitWaiters(t, holder, path, 1)
	if n := hosts(t, holder); n != 2 {
		t.Fatalf("the plugin counts %d hosts, want 2", n)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(promptly)
	for hosts(t, holder) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the killed host's session is still served")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = fdlock.ReleaseDescription(held.File)
	held.File.Close()
	again, err := lockFile(t, holder, path, false)
	if err != nil {
		t.Fatalf("the lock after its killed waiter: %v; want it free", err)
	}
	again.File.Close()
}

func runWaitingHost(path string) int {
	h := pluginhost.New(sharedOptions(os.Getenv("PLUGINHOST_TEST_DIR")))
	p, err := h.Get("flock")
	if err != nil {
		fmt.Fprintln(os.Stderr, "waiting host:", err)
		return 1
	}
	// A child forked without exec would keep a copy of the session; this
	// one is given every socket the host has, and lives on after it.
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), holderEnv+"=1")
	child.Stdin, child.Stderr = os.Stdin, os.Stderr
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, e := range fds {
		link, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if fd, _ := strconv.Atoi(e.Name()); fd > 2 && strings.HasPrefix(link, "socket:") {
			child.ExtraFiles = append(child.ExtraFiles, os.NewFile(uintptr(fd), link))
		}
	}
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "waiting host:", err)
		return 1
	}
	_, err = p.Acquire(context.Background(), backend.Request{Path: path, Mode: backend.Exclusive, Wait: true, FileMode: 0o600, HandOver: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "waiting host:", err)
		return 1
	}
	fmt.Println("granted")
	select {}
}

// nobody is the uid the foreign-user tests run their other user as.
const nobody = 65534

// asNobody returns a command that runs the test binary as nobody, with
// env added: from a copy that nobody may execute, since the test binary's
// own directory is private to the user who built it.
func asNobody(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a process as another user")
	}
	dir, err := os.MkdirTemp("", "pluginhost-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "helper")
	if err := os.WriteFile(exe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Dir = "/"
	cmd.Env = append(append(os.Environ(), quickRaceExit()), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	return cmd
}

// TestSharedDirOfAnotherUserRefused: a runtime directory that another
// user owns, and so could have put a socket in, is not used: the host
// starts a private plugin.
func TestSharedDirOfAnotherUserRefused(t *testing.T) {
	dir := sharedRuntime(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give a directory to another user")
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	p := getFlock(t, pluginhost.New(sharedOptions()))
	defer p.Done()
	if p.Shared() {
		t.Fatal("used a shared plugin through another user's directory")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("wrote %v into another user's directory", entries)
	}
}

// TestSharedSocketOfAnotherUserRefused: a socket served by another user's
// process (someone who got a socket in place, however) is refused before
// anything is sent to it: the host starts a private plugin.
func TestSharedSocketOfAnotherUserRefused(t *testing.T) {
	dir := sharedRuntime(t)
	// Learn the socket's name from a real start, then stand in for it.
	a := getFlock(t, pluginhost.New(sharedOptions()))
	socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	if len(socks) != 1 {
		t.Fatalf("sockets: %v", socks)
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, a.PID(), "SIGKILL")
	a.Done()
	os.Remove(socks[0])
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: socks[0]}); err != nil {
		t.Fatal(err)
	}
	bound := os.NewFile(uintptr(fd), "bound")
	cmd := asNobody(t, foreignListenerEnv+"=1")
	cmd.ExtraFiles = []*os.File{bound}
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bound.Close()
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "listening\n" {
		t.Fatalf("the other user's listener said %q", line)
	}
	p := getFlock(t, pluginhost.New(sharedOptions()))
	defer p.Done()
	if p.Shared() {
		t.Fatal("took a socket served by another user for the shared plugin")
	}
}

func runForeignListener() int {
	if err := unix.Listen(3, 8); err != nil {
		fmt.Fprintln(os.Stderr, "listener:", err)
		return 1
	}
	fmt.Println("listening")
	go func() {
		for {
			if _, _, err := unix.Accept(3); err != nil {
				return
			}
		}
	}()
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// TestSharedPluginRefusesAnotherUser: a host of another user that reaches
// the plugin's socket anyway (here, through modes opened on purpose) is
// refused by the plugin, and served nothing.
func TestSharedPluginRefusesAnotherUser(t *testing.T) {
	dir := sharedRuntime(t)
	p := getShared(t, sharedOptions())
	socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	if len(socks) != 1 {
		t.Fatalf("sockets: %v", socks)
	}
	for name := dir; name != os.TempDir() && name != "/"; name = filepath.Dir(name) {
		if err := os.Chmod(name, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(socks[0], 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := asNobody(t, foreignHostEnv+"="+socks[0])
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the other user's host: %v", err)
	}
	if string(out) != "refused\n" {
		t.Fatalf("the other user's host was %q, want refused", out)
	}
	if n := hosts(t, p); n != 1 {
		t.Errorf("the plugin counts %d hosts, want its one", n)
	}
}

func runForeignHost(sock string) int {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err == nil {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: sock})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "foreign host:", err)
		return 1
	}
	req, _ := proto.Marshal(&lockpb.SessionRequest{Call: 1, Op: &lockpb.SessionRequest_Stat{Stat: &lockpb.StatRequest{}}})
	if _, err := unix.Write(fd, req); err != nil {
		// The plugin may have closed the connection already.
		fmt.Println("refused")
		return 0
	}
	buf := make([]byte, 1<<16)
	n, err := unix.Read(fd, buf)
	switch {
	case err != nil || n == 0:
		fmt.Println("refused")
	default:
		fmt.Println("answered")
	}
	return 0
}

// TestSharedPluginChecksumPin: a pinned sha256 guards the shared plugin as
// it guards a private one. A host whose pin the binary does not match is
// refused, never handed the plugin that a host with the right pin
// started, and no private plugin stands in.
func TestSharedPluginChecksumPin(t *testing.T) {
	sharedRuntime(t)
	right := sharedOptions()
	right.Checksums = map[string]string{"flock": sha256Of(t, pluginPath())}
	getShared(t, right)
	wrong := sharedOptions()
	wrong.Checksums = map[string]string{"flock": strings.Repeat("0", 64)}
	p, err := pluginhost.New(wrong).Get("flock")
	if err == nil {
		p.Done()
		t.Fatalf("a host with a mismatched pin got a plugin (shared: %v)", p.Shared())
	}
	if !errors.Is(err, backend.ErrPluginRejected) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("Get with a mismatched pin: %v, want ErrPluginRejected naming the sha256", err)
	}
}

// TestSharedPluginIdleExitSparesItsSuccessor: a plugin whose socket's name
// was removed from under it (a cleaner of the runtime directory) lives
// on for its hosts while a new host starts a successor under that name;
// when the old one exits idle, the name it removes is not the successor's.
func TestSharedPluginIdleExitSparesItsSuccessor(t *testing.T) {
	dir := sharedRuntime(t)
	quick := sharedOptions()
	quick.Idle = 50 * time.Millisecond
	old := getFlock(t, pluginhost.New(quick))
	socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	if len(socks) != 1 {
		t.Fatalf("sockets: %v", socks)
	}
	if err := os.Remove(socks[0]); err != nil {
		t.Fatal(err)
	}
	successor := getShared(t, sharedOptions())
	if successor.PID() == old.PID() {
		t.Fatal("reached the plugin whose socket was removed")
	}
	oldPID := old.PID()
	old.Done()
	waitGone(t, oldPID, "its last host left")
	if again := getShared(t, sharedOptions()); again.PID() != successor.PID() {
		t.Fatalf("a new host reached plugin %d, not the successor %d: the old plugin removed its socket", again.PID(), successor.PID())
	}
}

// TestSharedPluginThatDoesNotAnswer: a shared plugin that has stopped
// (SIGSTOP here; stuck, in life) still takes connections, in its backlog,
// but answers nothing. A host that connects gets no answer in time, and
// locks through a private plugin instead; the stopped one is left alone
// for its own hosts.
func TestSharedPluginThatDoesNotAnswer(t *testing.T) {
	sharedRuntime(t)
	a := getShared(t, sharedOptions())
	if err := syscall.Kill(a.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(a.PID(), syscall.SIGCONT)
	b := getFlock(t, pluginhost.New(sharedOptions()))
	defer b.Done()
	if b.Shared() {
		t.Fatal("a host was handed the shared plugin that answers nothing")
	}
	if _, err := lockFile(t, b, filepath.Join(t.TempDir(), "lock"), false); err != nil {
		t.Fatalf("lock through the private plugin: %v", err)
	}
	if gone(a.PID()) {
		t.Fatal("the stopped shared plugin was killed")
	}
}

// TestSharedPluginGoneAsAHostConnects: a plugin that goes away (killed
// here; exiting idle, in life) while a host's connection waits in its
// backlog resets that connection. The host starts a new shared plugin
// and uses it, rather than taking the reset for a plugin that does not
// answer and going private.
func TestSharedPluginGoneAsAHostConnects(t *testing.T) {
	ssPath, err := exec.LookPath("ss")
	if err != nil {
		t.Skip("needs ss(8) (Debian's iproute2), to see a connection wait in the plugin's backlog")
	}
	dir := sharedRuntime(t)
	a := getShared(t, sharedOptions())
	old := a.PID()
	if err := syscall.Kill(old, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	if len(socks) != 1 {
		t.Fatalf("sockets: %v", socks)
	}
	type got struct {
		p   *pluginhost.Plugin
		err error
	}
	result := make(chan got, 1)
	go func() {
		p, err := pluginhost.New(sharedOptions()).Get("flock")
		result <- got{p, err}
	}()
	// The new host's connection waits, unaccepted, in the stopped
	// plugin's backlog: ss shows the listener's queue in Recv-Q.
	for deadline := time.Now().Add(promptly); ; time.Sleep(time.Millisecond) {
		out, _ := exec.Command(ssPath, "-xlH", "src", socks[0]).Output()
		if f := strings.Fields(string(out)); len(f) > 2 && f[2] != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection waits in the plugin's backlog after %v", promptly)
		}
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	r := <-result
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.p.Done()
	if !r.p.Shared() || r.p.PID() == old {
		t.Fatalf("after its plugin went away, the host got plugin %d (shared: %v), want a new shared one", r.p.PID(), r.p.Shared())
	}
}
