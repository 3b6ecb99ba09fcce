package lockmgr

import (
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"github.com/lockmgr/lockmgr/core/pluginhost"
)

// Option configures a Handle.
type Option func(*options)

type options struct {
	backendName string
	impl        backend.LockMgr
	cfg         *config.Config
	pluginDir   string
	host        *pluginhost.Host
	rng         backend.Range
	fileMode    os.FileMode
	remove      bool
}

// WithBackend names the backend ("flock", "posix", "ofd", "auto", or a
// third-party name), overriding the environment and config files.
func WithBackend(name string) Option { return func(o *options) { o.backendName = name } }

// WithLockMgr locks through impl in this process instead of a plugin:
// for embedding a backend, and for testing one without a subprocess.
func WithLockMgr(impl backend.LockMgr) Option { return func(o *options) { o.impl = impl } }

// WithConfig uses cfg instead of the configuration loaded from the
// environment and the config files.
func WithConfig(cfg *config.Config) Option { return func(o *options) { o.cfg = cfg } }

// WithPluginDir searches dir for plugins before anywhere else.
func WithPluginDir(dir string) Option { return func(o *options) { o.pluginDir = dir } }

// WithHost starts plugins through h instead of the process's shared host.
func WithHost(h *pluginhost.Host) Option { return func(o *options) { o.host = h } }

// WithRange locks only length bytes from start (length zero: to the end
// of the file), for backends with byte ranges (posix, ofd).
func WithRange(start, length int64) Option {
	return func(o *options) { o.rng = backend.RangeOf(start, length) }
}

// WithFileMode sets the permission of a lock file that does not exist
// yet (before the umask); the default is 0600, or the config's
// lock_file_mode.
func WithFileMode(m os.FileMode) Option { return func(o *options) { o.fileMode = m } }

// WithRemoveOnRelease unlinks the lock file at Unlock, while still
// holding it, if no one else holds it. Every lockmgr acquirer checks that
// the file it locked is still the one at the path, so this is race-free
// among lockmgr users; other tools that lock the path may not check.
func WithRemoveOnRelease() Option { return func(o *options) { o.remove = true } }

var (
	defaultConfigOnce sync.Once
	defaultConfig     *config.Config
	defaultConfigErr  error

	hostsMu sync.Mutex
	hosts   = map[string]*pluginhost.Host{}
)

// loadDefaultConfig reads the environment and config files once per
// process: a library host takes many locks, and their backend should not
// change under it.
func loadDefaultConfig() (*config.Config, error) {
	defaultConfigOnce.Do(func() {
		defaultConfig, defaultConfigErr = config.Load(config.LoadOptions{})
	})
	return defaultConfig, defaultConfigErr
}

// sharedHost returns the process's host for a plugin search path, so that
// every Handle of a backend shares one plugin process. Hosts are keyed by
// everything a plugin is started with (search path, pins, settings), so
// that two configurations never share a plugin configured for only one.
func sharedHost(cfg *config.Config, pluginDir string) (*pluginhost.Host, error) {
	dirs := pluginhost.SearchPath(pluginDir, cfg.PluginDir)
	sums := map[string]string{}
	settings, err := cfg.BackendSettings()
	if err != nil {
		return nil, err
	}
	var key strings.Builder
	key.WriteString(strings.Join(dirs, ":"))
	for _, name := range slices.Sorted(maps.Keys(cfg.Plugins)) {
		sums[name] = cfg.Plugins[name].SHA256
		key.WriteString("|" + name + "=" + sums[name])
	}
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		key.WriteString("|" + name + ":" + string(settings[name]))
	}
	hostsMu.Lock()
	defer hostsMu.Unlock()
	h := hosts[key.String()]
	if h == nil {
		h = pluginhost.New(pluginhost.Options{Dirs: dirs, Checksums: sums, Settings: settings})
		hosts[key.String()] = h
	}
	return h, nil
}

// resolveBackend picks the backend for path: the option, else the
// config's rules and default, with "auto" decided by the filesystem.
func resolveBackend(o *options, cfg *config.Config, path string) string {
	return cfg.Resolve(o.backendName, path, lockfile.PathOnNetworkFS)
}
