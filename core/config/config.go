package config

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
)

// Built-in backend names. Any other valid name (see ValidBackendName) is a
// third-party plugin.
const (
	// BackendFlock locks with flock(2): whole-file locks owned by the open
	// file description.
	BackendFlock = "flock"
	// BackendPOSIX locks with fcntl(2) F_SETLK: byte-range locks owned by
	// the process, which NFS and SMB servers arbitrate.
	BackendPOSIX = "posix"
	// BackendOFD locks with fcntl(2) F_OFD_SETLK: byte-range locks owned by
	// the open file description.
	BackendOFD = "ofd"
	// BackendAuto is not a backend but a choice deferred to lock time:
	// BackendFor resolves it per path to BackendPOSIX on network file
	// systems and BackendFlock elsewhere.
	BackendAuto = "auto"
)

// Defaults, used when no layer sets a key and to find the files to read.
const (
	// DefaultBackend is the backend when nothing is configured. flock is
	// the mechanism flock(1) and most shell scripts already use, so
	// lockmgr's locks exclude theirs out of the box.
	DefaultBackend = BackendFlock
	// DefaultLockFileMode is the mode of lock files lockmgr creates when
	// lock_file_mode is not set: the owner's alone. Whoever can open a
	// lock file can block its owner's jobs: flock(2) grants an exclusive
	// lock on a descriptor opened read-only, and a shared fcntl lock,
	// which needs only read access, keeps out an exclusive one. So a
	// lock file readable by all (0644, flock(1)'s default under the usual
	// umask) lets any local user stall a root cron job. Sharing a lock
	// between users is a choice to make on purpose: a group-owned setgid
	// directory and lock_file_mode 0660.
	DefaultLockFileMode os.FileMode = 0o600
	// DefaultSystemFile is the system-wide configuration file.
	DefaultSystemFile = "/etc/lockmgr/config.toml"
)

// Environment variables that Load consults: inputs, the user's choice.
const (
	// EnvConfig names an explicit configuration file, like --config.
	EnvConfig = "LOCKMGR_CONFIG"
	// EnvBackend overrides the configured backend, below --backend.
	EnvBackend = "LOCKMGR_BACKEND"
)

// Environment variables that "lockmgr run" sets for its command, to tell
// it about the lock it runs under. They are outputs only: nothing in
// lockmgr reads them, and none of them starts like an input (each begins
// with a word reserved from the LOCKMGR_NAME_KEY backend settings). An
// output that were also an input would let a run's own choice leak into
// every lockmgr its command starts: "lockmgr run -b ofd outer -- sh -c
// 'lockmgr run shared ...'" would lock shared with ofd while a sibling
// locks it with flock, and both would hold it.
const (
	// EnvLockFile is the lock file's absolute path, or the lock's name
	// for a backend whose locks are names (etcd).
	EnvLockFile = "LOCKMGR_LOCK_FILE"
	// EnvLockBackend is the backend that holds the lock. It is not
	// EnvBackend, which is an input.
	EnvLockBackend = "LOCKMGR_LOCK_BACKEND"
	// EnvFencingToken is the lock's fencing token, from backends that
	// give one.
	EnvFencingToken = "LOCKMGR_FENCING_TOKEN"
)

// OutputEnv lists the variables "lockmgr run" sets for its command, which
// it must set afresh (dropping any it inherited) so that a nested run
// never passes on its parent's.
func OutputEnv() []string {
	return []string{EnvLockFile, EnvLockBackend, EnvFencingToken}
}

// Names of the scalar keys, as used in the TOML file, in Config.Sources and
// in File.Lines.
const (
	KeyBackend      = "backend"
	KeyPluginDir    = "plugin_dir"
	KeyLockFileMode = "lock_file_mode"
	// KeySharedPluginIdle is how long a user's shared plugin lives on
	// with no host; "0s" gives every lockmgr process a plugin of its own.
	KeySharedPluginIdle = "shared_plugin_idle"
)

// DefaultSharedPluginIdle is shared_plugin_idle's default: long enough
// that a burst of commands (a loop in a script, make -j) finds the plugin
// running, short enough that an idle machine does not keep it.
const DefaultSharedPluginIdle = 10 * time.Second

// Kinds of Source, one per configuration layer.
const (
	KindDefault    = "default"
	KindSystemFile = "system file"
	KindUserFile   = "user file"
	KindConfigFile = "config file" // the explicit file of --config or LOCKMGR_CONFIG
	KindEnv        = "env"
	KindFlag       = "flag"
)

// Source tells where a configured value came from, so that lockmgr can
// explain its choices ("backend posix from user file
// /home/u/.config/lockmgr/config.toml:3") instead of leaving the user to
// guess which of several layers won.
type Source struct {
	// Kind is the layer: one of the Kind constants. Parse leaves it empty,
	// because one file's contents do not say which layer the file is; Load
	// fills it in.
	Kind string
	// File is the configuration file, for the file kinds.
	File string
	// Line is the 1-based line in File, or 0 when unknown.
	Line int
	// Var is the environment variable, for KindEnv.
	Var string
}

// String returns the source as lockmgr prints it: "default", "flag",
// "env LOCKMGR_BACKEND", or "user file /home/u/.config/lockmgr/config.toml:3".
func (s Source) String() string {
	var where string
	switch {
	case s.File != "":
		where = s.File
		if s.Line > 0 {
			where += ":" + strconv.Itoa(s.Line)
		}
	case s.Var != "":
		where = s.Var
	}
	switch {
	case s.Kind == "":
		return where
	case where == "":
		return s.Kind
	default:
		return s.Kind + " " + where
	}
}

// Rule sends locks under one directory tree to a particular backend, for
// trees whose file system needs a different mechanism than the rest, such
// as an NFS mount where only fcntl locks reach the server.
type Rule struct {
	// Path is an absolute, cleaned path, as written. The rule covers the
	// directory (or file) at Path and everything below it, whatever its
	// spelling: BackendFor resolves symbolic links and compares
	// directories by device and inode.
	Path string
	// Backend is a valid backend name, possibly BackendAuto.
	Backend string
	// Source is where the rule was written.
	Source Source
}

// Plugin holds what the configuration says about one backend's plugin
// binary.
type Plugin struct {
	// SHA256 is the lower-case hex SHA-256 the plugin binary must have, or
	// "" when the binary is not pinned. Pinning lets an administrator make
	// sure that a binary swapped into plugin_dir is refused rather than run.
	SHA256 string
	// ShownSettings are keys of the backend's settings whose values
	// "lockmgr config" may print. lockmgr knows which of its own
	// backends' keys are not secret; of a third-party backend's it knows
	// nothing, and shows none unless the configuration declares them here.
	ShownSettings []string
	// Source is where the pin was written, or the table when there is no
	// pin.
	Source Source
}

// Config is lockmgr's effective configuration, every layer merged. The
// zero Config is usable: BackendFor treats it as the defaults.
type Config struct {
	// Backend is the backend for paths no rule covers; it may be
	// BackendAuto.
	Backend string
	// PluginDir is an absolute directory to search for backend plugin
	// binaries, or "" when none is configured. It has no default here: the
	// plugin host has its own search path, the executable's directory
	// first and /usr/lib/lockmgr last, and a default in this field would be
	// searched ahead of the executable's directory, so that an unpacked
	// release would run the system's plugins instead of its own.
	PluginDir string
	// LockFileMode is the permission bits of lock files lockmgr creates
	// (before the umask), never more than 0o777.
	LockFileMode os.FileMode
	// SharedPluginIdle is how long a shared plugin lives on with no host
	// connected; zero means no plugin is shared: each host starts its own.
	SharedPluginIdle time.Duration
	// Plugins maps a backend name to its plugin settings.
	Plugins map[string]Plugin
	// Rules are the path rules of every file read, the highest-precedence
	// file's first.
	Rules []Rule
	// Backends maps a backend name to its free-form settings table, kept
	// as decoded TOML (string, int64, float64, bool, time values, []any,
	// map[string]any) for that backend to interpret.
	Backends map[string]map[string]any
	// BackendSources maps a backend name and a key of its settings to the
	// layer that set it: a file, or a LOCKMGR_NAME_KEY variable.
	BackendSources map[string]map[string]Source
	// Sources maps KeyBackend, KeyPluginDir, KeyLockFileMode and
	// KeySharedPluginIdle to the layer that set the value.
	Sources map[string]Source
	// Files lists the configuration files actually read, lowest precedence
	// first.
	Files []string
}

// nameSyntax describes ValidBackendName's rule for error messages.
const nameSyntax = `want flock, posix, ofd, auto, or a plugin name matching ^[a-z0-9][a-z0-9_-]{0,63}$`

// ValidBackendName reports whether name may name a backend: see
// backend.ValidName, which it is, and which the plugins use without
// linking the configuration's parser.
func ValidBackendName(name string) bool { return backend.ValidName(name) }

// Error is a problem with the configuration: a file that cannot be read,
// is not valid TOML, has an unknown key or a bad value, or an environment
// variable or option with a bad value.
type Error struct {
	// File is the configuration file, or "" when the problem is not in a
	// file (an environment variable or an option).
	File string
	// Line is the 1-based line in File, or 0 when unknown.
	Line int
	// Msg says what is wrong.
	Msg string
	// Err is the underlying cause, if any: an *fs.PathError for a file
	// that cannot be read, or a *toml.DecodeError whose String method
	// shows the offending line in context.
	Err error
}

// Error returns "FILE:LINE: msg", leaving out ":LINE" when the line is
// unknown and "FILE: " when there is no file.
func (e *Error) Error() string {
	switch {
	case e.File == "":
		return e.Msg
	case e.Line > 0:
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	default:
		return e.File + ": " + e.Msg
	}
}

// Unwrap returns the cause, so that errors.Is(err, fs.ErrNotExist) works
// on a missing explicit file.
func (e *Error) Unwrap() error {
	return e.Err
}

// BackendSettings encodes each backend's settings as the JSON object its
// plugin is configured with (see backend.Configurer), leaving out backends
// without settings. TOML's values all have a JSON form, so an error here
// means a Config built by hand with a value JSON cannot carry.
func (c *Config) BackendSettings() (map[string][]byte, error) {
	out := make(map[string][]byte, len(c.Backends))
	for name, settings := range c.Backends {
		if len(settings) == 0 {
			continue
		}
		js, err := json.Marshal(settings)
		if err != nil {
			return nil, &Error{Msg: fmt.Sprintf("[backends.%s]: %v", name, err)}
		}
		out[name] = js
	}
	return out, nil
}

// Resolve picks the backend that locks path: explicit (a --backend flag,
// a library's WithBackend) when given, above every rule, with "auto"
// decided by isNetwork as BackendFor decides it; else BackendFor's choice.
func (c *Config) Resolve(explicit, path string, isNetwork func(path string) bool) string {
	if explicit != "" {
		c = &Config{Backend: explicit} // no rules: the caller's choice stands
	}
	name, _ := c.BackendFor(path, isNetwork)
	return name
}
