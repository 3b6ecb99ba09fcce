package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sleeper writes an executable that sleeps, standing in for a plugin:
// startProcess cares about processes, not handshakes.
func sleeper(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sleeper")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// gone waits until pid has exited (or is a zombie, which holds nothing).
func gone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d is still running", pid)
}

func noDir(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory %s left behind (%v)", dir, err)
	}
}

func TestStartChecksPin(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, err := startProcess(procSpec{Path: sleeper(t), SHA256: strings.Repeat("0", 64), Env: baseEnv()})
	if !errors.Is(err, errChecksum) {
		t.Fatalf("startProcess(a wrong pin): %v, want errChecksum", err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("a refused start left %v in TMPDIR", ents)
	}
}

// printer writes, as dir/name, a script that says word and then waits,
// standing in for a plugin whose identity the test must tell.
func printer(t *testing.T, dir, name, word string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho "+word+"\nsleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return p
}

// said returns the first line the process wrote on its stdout.
func said(t *testing.T, p *process) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := p.Stdout().Read(b)
		line <- strings.TrimSpace(string(b[:n]))
	}()
	select {
	case l := <-line:
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("the plugin said nothing")
	}
	return ""
}

func sum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestStartRunsWhatItChecked: the binary is opened once, and what runs
// is that open file, hashed and checked, not whatever is at the path by
// the time of the exec.
func TestStartRunsWhatItChecked(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	dir := privateDir(t)
	path := printer(t, dir, BinaryPrefix+"x", "original")
	other := printer(t, dir, "other", "swapped")

	// A pinned plugin runs, through its descriptor, under its own name.
	spec := procSpec{Path: path, SHA256: sum(t, path), Env: baseEnv()}
	p, err := startProcess(spec)
	if err != nil {
		t.Fatalf("startProcess(a pinned plugin): %v", err)
	}
	if got := said(t, p); got != "original" {
		t.Fatalf("the pinned plugin said %q, want %q", got, "original")
	}
	comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/comm")
	p.Discard()
	if got := strings.TrimSpace(string(comm)); got != (BinaryPrefix + "x")[:15] {
		t.Errorf("the plugin's comm is %q, want its binary's name cut to 15 bytes", got)
	}

	// Another binary renamed over the path between the check and the
	// start does not run: the one checked does.
	bin, err := openBinary(spec.Path, spec.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	p, err = startBinary(spec, bin)
	bin.Close()
	if err != nil {
		t.Fatalf("startBinary after the swap: %v", err)
	}
	defer p.Discard()
	if got := said(t, p); got != "original" {
		t.Fatalf("after the path was swapped, %q ran, want the checked %q", got, "original")
	}

	// Now the path holds the other binary, which the pin refuses.
	if _, err := startProcess(spec); !errors.Is(err, errChecksum) {
		t.Fatalf("startProcess(the swapped-in binary) = %v, want errChecksum", err)
	}
}

// TestLifelineWriteEndStaysWithHost: the plugin dies with its host
// because the host alone holds its end of the lifeline socket pair. It
// must be close-on-exec in the host, so that no program the host runs
// inherits it, and the plugin must hold only its own end.
func TestLifelineWriteEndStaysWithHost(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	p, err := startProcess(procSpec{Path: sleeper(t), Env: baseEnv()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Discard()
	host := "/proc/self/fd/" + strconv.Itoa(int(p.Lifeline.Fd()))
	hostEnd, err := os.Readlink(host)
	if err != nil {
		t.Fatal(err)
	}
	if flags := fdFlags(t, "/proc/self/fdinfo/"+strconv.Itoa(int(p.Lifeline.Fd()))); flags&syscall.O_CLOEXEC == 0 {
		t.Errorf("the host's end of the lifeline is not close-on-exec (flags %#o)", flags)
	}
	dir := "/proc/" + strconv.Itoa(p.PID())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Until its exec, the child is a copy of the host, with its descriptors.
	deadline := time.Now().Add(5 * time.Second)
	for exe, _ := os.Readlink(dir + "/exe"); exe == self; exe, _ = os.Readlink(dir + "/exe") {
		if time.Now().After(deadline) {
			t.Fatal("the plugin has not executed its binary")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ents, err := os.ReadDir(dir + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if link, _ := os.Readlink(dir + "/fd/" + e.Name()); link == hostEnd {
			t.Errorf("the plugin holds the host's end of its lifeline %s as descriptor %s", hostEnd, e.Name())
		}
	}
	// The plugin's own end is its descriptor 3, a socket of its own.
	if end, _ := os.Readlink(dir + "/fd/3"); !strings.HasPrefix(end, "socket:[") || end == hostEnd {
		t.Errorf("the plugin's descriptor 3 is %q, want its own end of the lifeline socket pair", end)
	}
}

// fdFlags returns the open flags /proc shows in an fdinfo file.
func fdFlags(t *testing.T, fdinfo string) int {
	t.Helper()
	b, err := os.ReadFile(fdinfo)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatalf("%s has no flags line", fdinfo)
	return 0
}
