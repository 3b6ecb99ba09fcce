package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// runAsFlock runs this test binary as the flock personality (TestMain),
// through a link named flock, with the plugins and config, running
// script under bash with "$0" the personality.
func runAsFlock(t *testing.T, cfg, script string) (code int, stdout, stderr string) {
	t.Helper()
	if err := buildErrs["posix"]; err != nil {
		t.Fatalf("no posix plugin: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), flockName)
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", script, link)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), envTestFlock+"=1", "LOCKMGR_PLUGIN_DIR="+pluginDir, "LOCKMGR_CONFIG="+cfg, "LOCKMGR_BACKEND=")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// flockOptionWord is an option as a message would spell it.
var flockOptionWord = regexp.MustCompile(`(?:^|[\s('"])(--?[A-Za-z][A-Za-z-]*)`)

// TestFlockPosixRule: under a [[rules]] entry that puts a directory on
// posix, flock(1)'s file form takes a POSIX lock held while the command
// runs, and the descriptor form, which a POSIX lock cannot serve (it
// would end with the plugin that took it), is refused in one line that
// suggests only what a flock(1) user has: no lockmgr option.
func TestFlockPosixRule(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("[[rules]]\npath = \""+dir+"\"\nbackend = \"posix\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "job.lock")

	// The file form: a POSIX lock on the file while the command runs.
	code, stdout, stderr := runAsFlock(t, cfg, `"$0" -n `+lock+` sh -c 'ino=$(stat -c %i `+lock+`); grep -c " POSIX .*:$ino " /proc/locks'`)
	if code != 0 || strings.TrimSpace(stdout) != "1" {
		t.Errorf("flock -n FILE under a posix rule: exit %d, %q POSIX locks on the file seen by the command, stderr %q; want exit 0 and 1", code, stdout, stderr)
	}

	// The descriptor form, as cron jobs write it.
	code, _, stderr = runAsFlock(t, cfg, `exec 9>`+lock+`; "$0" -n 9`)
	if code != exitUsage || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "flock: 9: ") {
		t.Errorf("exec 9>FILE; flock -n 9 under a posix rule: exit %d, stderr %q; want 64 and one line starting 'flock: 9: '", code, stderr)
	}
	for _, m := range flockOptionWord.FindAllStringSubmatch(stderr, -1) {
		word := strings.TrimLeft(m[1], "-")
		if !flockHasOption(word) {
			t.Errorf("under the flock name, the refusal suggests %s, which flock(1) has not: %q", m[1], stderr)
		}
	}
	for _, want := range []string{cfg + ":1", lock, "flock FILE COMMAND"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal does not name %q: %q", want, stderr)
		}
	}
}

// flockHasOption reports whether flock(1) has an option named word: a
// long name without its dashes, or a letter. lockmgr's messages under
// the flock name suggest only options a flock(1) script can use.
func flockHasOption(word string) bool {
	for _, r := range lockOptions(newRunOptions()) {
		if r.in&forFlock == 0 {
			continue
		}
		if slices.Contains(r.long, word) || len(word) == 1 && (word[0] == r.short || word[0] == r.alias) {
			return true
		}
	}
	return false
}
