package plugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

// tripStatus sends err the way a plugin's unary answer does and decodes
// it as the host does, through the bytes of the status detail.
func tripStatus(t *testing.T, err error, op, path, name string) error {
	t.Helper()
	st := toStatus(err)
	if st == nil {
		t.Fatalf("toStatus(%v) = nil", err)
	}
	b, merr := proto.Marshal(status.Convert(st).Proto())
	if merr != nil {
		t.Fatal(merr)
	}
	sp := status.New(codes.OK, "").Proto() // a fresh *spb.Status to decode into
	if err := proto.Unmarshal(b, sp); err != nil {
		t.Fatal(err)
	}
	return fromStatus(context.Background(), status.FromProto(sp).Err(), op, path, name)
}

// checkWords insists that an error reads as lockmgr's, not gRPC's.
func checkWords(t *testing.T, err error) {
	t.Helper()
	for _, bad := range []string{"rpc error", "code =", "desc ="} {
		if strings.Contains(err.Error(), bad) {
			t.Errorf("error %q contains gRPC's %q", err, bad)
		}
	}
}

func TestSentinelsCrossAStatus(t *testing.T) {
	if len(backend.Sentinels) != len(sentinelCodes) {
		t.Fatalf("%d sentinels but %d gRPC codes for them", len(backend.Sentinels), len(sentinelCodes))
	}
	for name, sentinel := range backend.Sentinels {
		orig := backend.Errorf("lock", "/run/lock/job", "flock", fmt.Errorf("%w: because", sentinel))
		got := tripStatus(t, orig, "lock", "/run/lock/job", "flock")
		if !errors.Is(got, sentinel) || got.Error() != orig.Error() {
			t.Errorf("%s after the trip: %v, want %v", name, got, orig)
		}
		checkWords(t, got)
		st := status.Convert(toStatus(sentinel))
		if st.Code() != sentinelCodes[name] || st.Code() == codes.OK || st.Code() == codes.Unknown {
			t.Errorf("%s travels as %v, want %v", name, st.Code(), sentinelCodes[name])
		}
	}
	if code := status.Convert(toStatus(errors.New("disk on fire"))).Code(); code != codes.Unknown {
		t.Errorf("an error wrapping no sentinel travels as %v, want Unknown", code)
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) is not nil")
	}
}

func TestErrnoAndNamesCrossAStatus(t *testing.T) {
	orig := backend.Errorf("lock", "/no/such/dir/lock", "flock", &fs.PathError{Op: "open", Path: "/no/such/dir/lock", Err: syscall.ENOENT})
	got := tripStatus(t, orig, "lock", "/no/such/dir/lock", "flock")
	if !errors.Is(got, syscall.ENOENT) || !errors.Is(got, fs.ErrNotExist) || got.Error() != orig.Error() {
		t.Errorf("after the trip %v, want %v, ENOENT", got, orig)
	}
	// What the plugin said wins over what the host's call knows; what it
	// left out, the call fills in.
	got = tripStatus(t, &backend.Error{Op: "unlock", Path: "/plugin/said", Backend: "posix", Err: backend.ErrNotLocked}, "lock", "/host/said", "flock")
	var be *backend.Error
	if !errors.As(got, &be) || be.Op != "unlock" || be.Path != "/plugin/said" || be.Backend != "posix" {
		t.Errorf("after the trip %#v, want the plugin's unlock /plugin/said posix", got)
	}
	got = tripStatus(t, errors.New("disk on fire"), "lock", "/run/lock/x", "flock")
	if want := "lock /run/lock/x (flock): disk on fire"; got.Error() != want {
		t.Errorf("after the trip %q, want %q", got, want)
	}
}

func TestTransportErrorsInLockmgrWords(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		is   error
	}{
		{"unavailable", context.Background(), status.Error(codes.Unavailable, "connection error: desc = \"transport: error while dialing\""), pluginrpc.ErrPluginExited},
		{"deadline", context.Background(), status.Error(codes.DeadlineExceeded, "context deadline exceeded"), backend.ErrTimeout},
		{"canceled code", context.Background(), status.Error(codes.Canceled, "context canceled"), backend.ErrCanceled},
		{"canceled context", canceled, status.Error(codes.Unavailable, "transport is closing"), backend.ErrCanceled},
		{"internal", context.Background(), status.Error(codes.Internal, "grpc: error unmarshalling request"), nil},
		{"unimplemented", context.Background(), status.Error(codes.Unimplemented, "unknown method Inspect"), nil},
	}
	for _, c := range cases {
		got := fromStatus(c.ctx, c.err, "inspect", "/run/lock/x", "flock")
		checkWords(t, got)
		if !strings.HasPrefix(got.Error(), "inspect /run/lock/x (flock): ") {
			t.Errorf("%s: %q does not name the op, path and backend", c.name, got)
		}
		if c.is != nil && !errors.Is(got, c.is) {
			t.Errorf("%s: %v is not %v", c.name, got, c.is)
		}
		// A gRPC code must not pass for a backend's answer: Unimplemented
		// is not ErrUnsupported.
		if c.is == nil && backend.SentinelName(got) != "" {
			t.Errorf("%s: %v came back as sentinel %q", c.name, got, backend.SentinelName(got))
		}
	}
}

// answering is a backend whose control-plane calls answer err.
type answering struct {
	mu  sync.Mutex
	err error
}

func (a *answering) get() error { a.mu.Lock(); defer a.mu.Unlock(); return a.err }
func (a *answering) set(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
}
func (a *answering) Describe(context.Context) (backend.Info, error) {
	return backend.Info{Name: "fake", Version: "1"}, a.get()
}
func (a *answering) Acquire(context.Context, backend.Request) (backend.Held, error) {
	return backend.Held{}, backend.ErrUnsupported
}
func (a *answering) Release(context.Context, backend.HandleID) error { return backend.ErrUnsupported }
func (a *answering) Inspect(_ context.Context, path string) (backend.Status, error) {
	return backend.Status{Path: path}, a.get()
}

// TestControlPlaneOverGRPC serves a backend's control plane on a real
// gRPC connection, as a plugin that go-plugin started does, and calls it
// as its host does: answers and errors arrive in lockmgr's words, and a
// plugin that has gone says so as a lost plugin.
func TestControlPlaneOverGRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	impl := &answering{}
	lis := bufconn.Listen(1 << 20)
	srv := newGRPCServer(nil)
	(&GRPCPlugin{Impl: impl}).GRPCServer(nil, srv)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///plugin", append(DialOptions(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := (&GRPCPlugin{}).GRPCClient(ctx, nil, conn)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*pluginrpc.Client)
	c.SetName("fake")

	if info, err := c.Describe(ctx); err != nil || info.Name != "fake" || info.Version != "1" {
		t.Fatalf("Describe: %+v, %v", info, err)
	}
	if st, err := c.Inspect(ctx, "/run/lock/x"); err != nil || st.Path != "/run/lock/x" {
		t.Fatalf("Inspect: %+v, %v", st, err)
	}
	impl.set(&fs.PathError{Op: "open", Path: "/run/lock/x", Err: syscall.ENOENT})
	_, err = c.Inspect(ctx, "/run/lock/x")
	if want := "inspect /run/lock/x (fake): open /run/lock/x: no such file or directory"; err == nil || err.Error() != want || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Inspect: %v, want %q", err, want)
	}
	impl.set(backend.Unsupportedf("describing"))
	if _, err := c.Describe(ctx); !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("Describe: %v, want ErrUnsupported", err)
	}
	// A backend that takes no settings refuses them, by name.
	if err := c.Configure(ctx, []byte(`{"x":1}`)); !errors.Is(err, backend.ErrConfig) || !strings.Contains(err.Error(), "(fake)") {
		t.Fatalf("Configure: %v, want ErrConfig naming the backend", err)
	}
	checkWords(t, err)

	srv.Stop()
	_, err = c.Describe(ctx)
	if !errors.Is(err, backend.ErrLost) {
		t.Fatalf("Describe after the plugin stopped: %v, want ErrLost", err)
	}
	checkWords(t, err)
}
