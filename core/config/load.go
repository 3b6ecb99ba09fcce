package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
)

// LoadOptions says where Load looks. The zero value loads the usual files
// from the real environment, as the CLI does without flags; tests fill in
// the files and Getenv so that the machine's own configuration cannot leak
// into them.
type LoadOptions struct {
	// SystemFile is the system file; "" means DefaultSystemFile.
	SystemFile string
	// UserFile is the user file; "" means UserFile(Getenv).
	UserFile string
	// ExplicitFile is the file named by --config; "" means the file named
	// by LOCKMGR_CONFIG, if any. When set, it is read instead of both the
	// system and the user file, and it must exist.
	ExplicitFile string
	// Backend is the --backend flag, the highest-precedence layer; ""
	// means not given.
	Backend string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(key string) string
	// Environ lists the environment as KEY=value strings, for the
	// LOCKMGR_NAME_KEY backend settings; nil means os.Environ when Getenv
	// is nil too, and no variables at all when only Getenv is given, so
	// that a test's Getenv is the whole environment it sees.
	Environ func() []string
}

// UserFile returns the user configuration file that XDG's base directory
// rules give: $XDG_CONFIG_HOME/lockmgr/config.toml, or
// $HOME/.config/lockmgr/config.toml when XDG_CONFIG_HOME is unset or not
// absolute (the XDG spec says a relative value is to be ignored). It
// returns "" when neither variable helps, in which case there is no user
// file. getenv nil means os.Getenv.
func UserFile(getenv func(key string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "lockmgr", "config.toml")
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".config", "lockmgr", "config.toml")
	}
	return ""
}

// layer is one configuration file to read.
type layer struct {
	kind     string // KindSystemFile, KindUserFile or KindConfigFile
	path     string
	required bool   // an explicit file must exist; the usual ones need not
	namedBy  string // what named an explicit file, for messages
}

// Load reads the configuration files that opts selects and merges them
// with the environment, opts.Backend and the defaults, as the package
// documentation describes. Every error is an *Error.
func Load(opts LoadOptions) (*Config, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}

	cfg := &Config{
		Backend:          DefaultBackend,
		LockFileMode:     DefaultLockFileMode,
		SharedPluginIdle: DefaultSharedPluginIdle,
		Plugins:          make(map[string]Plugin),
		Backends:         make(map[string]map[string]any),
		BackendSources:   make(map[string]map[string]Source),
		Sources: map[string]Source{
			KeyBackend:          {Kind: KindDefault},
			KeyPluginDir:        {Kind: KindDefault},
			KeyLockFileMode:     {Kind: KindDefault},
			KeySharedPluginIdle: {Kind: KindDefault},
		},
	}

	for _, l := range layers(opts, getenv) {
		data, err := os.ReadFile(l.path)
		if err != nil {
			if !l.required && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, readError(l, err)
		}
		f, err := Parse(l.path, data)
		if err != nil {
			return nil, err
		}
		cfg.Files = append(cfg.Files, l.path)
		cfg.apply(f, l.kind)
	}

	environ := opts.Environ
	if environ == nil && opts.Getenv == nil {
		environ = os.Environ
	}
	if environ != nil {
		cfg.applyBackendEnv(environ())
	}

	if name := getenv(EnvBackend); name != "" {
		if !ValidBackendName(name) {
			return nil, &Error{Msg: fmt.Sprintf("environment variable %s=%q is not a valid backend name (%s)", EnvBackend, name, nameSyntax)}
		}
		cfg.Backend = name
		cfg.Sources[KeyBackend] = Source{Kind: KindEnv, Var: EnvBackend}
	}
	if name := opts.Backend; name != "" {
		if !ValidBackendName(name) {
			return nil, &Error{Msg: fmt.Sprintf("backend option %q is not a valid backend name (%s)", name, nameSyntax)}
		}
		cfg.Backend = name
		cfg.Sources[KeyBackend] = Source{Kind: KindFlag}
	}
	return cfg, nil
}

// layers lists the files to read, lowest precedence first.
func layers(opts LoadOptions, getenv func(string) string) []layer {
	if opts.ExplicitFile != "" {
		return []layer{{kind: KindConfigFile, path: opts.ExplicitFile, required: true, namedBy: "--config"}}
	}
	if file := getenv(EnvConfig); file != "" {
		return []layer{{kind: KindConfigFile, path: file, required: true, namedBy: EnvConfig}}
	}

	system := opts.SystemFile
	if system == "" {
		system = DefaultSystemFile
	}
	ls := []layer{{kind: KindSystemFile, path: system}}
	user := opts.UserFile
	if user == "" {
		user = UserFile(getenv)
	}
	if user != "" {
		ls = append(ls, layer{kind: KindUserFile, path: user})
	}
	return ls
}

// readError reports a file that exists (or had to) but cannot be read. A
// system or user file that is unreadable is an error rather than skipped:
// silently ignoring, say, a permission problem would run with a different
// configuration than the administrator wrote.
func readError(l layer, err error) error {
	cause := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		cause = pe.Err // the path is already in the message
	}
	what := "cannot read " + l.kind
	if l.namedBy != "" {
		what += " named by " + l.namedBy
	}
	return &Error{File: l.path, Msg: what + ": " + cause.Error(), Err: err}
}

// apply merges one file, read as the layer kind, over c.
func (c *Config) apply(f *File, kind string) {
	at := func(line int) Source {
		return Source{Kind: kind, File: f.Name, Line: line}
	}
	if line, ok := f.Lines[KeyBackend]; ok {
		c.Backend = f.Backend
		c.Sources[KeyBackend] = at(line)
	}
	if line, ok := f.Lines[KeyPluginDir]; ok {
		c.PluginDir = f.PluginDir
		c.Sources[KeyPluginDir] = at(line)
	}
	if line, ok := f.Lines[KeyLockFileMode]; ok {
		c.LockFileMode = f.LockFileMode
		c.Sources[KeyLockFileMode] = at(line)
	}
	if line, ok := f.Lines[KeySharedPluginIdle]; ok {
		c.SharedPluginIdle = f.SharedPluginIdle
		c.Sources[KeySharedPluginIdle] = at(line)
	}
	for name, p := range f.Plugins {
		p.Source.Kind = kind
		c.Plugins[name] = p
	}
	for name, settings := range f.Backends {
		c.Backends[name] = settings
		srcs := make(map[string]Source, len(settings))
		for key := range settings {
			srcs[key] = Source{Kind: kind, File: f.Name}
		}
		c.BackendSources[name] = srcs
	}
	// Files come lowest precedence first, and BackendFor lets the earlier
	// of two equally long rules win, so a higher layer's rules go first.
	rules := make([]Rule, 0, len(f.Rules)+len(c.Rules))
	for _, r := range f.Rules {
		r.Source.Kind = kind
		rules = append(rules, r)
	}
	c.Rules = append(rules, c.Rules...)
}

// reservedEnvNames are the first words of lockmgr's own LOCKMGR_ variables
// (LOCKMGR_PLUGIN_DIR, LOCKMGR_LOCK_FILE, LOCKMGR_FENCING_TOKEN,
// LOCKMGR_LOG, LOCKMGR_LIFELINE_FD), which are not backend settings.
var reservedEnvNames = map[string]bool{
	"plugin": true, "lock": true, "fencing": true, "log": true, "lifeline": true,
	"config": true, "backend": true,
}

// BackendEnvVar returns the environment variable that sets key of
// backend name's settings, LOCKMGR_NAME_KEY, or "" when name cannot be
// configured from the environment (it has a "-", or is reserved).
func BackendEnvVar(name, key string) string {
	if strings.ContainsAny(name, "-_") || reservedEnvNames[name] || !ValidBackendName(name) {
		return ""
	}
	return "LOCKMGR_" + strings.ToUpper(name) + "_" + strings.ToUpper(key)
}

// applyBackendEnv sets backend settings from LOCKMGR_NAME_KEY variables,
// key by key over the files' tables, so that one endpoint list can be
// overridden for one run (LOCKMGR_ETCD_ENDPOINTS) without restating the
// rest of the table. The value is always a string; the backend parses it.
func (c *Config) applyBackendEnv(environ []string) {
	for _, kv := range environ {
		rest, ok := strings.CutPrefix(kv, "LOCKMGR_")
		if !ok {
			continue
		}
		rest, value, ok := strings.Cut(rest, "=")
		if !ok || value == "" {
			// Empty is unset, as for LOCKMGR_BACKEND: `env VAR=` in a
			// script or unit file is how one turns a setting off.
			continue
		}
		upperName, upperKey, ok := strings.Cut(rest, "_")
		if !ok || upperKey == "" {
			continue
		}
		name, key := strings.ToLower(upperName), strings.ToLower(upperKey)
		v := BackendEnvVar(name, key)
		if v != "LOCKMGR_"+rest {
			continue // reserved, or not upper case as written
		}
		if c.Backends[name] == nil {
			c.Backends[name] = make(map[string]any)
		} else {
			// Copy before writing: the table may be shared with a File.
			c.Backends[name] = maps.Clone(c.Backends[name])
		}
		c.Backends[name][key] = value
		if c.BackendSources[name] == nil {
			c.BackendSources[name] = make(map[string]Source)
		}
		c.BackendSources[name][key] = Source{Kind: KindEnv, Var: v}
	}
}
