package pluginrpc

import (
	"context"
	"sync"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
)

// server serves a backend.LockMgr over gRPC on the plugin side.
//
// Handles on the wire are chosen by the host. That closes a race a
// backend-chosen id would leave open: a lock granted at the instant the
// host's wait ended would reach no one and stay held for the life of the
// plugin. With a host-chosen id, the host releases what it gave up on, and
// the server releases a grant whose release arrived first.
type server struct {
	lockpb.UnimplementedBackendServer
	impl backend.LockMgr

	mu      sync.Mutex
	held    map[uint64]*serverHandle
	pending map[uint64]bool // Acquire in flight; true once the host abandoned it
	lost    chan *lockpb.LostEvent
}

type serverHandle struct {
	id       backend.HandleID
	released chan struct{}
}

func newServer(impl backend.LockMgr) *server {
	return &server{
		impl:    impl,
		held:    make(map[uint64]*serverHandle),
		pending: make(map[uint64]bool),
		lost:    make(chan *lockpb.LostEvent, 64),
	}
}

func (s *server) Describe(ctx context.Context, _ *lockpb.DescribeRequest) (*lockpb.DescribeResponse, error) {
	info, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &lockpb.DescribeResponse{Name: info.Name, Version: info.Version, Capabilities: capsToWire(info.Capabilities)}, nil
}

func (s *server) Acquire(ctx context.Context, r *lockpb.AcquireRequest) (*lockpb.AcquireResponse, error) {
	id := r.GetHandle()
	s.mu.Lock()
	_, inUse := s.held[id]
	_, inFlight := s.pending[id]
	if id == 0 || inUse || inFlight {
		s.mu.Unlock()
		return nil, toStatus(backend.Errorf("lock", r.GetPath(), "", backend.Invalidf("handle %d is zero or in use", id)))
	}
	s.pending[id] = false
	s.mu.Unlock()

	held, err := s.impl.Acquire(ctx, backend.Request{
		Path:            r.GetPath(),
		Mode:            modeFromWire(r.GetMode()),
		Range:           backend.Range{Start: r.GetStart(), End: r.GetEnd()},
		Wait:            r.GetWait(),
		FileMode:        fileMode(r.GetFileMode()),
		RemoveOnRelease: r.GetRemoveOnRelease(),
		FD:              int(r.GetFd()),
	})

	s.mu.Lock()
	abandoned := s.pending[id]
	delete(s.pending, id)
	if err == nil && (abandoned || ctx.Err() != nil) {
		s.mu.Unlock()
		// Nobody will ever release this grant: give it back now.
		_ = s.impl.Release(context.Background(), held.ID)
		if err = backend.WaitError(ctx); err == nil {
			err = backend.ErrCanceled
		}
		return nil, toStatus(backend.Errorf("lock", r.GetPath(), "", err))
	}
	if err != nil {
		s.mu.Unlock()
		return nil, toStatus(err)
	}
	h := &serverHandle{id: held.ID, released: make(chan struct{})}
	s.held[id] = h
	s.mu.Unlock()
	if held.Lost != nil {
		go s.forwardLoss(id, h, held.Lost)
	}
	return &lockpb.AcquireResponse{Handle: id, FencingToken: held.FencingToken, Warnings: held.Warnings}, nil
}

func (s *server) forwardLoss(id uint64, h *serverHandle, lost <-chan struct{}) {
	select {
	case <-lost:
		s.lost <- &lockpb.LostEvent{Handle: id, Reason: "the backend lost the lock"}
	case <-h.released:
	}
}

func (s *server) Release(ctx context.Context, r *lockpb.ReleaseRequest) (*lockpb.ReleaseResponse, error) {
	id := r.GetHandle()
	s.mu.Lock()
	if _, ok := s.pending[id]; ok {
		s.pending[id] = true
		s.mu.Unlock()
		return &lockpb.ReleaseResponse{}, nil
	}
	h, ok := s.held[id]
	delete(s.held, id)
	s.mu.Unlock()
	if !ok {
		return nil, toStatus(backend.Errorf("unlock", "", "", backend.ErrNotLocked))
	}
	close(h.released)
	if err := s.impl.Release(ctx, h.id); err != nil {
		return nil, toStatus(err)
	}
	return &lockpb.ReleaseResponse{}, nil
}

func (s *server) Inspect(ctx context.Context, r *lockpb.InspectRequest) (*lockpb.InspectResponse, error) {
	st, err := s.impl.Inspect(ctx, r.GetPath())
	if err != nil {
		return nil, toStatus(err)
	}
	return &lockpb.InspectResponse{Path: st.Path, Holders: ownersToWire(st.Holders), Waiters: ownersToWire(st.Waiters)}, nil
}

func (s *server) WatchLost(_ *lockpb.WatchLostRequest, stream lockpb.Backend_WatchLostServer) error {
	for {
		select {
		case ev := <-s.lost:
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		}
	}
}
