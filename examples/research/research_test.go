package research_test

// These tests keep lockmgr's research notes (docs/research.rst) and its
// backend matrix (docs/backends.rst) true. Each runs a research program
// and compares what it prints with testdata/NAME.txt, and the docs quote
// those same files (literalinclude), so a kernel, a Go release or a change
// to a program that alters what the docs say fails here first.
//
//	go test ./research                 # from examples/
//	go test ./research -update         # rewrite testdata/ from the programs
//
// The C programs are built with gcc and the Python one run with python3;
// those tests skip with a message where the tool is missing.

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/examples/research/lockkind"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txt from the programs' output")

// programs are the research programs, one directory each.
var programs = []string{"closeother", "convert", "deadlock", "inherit", "kinds", "layout", "ofdpid", "owner", "ranges"}

// bin holds the programs, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "research-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, p := range programs {
		args = append(args, "./"+p)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	bin = dir
	// A research program is a quicker other process than this test
	// binary, which may be built with the race detector.
	lockkind.OtherProgram = filepath.Join(bin, "owner")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs a built research program and returns what it printed.
func run(t *testing.T, program string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, program), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", program, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// golden compares got with testdata/name.txt, or with -update writes it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s, which the docs quote\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// perKind runs program -kind K for each kind, in parallel, and compares
// each output with testdata/PROGRAM-K.txt.
func perKind(t *testing.T, program string) {
	t.Parallel()
	for _, k := range lockkind.Kinds {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			golden(t, program+"-"+string(k), run(t, program, "-kind", string(k)))
		})
	}
}

// TestOwner checks who owns each kind of lock: a second open of the file
// in the same process is refused a flock or OFD lock (the owner is the
// open file description) and granted a POSIX one (the owner is the
// process).
func TestOwner(t *testing.T) { perKind(t, "owner") }

// TestInherit checks that a child started with a copy of the locked
// descriptor keeps a flock or OFD lock alive after the parent closes its
// own, and that a POSIX lock is not inherited.
func TestInherit(t *testing.T) { perKind(t, "inherit") }

// TestCloseOther checks that closing another descriptor of the file
// releases a POSIX lock and leaves flock and OFD locks alone.
func TestCloseOther(t *testing.T) { perKind(t, "closeother") }

// TestRanges checks that POSIX and OFD locks on disjoint byte ranges do
// not conflict and overlapping ones do, and that flock has no ranges.
func TestRanges(t *testing.T) { perKind(t, "ranges") }

// TestConvert checks that read locks of two processes coexist, and that a
// refused read-to-write conversion keeps the read lock for POSIX and OFD
// (atomic) and drops it for flock (not atomic).
func TestConvert(t *testing.T) { perKind(t, "convert") }

// TestDeadlock checks that the kernel refuses a deadlocking POSIX wait
// with EDEADLK and lets flock and OFD waits deadlock.
func TestDeadlock(t *testing.T) { perKind(t, "deadlock") }

// TestKinds checks which kinds conflict with which on a local filesystem:
// flock only with flock, POSIX and OFD with each other.
func TestKinds(t *testing.T) {
	t.Parallel()
	golden(t, "kinds", run(t, "kinds"))
}

// TestOFDPid checks that F_OFD_SETLK refuses a non-zero l_pid with EINVAL,
// and that F_SETLK ignores it.
func TestOFDPid(t *testing.T) {
	t.Parallel()
	golden(t, "ofdpid", run(t, "ofdpid"))
}

// TestLayout checks unix.Flock_t's layout on this platform against the
// one the docs quote, and on 386 too where this machine runs 386 binaries.
// TestCPrograms/Layout checks it against C's.
func TestLayout(t *testing.T) {
	t.Parallel()
	got := run(t, "layout")
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		golden(t, "layout-amd64", got)
	} else {
		t.Logf("no layout quoted for %s/%s; it printed:\n%s", runtime.GOOS, runtime.GOARCH, got)
	}
	if runtime.GOARCH != "amd64" {
		return
	}
	exe := filepath.Join(t.TempDir(), "layout-386")
	build := exec.Command("go", "build", "-o", exe, "./layout")
	// Without the caller's GOFLAGS: a packager's -buildmode=pie has no 386 port.
	build.Env = append(os.Environ(), "GOARCH=386", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("GOARCH=386 go build ./layout: %v\n%s", err, out)
	}
	out, err := exec.Command(exe).Output()
	if err != nil {
		t.Skipf("cannot run a 386 binary here (%v); the 386 layout is not checked", err)
	}
	golden(t, "layout-386", string(out))
}

// TestCPrograms builds the C programs with their Makefile (or, without
// make, with gcc and the Makefile's flags) and runs them against locks
// this test holds with lockmgr's Go calls.
func TestCPrograms(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skipf("the C programs need gcc, which is not installed: %v", err)
	}
	cbin := t.TempDir()
	if _, err := exec.LookPath("make"); err == nil {
		if out, err := exec.Command("make", "-s", "-C", "c", "CC=gcc", "O="+cbin).CombinedOutput(); err != nil {
			t.Fatalf("make -C c: %v\n%s", err, out)
		}
	} else {
		// No make: build as c/Makefile does, with its flags.
		for _, prog := range []string{"setlk", "ofd_setlk", "lockf", "flock_layout"} {
			args := []string{"-O2", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", filepath.Join(cbin, prog), filepath.Join("c", prog+".c")}
			if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
				t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	c := func(name string) string { return filepath.Join(cbin, name) }

	t.Run("Layout", func(t *testing.T) {
		goOut, cOut := run(t, "layout"), cRun(t, c("flock_layout"))
		if body(goOut) != body(cOut) {
			t.Errorf("unix.Flock_t and C's struct flock differ:\n--- Go\n%s--- C\n%s", goOut, cOut)
		}
	})

	t.Run("OFDPidEINVAL", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "lock")
		out, code := cTry(t, c("ofd_setlk"), "-n", "-p", "12345", path)
		if code != 2 || !strings.Contains(out, "fcntl(F_OFD_SETLK): Invalid argument") {
			t.Errorf("ofd_setlk -p 12345: exit %d, %q; want exit 2 and EINVAL", code, out)
		}
		out, code = cTry(t, c("ofd_setlk"), "-n", path)
		if code != 0 || out != "locked\nreleased\n" {
			t.Errorf("ofd_setlk with l_pid 0: exit %d, %q; want the lock", code, out)
		}
	})

	// Each C program against each kind of lock held here: setlk, lockf
	// and ofd_setlk all take fcntl-list locks, so a flock lock does not
	// stand in their way and a POSIX or OFD one does.
	for _, held := range lockkind.Kinds {
		t.Run("Against-"+string(held), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lock")
			f, err := lockkind.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := held.Lock(int(f.Fd()), lockkind.Write, lockkind.Range{}, false); err != nil {
				t.Fatal(err)
			}
			want := "busy\n"
			if held == lockkind.Flock {
				want = "locked\nreleased\n"
			}
			for _, prog := range []string{"setlk", "ofd_setlk", "lockf"} {
				if out, _ := cTry(t, c(prog), "-n", path); out != want {
					t.Errorf("%s -n, while this process holds a %s lock: %q, want %q", prog, held, out, want)
				}
			}
		})
	}

	// The seed's two terminals: one program holds the lock until Enter,
	// the other waits for it.
	t.Run("TwoTerminals", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "lock")
		holder := startLines(t, c("setlk"), path)
		holder.Expect(t, "locked")
		waiter := startLines(t, c("ofd_setlk"), path)
		waiter.Expect(t, "waiting")
		holder.Send(t, "")
		holder.Expect(t, "released")
		waiter.Expect(t, "locked")
		waiter.Send(t, "")
		waiter.Expect(t, "released")
	})
}

// TestPython checks which kernel lock each of Python's fcntl functions
// takes: fcntl.flock a flock lock (not an OFD lock, so OFD and POSIX
// requests pass it), fcntl.lockf a POSIX lock, and F_OFD_SETLK through
// fcntl.fcntl an OFD lock. The table is testdata/python.txt.
func TestPython(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3 is not installed: %v", err)
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-38s%-9s%-9s%s\n", "held by Python \\ asked", lockkind.Flock, lockkind.POSIX, lockkind.OFD)
	for _, c := range []struct{ how, call string }{
		{"flock", "fcntl.flock(fd, LOCK_EX)"},
		{"lockf", "fcntl.lockf(fd, LOCK_EX)"},
		{"ofd", "fcntl.fcntl(fd, F_OFD_SETLK, ...)"},
	} {
		path := filepath.Join(t.TempDir(), "lock")
		holder := startLines(t, python, filepath.Join("python", "pylock.py"), c.how, path)
		holder.Expect(t, "locked")
		line := fmt.Sprintf("%-38s", c.call)
		for _, asked := range lockkind.Kinds {
			line += fmt.Sprintf("%-9s", lockkind.Probe(path, asked, lockkind.Write, lockkind.Range{}))
		}
		fmt.Fprintln(&table, strings.TrimRight(line, " "))
		holder.Send(t, "")
	}
	golden(t, "python", table.String())
}

// TestNFS runs the kinds table on an NFS mount. It needs
// LOCKMGR_TEST_NFS_DIR, a writable directory on an NFS mount; no CI
// machine has one, so it usually skips. It checks what holds on any
// filesystem (each kind conflicts with itself, POSIX with OFD) and logs
// the flock-against-fcntl cells: flock(2) says Linux emulates flock with
// fcntl locks on NFS, so that they conflict there, but the client may
// handle locks locally (local_lock=flock, or an NFSv4 delegation), and
// the docs do not claim more than the log shows.
func TestNFS(t *testing.T) {
	dir := os.Getenv("LOCKMGR_TEST_NFS_DIR")
	if dir == "" {
		t.Skip("set LOCKMGR_TEST_NFS_DIR to a writable directory on an NFS mount to run the kinds table there")
	}
	out := run(t, "kinds", "-dir", dir)
	t.Logf("on %s:\n%s", dir, out)
	rows := strings.Split(strings.TrimSpace(out), "\n")[1:]
	busy := map[string][]bool{}
	for _, r := range rows {
		f := strings.Fields(r)
		for _, cell := range f[1:] {
			busy[f[0]] = append(busy[f[0]], cell == "busy")
		}
	}
	// Columns: flock, posix, ofd.
	for _, c := range []struct {
		held string
		col  int
	}{{"flock", 0}, {"posix", 1}, {"posix", 2}, {"ofd", 1}, {"ofd", 2}} {
		if b := busy[c.held]; len(b) != 3 || !b[c.col] {
			t.Errorf("%s held, %s asked: not busy on NFS", c.held, lockkind.Kinds[c.col])
		}
	}
}

// body is a layout's lines after the first, which names the language.
func body(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}

// cRun runs a C program and returns its output.
func cRun(t *testing.T, prog string, args ...string) string {
	t.Helper()
	out, err := exec.Command(prog, args...).Output()
	if err != nil {
		t.Fatalf("%s: %v", prog, err)
	}
	return string(out)
}

// cTry runs a C program with empty input, so that a lock it takes is let
// go at once, and returns its output (stderr included) and exit code.
func cTry(t *testing.T, prog string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(prog, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", prog, err)
	}
	return string(out), 0
}

// startLines starts a program that prints what happens, one line at a
// time, and acts on Enter (see locktest.Peer).
func startLines(t *testing.T, prog string, args ...string) *locktest.Peer {
	t.Helper()
	return locktest.StartPeer(t, exec.Command(prog, args...))
}
