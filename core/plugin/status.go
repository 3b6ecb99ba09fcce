package plugin

import (
	"context"
	"fmt"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// sentinelCodes gives each sentinel a gRPC code of its own, so that even
// a reader of raw traffic can tell them apart; the Failure detail is what
// the host decodes.
var sentinelCodes = map[string]codes.Code{
	"busy":              codes.Aborted,
	"timeout":           codes.DeadlineExceeded,
	"canceled":          codes.Canceled,
	"not-locked":        codes.NotFound,
	"lost":              codes.DataLoss,
	"unsupported":       codes.Unimplemented,
	"invalid":           codes.InvalidArgument,
	"backend-not-found": codes.NotFound,
	"plugin-rejected":   codes.FailedPrecondition,
	"config":            codes.InvalidArgument,
	"unavailable":       codes.Unavailable,
}

// toStatus encodes a backend's error as a gRPC status carrying a Failure.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	f := pluginrpc.ToFailure(err)
	code, ok := sentinelCodes[f.Sentinel]
	if !ok {
		code = codes.Unknown
	}
	st, derr := status.New(code, err.Error()).WithDetails(f)
	if derr != nil {
		return status.Error(code, err.Error())
	}
	return st.Err()
}

// fromStatus rebuilds the backend error behind a gRPC error, filling in
// op, path and backend from the call where the plugin did not say them.
func fromStatus(ctx context.Context, err error, op, path, name string) error {
	st, ok := status.FromError(err)
	if !ok {
		return backend.Errorf(op, path, name, err)
	}
	for _, d := range st.Details() {
		if f, ok := d.(*lockpb.Failure); ok {
			return pluginrpc.FromFailure(f, op, path, name)
		}
	}
	// No Failure: the call never reached the backend, or its answer never
	// came back. Say why in lockmgr's words, never as a raw gRPC status.
	switch {
	case ctx.Err() != nil:
		return backend.Errorf(op, path, name, backend.WaitError(ctx))
	case st.Code() == codes.DeadlineExceeded:
		return backend.Errorf(op, path, name, backend.ErrTimeout)
	case st.Code() == codes.Canceled:
		return backend.Errorf(op, path, name, backend.ErrCanceled)
	case st.Code() == codes.Unavailable:
		return backend.Errorf(op, path, name, pluginrpc.ErrPluginExited)
	}
	return backend.Errorf(op, path, name, fmt.Errorf("backend plugin failed: %s", st.Message()))
}
