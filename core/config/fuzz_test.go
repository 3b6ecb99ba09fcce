package config

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, that it fails only with an
// *Error naming the file, and that whatever it accepts obeys the rules
// Load and the backends rely on.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		systemTOML,
		userTOML,
		"backend = \"auto\"\nlock_file_mode = 0o600\n",
		"lock_file_mode = \"0644\"\nplugin_dir = \"/a/../b/\"\n",
		"rules = [{ path = \"/x\", backend = \"ofd\" }, { path = \"/x/y\", backend = \"auto\" }]\n",
		"[[rules]]\npath = \"/a\"\nbackend = \"posix\"\n[rules.sub]\nx = 1\n",
		"plugins.flock.sha256 = \"" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + "\"\n",
		"[backends.etcd]\nendpoints = [\"127.0.0.1:2379\"]\n[backends.etcd.tls]\nca = \"/x\"\n",
		"lock_file_mode = 644\n",
		"[a]\n[a.b]\n[[a.c]]\n[[a.c]]\n\"0\" = 1\n",
		"x = [[1], [2, [3]], {a = 1}]\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	const file = "/fuzz/config.toml"
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := Parse(file, data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.File != file {
				t.Fatalf("Parse error %#v is not an *Error for %s", err, file)
			}
			if lines := bytes.Count(data, []byte("\n")) + 1; ce.Line < 0 || ce.Line > lines {
				t.Fatalf("error %q points at line %d of a %d-line file", err, ce.Line, lines)
			}
			return
		}
		if _, ok := cf.Lines[KeyBackend]; ok && !ValidBackendName(cf.Backend) {
			t.Errorf("accepted backend %q", cf.Backend)
		}
		if _, ok := cf.Lines[KeyPluginDir]; ok && !cleanAbs(cf.PluginDir) {
			t.Errorf("accepted plugin_dir %q", cf.PluginDir)
		}
		if cf.LockFileMode > 0o777 {
			t.Errorf("accepted lock_file_mode %o", cf.LockFileMode)
		}
		for k, line := range cf.Lines {
			if k != KeyBackend && k != KeyPluginDir && k != KeyLockFileMode || line < 1 {
				t.Errorf("Lines has %q at line %d", k, line)
			}
		}
		for name, p := range cf.Plugins {
			if !ValidBackendName(name) {
				t.Errorf("accepted plugin name %q", name)
			}
			if p.SHA256 != "" && (len(p.SHA256) != 64 || !isLowerHex(p.SHA256)) {
				t.Errorf("accepted sha256 %q", p.SHA256)
			}
		}
		for _, r := range cf.Rules {
			if !cleanAbs(r.Path) || !ValidBackendName(r.Backend) || r.Source.File != file || r.Source.Line < 1 {
				t.Errorf("accepted rule %+v", r)
			}
		}
		for name, settings := range cf.Backends {
			if !ValidBackendName(name) || settings == nil {
				t.Errorf("accepted backends.%s = %v", name, settings)
			}
		}
	})
}

// cleanAbs reports whether p is absolute and clean, as rule matching needs.
func cleanAbs(p string) bool {
	return filepath.IsAbs(p) && filepath.Clean(p) == p
}

// isLowerHex reports whether s holds lower-case hex digits only.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
