package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/protobuf/proto"
)

// pretender declares that it hands its locks over (as flock and ofd do)
// but grants them without a descriptor: what a process answering in a
// real plugin's place would do to have its host run a command with the
// lock free.
type pretender struct{ scriptedBackend }

func (p *pretender) Describe(context.Context) (backend.Info, error) {
	return backend.Info{Name: "pretender", Capabilities: backend.Capabilities{HandsOver: true}}, nil
}

// serveWithLifeline serves impl as a plugin does and returns the host's
// Client.
func serveWithLifeline(t *testing.T, impl backend.LockMgr) *Client {
	t.Helper()
	return servePlugin(t, impl).connect("pretender", SessionOptions{})
}

// TestHandOverGrantWithoutDescriptorRefused: a plugin that declared it
// hands its locks over never has a grant accepted without the locked
// descriptor; the grant is given back, and the caller told why.
func TestHandOverGrantWithoutDescriptorRefused(t *testing.T) {
	b := &pretender{*newScripted(nil)}
	c := serveWithLifeline(t, b)
	held, err := c.Acquire(context.Background(), backend.Request{Path: "/x", HandOver: true})
	if err == nil {
		t.Fatalf("a grant without its descriptor was accepted: %+v", held)
	}
	if !errors.Is(err, backend.ErrPluginRejected) {
		t.Errorf("Acquire: %v, want ErrPluginRejected", err)
	}
	if n := b.released.Load(); n != 1 {
		t.Errorf("the plugin's grant was released %d times, want once", n)
	}
}

// TestHandOverBackendMayKeepWhatItMust: the two grants a hand-over
// backend keeps by contract (RemoveOnRelease, an inherited FD) are
// accepted without a descriptor.
func TestHandOverBackendMayKeepWhatItMust(t *testing.T) {
	c := serveWithLifeline(t, &pretender{*newScripted(nil)})
	for _, req := range []backend.Request{
		{Path: "/remove", HandOver: true, RemoveOnRelease: true},
		{Path: "/fd", HandOver: true, FD: 4},
	} {
		held, err := c.Acquire(context.Background(), req)
		if err != nil {
			t.Fatalf("Acquire(%+v): %v", req, err)
		}
		if err := c.Release(context.Background(), held.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// giver hands over a fresh file for every grant, as flock and ofd do.
type giver struct {
	scriptedBackend
	path string
}

func (g *giver) Acquire(context.Context, backend.Request) (backend.Held, error) {
	f, err := os.Create(g.path)
	if err != nil {
		return backend.Held{}, err
	}
	return backend.Held{File: f}, nil
}

// descriptorsOf counts this process's descriptors open on path.
func descriptorsOf(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link == path {
			n++
		}
	}
	return n
}

// TestHandedOverGrantIsTheOnlyCopy: once a handed-over lock's WaitSole
// returns, the plugin has closed its own copy, so that the host's is the
// only one and closing it (a command's exit, the host's) frees the lock
// at once, not when the plugin's thread next runs. The plugin and the
// host share this process here, so /proc/self/fd shows both copies.
func TestHandedOverGrantIsTheOnlyCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	c := servePlugin(t, &giver{scriptedBackend: *newScripted(nil), path: path}).connect("giver", SessionOptions{})
	for range 200 {
		held, err := c.Acquire(context.Background(), backend.Request{Path: path, HandOver: true})
		if err != nil {
			t.Fatal(err)
		}
		if held.File == nil || held.WaitSole == nil {
			t.Fatalf("the grant was not handed over with a WaitSole: %+v", held)
		}
		held.WaitSole()
		if n := descriptorsOf(t, path); n != 1 {
			t.Fatalf("%d descriptors of the lock once WaitSole returned, want the host's alone", n)
		}
		held.File.Close()
	}
}

// handPlugin is the plugin's end of a session driven by hand, for what
// no honest plugin does: withholding copy_closed.
type handPlugin struct {
	t    *testing.T
	conn *packetConn
	c    *Client
}

func newHandPlugin(t *testing.T, opts SessionOptions) *handPlugin {
	t.Helper()
	pluginEnd, hostEnd := sessionPair(t)
	conn, err := newPacketConn(pluginEnd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.close() })
	c := NewSessionClient()
	c.SetName("hand")
	if err := c.StartSession(hostEnd, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.MarkDead)
	return &handPlugin{t: t, conn: conn, c: c}
}

// grant reads the host's next request, an acquire, and grants it with f
// handed over, sending no copy_closed; it returns the call's id.
func (p *handPlugin) grant(f *os.File) uint64 {
	p.t.Helper()
	r, err := p.conn.recv()
	if err != nil {
		p.t.Fatal(err)
	}
	req := &lockpb.SessionRequest{}
	if err := proto.Unmarshal(r.data, req); err != nil || req.GetAcquire() == nil {
		p.t.Fatalf("the host sent %v (%v), want an acquire", req, err)
	}
	grant := &lockpb.SessionResponse{Call: req.GetCall(), Result: &lockpb.SessionResponse_Acquired{
		Acquired: &lockpb.AcquireResponse{Handle: req.GetAcquire().GetHandle(), HandedOver: true}}}
	if err := p.conn.send(grant, f); err != nil {
		p.t.Fatal(err)
	}
	return req.GetCall()
}

func (p *handPlugin) copyClosed(call uint64) {
	p.t.Helper()
	resp := &lockpb.SessionResponse{Call: call, Result: &lockpb.SessionResponse_CopyClosed{CopyClosed: &lockpb.CopyClosed{}}}
	if err := p.conn.send(resp); err != nil {
		p.t.Fatal(err)
	}
}

// acquireAsync starts an Acquire of a handed-over lock on path.
func (p *handPlugin) acquireAsync(path string) <-chan backend.Held {
	got := make(chan backend.Held, 1)
	go func() {
		held, err := p.c.Acquire(context.Background(), backend.Request{Path: path, HandOver: true})
		if err != nil {
			p.t.Errorf("Acquire: %v", err)
		}
		got <- held
	}()
	return got
}

// TestHandedOverGrantReturnsBeforeCopyClosed: Acquire returns at the
// grant, not at the copy_closed that follows it, which used to put a
// second wake-up of the host on every lock's path (issue 20). The
// plugin's copy matters only once the file is handed on, so WaitSole,
// not Acquire, waits for copy_closed.
func TestHandedOverGrantReturnsBeforeCopyClosed(t *testing.T) {
	p := newHandPlugin(t, SessionOptions{})
	path := filepath.Join(t.TempDir(), "lock")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	got := p.acquireAsync(path)
	call := p.grant(f)
	var held backend.Held
	within(t, 30*time.Second, "Acquire, with copy_closed withheld", func() error {
		held = <-got
		return nil
	})
	if held.File == nil || held.WaitSole == nil {
		t.Fatalf("the grant was not handed over with a WaitSole: %+v", held)
	}
	defer held.File.Close()
	f.Close()
	p.copyClosed(call)
	within(t, 30*time.Second, "WaitSole after copy_closed", func() error {
		held.WaitSole()
		return nil
	})
	if n := descriptorsOf(t, path); n != 1 {
		t.Fatalf("%d descriptors of the lock once WaitSole returned, want the host's alone", n)
	}
	// The call ended at copy_closed: a second one is a protocol error,
	// which the next reader finds.
	p.copyClosed(call)
	within(t, 30*time.Second, "an Acquire after a second copy_closed", func() error {
		held, err := p.c.Acquire(context.Background(), backend.Request{Path: path, HandOver: true})
		if !errors.Is(err, ErrPluginExited) || !strings.Contains(err.Error(), "protocol error") {
			return fmt.Errorf("%+v, %v; want the plugin ended for a protocol error", held, err)
		}
		return nil
	})
}

// TestCopyWithheldKillsThePlugin: a plugin that never closes its copy of
// a lock it handed over is killed once WaitSole's bound passes, and its
// copy closes with it; WaitSole then returns.
func TestCopyWithheldKillsThePlugin(t *testing.T) {
	killed := make(chan struct{})
	p := newHandPlugin(t, SessionOptions{CancelTimeout: 50 * time.Millisecond, Kill: func() { close(killed) }})
	path := filepath.Join(t.TempDir(), "lock")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := p.acquireAsync(path)
	p.grant(f)
	held := <-got
	if held.WaitSole == nil {
		t.Fatalf("the grant was not handed over with a WaitSole: %+v", held)
	}
	defer held.File.Close()
	within(t, 30*time.Second, "WaitSole with copy_closed withheld", func() error {
		held.WaitSole()
		return nil
	})
	select {
	case <-killed:
	default:
		t.Fatal("WaitSole returned without the plugin's copy closed or the plugin killed")
	}
	if !p.c.isDead() {
		t.Fatal("the session outlived a plugin that withheld copy_closed")
	}
}

// TestPluginDeathEndsWaitSole: a plugin that dies before its copy_closed
// took its copy with it, so WaitSole returns.
func TestPluginDeathEndsWaitSole(t *testing.T) {
	p := newHandPlugin(t, SessionOptions{})
	path := filepath.Join(t.TempDir(), "lock")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	got := p.acquireAsync(path)
	p.grant(f)
	held := <-got
	defer held.File.Close()
	f.Close()
	p.c.PluginExited()
	within(t, 30*time.Second, "WaitSole after the plugin's death", func() error {
		held.WaitSole()
		return nil
	})
}
