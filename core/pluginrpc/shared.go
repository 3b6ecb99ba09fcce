package pluginrpc

// The plugin side of a shared plugin: one process that serves every host
// of its user that connects to its socket, each connection a session of
// its own (core/pluginhost starts it and says when a plugin is shared).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/kernelwait"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"golang.org/x/sys/unix"
)

// The environment of a shared plugin, set by the host that starts it
// (core/pluginhost), read by serveShared. The descriptors are the
// plugin's from its start, as socket activation hands a service its
// socket: the host binds the socket before the plugin runs, so a host that
// connects while the plugin is still starting waits in the backlog rather
// than finds nothing there.
const (
	// ListenEnv names the descriptor of the listening SOCK_SEQPACKET
	// socket; its presence makes the plugin a shared one.
	ListenEnv = "LOCKMGR_LISTEN_FD"
	// SettingsEnv names a pipe that carries the backend's settings (a
	// JSON object, or nothing) up to its end of file.
	SettingsEnv = "LOCKMGR_SETTINGS_FD"
	// ReadyEnv names a pipe on which the plugin says it is ready ("ok"),
	// or why it cannot serve, before it accepts any host.
	ReadyEnv = "LOCKMGR_READY_FD"
	// SocketEnv is the socket's path, StartLockEnv the path of the lock
	// file that settles who starts a plugin there. A plugin that exits
	// for want of hosts removes its socket's name under that lock, so that
	// no host starting its successor meanwhile loses the new one.
	SocketEnv    = "LOCKMGR_SOCKET"
	StartLockEnv = "LOCKMGR_START_LOCK"
	// IdleEnv is how long the plugin waits with no host before it exits,
	// in Go's duration syntax.
	IdleEnv = "LOCKMGR_IDLE"
)

// ReadyOK is what a shared plugin writes on its ready pipe once it serves.
const ReadyOK = "ok\n"

// DefaultIdle is how long a shared plugin lives on with no host: long
// enough that a burst of commands (a loop in a script, a make -j) finds
// it running, short enough that an idle machine does not keep it.
const DefaultIdle = 10 * time.Second

// sharedServer is a shared plugin's account of its hosts.
type sharedServer struct {
	impl    backend.LockMgr
	started time.Time
	idle    time.Duration
	socket  string
	lock    string
	// socketID is the socket's name as this plugin was started on it
	// (while its starter held the start lock): its device and inode.
	socketID [2]uint64

	mu        sync.Mutex
	sessions  int       // sessions not yet gone: ended with nothing kept
	idleSince time.Time // when sessions last fell to 0, or the start
	timer     *time.Timer
	exiting   bool
}

// serveShared serves impl as a shared plugin, if the host started it as
// one (ListenEnv), and never returns then; otherwise it returns at once.
func serveShared(impl backend.LockMgr) {
	fd, err := strconv.Atoi(os.Getenv(ListenEnv))
	if err != nil || fd < 3 {
		return
	}
	if os.Getenv(MagicCookieKey) != MagicCookieValue {
		fmt.Fprintf(os.Stderr, "lockmgr plugin: this is a lockmgr backend plugin; lockmgr starts it\n")
		os.Exit(1)
	}
	closeInherited(sharedFirstFree)
	ready := fileFromEnv(ReadyEnv, "ready")
	fail := func(err error) {
		if ready != nil {
			fmt.Fprintf(ready, "%v\n", err)
		}
		os.Exit(1)
	}
	// Started in a session of its own, it has no terminal; the signals a
	// service manager sends a group are still not its to act on.
	signal.Ignore(GroupSignals()...)
	_ = kernelwait.Enable()
	idle, err := time.ParseDuration(os.Getenv(IdleEnv))
	if err != nil || idle <= 0 {
		idle = DefaultIdle
	}
	now := time.Now()
	s := &sharedServer{impl: impl, started: now, idleSince: now, idle: idle, socket: os.Getenv(SocketEnv), lock: os.Getenv(StartLockEnv)}
	if err := s.configure(); err != nil {
		fail(err)
	}
	var st unix.Stat_t
	if s.socket != "" && unix.Lstat(s.socket, &st) == nil {
		s.socketID = [2]uint64{st.Dev, st.Ino}
	}
	if info, err := impl.Describe(context.Background()); err == nil && info.Capabilities.Owner == backend.OwnerProcess {
		// Every host's lock would belong to this one process, which
		// the kernel lets take a lock it holds again: two hosts would
		// both hold it.
		fail(fmt.Errorf("%w: its locks belong to the process that takes them, so one plugin cannot serve two hosts", backend.ErrUnsupported))
	}
	// The host bound the socket; listening here makes this process the
	// one SO_PEERCRED names to every host that connects, which hosts
	// check.
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		fail(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		fail(err)
	}
	ln := os.NewFile(uintptr(fd), "listener")
	raw, err := ln.SyscallConn()
	if err != nil {
		fail(err)
	}
	io.WriteString(ready, ReadyOK)
	ready.Close()
	s.mu.Lock()
	s.armLocked()
	s.mu.Unlock()
	for {
		var conn int
		var aerr error
		err := raw.Read(func(lfd uintptr) bool {
			conn, _, aerr = unix.Accept4(int(lfd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			return aerr != unix.EAGAIN
		})
		if err == nil {
			err = aerr
		}
		if err != nil {
			switch {
			case errors.Is(err, unix.ECONNABORTED), errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
				// Out of descriptors: the host waits in the backlog
				// until a session ends and frees some. Trying again at
				// once would spin.
				time.Sleep(acceptBackoff)
				continue
			}
			fmt.Fprintf(os.Stderr, "lockmgr plugin: accepting hosts: %v\n", err)
			s.exit()
		}
		s.serveHost(conn)
	}
}

// sharedFirstFree is the first descriptor a shared plugin is not handed
// by its starter: 3 the listener, 4 the settings, 5 the ready pipe, 6
// its binary (core/pluginhost lays them out).
const sharedFirstFree = 7

// closeInherited closes every descriptor from first up that came with
// the process rather than being opened by it: whatever its starter had
// open without close-on-exec (a shell's `exec 9>lock`, passed down to
// lockmgr and on to the plugin it started). A shared plugin outlives its
// starter, and a copy of a locked file in it would keep that lock for
// as long as the plugin runs, for no one. The runtime's own descriptors
// (the poller's, made as it starts) are not files, and stay.
func closeInherited(first int) {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	var fds []int
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(dir, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			if fd, err := strconv.Atoi(name); err == nil && fd >= first && fd != dir {
				fds = append(fds, fd)
			}
		}
	}
	unix.Close(dir)
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		if err == nil && !strings.HasPrefix(link, "anon_inode:") {
			unix.Close(fd)
		}
	}
}

// acceptBackoff is how long a shared plugin out of descriptors waits
// before it tries to accept a host again.
const acceptBackoff = 50 * time.Millisecond

// fileFromEnv returns the descriptor the variable env names, or nil.
func fileFromEnv(env, name string) *os.File {
	fd, err := strconv.Atoi(os.Getenv(env))
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), name)
}

// configure hands the backend the settings its starter sent, if any.
func (s *sharedServer) configure() error {
	f := fileFromEnv(SettingsEnv, "settings")
	if f == nil {
		return nil
	}
	defer f.Close()
	settings, err := io.ReadAll(io.LimitReader(f, MaxMessage+1))
	if err != nil {
		return fmt.Errorf("reading its settings: %w", err)
	}
	if len(settings) > MaxMessage {
		return fmt.Errorf("%w: settings larger than %d bytes", backend.ErrConfig, MaxMessage)
	}
	if len(settings) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return NewControl(s.impl).Configure(ctx, settings)
}

// serveHost serves the host at the other end of conn, a connection just
// accepted, if it runs as this plugin's user: the socket's directory keeps
// others out, and this keeps out anyone who got past it.
func (s *sharedServer) serveHost(fd int) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil || int(cred.Uid) != os.Geteuid() {
		if err == nil {
			err = fmt.Errorf("it runs as uid %d", cred.Uid)
		}
		fmt.Fprintf(os.Stderr, "lockmgr plugin: refused a host: %v\n", err)
		unix.Close(fd)
		return
	}
	conn, err := newPacketConn(os.NewFile(uintptr(fd), "session"))
	if err != nil {
		return
	}
	s.mu.Lock()
	s.sessions++
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	ss := newSession(s.impl, conn, s.stat)
	ss.hostPID = int(cred.Pid)
	stopWatch := watchHost(int(cred.Pid), conn)
	go func() {
		if err := ss.serve(); err != nil {
			fmt.Fprintf(os.Stderr, "lockmgr plugin: a session ended: %v\n", err)
		}
		stopWatch()
		<-ss.Gone()
		s.mu.Lock()
		s.sessions--
		if s.sessions == 0 {
			s.idleSince = time.Now()
		}
		s.armLocked()
		s.mu.Unlock()
	}()
}

// watchHost ends the session on conn when the host process pid exits,
// even if a copy of the host's end of the connection lives on in a
// child it forked without exec (a cgo program can), which would keep
// the session, and every lock in it, open for no one. A private plugin
// has Pdeathsig for this; a shared one is no host's child. The watch
// ends when the returned stop is called.
func watchHost(pid int, conn *packetConn) (stop func()) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			conn.close() // gone already
		}
		// Without a pidfd, the session's end of file is the only sign.
		return func() {}
	}
	f := os.NewFile(uintptr(fd), "host")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return func() {}
	}
	go func() {
		// A pidfd is readable once its process has exited: the poller
		// waits for that, the first look says whether it has already.
		// Closing f (stop) ends the wait with an error instead.
		err := raw.Read(func(fd uintptr) bool {
			n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
			return err == nil && n > 0
		})
		if err == nil {
			conn.close()
		}
	}()
	return func() { f.Close() }
}

func (s *sharedServer) stat() *lockpb.StatResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &lockpb.StatResponse{Shared: true, Hosts: uint32(s.sessions), StartedUnixNano: s.started.UnixNano(), IdleSinceUnixNano: s.idleSince.UnixNano()}
}

// armLocked starts the idle countdown once no session is left.
func (s *sharedServer) armLocked() {
	if s.sessions > 0 || s.exiting {
		return
	}
	if s.timer == nil {
		s.timer = time.AfterFunc(s.idle, s.idleExit)
		return
	}
	s.timer.Reset(s.idle)
}

// idleExit ends the plugin once it has been idle for s.idle. It takes
// the start lock first: a host that starts a plugin holds it from the
// moment it found no one at the socket until its own plugin listens, so
// the name removed here is this plugin's own.
func (s *sharedServer) idleExit() {
	var lock *os.File
	if s.lock != "" {
		f, err := os.OpenFile(s.lock, os.O_RDWR|unix.O_NOFOLLOW, 0)
		if err == nil {
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
				// A host is starting a plugin, or checking this one:
				// look again later.
				f.Close()
				s.mu.Lock()
				s.armLocked()
				s.mu.Unlock()
				return
			}
			lock = f
		}
	}
	s.mu.Lock()
	if s.sessions > 0 {
		s.mu.Unlock()
		if lock != nil {
			lock.Close()
		}
		return
	}
	s.exiting = true
	s.mu.Unlock()
	// A host that connected since has its connection reset as this
	// process exits, and starts afresh. The name is removed only if it is
	// still this plugin's: one removed from under it (a cleaner of the
	// runtime directory) may name a newer plugin now.
	var st unix.Stat_t
	if s.socket != "" && unix.Lstat(s.socket, &st) == nil && [2]uint64{st.Dev, st.Ino} == s.socketID {
		_ = os.Remove(s.socket)
	}
	s.exit()
}

// exit ends the plugin, giving a backend whose locks outlive processes
// (etcd's leases) closeGrace to give them back.
func (s *sharedServer) exit() {
	closeBackend(s.impl)
	os.Exit(0)
}

// closeBackend closes impl if it is an io.Closer, for at most closeGrace.
func closeBackend(impl backend.LockMgr) {
	c, ok := impl.(io.Closer)
	if !ok {
		return
	}
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
