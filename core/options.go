package lockmgr

import (
	"fmt"
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
	backendName   string
	impl          backend.LockMgr
	cfg           *config.Config
	pluginDir     string
	host          *pluginhost.Host
	rng           backend.Range
	fileMode      os.FileMode
	remove        bool
	shareLifeline bool
	private       bool
	file          *os.File
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

// WithLifeline lets the Handle's locks be handed to another process with
// Handle.Lifeline: a lock that its plugin holds (posix, etcd) gets a
// keeper, and lives for as long as any process holds a copy of it, even
// after this one is killed, as the command of `lockmgr run` keeps its
// lock; the plugin's other locks do not. Without it every lock a plugin
// holds ends with this process. Handles with it and without it never
// share a plugin. It
// means nothing to a lock that is a locked file (Detach hands that on),
// and WithHost's host decides for itself.
func WithLifeline() Option { return func(o *options) { o.shareLifeline = true } }

// WithPrivatePlugin locks through a plugin of this process's own, started
// for it and ended with it, rather than the user's shared plugin for the
// backend (configuration's shared_plugin_idle, whose "0s" does the same
// for every Handle): for a program that must not depend on a process
// another of the user's programs started, or outlive its own. WithHost's
// host decides for itself.
func WithPrivatePlugin() Option { return func(o *options) { o.private = true } }

// WithFile locks the open file description behind f, a file the caller
// has open already (as flock(1) locks a shell's descriptor: `flock 9`),
// instead of opening the Handle's path, which then only names the lock:
// in messages, for the configuration's rules, and to Status. Only a
// backend whose locks belong to an open file description (flock, ofd)
// can lock it; any other refuses with ErrUnsupported.
//
// The lock is f's. Unlock releases it, and so does Close, as any lock;
// Detach leaves it with f, and returns f, so that it lasts for as long as
// f, or any copy of it in any process, stays open. Close returns only once
// no process of lockmgr's holds a copy of f (the plugin that locked it has
// exited), so that when the caller then closes f and its copies, the lock
// is gone, as under flock(1). f stays the caller's: it must stay open
// until Close, and the Handle never closes it.
//
// The Handle's plugin is its own, never shared with other Handles (they
// have no copy of f), so WithFile cannot be combined with WithHost; nor
// with WithLockMgr.
func WithFile(f *os.File) Option { return func(o *options) { o.file = f } }

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
	hosts   = map[hostKey]*pluginhost.Host{}
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

// check refuses options that cannot go together: WithFile with a host or
// an in-process backend, neither of which has a copy of the file to lock.
func (o *options) check() error {
	if o.file != nil && (o.host != nil || o.impl != nil) {
		return backend.Invalidf("WithFile locks through a plugin of the Handle's own, and cannot be combined with WithHost or WithLockMgr")
	}
	return nil
}

// hostFor returns the host that starts o's plugins under cfg: WithHost's;
// for WithFile, one of the Handle's own, which hands the file to its
// plugin; else the process's shared host for cfg.
func (o *options) hostFor(cfg *config.Config) (*pluginhost.Host, error) {
	if o.host != nil {
		return o.host, nil
	}
	opts, key, err := hostOptions(cfg, o.pluginDir, o.shareLifeline, o.private)
	if err != nil {
		return nil, err
	}
	if o.file != nil {
		opts.ExtraFiles = []*os.File{o.file}
		return pluginhost.New(opts), nil
	}
	return sharedHost(opts, key), nil
}

// hostKey tells shared hosts apart by everything a plugin is started
// with, so that two configurations never share a plugin started for only
// one: the search path, pins and settings (config), and whether the
// lifeline is shared.
type hostKey struct {
	config        string
	shareLifeline bool
}

// hostOptions returns what a host is made with under cfg, and its key.
func hostOptions(cfg *config.Config, pluginDir string, shareLifeline, private bool) (pluginhost.Options, hostKey, error) {
	dirs := pluginhost.SearchPath(pluginDir, cfg.PluginDir)
	sums := map[string]string{}
	settings, err := cfg.BackendSettings()
	if err != nil {
		return pluginhost.Options{}, hostKey{}, err
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
	fmt.Fprintf(&key, "|idle=%v|private=%v", cfg.SharedPluginIdle, private)
	opts := pluginhost.Options{
		Dirs: dirs, Checksums: sums, Settings: settings, ShareLifeline: shareLifeline,
		Shared: cfg.SharedPluginIdle > 0 && !private, Idle: cfg.SharedPluginIdle,
	}
	return opts, hostKey{key.String(), shareLifeline}, nil
}

// sharedHost returns the process's host for key, made with opts if there
// is none yet, so that every Handle of a backend shares one plugin
// process.
func sharedHost(opts pluginhost.Options, key hostKey) *pluginhost.Host {
	hostsMu.Lock()
	defer hostsMu.Unlock()
	h := hosts[key]
	if h == nil {
		h = pluginhost.New(opts)
		hosts[key] = h
	}
	return h
}

// resolveBackend picks the backend for path: the option, else the
// config's rules and default, with "auto" decided by the filesystem.
func resolveBackend(o *options, cfg *config.Config, path string) string {
	return cfg.Resolve(o.backendName, path, lockfile.PathOnNetworkFS)
}
