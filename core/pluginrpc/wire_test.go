package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/protobuf/proto"
)

// tripFailure sends err the way a session answer does.
func tripFailure(t *testing.T, err error, op, path, name string) error {
	t.Helper()
	b, merr := proto.Marshal(ToFailure(err))
	if merr != nil {
		t.Fatal(merr)
	}
	f := &lockpb.Failure{}
	if err := proto.Unmarshal(b, f); err != nil {
		t.Fatal(err)
	}
	return FromFailure(f, op, path, name)
}

// checkWords insists that an error reads as lockmgr's, not gRPC's.
func checkWords(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	for _, bad := range []string{"rpc error", "code =", "desc ="} {
		if strings.Contains(msg, bad) {
			t.Errorf("error %q contains gRPC's %q", msg, bad)
		}
	}
}

// trips are the ways an error crosses the session; core/plugin adds
// go-plugin's gRPC status.
var trips = []struct {
	name string
	trip func(t *testing.T, err error, op, path, name string) error
}{
	{"failure", tripFailure},
}

func TestSentinelsRoundTrip(t *testing.T) {
	for name, sentinel := range backend.Sentinels {
		t.Run(name, func(t *testing.T) {
			// As a backend returns it: wrapped with a reason, inside an *Error.
			orig := backend.Errorf("lock", "/run/lock/job", "flock", fmt.Errorf("%w: because", sentinel))
			got := tripFailure(t, orig, "lock", "/run/lock/job", "flock")
			if !errors.Is(got, sentinel) {
				t.Fatalf("after the trip %v is not %s", got, name)
			}
			if backend.SentinelName(got) != name {
				t.Fatalf("after the trip %v names sentinel %q, want %q", got, backend.SentinelName(got), name)
			}
			if got.Error() != orig.Error() {
				t.Fatalf("after the trip the message is %q, want %q", got.Error(), orig.Error())
			}
			var be *backend.Error
			if !errors.As(got, &be) || be.Op != "lock" || be.Path != "/run/lock/job" || be.Backend != "flock" {
				t.Fatalf("after the trip %#v, want an *Error with op, path and backend", got)
			}
			checkWords(t, got)
			// The context errors a timeout and a cancel stand for.
			if name == "timeout" && !errors.Is(got, context.DeadlineExceeded) {
				t.Fatalf("timeout after the trip %v is not context.DeadlineExceeded", got)
			}
			if name == "canceled" && !errors.Is(got, context.Canceled) {
				t.Fatalf("cancel after the trip %v is not context.Canceled", got)
			}
		})
	}
}

func TestErrnoRoundTrip(t *testing.T) {
	cases := []struct {
		errno syscall.Errno
		is    error
	}{
		{syscall.ENOENT, fs.ErrNotExist},
		{syscall.EACCES, fs.ErrPermission},
		{syscall.EEXIST, fs.ErrExist},
		{syscall.ELOOP, syscall.ELOOP},
		{syscall.EBADF, syscall.EBADF},
	}
	for _, tr := range trips {
		for _, c := range cases {
			t.Run(tr.name+"/"+c.errno.Error(), func(t *testing.T) {
				orig := backend.Errorf("lock", "/no/such/dir/lock", "flock",
					&fs.PathError{Op: "open", Path: "/no/such/dir/lock", Err: c.errno})
				got := tr.trip(t, orig, "lock", "/no/such/dir/lock", "flock")
				if !errors.Is(got, c.errno) || !errors.Is(got, c.is) {
					t.Fatalf("after the trip %v is not %v and %v", got, c.errno, c.is)
				}
				if got.Error() != orig.Error() {
					t.Fatalf("after the trip the message is %q, want %q", got.Error(), orig.Error())
				}
				checkWords(t, got)
			})
		}
	}
}

func TestOpPathBackendPreserved(t *testing.T) {
	for _, tr := range trips {
		t.Run(tr.name, func(t *testing.T) {
			// What the plugin said wins over what the host's call knows.
			orig := &backend.Error{Op: "unlock", Path: "/plugin/said", Backend: "posix", Err: backend.ErrNotLocked}
			got := tr.trip(t, orig, "lock", "/host/said", "flock")
			var be *backend.Error
			if !errors.As(got, &be) {
				t.Fatalf("after the trip %v is not an *Error", got)
			}
			if be.Op != "unlock" || be.Path != "/plugin/said" || be.Backend != "posix" {
				t.Fatalf("after the trip op %q path %q backend %q, want the plugin's unlock /plugin/said posix", be.Op, be.Path, be.Backend)
			}

			// What the plugin left out, the host's call fills in: the
			// plugin's server names no backend for an unknown handle.
			orig = &backend.Error{Op: "unlock", Err: backend.ErrNotLocked}
			got = tr.trip(t, orig, "unlock", "/run/lock/x", "flock")
			if want := "unlock /run/lock/x (flock): lock is not held"; got.Error() != want {
				t.Fatalf("after the trip %q, want %q", got.Error(), want)
			}

			// A bare error, not an *Error, gets all three from the call.
			got = tr.trip(t, errors.New("disk on fire"), "lock", "/run/lock/x", "flock")
			if want := "lock /run/lock/x (flock): disk on fire"; got.Error() != want {
				t.Fatalf("after the trip %q, want %q", got.Error(), want)
			}
			if backend.SentinelName(got) != "" {
				t.Fatalf("a bare error came back as sentinel %q", backend.SentinelName(got))
			}
		})
	}
}

// fakeBackend answers every call with its err, so that a test can see
// what a real connection makes of it. Its err is set under mu: the race
// detector sees no order in a message through a socket.
type fakeBackend struct {
	mu  sync.Mutex
	err error
}

func (f *fakeBackend) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeBackend) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeBackend) Describe(context.Context) (backend.Info, error) {
	return backend.Info{}, f.get()
}

func (f *fakeBackend) Acquire(context.Context, backend.Request) (backend.Held, error) {
	return backend.Held{}, f.get()
}

func (f *fakeBackend) Release(context.Context, backend.HandleID) error { return f.get() }

func (f *fakeBackend) Inspect(context.Context, string) (backend.Status, error) {
	return backend.Status{}, f.get()
}

// serveFake serves f in memory and returns the host's Client and a
// function that stops the plugin.
func serveFake(t *testing.T, f *fakeBackend) (*Client, func()) {
	t.Helper()
	p := servePlugin(t, f)
	return p.connect("fake", SessionOptions{}), p.stop
}

// TestErrorsCrossTheSession sends errors through a real session: every
// call, the control plane's too, carries them as Failure answers.
// core/plugin tests the same over go-plugin's gRPC control plane.
func TestErrorsCrossTheSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := &fakeBackend{}
	c, stop := serveFake(t, f)

	f.set(backend.Errorf("lock", "/run/lock/x", "fake", backend.ErrBusy))
	_, err := c.Acquire(ctx, backend.Request{Path: "/run/lock/x"})
	if !errors.Is(err, backend.ErrBusy) || err.Error() != f.get().Error() {
		t.Fatalf("Acquire: %v, want %v", err, f.get())
	}
	checkWords(t, err)

	f.set(&fs.PathError{Op: "open", Path: "/run/lock/x", Err: syscall.ENOENT})
	_, err = c.Inspect(ctx, "/run/lock/x")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Inspect: %v, want fs.ErrNotExist", err)
	}
	if want := "inspect /run/lock/x (fake): open /run/lock/x: no such file or directory"; err.Error() != want {
		t.Fatalf("Inspect: %q, want %q", err.Error(), want)
	}

	f.set(backend.Unsupportedf("describing"))
	_, err = c.Describe(ctx)
	if !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("Describe: %v, want ErrUnsupported", err)
	}
	checkWords(t, err)

	// Releasing a handle the plugin never granted.
	err = c.Release(ctx, 12345)
	if !errors.Is(err, backend.ErrNotLocked) {
		t.Fatalf("Release of an unknown handle: %v, want ErrNotLocked", err)
	}
	if want := "unlock (fake): lock is not held"; err.Error() != want {
		t.Fatalf("Release of an unknown handle: %q, want %q", err.Error(), want)
	}

	// The plugin goes away: the session ends, and every call after says
	// so in lockmgr's words.
	stop()
	select {
	case <-c.Dead():
	case <-ctx.Done():
		t.Fatal("the client did not notice the server stop")
	}
	for what, err := range map[string]error{
		"Acquire":  func() error { _, err := c.Acquire(ctx, backend.Request{Path: "/run/lock/x"}); return err }(),
		"Release":  c.Release(ctx, 1),
		"Inspect":  func() error { _, err := c.Inspect(ctx, "/run/lock/x"); return err }(),
		"Describe": func() error { _, err := c.Describe(ctx); return err }(),
	} {
		if err == nil {
			t.Fatalf("%s after the plugin stopped: no error", what)
		}
		checkWords(t, err)
		if !strings.Contains(err.Error(), "(fake)") {
			t.Errorf("%s after the plugin stopped: %q does not name the backend", what, err)
		}
		if !errors.Is(err, backend.ErrLost) {
			t.Errorf("%s after the plugin stopped: %v, want ErrLost", what, err)
		}
	}
}

// TestCapabilitiesCrossTheWire: every capability of the core type has a
// proto field of its JSON name and kind, and each one, set alone, arrives
// set and alone. A capability added to backend.Capabilities and not to
// lockmgr.proto fails here rather than vanish at the plugin boundary.
func TestCapabilitiesCrossTheWire(t *testing.T) {
	fields := reflect.VisibleFields(reflect.TypeOf(backend.Capabilities{}))
	desc := (&lockpb.Capabilities{}).ProtoReflect().Descriptor().Fields()
	if len(fields) != desc.Len() {
		t.Errorf("backend.Capabilities has %d fields, lockpb.Capabilities %d", len(fields), desc.Len())
	}
	for i, f := range fields {
		if desc.ByName(capName(f)) == nil {
			t.Errorf("capability %s (%q) has no proto field of that name", f.Name, capName(f))
			continue
		}
		var one backend.Capabilities
		v := reflect.ValueOf(&one).Elem().Field(i)
		switch v.Kind() {
		case reflect.Bool:
			v.SetBool(true)
		case reflect.String:
			v.SetString("x")
		default:
			t.Errorf("capability %s is a %s, which the wire does not carry", f.Name, v.Kind())
			continue
		}
		if got := capsFromWire(capsToWire(one)); got != one {
			t.Errorf("capability %s alone: across the wire %+v, want %+v", f.Name, got, one)
		}
	}
}
