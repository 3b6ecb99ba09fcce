package main

// The CLI is tested as scripts use it: testscript runs the scripts in
// testdata/script with lockmgr as a real command (this test binary, run
// as "lockmgr"), real backend plugins, real shells and flock(1), once per
// backend. The backend comes from LOCKMGR_BACKEND, as it would for a
// user; a script skips the lines that do not apply to a backend with the
// conditions [flock], [posix], [ofd], [ranges] (posix, ofd), and [fdmode]
// and [descriptor] (flock, ofd: a lock that is a locked descriptor, which
// the plugin hands to lockmgr and lockmgr run to its command).
//
// Multi-process choreography uses files rather than sleeps: a holder
// writes its lockmgr's pid ($PPID of the command) and waits for a file
// to appear before it lets go, and the custom commands below wait for a
// lock, a file or a process with generous bounds.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/proclocks"
	"github.com/rogpeppe/go-internal/testscript"
)

// backendNames are the backends every script runs under.
var backendNames = []string{"flock", "posix", "ofd"}

// patience bounds every wait in the scripts: long enough for a loaded CI
// machine, short enough that a hang fails rather than stalls.
const patience = 20 * time.Second

var (
	// pluginDir holds the plugins TestMain built.
	pluginDir string
	// buildErrs says why a backend's plugin could not be built.
	buildErrs = map[string]error{}
)

// withPlugins builds the three plugins around the test run. It is handed
// to testscript.Main as the testing.M, so that the build happens only in
// the test process, not each time the binary runs as lockmgr.
type withPlugins struct{ m *testing.M }

func (w withPlugins) Run() int {
	dir, err := os.MkdirTemp("", "lockmgr-cli-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "building plugins:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, name := range backendNames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pkg := filepath.Join("..", "backends", name)
			var err error
			if files, _ := filepath.Glob(filepath.Join(pkg, "*.go")); len(files) == 0 {
				err = fmt.Errorf("backends/%s has no Go files yet", name)
			} else {
				err = locktest.BuildPlugin(pkg, name, dir)
			}
			if err != nil {
				mu.Lock()
				buildErrs[name] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	pluginDir = dir
	// Every lockmgr the tests run meets only the shared plugins of this
	// run, which end with it (each script has a directory of its own).
	if os.Getenv(lockmgr.RuntimeDirEnv) == "" {
		run := filepath.Join(dir, "run")
		os.Setenv(lockmgr.RuntimeDirEnv, run)
		defer locktest.KillSharedPlugins(run)
	}
	defer func() {
		if buildsDir != "" {
			os.RemoveAll(buildsDir) // fullbuild_test.go's builds
		}
	}()
	return w.m.Run()
}

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == flockName && os.Getenv(envTestFlock) == "1" {
		// The flock personality, for flockdiff_test.go; not a
		// testscript command, which would shadow util-linux flock(1) in
		// the scripts.
		main()
	}
	testscript.Main(withPlugins{m}, map[string]func(){"lockmgr": main})
}

// TestScripts runs every script under every backend.
func TestScripts(t *testing.T) {
	for _, name := range backendNames {
		t.Run(name, func(t *testing.T) {
			if err := buildErrs[name]; err != nil {
				t.Fatalf("no %s plugin to test: %v", name, err)
			}
			testscript.Run(t, scriptParams(name))
		})
	}
}

func scriptParams(backendName string) testscript.Params {
	return testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			// An explicit, empty config keeps the machine's
			// /etc/lockmgr and ~/.config/lockmgr out of the tests.
			cfg := filepath.Join(env.WorkDir, ".lockmgr.toml")
			if err := os.WriteFile(cfg, nil, 0o644); err != nil {
				return err
			}
			env.Setenv("LOCKMGR_CONFIG", cfg)
			env.Setenv("LOCKMGR_BACKEND", backendName)
			env.Setenv("LOCKMGR_PLUGIN_DIR", pluginDir)
			env.Setenv("PLUGINS", pluginDir)
			env.Setenv("BACKEND", backendName)
			// Shared plugins of the script's own, ended with it.
			run := filepath.Join(env.WorkDir, ".run")
			env.Setenv(lockmgr.RuntimeDirEnv, run)
			env.Defer(func() { locktest.KillSharedPlugins(run) })
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "flock", "posix", "ofd":
				return cond == backendName, nil
			case "ranges":
				return backendName == "posix" || backendName == "ofd", nil
			case "fdmode", "descriptor":
				// flock and ofd locks belong to an open file description:
				// fd mode locks one, and lockmgr run's command inherits it.
				return backendName == "flock" || backendName == "ofd", nil
			case "unshare":
				return canUnshare(), nil
			case "nodac":
				return canDropDAC(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"code":      cmdCode,
			"waitlock":  cmdWaitLock,
			"waitfree":  cmdWaitFree,
			"waitfile":  cmdWaitFile,
			"waitgrep":  cmdWaitGrep,
			"signal":    cmdSignal,
			"pluginof":  cmdPluginOf,
			"noplugin":  cmdNoPlugin,
			"gone":      cmdGone,
			"envfile":   cmdEnvFile,
			"oneline":   cmdOneLine,
			"validjson": cmdValidJSON,
		},
	}
}

// canUnshare reports whether a private mount namespace can be made, in
// which a read-only filesystem can be mounted for a test.
var canUnshare = sync.OnceValue(func() bool {
	return exec.Command("unshare", "-m", "sh", "-c", "mount -t tmpfs -o ro none /mnt").Run() == nil
})

// nodacPrefix runs a command without the capabilities that let root
// ignore file permissions, so that a test running as root still meets
// EACCES; for anyone else, permissions apply anyway.
var nodacPrefix = []string{"setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all"}

var canDropDAC = sync.OnceValue(func() bool {
	if os.Getuid() != 0 {
		return true
	}
	return exec.Command(nodacPrefix[0], append(nodacPrefix[1:], "true")...).Run() == nil
})

// cmdCode runs a command and checks its exit status:
//
//	code [-nodac] [-min D] [-max D] N PROG [ARGS...]
//
// -min and -max bound how long it took; -nodac runs it without root's
// override of file permissions.
func cmdCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! code")
	}
	var lo, hi time.Duration
	nodac := false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-nodac":
			nodac = true
			args = args[1:]
			continue
		case "-min", "-max":
			if len(args) < 2 {
				ts.Fatalf("code: %s needs a duration", args[0])
			}
			d, err := time.ParseDuration(args[1])
			ts.Check(err)
			if args[0] == "-min" {
				lo = d
			} else {
				hi = d
			}
			args = args[2:]
			continue
		}
		ts.Fatalf("code: unknown option %s", args[0])
	}
	if len(args) < 2 {
		ts.Fatalf("usage: code [-nodac] [-min D] [-max D] N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	args = args[1:]
	if nodac && os.Getuid() == 0 {
		args = append(append([]string{}, nodacPrefix...), args...)
	}
	start := time.Now()
	err = ts.Exec(args[0], args[1:]...)
	took := time.Since(start)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[0], err)
		}
		got = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			got = 128 + int(ws.Signal())
		}
	}
	ts.Logf("[exit %d after %v]", got, took.Round(time.Millisecond))
	if got != want {
		ts.Fatalf("%s exited %d, want %d", strings.Join(args, " "), got, want)
	}
	if lo > 0 && took < lo {
		ts.Fatalf("%s took %v, want at least %v", args[0], took, lo)
	}
	if hi > 0 && took > hi {
		ts.Fatalf("%s took %v, want at most %v", args[0], took, hi)
	}
}

// poll calls done until it reports true, failing the script after
// patience with what.
func poll(ts *testscript.TestScript, what string, done func() bool) {
	deadline := time.Now().Add(patience)
	for !done() {
		if time.Now().After(deadline) {
			ts.Fatalf("gave up after %v waiting for %s", patience, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockCount returns how many locks are held on file, of kind if kind is
// not "".
func lockCount(file, kind string) int {
	st, err := proclocks.ForFile(file)
	if err != nil {
		return 0
	}
	n := 0
	for _, h := range st.Holders {
		if kind == "" || h.Kind == kind {
			n++
		}
	}
	return n
}

// cmdWaitLock waits until FILE is locked (by a lock of KIND, if given):
// waitlock FILE [KIND].
func cmdWaitLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitlock FILE [KIND]")
	}
	kind := ""
	if len(args) == 2 {
		kind = args[1]
	}
	file := ts.MkAbs(args[0])
	poll(ts, file+" to be locked", func() bool { return lockCount(file, kind) > 0 })
}

// cmdWaitFree waits until no one holds a lock on FILE: waitfree FILE.
func cmdWaitFree(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfree FILE")
	}
	file := ts.MkAbs(args[0])
	poll(ts, file+" to be free", func() bool { return lockCount(file, "") == 0 })
}

// cmdWaitFile waits until FILE exists and is not empty: waitfile FILE.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	file := ts.MkAbs(args[0])
	poll(ts, file, func() bool {
		fi, err := os.Stat(file)
		return err == nil && fi.Size() > 0
	})
}

// cmdWaitGrep waits until a line of FILE matches REGEXP: waitgrep FILE
// REGEXP. It is how a script waits for a waiter to wait: `lockmgr run -v`
// says "waiting for" on stderr, redirected to FILE, once it has found the
// lock held, and a holder let go only after that is sure to be waited for,
// however slowly the waiter started.
func cmdWaitGrep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitgrep FILE REGEXP")
	}
	file := ts.MkAbs(args[0])
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	poll(ts, fmt.Sprintf("a line of %s to match %s", file, args[1]), func() bool {
		data, err := os.ReadFile(file)
		return err == nil && re.Match(data)
	})
}

// pidFrom reads the pid written in file.
func pidFrom(ts *testscript.TestScript, file string) int {
	pid, err := strconv.Atoi(strings.TrimSpace(ts.ReadFile(file)))
	if err != nil {
		ts.Fatalf("%s holds no pid: %v", file, err)
	}
	return pid
}

var signals = map[string]syscall.Signal{
	"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "HUP": syscall.SIGHUP,
	"QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1,
}

// cmdSignal sends a signal to the pid in a file: signal NAME PIDFILE.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: signal NAME PIDFILE")
	}
	sig, ok := signals[args[0]]
	if !ok {
		ts.Fatalf("unknown signal %s", args[0])
	}
	ts.Check(syscall.Kill(pidFrom(ts, args[1]), sig))
}

// procStat returns the state letter and parent of pid, from
// /proc/PID/stat, and false once it is gone.
func procStat(pid int) (state string, ppid int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return fields[0], ppid, true
}

// cmdPluginOf finds the backend plugin that the lockmgr whose pid is in
// LMPIDFILE started (its child whose command starts with
// "lockmgr-backend") and writes its pid to OUTFILE:
// pluginof LMPIDFILE OUTFILE.
func cmdPluginOf(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: pluginof LMPIDFILE OUTFILE")
	}
	lm := pidFrom(ts, args[0])
	found := 0
	poll(ts, fmt.Sprintf("a plugin under pid %d", lm), func() bool {
		if p := locktest.PluginProcesses(lm); len(p) > 0 {
			found = p[0]
			return true
		}
		return false
	})
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(strconv.Itoa(found)+"\n"), 0o644))
}

// cmdNoPlugin waits until the lockmgr whose pid is in LMPIDFILE has no
// live backend plugin: noplugin LMPIDFILE.
func cmdNoPlugin(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: noplugin LMPIDFILE")
	}
	lm := pidFrom(ts, args[0])
	poll(ts, fmt.Sprintf("pid %d to have no plugin", lm), func() bool { return len(locktest.PluginProcesses(lm)) == 0 })
}

// cmdGone waits until the process in PIDFILE has exited (a zombie has:
// it holds nothing); with !, checks that it is still running:
// [!] gone PIDFILE.
func cmdGone(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: [!] gone PIDFILE")
	}
	pid := pidFrom(ts, args[0])
	exited := func() bool {
		state, _, ok := procStat(pid)
		return !ok || state == "Z" || state == "X"
	}
	if neg {
		if exited() {
			ts.Fatalf("process %d has exited", pid)
		}
		return
	}
	poll(ts, fmt.Sprintf("process %d to exit", pid), exited)
}

// cmdEnvFile sets an environment variable to a file's trimmed contents:
// envfile NAME FILE.
func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile NAME FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}

// cmdOneLine checks that stderr is exactly one line from lockmgr, as
// every error must be: oneline.
func cmdOneLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: oneline")
	}
	got := ts.ReadFile("stderr")
	if !strings.HasPrefix(got, "lockmgr: ") || strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		ts.Fatalf("stderr is not one lockmgr line: %q", got)
	}
}

// cmdValidJSON checks that stdout is valid JSON: validjson.
func cmdValidJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: validjson")
	}
	if out := ts.ReadFile("stdout"); !json.Valid([]byte(out)) {
		ts.Fatalf("stdout is not valid JSON: %q", out)
	}
}
