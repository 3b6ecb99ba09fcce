package pluginrpc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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

// TestHandedOverGrantIsTheOnlyCopy: when Acquire returns a handed-over
// lock, the plugin has closed its own copy already, so that the host's
// is the only one and closing it (an Unlock, the host's exit) frees the
// lock at once, not when the plugin's thread next runs. The plugin and
// the host share this process here, so /proc/self/fd shows both copies.
func TestHandedOverGrantIsTheOnlyCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	c := servePlugin(t, &giver{scriptedBackend: *newScripted(nil), path: path}).connect("giver", SessionOptions{})
	for range 200 {
		held, err := c.Acquire(context.Background(), backend.Request{Path: path, HandOver: true})
		if err != nil {
			t.Fatal(err)
		}
		if held.File == nil {
			t.Fatal("the grant was not handed over")
		}
		if n := descriptorsOf(t, path); n != 1 {
			t.Fatalf("%d descriptors of the lock once Acquire returned, want the host's alone", n)
		}
		held.File.Close()
	}
}
