package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFlockUnlockFIFONeverBlocks: `flock -u FILE COMMAND` opens FILE only
// to do as flock(1) does, and a FIFO planted there must not hold it in
// open(2) until someone writes to the FIFO: it runs the command.
func TestFlockUnlockFIFONeverBlocks(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, flockName)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The bound only turns a hang into a failure.
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, flockName), "-u", fifo, "touch", filepath.Join(dir, "ran"))
	cmd.Env = diffEnv(nil, cfg)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("flock -u FIFO COMMAND still blocked after %v", patience)
	}
	if err != nil {
		t.Fatalf("flock -u FIFO COMMAND: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err != nil {
		t.Errorf("the command did not run: %v", err)
	}
}
