package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestManPages builds lockmgr with the mangen tag, as `make man` does, and
// checks that it writes a page per command with the sections an admin
// looks for, in roff that groff reads without a warning, and none of
// cobra's raw renderings.
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
	groff, groffErr := exec.LookPath("groff")
	if groffErr != nil {
		t.Logf("groff is not installed, so the pages are not linted: %v", groffErr)
	}
	every := []string{".SH NAME\n", ".SH SYNOPSIS\n", ".SH DESCRIPTION\n", ".SH OPTIONS\n", ".SH EXIT STATUS\n", ".SH SEE ALSO\n", "lockmgr.toml (5)", "flock (1)"}
	pages := map[string][]string{
		"lockmgr.1": {".SH ENVIRONMENT\n", ".SH FILES\n", ".SH EXAMPLES\n", ".SH THE FLOCK NAME\n", ".SH COMMANDS\n",
			"PATH=/usr/bin:/bin", "/usr/local/bin/flock", "LOCKMGR_BACKEND", "[[rules]]", "lockmgr\\-etcd (5)",
			"65 a lock call refused", ".B flock\n[OPTIONS] N\n"},
		"lockmgr-run.1": {".SH ENVIRONMENT\n", ".SH FILES\n", ".SH EXAMPLES\n", ".SS Signals\n", "LOCKMGR_LOCK_BACKEND",
			"\\fB\\-n\\fR, \\fB\\-\\-nonblock\\fR\n", "\\fB\\-w\\fR, \\fB\\-\\-timeout\\fR \\fISECONDS\\fR\n", "\n.B 127\n", "\n.B 75\n", "lslocks", "/proc/PID/fdinfo"},
		"lockmgr-lock.1":       {".SH ENVIRONMENT\n", ".SH FILES\n", "\n.B 66\n"},
		"lockmgr-unlock.1":     {".SH ENVIRONMENT\n", ".SH EXAMPLES\n"},
		"lockmgr-status.1":     {".SH ENVIRONMENT\n", ".SH NOTES\n", "lslocks"},
		"lockmgr-backends.1":   {".SH ENVIRONMENT\n", "\n.B 69\n"},
		"lockmgr-config.1":     {".SH ENVIRONMENT\n", "\n.B 78\n"},
		"lockmgr-version.1":    nil,
		"lockmgr-completion.1": nil,
	}
	for page, want := range pages {
		text, err := os.ReadFile(filepath.Join(man, page))
		if err != nil {
			t.Errorf("no %s: %v", page, err)
			continue
		}
		s := string(text)
		title := strings.ToUpper(strings.TrimSuffix(page, ".1"))
		if !strings.HasPrefix(s, `.TH `+title+` 1 1970-01-01 "lockmgr dev" "lockmgr manual"`) {
			t.Errorf("%s does not start with its .TH line, dated by SOURCE_DATE_EPOCH: %q", page, s[:min(len(s), 80)])
		}
		for _, w := range append(every, want...) {
			if !strings.Contains(s, w) {
				t.Errorf("%s lacks %q", page, w)
			}
		}
		for _, raw := range []string{"[=false]", "[=true]", "help for "} {
			if strings.Contains(s, raw) {
				t.Errorf("%s has cobra's raw %q", page, raw)
			}
		}
		if groffErr == nil {
			out, err := exec.Command(groff, "-man", "-ww", "-z", filepath.Join(man, page)).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("groff -man -ww -z %s: %v\n%s", page, err, out)
			}
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

// TestHelpUsageFirst: every command's --help starts with its usage line,
// as flock(1)'s does, and run's fits on a screen or two rather than
// burying the usage under the whole manual.
func TestHelpUsageFirst(t *testing.T) {
	root := newRootCmd()
	var paths [][]string
	paths = append(paths, nil)
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			paths = append(paths, []string{c.Name()})
		}
	}
	usage := regexp.MustCompile(`^Usage: lockmgr( [a-z]+)? `)
	for _, p := range paths {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(p, "--help"))
		if err := root.Execute(); err != nil {
			t.Fatalf("lockmgr %v --help: %v", p, err)
		}
		first, _, _ := strings.Cut(out.String(), "\n")
		if !usage.MatchString(first) || (len(p) > 0 && !strings.HasPrefix(first, "Usage: lockmgr "+p[0]+" ")) {
			t.Errorf("lockmgr %s --help starts with %q, not its usage", strings.Join(p, " "), first)
		}
		if strings.Contains(out.String(), "[=false]") {
			t.Errorf("lockmgr %s --help has [=false]", strings.Join(p, " "))
		}
		if len(p) == 1 && p[0] == "run" {
			if n := strings.Count(out.String(), "\n"); n > 80 {
				t.Errorf("lockmgr run --help is %d lines; keep it to the essentials, the rest is lockmgr-run(1)", n)
			}
			if !strings.Contains(out.String(), "man lockmgr-run") {
				t.Error("lockmgr run --help does not point at its man page")
			}
		}
	}
}
