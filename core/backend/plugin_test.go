package backend

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPluginComm: a process started from a plugin binary, whatever its
// backend, shows in /proc with the command name PluginComm says.
func TestPluginComm(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1) to start under a plugin's name")
	}
	for _, name := range []string{"flock", "etcd"} {
		// The kernel names a process after the file it was exec'd as:
		// a link is enough.
		bin := filepath.Join(t.TempDir(), PluginBinaryPrefix+name)
		if err := os.Symlink(sleep, bin); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSuffix(string(comm), "\n"); got != PluginComm() {
			t.Errorf("%s shows as %q in /proc, not PluginComm() = %q", filepath.Base(bin), got, PluginComm())
		}
	}
}
