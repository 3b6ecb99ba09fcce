package pluginproc

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sleeper writes an executable that sleeps, standing in for a plugin:
// Start and Take care about processes, not handshakes.
func sleeper(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sleeper")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// gone waits until pid has exited (or is a zombie, which holds nothing).
func gone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d is still running", pid)
}

func noDir(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory %s left behind (%v)", dir, err)
	}
}

func TestTakeEqualSpec(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	spec := PrestartSpec(sleeper(t), "", true)
	if err := Prestart(spec); err != nil {
		t.Fatal(err)
	}
	// The host builds the environment in its own order.
	again := spec
	again.Env = slices.Clone(spec.Env)
	slices.Reverse(again.Env)
	p := Take(again)
	if p == nil || p.PID() <= 0 {
		t.Fatalf("Take(an equal spec) = %v, want the prestarted process", p)
	}
	if Take(again) != nil {
		t.Error("a prestarted process was handed out twice")
	}
	p.Discard()
	gone(t, p.PID())
	noDir(t, p.SocketDir)
}

func TestTakeOtherSpecDiscards(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	spec := PrestartSpec(sleeper(t), "", true)
	if err := Prestart(spec); err != nil {
		t.Fatal(err)
	}
	early.mu.Lock()
	p := early.proc
	early.mu.Unlock()
	for _, other := range []Spec{
		PrestartSpec(spec.Path, "", false),
		{Path: spec.Path, Env: append(slices.Clone(spec.Env), "X=1"), ShareLifeline: true},
		{Path: spec.Path, Env: spec.Env, ShareLifeline: true, ExtraFiles: []*os.File{os.Stdin}},
	} {
		if spec.equal(other) {
			t.Errorf("%+v equals %+v", other, spec)
		}
	}
	if got := Take(PrestartSpec(spec.Path, "", false)); got != nil {
		t.Fatalf("Take(another spec) = %v, want nil", got)
	}
	gone(t, p.PID())
	noDir(t, p.SocketDir)
}

func TestDiscardPrestarted(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	if err := Prestart(PrestartSpec(sleeper(t), "", true)); err != nil {
		t.Fatal(err)
	}
	early.mu.Lock()
	p := early.proc
	early.mu.Unlock()
	DiscardPrestarted()
	gone(t, p.PID())
	noDir(t, p.SocketDir)
}

func TestStartChecksPin(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, err := Start(PrestartSpec(sleeper(t), strings.Repeat("0", 64), false))
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Start(a wrong pin): %v, want ErrChecksum", err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("a refused start left %v in TMPDIR", ents)
	}
}
