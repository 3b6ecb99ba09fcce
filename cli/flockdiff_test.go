package main

// The differential test of issue 13: each scenario runs under util-linux
// flock(1), under `lockmgr run` and under the flock personality (lockmgr
// through a link named flock), and what a script can observe must match:
// the exit or wait status, what the command saw (its signal dispositions
// and mask from /proc/self/status, its environment without LOCKMGR_*),
// and who holds the lock afterwards. The personality must also match
// flock(1)'s output, word for word, up to the timings. Where `lockmgr run`
// differs on purpose (docs/cli.rst, "Coming from flock(1)"), the scenario
// says what it gives instead.
//
// lockmgr here is lockmgr built with its signal entry (sigentry.go) where
// there is one (amd64), else this test binary, run through links named
// lockmgr and flock (TestMain). A scenario is one diffCase in diffCases:
// adding one is a few lines.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/proclocks"
	"golang.org/x/sys/unix"
)

// envTestFlock makes this test binary, run through a link named flock,
// the flock personality rather than the tests (TestMain).
const envTestFlock = "LOCKMGR_TEST_AS_FLOCK"

// diffTool is one way to run a scenario.
type diffTool struct {
	name string
	// argv0 and path run it; pre comes before the scenario's arguments.
	argv0, path string
	pre         []string
}

// diffCase is one scenario.
type diffCase struct {
	name string
	// args are the tool's arguments; dir is the scenario's directory
	// (the working directory), and lock the lock file in it.
	args func(dir, lock string) []string
	// script, instead, is a bash script that runs the tool itself, as
	// "$0" "$@" (for the descriptor forms, which need a shell's
	// descriptor).
	script func(dir, lock string) string
	// prefix runs the tool under another command: env --ignore-signal,
	// nohup.
	prefix []string
	// env is added to the environment; a name without "=" is removed.
	env []string
	// hold makes the test hold an exclusive flock on the lock file while
	// the tool runs.
	hold bool
	// during acts while the tool runs: sends it a signal once it waits,
	// say.
	during func(t *testing.T, dir, lock string, p *os.Process)
	// needs names programs or flock(1) options the scenario needs.
	needs []string
	// run is what `lockmgr run` gives where it differs from flock(1) on
	// purpose, given flock(1)'s result; skipRun leaves it out (a
	// spelling only the personality has).
	run     func(flock diffResult) diffResult
	skipRun bool
	// noStreams compares no output (the personality's -V, -h).
	noStreams bool
	// needsEntry marks a scenario that only lockmgr's signal entry can
	// pass (sigentry.go): what the caller ignored or blocked of SIGTERM,
	// SIGQUIT, SIGPIPE...
	needsEntry bool
}

// diffResult is what a script can observe of one run.
type diffResult struct {
	Status string // "exit N" or "signal NAME"
	Seen   string // what the command wrote to ./seen
	Held   int    // locks on the lock file afterwards, not the test's own
	Exists bool   // the lock file exists afterwards
	Stdout string
	Stderr string
}

// probe is a command that writes what it was started with to ./seen:
// bash keeps its inherited signal mask and ignored signals (dash resets
// the mask), so grep, its child, sees what bash was given.
func probe(extra string) []string {
	return []string{"bash", "-c", `grep -E '^Sig(Ign|Blk)' /proc/self/status > seen; env | grep -Ev '^(LOCKMGR_|_=)' | sort >> seen; ` + extra}
}

// waitHeld returns a during that waits until the tool waits for the lock
// and then sends it sig.
func waitingThen(sig syscall.Signal) func(*testing.T, string, string, *os.Process) {
	return func(t *testing.T, dir, lock string, p *os.Process) {
		waitFor(t, "a waiter on "+lock, func() bool {
			st, err := proclocks.ForFile(lock)
			return err == nil && len(st.Waiters) > 0 || opensFile(p.Pid, lock)
		})
		_ = p.Signal(sig)
	}
}

// opensFile reports whether process pid, or a child of it, has file
// open: a lockmgr about to wait for the lock, whose plugin waits out of
// the kernel's sight.
func opensFile(pid int, file string) bool {
	pids := []int{pid}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if child, err := strconv.Atoi(e.Name()); err == nil {
			if _, ppid, ok := procStat(child); ok && ppid == pid {
				pids = append(pids, child)
			}
		}
	}
	for _, p := range pids {
		fds, _ := os.ReadDir("/proc/" + strconv.Itoa(p) + "/fd")
		for _, fd := range fds {
			if target, err := os.Readlink("/proc/" + strconv.Itoa(p) + "/fd/" + fd.Name()); err == nil && target == file {
				return true
			}
		}
	}
	return false
}

// readyThen returns a during that waits for the command to create
// ./ready, sends the tool sig, and then lets the command go on (./go).
func readyThen(sig syscall.Signal) func(*testing.T, string, string, *os.Process) {
	return func(t *testing.T, dir, lock string, p *os.Process) {
		waitFor(t, "the command to start", func() bool { return exists(filepath.Join(dir, "ready")) })
		_ = p.Signal(sig)
		// Room for a wrongly relayed signal to arrive first; a pass
		// never depends on it.
		time.Sleep(100 * time.Millisecond)
		if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// gated is a command that says it is ready and waits to be let go.
const gated = `touch ready; while [ ! -e go ]; do sleep 0.01; done; `

// signaledRun is `lockmgr run`'s answer to a command killed by signal:
// it ends by that signal (issue 13, item 5) where flock(1) exits 128+N.
func signaledRun(sig syscall.Signal) func(diffResult) diffResult {
	return func(r diffResult) diffResult {
		r.Status = "signal " + sig.String()
		return r
	}
}

// runExits is `lockmgr run`'s exit status where flock(1)'s differs on
// purpose (127 before locking, where flock(1) exits 69 after).
func runExits(code int, exists bool) func(diffResult) diffResult {
	return func(r diffResult) diffResult {
		r.Status = fmt.Sprintf("exit %d", code)
		r.Exists = exists
		return r
	}
}

var diffCases = []diffCase{
	// Item 1: what the command inherits.
	{name: "plain", args: func(d, l string) []string { return append([]string{l}, probe("")...) }},
	{name: "ignored-and-blocked", needs: []string{"env --ignore-signal"},
		prefix: []string{"env", "--ignore-signal=HUP,INT", "--block-signal=USR1,USR2,PIPE,ALRM,WINCH"},
		args:   func(d, l string) []string { return append([]string{l}, probe("")...) }},
	{name: "ignored-and-blocked-all", needs: []string{"env --ignore-signal"}, needsEntry: true,
		prefix: []string{"env", "--ignore-signal=HUP,INT,QUIT,PIPE,TERM,USR1,ALRM", "--block-signal=HUP,INT,QUIT,TERM,USR1,USR2,PIPE"},
		args:   func(d, l string) []string { return append([]string{l}, probe("")...) }},
	{name: "ignored-term-not-relayed", needs: []string{"env --ignore-signal"}, needsEntry: true,
		prefix: []string{"env", "--ignore-signal=TERM"}, during: readyThen(syscall.SIGTERM),
		args: func(d, l string) []string { return append([]string{l}, probe(gated)...) }},
	{name: "nohup", needs: []string{"nohup"}, prefix: []string{"nohup"},
		args: func(d, l string) []string { return append([]string{l}, probe("")...) }},
	{name: "ignored-hup-not-relayed", needs: []string{"env --ignore-signal"},
		prefix: []string{"env", "--ignore-signal=HUP"}, during: readyThen(syscall.SIGHUP),
		args: func(d, l string) []string { return append([]string{l}, probe(gated)...) }},
	{name: "command-c", args: func(d, l string) []string { return []string{l, "-c", "echo $0 > seen"} }},
	{name: "shell-from-env", env: []string{"SHELL=/bin/bash"},
		args: func(d, l string) []string { return []string{l, "-c", "echo $BASH_VERSION | cut -c1 > seen"} }},
	{name: "exit-status", args: func(d, l string) []string { return []string{l, "sh", "-c", "exit 42"} }},

	// Item 5: signals that end the command, or the wait.
	{name: "command-killed-INT", run: signaledRun(syscall.SIGINT),
		args: func(d, l string) []string { return []string{l, "sh", "-c", "kill -INT $$"} }},
	{name: "command-killed-TERM", run: signaledRun(syscall.SIGTERM),
		args: func(d, l string) []string { return []string{l, "sh", "-c", "kill -TERM $$"} }},
	{name: "command-killed-QUIT", run: signaledRun(syscall.SIGQUIT),
		args: func(d, l string) []string { return []string{l, "sh", "-c", "ulimit -c 0; kill -QUIT $$"} }},
	{name: "command-killed-PIPE", run: signaledRun(syscall.SIGPIPE),
		args: func(d, l string) []string { return []string{l, "sh", "-c", "kill -PIPE $$"} }},
	{name: "INT-while-waiting", hold: true, during: waitingThen(syscall.SIGINT),
		args: func(d, l string) []string { return []string{l, "touch", "ran"} }},
	{name: "TERM-while-waiting", hold: true, during: waitingThen(syscall.SIGTERM),
		args: func(d, l string) []string { return []string{l, "touch", "ran"} }},

	// Item 7: finding the command as execvp does.
	{name: "path-empty-element", env: []string{"PATH=/usr/bin:/bin:"},
		args: func(d, l string) []string { return []string{l, "mycmd"} }},
	{name: "path-unset", env: []string{"PATH"},
		args: func(d, l string) []string { return []string{l, "ls", "-d", "/"} }},
	{name: "script-without-shebang",
		args: func(d, l string) []string { return []string{l, "./nosb"} }},
	{name: "not-found", run: runExits(exitNotFound, false),
		args: func(d, l string) []string { return []string{l, "no-such-command-here"} }},
	{name: "not-executable", run: runExits(exitCannotExec, false),
		args: func(d, l string) []string { return []string{l, "./data"} }},
	{name: "interpreter-missing", run: runExits(exitCannotExec, true),
		args: func(d, l string) []string { return []string{l, "./badsb"} }},

	// Item 4: flock(1)'s spellings.
	{name: "held-n", hold: true, args: func(d, l string) []string { return []string{"-n", l, "touch", "ran"} }},
	{name: "held-nb", hold: true, args: func(d, l string) []string { return []string{"--nb", l, "touch", "ran"} }},
	{name: "held-nonblocking", hold: true, args: func(d, l string) []string { return []string{"--nonblocking", l, "touch", "ran"} }},
	{name: "held-nonblock-prefix", hold: true, args: func(d, l string) []string { return []string{"--nonblock", l, "touch", "ran"} }},
	{name: "held-E", hold: true, args: func(d, l string) []string { return []string{"-n", "-E", "3", l, "touch", "ran"} }},
	{name: "held-wait", hold: true, args: func(d, l string) []string { return []string{"--wait", "0.05", "-E", "7", l, "touch", "ran"} }},
	{name: "held-timeout-equals", hold: true, args: func(d, l string) []string { return []string{"--timeout=0.05", l, "touch", "ran"} }},
	{name: "held-w0", hold: true, args: func(d, l string) []string { return []string{"-w", "0", l, "touch", "ran"} }},
	{name: "held-shared-e", hold: true, args: func(d, l string) []string { return []string{"-s", "-e", "-n", l, "touch", "ran"} }},
	{name: "shared", args: func(d, l string) []string { return []string{"-s", l, "touch", "ran"} }},
	{name: "close", args: func(d, l string) []string { return []string{"-o", l, "touch", "ran"} }},
	{name: "no-fork", args: func(d, l string) []string { return append([]string{"-F", l}, probe("")...) }},
	{name: "no-fork-close", args: func(d, l string) []string { return []string{"-F", "-o", l, "true"} }},
	{name: "fd-lock-unlock", script: func(d, l string) string {
		return `exec 9>>` + l + `; "$0" "$@" -n 9 || exit $?; grep -c ^lock: /proc/$$/fdinfo/9 > seen; "$0" "$@" -u 9 || exit $?; grep -c ^lock: /proc/$$/fdinfo/9 >> seen; true`
	}},
	{name: "fd-held", hold: true, script: func(d, l string) string {
		return `exec 9>>` + l + `; "$0" "$@" -n -E 5 9`
	}},
	{name: "fd-shared-twice", script: func(d, l string) string {
		return `exec 8>>` + l + ` 9>>` + l + `; "$0" "$@" -s 8 && "$0" "$@" -s -n 9; echo $? > seen; "$0" "$@" -n -E 4 9; echo $? >> seen`
	}},
	{name: "fd-command", needs: []string{"flock --fd"}, script: func(d, l string) string {
		return `exec 9>>` + l + `; "$0" "$@" --fd 9 sh -c 'grep -c ^lock: /proc/$$/fdinfo/9 > seen'`
	}},
	{name: "fd-command-close", needs: []string{"flock --fd"}, script: func(d, l string) string {
		return `exec 9>>` + l + `; "$0" "$@" -o --fd 9 -c 'test -e /proc/$$/fd/9; echo $? > seen'`
	}},
	{name: "verbose", args: func(d, l string) []string { return []string{"--verbose", l, "echo", "out"} }, run: keepStatus},
	{name: "verbose-held", hold: true, args: func(d, l string) []string { return []string{"--verbose", "-n", l, "true"} }, run: keepStatus},
	{name: "verbose-timeout", hold: true, args: func(d, l string) []string { return []string{"--verbose", "-w", "0.05", l, "true"} }, run: keepStatus},
	{name: "fcntl", needs: []string{"flock --fcntl"}, args: func(d, l string) []string { return []string{"--fcntl", l, "touch", "ran"} }},
	{name: "fcntl-range", needs: []string{"flock --fcntl"}, args: func(d, l string) []string {
		return []string{"--start", "1", "--length", "1K", l, "touch", "ran"}
	}},
	// The command sees the caller's descriptors unchanged, and the lock
	// file at the lowest number the caller left free (issue 13, item 2).
	{name: "caller-descriptors", script: func(d, l string) string {
		return `exec 3>out; "$0" "$@" ` + l + ` bash -c 'echo hi >&3; for f in /proc/$$/fd/[3-9]; do t=$(readlink $f); case $t in pipe:*) ;; *) echo "${f##*/} $t";; esac; done > fds'; cat out fds > seen`
	}},
	// A background child that inherited the lock keeps it after the
	// command and the tool have exited (item 3).
	{name: "background-keeps-lock", script: func(d, l string) string {
		return `"$0" "$@" ` + l + ` sh -c 'sleep 3 & echo $! > bg.pid'; flock -n ` + l + ` true; echo "free after: $?" > seen; kill $(cat bg.pid)`
	}},
	// A signal to the whole process group reaches the command once,
	// never again from the tool (item 6). TERM, since a background job
	// of a script starts with INT ignored.
	{name: "group-TERM-once", needs: []string{"setsid"}, script: func(d, l string) string {
		// The tool's stderr is compared through a file, without bash's
		// notices of a killed job ("Terminated"), from this shell or the
		// command's: they come whenever bash happens to notice, or when
		// the signal happens to catch the loop's sleep.
		return `setsid "$0" "$@" ` + l + ` bash -c 'exec 2>/dev/null; n=0; trap "n=\$((n+1))" TERM; touch ready; while [ ! -e go ]; do sleep 0.01; done; echo "TERM $n" > got' 2>tool.err &
pid=$!
exec 2>/dev/null
for i in $(seq 3000); do [ -e ready ] && break; sleep 0.01; done
kill -TERM -- -$pid
sleep 0.3; touch go
wait $pid; echo "tool $?" > seen
for i in $(seq 3000); do [ -s got ] && break; sleep 0.01; done
cat got tool.err >> seen`
	}},
	{name: "version", noStreams: true, args: func(d, l string) []string { return []string{"-V"} }, run: keepStatus},

	// The personality's usage errors, word for word.
	{name: "usage-none", skipRun: true, args: func(d, l string) []string { return nil }},
	{name: "usage-no-operand", skipRun: true, args: func(d, l string) []string { return []string{"-n"} }},
	{name: "usage-bad-option", skipRun: true, args: func(d, l string) []string { return []string{"-q", l, "true"} }},
	{name: "usage-bad-long", skipRun: true, args: func(d, l string) []string { return []string{"--bogus", l, "true"} }},
	{name: "usage-ambiguous", skipRun: true, args: func(d, l string) []string { return []string{"--no", l, "true"} }},
	{name: "usage-missing-arg", skipRun: true, args: func(d, l string) []string { return []string{"-w"} }},
	{name: "option-after-file", skipRun: true, args: func(d, l string) []string { return []string{l, "-w", "1"} }},
	{name: "usage-missing-long-arg", skipRun: true, args: func(d, l string) []string { return []string{"--timeout"} }},
	{name: "usage-no-arg-allowed", skipRun: true, args: func(d, l string) []string { return []string{"--shared=1", l, "true"} }},
	{name: "usage-bad-timeout", skipRun: true, args: func(d, l string) []string { return []string{"-w", "soon", l, "true"} }},
	{name: "usage-bad-E", skipRun: true, args: func(d, l string) []string { return []string{"-E", "x", l, "true"} }},
	{name: "usage-E-range", skipRun: true, args: func(d, l string) []string { return []string{"-E", "300", l, "true"} }},
	{name: "usage-bad-fd", skipRun: true, args: func(d, l string) []string { return []string{"notanumber"} }},
	{name: "usage-c-args", skipRun: true, args: func(d, l string) []string { return []string{l, "-c", "true", "extra"} }},
	{name: "usage-question", skipRun: true, args: func(d, l string) []string { return []string{"-?"} }},
	{name: "fd-not-open", skipRun: true, args: func(d, l string) []string { return []string{"77"} }},
	// Descriptors the caller did not pass but lockmgr's own runtime has
	// open (3 and up, where the caller left them free): flock(1)'s lock
	// call fails with EBADF on them as on any other, exit 65.
	{name: "fd-not-open-3", skipRun: true, args: func(d, l string) []string { return []string{"-n", "3"} }},
	{name: "fd-not-open-4-shared", skipRun: true, args: func(d, l string) []string { return []string{"-s", "4"} }},
	{name: "fd-not-open-7", skipRun: true, args: func(d, l string) []string { return []string{"7"} }},
	{name: "fd-unlock-not-open-3", skipRun: true, args: func(d, l string) []string { return []string{"-u", "3"} }},
	{name: "fd-command-not-open-3", skipRun: true, needs: []string{"flock --fd"}, args: func(d, l string) []string { return []string{"--fd", "3", "true"} }},
	{name: "missing-directory", skipRun: true, args: func(d, l string) []string { return []string{d + "/no/such/dir/lock", "true"} }},
	{name: "dashdash-after-file", skipRun: true, args: func(d, l string) []string { return []string{l, "--", "true"} }},
	{name: "help", skipRun: true, noStreams: true, args: func(d, l string) []string { return []string{"-h"} }},
}

// keepStatus is a `lockmgr run` that differs only in its output
// (--verbose on stderr, in lockmgr's words; its own version).
func keepStatus(r diffResult) diffResult { return r }

func TestFlockDifferential(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("util-linux flock(1) is not installed: nothing to compare with (apt-get install util-linux)")
	}
	if out, _ := exec.Command(flock, "--version").Output(); !bytes.Contains(out, []byte("util-linux")) {
		t.Skipf("flock on PATH (%s) is not util-linux's: %q", flock, out)
	}
	if err := buildErrs["flock"]; err != nil {
		t.Fatalf("no flock plugin: %v", err)
	}
	if err := buildErrs["ofd"]; err != nil {
		t.Fatalf("no ofd plugin: %v", err)
	}
	self, entry := lockmgrWithEntry(t)
	bin := t.TempDir()
	for _, name := range []string{"lockmgr", flockName} {
		if err := os.Symlink(self, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	tools := []diffTool{
		{name: "flock(1)", argv0: "flock", path: flock},
		{name: "lockmgr run", argv0: "lockmgr", path: filepath.Join(bin, "lockmgr"), pre: []string{"run"}},
		{name: "personality", argv0: flockName, path: filepath.Join(bin, flockName)},
	}
	help, _ := exec.Command(flock, "--help").Output()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range diffCases {
		t.Run(c.name, func(t *testing.T) {
			if c.needsEntry && !entry {
				t.Skipf("needs lockmgr's signal entry, which %s/%s has not (sigentry.go)", runtime.GOOS, runtime.GOARCH)
			}
			for _, need := range c.needs {
				if !have(need, help) {
					t.Skipf("%s is not available here", need)
				}
			}
			want := runDiff(t, c, tools[0], cfg)
			for _, tool := range tools[1:] {
				if tool.name == "lockmgr run" && c.skipRun {
					continue
				}
				got := runDiff(t, c, tool, cfg)
				expect := want
				if tool.name == "lockmgr run" {
					if c.run != nil {
						expect = c.run(want)
					}
					// lockmgr's own words and streams (docs/cli.rst).
					expect.Stdout, expect.Stderr = got.Stdout, got.Stderr
					if c.name == "verbose" {
						expect.Stdout = "out\n"
					}
				}
				if c.noStreams {
					expect.Stdout, expect.Stderr = got.Stdout, got.Stderr
				}
				if got != expect {
					t.Errorf("%s differs from flock(1):\n got: %#v\nwant: %#v", tool.name, got, expect)
				}
			}
		})
	}
}

// lockmgrWithEntry builds lockmgr as the Makefile should, linked with its
// signal entry, where there is one (amd64), and returns its path and
// true; elsewhere it returns this test binary, which runs lockmgr's main
// through TestMain, and false.
func lockmgrWithEntry(t *testing.T) (string, bool) {
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		out := filepath.Join(t.TempDir(), "lockmgr")
		cmd := exec.Command("go", "build", "-ldflags=-E=main.lockmgrEntry", "-o", out, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as the Makefile builds it
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building lockmgr with its signal entry: %v\n%s", err, b)
		}
		return out, true
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self, false
}

// have reports whether a scenario's need is met: a program on PATH,
// "env --ignore-signal" (coreutils 8.31 and later), or "flock --OPTION".
func have(need string, flockHelp []byte) bool {
	switch {
	case need == "env --ignore-signal":
		out, _ := exec.Command("env", "--help").Output()
		return bytes.Contains(out, []byte("--ignore-signal"))
	case strings.HasPrefix(need, "flock "):
		return bytes.Contains(flockHelp, []byte(strings.TrimPrefix(need, "flock ")))
	}
	_, err := exec.LookPath(need)
	return err == nil
}

// runDiff runs scenario c with tool, in a fresh directory, and returns
// what a script could observe.
func runDiff(t *testing.T, c diffCase, tool diffTool, cfg string) diffResult {
	t.Helper()
	dir := t.TempDir()
	lock := filepath.Join(dir, "lock")
	for name, body := range map[string]string{
		"mycmd": "#!/bin/sh\necho mycmd > seen\n",
		"nosb":  "echo no shebang > seen\n",
		"data":  "not a program\n",
		// Found and executable, but its interpreter is not there: the
		// exec itself fails, after the lock is taken.
		"badsb": "#!/no/such/interpreter\n",
	} {
		mode := os.FileMode(0o755)
		if name == "data" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	if c.hold {
		f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var cmd *exec.Cmd
	switch {
	case c.script != nil:
		cmd = exec.CommandContext(ctx, "bash", append([]string{"-c", c.script(dir, lock), tool.path}, tool.pre...)...)
	case len(c.prefix) > 0:
		args := append(append([]string{}, tool.pre...), c.args(dir, lock)...)
		cmd = exec.CommandContext(ctx, c.prefix[0], append(append(c.prefix[1:], tool.path), args...)...)
	default:
		args := append(append([]string{}, tool.pre...), c.args(dir, lock)...)
		cmd = exec.CommandContext(ctx, tool.path, args...)
		// argv[0] as a script would have it, for flock(1)'s messages.
		cmd.Args[0] = tool.argv0
	}
	cmd.Dir = dir
	cmd.Env = diffEnv(c.env, cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	if c.during != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.during(t, dir, lock, cmd.Process)
		}()
	}
	err := cmd.Wait()
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("%s: still running after %v", tool.name, patience)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", tool.name, err)
	}
	r := diffResult{Stdout: normalize(stdout.String(), dir), Stderr: normalize(stderr.String(), dir), Exists: exists(lock)}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		r.Status = "signal " + ws.Signal().String()
	} else {
		r.Status = fmt.Sprintf("exit %d", ws.ExitStatus())
	}
	if data, err := os.ReadFile(filepath.Join(dir, "seen")); err == nil {
		r.Seen = normalize(string(data), dir)
	}
	if exists(filepath.Join(dir, "ran")) {
		r.Seen += "[ran]"
	}
	r.Held = heldByOthers(lock)
	return r
}

// diffEnv is the scenario's environment: a small one (the command's is
// compared), with lockmgr's plugins and an empty configuration, and the
// scenario's changes.
func diffEnv(changes []string, cfg string) []string {
	env := map[string]string{
		"PATH":               os.Getenv("PATH"),
		"HOME":               os.Getenv("HOME"),
		"LANG":               "C",
		"SHELL":              "/bin/sh",
		"LOCKMGR_PLUGIN_DIR": pluginDir,
		"LOCKMGR_CONFIG":     cfg,
		envTestFlock:         "1",
	}
	for _, kv := range changes {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			env[k] = v
		} else {
			delete(env, k)
		}
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// timing matches the figures of flock(1)'s --verbose line.
var timing = regexp.MustCompile(`took [0-9]+\.[0-9]{6} seconds`)

// normalize takes the timings and the scenario's directory out of
// output.
func normalize(s, dir string) string {
	return strings.ReplaceAll(timing.ReplaceAllString(s, "took N seconds"), dir, "DIR")
}

// heldByOthers counts the locks on lock held by anyone but this test.
func heldByOthers(lock string) int {
	st, err := proclocks.ForFile(lock)
	if err != nil {
		return 0
	}
	n := 0
	for _, h := range st.Holders {
		if h.PID != os.Getpid() {
			n++
		}
	}
	return n
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// waitFor polls done until it is true, and fails the test after
// patience.
func waitFor(t *testing.T, what string, done func() bool) {
	deadline := time.Now().Add(patience)
	for !done() {
		if time.Now().After(deadline) {
			t.Errorf("gave up after %v waiting for %s", patience, what)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCgoBuildKeepsIgnoredSignals: a lockmgr linked by the system linker
// (cgo, as Arch's PKGBUILD builds it), which starts at the C library's
// entry rather than lockmgrEntry, still starts its command with the
// signals its caller ignored, as flock(1) does.
func TestCgoBuildKeepsIgnoredSignals(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc: a cgo build needs a C compiler")
	}
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("no util-linux flock(1) to compare with")
	}
	lm := filepath.Join(t.TempDir(), "lockmgr")
	build := exec.Command("go", "build", "-ldflags=-linkmode=external", "-o", lm, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cgo build: %v\n%s", err, b)
	}
	lock := filepath.Join(t.TempDir(), "lock")
	sigIgn := func(tool ...string) string {
		script := `trap "" USR1 TERM PIPE; exec "$@" ` + lock + ` sh -c 'grep SigIgn /proc/self/status'`
		cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, tool...)...)
		cmd.Env = append(os.Environ(), "LOCKMGR_PLUGIN_DIR="+pluginDir, "LOCKMGR_CONFIG="+os.DevNull, "LOCKMGR_BACKEND=flock")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", tool, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	want, got := sigIgn(flock), sigIgn(lm, "run")
	if got != want {
		t.Fatalf("the command of a cgo-built lockmgr has %q, under flock(1) %q", got, want)
	}
}
