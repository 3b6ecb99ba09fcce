package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// env returns a Getenv that sees only vars, so that the environment of
// the machine running the tests cannot change their outcome.
func env(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

const systemTOML = `# system file
backend = "ofd"
plugin_dir = "/opt/lockmgr/plugins/"
lock_file_mode = "0600"

[plugins.flock]
sha256 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

[plugins.etcd]
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"

[[rules]]
path = "/mnt/nfs"
backend = "posix"

[[rules]]
path = "/srv"
backend = "ofd"

[backends.etcd]
endpoints = ["127.0.0.1:2379"]

[backends.redis]
addr = "localhost:6379"
`

const userTOML = `backend = "posix"
lock_file_mode = 0o640

[plugins.etcd]
sha256 = "2222222222222222222222222222222222222222222222222222222222222222"

[[rules]]
path = "/srv"
backend = "flock"

[backends.etcd]
endpoints = ["10.0.0.1:2379", "10.0.0.2:2379"]
`

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	system := writeFile(t, dir, "etc/config.toml", systemTOML)
	user := writeFile(t, dir, "home/.config/lockmgr/config.toml", userTOML)
	missing := filepath.Join(dir, "missing.toml")

	def := Source{Kind: KindDefault}
	tests := []struct {
		name      string
		opts      LoadOptions
		vars      map[string]string
		backend   string
		backendSr Source
		pluginDir string
		pluginSr  Source
		mode      os.FileMode
		modeSr    Source
		files     []string
	}{
		{
			name:    "defaults with no files",
			opts:    LoadOptions{SystemFile: missing, UserFile: missing},
			backend: DefaultBackend, backendSr: def,
			pluginDir: "", pluginSr: def,
			mode: DefaultLockFileMode, modeSr: def,
		},
		{
			name:    "system file over defaults",
			opts:    LoadOptions{SystemFile: system, UserFile: missing},
			backend: "ofd", backendSr: Source{Kind: KindSystemFile, File: system, Line: 2},
			pluginDir: "/opt/lockmgr/plugins", pluginSr: Source{Kind: KindSystemFile, File: system, Line: 3},
			mode: 0o600, modeSr: Source{Kind: KindSystemFile, File: system, Line: 4},
			files: []string{system},
		},
		{
			name:    "user file over system file",
			opts:    LoadOptions{SystemFile: system, UserFile: user},
			backend: "posix", backendSr: Source{Kind: KindUserFile, File: user, Line: 1},
			pluginDir: "/opt/lockmgr/plugins", pluginSr: Source{Kind: KindSystemFile, File: system, Line: 3},
			mode: 0o640, modeSr: Source{Kind: KindUserFile, File: user, Line: 2},
			files: []string{system, user},
		},
		{
			name:    "user file found through XDG_CONFIG_HOME",
			opts:    LoadOptions{SystemFile: system},
			vars:    map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "home/.config")},
			backend: "posix", backendSr: Source{Kind: KindUserFile, File: user, Line: 1},
			pluginDir: "/opt/lockmgr/plugins", pluginSr: Source{Kind: KindSystemFile, File: system, Line: 3},
			mode: 0o640, modeSr: Source{Kind: KindUserFile, File: user, Line: 2},
			files: []string{system, user},
		},
		{
			name:    "user file found through HOME",
			opts:    LoadOptions{SystemFile: system},
			vars:    map[string]string{"HOME": filepath.Join(dir, "home")},
			backend: "posix", backendSr: Source{Kind: KindUserFile, File: user, Line: 1},
			pluginDir: "/opt/lockmgr/plugins", pluginSr: Source{Kind: KindSystemFile, File: system, Line: 3},
			mode: 0o640, modeSr: Source{Kind: KindUserFile, File: user, Line: 2},
			files: []string{system, user},
		},
		{
			name:    "env over user file",
			opts:    LoadOptions{SystemFile: system, UserFile: user},
			vars:    map[string]string{EnvBackend: "auto"},
			backend: "auto", backendSr: Source{Kind: KindEnv, Var: EnvBackend},
			pluginDir: "/opt/lockmgr/plugins", pluginSr: Source{Kind: KindSystemFile, File: system, Line: 3},
			mode: 0o640, modeSr: Source{Kind: KindUserFile, File: user, Line: 2},
			files: []string{system, user},
		},
		{
			name:    "flag over env",
			opts:    LoadOptions{SystemFile: system, UserFile: user, Backend: "my-plugin"},
			vars:    map[string]string{EnvBackend: "auto"},
			backend: "my-plugin", backendSr: Source{Kind: KindFlag},
			pluginDir: "/opt/lockmgr/plugins", pluginSr: Source{Kind: KindSystemFile, File: system, Line: 3},
			mode: 0o640, modeSr: Source{Kind: KindUserFile, File: user, Line: 2},
			files: []string{system, user},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Getenv = env(tt.vars)
			cfg, err := Load(tt.opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			check := func(key string, got, want any, gotSrc, wantSrc Source) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %v, want %v", key, got, want)
				}
				if gotSrc != wantSrc {
					t.Errorf("Sources[%s] = %q, want %q", key, gotSrc, wantSrc)
				}
			}
			check(KeyBackend, cfg.Backend, tt.backend, cfg.Sources[KeyBackend], tt.backendSr)
			check(KeyPluginDir, cfg.PluginDir, tt.pluginDir, cfg.Sources[KeyPluginDir], tt.pluginSr)
			check(KeyLockFileMode, cfg.LockFileMode, tt.mode, cfg.Sources[KeyLockFileMode], tt.modeSr)
			if strings.Join(cfg.Files, "\n") != strings.Join(tt.files, "\n") {
				t.Errorf("Files = %q, want %q", cfg.Files, tt.files)
			}
		})
	}
}

func TestLoadMergesTablesAndRules(t *testing.T) {
	dir := t.TempDir()
	system := writeFile(t, dir, "system.toml", systemTOML)
	user := writeFile(t, dir, "user.toml", userTOML)
	cfg, err := Load(LoadOptions{SystemFile: system, UserFile: user, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}

	// Plugins merge per name: etcd from the user file, flock (lower-cased)
	// from the system file.
	wantPlugins := map[string]Plugin{
		"flock": {SHA256: strings.Repeat("a", 64), Source: Source{Kind: KindSystemFile, File: system, Line: 7}},
		"etcd":  {SHA256: strings.Repeat("2", 64), Source: Source{Kind: KindUserFile, File: user, Line: 5}},
	}
	if len(cfg.Plugins) != len(wantPlugins) {
		t.Errorf("Plugins = %v, want %v", cfg.Plugins, wantPlugins)
	}
	for name, want := range wantPlugins {
		if got := cfg.Plugins[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("Plugins[%s] = %+v, want %+v", name, got, want)
		}
	}

	// Backends merge per name, the higher layer's table replacing the
	// lower's whole.
	etcd := cfg.Backends["etcd"]["endpoints"].([]any)
	if len(etcd) != 2 || etcd[0] != "10.0.0.1:2379" {
		t.Errorf("Backends[etcd][endpoints] = %v, want the user file's two endpoints", etcd)
	}
	if cfg.Backends["redis"]["addr"] != "localhost:6379" {
		t.Errorf("Backends[redis] = %v, want the system file's table", cfg.Backends["redis"])
	}

	// All rules are kept, the user file's first.
	want := []Rule{
		{Path: "/srv", Backend: "flock", Source: Source{Kind: KindUserFile, File: user, Line: 7}},
		{Path: "/mnt/nfs", Backend: "posix", Source: Source{Kind: KindSystemFile, File: system, Line: 12}},
		{Path: "/srv", Backend: "ofd", Source: Source{Kind: KindSystemFile, File: system, Line: 16}},
	}
	if len(cfg.Rules) != len(want) {
		t.Fatalf("Rules = %+v, want %+v", cfg.Rules, want)
	}
	for i := range want {
		if cfg.Rules[i] != want[i] {
			t.Errorf("Rules[%d] = %+v, want %+v", i, cfg.Rules[i], want[i])
		}
	}

	// An equally long rule from the user file beats the system file's.
	if name, src := cfg.BackendFor("/srv/job.lock", nil); name != "flock" || src != want[0].Source {
		t.Errorf("BackendFor(/srv/job.lock) = %s from %s, want flock from %s", name, src, want[0].Source)
	}
}

func TestLoadExplicitFileReplacesBoth(t *testing.T) {
	dir := t.TempDir()
	system := writeFile(t, dir, "system.toml", systemTOML)
	user := writeFile(t, dir, "user.toml", userTOML)
	explicit := writeFile(t, dir, "explicit.toml", "lock_file_mode = \"0664\"\n")
	fromEnv := writeFile(t, dir, "env.toml", "plugin_dir = \"/env\"\n")

	tests := []struct {
		name string
		opts LoadOptions
		vars map[string]string
		file string
	}{
		{"option", LoadOptions{ExplicitFile: explicit}, nil, explicit},
		{"LOCKMGR_CONFIG", LoadOptions{}, map[string]string{EnvConfig: fromEnv}, fromEnv},
		{"option beats LOCKMGR_CONFIG", LoadOptions{ExplicitFile: explicit}, map[string]string{EnvConfig: fromEnv}, explicit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.SystemFile, tt.opts.UserFile, tt.opts.Getenv = system, user, env(tt.vars)
			cfg, err := Load(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Files) != 1 || cfg.Files[0] != tt.file {
				t.Errorf("Files = %q, want only %q", cfg.Files, tt.file)
			}
			// Neither the system nor the user file applied.
			if cfg.Backend != DefaultBackend || cfg.Sources[KeyBackend].Kind != KindDefault {
				t.Errorf("backend = %s from %s, want the default", cfg.Backend, cfg.Sources[KeyBackend])
			}
			if len(cfg.Rules) != 0 || len(cfg.Plugins) != 0 || len(cfg.Backends) != 0 {
				t.Errorf("rules %v, plugins %v, backends %v leaked in from other files", cfg.Rules, cfg.Plugins, cfg.Backends)
			}
			var src Source
			if tt.file == explicit {
				src = cfg.Sources[KeyLockFileMode]
			} else {
				src = cfg.Sources[KeyPluginDir]
			}
			if want := (Source{Kind: KindConfigFile, File: tt.file, Line: 1}); src != want {
				t.Errorf("source = %s, want %s", src, want)
			}
		})
	}
}

func TestLoadMissingFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope", "config.toml")

	// Missing system and user files are normal.
	cfg, err := Load(LoadOptions{SystemFile: missing, UserFile: missing, Getenv: env(nil)})
	if err != nil {
		t.Fatalf("missing system and user files: %v", err)
	}
	if len(cfg.Files) != 0 || cfg.Backend != DefaultBackend {
		t.Errorf("got Files %q, backend %q; want none and the default", cfg.Files, cfg.Backend)
	}

	// No HOME and no XDG_CONFIG_HOME: there is no user file, which is fine.
	if _, err := Load(LoadOptions{SystemFile: missing, Getenv: env(nil)}); err != nil {
		t.Errorf("no user file location: %v", err)
	}

	// A missing explicit file is an error, from the option or from the
	// environment, and it says which one named the file.
	for _, tt := range []struct {
		opts   LoadOptions
		vars   map[string]string
		naming string
	}{
		{LoadOptions{ExplicitFile: missing}, nil, "--config"},
		{LoadOptions{}, map[string]string{EnvConfig: missing}, EnvConfig},
	} {
		tt.opts.SystemFile, tt.opts.Getenv = filepath.Join(dir, "unused"), env(tt.vars)
		_, err := Load(tt.opts)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("missing explicit file named by %s: err = %v, want *Error", tt.naming, err)
		}
		if ce.File != missing || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v (File %q), want one for %s wrapping fs.ErrNotExist", err, ce.File, missing)
		}
		if !strings.Contains(err.Error(), tt.naming) {
			t.Errorf("err = %q, want it to mention %s", err, tt.naming)
		}
	}
}

func TestLoadUnreadableFileIsAnError(t *testing.T) {
	// A directory where the user file should be cannot be read; that is
	// reported rather than skipped like a missing file.
	dir := t.TempDir()
	user := filepath.Join(dir, "config.toml")
	if err := os.Mkdir(user, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Load(LoadOptions{SystemFile: filepath.Join(dir, "none"), UserFile: user, Getenv: env(nil)})
	var ce *Error
	if !errors.As(err, &ce) || ce.File != user || !strings.Contains(ce.Msg, "user file") {
		t.Errorf("err = %v, want an *Error about user file %s", err, user)
	}
}

func TestLoadParseErrorNamesFile(t *testing.T) {
	dir := t.TempDir()
	user := writeFile(t, dir, "user.toml", "# comment\n\nbakend = \"flock\"\n")
	_, err := Load(LoadOptions{SystemFile: filepath.Join(dir, "none"), UserFile: user, Getenv: env(nil)})
	want := user + `:3: unknown key "bakend" (did you mean "backend"?)`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestLoadBadBackendNames(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none")
	_, err := Load(LoadOptions{SystemFile: none, UserFile: none, Getenv: env(map[string]string{EnvBackend: "Flock"})})
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), EnvBackend) || !strings.Contains(err.Error(), `"Flock"`) {
		t.Errorf("bad %s: err = %v, want an *Error naming the variable and value", EnvBackend, err)
	}

	_, err = Load(LoadOptions{SystemFile: none, UserFile: none, Backend: "../evil", Getenv: env(nil)})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `"../evil"`) {
		t.Errorf("bad backend option: err = %v, want an *Error naming the value", err)
	}
}

func TestUserFile(t *testing.T) {
	tests := []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/lockmgr/config.toml"},
		{map[string]string{"HOME": "/h"}, "/h/.config/lockmgr/config.toml"},
		// A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
		{map[string]string{"XDG_CONFIG_HOME": "rel", "HOME": "/h"}, "/h/.config/lockmgr/config.toml"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := UserFile(env(tt.vars)); got != tt.want {
			t.Errorf("UserFile(%v) = %q, want %q", tt.vars, got, tt.want)
		}
	}
}

func TestBackendForRules(t *testing.T) {
	def := Source{Kind: KindDefault}
	nfs := Source{Kind: KindSystemFile, File: "/etc/lockmgr/config.toml", Line: 3}
	deep := Source{Kind: KindSystemFile, File: "/etc/lockmgr/config.toml", Line: 6}
	root := Source{Kind: KindUserFile, File: "/u.toml", Line: 1}
	cfg := &Config{
		Backend: "ofd",
		Sources: map[string]Source{KeyBackend: def},
		Rules: []Rule{
			{Path: "/mnt/nfs", Backend: "posix", Source: nfs},
			{Path: "/mnt/nfs/deep", Backend: "my-plugin", Source: deep},
		},
	}
	tests := []struct {
		path string
		want string
		src  Source
	}{
		{"/mnt/nfs", "posix", nfs},
		{"/mnt/nfs/", "posix", nfs},
		{"/mnt/nfs/a.lock", "posix", nfs},
		{"/mnt/nfsx", "ofd", def},        // not on a component boundary
		{"/mnt/nfsx/a.lock", "ofd", def}, // likewise
		{"/mnt", "ofd", def},
		{"/mnt/nfs/deep/a.lock", "my-plugin", deep}, // longest wins
		{"/mnt/nfs/deeper", "posix", nfs},
		{"/mnt/nfs/deep/../x", "posix", nfs}, // cleaned first
		{"/tmp/a.lock", "ofd", def},
	}
	for _, tt := range tests {
		if got, src := cfg.BackendFor(tt.path, nil); got != tt.want || src != tt.src {
			t.Errorf("BackendFor(%q) = %s from %s, want %s from %s", tt.path, got, src, tt.want, tt.src)
		}
	}

	// A rule for / covers every path but loses to any longer rule.
	cfg.Rules = append(cfg.Rules, Rule{Path: "/", Backend: "flock", Source: root})
	if got, src := cfg.BackendFor("/tmp/a.lock", nil); got != "flock" || src != root {
		t.Errorf("with a / rule: BackendFor(/tmp/a.lock) = %s from %s, want flock from %s", got, src, root)
	}
	if got, _ := cfg.BackendFor("/mnt/nfs/a", nil); got != "posix" {
		t.Errorf("with a / rule: BackendFor(/mnt/nfs/a) = %s, want posix", got)
	}
}

func TestBackendForAuto(t *testing.T) {
	envSrc := Source{Kind: KindEnv, Var: EnvBackend}
	rule := Source{Kind: KindUserFile, File: "/u.toml", Line: 4}
	cfg := &Config{
		Backend: BackendAuto,
		Sources: map[string]Source{KeyBackend: envSrc},
		Rules:   []Rule{{Path: "/scratch", Backend: BackendAuto, Source: rule}},
	}
	var asked []string
	isNetwork := func(path string) bool {
		asked = append(asked, path)
		return strings.HasPrefix(path, "/net/") || strings.HasPrefix(path, "/scratch/remote")
	}
	tests := []struct {
		path string
		want string
		src  Source
	}{
		{"/net/share/a.lock", BackendPOSIX, envSrc},
		{"/var/lock/a.lock", BackendFlock, envSrc},
		{"/scratch/remote/a", BackendPOSIX, rule},
		{"/scratch/local/a", BackendFlock, rule},
	}
	for _, tt := range tests {
		if got, src := cfg.BackendFor(tt.path, isNetwork); got != tt.want || src != tt.src {
			t.Errorf("BackendFor(%q) = %s from %s, want %s from %s", tt.path, got, src, tt.want, tt.src)
		}
	}
	if len(asked) != len(tests) {
		t.Errorf("isNetwork was asked about %q, want once per path", asked)
	}

	// With no isNetwork, auto means flock.
	if got, _ := cfg.BackendFor("/net/share/a.lock", nil); got != BackendFlock {
		t.Errorf("BackendFor with nil isNetwork = %s, want flock", got)
	}

	// auto is only resolved when chosen: a concrete backend is never asked about.
	cfg.Backend = "ofd"
	asked = nil
	if got, _ := cfg.BackendFor("/net/share/a.lock", isNetwork); got != "ofd" || len(asked) != 0 {
		t.Errorf("BackendFor with backend ofd = %s (asked %q), want ofd without asking", got, asked)
	}
}

func TestBackendForZeroConfig(t *testing.T) {
	var cfg Config
	if got, src := cfg.BackendFor("/tmp/x", nil); got != DefaultBackend || src.Kind != KindDefault {
		t.Errorf("zero Config: BackendFor = %s from %s, want %s from default", got, src, DefaultBackend)
	}
}

func TestSourceString(t *testing.T) {
	tests := []struct {
		src  Source
		want string
	}{
		{Source{Kind: KindDefault}, "default"},
		{Source{Kind: KindFlag}, "flag"},
		{Source{Kind: KindEnv, Var: EnvBackend}, "env LOCKMGR_BACKEND"},
		{Source{Kind: KindUserFile, File: "/home/u/.config/lockmgr/config.toml", Line: 3}, "user file /home/u/.config/lockmgr/config.toml:3"},
		{Source{Kind: KindSystemFile, File: "/etc/lockmgr/config.toml"}, "system file /etc/lockmgr/config.toml"},
		{Source{File: "x.toml", Line: 2}, "x.toml:2"},
	}
	for _, tt := range tests {
		if got := tt.src.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "/etc/lockmgr/config.toml", Line: 3, Msg: `unknown key "bakend"`}, `/etc/lockmgr/config.toml:3: unknown key "bakend"`},
		{&Error{File: "/etc/lockmgr/config.toml", Msg: "cannot read"}, "/etc/lockmgr/config.toml: cannot read"},
		{&Error{Msg: "bad env"}, "bad env"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestValidBackendName(t *testing.T) {
	valid := []string{"flock", "posix", "ofd", "auto", "etcd", "my-plugin", "my_plugin", "0", "a" + strings.Repeat("b", 63)}
	invalid := []string{"", "Flock", "-x", "_x", "a/b", "..", ".x", "a.b", "a b", "é", "a" + strings.Repeat("b", 64)}
	for _, name := range valid {
		if !ValidBackendName(name) {
			t.Errorf("ValidBackendName(%q) = false, want true", name)
		}
	}
	for _, name := range invalid {
		if ValidBackendName(name) {
			t.Errorf("ValidBackendName(%q) = true, want false", name)
		}
	}
}

func TestLoadBackendSettingsFromEnv(t *testing.T) {
	dir := t.TempDir()
	system := writeFile(t, dir, "system.toml", systemTOML)
	user := writeFile(t, dir, "user.toml", userTOML)
	environ := []string{
		"LOCKMGR_ETCD_ENDPOINTS=10.9.9.9:2379",
		"LOCKMGR_ETCD_DIAL_TIMEOUT=3s",
		"LOCKMGR_NEWSVC_ADDR=x:1",
		// lockmgr's own variables are not backend settings.
		"LOCKMGR_PLUGIN_DIR=/opt/plugins",
		"LOCKMGR_LOCK_FILE=/run/lock/x",
		"LOCKMGR_FENCING_TOKEN=7",
		"LOCKMGR_LOG=debug",
		// Not upper case: not lockmgr's spelling.
		"LOCKMGR_Etcd_prefix=/x/",
		"OTHER_ETCD_ENDPOINTS=nope",
	}
	cfg, err := Load(LoadOptions{SystemFile: system, UserFile: user, Getenv: env(nil),
		Environ: func() []string { return environ }})
	if err != nil {
		t.Fatal(err)
	}
	etcd := cfg.Backends["etcd"]
	if etcd["endpoints"] != "10.9.9.9:2379" || etcd["dial_timeout"] != "3s" {
		t.Errorf("Backends[etcd] = %v, want endpoints and dial_timeout from the environment", etcd)
	}
	if _, ok := etcd["prefix"]; ok {
		t.Errorf("Backends[etcd][prefix] set from a mixed-case variable: %v", etcd)
	}
	if got, want := cfg.BackendSources["etcd"]["endpoints"], (Source{Kind: KindEnv, Var: "LOCKMGR_ETCD_ENDPOINTS"}); got != want {
		t.Errorf("source of etcd endpoints = %+v, want %+v", got, want)
	}
	if got := cfg.BackendSources["redis"]["addr"]; got.Kind != KindSystemFile || got.File != system {
		t.Errorf("source of redis addr = %+v, want the system file", got)
	}
	if cfg.Backends["newsvc"]["addr"] != "x:1" {
		t.Errorf("Backends[newsvc] = %v, want a table made from the environment alone", cfg.Backends["newsvc"])
	}
	for _, reserved := range []string{"plugin", "lock", "fencing", "log"} {
		if _, ok := cfg.Backends[reserved]; ok {
			t.Errorf("lockmgr's own variable became settings of backend %q: %v", reserved, cfg.Backends[reserved])
		}
	}
	// Without Environ, a test's Getenv is the whole environment.
	t.Setenv("LOCKMGR_ETCD_PREFIX", "/leaked/")
	cfg, err = Load(LoadOptions{SystemFile: system, UserFile: user, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Backends["etcd"]["prefix"]; ok {
		t.Errorf("the process environment leaked into a Load with its own Getenv")
	}
}

func TestBackendEnvVar(t *testing.T) {
	for _, tt := range []struct{ name, key, want string }{
		{"etcd", "endpoints", "LOCKMGR_ETCD_ENDPOINTS"},
		{"etcd", "dial_timeout", "LOCKMGR_ETCD_DIAL_TIMEOUT"},
		{"my-plugin", "addr", ""},
		{"lock", "file", ""},
	} {
		if got := BackendEnvVar(tt.name, tt.key); got != tt.want {
			t.Errorf("BackendEnvVar(%q, %q) = %q, want %q", tt.name, tt.key, got, tt.want)
		}
	}
}

// TestOutputsAreNotInputs checks that nothing "lockmgr run" sets for its
// command changes the configuration a nested lockmgr loads: with every
// output set, to a backend name where one fits, Load gives what it gives
// without them. An output read as an input is how a run's -b leaked into
// the lockmgr its command started.
func TestOutputsAreNotInputs(t *testing.T) {
	dir := t.TempDir()
	system := writeFile(t, dir, "system.toml", systemTOML)
	user := writeFile(t, dir, "user.toml", userTOML)
	load := func(vars map[string]string) *Config {
		t.Helper()
		var environ []string
		for k, v := range vars {
			environ = append(environ, k+"="+v)
		}
		cfg, err := Load(LoadOptions{SystemFile: system, UserFile: user, Getenv: env(vars),
			Environ: func() []string { return environ }})
		if err != nil {
			t.Fatalf("Load with %v: %v", vars, err)
		}
		return cfg
	}
	for _, base := range []map[string]string{{}, {EnvBackend: BackendPOSIX}} {
		want := load(base)
		with := map[string]string{}
		for k, v := range base {
			with[k] = v
		}
		for _, name := range OutputEnv() {
			if name == EnvBackend || name == EnvConfig {
				t.Errorf("output %s is also an input", name)
			}
			with[name] = BackendOFD
		}
		got := load(with)
		if got.Backend != want.Backend || got.Sources[KeyBackend] != want.Sources[KeyBackend] {
			t.Errorf("with %v, backend = %q from %v; without the outputs %q from %v",
				with, got.Backend, got.Sources[KeyBackend], want.Backend, want.Sources[KeyBackend])
		}
		if len(got.Backends) != len(want.Backends) {
			t.Errorf("with %v, backend settings = %v; without the outputs %v", with, got.Backends, want.Backends)
		}
		for _, path := range []string{"/mnt/nfs/a.lock", "/srv/b.lock", "/tmp/c.lock"} {
			g, _ := got.BackendFor(path, nil)
			w, _ := want.BackendFor(path, nil)
			if g != w {
				t.Errorf("with %v, %s gets %s; without the outputs %s", with, path, g, w)
			}
		}
	}
}

// TestBackendForFollowsTheDirectory checks that a rule covers a directory,
// not one spelling of it: a lock file reached through a symbolic link to
// the rule's directory, or under a rule written with a link's spelling,
// gets the rule's backend, as the file itself is the same. Two spellings
// given two backends would each take a lock on one file, and both hold it.
func TestBackendForFollowsTheDirectory(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.MkdirAll(filepath.Join(real, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"link":       real,          // absolute
		"rel":        "real",        // relative
		"chain":      "link",        // a link to a link
		"subl":       "real/sub",    // into the tree
		"up":         "real/sub/..", // ".." in a link's target
		"real/intol": "../link",     // a link inside the tree, back to it
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	ruleSrc := Source{Kind: KindSystemFile, File: "/etc/lockmgr/config.toml", Line: 2}
	subSrc := Source{Kind: KindSystemFile, File: "/etc/lockmgr/config.toml", Line: 5}
	def := Source{Kind: KindDefault}
	for _, rulePath := range []string{real, filepath.Join(dir, "link"), filepath.Join(dir, "chain")} {
		cfg := &Config{
			Backend: BackendFlock,
			Sources: map[string]Source{KeyBackend: def},
			Rules: []Rule{
				{Path: rulePath, Backend: BackendOFD, Source: ruleSrc},
				{Path: filepath.Join(real, "sub", "deeper"), Backend: BackendPOSIX, Source: subSrc},
			},
		}
		for _, tt := range []struct {
			path string
			want string
			src  Source
		}{
			{"real/x.lock", BackendOFD, ruleSrc},
			{"link/x.lock", BackendOFD, ruleSrc},
			{"rel/x.lock", BackendOFD, ruleSrc},
			{"chain/x.lock", BackendOFD, ruleSrc},
			{"subl/x.lock", BackendOFD, ruleSrc},
			{"up/x.lock", BackendOFD, ruleSrc},
			{"real/intol/x.lock", BackendOFD, ruleSrc},
			{"link/missing/x.lock", BackendOFD, ruleSrc}, // a directory not made yet
			{"real", BackendOFD, ruleSrc},                // the directory itself
			{"link/sub/deeper/x.lock", BackendPOSIX, subSrc},
			{"subl/deeper/x.lock", BackendPOSIX, subSrc},
			{"x.lock", BackendFlock, def},
			{"link/../x.lock", BackendFlock, def}, // cleaned as the lock file is opened: dir/x.lock
		} {
			path := filepath.Join(dir, tt.path)
			if tt.path == "link/../x.lock" {
				path = dir + "/link/../x.lock"
			}
			if got, src := cfg.BackendFor(path, nil); got != tt.want || src != tt.src {
				t.Errorf("rule %s: BackendFor(%s) = %s from %s, want %s from %s", rulePath, tt.path, got, src, tt.want, tt.src)
			}
		}
	}
}

// BenchmarkBackendFor measures the choice of backend for one lock, which
// every Handle makes once: with no rules it touches no file; with rules it
// resolves the lock's directory and stats its ancestors and the rules'.
func BenchmarkBackendFor(b *testing.B) {
	dir := b.TempDir()
	real := filepath.Join(dir, "a", "b", "c")
	if err := os.MkdirAll(real, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		b.Fatal(err)
	}
	lock := filepath.Join(dir, "link", "x.lock")
	for _, n := range []int{0, 1, 10} {
		cfg := &Config{Backend: BackendFlock}
		for i := range n {
			cfg.Rules = append(cfg.Rules, Rule{Path: filepath.Join(dir, "r"+strconv.Itoa(i)), Backend: BackendOFD})
		}
		if n > 0 {
			cfg.Rules[n-1].Path = real
		}
		b.Run(strconv.Itoa(n)+"rules", func(b *testing.B) {
			for b.Loop() {
				cfg.BackendFor(lock, nil)
			}
		})
	}
}
