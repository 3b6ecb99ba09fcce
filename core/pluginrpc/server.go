package pluginrpc

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
)

// server serves a backend.LockMgr over gRPC on the plugin side.
type server struct {
	lockpb.UnimplementedBackendServer
	impl   backend.LockMgr
	sender *descriptorSender // nil: every lock stays here
}

func newServer(impl backend.LockMgr, sender *descriptorSender) *server {
	return &server{impl: impl, sender: sender}
}

func (s *server) Describe(ctx context.Context, _ *lockpb.DescribeRequest) (*lockpb.DescribeResponse, error) {
	info, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &lockpb.DescribeResponse{Name: info.Name, Version: info.Version, Capabilities: capsToWire(info.Capabilities)}, nil
}

func (s *server) Inspect(ctx context.Context, r *lockpb.InspectRequest) (*lockpb.InspectResponse, error) {
	st, err := s.impl.Inspect(ctx, r.GetPath())
	if err != nil {
		return nil, toStatus(err)
	}
	return &lockpb.InspectResponse{Path: st.Path, Holders: ownersToWire(st.Holders), Waiters: ownersToWire(st.Waiters)}, nil
}

func (s *server) Configure(ctx context.Context, r *lockpb.ConfigureRequest) (*lockpb.ConfigureResponse, error) {
	c, ok := s.impl.(backend.Configurer)
	if !ok {
		// A settings table for a backend that reads none is most likely a
		// typo in its name; silence would leave the user guessing.
		return nil, toStatus(backend.Errorf("configure", "", "", fmt.Errorf("%w: this backend takes no settings; remove its [backends.NAME] table and LOCKMGR_NAME_* variables", backend.ErrConfig)))
	}
	if err := c.Configure(ctx, r.GetSettingsJson()); err != nil {
		return nil, toStatus(err)
	}
	return &lockpb.ConfigureResponse{}, nil
}

// session is one host's stream of calls, and everything that host holds:
// a handle id names a lock only within the session that granted it, and
// a loss is told only to the host whose lock it was.
type session struct {
	impl   backend.LockMgr
	sender *descriptorSender
	ctx    context.Context // ends with the stream
	stream lockpb.Backend_SessionServer

	sendMu sync.Mutex

	mu      sync.Mutex
	pending map[uint64]context.CancelFunc // calls in progress, by call id
	held    map[uint64]*grant             // granted locks, by the host's handle id
	ended   bool
}

// grant is one lock the backend granted to the session's host and that
// stays here: it is the backend's (id), or a locked file the backend gave
// up but that could not be handed on (file).
type grant struct {
	id       backend.HandleID
	file     *os.File
	released chan struct{} // closed by release, so loss forwarding stops
}

// releaseGrant gives up g's lock.
func (ss *session) releaseGrant(ctx context.Context, g *grant) error {
	close(g.released)
	if g.file != nil {
		return g.file.Close()
	}
	return ss.impl.Release(ctx, g.id)
}

func (ss *session) send(r *lockpb.SessionResponse) {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	// A failed send means the host is gone; Recv will say so.
	_ = ss.stream.Send(r)
}

// Session serves one host's calls. Each call runs on a goroutine of its
// own, under a context that carries its deadline and that its cancel ends,
// from its first instruction: a backend may block in any step (a lock
// service that does not answer a dial), and one slow call must hold up
// neither the cancel meant for it nor any other call.
func (s *server) Session(stream lockpb.Backend_SessionServer) error {
	ss := &session{
		impl: s.impl, sender: s.sender, ctx: stream.Context(), stream: stream,
		pending: make(map[uint64]context.CancelFunc),
		held:    make(map[uint64]*grant),
	}
	defer ss.end()
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		call := req.GetCall()
		switch op := req.GetOp().(type) {
		case *lockpb.SessionRequest_Acquire:
			ss.start(call, op.Acquire.GetDeadlineUnixNano(), func(ctx context.Context) *lockpb.SessionResponse {
				return ss.acquire(ctx, op.Acquire)
			})
		case *lockpb.SessionRequest_Release:
			ss.start(call, 0, func(ctx context.Context) *lockpb.SessionResponse {
				return answer(ss.release(ctx, op.Release.GetHandle()), &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Released{Released: &lockpb.ReleaseResponse{}}})
			})
		case *lockpb.SessionRequest_Cancel:
			ss.mu.Lock()
			if cancel := ss.pending[call]; cancel != nil {
				cancel()
			}
			ss.mu.Unlock()
		}
	}
}

// start runs one call on a goroutine of its own, registered for its
// cancel before this returns, so that a cancel read next finds it.
func (ss *session) start(call uint64, deadline int64, run func(context.Context) *lockpb.SessionResponse) {
	var ctx context.Context
	var cancel context.CancelFunc
	if deadline != 0 {
		ctx, cancel = context.WithDeadline(ss.ctx, time.Unix(0, deadline))
	} else {
		ctx, cancel = context.WithCancel(ss.ctx)
	}
	ss.mu.Lock()
	ss.pending[call] = cancel
	ss.mu.Unlock()
	go func() {
		r := run(ctx)
		ss.mu.Lock()
		delete(ss.pending, call)
		ss.mu.Unlock()
		cancel()
		r.Call = call
		ss.send(r)
	}()
}

func answer(err error, ok *lockpb.SessionResponse) *lockpb.SessionResponse {
	if err != nil {
		return &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Failure{Failure: toFailure(err)}}
	}
	return ok
}

// acquire takes a lock for the host's handle r.Handle.
func (ss *session) acquire(ctx context.Context, r *lockpb.AcquireRequest) *lockpb.SessionResponse {
	req := backend.Request{
		Path:            r.GetPath(),
		Name:            r.GetName(),
		Mode:            modeFromWire(r.GetMode()),
		Range:           backend.Range{Start: r.GetStart(), End: r.GetEnd()},
		Wait:            r.GetWait(),
		FileMode:        fileMode(r.GetFileMode()),
		RemoveOnRelease: r.GetRemoveOnRelease(),
		FD:              int(r.GetFd()),
	}
	handle := r.GetHandle()
	ss.mu.Lock()
	_, inUse := ss.held[handle]
	ss.mu.Unlock()
	if handle == 0 || inUse {
		return answer(backend.Errorf("lock", req.Path, "", backend.Invalidf("handle %d is zero or in use", handle)), nil)
	}
	req.HandOver = r.GetHandOver() && ss.sender != nil
	held, err := ss.impl.Acquire(ctx, req)
	if err != nil {
		return answer(err, nil)
	}
	acquired := &lockpb.AcquireResponse{Handle: handle, FencingToken: held.FencingToken, Warnings: held.Warnings}
	if held.File != nil && req.HandOver {
		// The descriptor goes first and this process's copy is closed
		// before the answer, so that the host, once answered, holds the
		// only copy of the lock.
		err := ss.sender.send(handle, held.File)
		held.File.Close()
		if err != nil {
			return answer(backend.Errorf("lock", req.Path, "", err), nil)
		}
		acquired.HandedOver = true
		return &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Acquired{Acquired: acquired}}
	}
	g := &grant{id: held.ID, file: held.File, released: make(chan struct{})}
	ss.mu.Lock()
	if ss.ended {
		// The host went away while we waited: the lock is no one's.
		ss.mu.Unlock()
		_ = ss.releaseGrant(context.Background(), g)
		return answer(backend.Errorf("lock", req.Path, "", backend.ErrCanceled), nil)
	}
	ss.held[handle] = g
	ss.mu.Unlock()
	if held.Lost != nil {
		go ss.forwardLoss(handle, g, held.Lost)
	}
	return &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Acquired{Acquired: acquired}}
}

// forwardLoss tells this session's host, and no other, that the backend
// lost the lock behind handle.
func (ss *session) forwardLoss(handle uint64, g *grant, lost <-chan struct{}) {
	select {
	case <-lost:
		ss.send(&lockpb.SessionResponse{Result: &lockpb.SessionResponse_Lost{Lost: &lockpb.LostEvent{Handle: handle, Reason: "the backend lost the lock"}}})
	case <-g.released:
	case <-ss.ctx.Done():
	}
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

// end cancels the calls of a host that is gone. What it was granted
// stays held: a host that shares its plugin's lifeline (lockmgr run, for a
// lock the plugin must hold) may be gone while the command it handed the
// lifeline to still relies on the lock, which ends with the plugin.
func (ss *session) end() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.ended = true
	for _, cancel := range ss.pending {
		cancel()
	}
}
