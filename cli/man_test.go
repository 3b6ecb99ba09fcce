package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestManPages builds lockmgr with the mangen tag, as `make man` does, and
// checks that it writes a page per command, exit codes included.
func TestManPages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds lockmgr")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "lockmgr")
	if out, err := exec.Command("go", "build", "-tags", "mangen", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags mangen: %v\n%s", err, out)
	}
	man := filepath.Join(dir, "man1")
	cmd := exec.Command(bin, "man", man)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("lockmgr man: %v, output %q", err, out)
	}
	for _, page := range []string{"lockmgr.1", "lockmgr-run.1", "lockmgr-lock.1", "lockmgr-unlock.1", "lockmgr-status.1", "lockmgr-backends.1", "lockmgr-config.1", "lockmgr-version.1", "lockmgr-completion.1"} {
		if _, err := os.Stat(filepath.Join(man, page)); err != nil {
			t.Errorf("no %s: %v", page, err)
		}
	}
	run, err := os.ReadFile(filepath.Join(man, "lockmgr-run.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`.TH "LOCKMGR-RUN" "1" "Jan 1970" "lockmgr dev"`, "Exit status:", "127", "--on-lost"} {
		if !strings.Contains(string(run), want) {
			t.Errorf("lockmgr-run.1 lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(man, "lockmgr-man.1")); err == nil {
		t.Error("the hidden man command has a page of its own")
	}
	// A bad directory is one line and 66.
	out, err := exec.Command(bin, "man", "/proc/nope").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitNoInput || strings.Count(string(out), "\n") != 1 {
		t.Errorf("lockmgr man /proc/nope: %v, %q", err, out)
	}
}
