package main

import (
	"strings"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
)

func TestParseSeconds(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "2": 2 * time.Second, "0.25": 250 * time.Millisecond,
		"1m30s": 90 * time.Second, "1500ms": 1500 * time.Millisecond,
	} {
		if got, err := parseSeconds(in); err != nil || got != want {
			t.Errorf("parseSeconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-1", "-1s", "NaN", "Inf", "1e300"} {
		if got, err := parseSeconds(in); err == nil {
			t.Errorf("parseSeconds(%q) = %v, want an error", in, got)
		}
	}
}

func TestWaits(t *testing.T) {
	for _, tc := range []struct {
		f    lockFlags
		want bool
	}{
		{lockFlags{}, true},
		{lockFlags{nonblock: true}, false},
		{lockFlags{timeoutSet: true, timeout: 0}, false},
		{lockFlags{timeoutSet: true, timeout: time.Second}, true},
		{lockFlags{nonblock: true, timeoutSet: true, timeout: time.Second}, false},
	} {
		if got := tc.f.waits(); got != tc.want {
			t.Errorf("%+v.waits() = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestLiveTextFits(t *testing.T) {
	path := "/var/lib/some/rather/long/directory/name/for/the/job.lock"
	held := "held by pid 123456 (backup.sh), exclusive flock"
	tail := ": 12.3s, 47.7s left"
	for width := 1; width <= 200; width++ {
		got := liveText(width, path, held, tail)
		if n := len([]rune(got)); n > max(width-1, 0) {
			t.Fatalf("width %d: %d runes: %q", width, n, got)
		}
		// The times are what changes; they stay whenever they fit at all.
		if width > len("lockmgr: waiting")+len(tail) && !strings.HasSuffix(got, tail) {
			t.Errorf("width %d lost the times: %q", width, got)
		}
	}
	if got := liveText(200, path, held, tail); got != "lockmgr: waiting for "+path+" ("+held+")"+tail {
		t.Errorf("wide terminal: %q", got)
	}
	// The holder outlasts the path.
	if got := liveText(90, path, held, tail); !strings.Contains(got, held) {
		t.Errorf("width 90 lost the holder: %q", got)
	}
}

func TestOwnerText(t *testing.T) {
	for _, tc := range []struct {
		o    backend.LockOwner
		want string
	}{
		{backend.LockOwner{PID: 12, Command: "sh", Kind: "flock", Mode: backend.Exclusive}, "pid 12 (sh), exclusive flock"},
		{backend.LockOwner{PID: -1, Kind: "ofd", Mode: backend.Shared, Range: backend.Range{Start: 5, End: 10}}, "an unknown process, shared ofd, bytes 5-9"},
		{backend.LockOwner{PID: 7, Kind: "posix", Range: backend.Range{Start: 100, End: backend.ToEOF}}, "pid 7, exclusive posix, bytes 100-EOF"},
	} {
		if got := ownerText(tc.o); got != tc.want {
			t.Errorf("ownerText(%+v) = %q, want %q", tc.o, got, tc.want)
		}
	}
}
