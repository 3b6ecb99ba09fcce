package lockmgr

// Backend plugins as a program that takes no lock sees them: where they
// are looked for, which are there, whether each may run, and what a
// running one says of itself and of a lock. These are thin wrappers of
// core/pluginhost, which owns the plugin process and writes each rule
// once, so that a tool (lockmgr backends, status, completion) finds and
// starts a plugin exactly as a lock would, without reaching into it.

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
)

// PluginBinaryPrefix starts the file name of every backend plugin:
// backend NAME is the binary lockmgr-backend-NAME. A tool needs it to
// name a missing plugin, or to recognise a plugin process in /proc.
const PluginBinaryPrefix = backend.PluginBinaryPrefix

// LifelineHostEnv is the variable in a plugin process's environment that
// names its host's end of the plugin's lifeline as /proc shows a
// descriptor of it ("socket:[INODE]"). Whoever holds a descriptor of that
// name keeps the plugin, and the locks it holds, alive: lockmgr status
// reads it to credit a plugin's lock to its host, or to the command that
// `lockmgr run` handed a copy to.
const LifelineHostEnv = pluginrpc.LifelineHostEnv

// RuntimeDirEnv names the directory that shared plugins' sockets go in,
// in place of $XDG_RUNTIME_DIR/lockmgr (/run/lockmgr for root): for a
// user whose runtime directory is elsewhere, and for tests that must meet
// no shared plugin but their own.
const RuntimeDirEnv = pluginhost.RuntimeDirEnv

// GroupSignals returns the signals a terminal or a service manager sends
// a whole process group, which a plugin ignores: what a program that runs
// a command under a lock (lockmgr run) relays to that command.
func GroupSignals() []os.Signal { return pluginrpc.GroupSignals() }

// PluginSearchPath returns the directories searched for plugins under
// cfg, in order, as a Handle made with WithConfig(cfg) and no
// WithPluginDir searches them (pluginhost.SearchPath has the order). A
// nil cfg has no plugin_dir.
func PluginSearchPath(cfg *config.Config) []string {
	var dir string
	if cfg != nil {
		dir = cfg.PluginDir
	}
	return pluginhost.SearchPath("", dir)
}

// FoundPlugin is a plugin binary found on a search path: the backend's
// Name and the binary's Path.
type FoundPlugin = pluginhost.Found

// ListPlugins returns every backend plugin in dirs, each name once, the
// one a lock would use (the first found), sorted by name. It only looks
// at names: VerifyPlugin says whether one may run, OpenBackend whether it
// starts and answers.
func ListPlugins(dirs []string) []FoundPlugin { return pluginhost.List(dirs) }

// VerifyPlugin refuses a plugin binary that another user could have
// planted or replaced, by the rules a lock's start applies before it runs
// one (pluginhost.Verify has them): the error says which name, owner or
// mode is at fault.
func VerifyPlugin(path string) error { return pluginhost.Verify(path) }

// Backend is a backend's plugin, started to be asked about itself and
// about locks without taking one: its version and capabilities (Info),
// and who holds a lock (Inspect). It is what a tool such as lockmgr
// backends or lockmgr status needs of a plugin. It shares the plugin
// process with the Handles of the same configuration, and gives up its
// use of it at Close.
type Backend struct {
	name   string
	mgr    backend.LockMgr
	plugin *pluginhost.Plugin
	close  sync.Once
}

// OpenBackend starts backend name's plugin, found, verified and
// configured as a Handle's would be under opts (WithConfig, WithPluginDir,
// WithHost; with WithLockMgr, the in-process backend answers instead),
// waiting for its start no longer than ctx allows. name is a backend's
// own name, as its plugin binary is named: "auto" is not one, as it
// stands for flock or posix by the lock file. Options about a lock
// (WithRange, WithFile, ...) mean nothing here. Each Backend must be
// closed.
func OpenBackend(ctx context.Context, name string, opts ...Option) (*Backend, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.impl != nil {
		return &Backend{name: name, mgr: o.impl}, nil
	}
	cfg := o.cfg
	if cfg == nil {
		var err error
		if cfg, err = loadDefaultConfig(); err != nil {
			return nil, err
		}
	}
	o.file = nil // a lock's, not a plugin's
	host, err := o.hostFor(cfg)
	if err != nil {
		return nil, backend.Errorf("start", "", name, err)
	}
	p, err := host.GetContext(ctx, name)
	if err != nil {
		return nil, err
	}
	return &Backend{name: name, mgr: p, plugin: p}, nil
}

// Name returns the backend's name, as OpenBackend was given it.
func (b *Backend) Name() string { return b.name }

// Info describes the backend: its name as it gives it, its version and
// its capabilities.
func (b *Backend) Info(ctx context.Context) (backend.Info, error) {
	info, err := b.mgr.Describe(ctx)
	if err != nil {
		return backend.Info{}, backend.Errorf("describe", "", b.name, err)
	}
	return info, nil
}

// Inspect reports who holds and who waits for the lock named lock, as the
// backend sees it: a lock file's absolute path, or, for a distributed
// backend (Capabilities.Distributed), a lock's name as it was written.
func (b *Backend) Inspect(ctx context.Context, lock string) (backend.Status, error) {
	st, err := b.mgr.Inspect(ctx, lock)
	if err != nil {
		return backend.Status{}, backend.Errorf("inspect", lock, b.name, err)
	}
	return st, nil
}

// PluginProcess is what a Backend's plugin process says of itself.
type PluginProcess struct {
	// PID is the plugin's process id, 0 for an in-process backend.
	PID int
	// Shared says the plugin is the user's shared one for the backend,
	// which serves every host of the user that connects to it, rather
	// than this process's own.
	Shared bool
	// OtherHosts counts the other processes it serves now.
	OtherHosts int
	// IdleSince is, for a shared plugin with no other host, when it last
	// had one (or started): it exits once idle for shared_plugin_idle.
	IdleSince time.Time
}

// Process describes the Backend's plugin process: whether it is the
// user's shared plugin, and whom else it serves, for lockmgr backends.
func (b *Backend) Process(ctx context.Context) (PluginProcess, error) {
	if b.plugin == nil {
		return PluginProcess{}, nil
	}
	st, err := b.plugin.Stat(ctx)
	if err != nil {
		return PluginProcess{}, backend.Errorf("stat", "", b.name, err)
	}
	p := PluginProcess{PID: b.plugin.PID(), Shared: b.plugin.Shared(), OtherHosts: max(st.Hosts-1, 0)}
	if p.Shared && p.OtherHosts == 0 {
		p.IdleSince = st.IdleSince
	}
	return p, nil
}

// Close gives up the Backend's use of its plugin, which stops once no
// Handle or Backend uses it, without waiting for it to exit. Close is
// idempotent.
func (b *Backend) Close() error {
	b.close.Do(func() {
		if b.plugin != nil {
			b.plugin.Done()
		}
	})
	return nil
}
