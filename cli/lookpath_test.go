package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestLookPath holds lookPath to execvp's rules, where exec.LookPath
// differs: the current directory through an empty $PATH entry, glibc's
// default path when $PATH is unset, and EACCES only when nothing
// executable was found.
func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("here", 0o755)
	write("noexec", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "noexec"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)

	for _, tc := range []struct {
		name, path string
		unset      bool
		want       string
		wantErr    error
	}{
		{"here", "/nonexistent:", false, "./here", nil},
		{"here", ":/nonexistent", false, "./here", nil},
		{"here", "/nonexistent::/x", false, "./here", nil},
		{"here", ".", false, "./here", nil},
		{"here", "/nonexistent", false, "", exec.ErrNotFound},
		{"sh", "", true, "/bin/sh", nil},
		{"noexec", ":" + other, false, other + "/noexec", nil},
		{"noexec", ":", false, "", fs.ErrPermission},
		{"adir", ":", false, "", fs.ErrPermission},
		{"./here", "/nonexistent", false, "./here", nil},
		{"./noexec", "", false, "", fs.ErrPermission},
		{"./missing", "", false, "", fs.ErrNotExist},
		{"", "/bin", false, "", exec.ErrNotFound},
	} {
		if tc.unset {
			t.Setenv("PATH", "")
			os.Unsetenv("PATH")
		} else {
			t.Setenv("PATH", tc.path)
		}
		got, err := lookPath(tc.name)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("lookPath(%q) with PATH=%q = %q, %v; want %v", tc.name, tc.path, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("lookPath(%q) with PATH=%q (unset %v) = %q, %v; want %q", tc.name, tc.path, tc.unset, got, err, tc.want)
		}
	}
}
