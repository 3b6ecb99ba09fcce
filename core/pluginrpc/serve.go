package pluginrpc

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/kernelwait"
	"golang.org/x/sys/unix"
)

// StartSessions readies a plugin process to serve its hosts' sessions;
// core/plugin's Serve, a backend's whole main, calls it first. A shared
// plugin (started with ListenEnv) serves every host that connects, here,
// and never returns. A private one (started by go-plugin, with
// LifelineEnv) starts serving its host's session and returns, for
// go-plugin to answer the handshake and serve the control plane.
func StartSessions(impl backend.LockMgr) {
	if os.Getenv("GOMAXPROCS") == "" {
		// A plugin's work is a few syscalls per call; what costs is handing
		// each message between goroutines, and on one P that hand-off is a
		// run-queue switch instead of a thread wake-up. Measured on a
		// 2-core machine: a lock round trip 20% faster.
		runtime.GOMAXPROCS(1)
	}
	serveShared(impl) // returns only if the plugin is not a shared one
	serveSession(impl)
	// A plugin owns its signals, so its waiters may sleep in the kernel's
	// lock call and be woken by the release itself. If this fails they
	// wait on inotify, which is slower to notice a release, not wrong.
	_ = kernelwait.Enable()
	go Warm() // runs while the host connects
}

// closeGrace bounds how long a plugin whose host is gone spends in its
// backend's Close before it exits regardless.
const closeGrace = time.Second

// serveSession serves the host's session on the lifeline (descriptor
// LifelineEnv names, a SOCK_SEQPACKET socket; see core/lockpb) and ends
// the plugin when its host is gone: once the session has ended (the
// host's end closed, which the kernel does when the host dies, SIGKILL
// included) and no lock is kept by a keeper; or at once when the kernel
// delivers the host-death signal (HostDeathSignal, the
// Pdeathsig of a plugin whose host hands no lock on). go-plugin has no
// parent-death detection of its own: a plugin whose host was SIGKILLed
// would live on under PID 1, holding its locks for no one. Exiting makes
// the kernel release every file lock at once; a backend whose locks live
// elsewhere (leases in a lock service) is an io.Closer, and is closed
// first, for at most closeGrace, so that its locks are given back now
// rather than when their leases expire.
func serveSession(impl backend.LockMgr) {
	fd, err := strconv.Atoi(os.Getenv(LifelineEnv))
	if err != nil || fd < 3 {
		return // not started by a host: go-plugin refuses to serve
	}
	// The session alone decides when the plugin ends: the signals meant
	// for the host or its command are ignored, and HostDeathSignal ends
	// it. SIGKILL still works. The whole signal model, host and plugin,
	// is written down once in cli/signals.go.
	signal.Ignore(GroupSignals()...)
	hostDied := make(chan os.Signal, 1)
	signal.Notify(hostDied, HostDeathSignal)
	socketDir := os.Getenv(SocketDirEnv)
	var once sync.Once
	exit := func() {
		once.Do(func() {
			closeBackend(impl)
			// The host may be gone for good: the socket directory it made
			// is ours to remove.
			if socketDir != "" {
				_ = os.RemoveAll(socketDir)
			}
			os.Exit(0)
		})
	}
	go func() {
		<-hostDied
		exit()
	}()
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_SEQPACKET {
		fmt.Fprintf(os.Stderr, "lockmgr plugin: descriptor %d is not a lockmgr session (a SOCK_SEQPACKET socket); this plugin speaks protocol %d\n", fd, ProtocolVersion)
		os.Exit(1)
	}
	err = unix.SetNonblock(fd, true)
	var conn *packetConn
	if err == nil {
		conn, err = newPacketConn(os.NewFile(uintptr(fd), "session"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lockmgr plugin: the session: %v\n", err)
		os.Exit(1)
	}
	ss := newSession(impl, conn, nil)
	ss.hostPID = os.Getppid()
	go func() {
		if err := ss.serve(); err != nil {
			fmt.Fprintf(os.Stderr, "lockmgr plugin: session ended: %v\n", err)
		}
		<-ss.Gone()
		exit()
	}()
}

// NewLogger returns lockmgr's logger: silent unless LOCKMGR_LOG names a
// level, and then plain text on stderr, which a plugin's host relays.
func NewLogger(name string) hclog.Logger {
	level := os.Getenv(LogEnv)
	if level == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.LevelFromString(level), Output: os.Stderr})
}

func fileMode(m uint32) os.FileMode { return os.FileMode(m).Perm() }
