package pluginrpc

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/grpc"
)

// Client is the host side of a backend plugin. It implements
// backend.LockMgr over the plugin's gRPC connection, and it notices the
// plugin's death: every lock it granted then reports loss.
type Client struct {
	rpc  lockpb.BackendClient
	name string

	nextID atomic.Uint64

	mu       sync.Mutex
	lost     map[uint64]chan struct{} // one per granted lock
	dead     chan struct{}            // closed once the plugin is gone
	deadOnce sync.Once
	watching bool
}

var _ backend.LockMgr = (*Client)(nil)

// NewClient returns a Client on conn, a connection to a backend plugin.
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{
		rpc:  lockpb.NewBackendClient(conn),
		lost: make(map[uint64]chan struct{}),
		dead: make(chan struct{}),
	}
}

// SetName sets the backend name that errors name where the plugin's own
// answer does not (a call cut short by the plugin's death, say).
func (c *Client) SetName(name string) { c.name = name }

// Watch starts following the plugin's loss notices. The stream's end is
// also how the host learns, within milliseconds, that the plugin died.
func (c *Client) Watch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watching {
		return
	}
	c.watching = true
	stream, err := c.rpc.WatchLost(context.Background(), &lockpb.WatchLostRequest{})
	if err != nil {
		go c.die()
		return
	}
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				c.die()
				return
			}
			c.mu.Lock()
			if ch, ok := c.lost[ev.GetHandle()]; ok {
				close(ch)
				delete(c.lost, ev.GetHandle())
			}
			c.mu.Unlock()
		}
	}()
}

// die marks the plugin gone and reports every lock it held as lost.
func (c *Client) die() {
	c.deadOnce.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		close(c.dead)
		for id, ch := range c.lost {
			close(ch)
			delete(c.lost, id)
		}
	})
}

// MarkDead reports the plugin gone without waiting for its connection to
// say so; the host calls it when it stops the plugin.
func (c *Client) MarkDead() { c.die() }

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

// Describe implements backend.LockMgr.
func (c *Client) Describe(ctx context.Context) (backend.Info, error) {
	r, err := c.rpc.Describe(ctx, &lockpb.DescribeRequest{})
	if err != nil {
		return backend.Info{}, fromStatus(ctx, err, "describe", "", c.name)
	}
	return backend.Info{Name: r.GetName(), Version: r.GetVersion(), Capabilities: capsFromWire(r.GetCapabilities())}, nil
}

// Acquire implements backend.LockMgr.
func (c *Client) Acquire(ctx context.Context, req backend.Request) (backend.Held, error) {
	if c.isDead() {
		return backend.Held{}, backend.Errorf("lock", req.Path, c.name, ErrPluginExited)
	}
	id := c.nextID.Add(1)
	lost := make(chan struct{})
	c.mu.Lock()
	c.lost[id] = lost
	c.mu.Unlock()
	r, err := c.rpc.Acquire(ctx, &lockpb.AcquireRequest{
		Handle:          id,
		Path:            req.Path,
		Mode:            modeToWire(req.Mode),
		Start:           req.Range.Start,
		End:             req.Range.End,
		Wait:            req.Wait,
		FileMode:        uint32(req.FileMode.Perm()),
		RemoveOnRelease: req.RemoveOnRelease,
		Fd:              int32(req.FD),
	})
	if err != nil {
		c.forget(id)
		if ctx.Err() != nil {
			// The grant may have raced with the end of the wait; make sure
			// no lock stays held for nobody.
			go c.abandon(id)
		}
		return backend.Held{}, fromStatus(ctx, err, "lock", req.Path, c.name)
	}
	return backend.Held{ID: backend.HandleID(id), FencingToken: r.GetFencingToken(), Warnings: r.GetWarnings(), Lost: lost}, nil
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.lost, id)
	c.mu.Unlock()
}

func (c *Client) abandon(id uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = c.rpc.Release(ctx, &lockpb.ReleaseRequest{Handle: id})
}

// Release implements backend.LockMgr.
func (c *Client) Release(ctx context.Context, id backend.HandleID) error {
	c.mu.Lock()
	_, wasHeld := c.lost[uint64(id)]
	delete(c.lost, uint64(id))
	c.mu.Unlock()
	if c.isDead() {
		if wasHeld {
			return backend.Errorf("unlock", "", c.name, ErrPluginExited)
		}
		return backend.Errorf("unlock", "", c.name, backend.ErrLost)
	}
	if _, err := c.rpc.Release(ctx, &lockpb.ReleaseRequest{Handle: uint64(id)}); err != nil {
		return fromStatus(ctx, err, "unlock", "", c.name)
	}
	return nil
}

// Inspect implements backend.LockMgr.
func (c *Client) Inspect(ctx context.Context, path string) (backend.Status, error) {
	r, err := c.rpc.Inspect(ctx, &lockpb.InspectRequest{Path: path})
	if err != nil {
		return backend.Status{}, fromStatus(ctx, err, "inspect", path, c.name)
	}
	return backend.Status{Path: r.GetPath(), Holders: ownersFromWire(r.GetHolders()), Waiters: ownersFromWire(r.GetWaiters())}, nil
}
