package proclocks

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
)

func TestParseLines(t *testing.T) {
	tests := []struct {
		line string
		want Lock
	}{
		{
			"1: FLOCK  ADVISORY  WRITE 1234 08:01:131090 0 EOF",
			Lock{ID: 1, Kind: KindFlock, Mode: backend.Exclusive, PID: 1234, Major: 8, Minor: 1, Inode: 131090, Range: backend.WholeFile},
		},
		{
			// Device numbers are hex, the inode decimal, the end inclusive.
			"2: POSIX  ADVISORY  READ 2345 fd:00:1234 0 99",
			Lock{ID: 2, Kind: KindPOSIX, Mode: backend.Shared, PID: 2345, Major: 0xfd, Minor: 0, Inode: 1234, Range: backend.Range{Start: 0, End: 100}},
		},
		{
			"3: OFDLCK ADVISORY  WRITE -1 08:01:131091 10 19",
			Lock{ID: 3, Kind: KindOFD, Mode: backend.Exclusive, PID: -1, Major: 8, Minor: 1, Inode: 131091, Range: backend.Range{Start: 10, End: 20}},
		},
		{
			"3: -> OFDLCK ADVISORY  WRITE -1 08:01:131091 10 19",
			Lock{ID: 3, Kind: KindOFD, Mode: backend.Exclusive, PID: -1, Major: 8, Minor: 1, Inode: 131091, Range: backend.Range{Start: 10, End: 20}, Waiting: true},
		},
		{
			// A waiter two levels down the queue is indented one more space.
			"3:  -> POSIX  ADVISORY  READ 77 08:01:131091 5 EOF",
			Lock{ID: 3, Kind: KindPOSIX, Mode: backend.Shared, PID: 77, Major: 8, Minor: 1, Inode: 131091, Range: backend.Range{Start: 5, End: backend.ToEOF}, Waiting: true},
		},
		{
			"4: FLOCK  ADVISORY  WRITE 3456 00:2f:12 0 EOF",
			Lock{ID: 4, Kind: KindFlock, Mode: backend.Exclusive, PID: 3456, Major: 0, Minor: 0x2f, Inode: 12, Range: backend.WholeFile},
		},
		{
			"5: POSIX  MANDATORY WRITE 1 103:02:7 0 0",
			Lock{ID: 5, Kind: KindPOSIX, Mode: backend.Exclusive, PID: 1, Major: 0x103, Minor: 2, Inode: 7, Range: backend.Range{Start: 0, End: 1}},
		},
		{
			"6: LEASE  ACTIVE    READ 4567 08:01:99 0 EOF",
			Lock{ID: 6, Kind: "lease", Mode: backend.Shared, PID: 4567, Major: 8, Minor: 1, Inode: 99, Range: backend.WholeFile},
		},
		{
			"7: LEASE  BREAKING  UNLCK 4567 08:01:99 0 EOF",
			Lock{ID: 7, Kind: "lease", Mode: backend.Exclusive, PID: 4567, Major: 8, Minor: 1, Inode: 99, Range: backend.WholeFile},
		},
		{
			"8: DELEG  ACTIVE    READ 4567 08:01:99 0 EOF",
			Lock{ID: 8, Kind: "deleg", Mode: backend.Shared, PID: 4567, Major: 8, Minor: 1, Inode: 99, Range: backend.WholeFile},
		},
		{
			"9: ACCESS ADVISORY  READ 12 08:01:99 0 EOF",
			Lock{ID: 9, Kind: "access", Mode: backend.Shared, PID: 12, Major: 8, Minor: 1, Inode: 99, Range: backend.WholeFile},
		},
		{
			"10: UNKNOWN UNKNOWN  WRITE 12 <none>:0 0 EOF",
			Lock{ID: 10, Kind: "unknown", Mode: backend.Exclusive, PID: 12, Range: backend.WholeFile},
		},
		{
			// The last byte a lock can name must not overflow Range.End.
			"11: POSIX  ADVISORY  WRITE 12 08:01:99 100 9223372036854775806",
			Lock{ID: 11, Kind: KindPOSIX, Mode: backend.Exclusive, PID: 12, Major: 8, Minor: 1, Inode: 99, Range: backend.Range{Start: 100, End: backend.ToEOF}},
		},
	}
	for _, tt := range tests {
		locks, err := Parse(strings.NewReader(tt.line + "\n"))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.line, err)
			continue
		}
		if len(locks) != 1 || locks[0] != tt.want {
			t.Errorf("Parse(%q) = %+v, want [%+v]", tt.line, locks, tt.want)
		}
	}
}

func TestParseTable(t *testing.T) {
	table := `1: FLOCK  ADVISORY  WRITE 1234 08:01:131090 0 EOF
2: POSIX  ADVISORY  READ 2345 fd:00:1234 0 99

3: OFDLCK ADVISORY  WRITE -1 08:01:131091 10 19
3: -> OFDLCK ADVISORY  WRITE -1 08:01:131091 10 19
4: FLOCK  ADVISORY  WRITE 3456 00:2f:12 0 EOF
`
	locks, err := Parse(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range locks {
		got = append(got, strconv.Itoa(l.ID)+" "+l.Kind+" "+strconv.FormatBool(l.Waiting))
	}
	want := []string{"1 flock false", "2 posix false", "3 ofd false", "3 ofd true", "4 flock false"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("Parse read %q, want %q", got, want)
	}

	empty, err := Parse(strings.NewReader(""))
	if err != nil || len(empty) != 0 {
		t.Errorf("Parse of an empty table = %v, %v; want no locks and no error", empty, err)
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		line    string
		wantErr string // in the error besides the line itself
		cause   error  // the wrapped cause, if any
	}{
		{"1 FLOCK  ADVISORY  WRITE 1 08:01:2 0 EOF", `no "ID:"`, nil},
		{"x: FLOCK  ADVISORY  WRITE 1 08:01:2 0 EOF", "bad lock ID", strconv.ErrSyntax},
		{"1: FLOCK  ADVISORY  WRITE 1 08:01:2 0", "6 fields after the ID", nil},
		{"1: FLOCK  ADVISORY  WRITE 1 08:01:2 0 EOF extra", "8 fields after the ID", nil},
		{"1: ->", "0 fields after the ID", nil},
		{"1: FLOCK  ADVISORY  WRIT 1 08:01:2 0 EOF", `lock type "WRIT"`, nil},
		{"1: FLOCK  ADVISORY  WRITE pid 08:01:2 0 EOF", "bad pid", strconv.ErrSyntax},
		{"1: FLOCK  ADVISORY  WRITE 1 08-01-2 0 EOF", "not MAJOR:MINOR:INODE", nil},
		{"1: FLOCK  ADVISORY  WRITE 1 zz:01:2 0 EOF", "bad device major", strconv.ErrSyntax},
		{"1: FLOCK  ADVISORY  WRITE 1 08:zz:2 0 EOF", "bad device minor", strconv.ErrSyntax},
		{"1: FLOCK  ADVISORY  WRITE 1 08:01:-2 0 EOF", "bad inode", strconv.ErrSyntax},
		{"1: POSIX  ADVISORY  WRITE 1 08:01:2 -1 EOF", "negative range start", nil},
		{"1: POSIX  ADVISORY  WRITE 1 08:01:2 x EOF", "bad range start", strconv.ErrSyntax},
		{"1: POSIX  ADVISORY  WRITE 1 08:01:2 0 1x", "bad range end", strconv.ErrSyntax},
		{"1: POSIX  ADVISORY  WRITE 1 08:01:2 10 5", "before its start", nil},
	}
	for _, tt := range tests {
		// A good line first, so that the error must count lines.
		input := "1: FLOCK  ADVISORY  WRITE 1234 08:01:131090 0 EOF\n" + tt.line + "\n"
		locks, err := Parse(strings.NewReader(input))
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", tt.line, locks)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "line 2") || !strings.Contains(msg, strconv.Quote(tt.line)) || !strings.Contains(msg, tt.wantErr) {
			t.Errorf("Parse(%q) error %q does not name line 2, quote it and say %q", tt.line, msg, tt.wantErr)
		}
		if tt.cause != nil && !errors.Is(err, tt.cause) {
			t.Errorf("Parse(%q) error %q does not wrap %v", tt.line, msg, tt.cause)
		}
	}
}

func TestLocksOn(t *testing.T) {
	// A btrfs subvolume: stat says device 0:31, /proc/locks the
	// filesystem's superblock device 0:2f.
	stat := fileID{major: 0, minor: 0x31, ino: 300}
	super := fileID{major: 0, minor: 0x2f, ino: 300}
	table := []Lock{
		{ID: 1, Kind: KindFlock, PID: 10, Major: 0, Minor: 0x2f, Inode: 300, Range: backend.WholeFile},
		{ID: 2, Kind: KindPOSIX, PID: 11, Major: 8, Minor: 1, Inode: 301, Range: backend.WholeFile},
		{ID: 3, Kind: "lease", PID: 12, Major: 0, Minor: 0x2f, Inode: 300, Range: backend.WholeFile},
		{ID: 4, Kind: KindOFD, PID: -1, Major: 0, Minor: 0x2f, Inode: 300, Range: backend.WholeFile, Waiting: true},
	}
	ids := func(locks []Lock) string {
		var s []string
		for _, l := range locks {
			s = append(s, strconv.Itoa(l.ID))
		}
		return strings.Join(s, ",")
	}
	calls := 0
	superblock := func(ok bool, id fileID) func() (fileID, bool) {
		return func() (fileID, bool) { calls++; return id, ok }
	}

	calls = 0
	mine, lockID := locksOn(table, stat, superblock(true, super))
	if ids(mine) != "1,4" || lockID != super || calls != 1 {
		t.Errorf("with the superblock device: locks %s under %v, %d mountinfo lookups; want 1,4 under %v, 1 lookup", ids(mine), lockID, calls, super)
	}

	// When the superblock device cannot be learned, or is the stat device
	// after all, a namesake inode on another device is not our file.
	for _, sb := range []func() (fileID, bool){superblock(false, fileID{}), superblock(true, stat)} {
		if mine, _ := locksOn(table, stat, sb); len(mine) != 0 {
			t.Errorf("matched locks %s on another device's namesake inode", ids(mine))
		}
	}

	// The common cases must not read mountinfo: a direct match, and an
	// inode no lock names (a lease does not count).
	calls = 0
	if mine, _ := locksOn(table, fileID{major: 8, minor: 1, ino: 301}, superblock(true, super)); ids(mine) != "2" {
		t.Errorf("direct match: got locks %s, want 2", ids(mine))
	}
	if mine, _ := locksOn(table, fileID{major: 8, minor: 1, ino: 302}, superblock(true, super)); len(mine) != 0 {
		t.Errorf("free inode: got locks %s, want none", ids(mine))
	}
	if mine, _ := locksOn(table[2:3], stat, superblock(true, super)); len(mine) != 0 {
		t.Errorf("a lease: got locks %s, want none", ids(mine))
	}
	if calls != 0 {
		t.Errorf("read mountinfo %d times where a direct answer was at hand", calls)
	}
}
