package prestart

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lockmgr/lockmgr/core/pluginproc"
)

// pluginDir makes a private directory holding an executable for each
// backend name, which is all Find and Verify look at.
func pluginDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, pluginproc.BinaryPrefix+name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPredict(t *testing.T) {
	plugins := pluginDir(t, "flock", "ofd", "posix")
	work := t.TempDir()
	cfg := filepath.Join(work, "config.toml")
	rules := "backend = \"ofd\"\n[[rules]]\npath = \"" + work + "/nfs\"\nbackend = \"posix\"\n"
	if err := os.WriteFile(cfg, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOCKMGR_PLUGIN_DIR", plugins)
	t.Setenv("LOCKMGR_CONFIG", cfg)
	t.Setenv("LOCKMGR_BACKEND", "")
	lock := filepath.Join(work, "lock")

	for _, tt := range []struct {
		name    string
		args    []string
		backend string // "" means no prediction
		share   bool
	}{
		{"config's backend", []string{"run", lock, "true"}, "ofd", true},
		{"a rule's backend", []string{"run", work + "/nfs/lock", "true"}, "posix", true},
		{"flag over rule", []string{"run", "-b", "flock", work + "/nfs/lock", "true"}, "flock", true},
		{"clustered shorts", []string{"run", "-snE", "3", "-bflock", lock, "--", "true"}, "flock", true},
		{"long flags", []string{"run", "--timeout=2.5", "--backend", "posix", "--on-lost", "kill", lock, "-c", "true"}, "posix", true},
		{"close", []string{"run", "-o", lock, "true"}, "ofd", false},
		{"close=false", []string{"run", "--close=false", lock, "true"}, "ofd", true},
		{"-- before FILE", []string{"run", "-x", "--", lock, "true"}, "ofd", true},
		{"--config first", []string{"--config", cfg, "run", lock, "true"}, "ofd", true},
		{"not run", []string{"status", lock}, "", false},
		{"help", []string{"run", "--help"}, "", false},
		{"unknown flag", []string{"run", "--bogus", lock, "true"}, "", false},
		{"unknown short", []string{"run", "-z", lock, "true"}, "", false},
		{"value missing", []string{"run", "-w"}, "", false},
		{"no FILE", []string{"run", "-x"}, "", false},
		{"no such backend", []string{"run", "-b", "nope", lock, "true"}, "", false},
		{"bad config", []string{"run", "--config", filepath.Join(work, "missing.toml"), lock, "true"}, "", false},
		{"nothing", nil, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, ok := Predict(tt.args)
			if tt.backend == "" {
				if ok {
					t.Fatalf("Predict(%q) = %+v, want no prediction", tt.args, spec)
				}
				return
			}
			if !ok {
				t.Fatalf("Predict(%q): no prediction, want backend %s", tt.args, tt.backend)
			}
			want := pluginproc.PrestartSpec(filepath.Join(plugins, pluginproc.BinaryPrefix+tt.backend), "", tt.share)
			if spec.Path != want.Path || spec.ShareLifeline != want.ShareLifeline {
				t.Errorf("Predict(%q) = %s share=%v, want %s share=%v", tt.args, spec.Path, spec.ShareLifeline, want.Path, want.ShareLifeline)
			}
		})
	}
}

func TestPredictFlock(t *testing.T) {
	plugins := pluginDir(t, "flock", "ofd", "posix")
	work := t.TempDir()
	cfg := filepath.Join(work, "config.toml")
	rules := "[[rules]]\npath = \"" + work + "/nfs\"\nbackend = \"posix\"\n"
	if err := os.WriteFile(cfg, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOCKMGR_PLUGIN_DIR", plugins)
	t.Setenv("LOCKMGR_CONFIG", cfg)
	t.Setenv("LOCKMGR_BACKEND", "")
	lock := filepath.Join(work, "lock")

	for _, tt := range []struct {
		name    string
		args    []string
		backend string // "" means no prediction
		share   bool
	}{
		{"default", []string{lock, "true"}, "flock", true},
		{"a rule's backend", []string{"-n", work + "/nfs/lock", "true"}, "posix", true},
		{"fcntl", []string{"--fcntl", lock, "true"}, "ofd", true},
		{"start implies fcntl", []string{"--start", "4", lock, "true"}, "ofd", true},
		{"values", []string{"-w", "3", "-E5", "--timeout=1", "-sn", lock, "-c", "true"}, "flock", true},
		{"close", []string{"-xo", lock, "true"}, "flock", false},
		{"-- before FILE", []string{"--", lock, "true"}, "flock", true},
		{"fd form", []string{"-n", "9"}, "", false},
		{"--fd", []string{"--fd", "9", "true"}, "", false},
		{"unlock", []string{"-u", lock, "true"}, "", false},
		{"abbreviation", []string{"--nonb", lock, "true"}, "", false},
		{"help", []string{"-h"}, "", false},
		{"value missing", []string{"-w"}, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, ok := PredictFlock(tt.args)
			if tt.backend == "" {
				if ok {
					t.Fatalf("PredictFlock(%q) predicted %+v; want no prediction", tt.args, spec)
				}
				return
			}
			if !ok {
				t.Fatalf("PredictFlock(%q): no prediction; want %s", tt.args, tt.backend)
			}
			if want := filepath.Join(plugins, pluginproc.BinaryPrefix+tt.backend); spec.Path != want || spec.ShareLifeline != tt.share {
				t.Fatalf("PredictFlock(%q) = %s (share %v); want %s (share %v)", tt.args, spec.Path, spec.ShareLifeline, want, tt.share)
			}
		})
	}
}
