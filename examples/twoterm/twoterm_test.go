package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lockmgr/lockmgr/core/locktest"
)

// TestBoth runs `twoterm -both` through each of lockmgr's backends, with
// plugins built from this checkout, and checks the seed's two-terminal
// story in its output: A takes the lock, B finds it held (by A's plugin)
// and waits, A lets go, and only then B gets it.
func TestBoth(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the backend plugins")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "twoterm")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, backend := range []string{"flock", "posix", "ofd"} {
		t.Run(backend, func(t *testing.T) {
			plugins := t.TempDir()
			if err := locktest.BuildPlugin(filepath.Join("..", "..", "backends", backend), backend, plugins); err != nil {
				t.Fatal(err)
			}
			lock := filepath.Join(t.TempDir(), "two.lock")
			cmd := exec.Command(exe, "-both", "-hold", "100ms", "-backend", backend, "-plugin-dir", plugins, lock)
			// Only the plugins built here: none from the machine.
			cmd.Env = append(os.Environ(), "LOCKMGR_CONFIG=/dev/null", "LOCKMGR_PLUGIN_DIR=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("twoterm -both: %v\n%s", err, out)
			}
			// A holds a flock or ofd lock's descriptor itself (its plugin
			// handed it over); a posix lock stays in A's plugin.
			holder := `^B: held by pid \d+ \(twoterm\) as an exclusive ` + backend + ` lock; waiting$`
			if backend == "posix" {
				holder = `^B: held by pid \d+ \(lockmgr-backend\), the plugin of pid \d+ \(twoterm\), as an exclusive ` + backend + ` lock; waiting$`
			}
			want := []string{
				`^A: asking for the lock on ` + regexp.QuoteMeta(lock) + `$`,
				`^A: got it \(backend ` + backend + `\)$`,
				`^A: holding it; started B, which asks for it too$`,
				`^B: asking for the lock on ` + regexp.QuoteMeta(lock) + `$`,
				holder,
				`^A: pressing Enter$`,
				`^A: let go$`,
				`^B: got it after \d+\.\ds \(backend ` + backend + `\)$`,
				`^B: holding it; press Enter to let go$`,
				`^A: pressing Enter for B$`,
				`^B: let go$`,
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(want) {
				t.Fatalf("twoterm -both printed %d lines, want %d:\n%s", len(lines), len(want), out)
			}
			for i, re := range want {
				if !regexp.MustCompile(re).MatchString(lines[i]) {
					t.Errorf("line %d: %q does not match %s", i+1, lines[i], re)
				}
			}
		})
	}
}
