package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// envUtilLinuxTests names a copy of util-linux's source tree, or of its
// tests/ directory alone (git archive HEAD tests), whose flock(1) test
// scenarios (tests/ts/flock) TestUtilLinuxFlockSuite runs against the
// flock personality.
const envUtilLinuxTests = "LOCKMGR_UTIL_LINUX_TESTS"

// utilLinuxKnownFailures are util-linux's flock tests that the
// personality cannot pass yet, and why. One that passes fails the test,
// so that it is taken off this list.
var utilLinuxKnownFailures = map[string]string{
	"range-lock": "needs an lslocks that names the pid holding an OFD lock (util-linux 2.38's shows none), whatever flock runs",
}

// TestUtilLinuxFlockSuite runs util-linux's own flock(1) tests with the
// flock personality as their flock.
func TestUtilLinuxFlockSuite(t *testing.T) {
	root := os.Getenv(envUtilLinuxTests)
	if root == "" {
		t.Skipf("util-linux's test suite is not here: set %s to a copy of util-linux's tests/ (git archive HEAD tests | tar -x). "+
			"CI cannot fetch one (no GitHub access there, and no Debian binary package ships util-linux's test suite)", envUtilLinuxTests)
	}
	tests := filepath.Join(root, "tests")
	scripts, _ := filepath.Glob(filepath.Join(tests, "ts", "flock", "*"))
	if len(scripts) == 0 {
		t.Fatalf("%s=%s has no tests/ts/flock/*", envUtilLinuxTests, root)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("util-linux's tests are bash scripts, and there is no bash")
	}
	if err := buildErrs["flock"]; err != nil {
		t.Fatalf("no flock plugin: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The suite's build directory: its flock is the personality, its
	// lslocks the system's, and test_strerror (a helper util-linux
	// builds) says what strerror says.
	build := t.TempDir()
	if err := os.Symlink(self, filepath.Join(build, flockName)); err != nil {
		t.Fatal(err)
	}
	if lslocks, err := exec.LookPath("lslocks"); err == nil {
		if err := os.Symlink(lslocks, filepath.Join(build, "lslocks")); err != nil {
			t.Fatal(err)
		}
	}
	strerror := "#!/bin/sh\ncase \"$1\" in EBADF) echo 'Bad file descriptor';; *) echo \"$1\";; esac\n"
	if err := os.WriteFile(filepath.Join(build, "test_strerror"), []byte(strerror), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, script := range scripts {
		name := filepath.Base(script)
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 4*patience)
			defer cancel()
			// --nolocks: the suite would take its own locks with
			// flock(1), which is the personality here.
			cmd := exec.CommandContext(ctx, "bash", script, "--nolocks", "--builddir="+build)
			cmd.Dir = tests
			cmd.Env = append(os.Environ(), "LOCKMGR_PLUGIN_DIR="+pluginDir, "LOCKMGR_CONFIG="+cfg, envTestFlock+"=1")
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("still running after %v:\n%s", 4*patience, out)
			}
			verdict := suiteVerdict(out)
			diff, _ := os.ReadFile(filepath.Join(build, "tests", "diff", "flock", name))
			why, known := utilLinuxKnownFailures[name]
			switch {
			case strings.Contains(verdict, "SKIPPED"):
				t.Skipf("util-linux skipped it: %s", verdict)
			case strings.Contains(verdict, "OK") && err == nil:
				if known {
					t.Errorf("passes now: take it off utilLinuxKnownFailures (%s)", why)
				}
			case known:
				t.Logf("fails, as known: %s\n%s", why, diff)
			default:
				t.Errorf("%s (%v)\n%s\n%s", verdict, err, out, diff)
			}
		})
	}
}

// suiteVerdict is the last line of a util-linux test's report that
// says how it went: "flock: close ... OK".
func suiteVerdict(out []byte) string {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if l := string(bytes.TrimSpace(lines[i])); strings.Contains(l, "...") {
			return l
		}
	}
	return fmt.Sprintf("no verdict in %q", out)
}
