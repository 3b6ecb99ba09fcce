package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

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

	sendMu sync.Mutex
	stream lockpb.Backend_SessionClient

	inbox *descriptorInbox // nil: the plugin keeps every lock it grants

	mu       sync.Mutex
	calls    map[uint64]chan *lockpb.SessionResponse // awaiting an answer
	lost     map[uint64]chan struct{}                // one per granted lock
	dead     chan struct{}                           // closed once the plugin is gone
	deadOnce sync.Once
	// What the plugin declared of hand-over, once asked (handsOver).
	handsOverKnown, declaresHandOver bool
}

var _ backend.LockMgr = (*Client)(nil)

// nextID numbers every handle and call of every Client in the process,
// so that an id is never valid on two plugin instances: a host's lock
// handed out by a plugin that has since died and been started afresh
// can never name a lock that the new plugin granted to someone else.
var nextID atomic.Uint64

// NewClient returns a Client on conn, a connection to a backend plugin.
// Call Start before locking.
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{
		rpc:   lockpb.NewBackendClient(conn),
		calls: make(map[uint64]chan *lockpb.SessionResponse),
		lost:  make(map[uint64]chan struct{}),
		dead:  make(chan struct{}),
	}
}

// SetName sets the backend name that errors name where the plugin's own
// answer does not (a call cut short by the plugin's death, say).
func (c *Client) SetName(name string) { c.name = name }

// TakeDescriptors reads locked descriptors the plugin hands over on
// lifeline, the host's non-blocking end of its lifeline socket pair (see
// core/lockpb): from then on, a Request with HandOver is passed on, and a
// lock the plugin hands over comes back in Held.File. Call it before
// Start. Closing lifeline ends the reading.
func (c *Client) TakeDescriptors(lifeline *os.File) {
	c.inbox = newDescriptorInbox(lifeline)
}

// Start opens the session that carries locks, unlocks and loss notices.
func (c *Client) Start() error {
	stream, err := c.rpc.Session(context.Background())
	if err != nil {
		c.die()
		return err
	}
	c.stream = stream
	go c.receive()
	return nil
}

func (c *Client) receive() {
	for {
		r, err := c.stream.Recv()
		if err != nil {
			c.die()
			return
		}
		c.mu.Lock()
		if lost := r.GetLost(); lost != nil {
			if ch, ok := c.lost[lost.GetHandle()]; ok {
				close(ch)
				delete(c.lost, lost.GetHandle())
			}
		} else if ch, ok := c.calls[r.GetCall()]; ok {
			delete(c.calls, r.GetCall())
			ch <- r
		}
		c.mu.Unlock()
	}
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

// call sends req and waits for its answer. If ctx ends first, it cancels
// the call and still waits for the answer, so that a grant that raced
// with the cancel is known, and released, rather than left held for no one.
func (c *Client) call(ctx context.Context, req *lockpb.SessionRequest) (*lockpb.SessionResponse, error) {
	id := nextID.Add(1)
	req.Call = id
	answer := make(chan *lockpb.SessionResponse, 1)
	c.mu.Lock()
	c.calls[id] = answer
	c.mu.Unlock()
	if err := c.send(req); err != nil {
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		return nil, ErrPluginExited
	}
	select {
	case r := <-answer:
		return r, nil
	case <-c.dead:
		return nil, ErrPluginExited
	case <-ctx.Done():
	}
	_ = c.send(&lockpb.SessionRequest{Call: id, Op: &lockpb.SessionRequest_Cancel{Cancel: &lockpb.CancelRequest{}}})
	select {
	case r := <-answer:
		return r, nil
	case <-c.dead:
		return nil, ErrPluginExited
	}
}

func (c *Client) send(req *lockpb.SessionRequest) error {
	if c.stream == nil {
		return ErrPluginExited
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(req)
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
	r, err := c.rpc.Describe(ctx, &lockpb.DescribeRequest{})
	if err != nil {
		return backend.Info{}, fromStatus(ctx, err, "describe", "", c.name)
	}
	return backend.Info{Name: r.GetName(), Version: r.GetVersion(), Capabilities: capsFromWire(r.GetCapabilities())}, nil
}

// Configure implements backend.Configurer: it hands the plugin its
// settings, a JSON object. A plugin whose backend takes no settings
// refuses them with ErrConfig.
func (c *Client) Configure(ctx context.Context, settings []byte) error {
	if _, err := c.rpc.Configure(ctx, &lockpb.ConfigureRequest{SettingsJson: settings}); err != nil {
		return fromStatus(ctx, err, "configure", "", c.name)
	}
	return nil
}

// Acquire implements backend.LockMgr.
func (c *Client) Acquire(ctx context.Context, req backend.Request) (backend.Held, error) {
	if c.isDead() {
		return backend.Held{}, backend.Errorf("lock", req.Path, c.name, ErrPluginExited)
	}
	if err := ctx.Err(); err != nil {
		return backend.Held{}, backend.Errorf("lock", req.Path, c.name, backend.WaitError(ctx))
	}
	handle := nextID.Add(1)
	lost := make(chan struct{})
	c.mu.Lock()
	c.lost[handle] = lost // before the call: a loss notice may follow the grant at once
	c.mu.Unlock()
	handOver := req.HandOver && c.inbox != nil
	ar := &lockpb.AcquireRequest{
		HandOver:        handOver,
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
	r, err := c.call(ctx, &lockpb.SessionRequest{Op: &lockpb.SessionRequest_Acquire{Acquire: ar}})
	if err != nil && handOver {
		// No answer: the plugin may have handed the lock over and died
		// before it could say so. Whatever it sent is closed.
		c.inbox.abandon(handle)
	}
	var file *os.File
	if err == nil && r.GetAcquired().GetHandedOver() {
		c.forget(handle) // the kernel holds it now: nothing can lose it
		if file, err = c.inbox.take(handle); err != nil {
			err = backend.Errorf("lock", req.Path, c.name, err)
		}
	}
	if err == nil && r.GetFailure() != nil {
		err = fromFailure(r.GetFailure(), "lock", req.Path, c.name)
	}
	if err == nil && handOver && file == nil && !req.RemoveOnRelease && req.FD <= 0 {
		// A grant the plugin keeps. Only a backend that does not hand its
		// locks over may answer so (but for the two cases
		// Capabilities.HandsOver allows): one that declared it does would
		// have its host believe in a lock that no descriptor holds.
		if declared, derr := c.handsOver(ctx); derr != nil || declared {
			_ = c.Release(context.Background(), backend.HandleID(handle))
			if derr == nil {
				derr = fmt.Errorf("%w: it declares that it hands its locks over, yet granted one without the locked descriptor", backend.ErrPluginRejected)
			}
			c.forget(handle)
			return backend.Held{}, backend.Errorf("lock", req.Path, c.name, derr)
		}
	}
	switch {
	case err == nil && ctx.Err() != nil:
		// Granted as the wait ended: the caller has given up, so give it back.
		if file != nil {
			file.Close()
		} else {
			_ = c.Release(context.Background(), backend.HandleID(handle))
		}
		err = backend.WaitError(ctx)
	case ctx.Err() != nil && (errors.Is(err, backend.ErrCanceled) || errors.Is(err, backend.ErrTimeout)):
		// Our cancel can reach the plugin before its own copy of the
		// deadline fires; the caller's context says which it was.
		err = backend.WaitError(ctx)
	}
	if err != nil {
		c.forget(handle)
		return backend.Held{}, backend.Errorf("lock", req.Path, c.name, err)
	}
	a := r.GetAcquired()
	held := backend.Held{ID: backend.HandleID(handle), FencingToken: a.GetFencingToken(), Warnings: a.GetWarnings(), File: file}
	if file == nil {
		held.Lost = lost
	}
	return held, nil
}

func (c *Client) forget(handle uint64) {
	c.mu.Lock()
	delete(c.lost, handle)
	c.mu.Unlock()
}

// Release implements backend.LockMgr. The lock's Lost channel is settled
// by the answer, not before: if the plugin dies before it confirms the
// release, the lock was lost while still held, and Lost fires.
func (c *Client) Release(ctx context.Context, id backend.HandleID) error {
	if c.isDead() {
		c.forget(uint64(id))
		return backend.Errorf("unlock", "", c.name, ErrPluginExited)
	}
	r, err := c.call(ctx, &lockpb.SessionRequest{Op: &lockpb.SessionRequest_Release{Release: &lockpb.ReleaseRequest{Handle: uint64(id)}}})
	if err != nil {
		if errors.Is(err, ErrPluginExited) {
			c.die()
		}
		c.forget(uint64(id))
		return backend.Errorf("unlock", "", c.name, err)
	}
	c.forget(uint64(id))
	if f := r.GetFailure(); f != nil {
		return fromFailure(f, "unlock", "", c.name)
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
