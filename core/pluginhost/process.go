package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"golang.org/x/sys/unix"
)

// errChecksum means a plugin binary does not have its pinned SHA-256.
var errChecksum = errors.New("does not match its pinned sha256")

// A plugin's descriptors, as startBinary lays them out through
// exec.Cmd's ExtraFiles (which start at 3): its end of the lifeline, then
// Options.ExtraFiles in order, then its own binary.
const (
	lifelineFD = 3
	// FirstExtraFD is the descriptor at which the first of
	// Options.ExtraFiles reaches the plugin: what a request names
	// (backend.Request.FD) to lock the file handed over.
	FirstExtraFD = lifelineFD + 1
)

// baseEnv is lockmgr's part of a plugin's environment: the lifeline on
// descriptor 3, one P (a plugin's work is a few syscalls per call, and on
// one P handing a message between goroutines is a run-queue switch rather
// than a thread wake-up: a lock round trip measured 20% faster; set here
// rather than by runtime.GOMAXPROCS, whose stop-the-world cost half a
// millisecond of every start), and the log level. Nothing of the host's
// own environment leaks in.
func baseEnv() []string {
	env := []string{pluginrpc.LifelineEnv + "=" + strconv.Itoa(lifelineFD), "GOMAXPROCS=1"}
	if lvl := os.Getenv(pluginrpc.LogEnv); lvl != "" {
		env = append(env, pluginrpc.LogEnv+"="+lvl)
	}
	return env
}

// procSpec says how to start one plugin process.
type procSpec struct {
	// Path is the plugin binary, already found and verified.
	Path string
	// SHA256 is the hex digest Path must have, or "" when not pinned.
	SHA256 string
	// Env is the whole environment but for the socket directory, which
	// every start makes afresh.
	Env []string
	// ShareLifeline leaves out Pdeathsig (pluginrpc.HostDeathSignal), so
	// that a lock whose keeper the host handed on (lockmgr run's command
	// holds it) outlives the host.
	ShareLifeline bool
	// ExtraFiles become descriptors FirstExtraFD (4), 5, ... of the
	// plugin: how `lockmgr lock --fd` hands over the shell's file.
	ExtraFiles []*os.File
}

// process is a started plugin process. It satisfies go-plugin's
// runner.Runner, so that go-plugin reads the handshake from a process
// started with the host's own checks (startProcess).
type process struct {
	path   string
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr io.ReadCloser
	// Lifeline is the host's end of the plugin's lifeline socket pair.
	Lifeline *os.File
	// SocketDir is the private directory the plugin's socket goes in.
	SocketDir string
	// exited is closed once the process has exited and been reaped
	// (go-plugin calls Wait as soon as it has started it).
	exited chan struct{}
}

// startProcess starts the plugin process spec describes, with a fresh private
// socket directory: the binary opened once, checked as Verify would
// check it (the path, then the open file itself) and against its pin, if
// any, and that same open file executed, so that a file swapped in at the
// path meanwhile is never the one that runs. It runs with its lifeline,
// in a process group of its own (so that the terminal's signals, meant
// for the command lockmgr runs, do not reach it), with
// pluginrpc.HostDeathSignal as Pdeathsig unless the lifeline is to be
// shared. The fork happens on a thread that lives as long as the process,
// whichever goroutine calls startProcess.
func startProcess(spec procSpec) (*process, error) {
	bin, err := openBinary(spec.Path, spec.SHA256)
	if err != nil {
		return nil, err
	}
	defer bin.Close() // the plugin has its own copy
	return startBinary(spec, bin)
}

// openBinary opens the plugin binary at path for startProcess: the path
// checked as Verify does, then the open file (fstat) as the file it
// resolved to, and hashed against sum unless sum is "". A file that cannot
// be read (mode 0711) is opened only to be executed (O_PATH), unless
// pinned.
func openBinary(path, sum string) (*os.File, error) {
	real, lst, err := resolveTrusted(path)
	if err != nil {
		return nil, err
	}
	if err := checkBinary(real, lst); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrPermission) && sum == "" {
		f, err = os.OpenFile(real, unix.O_PATH|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if !os.SameFile(st, lst) {
		return fail(fmt.Errorf("%w: %s was replaced while it was being checked", ErrUnsafe, real))
	}
	if err := checkBinary(real, st); err != nil {
		return fail(err)
	}
	if sum != "" {
		if err := checkSum(f, sum); err != nil {
			return fail(err)
		}
	}
	return f, nil
}

// checkSum checks that the binary open as f has the hex SHA-256 sum.
func checkSum(f *os.File, sum string) error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return fmt.Errorf("hashing %s: %w", f.Name(), err)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("%s %w", f.Name(), errChecksum)
	}
	return nil
}

// startBinary runs bin, the plugin binary open for spec, as startProcess
// describes.
//
// The kernel executes an open file through /proc/self/fd/N: bin goes to
// the plugin as its last descriptor, and the plugin process executes its
// own copy (the host's descriptor numbers mean nothing in the child,
// whose table the fork rearranges). Executed by that name, the plugin
// would be called "N" in ps and /proc/PID/comm, which lockmgr status
// reads; so it is executed through a link named as the binary, in the
// plugin's private socket directory, pointing to /proc/self/fd/N. The
// descriptor stays open in the plugin, which a script plugin's
// interpreter needs (it opens the script by that name).
func startBinary(spec procSpec, bin *os.File) (*process, error) {
	socketDir, err := makeSocketDir()
	if err != nil {
		return nil, err
	}
	p := &process{SocketDir: socketDir, path: spec.Path, exited: make(chan struct{})}
	fail := func(err error) (*process, error) {
		p.Discard()
		return nil, err
	}
	lifeR, lifeW, err := lifeline()
	if err != nil {
		return fail(fmt.Errorf("lifeline: %w", err))
	}
	defer lifeR.Close() // the plugin has its own copy
	p.Lifeline = lifeW

	extra := append(append([]*os.File{lifeR}, spec.ExtraFiles...), bin)
	self := "/proc/self/fd/" + strconv.Itoa(lifelineFD+len(extra)-1)
	exe := self
	// Nobody else can replace a name in socketDir (makeSocketDir).
	link := filepath.Join(socketDir, filepath.Base(spec.Path))
	if os.Symlink(self, link) == nil {
		exe = link
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{spec.Path},
		Env:         append(slices.Clip(spec.Env), pluginrpc.SocketDirEnv+"="+socketDir, pluginrpc.LifelineHostEnv+"="+hostEnd(lifeW)),
		ExtraFiles:  extra,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if !spec.ShareLifeline {
		cmd.SysProcAttr.Pdeathsig = pluginrpc.HostDeathSignal
	}
	if p.stdout, err = cmd.StdoutPipe(); err != nil {
		return fail(err)
	}
	if p.stderr, err = cmd.StderrPipe(); err != nil {
		return fail(err)
	}
	onForkThread(func() { err = cmd.Start() })
	if err != nil {
		if _, serr := os.Stat("/proc/self/fd"); serr != nil {
			err = fmt.Errorf("%w (lockmgr executes a plugin through /proc/self/fd, and /proc is not mounted)", err)
		}
		return fail(fmt.Errorf("starting %s: %w", spec.Path, err))
	}
	p.cmd = cmd
	return p, nil
}

// lifeline makes a plugin's lifeline: a SOCK_SEQPACKET socket pair, both
// ends close-on-exec. The plugin's end (its descriptor 3) reads end of
// file once every copy of the host's end is closed, which is how a plugin
// learns that its host is gone; and it is the session every lock travels
// on, locked descriptors included, which gRPC cannot carry (see
// core/lockpb).
func lifeline() (plugin, host *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "lifeline"), os.NewFile(uintptr(fds[1]), "lifeline"), nil
}

// hostEnd names f as /proc/self/fd shows it.
func hostEnd(f *os.File) string {
	link, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	return link
}

// forkThread is the goroutine, locked to its OS thread for the life of
// the process, that forks every plugin (see pluginrpc.HostDeathSignal).
var forkThread struct {
	once  sync.Once
	calls chan func()
}

// onForkThread runs f on forkThread, and returns when f has.
func onForkThread(f func()) {
	forkThread.once.Do(func() {
		forkThread.calls = make(chan func())
		go func() {
			// Never unlocked, and the goroutine never returns: the thread
			// is this goroutine's alone, and ends only with the process.
			runtime.LockOSThread()
			for call := range forkThread.calls {
				call()
			}
		}()
	})
	done := make(chan struct{})
	forkThread.calls <- func() {
		defer close(done)
		f()
	}
	<-done
}

// PID returns the plugin's process id, or 0 before it started.
func (p *process) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Discard ends a process no host will use: it kills the plugin, reaps
// it without waiting, and Abandons it.
func (p *process) Discard() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		go func() { _ = p.cmd.Wait() }()
	}
	p.Abandon()
}

// Abandon closes the lifeline, which ends the plugin's session, and removes the socket directory, leaving the process to
// whoever waits for it (go-plugin, once it has been given the process).
func (p *process) Abandon() {
	if p.Lifeline != nil {
		p.Lifeline.Close()
	}
	if p.SocketDir != "" {
		os.RemoveAll(p.SocketDir)
	}
}

// Start is go-plugin's runner.Runner Start: the process is already
// running.
func (p *process) Start(context.Context) error { return nil }

// Wait waits for the process to exit, for go-plugin's runner.Runner.
func (p *process) Wait(context.Context) error {
	defer close(p.exited)
	return p.cmd.Wait()
}

// Kill kills the process, for go-plugin's runner.Runner and for a host
// that must end its plugin. It signals through the *os.Process that
// started it, which on Linux holds a pidfd, and does nothing once the
// process has been reaped: a pid, once reaped, may name another process.
func (p *process) Kill(context.Context) error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Stdout is the plugin's standard output, where go-plugin reads its
// handshake.
func (p *process) Stdout() io.ReadCloser { return p.stdout }

// Stderr is the plugin's standard error, which go-plugin relays to the
// host's log.
func (p *process) Stderr() io.ReadCloser { return p.stderr }

// Name is the plugin binary's path, for go-plugin's log lines.
func (p *process) Name() string { return p.path }

// ID is the plugin's pid, as go-plugin's runner.Runner reports it.
func (p *process) ID() string { return strconv.Itoa(p.PID()) }

// errNotThePlugin is the cause of a refused connection: the socket the
// plugin named is served by some other process.
var errNotThePlugin = errors.New("is not served by the plugin lockmgr started")

// Dial connects to the plugin at addr, the address it gave in its
// handshake, and makes sure that what answers is this process, run by
// this user (SO_PEERCRED), before anything is sent: the name of a Unix
// socket is only a name, and a process that could replace it would
// otherwise answer for the plugin (grant every lock, hold none).
func (p *process) Dial(ctx context.Context, addr net.Addr) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, addr.Network(), addr.String())
	if err != nil {
		return nil, err
	}
	if err := p.checkPeer(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (p *process) checkPeer(conn net.Conn) error {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("%s %w: not a Unix socket", conn.RemoteAddr(), errNotThePlugin)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("asking who serves %s: %w", conn.RemoteAddr(), credErr)
	}
	if int(cred.Pid) != p.PID() || int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("%s %w (pid %d): it is served by pid %d, uid %d", conn.RemoteAddr(), errNotThePlugin, p.PID(), cred.Pid, cred.Uid)
	}
	return nil
}

// Diagnose adds nothing to go-plugin's error messages.
func (p *process) Diagnose(context.Context) string { return "" }

// PluginToHost returns the plugin's address as it is: host and plugin
// share the file system.
func (p *process) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

// HostToPlugin returns the host's address as it is.
func (p *process) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// maxSocketDir bounds the directory the plugin's socket goes in: a Unix
// socket's path must fit in sun_path's 108 bytes, and beyond it the
// plugin fails to listen and the handshake fails with no useful message.
// go-plugin names the socket "pluginNNNNNNNNNN" inside our "lockmgr-NNNNNNNNNN".
const maxSocketDir = 108 - len("/lockmgr-1234567890/plugin1234567890") - 1

// socketParentDir returns the directory that a plugin's private socket
// directory is made in, unless it cannot take one (see makeSocketDir):
// the first of $XDG_RUNTIME_DIR, $TMPDIR, /tmp and /dev/shm that is trusted and
// writable. Trusted is what Verify asks of a directory looked through:
// every name on the way, and the directory itself, owned by root or the
// running user, and not writable by others unless sticky, where others
// may add names but never rename or remove ours. Root whose environment
// still names a user's directory (su keeps XDG_RUNTIME_DIR, pam_tmpdir
// sets TMPDIR) would otherwise put its socket where that user could swap
// it for one of their own. /dev/shm is last because it is where a
// service whose file system is read-only but for /dev
// (ProtectSystem=strict) can still write, as flock(1) needs nothing of
// the kind.
func socketParentDir() (string, error) {
	var tried []string
	for _, c := range socketCandidates() {
		dir, err := trustedParent(c.dir)
		if err == nil {
			return dir, nil
		}
		tried = append(tried, c.name+": "+err.Error())
	}
	return "", fmt.Errorf("no private place for the plugin's socket: %s", strings.Join(tried, "; "))
}

// makeSocketDir makes a private socket directory in the first place
// socketParentDir would choose where a directory can be made (a trusted
// place may still be full, or read-only): a plugin's own, and the one the
// host has go-plugin make its directory in (Host.start), so that go-plugin
// follows the same fallback rather than fail a start where the plugin's
// own directory could be made. The caller removes it.
func makeSocketDir() (string, error) {
	var tried []string
	for _, c := range socketCandidates() {
		parent, err := trustedParent(c.dir)
		if err == nil {
			var dir string
			if dir, err = os.MkdirTemp(parent, "lockmgr-"); err == nil {
				return dir, nil
			}
			err = errors.Unwrap(err) // the *PathError names the directory
		}
		tried = append(tried, c.name+": "+err.Error())
	}
	return "", fmt.Errorf("no private place for the plugin's socket: %s", strings.Join(tried, "; "))
}

type socketCandidate struct{ name, dir string }

// socketCandidates lists where a socket directory may go, in order.
// $XDG_RUNTIME_DIR is private to the user and emptied at logout; the
// host removes its directory once connected in any case.
func socketCandidates() []socketCandidate {
	var out []socketCandidate
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		out = append(out, socketCandidate{"$XDG_RUNTIME_DIR (" + d + ")", d})
	}
	if d := os.Getenv("TMPDIR"); d != "" {
		out = append(out, socketCandidate{"$TMPDIR (" + d + ")", d})
	}
	return append(out, socketCandidate{"/tmp", "/tmp"}, socketCandidate{"/dev/shm", "/dev/shm"})
}

// trustedParent checks dir as socketParentDir describes, and that this
// process may make a directory in it, and returns its real path.
func trustedParent(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("not an absolute path")
	}
	real, st, err := resolveTrusted(dir)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s is not a directory", real)
	}
	if err := trustedDir(real, st, ""); err != nil {
		return "", err
	}
	if len(real) > maxSocketDir {
		return "", fmt.Errorf("%s is too long a path for a socket (at most %d bytes)", real, maxSocketDir)
	}
	// access(2) also says EROFS for a read-only file system.
	if err := unix.Access(real, unix.W_OK|unix.X_OK); err != nil {
		return "", fmt.Errorf("%s: %w", real, err)
	}
	return real, nil
}
