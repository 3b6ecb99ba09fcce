package pluginrpc

import (
	"os"
	"syscall"
)

// The handshake every lockmgr plugin expects, through go-plugin
// (core/plugin.Handshake) or as a shared plugin (ListenEnv). The cookie
// keeps a person who runs a plugin binary by hand from waiting on a
// silent process, and the protocol version must change whenever the wire
// contract changes incompatibly, so that a mismatched pair fails at start
// with a clear error instead of mid-lock.
const (
	MagicCookieKey   = "LOCKMGR_PLUGIN"
	MagicCookieValue = "8f7d1c2e-lockmgr-backend"
	ProtocolVersion  = 2
)

// Environment variables a host sets for its plugin: the host
// (core/pluginhost) writes them, the plugin (Serve) reads them.
const (
	// LifelineEnv tells a plugin which descriptor is its lifeline: its
	// end of the SOCK_SEQPACKET socket pair that carries the session
	// (core/lockpb), whose other end only the host holds. The session
	// ends when the host's end is closed, which is how a plugin learns of
	// its host's death even when the host is killed with SIGKILL.
	LifelineEnv = "LOCKMGR_LIFELINE_FD"
	// LogEnv sets the log level of lockmgr and its plugins ("debug",
	// "trace", ...); unset means silent.
	LogEnv = "LOCKMGR_LOG"
	// LifelineHostEnv names the host's end of the lifeline as /proc shows
	// a descriptor of it ("socket:[INODE]"). Nothing in the plugin needs
	// it: it is there for `lockmgr status`, which credits a plugin's lock
	// to its host while the host holds that end (a socket pair's two
	// ends, unlike a pipe's, have different names).
	LifelineHostEnv = "LOCKMGR_LIFELINE_HOST"
	// SocketDirEnv is go-plugin's variable for the directory its Unix
	// socket goes in, which the host makes private to the plugin, and
	// which the plugin removes if its host dies first.
	SocketDirEnv = "PLUGIN_UNIX_SOCKET_DIR"
)

// HostDeathSignal is the Pdeathsig of a plugin whose lifeline is not
// shared: the kernel sends it when the host dies, even if a copy of the
// lifeline leaked to another process (a child the host forked without
// exec, through cgo, keeps every descriptor, close-on-exec or not). The
// host sets it as it starts the plugin and the plugin answers it (Serve),
// so both sides take it from here. Not SIGKILL, so that the plugin can
// give back locks that outlive it (etcd leases) before it exits; not one
// of the signals a terminal or a service manager sends a whole group,
// which the plugin ignores (cli/signals.go has the whole signal model).
//
// The kernel sends Pdeathsig when the thread that forked the plugin
// exits, not the process, and a Go program's threads end when a goroutine
// locked to one (runtime.LockOSThread) returns without unlocking. So
// core/pluginhost forks every plugin from one thread kept for the
// purpose, which lives as long as the process: a library cannot know its
// caller's threads.
const HostDeathSignal = syscall.SIGUSR2

// GroupSignals returns the signals a terminal or a service manager sends
// a whole process group (^C, ^\, a hangup, systemd's SIGTERM to the
// cgroup): meant for the command lockmgr run guards, which run relays them
// to, and never for a plugin, which ignores them, so that the lock
// guarding that command outlives none of its shutdown. One list, since
// what run relays and what a plugin ignores must be the same signals
// (cli/signals.go has the whole signal model).
func GroupSignals() []os.Signal {
	return []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}
}
