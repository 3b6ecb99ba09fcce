package main

import (
	"errors"
	"os/exec"
	"slices"
	"testing"
)

func TestParseRunArgs(t *testing.T) {
	t.Setenv("SHELL", "/bin/zsh")
	for _, tc := range []struct {
		args     []string
		file     string
		argv     []string
		wantCode int // 0: no error
	}{
		{[]string{"f", "--", "cmd", "-x"}, "f", []string{"cmd", "-x"}, 0},
		{[]string{"f", "cmd", "--", "x"}, "f", []string{"cmd", "--", "x"}, 0},
		{[]string{"f", "-c", "echo hi"}, "f", []string{"/bin/zsh", "-c", "echo hi"}, 0},
		{[]string{"f", "--command", "echo hi"}, "f", []string{"/bin/zsh", "-c", "echo hi"}, 0},
		{[]string{"f", "--", "-weird"}, "f", []string{"-weird"}, 0},
		{nil, "", nil, exitUsage},
		{[]string{""}, "", nil, exitUsage},
		{[]string{"f"}, "", nil, exitUsage},
		{[]string{"f", "--"}, "", nil, exitUsage},
		{[]string{"f", "--", ""}, "", nil, exitUsage},
		{[]string{"f", "-c"}, "", nil, exitUsage},
		{[]string{"f", "-c", "a", "b"}, "", nil, exitUsage},
		{[]string{"f", "-n", "cmd"}, "", nil, exitUsage},
	} {
		file, argv, err := parseRunArgs(tc.args)
		if tc.wantCode != 0 {
			if got := exitCode(err); got != tc.wantCode {
				t.Errorf("parseRunArgs(%q): exit code %d (%v), want %d", tc.args, got, err, tc.wantCode)
			}
			continue
		}
		if err != nil || file != tc.file || !slices.Equal(argv, tc.argv) {
			t.Errorf("parseRunArgs(%q) = %q, %q, %v; want %q, %q", tc.args, file, argv, err, tc.file, tc.argv)
		}
	}
}

func TestParseRunArgsDefaultShell(t *testing.T) {
	t.Setenv("SHELL", "")
	_, argv, err := parseRunArgs([]string{"f", "-c", "true"})
	if err != nil || argv[0] != "/bin/sh" {
		t.Fatalf("with SHELL unset: %q, %v; want /bin/sh", argv, err)
	}
}

func TestCommandError(t *testing.T) {
	for _, tc := range []struct {
		name string
		want int
	}{
		{"no-such-command-anywhere", exitNotFound},
		{"/no/such/path", exitNotFound},
		{"/etc/passwd", exitCannotExec},
		{"/", exitCannotExec},
	} {
		_, err := exec.LookPath(tc.name)
		if err == nil {
			t.Fatalf("LookPath(%q) found it", tc.name)
		}
		if got := exitCode(commandError(tc.name, err)); got != tc.want {
			t.Errorf("commandError(%q, %v) exits %d, want %d", tc.name, err, got, tc.want)
		}
	}
	if got := exitCode(commandError("x", errors.New("exec format error"))); got != exitCannotExec {
		t.Errorf("an exec failure exits %d, want %d", got, exitCannotExec)
	}
}
