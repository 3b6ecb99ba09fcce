package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"golang.org/x/sys/unix"
)

// Options configure a Host.
type Options struct {
	// Dirs are searched for plugin binaries, in order; see SearchPath.
	Dirs []string
	// Checksums pins plugin binaries: backend name to the hex SHA-256 its
	// binary must have. A mismatch refuses the plugin.
	Checksums map[string]string
	// ShareLifeline asks for a keeper with every lock a plugin keeps
	// (backend.Held.Keeper), which the host may hand to a command so that
	// that lock, and no other, lives as long as the command, even after
	// the host is killed; it turns off Pdeathsig, which would end the
	// plugin with the host regardless. The plugin releases every other
	// lock when the host's session ends.
	ShareLifeline bool
	// CancelTimeout bounds the wait for a plugin's answer to a cancel;
	// a plugin that does not answer in time is killed and its locks
	// announced lost. Zero means pluginrpc.DefaultCancelTimeout.
	CancelTimeout time.Duration
	// ExtraFiles are handed to every plugin started as descriptors
	// FirstExtraFD (4), 5, and so on (descriptor 3 is the lifeline): how
	// `lockmgr lock --fd` passes the shell's open file to the backend.
	ExtraFiles []*os.File
	// Settings maps a backend name to the settings its plugin is
	// configured with as it starts (backend.Configurer), a JSON object.
	// A backend with none is not configured at all, which costs no round
	// trip.
	Settings map[string][]byte
	// StartTimeout bounds a plugin's start; zero means 10 seconds.
	StartTimeout time.Duration
	// Logger receives the plugin lifecycle; nil means pluginrpc.NewLogger.
	Logger hclog.Logger
	// Shared has a backend whose locks can be shared between hosts (all
	// but posix, whose locks belong to the process that takes them)
	// served by the user's shared plugin for it, started if none runs
	// (shared.go), rather than by a plugin of this host's own, started
	// for it and ended with it. A host that hands its plugin files
	// (ExtraFiles) has its own regardless.
	Shared bool
	// Idle is how long a shared plugin this host starts lives on with no
	// host connected; zero means pluginrpc.DefaultIdle.
	Idle time.Duration
}

// Host runs backend plugins for one process.
type Host struct {
	opts     Options
	mu       sync.Mutex
	running  map[string]*Plugin
	starting map[string]*start
}

// start is a plugin start in progress, which every GetContext for its
// backend waits on, each no longer than its own context allows, while
// the start itself runs to its end (Options.StartTimeout) on a goroutine
// of its own.
type start struct {
	done chan struct{} // closed, under Host.mu, once p or err is set
	// waiters counts the callers still waiting; each is given one use of
	// p. Guarded by Host.mu.
	waiters int
	p       *Plugin
	err     error
}

// New returns a Host with opts.
func New(opts Options) *Host {
	if opts.Logger == nil {
		opts.Logger = pluginrpc.NewLogger("lockmgr")
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 10 * time.Second
	}
	return &Host{opts: opts, running: make(map[string]*Plugin), starting: make(map[string]*start)}
}

// Plugin is a running backend plugin. It implements backend.LockMgr
// through its embedded *pluginrpc.Client.
type Plugin struct {
	*pluginrpc.Client
	// Name is the backend's name, Path its binary.
	Name string
	Path string

	host    *Host
	refs    int
	gp      interface{ Kill() }        // go-plugin's client of a private plugin
	conn    interface{ Close() error } // its gRPC connection
	proc    *process
	shared  *sharedConn // a shared plugin's, instead of gp, conn and proc
	stopped bool
}

// Get is GetContext with no end but Options.StartTimeout, for a caller
// with no context to honour.
func (h *Host) Get(name string) (*Plugin, error) {
	return h.GetContext(context.Background(), name)
}

// GetContext returns the running plugin for backend name, starting it if
// need be. Each GetContext that returns a plugin must be matched by one
// Done.
//
// It waits for a start no longer than ctx allows: once ctx ends it returns
// an error wrapping backend.ErrTimeout or backend.ErrCanceled (and
// ctx's own error), and the start goes on without it, for the other
// callers waiting on it; a plugin whose every caller gave up is stopped as
// soon as it has started. Calls for other backends, and a Close of
// whatever waits, never wait for it.
func (h *Host) GetContext(ctx context.Context, name string) (*Plugin, error) {
	if ctx.Err() != nil {
		return nil, h.gaveUp(ctx, name)
	}
	h.mu.Lock()
	if p := h.running[name]; p != nil {
		select {
		case <-p.Dead():
			// Died since last use: start afresh below.
			delete(h.running, name)
		default:
			p.refs++
			h.mu.Unlock()
			return p, nil
		}
	}
	s := h.starting[name]
	if s == nil {
		s = &start{done: make(chan struct{})}
		h.starting[name] = s
		go h.run(name, s)
	}
	s.waiters++
	h.mu.Unlock()

	select {
	case <-s.done:
		return s.p, s.err
	case <-ctx.Done():
	}
	h.mu.Lock()
	select {
	case <-s.done:
		// The start ended as ctx did, and counted this caller in: give
		// back the use it was given.
		h.mu.Unlock()
		if s.p != nil {
			s.p.Done()
		}
	default:
		s.waiters--
		h.mu.Unlock()
	}
	return nil, h.gaveUp(ctx, name)
}

func (h *Host) gaveUp(ctx context.Context, name string) error {
	return backend.Errorf("start", "", name, fmt.Errorf("%w, while the plugin was starting: %w", backend.WaitError(ctx), ctx.Err()))
}

// run starts backend name's plugin for s and hands it to s's waiters,
// one use each; with none left, it stops the plugin again.
func (h *Host) run(name string, s *start) {
	p, err := h.start(name)
	h.mu.Lock()
	delete(h.starting, name)
	s.p, s.err = p, err
	abandoned := err == nil && s.waiters == 0
	if err == nil && !abandoned {
		p.refs = s.waiters
		h.running[name] = p
		go func() {
			<-p.Dead()
			h.opts.Logger.Debug("plugin gone", "backend", name)
			h.mu.Lock()
			if h.running[name] == p {
				delete(h.running, name)
			}
			h.mu.Unlock()
		}()
	}
	if abandoned {
		s.p = nil
	}
	close(s.done)
	h.mu.Unlock()
	if abandoned {
		h.opts.Logger.Debug("plugin started for callers that gave up", "backend", name)
		p.stop()
	}
}

func rejected(name string, format string, args ...any) error {
	return backend.Errorf("start", "", name, fmt.Errorf("%w: %s", backend.ErrPluginRejected, fmt.Sprintf(format, args...)))
}

func (h *Host) start(name string) (*Plugin, error) {
	path, err := Find(name, h.opts.Dirs)
	if err != nil {
		return nil, err
	}
	if err := Verify(path); err != nil {
		return nil, rejected(name, "%v", err)
	}
	sum := h.opts.Checksums[name]
	if sum != "" {
		if want, err := hex.DecodeString(sum); err != nil || len(want) != sha256.Size {
			return nil, rejected(name, "pinned sha256 %q is not 64 hex digits", sum)
		}
		sum = strings.ToLower(sum)
	}
	if h.sharable(name) {
		p, err := h.startShared(name, path, sum)
		if err == nil || !errors.Is(err, errNoShare) && !errors.Is(err, ErrForeign) {
			return p, err
		}
		h.opts.Logger.Warn("using a private plugin", "backend", name, "reason", err)
	}
	return h.startPrivate(name, path, sum)
}

// sharable says whether backend name's plugin is the user's shared one.
// posix's locks belong to the process that takes them: in one plugin
// serving two hosts, the kernel would let the second take the lock the
// first holds. A third-party backend whose locks are so refuses to start
// as a shared plugin (plugin.Serve), and gets a private one.
func (h *Host) sharable(name string) bool {
	return h.opts.Shared && len(h.opts.ExtraFiles) == 0 && name != "posix"
}

// startShared connects to the user's shared plugin for backend name,
// starting it if none runs.
func (h *Host) startShared(name, path, sum string) (*Plugin, error) {
	// Not hashed here against a pin: a running plugin was started from
	// this very file (the socket's name holds its inode and change time,
	// which any write moves on) by a host that checked the pin, which the
	// name holds too. A start checks it (shared).
	bin, err := openBinary(path, "")
	switch {
	case errors.Is(err, errChecksum):
		return nil, rejected(name, "%s does not match its pinned sha256", path)
	case err != nil:
		return nil, rejected(name, "%v", err)
	}
	defer bin.Close()
	spec := sharedSpec{name: name, bin: bin, sum: sum, settings: h.opts.Settings[name], idle: h.opts.Idle}
	if err := unix.Fstat(int(bin.Fd()), &spec.st); err != nil {
		return nil, backend.Errorf("start", "", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.StartTimeout)
	defer cancel()
	// A plugin may exit idle just as this host connects: its connection
	// is reset, and the next try starts a new plugin.
	p, err := h.connectShared(ctx, name, path, spec)
	if errors.Is(err, pluginrpc.ErrPluginExited) {
		p, err = h.connectShared(ctx, name, path, spec)
	}
	return p, err
}

// connectShared connects to the shared plugin spec describes, starting
// it if none runs, and opens this host's session with it.
func (h *Host) connectShared(ctx context.Context, name, path string, spec sharedSpec) (*Plugin, error) {
	conn, err := shared(ctx, spec)
	switch {
	case errors.Is(err, errChecksum):
		return nil, rejected(name, "%s does not match its pinned sha256", path)
	case err != nil:
		return nil, err
	}
	client := pluginrpc.NewSessionClient()
	client.SetName(name)
	logger := h.opts.Logger.Named(name)
	if err := client.StartSession(conn.file, pluginrpc.SessionOptions{
		// A plugin that breaks the protocol is broken for every host:
		// killing it makes each of them start afresh.
		Kill:          func() { _ = conn.kill() },
		CancelTimeout: h.opts.CancelTimeout,
		Keepers:       h.opts.ShareLifeline,
		OnFailure:     func(err error) { logger.Error("plugin killed", "reason", err) },
	}); err != nil {
		conn.close()
		return nil, rejected(name, "%s: opening its session: %s", path, firstLine(err.Error()))
	}
	// A plugin that took the connection but does not answer (stopped, or
	// stuck) would hold every call of this host, and a lock wait cannot
	// tell silence from a lock held long: it must answer in time, or this
	// host goes its own way with a private plugin.
	answered := make(chan error, 1)
	go func() {
		_, err := client.Stat(context.Background())
		answered <- err
	}()
	timer := time.NewTimer(sharedAnswerTimeout)
	defer timer.Stop()
	select {
	case err = <-answered:
	case <-timer.C:
		err = fmt.Errorf("no answer in %v", sharedAnswerTimeout)
	}
	if err != nil {
		// Ending the session, not the plugin: it may only be slow, and
		// it serves other hosts.
		client.MarkDead()
		conn.close()
		return nil, fmt.Errorf("%w: the shared plugin (pid %d): %w", errNoShare, conn.pid, err)
	}
	h.opts.Logger.Debug("connected to the shared plugin", "backend", name, "pid", conn.pid)
	return &Plugin{Client: client, Name: name, Path: path, host: h, shared: conn}, nil
}

// sharedAnswerTimeout bounds a shared plugin's answer to a host that has
// just connected to it; one that does not answer in time is left to its
// other hosts, and this one starts a private plugin.
const sharedAnswerTimeout = 2 * time.Second

// Shared says whether p is the user's shared plugin, which serves other
// hosts too, rather than this host's own.
func (p *Plugin) Shared() bool { return p.shared != nil }

// Done gives up one use of p; the last one stops the plugin, without
// waiting for it to exit, by ending its session: the plugin releases
// every lock it keeps for this host but one whose keeper is still open,
// and exits once it keeps none. So Done must come after every lock of p
// is released, or handed on.
func (p *Plugin) Done() { p.done() }

// DoneAndWait is Done, and then, if that was the last use, waits until
// the plugin process has exited: for a host that handed the plugin a
// caller's open file (Options.ExtraFiles), whose copy in the plugin keeps
// a flock or OFD lock on it alive after the caller has closed its own.
// `lockmgr lock --fd 9` must not return to a shell that then closes 9 and
// expects the lock gone while its plugin still holds a copy.
func (p *Plugin) DoneAndWait() {
	if p.done() && p.gp != nil {
		// The plugin exits on its own once its lifeline closes; go-plugin's
		// Kill returns once it has been reaped, killing it only if it
		// dawdles.
		p.gp.Kill()
	}
}

// done gives up one use of p, stops it after the last, and reports
// whether that was the last.
func (p *Plugin) done() bool {
	h := p.host
	h.mu.Lock()
	p.refs--
	last := p.refs == 0
	if last && h.running[p.Name] == p {
		delete(h.running, p.Name)
	}
	h.mu.Unlock()
	if last {
		p.stop()
	}
	return last
}

func (p *Plugin) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	p.host.opts.Logger.Debug("stopping plugin", "backend", p.Name)
	// Ending the session (closing our end of the lifeline) is the
	// plugin's signal to release what it keeps for us and exit, once no
	// keeper holds a lock.
	p.MarkDead()
	if p.conn != nil {
		// gRPC's Close waits for its resolver and balancer goroutines to
		// finish; nothing here needs to wait for that.
		go p.conn.Close()
	}
	if p.shared != nil {
		p.shared.close()
		return
	}
	os.RemoveAll(p.proc.SocketDir)
}

// Kill ends the plugin process at once, with SIGKILL, for a host that
// must not leave it running. It signals through the
// process handle the plugin was started with (a pidfd on Linux), never by
// pid: once the plugin has exited and been reaped, its pid may belong to
// another process, and Kill then does nothing (os.ErrProcessDone).
func (p *Plugin) Kill() error {
	kill := func() error { return p.proc.Kill(context.Background()) }
	if p.shared != nil {
		kill = p.shared.kill
	}
	if err := kill(); err != nil {
		return fmt.Errorf("killing the %s plugin: %w", p.Name, err)
	}
	return nil
}

// PID returns the plugin process's pid, or 0 if unknown: for messages
// and for reading /proc, never for signalling (Kill).
func (p *Plugin) PID() int {
	if p.shared != nil {
		return p.shared.pid
	}
	return p.proc.PID()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, ".")
}
