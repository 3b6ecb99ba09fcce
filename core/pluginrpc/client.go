package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/protobuf/proto"
)

// DefaultCancelTimeout is how long a host waits for the answer to a
// cancel before it gives the plugin up (SessionOptions.CancelTimeout).
// Long enough for an etcd backend to give back a lease over a slow
// network; short enough that a person at a terminal sees ^C work.
const DefaultCancelTimeout = 10 * time.Second

// Client is the host side of a backend plugin. It implements
// backend.LockMgr: locks travel on the session (StartSession), the rest
// on the plugin's ControlPlane if it has one, else on the session too. It notices the plugin's death, and
// ends the plugin itself on any breach of the protocol: every lock the
// plugin kept then reports loss.
type Client struct {
	plane ControlPlane
	name  string

	conn *packetConn
	opts SessionOptions
	// readMu is held while packets are taken off the session and
	// dispatched, so that they are dispatched in the order sent.
	readMu sync.Mutex
	// The reader's role (reader.go), guarded by roleMu.
	roleMu         sync.Mutex
	reading        bool          // the role is taken
	bgReading      bool          // by the background reader
	callersWaiting int           // callers waiting for an answer
	roleWanted     int           // callers waiting for the role
	roleFreed      chan struct{} // closed and replaced when the role is let go to a caller
	bgWake         chan struct{} // closed and replaced when the background reader's turn comes
	kickFD         int           // an eventfd that ends the holder's wait
	keptCount      atomic.Int32  // len(kept): the background reads only while it is not 0

	mu    sync.Mutex
	calls map[uint64]*pendingCall  // awaiting an answer
	kept  map[uint64]chan struct{} // granted locks the plugin keeps, by handle
	dead  chan struct{}            // closed once the plugin is gone
	cause error                    // why, once dead
	// What the plugin declared of hand-over, once asked (handsOver).
	handsOverKnown, declaresHandOver bool
}

var _ backend.LockMgr = (*Client)(nil)

// SessionOptions configure a Client's session.
type SessionOptions struct {
	// Kill ends the plugin process at once. The session calls it when the
	// plugin breaks the protocol or does not answer a cancel in time, and
	// the plugin's locks are then announced lost: a plugin that
	// misbehaves once is never trusted with a lock again.
	Kill func()
	// CancelTimeout bounds the wait for a cancel's answer; zero means
	// DefaultCancelTimeout.
	CancelTimeout time.Duration
	// Keepers asks the plugin for a keeper with every lock it keeps
	// (backend.Held.Keeper), for a host that may hand a lock to a command
	// that outlives it.
	Keepers bool
	// OnFailure, if set, hears why the session ended, when it was not the
	// plugin's plain exit.
	OnFailure func(error)
}

// pendingCall is a call sent and not yet answered.
type pendingCall struct {
	acquire bool
	control bool   // a describe, inspect or stat, on a shared plugin's session
	handle  uint64 // the acquire's handle, or the release's
	answer  chan reply
	ready   chan struct{} // closed once answer has the answer
	// sole is made when a handed-over grant is delivered, and closed when
	// the plugin's copy_closed follows it (or the plugin is gone): the
	// call stays open until then. Guarded by Client.mu.
	sole chan struct{}
}

// reply is a call's answer as the session received it.
type reply struct {
	resp *lockpb.SessionResponse
	file *os.File      // the handed-over lock, for a grant that has one
	sole chan struct{} // closed once file is the only copy (pendingCall.sole)
	err  error         // the grant came, but its descriptor could not
}

// nextID numbers every handle and call of every Client in the process,
// so that an id is never valid on two plugin instances: a host's lock
// handed out by a plugin that has since died and been started afresh
// can never name a lock that the new plugin granted to someone else.
var nextID atomic.Uint64

// ControlPlane carries the calls that hold nothing to a plugin that has a
// channel for them beside its session: the gRPC connection of a plugin
// that go-plugin started (core/plugin). It answers with lockmgr's
// errors, naming backend name, never with a transport's own.
type ControlPlane interface {
	Describe(ctx context.Context, name string) (*lockpb.DescribeResponse, error)
	Inspect(ctx context.Context, name, path string) (*lockpb.InspectResponse, error)
	Configure(ctx context.Context, name string, settings []byte) error
}

// NewClient returns a Client whose control plane is plane. Call
// StartSession before locking.
func NewClient(plane ControlPlane) *Client {
	c := NewSessionClient()
	c.plane = plane
	return c
}

// NewSessionClient returns a Client whose control plane is its session,
// for a shared plugin, which serves no gRPC to its hosts. Call
// StartSession before any call.
func NewSessionClient() *Client {
	return &Client{
		calls: make(map[uint64]*pendingCall),
		kept:  make(map[uint64]chan struct{}),
		dead:  make(chan struct{}),

		roleFreed: make(chan struct{}),
		bgWake:    make(chan struct{}),
		kickFD:    -1,
	}
}

// SetName sets the backend name that errors name where the plugin's own
// answer does not (a call cut short by the plugin's death, say).
func (c *Client) SetName(name string) { c.name = name }

// StartSession starts the session on lifeline, the host's end of the
// plugin's SOCK_SEQPACKET lifeline, which the Client owns
// from now on (and closes when the session ends).
func (c *Client) StartSession(lifeline *os.File, opts SessionOptions) error {
	conn, err := newUnpolledConn(lifeline)
	if err != nil {
		c.die(err)
		return err
	}
	if opts.CancelTimeout == 0 {
		opts.CancelTimeout = DefaultCancelTimeout
	}
	kick, err := newKick()
	if err != nil {
		conn.close()
		c.die(err)
		return err
	}
	c.conn, c.opts, c.kickFD = conn, opts, kick
	go c.receive()
	return nil
}

// drain dispatches the packets waiting on fd, in order, and returns nil
// once none is left or done says its reader has what it came for, or the
// error that ends the session. c.readMu is
// held: whichever goroutine takes a packet dispatches it before another
// can take the next, so that packets are dispatched in the order sent.
func (c *Client) drain(fd int, done func() bool) error {
	for !done() {
		r, err := c.conn.recvNow(fd)
		if err == errAgain {
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.dispatch(r); err != nil {
			r.closeFiles()
			return err
		}
	}
	return nil
}

// ended ends the session for err, which drain or the poller returned.
func (c *Client) ended(err error) {
	switch {
	case c.isDead():
		// We ended the session ourselves (MarkDead): a normal stop, not
		// the plugin's failure.
	case isEOF(err):
		c.die(ErrPluginExited)
	default:
		c.fail(err)
	}
}

// dispatch checks one packet against the protocol and delivers it.
func (c *Client) dispatch(r received) error {
	resp := &lockpb.SessionResponse{}
	if err := proto.Unmarshal(r.data, resp); err != nil {
		return protocolErrorf("an unreadable answer: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if lost := resp.GetLost(); lost != nil {
		ch, ok := c.kept[lost.GetHandle()]
		switch {
		case resp.GetCall() != 0 || len(r.files) > 0 || r.rightsCut:
			return protocolErrorf("a loss notice with a call id or a descriptor")
		case !ok:
			return protocolErrorf("a loss notice for handle %d, which it does not keep", lost.GetHandle())
		}
		close(ch)
		delete(c.kept, lost.GetHandle())
		c.keptCount.Add(-1)
		return nil
	}
	pc, ok := c.calls[resp.GetCall()]
	if !ok {
		return protocolErrorf("an answer to call %d, which is not waiting for one", resp.GetCall())
	}
	if resp.GetCopyClosed() != nil {
		if pc.sole == nil || len(r.files) > 0 || r.rightsCut {
			return protocolErrorf("a copy_closed for call %d, which has no handed-over grant waiting for it", resp.GetCall())
		}
		delete(c.calls, resp.GetCall())
		close(pc.sole)
		return nil
	}
	if pc.sole != nil {
		return protocolErrorf("a second answer to call %d before copy_closed", resp.GetCall())
	}
	got := reply{resp: resp}
	switch res := resp.GetResult().(type) {
	case *lockpb.SessionResponse_Acquired:
		a := res.Acquired
		switch {
		case !pc.acquire:
			return protocolErrorf("a grant in answer to a release")
		case a.GetHandle() != pc.handle:
			return protocolErrorf("a grant of handle %d in answer to a request for %d", a.GetHandle(), pc.handle)
		case a.GetHandedOver() && len(r.files) == 1:
			// Delivered now, and the call kept open for copy_closed: the
			// lock is the host's from here, and only handing the file on
			// needs the plugin's copy gone (backend.Held.WaitSole). Waiting
			// here would put a second wake-up on every lock's path.
			got.file = r.files[0]
			pc.sole = make(chan struct{})
			got.sole = pc.sole
			pc.answer <- got
			close(pc.ready)
			return nil
		case a.GetHandedOver() && len(r.files) == 0 && r.rightsCut:
			// The kernel closed the descriptor for want of room here,
			// which released the lock: the grant failed.
			got.err = descriptorLimitError()
		case a.GetHandedOver():
			return protocolErrorf("a handed-over grant without its descriptor")
		case len(r.files) > 0 || r.rightsCut:
			return protocolErrorf("a descriptor with a grant it keeps")
		default:
			c.kept[pc.handle] = make(chan struct{})
			if c.keptCount.Add(1) == 1 {
				c.wakeBackground()
			}
		}
	case *lockpb.SessionResponse_Released:
		if pc.acquire || pc.control || len(r.files) > 0 || r.rightsCut {
			return protocolErrorf("a release answer to an acquire, or with a descriptor")
		}
	case *lockpb.SessionResponse_Described, *lockpb.SessionResponse_Inspected, *lockpb.SessionResponse_Stated:
		if !pc.control || len(r.files) > 0 || r.rightsCut {
			return protocolErrorf("a control answer to a lock's call, or with a descriptor")
		}
	case *lockpb.SessionResponse_Failure:
		if len(r.files) > 0 || r.rightsCut {
			return protocolErrorf("a descriptor with a failure")
		}
	default:
		return protocolErrorf("an answer of no known kind")
	}
	delete(c.calls, resp.GetCall())
	pc.answer <- got
	close(pc.ready)
	return nil
}

// fail ends a session whose plugin broke the protocol or stopped
// answering: the plugin is killed, and its locks announced lost.
func (c *Client) fail(err error) {
	if c.isDead() {
		return // stopped already: nothing more to end
	}
	if c.opts.OnFailure != nil {
		c.opts.OnFailure(err)
	}
	if c.opts.Kill != nil {
		c.opts.Kill()
	}
	c.die(fmt.Errorf("%w (%v)", ErrPluginExited, err))
}

// die marks the plugin gone, ends the session, and reports every lock it
// kept as lost. Answers already received and not yet taken are closed by
// their callers (take); a handed-over grant still waiting for its
// copy_closed is closed here, and its call fails.
func (c *Client) die(cause error) {
	c.mu.Lock()
	if c.cause != nil {
		c.mu.Unlock()
		return
	}
	c.cause = cause
	close(c.dead)
	for id, pc := range c.calls {
		if pc.sole != nil {
			// The plugin's copy went with it.
			close(pc.sole)
			delete(c.calls, id)
		}
	}
	for id, ch := range c.kept {
		close(ch)
		delete(c.kept, id)
	}
	c.keptCount.Store(0)
	c.mu.Unlock()
	// The role's holder waits in ppoll, holding a reference to the
	// session's descriptor that closing it waits for (and that it gives
	// back only after taking c.mu, to dispatch): kick it first, and close
	// without c.mu.
	c.kick()
	if c.conn != nil {
		c.conn.close()
	}
	c.roleMu.Lock()
	c.signalRoleLocked()
	c.roleMu.Unlock()
}

// PluginExited tells the Client that the plugin process has exited, for
// a host that reaps it: every lock it kept is lost.
func (c *Client) PluginExited() { c.die(ErrPluginExited) }

// MarkDead ends the session without waiting for the plugin to say so; the
// host calls it when it stops the plugin. Closing the session is the
// plugin's signal to release what it keeps for this host, and to exit.
func (c *Client) MarkDead() { c.die(ErrPluginExited) }

// Dead is closed once the plugin is known to be gone.
func (c *Client) Dead() <-chan struct{} { return c.dead }

func (c *Client) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// deathCause is why the plugin is gone, once it is.
func (c *Client) deathCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause == nil {
		return ErrPluginExited
	}
	return c.cause
}

// call sends req (with files) and waits for its answer. If ctx ends
// first, an acquire is canceled and its answer still awaited, so that a
// grant that raced with the cancel is known, and given back, rather than
// left held for no one; but for no longer than the cancel bound, after
// which the plugin is killed.
func (c *Client) call(ctx context.Context, req *lockpb.SessionRequest, pc *pendingCall, files ...*os.File) (reply, error) {
	id := nextID.Add(1)
	req.Call = id
	pc.answer, pc.ready = make(chan reply, 1), make(chan struct{})
	c.mu.Lock()
	if c.cause != nil {
		c.mu.Unlock()
		return reply{}, c.deathCause()
	}
	c.calls[id] = pc
	c.mu.Unlock()
	if err := c.send(req, files...); err != nil {
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		if errors.Is(err, errTooLarge) {
			return reply{}, backend.Invalidf("%v", err)
		}
		return reply{}, c.deathCause()
	}
	if c.await(ctx, pc.answered, pc.ready) {
		return <-pc.answer, nil
	}
	if c.isDead() {
		return c.take(pc)
	}
	if pc.acquire || pc.control {
		_ = c.send(&lockpb.SessionRequest{Call: id, Op: &lockpb.SessionRequest_Cancel{Cancel: &lockpb.CancelRequest{}}})
	}
	bound, stop := context.WithTimeout(context.Background(), c.opts.CancelTimeout)
	defer stop()
	if c.await(bound, pc.answered, pc.ready) {
		return <-pc.answer, nil
	}
	if !c.isDead() {
		c.fail(fmt.Errorf("it did not answer a cancel within %v", c.opts.CancelTimeout))
	}
	return c.take(pc)
}

// answered reports whether pc's answer has come.
func (pc *pendingCall) answered() bool { return len(pc.answer) > 0 }

// waitSole waits for the copy_closed that closes sole, reading the
// session if no one else is, for no longer than the cancel bound: a
// plugin that keeps its copy of a lock it handed over longer than that
// is killed, and its copy closes with it.
func (c *Client) waitSole(sole chan struct{}) {
	closed := func() bool {
		select {
		case <-sole:
			return true
		default:
			return false
		}
	}
	if closed() {
		return
	}
	bound, stop := context.WithTimeout(context.Background(), c.opts.CancelTimeout)
	defer stop()
	if c.await(bound, closed, sole) || c.isDead() {
		return
	}
	c.fail(fmt.Errorf("it did not close its copy of a lock it handed over within %v", c.opts.CancelTimeout))
}

// take returns the answer pc received before the plugin died, if any:
// a grant is a grant, and its descriptor the caller's to close.
func (c *Client) take(pc *pendingCall) (reply, error) {
	select {
	case r := <-pc.answer:
		return r, nil
	default:
		return reply{}, c.deathCause()
	}
}

func (c *Client) send(req *lockpb.SessionRequest, files ...*os.File) error {
	if c.conn == nil {
		return ErrPluginExited
	}
	return c.conn.send(req, files...)
}

// handsOver reports whether the plugin declares that it hands its locks
// over (Capabilities.HandsOver), asking it once.
func (c *Client) handsOver(ctx context.Context) (bool, error) {
	c.mu.Lock()
	known, declared := c.handsOverKnown, c.declaresHandOver
	c.mu.Unlock()
	if known {
		return declared, nil
	}
	info, err := c.Describe(ctx)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	c.handsOverKnown, c.declaresHandOver = true, info.Capabilities.HandsOver
	c.mu.Unlock()
	return info.Capabilities.HandsOver, nil
}

// Describe implements backend.LockMgr.
func (c *Client) Describe(ctx context.Context) (backend.Info, error) {
	var r *lockpb.DescribeResponse
	if c.plane != nil {
		var err error
		if r, err = c.plane.Describe(ctx, c.name); err != nil {
			return backend.Info{}, err
		}
	} else {
		resp, err := c.control(ctx, "describe", "", &lockpb.SessionRequest{Op: &lockpb.SessionRequest_Describe{Describe: &lockpb.DescribeRequest{}}})
		if err != nil {
			return backend.Info{}, err
		}
		r = resp.GetDescribed()
	}
	return backend.Info{Name: r.GetName(), Version: r.GetVersion(), Capabilities: capsFromWire(r.GetCapabilities())}, nil
}

// control makes a control-plane call on the session.
func (c *Client) control(ctx context.Context, op, path string, req *lockpb.SessionRequest) (*lockpb.SessionResponse, error) {
	if c.isDead() {
		return nil, backend.Errorf(op, path, c.name, c.deathCause())
	}
	r, err := c.call(ctx, req, &pendingCall{control: true})
	if err != nil {
		return nil, backend.Errorf(op, path, c.name, err)
	}
	if f := r.resp.GetFailure(); f != nil {
		return nil, FromFailure(f, op, path, c.name)
	}
	return r.resp, nil
}

// PluginStat is what a plugin says of itself (Client.Stat).
type PluginStat struct {
	// Shared says it serves every host of its user that connects.
	Shared bool
	// Hosts counts the hosts it serves, the asking one included.
	Hosts int
	// Started is when it started, if it says.
	Started time.Time
	// IdleSince is when it last had no host, the asking one aside, if it
	// says: with Hosts 1, it has served no other host since then.
	IdleSince time.Time
}

// Stat asks the plugin about itself. Only a shared plugin answers on the
// session; a private one's host knows it already.
func (c *Client) Stat(ctx context.Context) (PluginStat, error) {
	if c.plane != nil {
		return PluginStat{Hosts: 1}, nil
	}
	resp, err := c.control(ctx, "stat", "", &lockpb.SessionRequest{Op: &lockpb.SessionRequest_Stat{Stat: &lockpb.StatRequest{}}})
	if err != nil {
		return PluginStat{}, err
	}
	st := resp.GetStated()
	out := PluginStat{Shared: st.GetShared(), Hosts: int(st.GetHosts())}
	if ns := st.GetStartedUnixNano(); ns != 0 {
		out.Started = time.Unix(0, ns)
	}
	if ns := st.GetIdleSinceUnixNano(); ns != 0 {
		out.IdleSince = time.Unix(0, ns)
	}
	return out, nil
}

// Configure implements backend.Configurer: it hands the plugin its
// settings, a JSON object. A plugin whose backend takes no settings
// refuses them with ErrConfig. A shared plugin is configured as it
// starts, by the host that starts it, and takes no settings afterwards.
func (c *Client) Configure(ctx context.Context, settings []byte) error {
	if c.plane == nil {
		return backend.Errorf("configure", "", c.name, backend.Invalidf("a shared plugin is configured as it starts"))
	}
	return c.plane.Configure(ctx, c.name, settings)
}

// Acquire implements backend.LockMgr.
func (c *Client) Acquire(ctx context.Context, req backend.Request) (backend.Held, error) {
	if c.isDead() {
		return backend.Held{}, backend.Errorf("lock", req.Path, c.name, c.deathCause())
	}
	if err := ctx.Err(); err != nil {
		return backend.Held{}, backend.Errorf("lock", req.Path, c.name, backend.WaitError(ctx))
	}
	handle := nextID.Add(1)
	ar := &lockpb.AcquireRequest{
		HandOver:        req.HandOver,
		Handle:          handle,
		Path:            req.Path,
		Name:            req.Name,
		Mode:            modeToWire(req.Mode),
		Start:           req.Range.Start,
		End:             req.Range.End,
		Wait:            req.Wait,
		FileMode:        uint32(req.FileMode.Perm()),
		RemoveOnRelease: req.RemoveOnRelease,
		Fd:              int32(req.FD),
	}
	if d, ok := ctx.Deadline(); ok {
		ar.DeadlineUnixNano = d.UnixNano()
	}
	var keeper, keeperEnd *os.File
	var files []*os.File
	if c.opts.Keepers {
		var err error
		if keeperEnd, keeper, err = os.Pipe(); err != nil {
			return backend.Held{}, backend.Errorf("lock", req.Path, c.name, fmt.Errorf("a keeper for the lock: %w", err))
		}
		ar.Keeper = true
		files = []*os.File{keeperEnd}
	}
	r, err := c.call(ctx, &lockpb.SessionRequest{Op: &lockpb.SessionRequest_Acquire{Acquire: ar}}, &pendingCall{acquire: true, handle: handle}, files...)
	if keeperEnd != nil {
		keeperEnd.Close() // the plugin has its own copy, or none is needed
	}
	held, err := c.granted(ctx, req, handle, r, err)
	if err != nil || held.File != nil {
		if keeper != nil {
			keeper.Close()
		}
	} else {
		held.Keeper = keeper
	}
	return held, err
}

// granted makes Acquire's answer r (or its error) into the lock the
// caller gets, giving back a grant that came too late or that the
// plugin had no right to make.
func (c *Client) granted(ctx context.Context, req backend.Request, handle uint64, r reply, err error) (backend.Held, error) {
	if err == nil {
		err = r.err
	}
	if err == nil && r.resp.GetFailure() != nil {
		err = FromFailure(r.resp.GetFailure(), "lock", req.Path, c.name)
	}
	file := r.file
	if err == nil && req.HandOver && file == nil && !req.RemoveOnRelease && req.FD <= 0 {
		// A grant the plugin keeps. Only a backend that does not hand its
		// locks over may answer so (but for the two cases
		// Capabilities.HandsOver allows): one that declared it does would
		// have its host believe in a lock that no descriptor holds.
		if declared, derr := c.handsOver(ctx); derr != nil || declared {
			_ = c.Release(context.Background(), backend.HandleID(handle))
			if derr == nil {
				derr = fmt.Errorf("%w: it declares that it hands its locks over, yet granted one without the locked descriptor", backend.ErrPluginRejected)
			}
			return backend.Held{}, backend.Errorf("lock", req.Path, c.name, derr)
		}
	}
	switch {
	case err == nil && ctx.Err() != nil:
		// Granted as the wait ended: the caller has given up, so give it back.
		if file != nil {
			_ = fdlock.ReleaseDescription(file) // the plugin's copy may linger
			file.Close()
		} else {
			_ = c.Release(context.Background(), backend.HandleID(handle))
		}
		err = backend.WaitError(ctx)
	case err != nil && ctx.Err() != nil && (errors.Is(err, backend.ErrCanceled) || errors.Is(err, backend.ErrTimeout) || errors.Is(err, ErrPluginExited)):
		// Our cancel can reach the plugin before its own copy of the
		// deadline fires, and a plugin that did not answer it was killed:
		// either way the caller's context says what happened to its wait.
		err = backend.WaitError(ctx)
	}
	if err != nil {
		return backend.Held{}, backend.Errorf("lock", req.Path, c.name, err)
	}
	a := r.resp.GetAcquired()
	held := backend.Held{ID: backend.HandleID(handle), FencingToken: a.GetFencingToken(), Warnings: a.GetWarnings(), File: file}
	if sole := r.sole; file != nil && sole != nil {
		held.WaitSole = func() { c.waitSole(sole) }
	}
	if file == nil {
		c.mu.Lock()
		if lost, ok := c.kept[handle]; ok {
			held.Lost = lost
		} else {
			// Lost already (announced, or the plugin died since).
			closed := make(chan struct{})
			close(closed)
			held.Lost = closed
		}
		c.mu.Unlock()
	}
	return held, nil
}

func (c *Client) forget(handle uint64) {
	c.mu.Lock()
	if _, ok := c.kept[handle]; ok {
		delete(c.kept, handle)
		c.keptCount.Add(-1)
	}
	c.mu.Unlock()
}

// wakeBackground lets the background reader see that there is a lock to
// watch now.
func (c *Client) wakeBackground() {
	c.roleMu.Lock()
	c.signalRoleLocked()
	c.roleMu.Unlock()
}

// Release implements backend.LockMgr. The lock's Lost channel is settled
// by the answer, not before: if the plugin dies before it confirms the
// release, the lock was lost while still held, and Lost fires.
func (c *Client) Release(ctx context.Context, id backend.HandleID) error {
	if c.isDead() {
		c.forget(uint64(id))
		return backend.Errorf("unlock", "", c.name, c.deathCause())
	}
	r, err := c.call(ctx, &lockpb.SessionRequest{Op: &lockpb.SessionRequest_Release{Release: &lockpb.ReleaseRequest{Handle: uint64(id)}}}, &pendingCall{handle: uint64(id)})
	c.forget(uint64(id))
	if err != nil {
		return backend.Errorf("unlock", "", c.name, err)
	}
	if f := r.resp.GetFailure(); f != nil {
		return FromFailure(f, "unlock", "", c.name)
	}
	return nil
}

// Inspect implements backend.LockMgr.
func (c *Client) Inspect(ctx context.Context, path string) (backend.Status, error) {
	var r *lockpb.InspectResponse
	if c.plane != nil {
		var err error
		if r, err = c.plane.Inspect(ctx, c.name, path); err != nil {
			return backend.Status{}, err
		}
	} else {
		resp, err := c.control(ctx, "inspect", path, &lockpb.SessionRequest{Op: &lockpb.SessionRequest_Inspect{Inspect: &lockpb.InspectRequest{Path: path}}})
		if err != nil {
			return backend.Status{}, err
		}
		r = resp.GetInspected()
	}
	return backend.Status{Path: r.GetPath(), Holders: ownersFromWire(r.GetHolders()), Waiters: ownersFromWire(r.GetWaiters())}, nil
}
