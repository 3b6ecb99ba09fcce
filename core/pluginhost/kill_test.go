package pluginhost_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/pluginhost"
)

// lastPID is where the kernel keeps the last pid it handed out; root may
// write it to choose the next one.
const lastPID = "/proc/sys/kernel/ns_last_pid"

// TestKillAfterReapSparesRecycledPID: once a plugin has exited and been
// reaped, its pid is free for any process to take. Plugin.Kill must then
// leave alone the process that took it, as a kill by the bare pid (what
// `lockmgr run` did through os.FindProcess) would not.
func TestKillAfterReapSparesRecycledPID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("recycling a chosen pid takes root (writing " + lastPID + ")")
	}
	h := pluginhost.New(pluginhost.Options{Dirs: []string{pluginDir}})
	p := getFlock(t, h)
	defer p.Done()
	pid := p.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil { // not reaped yet: still ours
		t.Fatal(err)
	}
	select {
	case <-p.Dead():
	case <-time.After(promptly):
		t.Fatal("the killed plugin is not marked dead")
	}
	// go-plugin reaps it: then its /proc entry, zombie included, is gone.
	deadline := time.Now().Add(promptly)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d not reaped %v after it was killed", pid, promptly)
		}
		time.Sleep(10 * time.Millisecond)
	}

	decoy := takePID(t, pid)
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("Kill of a reaped plugin: %v", err)
	}
	expectAlive(t, pid, "(pid recycled by an unrelated process) after Kill of the reaped plugin that had it")
	decoy.Process.Kill()
	decoy.Wait()
}

// takePID starts a process that waits for its stdin to close, with pid
// pid, by setting the kernel's last pid just below it; another process
// starting at that moment may take it first, so it tries a few times.
func takePID(t *testing.T, pid int) *exec.Cmd {
	t.Helper()
	for range 50 {
		if err := os.WriteFile(lastPID, []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Fatalf("choosing the next pid: %v", err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), holderEnv+"=1")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == pid {
			t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
			return cmd
		}
		stdin.Close()
		cmd.Wait()
	}
	t.Fatalf("no process could be started with pid %d in 50 tries", pid)
	return nil
}
