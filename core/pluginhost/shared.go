package pluginhost

// Shared plugins: one long-lived plugin process per user, backend, plugin
// binary and settings, which every host of that user connects to, as
// gpg-agent and ssh-agent serve every program of their user. A command
// then costs one process, and a waiter one connection.
//
// The rendezvous is a socket in a directory that only the user (or root)
// can enter; its name carries everything the plugin was started with, so
// an upgraded binary or changed settings start a new plugin and never
// reach a stale one. Each connection is one host's session: it ends with
// its host, and releases what the plugin holds for that host alone.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lockmgr/lockmgr/core/lockfile"
	"github.com/lockmgr/lockmgr/core/lockwait"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"golang.org/x/sys/unix"
)

// RuntimeDirEnv names the directory shared plugins' sockets go in, for a
// user whose runtime directory is elsewhere, and for tests that must not
// meet the plugins of the machine's other programs. Unset, it is
// $XDG_RUNTIME_DIR/lockmgr, or /run/lockmgr for root.
const RuntimeDirEnv = "LOCKMGR_RUNTIME_DIR"

// errNoShare means no shared plugin can be reached or started here, for a
// reason that leaves a private plugin as good an answer: the host starts
// one, and logs why.
var errNoShare = errors.New("no shared plugin")

// sharedDir returns the directory shared plugins' sockets go in, made if
// need be, and checked to be the running user's alone.
func sharedDir() (string, error) {
	dir := os.Getenv(RuntimeDirEnv)
	switch {
	case dir != "":
	case os.Geteuid() == 0:
		dir = "/run/lockmgr"
	case os.Getenv("XDG_RUNTIME_DIR") != "":
		dir = filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "lockmgr")
	default:
		// Without a runtime directory (cron, a service without one),
		// the usual one may still be there.
		run := "/run/user/" + strconv.Itoa(os.Geteuid())
		if _, err := os.Stat(run); err != nil {
			return "", fmt.Errorf("%w: $XDG_RUNTIME_DIR is not set and %s does not exist", errNoShare, run)
		}
		dir = filepath.Join(run, "lockmgr")
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%w: %s is not an absolute path", errNoShare, dir)
	}
	parent, err := trustedParent(filepath.Dir(dir))
	if err != nil {
		return "", fmt.Errorf("%w: %v", errNoShare, err)
	}
	dir = filepath.Join(parent, filepath.Base(dir))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("%w: %v", errNoShare, err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// ErrForeign refuses a rendezvous that someone else could have prepared:
// a directory or socket owned by another user, or open to others, or a
// socket served by another user's process or another program.
var ErrForeign = errors.New("not the running user's own")

// checkPrivateDir checks that dir is a directory (not a link to one), owned by
// the running user and closed to everyone else: whoever could add a name
// to it could stand in for a plugin.
func checkPrivateDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("%w: %v", errNoShare, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s is %w: it is not a directory", dir, ErrForeign)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s is %w: it belongs to uid %d", dir, ErrForeign, st.Uid)
	case st.Mode&0o077 != 0:
		return fmt.Errorf("%s is %w: its mode %04o lets others in", dir, ErrForeign, st.Mode&0o7777)
	}
	return nil
}

// sharedName is the name, in the shared directory, of the plugin for
// backend name run from the binary bin (its identity as fstat gave it:
// a new build is a new file, or at least a new change time), pinned to
// sum, and configured with settings, for hosts in the context view (see
// hostView). Hashing the binary's content would be surer and cost
// milliseconds each command; a replaced binary has a new inode or change
// time however it is replaced.
func sharedName(name string, bin *unix.Stat_t, sum string, settings, view []byte) string {
	h := sha256.New()
	h.Write(view)
	fmt.Fprintf(h, "lockmgr shared plugin\x00protocol %d\x00%s\x00%d:%d\x00%d\x00%d.%d\x00%d.%d\x00%s\x00",
		pluginrpc.ProtocolVersion, name, bin.Dev, bin.Ino, bin.Size,
		bin.Mtim.Sec, bin.Mtim.Nsec, bin.Ctim.Sec, bin.Ctim.Nsec, sum)
	h.Write(settings)
	return name + "-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// sharedConn is a connection to a shared plugin, checked to be served by
// the plugin binary the host verified, run by the same user.
type sharedConn struct {
	file *os.File // the host's end of the session
	pid  int

	mu    sync.Mutex
	pidfd int // the plugin process, to kill it by, never by pid; -1 once closed
}

// errNobody means no plugin listens at a socket's name.
var errNobody = errors.New("no plugin listens there")

// dialShared connects to the shared plugin at sock and checks who serves
// it: the running user (SO_PEERCRED), in a process that executes the very
// binary bin.
func dialShared(sock string, bin *unix.Stat_t) (*sharedConn, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: socket: %v", errNoShare, err)
	}
	fail := func(err error) (*sharedConn, error) {
		unix.Close(fd)
		return nil, err
	}
	// A blocking connect: a plugin's backlog is the system's most, and
	// a host that finds it full waits for the plugin to take its turn.
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: sock})
	for errors.Is(err, unix.EINTR) {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: sock})
	}
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ECONNREFUSED):
		return fail(errNobody)
	case err != nil:
		return fail(fmt.Errorf("%w: connecting to %s: %v", errNoShare, sock, err))
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fail(fmt.Errorf("%w: asking who serves %s: %v", errNoShare, sock, err))
	}
	if int(cred.Uid) != os.Geteuid() {
		return fail(fmt.Errorf("%s is %w: it is served by uid %d", sock, ErrForeign, cred.Uid))
	}
	pidfd, err := unix.PidfdOpen(int(cred.Pid), 0)
	if err != nil {
		return fail(fmt.Errorf("%w: %s: the plugin (pid %d): %v", errNoShare, sock, cred.Pid, err))
	}
	// Checked after the pidfd is open, so that the process checked is the
	// one the pidfd names: a pid reused meanwhile runs another binary.
	var exe unix.Stat_t
	err = unix.Stat("/proc/"+strconv.Itoa(int(cred.Pid))+"/exe", &exe)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		// The plugin is exiting: its main thread has gone, and its
		// socket lives only until the last of its threads does.
		unix.Close(pidfd)
		return fail(errNobody)
	}
	if err == nil && (exe.Dev != bin.Dev || exe.Ino != bin.Ino) {
		err = fmt.Errorf("%w: pid %d runs another program", ErrForeign, cred.Pid)
	}
	if err != nil {
		unix.Close(pidfd)
		return fail(fmt.Errorf("%s is not served by its plugin: %w", sock, err))
	}
	return &sharedConn{file: os.NewFile(uintptr(fd), "session"), pid: int(cred.Pid), pidfd: pidfd}, nil
}

// kill ends the plugin with SIGKILL, through its pidfd: once it has
// exited, its pid may name another process. After close it does
// nothing: the descriptor's number may name another file by then.
func (c *sharedConn) kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pidfd < 0 {
		return nil
	}
	err := unix.PidfdSendSignal(c.pidfd, unix.SIGKILL, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// close lets go of the plugin process: this host is done with it.
func (c *sharedConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pidfd >= 0 {
		unix.Close(c.pidfd)
		c.pidfd = -1
	}
}

// sharedSpec is what a shared plugin is reached or started with.
type sharedSpec struct {
	name     string
	bin      *os.File // the verified binary, open
	st       unix.Stat_t
	sum      string
	settings []byte
	idle     time.Duration
}

// shared returns a connection to the shared plugin spec describes,
// starting it if none runs. Two hosts racing to start it start one: the
// start is settled by a lock on a file beside the socket, taken by
// whoever found nobody at the socket, and held until its plugin serves.
func shared(ctx context.Context, spec sharedSpec) (*sharedConn, error) {
	dir, err := sharedDir()
	if err != nil {
		return nil, err
	}
	view, err := hostView()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(dir, sharedName(spec.name, &spec.st, spec.sum, spec.settings, view))
	sock, lockPath := base+".sock", base+".lock"
	if len(sock) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("%w: %s is too long a name for a socket", errNoShare, sock)
	}
	if c, err := dialShared(sock, &spec.st); !errors.Is(err, errNobody) {
		return c, err
	}
	unlock, err := lockStart(ctx, lockPath)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another host may have started it while this one waited.
	if c, err := dialShared(sock, &spec.st); !errors.Is(err, errNobody) {
		return c, err
	}
	if spec.sum != "" {
		if err := checkSum(spec.bin, spec.sum); err != nil {
			if !errors.Is(err, errChecksum) {
				err = fmt.Errorf("%w: %v", ErrUnsafe, err)
			}
			return nil, err
		}
	}
	if err := startShared(ctx, spec, sock, lockPath); err != nil {
		return nil, err
	}
	return dialShared(sock, &spec.st)
}

// lockStart takes the start lock at path, waiting no longer than ctx
// allows, and returns its release.
func lockStart(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoShare, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || int(st.Uid) != os.Geteuid() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s is %w: it belongs to uid %d", path, ErrForeign, st.Uid)
		}
		return nil, err
	}
	key, err := lockfile.KeyOf(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %v", errNoShare, err)
	}
	w := lockwait.New(f, key)
	defer w.Close()
	err = w.Until(ctx, func() (bool, error) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EINTR) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: waiting for another host to start the plugin: %v", errNoShare, err)
	}
	return func() { f.Close() }, nil
}

// startShared starts a shared plugin listening at sock, and returns once
// it serves. The start lock is held: a name left at sock belongs to a
// plugin that is gone (nobody answered there), and is replaced.
//
// The socket is bound here and handed to the plugin, which listens on
// it: SO_PEERCRED names the process that listened, which hosts check.
// The plugin runs in a session of its own, with no terminal and no
// parent-death signal, its standard streams on /dev/null: it outlives
// this host, and answers to no host's signals.
func startShared(ctx context.Context, spec sharedSpec, sock, lockPath string) (err error) {
	defer func() {
		if err != nil {
			// No plugin listens on it: leave no name that looks like one.
			_ = os.Remove(sock)
		}
	}()
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: removing the stale socket: %v", errNoShare, err)
	}
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: socket: %v", errNoShare, err)
	}
	listener := os.NewFile(uintptr(lfd), "listener")
	defer listener.Close() // the plugin has its own copy
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: sock}); err != nil {
		return fmt.Errorf("%w: binding %s: %v", errNoShare, sock, err)
	}
	settingsR, settingsW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer settingsR.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		settingsW.Close()
		return err
	}
	defer readyR.Close()
	linkDir, err := makeSocketDir()
	if err != nil {
		settingsW.Close()
		readyW.Close()
		return err
	}
	defer os.RemoveAll(linkDir)
	// The plugin's descriptors: 3 the listener, 4 the settings, 5 the
	// ready pipe, 6 its binary, executed as startBinary does, through a
	// link named as the binary so that ps and lockmgr status know it.
	extra := []*os.File{listener, settingsR, readyW, spec.bin}
	self := "/proc/self/fd/" + strconv.Itoa(3+len(extra)-1)
	exe := self
	link := filepath.Join(linkDir, filepath.Base(spec.bin.Name()))
	if os.Symlink(self, link) == nil {
		exe = link
	}
	env := []string{
		pluginrpc.MagicCookieKey + "=" + pluginrpc.MagicCookieValue,
		pluginrpc.ListenEnv + "=3", pluginrpc.SettingsEnv + "=4", pluginrpc.ReadyEnv + "=5",
		pluginrpc.SocketEnv + "=" + sock, pluginrpc.StartLockEnv + "=" + lockPath,
		"GOMAXPROCS=1",
	}
	if spec.idle > 0 {
		env = append(env, pluginrpc.IdleEnv+"="+spec.idle.String())
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{spec.bin.Name()},
		Env:         env,
		Dir:         "/",
		ExtraFiles:  extra,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		settingsW.Close()
		return fmt.Errorf("starting %s: %w", spec.bin.Name(), err)
	}
	// Reaped here while this host lives; once it exits, by init.
	go func() { _ = cmd.Wait() }()
	_, werr := settingsW.Write(spec.settings)
	settingsW.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = readyR.SetReadDeadline(deadline)
	said, rerr := io.ReadAll(io.LimitReader(readyR, 4096))
	if string(said) == pluginrpc.ReadyOK {
		return nil
	}
	_ = cmd.Process.Kill()
	switch {
	case len(said) > 0:
		return fmt.Errorf("%w: %s refused to start as one: %s", errNoShare, spec.bin.Name(), strings.TrimSpace(string(said)))
	case rerr != nil:
		return fmt.Errorf("%w: %s did not say it was ready: %v", errNoShare, spec.bin.Name(), rerr)
	case werr != nil:
		return fmt.Errorf("%w: handing %s its settings: %v", errNoShare, spec.bin.Name(), werr)
	}
	return fmt.Errorf("%w: %s exited as it started", errNoShare, spec.bin.Name())
}

// hostView is what decides, beyond the user, what a plugin's open(2),
// connect(2) and lock calls do: the credentials and privileges of the
// process (every id, the groups, the capabilities, no_new_privs and
// seccomp, the security label), its umask, which sets a new lock file's
// mode, its namespaces (which files and which network it sees, and what
// its pids mean), its root directory, and its cgroup (a service's plugin
// ends with the service). A shared plugin does the work of every host
// that reaches it, so it is shared only among hosts whose view is the
// same as the one that started it: a host whose capabilities were
// dropped, or whose /tmp is its own, gets a plugin that sees what it
// sees, and can do what it can do, no more.
func hostView() ([]byte, error) {
	var b []byte
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoShare, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, _, _ := strings.Cut(line, ":")
		switch key {
		case "Umask", "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters":
			b = append(append(b, line...), 0)
		}
	}
	for _, ns := range []string{"mnt", "net", "pid", "user", "ipc"} {
		link, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNoShare, err)
		}
		b = append(append(b, link...), 0)
	}
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoShare, err)
	}
	b = fmt.Appendf(b, "root %d:%d\x00", root.Dev, root.Ino)
	for _, f := range []string{"/proc/self/cgroup", "/proc/self/attr/current"} {
		// attr/current is refused without a security module.
		data, _ := os.ReadFile(f)
		b = append(append(b, data...), 0)
	}
	return b, nil
}
