package pluginrpc

import (
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/kernelwait"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
)

// Serve runs impl as a backend plugin: the whole of a backend's main. It
// returns only when the plugin is told to stop, and it exits the process
// as soon as the host's lifeline closes.
func Serve(impl backend.LockMgr) {
	lifeline := watchLifeline(impl)
	// A plugin owns its signals, so its waiters may sleep in the kernel's
	// lock call and be woken by the release itself. If this fails they
	// wait on inotify, which is slower to notice a release, not wrong.
	_ = kernelwait.Enable()
	if os.Getenv("GOMAXPROCS") == "" {
		// A plugin's work is a few syscalls per call; what costs is handing
		// each message between goroutines, and on one P that hand-off is a
		// run-queue switch instead of a thread wake-up. Measured on a
		// 2-core machine: a lock round trip 20% faster.
		runtime.GOMAXPROCS(1)
	}
	go Warm() // runs while the host connects
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl, sender: senderOn(lifeline)}},
		GRPCServer:      newGRPCServer,
		Logger:          NewLogger("plugin"),
	})
}

// closeGrace bounds how long a plugin whose host is gone spends in its
// backend's Close before it exits regardless.
const closeGrace = time.Second

// watchLifeline ends the plugin once its host is gone: when every write
// end of the lifeline pipe is closed, or when the kernel delivers the
// host-death signal (HostDeathSignal, the Pdeathsig of a
// plugin whose lifeline is not shared). go-plugin has no parent-death
// detection of its own: a plugin whose host was SIGKILLed would live on
// under PID 1, holding its locks for no one. Exiting makes the kernel
// release every file lock at once; a backend whose locks live elsewhere
// (leases in a lock service) is an io.Closer, and is closed first, for at
// most closeGrace, so that its locks are given back now rather than when
// their leases expire. It returns the lifeline's descriptor, or -1 when
// the plugin was started without one.
func watchLifeline(impl backend.LockMgr) int {
	fd, err := strconv.Atoi(os.Getenv(LifelineEnv))
	if err != nil || fd < 3 {
		return -1
	}
	// The lifeline alone decides when the plugin ends. Signals meant for
	// the host or the command it runs (a hangup, ^\, systemd's SIGTERM to
	// the whole cgroup) must not drop the lock that guards that command
	// while it is still shutting down; SIGKILL still works.
	signal.Ignore(syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGINT)
	hostDied := make(chan os.Signal, 1)
	signal.Notify(hostDied, HostDeathSignal)
	lifeline := os.NewFile(uintptr(fd), "lifeline")
	cut := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, lifeline)
		close(cut)
	}()
	socketDir := os.Getenv(SocketDirEnv)
	go func() {
		select {
		case <-cut:
		case <-hostDied:
		}
		if c, ok := impl.(io.Closer); ok {
			closed := make(chan struct{})
			go func() {
				_ = c.Close()
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(closeGrace):
			}
		}
		// The host may be gone for good: the socket directory it made is
		// ours to remove.
		if socketDir != "" {
			_ = os.RemoveAll(socketDir)
		}
		os.Exit(0)
	}()
	return fd
}

// senderOn returns the descriptor channel's sending end on the lifeline
// fd, or nil when fd is not a socket that can carry descriptors (no
// lifeline at all, or a host that made it a pipe): the plugin then keeps
// every lock it grants.
func senderOn(fd int) *descriptorSender {
	if fd < 0 {
		return nil
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_SEQPACKET {
		return nil
	}
	return &descriptorSender{fd: fd}
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

// Window sizes fixed at 1 MiB turn off gRPC's bandwidth-delay probing,
// whose pings cost a lock round trip on a local socket and buy nothing.
const window = 1 << 20

// DialOptions are the host side's gRPC options for a plugin connection.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(window),
		grpc.WithInitialConnWindowSize(window),
		grpc.WithDisableRetry(),
		grpc.WithDisableServiceConfig(),
	}
}

func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts,
		grpc.InitialWindowSize(window),
		grpc.InitialConnWindowSize(window),
		// Reuse handler goroutines rather than start one per call.
		grpc.NumStreamWorkers(2),
	)
	return grpc.NewServer(opts...)
}
