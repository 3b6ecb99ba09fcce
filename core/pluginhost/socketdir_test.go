package pluginhost

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nobody is a uid that is neither root nor the one the tests run as.
const nobody = 65534

// TestSocketDirNotInAnotherUsersDirectory: root whose environment names a
// directory that another user owns (plain su keeps XDG_RUNTIME_DIR,
// pam_tmpdir sets TMPDIR) must not put its plugin's socket there, where
// that user could rename the directory and answer for the plugin.
func TestSocketDirNotInAnotherUsersDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a directory to another user takes root")
	}
	theirs := filepath.Join(t.TempDir(), "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	ours := t.TempDir()
	for _, env := range []string{"XDG_RUNTIME_DIR", "TMPDIR"} {
		t.Run(env, func(t *testing.T) {
			bin := sleeper(t) // before t.TempDir follows $TMPDIR there
			t.Setenv("XDG_RUNTIME_DIR", "")
			t.Setenv("TMPDIR", ours)
			t.Setenv(env, theirs)
			p, err := startProcess(procSpec{Path: bin})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Discard()
			if strings.HasPrefix(p.SocketDir, theirs+"/") {
				t.Fatalf("socket directory %s is in %s, which uid %d owns", p.SocketDir, theirs, nobody)
			}
			parent, err := socketParentDir()
			if err != nil {
				t.Fatal(err)
			}
			if parent == theirs {
				t.Errorf("socketParentDir() = %s, which uid %d owns", parent, nobody)
			}
		})
	}
}

// TestSocketDirSkipsWhatCannotHoldIt: a candidate that is not a directory,
// or does not exist, is passed over for the next.
func TestSocketDirSkipsWhatCannotHoldIt(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ours := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", file)
	t.Setenv("TMPDIR", ours)
	dir, err := makeSocketDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	if filepath.Dir(dir) != ours {
		t.Errorf("socket directory %s, want one in %s", dir, ours)
	}
}

// TestDialRefusesAnotherProcess: a connection to the plugin's address is
// used only if the plugin itself answers it.
func TestDialRefusesAnotherProcess(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	p, err := startProcess(procSpec{Path: sleeper(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Discard()
	// This test process, not the plugin, listens at the address.
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "impostor"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	conn, err := p.Dial(context.Background(), ln.Addr())
	if err == nil {
		conn.Close()
		t.Fatal("Dial accepted a socket served by another process")
	}
	if !errors.Is(err, errNotThePlugin) {
		t.Fatalf("Dial: %v, want errNotThePlugin", err)
	}
}
