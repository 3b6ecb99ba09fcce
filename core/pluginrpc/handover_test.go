package pluginrpc

import (
	"context"
	"errors"
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
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
