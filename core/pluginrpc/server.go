package pluginrpc

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/protobuf/proto"
)

// Control answers a backend's control plane: the calls that hold
// nothing. A session answers them for its host (session.control);
// core/plugin serves them over gRPC to the host of a plugin that
// go-plugin started.
type Control struct {
	impl backend.LockMgr
}

// NewControl returns the control plane of impl.
func NewControl(impl backend.LockMgr) *Control { return &Control{impl: impl} }

// Describe answers a describe.
func (c *Control) Describe(ctx context.Context) (*lockpb.DescribeResponse, error) {
	info, err := c.impl.Describe(ctx)
	if err != nil {
		return nil, err
	}
	return &lockpb.DescribeResponse{Name: info.Name, Version: info.Version, Capabilities: capsToWire(info.Capabilities)}, nil
}

// Inspect answers an inspect of path.
func (c *Control) Inspect(ctx context.Context, path string) (*lockpb.InspectResponse, error) {
	st, err := c.impl.Inspect(ctx, path)
	if err != nil {
		return nil, err
	}
	return &lockpb.InspectResponse{Path: st.Path, Holders: ownersToWire(st.Holders), Waiters: ownersToWire(st.Waiters)}, nil
}

// Configure hands the backend its settings, a JSON object.
func (c *Control) Configure(ctx context.Context, settings []byte) error {
	cf, ok := c.impl.(backend.Configurer)
	if !ok {
		// A settings table for a backend that reads none is most likely a
		// typo in its name; silence would leave the user guessing.
		return backend.Errorf("configure", "", "", fmt.Errorf("%w: this backend takes no settings; remove its [backends.NAME] table and LOCKMGR_NAME_* variables", backend.ErrConfig))
	}
	return cf.Configure(ctx, settings)
}

// session is one host's connection, and everything that host holds: a
// handle id names a lock only within the session that granted it, and a
// loss is told only to the host whose lock it was.
type session struct {
	impl backend.LockMgr
	conn *packetConn
	// stat answers a stat request: what the plugin says of itself.
	stat func() *lockpb.StatResponse
	// hostPID is the host's pid, as this plugin's pid namespace sees it.
	hostPID int

	mu      sync.Mutex
	pending map[uint64]context.CancelFunc // calls in progress, by call id
	held    map[uint64]*grant             // granted locks, by the host's handle id
	ended   bool
	kept    int           // grants with a keeper, which outlive the session
	gone    chan struct{} // closed once ended with nothing kept
	ctx     context.Context
	stop    context.CancelFunc
}

// grant is one lock the backend granted to the session's host and that
// stays here: it is the backend's (id), or a locked file the backend
// gave up but that could not be handed on (file).
type grant struct {
	handle    uint64
	id        backend.HandleID
	file      *os.File
	keeper    *os.File // the read end of its keeper, or nil
	inherited bool     // a lock on a descriptor the host gave (Request.FD)

	mu       sync.Mutex
	released bool          // set before the release, so no loss follows its answer
	done     chan struct{} // closed by release, so loss forwarding stops
}

// newSession serves impl to the host at the other end of conn.
func newSession(impl backend.LockMgr, conn *packetConn, stat func() *lockpb.StatResponse) *session {
	ctx, stop := context.WithCancel(context.Background())
	return &session{
		impl: impl, conn: conn, ctx: ctx, stop: stop, stat: stat,
		pending: make(map[uint64]context.CancelFunc),
		held:    make(map[uint64]*grant),
		gone:    make(chan struct{}),
	}
}

// serve reads the host's calls until the session ends: the host closed it
// (it is gone) or broke the protocol. Each call runs on a goroutine of its
// own, under a context that carries its deadline and that its cancel
// ends, from its first instruction: a backend may block in any step (a
// lock service that does not answer a dial), and one slow call must hold
// up neither the cancel meant for it nor any other call. serve returns
// the protocol error that ended the session, if one did.
func (ss *session) serve() error {
	defer ss.end()
	for {
		r, err := ss.conn.recv()
		if err != nil {
			if isEOF(err) {
				return nil
			}
			return err
		}
		if err := ss.dispatch(r); err != nil {
			r.closeFiles()
			return err
		}
	}
}

// dispatch checks one packet against the protocol and starts what it asks.
func (ss *session) dispatch(r received) error {
	req := &lockpb.SessionRequest{}
	if err := proto.Unmarshal(r.data, req); err != nil {
		return protocolErrorf("an unreadable request: %v", err)
	}
	call := req.GetCall()
	if call == 0 {
		return protocolErrorf("a request without a call id")
	}
	if r.rightsCut {
		return protocolErrorf("a descriptor that could not be received")
	}
	switch op := req.GetOp().(type) {
	case *lockpb.SessionRequest_Acquire:
		want := 0
		if op.Acquire.GetKeeper() {
			want = 1
		}
		if len(r.files) != want {
			return protocolErrorf("an acquire with %d descriptors, want %d", len(r.files), want)
		}
		var keeper *os.File
		if want == 1 {
			keeper = r.files[0]
		}
		return ss.start(call, op.Acquire.GetDeadlineUnixNano(), func(ctx context.Context) (*lockpb.SessionResponse, *os.File, func()) {
			return ss.acquire(ctx, op.Acquire, keeper)
		})
	case *lockpb.SessionRequest_Release:
		if len(r.files) > 0 {
			return protocolErrorf("a descriptor with a release")
		}
		return ss.start(call, 0, func(ctx context.Context) (*lockpb.SessionResponse, *os.File, func()) {
			err := ss.release(ctx, op.Release.GetHandle())
			return answer(err, &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Released{Released: &lockpb.ReleaseResponse{}}}), nil, nil
		})
	case *lockpb.SessionRequest_Describe, *lockpb.SessionRequest_Inspect, *lockpb.SessionRequest_Stat:
		if len(r.files) > 0 {
			return protocolErrorf("a descriptor with a control request")
		}
		return ss.start(call, 0, func(ctx context.Context) (*lockpb.SessionResponse, *os.File, func()) {
			return ss.control(ctx, req), nil, nil
		})
	case *lockpb.SessionRequest_Cancel:
		if len(r.files) > 0 {
			return protocolErrorf("a descriptor with a cancel")
		}
		// A cancel may cross its call's answer: one for a call no longer
		// pending is no error.
		ss.mu.Lock()
		if cancel := ss.pending[call]; cancel != nil {
			cancel()
		}
		ss.mu.Unlock()
		return nil
	default:
		return protocolErrorf("a request of no known kind")
	}
}

// start runs one call on a goroutine of its own, registered for its
// cancel before this returns, so that a cancel read next finds it. run
// returns the answer, the descriptor that goes with it (closed here once
// sent, or if it cannot be), and what to do once the answer is sent.
func (ss *session) start(call uint64, deadline int64, run func(context.Context) (*lockpb.SessionResponse, *os.File, func())) error {
	var ctx context.Context
	var cancel context.CancelFunc
	if deadline != 0 {
		ctx, cancel = context.WithDeadline(ss.ctx, time.Unix(0, deadline))
	} else {
		ctx, cancel = context.WithCancel(ss.ctx)
	}
	ss.mu.Lock()
	if _, dup := ss.pending[call]; dup {
		ss.mu.Unlock()
		cancel()
		return protocolErrorf("call %d is already in progress", call)
	}
	ss.pending[call] = cancel
	ss.mu.Unlock()
	go func() {
		r, file, after := run(ctx)
		ss.mu.Lock()
		delete(ss.pending, call)
		ss.mu.Unlock()
		cancel()
		r.Call = call
		var files []*os.File
		if file != nil {
			files = []*os.File{file}
		}
		if err := ss.conn.send(r, files...); err != nil && err == errTooLarge {
			// Our own answer broke the limit (a backend's warnings, say):
			// the host would take it for garbage. End the session, which
			// releases what it holds, rather than send it.
			ss.conn.close()
		}
		if file != nil {
			// The host has its copy now, or never will: either way this
			// one goes, and the host hears that its own is the only one.
			file.Close()
			_ = ss.conn.send(&lockpb.SessionResponse{Call: call, Result: &lockpb.SessionResponse_CopyClosed{CopyClosed: &lockpb.CopyClosed{}}})
		}
		if after != nil {
			after()
		}
	}()
	return nil
}

// control answers the control plane's requests on the session, for a
// host with no gRPC connection to its plugin (a shared plugin's): the
// same answers core/plugin gives over gRPC.
func (ss *session) control(ctx context.Context, req *lockpb.SessionRequest) *lockpb.SessionResponse {
	srv := NewControl(ss.impl)
	switch op := req.GetOp().(type) {
	case *lockpb.SessionRequest_Describe:
		r, err := srv.Describe(ctx)
		return answer(err, &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Described{Described: r}})
	case *lockpb.SessionRequest_Inspect:
		r, err := srv.Inspect(ctx, op.Inspect.GetPath())
		return answer(err, &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Inspected{Inspected: r}})
	default:
		st := &lockpb.StatResponse{Hosts: 1}
		if ss.stat != nil {
			st = ss.stat()
		}
		return &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Stated{Stated: st}}
	}
}

func answer(err error, ok *lockpb.SessionResponse) *lockpb.SessionResponse {
	if err != nil {
		return &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Failure{Failure: ToFailure(err)}}
	}
	return ok
}

// acquire takes a lock for the host's handle r.Handle.
func (ss *session) acquire(ctx context.Context, r *lockpb.AcquireRequest, keeper *os.File) (*lockpb.SessionResponse, *os.File, func()) {
	req := backend.Request{
		Path:            r.GetPath(),
		Name:            r.GetName(),
		Mode:            modeFromWire(r.GetMode()),
		Range:           backend.Range{Start: r.GetStart(), End: r.GetEnd()},
		Wait:            r.GetWait(),
		FileMode:        fileMode(r.GetFileMode()),
		RemoveOnRelease: r.GetRemoveOnRelease(),
		FD:              int(r.GetFd()),
		HandOver:        r.GetHandOver(),
		HostPID:         ss.hostPID,
	}
	fail := func(err error) (*lockpb.SessionResponse, *os.File, func()) {
		if keeper != nil {
			keeper.Close()
		}
		return answer(err, nil), nil, nil
	}
	handle := r.GetHandle()
	ss.mu.Lock()
	_, inUse := ss.held[handle]
	ss.mu.Unlock()
	if handle == 0 || inUse {
		return fail(backend.Errorf("lock", req.Path, "", backend.Invalidf("handle %d is zero or in use", handle)))
	}
	held, err := ss.impl.Acquire(ctx, req)
	if err != nil {
		return fail(err)
	}
	acquired := &lockpb.AcquireResponse{Handle: handle, FencingToken: held.FencingToken, Warnings: held.Warnings}
	if held.File != nil && req.HandOver {
		// The descriptor goes in the answer's packet, and this process's
		// copy is closed once it is sent, so that the host holds the only
		// copy of the lock: nothing needs a keeper.
		if keeper != nil {
			keeper.Close()
		}
		acquired.HandedOver = true
		return &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Acquired{Acquired: acquired}}, held.File, nil
	}
	g := &grant{handle: handle, id: held.ID, file: held.File, keeper: keeper, inherited: req.FD > 0, done: make(chan struct{})}
	ss.mu.Lock()
	if ss.ended {
		// The host went away while we waited: the lock is no one's.
		ss.mu.Unlock()
		_ = ss.releaseGrant(context.Background(), g)
		return answer(backend.Errorf("lock", req.Path, "", backend.ErrCanceled), nil), nil, nil
	}
	ss.held[handle] = g
	if keeper != nil {
		ss.kept++
	}
	ss.mu.Unlock()
	// Loss notices and the keeper's watch start once the grant has been
	// answered: the protocol has no loss for a lock not yet granted.
	after := func() {
		if held.Lost != nil {
			go ss.forwardLoss(g, held.Lost)
		}
		if keeper != nil {
			go ss.watchKeeper(g)
		}
	}
	return &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Acquired{Acquired: acquired}}, nil, after
}

// forwardLoss tells this session's host, and no other, that the backend
// lost g's lock, unless it is released first.
func (ss *session) forwardLoss(g *grant, lost <-chan struct{}) {
	select {
	case <-lost:
	case <-g.done:
		return
	case <-ss.ctx.Done():
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.released {
		// Sent under g.mu, which release takes before it answers: no loss
		// notice ever follows the answer to its lock's release.
		_ = ss.conn.send(&lockpb.SessionResponse{Result: &lockpb.SessionResponse_Lost{Lost: &lockpb.LostEvent{Handle: g.handle, Reason: "the backend lost the lock"}}})
	}
}

// watchKeeper releases g's lock once every copy of its keeper's write end
// has closed: whoever the host handed the lock to is done with it.
func (ss *session) watchKeeper(g *grant) {
	buf := make([]byte, 64)
	for {
		if _, err := g.keeper.Read(buf); err != nil {
			break
		}
	}
	ss.mu.Lock()
	mine := ss.held[g.handle] == g
	if mine {
		delete(ss.held, g.handle)
	}
	ss.mu.Unlock()
	if mine {
		_ = ss.releaseGrant(context.Background(), g)
	}
}

// releaseGrant gives up g's lock.
func (ss *session) releaseGrant(ctx context.Context, g *grant) error {
	g.mu.Lock()
	g.released = true
	g.mu.Unlock()
	close(g.done)
	var err error
	if g.file != nil {
		err = g.file.Close()
	} else {
		err = ss.impl.Release(ctx, g.id)
	}
	if g.keeper != nil {
		g.keeper.Close() // ends watchKeeper
		ss.mu.Lock()
		ss.kept--
		ss.checkGoneLocked()
		ss.mu.Unlock()
	}
	return err
}

func (ss *session) release(ctx context.Context, handle uint64) error {
	ss.mu.Lock()
	g, ok := ss.held[handle]
	delete(ss.held, handle)
	ss.mu.Unlock()
	if !ok {
		return backend.Errorf("unlock", "", "", backend.ErrNotLocked)
	}
	return ss.releaseGrant(ctx, g)
}

// end cancels the calls of a host that is gone, and releases what it was
// granted: nothing outlives its session but a lock whose keeper lives,
// and a lock on a descriptor the host gave (lockmgr lock --fd), which is
// that descriptor's, and which this process's exit leaves as it is.
func (ss *session) end() {
	ss.mu.Lock()
	ss.ended = true
	for _, cancel := range ss.pending {
		cancel()
	}
	var drop []*grant
	for h, g := range ss.held {
		if g.keeper == nil && !g.inherited {
			drop = append(drop, g)
			delete(ss.held, h)
		}
	}
	ss.checkGoneLocked()
	ss.mu.Unlock()
	ss.stop()
	ss.conn.close()
	for _, g := range drop {
		_ = ss.releaseGrant(context.Background(), g)
	}
}

func (ss *session) checkGoneLocked() {
	if ss.ended && ss.kept == 0 {
		select {
		case <-ss.gone:
		default:
			close(ss.gone)
		}
	}
}

// Gone is closed once the session has ended and no lock it granted is
// kept alive by a keeper: the plugin may exit.
func (ss *session) Gone() <-chan struct{} { return ss.gone }
