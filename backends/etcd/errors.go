package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/redact"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/raft/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errNoConnection is why an attempt failed when no member of the cluster
// could be reached within dial_timeout.
var errNoConnection = errors.New("no member could be reached")

// errQueued marks the end of a wait in line behind another holder, by the
// caller's deadline or cancel.
var errQueued = errors.New("waiting behind the holder")

// retryable reports whether err says the cluster could not serve a
// request for now, rather than refused it: it had no leader, or lost the
// request with its leader (etcd's "request timed out"), or could not be
// reached, or did not answer within request_timeout, or a lease expired
// for want of answers. Another attempt may succeed.
func retryable(err error) bool {
	switch {
	case errors.Is(err, errNoConnection), errors.Is(err, errLeaseGone), errors.Is(err, concurrency.ErrSessionExpired),
		errors.Is(err, rpctypes.ErrLeaseNotFound), errors.Is(err, rpctypes.ErrNotLeader),
		errors.Is(err, context.DeadlineExceeded): // request_timeout; the caller's own is checked first
		return true
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable || ee.Code() == codes.ResourceExhausted
	}
	if st, ok := status.FromError(err); ok {
		// A member without a leader drops a proposal: raft's own error,
		// which etcd passes on as it is.
		return st.Code() == codes.Unavailable || st.Code() == codes.ResourceExhausted || st.Message() == raft.ErrProposalDropped.Error()
	}
	return false
}

// errLeaseGone is why a lock could not be granted, or was lost: its lease
// expired, or may have, because etcd did not answer its keep-alives.
var errLeaseGone = errors.New("the lock's lease expired, or etcd did not renew it in time")

// errUnreachable is why a lock failed when etcd did not answer in time.
// It stands in for the context.DeadlineExceeded of the bounded call, which
// must not reach the caller: that would read as the caller's own wait
// timing out (backend.ErrTimeout), which it did not.
var errUnreachable = fmt.Errorf("%w: etcd did not answer", backend.ErrUnavailable)

// cause turns an error from etcd, met while doing what, into the error
// Acquire or Inspect reports: the caller's own deadline or cancel as
// backend.ErrTimeout or backend.ErrCanceled, and anything else with the
// endpoints it came from.
func (s settings) cause(ctx context.Context, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return backend.WaitError(ctx)
	case errors.Is(err, backend.ErrBusy):
		return err
	case errors.Is(err, errLeaseGone):
		return redact.Error(fmt.Errorf("%s at %s: %w", what, s.endpointList(), err))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return redact.Error(fmt.Errorf("%s: %w at %s within %v (dial_timeout)", what, errUnreachable, s.endpointList(), s.dialTimeout))
	case isAuthError(err):
		// The settings' username and password, or the user's rights: a
		// matter for the configuration, not for trying again.
		return redact.Error(fmt.Errorf("%s at %s: %w: %w", what, s.endpointList(), backend.ErrConfig, err))
	}
	// Anything else etcd says is the service failing to serve.
	return redact.Error(fmt.Errorf("%s at %s: %w: %w", what, s.endpointList(), backend.ErrUnavailable, err))
}

// unanswered is the error of an Acquire that gave up after spent, with
// the cluster never having served it: the service unavailable, naming the
// endpoints (without their credentials) and what went wrong last, never
// the raw gRPC status. why says what ended it, if not the caller's
// deadline.
func (s settings) unanswered(spent time.Duration, last error, why string) error {
	return redact.Error(fmt.Errorf("%w: etcd at %s did not serve the lock within %v: %s%s",
		backend.ErrUnavailable, s.endpointList(), spent.Round(100*time.Millisecond), problem(last), why))
}

// problem says in a few words what last went wrong with a request.
func problem(err error) string {
	var ee rpctypes.EtcdError
	switch {
	case errors.Is(err, errNoConnection):
		return errNoConnection.Error()
	case errors.Is(err, errLeaseGone), errors.Is(err, concurrency.ErrSessionExpired), errors.Is(err, rpctypes.ErrLeaseNotFound):
		return "the lease expired for want of answers"
	case errors.As(err, &ee):
		return ee.Error() // etcd's own words: "etcdserver: no leader"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "no answer"
	}
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// isAuthError reports whether etcd refused the settings' username and
// password, or the user's rights.
func isAuthError(err error) bool {
	for _, auth := range []error{rpctypes.ErrAuthFailed, rpctypes.ErrPermissionDenied, rpctypes.ErrInvalidAuthToken, rpctypes.ErrUserEmpty} {
		if errors.Is(err, auth) {
			return true
		}
	}
	return false
}
