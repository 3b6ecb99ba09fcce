package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
)

var allCaps = Capabilities{Shared: true, ByteRanges: true, InheritedFD: true}

func TestValidate(t *testing.T) {
	flock := Capabilities{Shared: true, InheritedFD: true}
	posix := Capabilities{Shared: true, ByteRanges: true}
	cases := []struct {
		name string
		req  Request
		caps Capabilities
		want error
	}{
		{"whole file", Request{Path: "/l"}, flock, nil},
		{"no path", Request{}, flock, ErrInvalid},
		{"range on flock", Request{Path: "/l", Range: RangeOf(0, 10)}, flock, ErrUnsupported},
		{"range on posix", Request{Path: "/l", Range: RangeOf(0, 10)}, posix, nil},
		{"negative start", Request{Path: "/l", Range: Range{Start: -1, End: 5}}, posix, ErrInvalid},
		{"empty range", Request{Path: "/l", Range: Range{Start: 5, End: 5}}, posix, ErrInvalid},
		{"shared without support", Request{Path: "/l", Mode: Shared}, Capabilities{}, ErrUnsupported},
		{"unknown mode", Request{Path: "/l", Mode: 7}, flock, ErrInvalid},
		{"fd on posix", Request{FD: 4}, posix, ErrUnsupported},
		{"fd on flock", Request{FD: 4}, flock, nil},
		{"bad file mode", Request{Path: "/l", FileMode: 0o10000}, flock, ErrInvalid},
	}
	for _, c := range cases {
		err := c.req.Validate(c.caps)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: Validate = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestRangeOf(t *testing.T) {
	if r := RangeOf(0, 0); !r.IsWholeFile() {
		t.Errorf("RangeOf(0, 0) = %+v, want the whole file", r)
	}
	if r := RangeOf(10, 0); r.End != ToEOF || r.Len() != 0 {
		t.Errorf("RangeOf(10, 0) = %+v, want [10, EOF)", r)
	}
	if r := RangeOf(10, 5); r != (Range{10, 15}) || r.Len() != 5 {
		t.Errorf("RangeOf(10, 5) = %+v", r)
	}
	if !RangeOf(0, 10).Overlaps(RangeOf(9, 1)) || RangeOf(0, 10).Overlaps(RangeOf(10, 1)) {
		t.Error("Overlaps is wrong at the boundary")
	}
	if !RangeOf(5, 1).Overlaps(Range{}) {
		t.Error("the zero Range must overlap everything: it is the whole file")
	}
}

// TestRangeOfNegativeIsInvalid: a negative length (or start) is a mistake,
// never a lock to the end of the file. RangeOf(0, -1) used to overflow
// into [0, EOF), the whole file.
func TestRangeOfNegativeIsInvalid(t *testing.T) {
	cases := [][2]int64{
		{0, -1}, {10, -5}, {5, -5}, {1 << 62, -1}, {0, math.MinInt64},
		{math.MaxInt64, -1}, {-1, 5}, {-1, 0}, {-1, -1}, {math.MinInt64, -1}, {math.MinInt64, 0},
	}
	for _, c := range cases {
		r := RangeOf(c[0], c[1])
		if r.Valid() || r.IsWholeFile() {
			t.Errorf("RangeOf(%d, %d) = %+v, a valid range (whole file: %v); want an invalid one", c[0], c[1], r, r.IsWholeFile())
		}
		req := Request{Path: "/l", Range: r}
		if err := req.Validate(allCaps); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate of RangeOf(%d, %d) = %v, want ErrInvalid", c[0], c[1], err)
		}
	}
}

func TestErrorMatchesContextErrors(t *testing.T) {
	err := Errorf("lock", "/run/lock/x", "flock", ErrTimeout)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v: want ErrTimeout and DeadlineExceeded", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatalf("%v matches context.Canceled", err)
	}
	err = Errorf("lock", "/x", "flock", ErrCanceled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v: want context.Canceled", err)
	}
	if got, want := Errorf("lock", "/run/lock/x", "flock", ErrBusy).Error(), "lock /run/lock/x (flock): lock is held by another owner"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

func TestErrorfKeepsInnerContext(t *testing.T) {
	inner := &Error{Op: "lock", Path: "/a", Err: &fs.PathError{Op: "open", Path: "/a", Err: syscall.ENOENT}}
	err := Errorf("unlock", "/b", "posix", inner)
	var e *Error
	if !errors.As(err, &e) || e.Op != "lock" || e.Path != "/a" || e.Backend != "posix" {
		t.Fatalf("Errorf rewrapped %+v as %+v", inner, e)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%v lost its errno", err)
	}
}

func TestSentinelName(t *testing.T) {
	for name, sentinel := range Sentinels {
		err := fmt.Errorf("wrapped: %w", Errorf("lock", "/x", "b", sentinel))
		if got := SentinelName(err); got != name {
			t.Errorf("SentinelName(%v) = %q, want %q", err, got, name)
		}
	}
	if SentinelName(errors.New("other")) != "" {
		t.Error("SentinelName of a plain error is not empty")
	}
}

// FuzzValidate: validation never panics, and what it admits is a request
// a kernel would accept.
func FuzzValidate(f *testing.F) {
	f.Add("/l", 0, int64(0), int64(0), 0, uint32(0o644), true)
	f.Add("", 1, int64(-1), int64(5), 4, uint32(0o7777), false)
	f.Add("/l", 1, int64(1<<62), int64(1<<62), 0, uint32(0), true)
	f.Add("/l", 0, int64(0), int64(-1), 0, uint32(0), true)
	f.Add("/l", 0, int64(10), int64(-1<<63), 0, uint32(0), true)
	f.Fuzz(func(t *testing.T, path string, mode int, start, length int64, fd int, perm uint32, ranges bool) {
		caps := allCaps
		caps.ByteRanges = ranges
		req := Request{Path: path, Mode: Mode(mode), Range: RangeOf(start, length), FD: fd, FileMode: fs.FileMode(perm)}
		if err := req.Validate(caps); err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Validate(%+v) = %v, neither ErrInvalid nor ErrUnsupported", req, err)
			}
			return
		}
		if start < 0 || length < 0 {
			t.Fatalf("Validate admitted RangeOf(%d, %d) = %+v", start, length, req.Range)
		}
		r := req.Range.Normalize()
		if r.Start < 0 || r.End <= r.Start || r.Len() < 0 {
			t.Fatalf("Validate admitted range %+v", r)
		}
		if !ranges && !req.Range.IsWholeFile() {
			t.Fatalf("Validate admitted a range without byte-range support: %+v", r)
		}
		if req.Mode != Exclusive && req.Mode != Shared {
			t.Fatalf("Validate admitted mode %d", req.Mode)
		}
	})
}

// TestCapabilitiesNamed holds every capability to one JSON name, which
// `lockmgr backends` shows both as JSON and, through Words, as text: a
// field without one would be shown under its Go name, or not at all.
func TestCapabilitiesNamed(t *testing.T) {
	typ := reflect.TypeFor[Capabilities]()
	seen := map[string]bool{}
	all := reflect.New(typ).Elem()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || seen[name] {
			t.Errorf("Capabilities.%s: JSON name %q is missing or not unique", f.Name, name)
		}
		seen[name] = true
		switch fv := all.Field(i); fv.Kind() {
		case reflect.Bool:
			fv.SetBool(true)
		case reflect.String:
			fv.SetString("x")
		default:
			t.Errorf("Capabilities.%s: kind %s; Words and this test know bool and string", f.Name, fv.Kind())
		}
	}
	words := all.Interface().(Capabilities).Words()
	if len(words) != typ.NumField() {
		t.Errorf("Words() = %q: %d words for %d capabilities", words, len(words), typ.NumField())
	}
	b, err := json.Marshal(all.Interface())
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for name := range seen {
		if _, ok := back[name]; !ok {
			t.Errorf("JSON %s lacks %q", b, name)
		}
	}
	got := Capabilities{Shared: true, Owner: OwnerOpenFileDescription, HandsOver: true}.Words()
	want := []string{"shared", "owner=open-file-description", "hands-over"}
	if !slices.Equal(got, want) {
		t.Errorf("Words() = %q, want %q", got, want)
	}
}
