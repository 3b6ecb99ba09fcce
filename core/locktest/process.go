package locktest

import (
	"context"
	"errors"
	"fmt"
	"io"
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
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// startChild starts the test binary again as a Peer: target is "inproc"
// or "plugin", action is "exclusive", "shared" (wait and hold) or
// "try-exclusive", "try-shared" (try once and report); env is added to
// its environment.
func startChild(t *testing.T, target, path, action string, env ...string) *Peer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+target, "LOCKTEST_PATH="+path,
		"LOCKTEST_ACTION="+action, "LOCKTEST_PLUGIN_DIR="+suite.pluginDir)
	cmd.Env = append(cmd.Env, env...)
	return StartPeer(t, cmd)
}

// child is the helper process's whole life.
func child(target string) int {
	if os.Getenv(dropDACEnv) != "" {
		if err := dropDAC(); err != nil {
			fmt.Println("error:", err)
			return 1
		}
	}
	opts := targetOptions(target, os.Getenv("LOCKTEST_PLUGIN_DIR"))
	h := lockmgr.New(os.Getenv("LOCKTEST_PATH"), opts...)
	defer h.Close()
	action := os.Getenv("LOCKTEST_ACTION")
	switch action {
	case "fill-descriptors":
		return fillDescriptors(opts)
	case "lifeline":
		return lockForHeir(os.Getenv("LOCKTEST_PATH"), opts)
	case "wait-without-signal-queue":
		return waitWithoutSignalQueue(h)
	}
	shared := strings.HasSuffix(action, "shared")
	if strings.HasPrefix(action, "try-") {
		var ok bool
		var err error
		if shared {
			ok, err = h.TryRLock()
		} else {
			ok, err = h.TryLock()
		}
		switch {
		case err != nil:
			fmt.Println("error:", err)
		case ok:
			fmt.Println("locked")
		default:
			fmt.Println("busy")
		}
	} else {
		lock := h.Lock
		if shared {
			lock = h.RLock
		}
		if err := lock(context.Background()); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("locked")
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// PluginProcesses returns the pids of the live backend plugin processes
// whose parent is ppid: the plugins a host started, for tests that kill
// one or read its memory use. A zombie is left out: it holds nothing.
func PluginProcesses(ppid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses,
		// and is a plugin's if it is backend.PluginComm.
		s := string(stat)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if len(fields) < 2 || fields[0] == "Z" || !strings.HasPrefix(s[open+1:end], backend.PluginComm()) {
			continue
		}
		if parent, _ := strconv.Atoi(fields[1]); parent == ppid {
			out = append(out, pid)
		}
	}
	return out
}

func newest(pids []int) int {
	best := 0
	var bestStart uint64
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		// Field 22 of stat, the start time, is the 20th after the comm.
		if len(fields) < 20 {
			continue
		}
		start, _ := strconv.ParseUint(fields[19], 10, 64)
		if best == 0 || start >= bestStart {
			best, bestStart = pid, start
		}
	}
	return best
}

func processExe(pid int) string {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return exe
}

// waitGone waits for pid to exit. A zombie counts as gone: it can no
// longer run, and the caller has already checked that the lock is free
// (a multi-threaded process shows as a zombie a moment before its other
// threads have closed their descriptors, so a zombie alone proves little).
func waitGone(t *testing.T, pid int, why string) {
	t.Helper()
	deadline := time.Now().Add(promptly)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d still running %v after %s", pid, promptly, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether process pid exists and has not exited (a zombie
// has: it runs no more).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// fillDescriptors takes locks on files of its own until the process's
// descriptor limit, lowered to 128, refuses one; it says the error, then
// whether every lock granted before it is still held.
func fillDescriptors(opts []lockmgr.Option) int {
	lim := syscall.Rlimit{Cur: 128, Max: 128}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("error: setrlimit:", err)
		return 1
	}
	dir := filepath.Dir(os.Getenv("LOCKTEST_PATH"))
	var held []*lockmgr.Handle
	for i := 0; ; i++ {
		h := lockmgr.New(filepath.Join(dir, fmt.Sprintf("lock%d", i)), opts...)
		ok, err := h.TryLock()
		if err != nil {
			fmt.Println(err)
			h.Close()
			break
		}
		if !ok {
			fmt.Println("busy")
			return 1
		}
		held = append(held, h)
	}
	for _, h := range held {
		select {
		case <-h.Lost():
			fmt.Println("lost", h.Path())
			return 1
		default:
		}
		if err := h.Unlock(); err != nil {
			fmt.Println("unlock:", err)
			return 1
		}
	}
	fmt.Println("all held")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// lockForHeir takes the lock through a host whose plugins live by their
// lifeline, gives a copy of the lifeline to a child (sleep) as lockmgr
// run gives it to its command, and says "locked PID" with the child's pid.
func lockForHeir(path string, opts []lockmgr.Option) int {
	fail := func(err error) int {
		fmt.Println("error:", err)
		return 1
	}
	cfg, err := config.Load(config.LoadOptions{})
	if err != nil {
		return fail(err)
	}
	settings, err := cfg.BackendSettings()
	if err != nil {
		return fail(err)
	}
	host := pluginhost.New(pluginhost.Options{Dirs: []string{os.Getenv("LOCKTEST_PLUGIN_DIR")}, Settings: settings, ShareLifeline: true})
	h := lockmgr.New(path, append(opts, lockmgr.WithHost(host))...)
	if err := h.Lock(context.Background()); err != nil {
		return fail(err)
	}
	f, err := h.Lifeline()
	if err != nil {
		return fail(err)
	}
	heir := exec.Command("sleep", "60")
	heir.ExtraFiles = []*os.File{f}
	if err := heir.Start(); err != nil {
		return fail(err)
	}
	f.Close()
	fmt.Println("locked", heir.Process.Pid)
	io.Copy(io.Discard, os.Stdin)
	return 0
}
