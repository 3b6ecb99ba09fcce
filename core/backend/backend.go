// Package backend defines the contract between lockmgr and a locking
// mechanism: the LockMgr interface, the request and answer types, and the
// errors a backend returns.
//
// Every backend (flock, posix, ofd, and third-party ones) implements
// LockMgr as a plain Go type, which the plugin boundary in
// github.com/lockmgr/lockmgr/core/pluginrpc serves over gRPC. The plugin's
// client stub implements the same interface, so that the conformance suite
// in github.com/lockmgr/lockmgr/core/locktest holds a backend to the same
// rules in-process and across the process boundary.
//
// The package depends on the standard library only, so that a backend
// author pulls in nothing they do not need.
package backend

import (
	"context"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
)

// LockMgr is the contract every backend implements. Its methods are safe
// for concurrent use: one backend serves every lock of its host process.
type LockMgr interface {
	// Describe reports the backend's name, version and capabilities.
	Describe(ctx context.Context) (Info, error)

	// Acquire takes the lock that req describes. With req.Wait it blocks
	// until the lock is granted or ctx ends (ErrTimeout once ctx's deadline
	// passes, ErrCanceled when ctx is canceled); without it, a held lock is
	// ErrBusy at once.
	Acquire(ctx context.Context, req Request) (Held, error)

	// Release gives up the lock behind id. Releasing an id that is not held
	// (again, or never) is ErrNotLocked.
	Release(ctx context.Context, id HandleID) error

	// Inspect reports who holds and who waits for the lock file at path,
	// whatever process or mechanism holds it.
	Inspect(ctx context.Context, path string) (Status, error)
}

// Configurer is implemented by backends that take settings: a lock
// service's endpoints and credentials, say. The host calls Configure once,
// after the plugin starts and before any other call, with the backend's
// [backends.NAME] table of the configuration merged with its
// LOCKMGR_NAME_KEY environment variables, encoded as one JSON object
// (decode it into a struct of your own with encoding/json). A backend
// that is not a Configurer is never given settings; configuring one is an
// error the host reports, so that a misspelt table does not go unnoticed.
//
// Settings may hold secrets (a password): a backend must never echo a
// value into an error or a log. Errors should wrap ErrConfig and name the
// key at fault.
type Configurer interface {
	Configure(ctx context.Context, settings []byte) error
}

// HandleID names one granted lock within the backend that granted it.
type HandleID uint64

// Mode is the kind of lock: exclusive (a writer) or shared (readers).
type Mode int

const (
	// Exclusive excludes every other lock on the same file or range.
	Exclusive Mode = iota
	// Shared admits other shared locks and excludes exclusive ones.
	Shared
)

// String returns "exclusive" or "shared", as lockmgr prints it.
func (m Mode) String() string {
	if m == Shared {
		return "shared"
	}
	return "exclusive"
}

// ToEOF is the End of a Range that reaches the end of the file however
// long it grows, the meaning of a zero length in struct flock.
const ToEOF int64 = math.MaxInt64

// Range is a byte range [Start, End) of a lock file. The zero Range, and
// any range with End == ToEOF and Start == 0, is the whole file.
type Range struct {
	Start int64
	End   int64
}

// WholeFile is the range that covers every byte of the file.
var WholeFile = Range{Start: 0, End: ToEOF}

// RangeOf converts struct flock's (start, length) to a Range; a length of
// zero reaches the end of the file, and so does one that would run past
// the largest offset. A negative start or length gives a range that
// Valid refuses, so that Lock reports ErrInvalid: struct flock reads a
// negative length as the bytes before start, which lockmgr does not
// offer, and a mistaken sign must never widen into "to the end of the
// file".
func RangeOf(start, length int64) Range {
	switch {
	case length < 0:
		end := start + length
		if end > start {
			// Wrapped round (start is negative then): keep End below Start.
			end = math.MinInt64
		}
		return Range{Start: start, End: end}
	case length == 0 || start > ToEOF-length:
		return Range{Start: start, End: ToEOF}
	}
	return Range{Start: start, End: start + length}
}

// IsWholeFile reports whether r covers the whole file.
func (r Range) IsWholeFile() bool {
	return r == Range{} || r == WholeFile
}

// Len returns struct flock's l_len for r: zero when r reaches the end of
// the file.
func (r Range) Len() int64 {
	if r.End == ToEOF || r == (Range{}) {
		return 0
	}
	return r.End - r.Start
}

// Normalize returns r with the zero Range turned into WholeFile.
func (r Range) Normalize() Range {
	if r == (Range{}) {
		return WholeFile
	}
	return r
}

// Overlaps reports whether r and o share at least one byte.
func (r Range) Overlaps(o Range) bool {
	r, o = r.Normalize(), o.Normalize()
	return r.Start < o.End && o.Start < r.End
}

// Valid reports whether r is a range a kernel would accept.
func (r Range) Valid() bool {
	r = r.Normalize()
	return r.Start >= 0 && r.End > r.Start
}

// Request describes one lock to acquire.
type Request struct {
	// Path names the lock file, as an absolute path. It is opened with
	// O_NOFOLLOW, so a symbolic link as its last component is refused
	// rather than followed.
	Path string
	// Name is the lock's name as the caller wrote it, before it was made
	// absolute against the caller's working directory. Backends that lock
	// no local file (Capabilities.Distributed) key the lock on Name, which
	// means the same on every host; file backends use Path.
	Name string
	// Mode is Exclusive or Shared.
	Mode Mode
	// Range is the byte range to lock; the zero Range is the whole file.
	// Backends without byte ranges refuse any other with ErrUnsupported.
	Range Range
	// Wait makes Acquire block until the lock is free; without it a held
	// lock is ErrBusy at once.
	Wait bool
	// FileMode is the permission a newly created lock file gets (before
	// the umask); zero means 0644.
	FileMode os.FileMode
	// RemoveOnRelease unlinks the lock file when the last holder releases
	// it, while that holder still holds it, so that no two processes ever
	// both believe they hold the lock.
	RemoveOnRelease bool
	// FD, when positive, is a descriptor already open in the backend's own
	// process (handed to it by its host) to lock instead of opening Path;
	// the lock then lives as long as that open file description. Only
	// backends whose locks belong to open file descriptions accept it.
	FD int
	// HandOver tells a backend whose locks belong to the open file
	// description that the caller can keep the locked file itself: the
	// backend returns it in Held.File and keeps no record of the lock. The
	// lock then lives where the descriptor is, not in the backend, which is
	// how a plugin gives its host a lock that survives the plugin. A
	// backend that cannot hand a lock over ignores it.
	HandOver bool
	// HostPID is the process the lock is taken for, as the plugin knows
	// it (its connection's peer), or 0: for a backend that records its
	// holder where others can read it (etcd), which the plugin itself is
	// not when it serves many hosts.
	HostPID int
}

// Held is a granted lock.
type Held struct {
	// ID names the lock for Release.
	ID HandleID
	// FencingToken, when non-zero, increases strictly with every new holder
	// of the same lock, for backends that can give one (see
	// Capabilities.FencingTokens); pass it to the resource the lock guards
	// so that it can refuse a holder whose lock has expired.
	FencingToken uint64
	// Warnings are caveats a person should hear, such as a flock lock on an
	// NFS mount that other NFS clients will not see.
	Warnings []string
	// Lost, if not nil, is closed when the backend loses the lock before
	// Release (an expired lease, say). A nil channel never fires.
	Lost <-chan struct{}
	// File, when not nil, is the locked open file itself, handed over at
	// the caller's request (Request.HandOver). The lock is the open file
	// description's: it lasts until the last descriptor of it is closed,
	// and no one can lose it meanwhile. The backend has forgotten it: ID
	// means nothing, and the caller releases the lock by closing File (and
	// every copy of it that it gave away).
	File *os.File
	// WaitSole, when not nil, waits until File is the only descriptor of
	// its open file description outside the caller's process, and must be
	// called before File, or a copy of it, leaves the caller: a plugin
	// hands File over with its grant and closes its own copy a moment
	// later, so until then a command that closes the copy it was given
	// would leave the lock held. Nil means File is sole already (an
	// in-process backend's). core/pluginrpc's client sets it, a backend
	// never does.
	WaitSole func()
	// Keeper, when not nil, keeps this lock, and no other, alive in the
	// plugin that holds it for as long as any copy of it is open, even
	// after the host has gone: the write end of a pipe whose read end the
	// plugin watches. A host asks for one when it may hand the lock to a
	// command (lockmgr run); core/pluginrpc's client sets it, a backend
	// never does. The caller closes it after Release.
	Keeper *os.File
}

// Owner says what a backend's locks belong to, which decides when they
// are released.
type Owner string

const (
	// OwnerProcess locks (POSIX record locks) belong to a process and an
	// inode: closing any descriptor of the file releases them.
	OwnerProcess Owner = "process"
	// OwnerOpenFileDescription locks (flock, OFD) belong to one open file
	// description and are released when its last descriptor closes.
	OwnerOpenFileDescription Owner = "open-file-description"
	// OwnerSession locks belong to a session with a lock service (a lease).
	OwnerSession Owner = "session"
)

// Capabilities tell a caller what a backend can promise.
//
// Each field's JSON name is its one name everywhere lockmgr shows it:
// `lockmgr backends --json` encodes the struct as it is, and Words, for
// the text form, is derived from the same tags. A new capability is a
// field with a tag, and it shows in both without another line of code;
// the plugin protocol's message (core/lockpb) uses the same names.
type Capabilities struct {
	// Shared is true when shared (read) locks are supported.
	Shared bool `json:"shared"`
	// ByteRanges is true when a Request may name a Range.
	ByteRanges bool `json:"byte_ranges"`
	// Owner says what the lock belongs to.
	Owner Owner `json:"owner"`
	// InheritedAcrossFork is true when a child process forked by the holder
	// shares the lock (it does for flock and OFD locks, not POSIX ones).
	InheritedAcrossFork bool `json:"inherited_across_fork"`
	// NetworkFilesystems is true when the lock is seen by other clients of
	// an NFS mount.
	NetworkFilesystems bool `json:"network_filesystems"`
	// Distributed is true when the lock excludes processes on other hosts.
	Distributed bool `json:"distributed"`
	// FencingTokens is true when Held.FencingToken is set.
	FencingTokens bool `json:"fencing_tokens"`
	// InheritedFD is true when Request.FD is accepted.
	InheritedFD bool `json:"inherited_fd"`
	// HandsOver is true when the backend hands its locks over as locked
	// files (Request.HandOver, Held.File): through a plugin, the lock then
	// lives in the host's descriptor, not in the plugin, and the plugin's
	// death cannot lose it. Such a backend keeps a lock itself only for a
	// request with RemoveOnRelease (it must unlink the file while holding
	// it) or an FD (the caller holds the open file already); a host
	// refuses any other grant that comes without its file.
	HandsOver bool `json:"hands_over"`
}

// Words lists c as words, in field order: the JSON name, with '-' for
// '_', of each capability that is true, and "NAME=VALUE" for one that is
// not a yes or no (owner=open-file-description) and is set.
func (c Capabilities) Words() []string {
	var words []string
	v := reflect.ValueOf(c)
	for i, f := range reflect.VisibleFields(v.Type()) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		name = strings.ReplaceAll(name, "_", "-")
		switch fv := v.Field(i); {
		case fv.Kind() == reflect.Bool:
			if fv.Bool() {
				words = append(words, name)
			}
		case !fv.IsZero():
			words = append(words, fmt.Sprintf("%s=%v", name, fv.Interface()))
		}
	}
	return words
}

// Info describes a backend.
type Info struct {
	Name         string
	Version      string
	Capabilities Capabilities
}

// Status is what Inspect finds for one lock file.
type Status struct {
	// Path is the file inspected.
	Path string
	// Holders are the locks granted on the file.
	Holders []LockOwner
	// Waiters are the processes blocked in the kernel waiting for a lock
	// on it. (lockmgr's own waiters do not block in the kernel, so they
	// do not appear here.)
	Waiters []LockOwner
}

// Locked reports whether any lock is held on the file.
func (s Status) Locked() bool { return len(s.Holders) > 0 }

// LockOwner is one lock held or awaited, as the kernel reports it.
type LockOwner struct {
	// PID is the process holding the lock, or -1 when the kernel does not
	// know it (an OFD lock, whose owner is an open file description).
	PID int
	// Command is the process's command name, if known.
	Command string
	// Kind is the lock's mechanism: "flock", "posix", "ofd", or a backend's
	// own word for a lock that is not a kernel lock.
	Kind string
	// Mode is Exclusive or Shared.
	Mode Mode
	// Range is the locked byte range.
	Range Range
	// Detail is a backend's free-form note (an etcd lease and key, say).
	Detail string
}

// Validate checks req against what a backend with caps can do, so that
// every backend refuses the same malformed requests with the same errors.
func (req Request) Validate(caps Capabilities) error {
	switch {
	case req.Path == "" && req.FD <= 0:
		return Invalidf("no lock file named")
	case req.Mode != Exclusive && req.Mode != Shared:
		return Invalidf("unknown lock mode %d", req.Mode)
	case req.Mode == Shared && !caps.Shared:
		return Unsupportedf("shared locks")
	case req.Range.Normalize().Start < 0:
		return Invalidf("byte range starts at %d, before the start of the file", req.Range.Start)
	case !req.Range.Valid():
		return Invalidf("byte range from %d to %d: a length must be positive, or zero for to the end of the file", req.Range.Start, req.Range.End)
	case !req.Range.IsWholeFile() && !caps.ByteRanges:
		return Unsupportedf("byte ranges")
	case req.FD > 0 && !caps.InheritedFD:
		return Unsupportedf("locking an inherited descriptor (this backend's locks do not belong to an open file description)")
	case req.FD < 0:
		return Invalidf("descriptor %d", req.FD)
	case req.FileMode&^0o7777 != 0:
		return Invalidf("lock file mode %#o", req.FileMode)
	}
	return nil
}

// maxNameLen is the longest backend name ValidName accepts.
const maxNameLen = 64

// ValidName reports whether name may name a backend: one of the
// built-in names or a third-party plugin name matching
// ^[a-z0-9][a-z0-9_-]{0,63}$. A backend name ends up in a plugin's file
// name and on command lines, so it is kept to characters that are safe in a
// single path component (no "/", no leading "." or "-") and need no
// quoting in a shell.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > maxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
