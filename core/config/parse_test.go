package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

const name = "/etc/lockmgr/config.toml"

func TestParseValid(t *testing.T) {
	doc := `backend = "auto"
plugin_dir = "/usr/lib/lockmgr/"
lock_file_mode = "0o640"
plugins.flock.sha256 = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef"

[[rules]]
path = "/mnt/nfs/"
backend = "posix"

[[rules]]
path = "/"
backend = "flock"

[backends.etcd]
endpoints = ["127.0.0.1:2379"]
dial_timeout = 5
`
	f, err := Parse(name, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if f.Backend != "auto" || f.PluginDir != "/usr/lib/lockmgr" || f.LockFileMode != 0o640 {
		t.Errorf("got backend %q, plugin_dir %q, mode %o", f.Backend, f.PluginDir, f.LockFileMode)
	}
	wantLines := map[string]int{KeyBackend: 1, KeyPluginDir: 2, KeyLockFileMode: 3}
	if len(f.Lines) != len(wantLines) {
		t.Errorf("Lines = %v, want %v", f.Lines, wantLines)
	}
	for k, want := range wantLines {
		if f.Lines[k] != want {
			t.Errorf("Lines[%s] = %d, want %d", k, f.Lines[k], want)
		}
	}
	wantPlugin := Plugin{SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Source: Source{File: name, Line: 4}}
	if !reflect.DeepEqual(f.Plugins["flock"], wantPlugin) {
		t.Errorf("Plugins[flock] = %+v, want %+v", f.Plugins["flock"], wantPlugin)
	}
	wantRules := []Rule{
		{Path: "/mnt/nfs", Backend: "posix", Source: Source{File: name, Line: 6}},
		{Path: "/", Backend: "flock", Source: Source{File: name, Line: 10}},
	}
	if len(f.Rules) != 2 || f.Rules[0] != wantRules[0] || f.Rules[1] != wantRules[1] {
		t.Errorf("Rules = %+v, want %+v", f.Rules, wantRules)
	}
	if got := f.Backends["etcd"]["dial_timeout"]; got != int64(5) {
		t.Errorf("Backends[etcd][dial_timeout] = %#v, want int64(5)", got)
	}
}

func TestParseEmpty(t *testing.T) {
	f, err := Parse(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Lines) != 0 || len(f.Rules) != 0 || len(f.Plugins) != 0 || len(f.Backends) != 0 {
		t.Errorf("empty file set something: %+v", f)
	}
}

func TestParseModes(t *testing.T) {
	tests := []struct {
		value string
		want  os.FileMode
	}{
		{`"0644"`, 0o644},
		{`"644"`, 0o644},
		{`"0o600"`, 0o600},
		{`"0777"`, 0o777},
		{`"0"`, 0},
		{`0o644`, 0o644},
		{`0o0`, 0},
		{`0o7_77`, 0o777},
	}
	for _, tt := range tests {
		f, err := Parse(name, []byte("lock_file_mode = "+tt.value+"\n"))
		if err != nil {
			t.Errorf("lock_file_mode = %s: %v", tt.value, err)
			continue
		}
		if f.LockFileMode != tt.want {
			t.Errorf("lock_file_mode = %s: got %o, want %o", tt.value, f.LockFileMode, tt.want)
		}
	}
}

func TestParseInlineForms(t *testing.T) {
	// The same settings written with inline tables and arrays: lines still
	// point at the element that is wrong.
	doc := `rules = [
  { path = "/a", backend = "posix" },
  { path = "b", backend = "posix" },
]
`
	_, err := Parse(name, []byte(doc))
	wantErr(t, err, 3, `rules[1].path "b" is not an absolute path`)

	f, err := Parse(name, []byte(`rules = [{ path = "/a", backend = "ofd" }]`+"\n"+`backends = { etcd = { x = 1 } }`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rules) != 1 || f.Rules[0].Path != "/a" || f.Rules[0].Source.Line != 1 || f.Backends["etcd"]["x"] != int64(1) {
		t.Errorf("got rules %+v, backends %v", f.Rules, f.Backends)
	}
}

// wantErr checks that err is an *Error for name at line whose message
// contains msg.
func wantErr(t *testing.T, err error, line int, msg string) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Errorf("err = %v, want *Error at line %d containing %q", err, line, msg)
		return
	}
	if ce.File != name || ce.Line != line || !strings.Contains(ce.Msg, msg) {
		t.Errorf("err = %q (file %q line %d), want %s:%d: ...%s...", err, ce.File, ce.Line, name, line, msg)
	}
	if !strings.HasPrefix(err.Error(), name+":") {
		t.Errorf("err = %q, want it to start with the file name", err)
	}
}

func TestParseErrors(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		doc  string
		line int
		msg  string
	}{
		// Unknown keys, at every level.
		{"unknown top-level key", "backend = \"flock\"\n\nbakend = \"posix\"\n", 3, `unknown key "bakend" (did you mean "backend"?)`},
		{"unknown key far from any", "# x\nfrobnicate = 1\n", 2, `unknown key "frobnicate"`},
		{"unknown table", "[plugin.flock]\nsha256 = \"" + hex + "\"\n", 1, `unknown key "plugin" (did you mean "plugins"?)`},
		{"unknown plugin key", "[plugins.flock]\nsha256 = \"" + hex + "\"\nsha512 = \"x\"\n", 3, `unknown key "plugins.flock.sha512"`},
		{"unknown rule key", "[[rules]]\npath = \"/a\"\nbackend = \"posix\"\n\n[[rules]]\npaht = \"/b\"\n", 6, `unknown key "rules[1].paht" (did you mean "path"?)`},
		{"unknown key in rule subtable", "[[rules]]\npath = \"/a\"\nbackend = \"posix\"\n[rules.extra]\nx = 1\n", 4, `unknown key "rules[0].extra"`},

		// Bad values.
		{"mode not octal", "backend = \"flock\"\nlock_file_mode = \"0999\"\n", 2, `lock_file_mode "0999" is not an octal mode`},
		{"mode empty", "lock_file_mode = \"\"\n", 1, `lock_file_mode "" is not an octal mode`},
		{"mode signed", "lock_file_mode = \"-644\"\n", 1, `is not an octal mode`},
		{"mode with setuid", "lock_file_mode = \"4755\"\n", 1, `lock_file_mode "4755" is more than 0777`},
		{"mode huge", "lock_file_mode = \"77777777777777777777\"\n", 1, `is more than 0777`},
		{"mode decimal integer", "lock_file_mode = 644\n", 1, `lock_file_mode 644 is not written in octal`},
		{"mode decimal in range", "lock_file_mode = 400\n", 1, `lock_file_mode 400 is not written in octal`},
		{"mode hex integer", "lock_file_mode = 0x1a4\n", 1, `not written in octal`},
		{"mode octal too big", "lock_file_mode = 0o1777\n", 1, `lock_file_mode 0o1777 is more than 0o777`},
		{"mode wrong type", "\nlock_file_mode = true\n", 2, `lock_file_mode must be an octal string such as "0644" or an octal integer such as 0o644, not a boolean`},
		{"backend uppercase", "backend = \"Flock\"\n", 1, `backend "Flock" is not a valid backend name`},
		{"backend with slash", "backend = \"../x\"\n", 1, `backend "../x" is not a valid backend name`},
		{"backend too long", "backend = \"" + strings.Repeat("a", 65) + "\"\n", 1, `is not a valid backend name`},
		{"backend wrong type", "backend = 1\n", 1, `backend must be a string, not an integer`},
		{"backend array", "backend = [\"flock\"]\n", 1, `backend must be a string, not an array`},
		{"plugin_dir relative", "plugin_dir = \"usr/lib\"\n", 1, `plugin_dir "usr/lib" is not an absolute path`},
		{"plugin_dir empty", "plugin_dir = \"\"\n", 1, `plugin_dir "" is not an absolute path`},
		{"plugin_dir wrong type", "plugin_dir = 1979-05-27\n", 1, `plugin_dir must be a string, not a local date or time`},
		{"sha256 short", "[plugins.flock]\nsha256 = \"abc\"\n", 2, `plugins.flock.sha256 "abc" is not a SHA-256 checksum`},
		{"sha256 not hex", "[plugins.flock]\nsha256 = \"" + strings.Repeat("g", 64) + "\"\n", 2, `is not a SHA-256 checksum`},
		{"sha256 wrong type", "[plugins.flock]\nsha256 = 12\n", 2, `plugins.flock.sha256 must be a string, not an integer`},
		{"plugin bad name", "[plugins.Flock]\nsha256 = \"" + hex + "\"\n", 1, `plugins: "Flock" is not a valid backend name`},
		{"shown_settings not an array", "[plugins.vault]\nshown_settings = \"addr\"\n", 2, `plugins.vault.shown_settings must be an array of key names, not a string`},
		{"shown_settings not strings", "[plugins.vault]\nshown_settings = [\"addr\", 3]\n", 2, `plugins.vault.shown_settings[1] must be a string, not an integer`},
		{"shown_settings empty name", "[plugins.vault]\nshown_settings = [\"\"]\n", 2, `plugins.vault.shown_settings[0] "" is not a key name`},
		{"shown_settings misspelt", "[plugins.vault]\nshow_settings = [\"addr\"]\n", 2, `unknown key "plugins.vault.show_settings" (did you mean "shown_settings"?)`},
		{"plugin not a table", "plugins.flock = \"x\"\n", 1, `plugins.flock must be a table, not a string`},
		{"plugins not a table", "plugins = 3\n", 1, `plugins must be a table of [plugins.NAME] tables, not an integer`},
		{"rule relative path", "[[rules]]\nbackend = \"posix\"\npath = \"mnt/nfs\"\n", 3, `rules[0].path "mnt/nfs" is not an absolute path`},
		{"rule bad backend", "[[rules]]\npath = \"/mnt/nfs\"\nbackend = \"NFS\"\n", 3, `rules[0].backend "NFS" is not a valid backend name`},
		{"rule path wrong type", "[[rules]]\npath = 3\nbackend = \"posix\"\n", 2, `rules[0].path must be a string, not an integer`},
		{"rule without path", "backend = \"flock\"\n[[rules]]\nbackend = \"posix\"\n", 2, `rules[0] has no path`},
		{"rule without backend", "[[rules]]\npath = \"/a\"\nbackend = \"ofd\"\n[[rules]]\npath = \"/b\"\n", 4, `rules[1] has no backend`},
		{"duplicate rule path", "[[rules]]\npath = \"/a\"\nbackend = \"posix\"\n[[rules]]\npath = \"/a/\"\nbackend = \"ofd\"\n", 4, `rules[1]: another rule for /a is at line 1`},
		{"rules not an array", "rules = \"/a\"\n", 1, `rules must be an array of tables ([[rules]]), not a string`},
		{"rule not a table", "rules = [\"/a\"]\n", 1, `rules[0] must be a table with path and backend, not a string`},
		{"backends bad name", "[backends.\"a b\"]\nx = 1\n", 1, `backends: "a b" is not a valid backend name`},
		{"backends entry not a table", "[backends]\netcd = 1\n", 2, `backends.etcd must be a table, not an integer`},

		// TOML errors, reported with go-toml's position.
		{"syntax error", "backend = \"flock\"\nplugin_dir = \n", 2, `invalid TOML`},
		{"duplicate key", "backend = \"flock\"\nbackend = \"posix\"\n", 2, `invalid TOML: key backend is already defined`},
		{"unterminated string", "\n\nbackend = \"flock\n", 3, `invalid TOML`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(name, []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want an error", f)
			}
			wantErr(t, err, tt.line, tt.msg)
		})
	}
}

func TestParseReportsFirstErrorInFile(t *testing.T) {
	// Go maps have no order; the error reported must still be the first
	// one in the file, every time.
	doc := "zeta = 1\nalpha = 2\nbackend = \"X\"\n"
	for i := 0; i < 20; i++ {
		_, err := Parse(name, []byte(doc))
		wantErr(t, err, 1, `unknown key "zeta"`)
	}
}

func TestParseDecodeErrorKeepsCause(t *testing.T) {
	_, err := Parse(name, []byte("backend = \n"))
	var ce *Error
	if !errors.As(err, &ce) || ce.Err == nil {
		t.Fatalf("err = %#v, want an *Error wrapping go-toml's error", err)
	}
	// go-toml's own error shows the line in context.
	type stringer interface{ String() string }
	if s, ok := ce.Err.(stringer); !ok || !strings.Contains(s.String(), "backend =") {
		t.Errorf("cause %T does not show the offending line", ce.Err)
	}
}

func TestParseShownSettings(t *testing.T) {
	f, err := Parse(name, []byte("[plugins.vault]\nshown_settings = [\"addr\", \"namespace\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Plugin{ShownSettings: []string{"addr", "namespace"}, Source: Source{File: name, Line: 1}}
	if got := f.Plugins["vault"]; !reflect.DeepEqual(got, want) {
		t.Errorf("Plugins[vault] = %+v, want %+v", got, want)
	}
}
