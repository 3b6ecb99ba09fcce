package proclocks

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestCommand(t *testing.T) {
	// The kernel names a process after its executable, cut to 15 bytes.
	want := filepath.Base(os.Args[0])
	if len(want) > 15 {
		want = want[:15]
	}
	if got := Command(os.Getpid()); got != want {
		t.Errorf("Command(self) = %q, want %q", got, want)
	}
	if got := Command(exitedPID(t)); got != "" {
		t.Errorf("Command of an exited process = %q, want \"\"", got)
	}
	if got := Command(-1); got != "" {
		t.Errorf("Command(-1) = %q, want \"\"", got)
	}
}

func TestParentPID(t *testing.T) {
	if got, want := ParentPID(os.Getpid()), os.Getppid(); got != want {
		t.Errorf("ParentPID(self) = %d, want %d", got, want)
	}
	if got := ParentPID(exitedPID(t)); got != -1 {
		t.Errorf("ParentPID of an exited process = %d, want -1", got)
	}
	if got := ParentPID(-1); got != -1 {
		t.Errorf("ParentPID(-1) = %d, want -1", got)
	}
}

func TestFieldsAfterComm(t *testing.T) {
	tests := []struct {
		stat string
		ppid string
	}{
		{"123 (sleep) S 45 123 45 0 -1\n", "45"},
		{"123 (a b) S 46 123\n", "46"},
		// A process may name itself anything, parentheses included.
		{"123 (x) R 9 (y)) S 47 123\n", "47"},
		{"123 ()) S 48 123\n", "48"},
	}
	for _, tt := range tests {
		fields, ok := fieldsAfterComm([]byte(tt.stat))
		if !ok || len(fields) < 2 || string(fields[0]) != "S" || string(fields[1]) != tt.ppid {
			t.Errorf("fieldsAfterComm(%q) = %q, %v; want state S, parent %s", tt.stat, fields, ok, tt.ppid)
		}
	}
	if fields, ok := fieldsAfterComm([]byte("123 (no end S 4")); ok {
		t.Errorf("fieldsAfterComm of a line with no ')' = %q, want failure", fields)
	}
}

func TestAlive(t *testing.T) {
	if !alive(os.Getpid()) {
		t.Error("alive(self) = false")
	}
	if alive(exitedPID(t)) {
		t.Error("alive of a reaped process = true")
	}

	// A zombie holds no descriptors, so it counts as exited.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"=exit")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	waitUntil(t, "the child to become a zombie", func() bool {
		fields, ok := statFields(pid)
		return ok && len(fields) > 0 && string(fields[0]) == "Z"
	})
	if alive(pid) {
		t.Error("alive of a zombie = true")
	}
}

// exitedPID returns the pid of a process that has exited and been reaped.
// The kernel could hand the pid to a new process meanwhile, but it does
// not reuse pids until they wrap around.
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"=exit")
	if err := cmd.Run(); err != nil {
		t.Fatalf("running a child to exit at once: %v", err)
	}
	return cmd.Process.Pid
}
