package pluginrpc

import (
	"errors"
	"reflect"
	"strings"
	"syscall"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func modeToWire(m backend.Mode) lockpb.Mode {
	if m == backend.Shared {
		return lockpb.Mode_MODE_SHARED
	}
	return lockpb.Mode_MODE_EXCLUSIVE
}

func modeFromWire(m lockpb.Mode) backend.Mode {
	if m == lockpb.Mode_MODE_SHARED {
		return backend.Shared
	}
	return backend.Exclusive
}

// capsToWire and capsFromWire carry backend.Capabilities field by field
// under their JSON names, which are the proto fields' names: the core type
// is the one list of capabilities, and a field added there travels with no
// change here (TestCapabilitiesCrossTheWire holds the proto to it).
func capsToWire(c backend.Capabilities) *lockpb.Capabilities {
	out := &lockpb.Capabilities{}
	m := out.ProtoReflect()
	v := reflect.ValueOf(c)
	for i, f := range reflect.VisibleFields(v.Type()) {
		fd := m.Descriptor().Fields().ByName(capName(f))
		if fd == nil {
			continue
		}
		switch fv := v.Field(i); fv.Kind() {
		case reflect.Bool:
			m.Set(fd, protoreflect.ValueOfBool(fv.Bool()))
		case reflect.String:
			m.Set(fd, protoreflect.ValueOfString(fv.String()))
		}
	}
	return out
}

func capsFromWire(c *lockpb.Capabilities) backend.Capabilities {
	var out backend.Capabilities
	if c == nil {
		return out
	}
	m := c.ProtoReflect()
	v := reflect.ValueOf(&out).Elem()
	for i, f := range reflect.VisibleFields(v.Type()) {
		fd := m.Descriptor().Fields().ByName(capName(f))
		if fd == nil {
			continue
		}
		switch fv := v.Field(i); fv.Kind() {
		case reflect.Bool:
			fv.SetBool(m.Get(fd).Bool())
		case reflect.String:
			fv.SetString(m.Get(fd).String())
		}
	}
	return out
}

// capName is a Capabilities field's JSON name, which names its proto
// field too.
func capName(f reflect.StructField) protoreflect.Name {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return protoreflect.Name(name)
}

func ownersToWire(in []backend.LockOwner) []*lockpb.LockOwner {
	out := make([]*lockpb.LockOwner, len(in))
	for i, o := range in {
		out[i] = &lockpb.LockOwner{
			Pid: int64(o.PID), Command: o.Command, Kind: o.Kind, Mode: modeToWire(o.Mode),
			Start: o.Range.Start, End: o.Range.End, Detail: o.Detail,
		}
	}
	return out
}

func ownersFromWire(in []*lockpb.LockOwner) []backend.LockOwner {
	var out []backend.LockOwner
	for _, o := range in {
		out = append(out, backend.LockOwner{
			PID: int(o.GetPid()), Command: o.GetCommand(), Kind: o.GetKind(), Mode: modeFromWire(o.GetMode()),
			Range: backend.Range{Start: o.GetStart(), End: o.GetEnd()}, Detail: o.GetDetail(),
		})
	}
	return out
}

// ToFailure encodes a backend's error for the wire: in a session's
// answer, or as the detail of a gRPC status (core/plugin).
func ToFailure(err error) *lockpb.Failure {
	f := &lockpb.Failure{Sentinel: backend.SentinelName(err), Message: err.Error()}
	var be *backend.Error
	if errors.As(err, &be) {
		f.Op, f.Path, f.Backend = be.Op, be.Path, be.Backend
		if be.Err != nil {
			f.Message = be.Err.Error()
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		f.Errno = int32(errno)
	}
	return f
}

// FromFailure rebuilds the error behind f, filling in op, path and
// backend from the call where the plugin did not say them.
func FromFailure(f *lockpb.Failure, op, path, name string) error {
	var causes []error
	if s := backend.Sentinels[f.GetSentinel()]; s != nil {
		causes = append(causes, s)
	}
	if f.GetErrno() != 0 {
		causes = append(causes, syscall.Errno(f.GetErrno()))
	}
	e := &backend.Error{Op: f.GetOp(), Path: f.GetPath(), Backend: f.GetBackend(), Err: &wireError{msg: f.GetMessage(), causes: causes}}
	return backend.Errorf(op, path, name, e)
}

// wireError is a backend's cause rebuilt on the host: its text as the
// plugin said it, and the sentinel or errno it wrapped, so errors.Is holds.
type wireError struct {
	msg    string
	causes []error
}

func (e *wireError) Error() string   { return e.msg }
func (e *wireError) Unwrap() []error { return e.causes }

// ErrPluginExited is the cause of an operation cut short because the
// plugin process died. It wraps backend.ErrLost.
var ErrPluginExited = &wireError{msg: "backend plugin exited unexpectedly", causes: []error{backend.ErrLost}}
