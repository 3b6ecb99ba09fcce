package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/lockmgr/lockmgr/core/locktest"
)

// coldPackages are what the lockmgr command must not link: go-plugin and
// gRPC, and what they bring in, whose package initialisation was most of
// a command's start-up (issue #21; docs/performance.rst).
var coldPackages = []string{
	"github.com/hashicorp/go-plugin",
	"github.com/lockmgr/lockmgr/core/plugin",
	"github.com/lockmgr/lockmgr/core/lockpb/controlpb",
	"google.golang.org/grpc",
	"net/rpc",
	"encoding/gob",
	"html/template",
}

// deps lists what the cli package links with tags.
func deps(t *testing.T, tags string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-tags", tags, ".").Output()
	if err != nil {
		t.Fatalf("go list -deps -tags %s: %v", tags, err)
	}
	return strings.Fields(string(out))
}

// TestCommandLinksNoGoPlugin: the lockmgr command, built as the Makefile
// and the releases build it, links none of coldPackages; lockmgr-full,
// built without the tag, links go-plugin, or this test could not tell.
func TestCommandLinksNoGoPlugin(t *testing.T) {
	linked := func(pkgs []string, cold string) bool {
		for _, p := range pkgs {
			if p == cold || strings.HasPrefix(p, cold+"/") {
				return true
			}
		}
		return false
	}
	lean := deps(t, "lockmgr_sharedonly")
	for _, cold := range coldPackages {
		if linked(lean, cold) {
			t.Errorf("lockmgr (-tags lockmgr_sharedonly) links %s", cold)
		}
	}
	if !linked(deps(t, "grpcnotrace"), "github.com/hashicorp/go-plugin") {
		t.Error("lockmgr-full does not link go-plugin: it could start no private plugin")
	}
}

var (
	buildsOnce sync.Once
	buildsDir  string
	buildsErr  error
)

// commandBuilds builds lockmgr and lockmgr-full as the Makefile does, once
// per test run, into a directory of their own.
func commandBuilds(t *testing.T) string {
	t.Helper()
	buildsOnce.Do(func() {
		buildsDir, buildsErr = os.MkdirTemp("", "lockmgr-builds-")
		if buildsErr != nil {
			return
		}
		build := func(tags, out string) error {
			args := []string{"build", "-tags", tags, "-o", filepath.Join(buildsDir, out)}
			if runtime.GOARCH == "amd64" {
				// The entry that records the caller's signals (sigentry.go).
				args = append(args, "-ldflags=-E=main.lockmgrEntry")
			}
			cmd := exec.Command("go", append(args, ".")...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				return &buildError{out, err, string(b)}
			}
			return nil
		}
		if buildsErr = build("lockmgr_sharedonly", "lockmgr"); buildsErr == nil {
			buildsErr = build("grpcnotrace", fullBuildName)
		}
	})
	if buildsErr != nil {
		t.Fatal(buildsErr)
	}
	return buildsDir
}

type buildError struct {
	out string
	err error
	b   string
}

func (e *buildError) Error() string { return "building " + e.out + ": " + e.err.Error() + "\n" + e.b }

// runBuilt runs a shell command line with lockmgr's plugins and a
// runtime directory of the test's own, and returns its output and exit
// code.
func runBuilt(t *testing.T, dir, script string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = t.TempDir()
	run := filepath.Join(t.TempDir(), "run")
	t.Cleanup(func() { locktest.KillSharedPlugins(run) })
	cfg := filepath.Join(cmd.Dir, "empty.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "LOCKMGR_PLUGIN_DIR="+pluginDir, "LOCKMGR_RUNTIME_DIR="+run,
		"LOCKMGR_CONFIG="+cfg, "LOCKMGR="+filepath.Join(dir, "lockmgr"))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestPrivatePluginThroughTheFullBuild: the lockmgr command serves flock
// through the shared plugin itself, and execs lockmgr-full for posix,
// whose plugin is private; the lock then excludes as posix's must, and a
// signal the caller ignored stays ignored across the exec.
func TestPrivatePluginThroughTheFullBuild(t *testing.T) {
	for _, b := range []string{"flock", "posix"} {
		if err := buildErrs[b]; err != nil {
			t.Fatalf("no %s plugin: %v", b, err)
		}
	}
	dir := commandBuilds(t)
	full := filepath.Join(dir, fullBuildName)

	// Who ran the command: the lockmgr it was started by is its parent.
	out, stderr, code := runBuilt(t, dir, `"$LOCKMGR" run -b flock lock -- sh -c 'readlink /proc/$PPID/exe'`)
	if code != 0 || strings.TrimSpace(out) != filepath.Join(dir, "lockmgr") {
		t.Fatalf("run -b flock: exit %d, the command's parent is %q, want lockmgr itself; stderr %q", code, out, stderr)
	}
	out, stderr, code = runBuilt(t, dir, `"$LOCKMGR" run -b posix lock -- sh -c 'readlink /proc/$PPID/exe'`)
	if code != 0 || strings.TrimSpace(out) != full {
		t.Fatalf("run -b posix: exit %d, the command's parent is %q, want %s; stderr %q", code, out, full, stderr)
	}
	// The mark that guards against an exec loop is not the command's.
	out, stderr, code = runBuilt(t, dir, `"$LOCKMGR" run -b posix lock -- sh -c 'echo "${`+fullBuildEnv+`-unset}"'`)
	if code != 0 || strings.TrimSpace(out) != "unset" {
		t.Fatalf("run -b posix: exit %d, the command sees %s=%q; stderr %q", code, fullBuildEnv, out, stderr)
	}
	// While one lockmgr holds the posix lock, another is refused (-E 42).
	_, stderr, code = runBuilt(t, dir, `"$LOCKMGR" run -b posix lock -- "$LOCKMGR" run -n -E 42 -b posix lock true`)
	if code != 42 {
		t.Fatalf("a second posix lock under a held one: exit %d, want 42 (busy); stderr %q", code, stderr)
	}
	if runtime.GOARCH == "amd64" {
		// SIGTERM is bit 15 of SigIgn.
		out, stderr, code = runBuilt(t, dir, `trap '' TERM; exec "$LOCKMGR" run -b posix lock -- sh -c 'grep SigIgn /proc/self/status'`)
		if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "4000") {
			t.Fatalf("with SIGTERM ignored, the command's %q (exit %d, stderr %q), want SIGTERM ignored", out, code, stderr)
		}
	}
}

// TestNoFullBuild: without lockmgr-full beside it, lockmgr still serves
// flock, and refuses posix with one line that says what is missing.
func TestNoFullBuild(t *testing.T) {
	dir := t.TempDir()
	lean, err := os.ReadFile(filepath.Join(commandBuilds(t), "lockmgr"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lockmgr"), lean, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runBuilt(t, dir, `"$LOCKMGR" run -b flock lock true`); code != 0 {
		t.Fatalf("run -b flock: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code := runBuilt(t, dir, `"$LOCKMGR" run -b posix lock true`)
	if code != exitUnavailable {
		t.Errorf("run -b posix with no lockmgr-full: exit %d, want %d", code, exitUnavailable)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "lockmgr: ") || !strings.Contains(lines[0], "(posix)") || !strings.Contains(lines[0], "no "+fullBuildName+" in "+dir) {
		t.Errorf("run -b posix with no lockmgr-full: stderr %q, want one line naming posix and the missing %s", stderr, fullBuildName)
	}
}

// TestFullBuildThatIsNot: a copy of lockmgr in lockmgr-full's place (a
// packaging mistake) is refused with one line, not exec'd for ever.
func TestFullBuildThatIsNot(t *testing.T) {
	dir := t.TempDir()
	lean, err := os.ReadFile(filepath.Join(commandBuilds(t), "lockmgr"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lockmgr", fullBuildName} {
		if err := os.WriteFile(filepath.Join(dir, name), lean, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, stderr, code := runBuilt(t, dir, `"$LOCKMGR" run -b posix lock true`)
	if code != exitUnavailable || strings.Count(strings.TrimSpace(stderr), "\n") != 0 ||
		!strings.Contains(stderr, filepath.Join(dir, fullBuildName)+" is not the full build") {
		t.Fatalf("run -b posix with lockmgr in lockmgr-full's place: exit %d, stderr %q", code, stderr)
	}
}
