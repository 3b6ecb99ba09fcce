package locktest

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"github.com/lockmgr/lockmgr/core/proclocks"
)

var modelTime = flag.Duration("locktest.model", 3*time.Second,
	"how long the model-based Handle test runs its random steps (longer finds rarer interleavings)")

// modelHandle is one Handle of the model test and what its caller has
// been told: held (and how) or not, and the Lost channel of the lock it
// was told it holds.
type modelHandle struct {
	h    *lockmgr.Handle
	file int
	held bool
	mode backend.Mode
	lost <-chan struct{}
}

// believes reports whether the handle's caller has been told it holds a
// lock that has not been announced lost.
func (m *modelHandle) believes() bool { return m.held && !isClosed(m.lost) }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// model drives many Handles over a few files through the real plugin
// with random calls and random SIGKILLs of the plugin, and after every
// step holds what each caller was told to what the kernel holds: a
// handle that believes it holds a lock has one in the kernel, no two
// handles believe they hold conflicting locks, a file no one believes
// locked is free, and a lock that is gone was announced by Lost.
func (s *suiteRun) model(t *testing.T) {
	if s.info.Capabilities.Distributed {
		t.Skip("the model checks locks against the kernel's table; a distributed backend's are not there")
	}
	const nFiles, nHandles = 3, 6
	dir := t.TempDir()
	files := make([]string, nFiles)
	for i := range files {
		files[i] = filepath.Join(dir, fmt.Sprintf("lock%d", i))
	}
	host := pluginhost.New(pluginhost.Options{Dirs: []string{suite.pluginDir}})
	newHandle := func(file int) *modelHandle {
		return &modelHandle{h: lockmgr.New(files[file], append(s.tgt.Options(), lockmgr.WithHost(host))...), file: file}
	}
	handles := make([]*modelHandle, nHandles)
	for i := range handles {
		handles[i] = newHandle(i % nFiles)
	}
	t.Cleanup(func() {
		for _, m := range handles {
			m.h.Close()
		}
	})
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d", seed)

	steps, kills := 0, 0
	for end := time.Now().Add(*modelTime); time.Now().Before(end); steps++ {
		i := rng.IntN(nHandles)
		m := handles[i]
		op := rng.IntN(100)
		what := ""
		switch {
		case op < 3:
			what = "kill the plugin"
			if killPlugin(t, host) {
				kills++
			}
		case op < 4:
			what = "send the plugin garbage"
			if sendGarbage(t, rng) {
				kills++
			}
		case op < 8:
			what = fmt.Sprintf("close handle %d", i)
			m.h.Close()
			handles[i] = newHandle(m.file)
		case op < 14:
			what = fmt.Sprintf("status of handle %d", i)
			_, _ = m.h.Status(context.Background())
		case op < 40:
			what = fmt.Sprintf("unlock handle %d", i)
			s.modelUnlock(t, m)
		default:
			mode := backend.Exclusive
			if s.info.Capabilities.Shared && rng.IntN(2) == 0 {
				mode = backend.Shared
			}
			if m.held && m.mode != mode {
				// A handle holds one lock at a time: changing its mode is a
				// refusal the unit tests cover, not a state worth exploring.
				what = fmt.Sprintf("unlock handle %d", i)
				s.modelUnlock(t, m)
				break
			}
			wait := rng.IntN(2) == 0
			what = fmt.Sprintf("lock handle %d %s (wait %v)", i, mode, wait)
			s.modelLock(t, m, mode, wait)
		}
		s.modelCheck(t, what, files, handles)
		if t.Failed() {
			t.Fatalf("seed %d, step %d (%s)", seed, steps, what)
		}
	}
	t.Logf("%d steps, %d plugins killed or sent garbage", steps, kills)
}

func (s *suiteRun) modelLock(t *testing.T, m *modelHandle, mode backend.Mode, wait bool) {
	var err error
	switch {
	case wait:
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if mode == backend.Shared {
			err = m.h.RLock(ctx)
		} else {
			err = m.h.Lock(ctx)
		}
		cancel()
	default:
		var ok bool
		if mode == backend.Shared {
			ok, err = m.h.TryRLock()
		} else {
			ok, err = m.h.TryLock()
		}
		if err == nil && !ok {
			err = backend.ErrBusy
		}
	}
	if err != nil {
		// Whatever the cause, the Handle holds nothing after a failed lock.
		m.held, m.lost = false, nil
		return
	}
	m.held, m.mode, m.lost = true, mode, m.h.Lost()
}

func (s *suiteRun) modelUnlock(t *testing.T, m *modelHandle) {
	err := m.h.Unlock()
	switch {
	case !m.held && !errorsIs(err, lockmgr.ErrNotLocked):
		t.Errorf("Unlock of a handle told it holds nothing: %v, want ErrNotLocked", err)
	case m.held && errorsIs(err, lockmgr.ErrNotLocked):
		t.Errorf("Unlock of a handle told it holds a lock: %v", err)
	case m.held && errorsIs(err, lockmgr.ErrLost) && !isClosed(m.lost):
		t.Errorf("Unlock says the lock was lost (%v), but Lost() never announced it", err)
	case m.held && err != nil && !errorsIs(err, lockmgr.ErrLost):
		t.Errorf("Unlock: %v", err)
	}
	m.held, m.lost = false, nil
}

// modelCheck holds the handles' beliefs to the kernel's lock table. The
// kernel lags a killed plugin by a moment (its locks go as it exits, and
// Lost fires when the host sees the connection close), so the checks that
// involve a death are given a few seconds to settle; two handles that
// both believe they hold conflicting locks is never allowed, not even for
// a moment.
func (s *suiteRun) modelCheck(t *testing.T, what string, files []string, handles []*modelHandle) {
	t.Helper()
	for f := range files {
		excl, shared := 0, 0
		for _, m := range handles {
			if m.file == f && m.believes() {
				if m.mode == backend.Exclusive {
					excl++
				} else {
					shared++
				}
			}
		}
		if excl > 1 || (excl == 1 && shared > 0) {
			t.Errorf("after %s: %d handles believe they hold %s exclusively and %d shared", what, excl, files[f], shared)
		}
	}
	var problem string
	for deadline := time.Now().Add(promptly); ; time.Sleep(5 * time.Millisecond) {
		problem = s.kernelDisagrees(files, handles)
		if problem == "" || time.Now().After(deadline) {
			break
		}
	}
	if problem != "" {
		t.Errorf("after %s: %s", what, problem)
	}
}

// kernelDisagrees compares, for each file, the modes that handles believe
// they hold with the locks the kernel has on it, and says the first
// difference.
func (s *suiteRun) kernelDisagrees(files []string, handles []*modelHandle) string {
	table, err := proclocks.Read()
	if err != nil {
		return err.Error()
	}
	for f, path := range files {
		var excl, shared int
		for _, m := range handles {
			if m.file == f && m.believes() {
				if m.mode == backend.Exclusive {
					excl++
				} else {
					shared++
				}
			}
		}
		var kernelExcl, kernelShared int
		if st, err := os.Stat(path); err == nil {
			ino := st.Sys().(*syscall.Stat_t).Ino
			for _, l := range table {
				if l.Inode != ino || l.Waiting {
					continue
				}
				if l.Mode == backend.Exclusive {
					kernelExcl++
				} else {
					kernelShared++
				}
			}
		}
		switch {
		case excl > 0 && kernelExcl == 0:
			return fmt.Sprintf("a handle believes it holds %s exclusively; the kernel has no exclusive lock on it", path)
		case excl == 0 && shared > 0 && (kernelShared == 0 || kernelExcl > 0):
			return fmt.Sprintf("handles believe they share %s; the kernel has %d shared and %d exclusive locks on it", path, kernelShared, kernelExcl)
		case excl == 0 && shared == 0 && kernelExcl+kernelShared > 0:
			return fmt.Sprintf("no handle believes it holds %s, but the kernel has %d locks on it: a stale lock", path, kernelExcl+kernelShared)
		}
	}
	return ""
}

// sendGarbage sends the newest plugin process of this test process a
// packet of protocol garbage on its session, as a buggy host would, and
// waits for it to be gone: the plugin must end the session, release
// every lock it kept for this host, and exit; the host then announces
// those locks lost.
func sendGarbage(t *testing.T, rng *rand.Rand) bool {
	pid := newestPlugin()
	if pid == 0 {
		return false
	}
	session := SessionOf(pid)
	if session < 0 {
		return false
	}
	garbage := make([]byte, 1+rng.IntN(64))
	for i := range garbage {
		garbage[i] = 0xff // an invalid wire type in every byte
	}
	if _, err := syscall.Write(session, garbage); err != nil {
		return false // the session ended meanwhile
	}
	waitGone(t, pid, "a packet of garbage on its session")
	return true
}

// newestPlugin returns the newest plugin process of this test process
// running the suite's plugin, or 0.
func newestPlugin() int {
	var ours []int
	for _, pid := range PluginProcesses(os.Getpid()) {
		if processExe(pid) == filepath.Join(suite.pluginDir, pluginhost.BinaryPrefix+suite.name) {
			ours = append(ours, pid)
		}
	}
	if len(ours) == 0 {
		return 0
	}
	return newest(ours)
}

// SessionOf returns this process's descriptor of its session with the
// plugin pid, found by the name the plugin's environment gives it
// (pluginrpc.LifelineHostEnv), or -1: for a test that acts on the session
// from outside, as a buggy host or a leak would.
func SessionOf(pid int) int {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return -1
	}
	var name string
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, pluginrpc.LifelineHostEnv+"="); ok {
			name = v
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if name == "" || err != nil {
		return -1
	}
	for _, e := range ents {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link == name {
			fd, _ := strconv.Atoi(e.Name())
			return fd
		}
	}
	return -1
}

// killPlugin SIGKILLs the newest plugin process of this test process, if
// one is running, and waits for it to be gone.
func killPlugin(t *testing.T, _ *pluginhost.Host) bool {
	pid := newestPlugin()
	if pid == 0 {
		return false
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitGone(t, pid, "SIGKILL")
	return true
}
