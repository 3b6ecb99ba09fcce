package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
)

// TestParseFlockArgs holds the personality's reading of a command line
// to getopt_long's: options up to the first operand, clusters, values
// glued or apart, unique prefixes, and two names of one option never
// ambiguous.
func TestParseFlockArgs(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		check    func(fa *flockArgs) bool
		operands int
		usage    string // a usage error containing this
	}{
		{[]string{"-snw", "2.5", "f", "cmd", "-x"}, func(fa *flockArgs) bool {
			return fa.o.mode == backend.Shared && fa.o.nonblock && fa.o.timeout == 2500*time.Millisecond
		}, 3, ""},
		{[]string{"-E7", "--nonb", "--wait=0", "f", "c"}, func(fa *flockArgs) bool {
			return fa.o.conflict == 7 && fa.o.nonblock && fa.o.timeoutSet && fa.o.timeout == 0
		}, 2, ""},
		{[]string{"--nb", "--", "-f", "c"}, func(fa *flockArgs) bool { return fa.o.nonblock }, 2, ""},
		{[]string{"-s", "-e", "f", "c"}, func(fa *flockArgs) bool { return fa.o.mode == backend.Exclusive }, 2, ""},
		{[]string{"--start", "1K", "--length=2", "f", "c"}, func(fa *flockArgs) bool {
			return fa.o.start == 1024 && fa.o.length == 2 && fa.o.fcntl && fa.o.rangeSet
		}, 2, ""},
		{[]string{"--fd", "9", "-c", "echo hi"}, func(fa *flockArgs) bool {
			return fa.o.fd == 9 && fa.commandLine != nil && *fa.commandLine == "echo hi"
		}, 0, ""},
		{[]string{"-w", "0.0000001", "f", "c"}, func(fa *flockArgs) bool { return fa.o.timeoutSet && fa.o.timeout == 0 }, 2, ""},
		{[]string{"-V", "--bogus"}, func(fa *flockArgs) bool { return fa.vers }, 0, ""},
		{[]string{"--no", "f", "c"}, nil, 0, "option '--no' is ambiguous"},
		{[]string{"--s", "f", "c"}, nil, 0, "option '--s' is ambiguous"},
		{[]string{"--bogus", "f", "c"}, nil, 0, "unrecognized option '--bogus'"},
		{[]string{"-q"}, nil, 0, "invalid option -- 'q'"},
		{[]string{"-w"}, nil, 0, "option requires an argument -- 'w'"},
		{[]string{"--timeout"}, nil, 0, "option '--timeout' requires an argument"},
		{[]string{"--shared=yes", "f", "c"}, nil, 0, "option '--shared' doesn't allow an argument"},
		{[]string{"-w", "-1", "f", "c"}, nil, 0, "invalid timeout value: '-1'"},
		{[]string{"-E", "256", "f", "c"}, nil, 0, "exit code out of range"},
		{[]string{"--start", "1Q", "f", "c"}, nil, 0, "invalid as start offset: '1Q'"},
		{[]string{"--fd", "x", "c"}, nil, 0, "invalid file descriptor: 'x'"},
		{[]string{"--fd", "9", "-c", "a", "b"}, nil, 0, "-c requires exactly one command argument"},
	} {
		fa, err := parseFlockArgs("flock", "flock", tc.args)
		if tc.usage != "" {
			if err == nil || !strings.Contains(err.Error(), tc.usage) {
				t.Errorf("parseFlockArgs(%q) = %v; want a usage error with %q", tc.args, err, tc.usage)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseFlockArgs(%q): %v", tc.args, err)
			continue
		}
		if !tc.check(fa) || len(fa.operands) != tc.operands {
			t.Errorf("parseFlockArgs(%q) = %+v, operands %q; not what flock(1) reads", tc.args, *fa.o, fa.operands)
		}
	}
}

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
		known := false
		for _, o := range flockOptions {
			if o.long == word || (len(word) == 1 && o.short == word[0]) {
				known = true
			}
		}
		if !known {
			t.Errorf("under the flock name, the refusal suggests %s, which flock(1) has not: %q", m[1], stderr)
		}
	}
	for _, want := range []string{cfg + ":1", lock, "flock FILE COMMAND"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal does not name %q: %q", want, stderr)
		}
	}
}
