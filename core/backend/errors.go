package backend

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Backends return them wrapped in an *Error, and the
// plugin boundary carries them across as gRPC status details, so that
// errors.Is(err, ErrBusy) holds in-process and across the boundary alike.
var (
	// ErrBusy means the lock is held by someone else and the request did
	// not ask to wait.
	ErrBusy = errors.New("lock is held by another owner")
	// ErrTimeout means the wait's deadline passed before the lock was
	// free. An *Error wrapping it also matches context.DeadlineExceeded.
	ErrTimeout = errors.New("timed out waiting for the lock")
	// ErrCanceled means the wait was canceled. An *Error wrapping it also
	// matches context.Canceled.
	ErrCanceled = errors.New("wait for the lock was canceled")
	// ErrNotLocked means the handle holds no lock: it was released already,
	// or never granted.
	ErrNotLocked = errors.New("lock is not held")
	// ErrLost means the lock was lost before it was released: the backend
	// died, or its lease expired.
	ErrLost = errors.New("lock was lost")
	// ErrUnsupported means the backend cannot do what was asked, such as a
	// byte range on flock, or OFD locks on a kernel that lacks them.
	ErrUnsupported = errors.New("not supported by this backend")
	// ErrInvalid means the request itself is malformed (a negative range,
	// an empty path).
	ErrInvalid = errors.New("invalid request")
	// ErrBackendNotFound means no plugin binary of that name was found.
	ErrBackendNotFound = errors.New("backend not found")
	// ErrPluginRejected means a plugin binary was found but refused: unsafe
	// permissions, a checksum mismatch, or a failed handshake.
	ErrPluginRejected = errors.New("backend plugin rejected")
	// ErrConfig means a backend refused its settings (the [backends.NAME]
	// table of the configuration, or its LOCKMGR_NAME_KEY variables): an
	// unknown key, a value of the wrong type, an endpoint that is no URL.
	ErrConfig = errors.New("invalid backend settings")
	// ErrUnavailable means the backend's lock service (an etcd cluster)
	// cannot be reached or will not serve; trying again later may work.
	ErrUnavailable = errors.New("lock service unavailable")
)

// Error reports a failed lock operation: what was done, to which file,
// by which backend, and why.
type Error struct {
	// Op is the operation: "lock", "unlock", "inspect", "describe", "start".
	Op string
	// Path is the lock file, if there is one.
	Path string
	// Backend is the backend's name.
	Backend string
	// Err is the cause: a sentinel above, a syscall.Errno, or another error.
	Err error
}

// Error returns a message such as
// "lock /run/lock/job (flock): lock is held by another owner".
func (e *Error) Error() string {
	msg := e.Op
	if e.Path != "" {
		msg += " " + e.Path
	}
	if e.Backend != "" {
		msg += " (" + e.Backend + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause and, for a timeout or a cancel, the matching
// context error too, so that callers may test either.
func (e *Error) Unwrap() []error {
	switch {
	case errors.Is(e.Err, ErrTimeout) && !errors.Is(e.Err, context.DeadlineExceeded):
		return []error{e.Err, context.DeadlineExceeded}
	case errors.Is(e.Err, ErrCanceled) && !errors.Is(e.Err, context.Canceled):
		return []error{e.Err, context.Canceled}
	}
	return []error{e.Err}
}

// Errorf returns an *Error for op on path by backend whose cause is err.
// An error that is already an *Error keeps its own op, path and backend
// where it has them.
func Errorf(op, path, backendName string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		out := *e
		if out.Op == "" {
			out.Op = op
		}
		if out.Path == "" {
			out.Path = path
		}
		if out.Backend == "" {
			out.Backend = backendName
		}
		return &out
	}
	return &Error{Op: op, Path: path, Backend: backendName, Err: err}
}

// WaitError turns the end of ctx into ErrTimeout or ErrCanceled.
func WaitError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	if ctx.Err() != nil {
		return ErrCanceled
	}
	return nil
}

// Sentinels lists every sentinel error with a stable name, the name the
// plugin boundary sends across the wire.
var Sentinels = map[string]error{
	"busy":              ErrBusy,
	"timeout":           ErrTimeout,
	"canceled":          ErrCanceled,
	"not-locked":        ErrNotLocked,
	"lost":              ErrLost,
	"unsupported":       ErrUnsupported,
	"invalid":           ErrInvalid,
	"backend-not-found": ErrBackendNotFound,
	"plugin-rejected":   ErrPluginRejected,
	"config":            ErrConfig,
	"unavailable":       ErrUnavailable,
}

// SentinelName returns the name in Sentinels of the sentinel that err
// wraps, or "" when it wraps none.
func SentinelName(err error) string {
	// Check the specific ones before the ones an *Error adds on unwrap.
	for _, name := range []string{"busy", "timeout", "canceled", "not-locked", "lost", "unsupported", "invalid", "backend-not-found", "plugin-rejected", "config", "unavailable"} {
		if errors.Is(err, Sentinels[name]) {
			return name
		}
	}
	return ""
}

// Unsupportedf returns an ErrUnsupported that says what is unsupported.
func Unsupportedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// Invalidf returns an ErrInvalid that says what is wrong.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
