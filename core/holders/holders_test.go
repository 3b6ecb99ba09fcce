package holders

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"github.com/lockmgr/lockmgr/core/proclocks"
)

func TestSubcommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lockmgr", "run", "f", "cmd"}, "run"},
		{[]string{"lockmgr", "-v", "--config", "run", "status", "f"}, "status"},
		{[]string{"/usr/bin/lockmgr", "--json", "lock", "3"}, "lock"},
		{[]string{"lockmgr", "--config"}, ""},
		{[]string{"lockmgr", "/tmp/lock", "run"}, ""},
		{[]string{"lockmgr"}, ""},
	} {
		if got := subcommand(tc.args); got != tc.want {
			t.Errorf("subcommand(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestAttributeLeavesOthers: an owner that is neither a plugin nor a
// lockmgr is returned as the kernel named it.
func TestAttributeLeavesOthers(t *testing.T) {
	self := backend.LockOwner{PID: os.Getpid(), Command: proclocks.Command(os.Getpid()), Kind: proclocks.KindPOSIX}
	unknown := backend.LockOwner{PID: -1, Kind: proclocks.KindOFD, Detail: "as found"}
	st := Attribute(backend.Status{Holders: []backend.LockOwner{self}, Waiters: []backend.LockOwner{unknown}})
	if st.Holders[0] != self || st.Waiters[0] != unknown {
		t.Errorf("Attribute changed %+v, %+v into %+v, %+v", self, unknown, st.Holders[0], st.Waiters[0])
	}
}

// startSleep starts a child that sleeps until the test ends.
func startSleep(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// TestCommandOf: a process's command is its child that is not a plugin.
func TestCommandOf(t *testing.T) {
	child := startSleep(t, exec.Command("sleep", "60"))
	pid, comm := commandOf(os.Getpid())
	if pid != child.Process.Pid || comm != "sleep" {
		t.Errorf("commandOf(self) = %d %q, want %d \"sleep\"", pid, comm, child.Process.Pid)
	}
}

// TestKeeperOf: the keeper of a pipe is the process that holds it open,
// and the one whose parent does not, when a process and its child do.
func TestKeeperOf(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(w.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(target, "pipe:") {
		t.Fatalf("a pipe shows as %q", target)
	}
	// sh keeps descriptor 3 and passes it to its sleep.
	cmd := exec.Command("sh", "-c", "sleep 60; :")
	cmd.ExtraFiles = []*os.File{w}
	child := startSleep(t, cmd)
	// Both ends of a pipe show as the same pipe:[inode].
	w.Close()
	r.Close()
	if !holds(child.Process.Pid, target) {
		t.Fatalf("holds(child, %s) = false", target)
	}
	if holds(os.Getpid(), target) {
		t.Fatalf("holds(self, %s) = true after closing it", target)
	}
	if got := keeperOf(target, os.Getpid()); got != child.Process.Pid {
		t.Errorf("keeperOf(%s) = %d, want the shell, %d", target, got, child.Process.Pid)
	}
	// The child may have inherited other pipes from whatever runs the
	// test; its keeper must be among them.
	if keepers := keepersOf(child.Process.Pid); !slices.Contains(keepers, target) {
		t.Errorf("keepersOf(child) = %q, want %s among them", keepers, target)
	}
}

// TestLifelineOf: the lifeline is read from the plugin's environment.
func TestLifelineOf(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	cmd.Env = append(os.Environ(), pluginrpc.LifelineHostEnv+"=socket:[12345]")
	child := startSleep(t, cmd)
	if got := lifelineOf(child.Process.Pid); got != "socket:[12345]" {
		t.Errorf("lifelineOf(child) = %q, want socket:[12345]", got)
	}
	if got := lifelineOf(os.Getpid()); got != "" && os.Getenv(pluginrpc.LifelineHostEnv) == "" {
		t.Errorf("lifelineOf(self) = %q, want none", got)
	}
}
