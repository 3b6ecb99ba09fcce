package plugin

import (
	"context"

	"github.com/lockmgr/lockmgr/core/lockpb"
	"github.com/lockmgr/lockmgr/core/lockpb/controlpb"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"google.golang.org/grpc"
)

// controlServer serves a backend's control plane over gRPC, its errors as
// statuses that carry a lockpb.Failure.
type controlServer struct {
	controlpb.UnimplementedBackendServer
	control *pluginrpc.Control
}

func (s *controlServer) Describe(ctx context.Context, _ *lockpb.DescribeRequest) (*lockpb.DescribeResponse, error) {
	r, err := s.control.Describe(ctx)
	return r, toStatus(err)
}

func (s *controlServer) Inspect(ctx context.Context, r *lockpb.InspectRequest) (*lockpb.InspectResponse, error) {
	resp, err := s.control.Inspect(ctx, r.GetPath())
	return resp, toStatus(err)
}

func (s *controlServer) Configure(ctx context.Context, r *lockpb.ConfigureRequest) (*lockpb.ConfigureResponse, error) {
	if err := s.control.Configure(ctx, r.GetSettingsJson()); err != nil {
		return nil, toStatus(err)
	}
	return &lockpb.ConfigureResponse{}, nil
}

// ControlPlane is the host's end of a plugin's control plane over its
// gRPC connection c: what a Client started by go-plugin calls for
// Describe, Inspect and Configure.
func ControlPlane(c grpc.ClientConnInterface) pluginrpc.ControlPlane {
	return controlClient{rpc: controlpb.NewBackendClient(c)}
}

type controlClient struct{ rpc controlpb.BackendClient }

func (c controlClient) Describe(ctx context.Context, name string) (*lockpb.DescribeResponse, error) {
	r, err := c.rpc.Describe(ctx, &lockpb.DescribeRequest{})
	if err != nil {
		return nil, fromStatus(ctx, err, "describe", "", name)
	}
	return r, nil
}

func (c controlClient) Inspect(ctx context.Context, name, path string) (*lockpb.InspectResponse, error) {
	r, err := c.rpc.Inspect(ctx, &lockpb.InspectRequest{Path: path})
	if err != nil {
		return nil, fromStatus(ctx, err, "inspect", path, name)
	}
	return r, nil
}

func (c controlClient) Configure(ctx context.Context, name string, settings []byte) error {
	if _, err := c.rpc.Configure(ctx, &lockpb.ConfigureRequest{SettingsJson: settings}); err != nil {
		return fromStatus(ctx, err, "configure", "", name)
	}
	return nil
}

// Window sizes fixed at 1 MiB turn off gRPC's bandwidth-delay probing,
// whose pings cost a round trip on a local socket and buy nothing.
const window = 1 << 20

// DialOptions are the host side's gRPC options for a plugin connection.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(window),
		grpc.WithInitialConnWindowSize(window),
		grpc.WithDisableRetry(),
		grpc.WithDisableServiceConfig(),
	}
}

func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts,
		grpc.InitialWindowSize(window),
		grpc.InitialConnWindowSize(window),
		// Reuse handler goroutines rather than start one per call.
		grpc.NumStreamWorkers(2),
	)
	return grpc.NewServer(opts...)
}
