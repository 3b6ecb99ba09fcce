package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
)

// server serves a backend.LockMgr over gRPC on the plugin side.
type server struct {
	lockpb.UnimplementedBackendServer
	impl backend.LockMgr

	mu   sync.Mutex
	held map[uint64]*serverHandle // by the host's handle
	lost chan *lockpb.LostEvent
}

type serverHandle struct {
	id       backend.HandleID
	released chan struct{}
}

func newServer(impl backend.LockMgr) *server {
	return &server{
		impl: impl,
		held: make(map[uint64]*serverHandle),
		lost: make(chan *lockpb.LostEvent, 64),
	}
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

// session is one host's stream of calls.
type session struct {
	s      *server
	stream lockpb.Backend_SessionServer

	sendMu sync.Mutex
	mu     sync.Mutex
	waits  map[uint64]context.CancelFunc // by call
}

func (ss *session) send(r *lockpb.SessionResponse) {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	// A failed send means the host is gone; Recv will say so.
	_ = ss.stream.Send(r)
}

// Session serves the host's calls. A call that can be answered at once
// is answered on this goroutine; only a wait gets a goroutine of its own.
func (s *server) Session(stream lockpb.Backend_SessionServer) error {
	ss := &session{s: s, stream: stream, waits: make(map[uint64]context.CancelFunc)}
	ctx := stream.Context()
	go func() {
		for {
			select {
			case ev := <-s.lost:
				ss.send(&lockpb.SessionResponse{Result: &lockpb.SessionResponse_Lost{Lost: ev}})
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		ss.mu.Lock()
		for _, cancel := range ss.waits {
			cancel()
		}
		ss.mu.Unlock()
	}()
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		call := req.GetCall()
		switch op := req.GetOp().(type) {
		case *lockpb.SessionRequest_Acquire:
			ss.acquire(ctx, call, op.Acquire)
		case *lockpb.SessionRequest_Release:
			ss.answer(call, s.release(ctx, op.Release.GetHandle()), &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Released{Released: &lockpb.ReleaseResponse{}}})
		case *lockpb.SessionRequest_Cancel:
			ss.mu.Lock()
			if cancel := ss.waits[call]; cancel != nil {
				cancel()
			}
			ss.mu.Unlock()
		}
	}
}

func (ss *session) answer(call uint64, err error, ok *lockpb.SessionResponse) {
	if err != nil {
		ss.send(&lockpb.SessionResponse{Call: call, Result: &lockpb.SessionResponse_Failure{Failure: toFailure(err)}})
		return
	}
	ok.Call = call
	ss.send(ok)
}

func (ss *session) acquire(ctx context.Context, call uint64, r *lockpb.AcquireRequest) {
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
	// Try without waiting first, here: the uncontended lock is answered
	// without starting a goroutine.
	try := req
	try.Wait = false
	resp, err := ss.s.acquire(ctx, r.GetHandle(), try)
	if err == nil || !req.Wait || !errors.Is(err, backend.ErrBusy) {
		ss.answer(call, err, resp)
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	if d := r.GetDeadlineUnixNano(); d != 0 {
		wctx, cancel = context.WithDeadline(ctx, time.Unix(0, d))
	}
	ss.mu.Lock()
	ss.waits[call] = cancel
	ss.mu.Unlock()
	go func() {
		resp, err := ss.s.acquire(wctx, r.GetHandle(), req)
		ss.mu.Lock()
		delete(ss.waits, call)
		ss.mu.Unlock()
		cancel()
		ss.answer(call, err, resp)
	}()
}

// acquire takes a lock for the host's handle.
func (s *server) acquire(ctx context.Context, handle uint64, req backend.Request) (*lockpb.SessionResponse, error) {
	s.mu.Lock()
	_, inUse := s.held[handle]
	s.mu.Unlock()
	if handle == 0 || inUse {
		return nil, backend.Errorf("lock", req.Path, "", backend.Invalidf("handle %d is zero or in use", handle))
	}
	held, err := s.impl.Acquire(ctx, req)
	if err != nil {
		return nil, err
	}
	h := &serverHandle{id: held.ID, released: make(chan struct{})}
	s.mu.Lock()
	s.held[handle] = h
	s.mu.Unlock()
	if held.Lost != nil {
		go s.forwardLoss(handle, h, held.Lost)
	}
	return &lockpb.SessionResponse{Result: &lockpb.SessionResponse_Acquired{Acquired: &lockpb.AcquireResponse{
		Handle: handle, FencingToken: held.FencingToken, Warnings: held.Warnings,
	}}}, nil
}

func (s *server) forwardLoss(handle uint64, h *serverHandle, lost <-chan struct{}) {
	select {
	case <-lost:
		s.lost <- &lockpb.LostEvent{Handle: handle, Reason: "the backend lost the lock"}
	case <-h.released:
	}
}

func (s *server) release(ctx context.Context, handle uint64) error {
	s.mu.Lock()
	h, ok := s.held[handle]
	delete(s.held, handle)
	s.mu.Unlock()
	if !ok {
		return backend.Errorf("unlock", "", "", backend.ErrNotLocked)
	}
	close(h.released)
	return s.impl.Release(ctx, h.id)
}
