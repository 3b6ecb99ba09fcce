package pluginhost_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"golang.org/x/sys/unix"
)

// promptly bounds every wait: generous, since a loaded machine may be
// slow to start or reap a process, and these tests assert that things
// happen, not how fast.
const promptly = 10 * time.Second

// holderEnv turns the test binary into a process that keeps its
// descriptor 3 (a lifeline copy) open until its stdin closes.
const holderEnv = "PLUGINHOST_TEST_HOLD_FD3"

// pluginDir holds the flock plugin, built once for every test.
var pluginDir string

func TestMain(m *testing.M) {
	if os.Getenv(holderEnv) != "" {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	if code, ok := runSharedHelper(); ok {
		os.Exit(code)
	}
	if share, err := strconv.ParseBool(os.Getenv(hostEnv)); err == nil {
		os.Exit(runHost(share))
	}
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// The flock backend's main package, from this package's directory.
	if err := locktest.BuildPlugin("../../backends/flock", "flock", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	pluginDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// quickRaceExit returns the GORACE setting that spares a helper built
// with -race the race runtime's one-second sleep at exit.
func quickRaceExit() string {
	return "GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0"
}

func pluginPath() string { return filepath.Join(pluginDir, pluginhost.BinaryPrefix+"flock") }

// privateDir returns a fresh directory that only its owner may write, as
// Verify insists for a plugin directory.
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyPlugin copies the built plugin into dir as backend name's binary.
func copyPlugin(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(pluginPath())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, pluginhost.BinaryPrefix+name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return p
}

func TestGetRefusesInvalidNames(t *testing.T) {
	_, err := pluginhost.New(pluginhost.Options{Dirs: []string{privateDir(t)}}).Get("../x")
	if !errors.Is(err, backend.ErrBackendNotFound) {
		t.Fatalf("Get(\"../x\"): %v, want ErrBackendNotFound", err)
	}
}

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// getFlock starts the flock plugin through h and checks that it answers.
func getFlock(t *testing.T, h *pluginhost.Host) *pluginhost.Plugin {
	t.Helper()
	p, err := h.Get("flock")
	if err != nil {
		t.Fatalf("Get(flock): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), promptly)
	defer cancel()
	info, err := p.Describe(ctx)
	if err != nil || info.Name != "flock" {
		t.Fatalf("plugin Describe = %+v, %v; want flock", info, err)
	}
	return p
}

func TestChecksumPin(t *testing.T) {
	sum := sha256Of(t, pluginPath())
	wrong := strings.Repeat("0", 64)

	_, err := pluginhost.New(pluginhost.Options{Dirs: []string{pluginDir}, Checksums: map[string]string{"flock": wrong}}).Get("flock")
	if !errors.Is(err, backend.ErrPluginRejected) {
		t.Fatalf("Get with a mismatched pin: %v, want ErrPluginRejected", err)
	}
	if !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), pluginPath()) {
		t.Fatalf("Get with a mismatched pin: %q does not name the binary and its sha256 pin", err)
	}

	_, err = pluginhost.New(pluginhost.Options{Dirs: []string{pluginDir}, Checksums: map[string]string{"flock": "xyz"}}).Get("flock")
	if !errors.Is(err, backend.ErrPluginRejected) || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("Get with a malformed pin: %v, want ErrPluginRejected saying so", err)
	}

	h := pluginhost.New(pluginhost.Options{Dirs: []string{pluginDir}, Checksums: map[string]string{"flock": sum, "other": wrong}})
	p := getFlock(t, h)
	p.Done()
	// Hex digits in either case name the same sum.
	h = pluginhost.New(pluginhost.Options{Dirs: []string{pluginDir}, Checksums: map[string]string{"flock": strings.ToUpper(sum)}})
	p = getFlock(t, h)
	p.Done()
}

func TestRejectsNonPlugin(t *testing.T) {
	dir := privateDir(t)
	script := filepath.Join(dir, pluginhost.BinaryPrefix+"bogus")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pluginhost.Verify(script); err != nil {
		t.Fatalf("Verify(the script): %v; the test needs it to pass Verify and fail later", err)
	}
	h := pluginhost.New(pluginhost.Options{Dirs: []string{dir}, StartTimeout: promptly})
	start := time.Now()
	_, err := h.Get("bogus")
	if !errors.Is(err, backend.ErrPluginRejected) {
		t.Fatalf("Get(a shell script): %v, want ErrPluginRejected", err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("rejection is not one line: %q", msg)
	}
	if !strings.Contains(msg, script) || !strings.Contains(msg, "(bogus)") {
		t.Fatalf("rejection %q does not name the binary and the backend", msg)
	}
	t.Logf("rejected after %v: %s", time.Since(start), msg)
}

// gone reports whether pid has exited; a zombie has, since it holds no
// locks and no descriptors.
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] == "Z"
}

func waitGone(t *testing.T, pid int, why string) {
	t.Helper()
	deadline := time.Now().Add(promptly)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d still running %v after %s", pid, promptly, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectAlive checks that pid is still running a while after the event
// that must not stop it. It cannot prove "never", only "not soon".
func expectAlive(t *testing.T, pid int, why string) {
	t.Helper()
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if gone(pid) {
			t.Fatalf("plugin process %d exited %s", pid, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGetSharesOneProcess(t *testing.T) {
	h := pluginhost.New(pluginhost.Options{Dirs: []string{pluginDir}})
	a := getFlock(t, h)
	b := getFlock(t, h)
	if a != b {
		t.Fatal("two Gets returned two plugins")
	}
	pid := a.PID()
	if pid <= 0 {
		t.Fatalf("plugin PID() = %d", pid)
	}
	if a.Path != pluginPath() || a.Name != "flock" {
		t.Fatalf("plugin is %s at %s, want flock at %s", a.Name, a.Path, pluginPath())
	}

	a.Done()
	expectAlive(t, pid, "after one of two Dones")
	ctx, cancel := context.WithTimeout(context.Background(), promptly)
	defer cancel()
	if _, err := b.Describe(ctx); err != nil {
		t.Fatalf("plugin after one of two Dones: %v", err)
	}

	b.Done()
	select {
	case <-b.Dead():
	default:
		t.Fatal("the last Done did not mark the plugin dead")
	}
	// The last Done closes the lifeline: the plugin exits by itself.
	waitGone(t, pid, "its last Done")

	c := getFlock(t, h)
	defer c.Done()
	if c == a {
		t.Fatal("Get after the last Done returned the stopped plugin")
	}
	if c.PID() == pid {
		t.Fatalf("Get after the last Done reused process %d", pid)
	}
}

// TestLastDoneEndsASharedLifelinePlugin: a plugin whose host may hand
// its locks on (ShareLifeline) has no Pdeathsig, but once the host says it
// is done with it, and it keeps no lock for a keeper, it exits at once.
func TestLastDoneEndsASharedLifelinePlugin(t *testing.T) {
	h := pluginhost.New(pluginhost.Options{Dirs: []string{pluginDir}, ShareLifeline: true})
	p := getFlock(t, h)
	pid := p.PID()
	p.Done()
	waitGone(t, pid, "its host's last Done")
}

// TestHostKilled: a host killed with SIGKILL takes its plugin with it
// through Pdeathsig (pluginrpc.HostDeathSignal, which the plugin answers
// by exiting), even while a copy of the lifeline lives on in another
// process; with ShareLifeline there is no Pdeathsig, and the plugin lives
// as long as the copy.
func TestHostKilled(t *testing.T) {
	for _, share := range []bool{false, true} {
		t.Run(fmt.Sprintf("ShareLifeline=%v", share), func(t *testing.T) {
			host := exec.Command(os.Args[0], "-test.run=^$")
			// The plugin's socket directory goes in a directory of the
			// test's own: a plugin killed along with its host cannot
			// remove it.
			host.Env = append(os.Environ(), hostEnv+"="+strconv.FormatBool(share), "PLUGINHOST_TEST_DIR="+pluginDir,
				"XDG_RUNTIME_DIR="+t.TempDir(), quickRaceExit())
			host.Stderr = os.Stderr
			// The host passes its stdin on to the lifeline holder it starts,
			// so closing this pipe ends the holder. (Not StdinPipe: Wait
			// would close it as soon as the host is reaped.)
			holderIn, stdin, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			host.Stdin = holderIn
			stdout, err := host.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := host.Start(); err != nil {
				t.Fatal(err)
			}
			holderIn.Close()
			var pluginPID, holderPID int
			t.Cleanup(func() {
				stdin.Close()
				host.Process.Kill()
				host.Wait()
				if holderPID > 0 {
					syscall.Kill(holderPID, syscall.SIGKILL)
				}
				if pluginPID > 0 {
					syscall.Kill(pluginPID, syscall.SIGKILL)
				}
			})
			line := make(chan string, 1)
			go func() {
				s := bufio.NewScanner(stdout)
				s.Scan()
				line <- s.Text()
			}()
			select {
			case l := <-line:
				if _, err := fmt.Sscanf(l, "ready %d %d", &pluginPID, &holderPID); err != nil {
					t.Fatalf("host process said %q: %v", l, err)
				}
			case <-time.After(2 * promptly):
				t.Fatal("host process did not start its plugin")
			}

			host.Process.Kill()
			host.Wait()
			if !share {
				waitGone(t, pluginPID, "its host was killed, with a lifeline copy still open elsewhere")
				return
			}
			expectAlive(t, pluginPID, "after its host was killed while a copy of its shared lifeline lives")
			stdin.Close()
			waitGone(t, holderPID, "its stdin closed")
			waitGone(t, pluginPID, "the last copy of its shared lifeline closed")
		})
	}
}

// leakedSession returns a copy of this process's end of the session with
// the plugin pid, as a process that forked without exec would have it.
func leakedSession(pid int) (*os.File, error) {
	fd := locktest.SessionOf(pid)
	if fd < 0 {
		return nil, fmt.Errorf("no session with plugin %d here", pid)
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(dup), "leaked session"), nil
}

// hostEnv turns the test binary into a host process for TestHostKilled:
// it starts the flock plugin, hands a copy of its lifeline to a holder
// process, reports both pids, and waits to be killed.
const hostEnv = "PLUGINHOST_TEST_HOST_SHARE"

func runHost(share bool) int {
	h := pluginhost.New(pluginhost.Options{Dirs: []string{os.Getenv("PLUGINHOST_TEST_DIR")}, ShareLifeline: share})
	p, err := h.Get("flock")
	if err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		return 1
	}
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), holderEnv+"=1")
	holder.Env = slices.DeleteFunc(holder.Env, func(e string) bool { return strings.HasPrefix(e, hostEnv+"=") })
	leaked, err := leakedSession(p.PID())
	if err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		return 1
	}
	holder.ExtraFiles = []*os.File{leaked}
	holder.Stdin, holder.Stderr = os.Stdin, os.Stderr
	if err := holder.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		return 1
	}
	fmt.Printf("ready %d %d\n", p.PID(), holder.Process.Pid)
	for {
		time.Sleep(time.Hour) // until the test kills this process
	}
}

func TestRejectsOtherProtocolVersion(t *testing.T) {
	dir := privateDir(t)
	bin := filepath.Join(dir, pluginhost.BinaryPrefix+"other")
	build := exec.Command("go", "build", "-o", bin, "./testdata/otherprotocol")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the other-protocol plugin: %v\n%s", err, out)
	}
	h := pluginhost.New(pluginhost.Options{Dirs: []string{dir}, StartTimeout: promptly})
	_, err := h.Get("other")
	if !errors.Is(err, backend.ErrPluginRejected) {
		t.Fatalf("Get(a plugin of another protocol version): %v, want ErrPluginRejected", err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") || !strings.Contains(msg, "(other)") || !strings.Contains(strings.ToLower(msg), "version") {
		t.Fatalf("rejection %q is not one line naming the backend and the version mismatch", msg)
	}
	t.Log(msg)
}

func TestLongTMPDIR(t *testing.T) {
	// A socket path longer than sun_path's 108 bytes cannot be bound; the
	// host must not put the plugin's socket under such a TMPDIR.
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", long)
	t.Setenv("XDG_RUNTIME_DIR", "")
	h := pluginhost.New(pluginhost.Options{Dirs: []string{pluginDir}})
	p := getFlock(t, h)
	p.Done()
}
