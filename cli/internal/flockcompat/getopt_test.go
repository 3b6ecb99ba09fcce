package flockcompat

import (
	"strings"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
)

// TestParse holds the personality's reading of a command line
// to getopt_long's: options up to the first operand, clusters, values
// glued or apart, unique prefixes, and two names of one option never
// ambiguous.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		check    func(fa *Args) bool
		operands int
		usage    string // a usage error containing this
	}{
		{[]string{"-snw", "2.5", "f", "cmd", "-x"}, func(fa *Args) bool {
			return fa.Mode == backend.Shared && fa.Nonblock && fa.Timeout == 2500*time.Millisecond
		}, 3, ""},
		{[]string{"-E7", "--nonb", "--wait=0", "f", "c"}, func(fa *Args) bool {
			return fa.Conflict == 7 && fa.Nonblock && fa.TimeoutSet && fa.Timeout == 0
		}, 2, ""},
		{[]string{"--nb", "--", "-f", "c"}, func(fa *Args) bool { return fa.Nonblock }, 2, ""},
		{[]string{"-s", "-e", "f", "c"}, func(fa *Args) bool { return fa.Mode == backend.Exclusive }, 2, ""},
		{[]string{"--start", "1K", "--length=2", "f", "c"}, func(fa *Args) bool {
			return fa.Start == 1024 && fa.Length == 2 && fa.Fcntl && fa.RangeSet
		}, 2, ""},
		{[]string{"--fd", "9", "-c", "echo hi"}, func(fa *Args) bool {
			return fa.FD == 9 && fa.CommandLine != nil && *fa.CommandLine == "echo hi"
		}, 0, ""},
		{[]string{"-w", "0.0000001", "f", "c"}, func(fa *Args) bool { return fa.TimeoutSet && fa.Timeout == 0 }, 2, ""},
		{[]string{"-V", "--bogus"}, func(fa *Args) bool { return fa.Version }, 0, ""},
		{[]string{"--no", "f", "c"}, nil, 0, "option '--no' is ambiguous"},
		{[]string{"--s", "f", "c"}, nil, 0, "option '--s' is ambiguous"},
		{[]string{"--bogus", "f", "c"}, nil, 0, "unrecognized option '--bogus'"},
		{[]string{"-q"}, nil, 0, "invalid option -- 'q'"},
		{[]string{"-w"}, nil, 0, "option requires an argument -- 'w'"},
		{[]string{"--timeout"}, nil, 0, "option '--timeout' requires an argument"},
		{[]string{"--shared=yes", "f", "c"}, nil, 0, "option '--shared' doesn't allow an argument"},
		{[]string{"-w", "-1", "f", "c"}, nil, 0, "invalid timeout value: '-1'"},
		{[]string{"-E", "256", "f", "c"}, nil, 0, "exit code out of range"},
		{[]string{"--start", "1Q", "f", "c"}, nil, 0, "invalid as start offset: '1Q'"},
		{[]string{"--fd", "x", "c"}, nil, 0, "invalid file descriptor: 'x'"},
		{[]string{"--fd", "9", "-c", "a", "b"}, nil, 0, "-c requires exactly one command argument"},
	} {
		fa, err := Parse("flock", "flock", tc.args)
		if tc.usage != "" {
			if err == nil || !strings.Contains(err.Error(), tc.usage) {
				t.Errorf("Parse(%q) = %v; want a usage error with %q", tc.args, err, tc.usage)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.args, err)
			continue
		}
		if !tc.check(fa) || len(fa.Operands) != tc.operands {
			t.Errorf("Parse(%q) = %+v, operands %q; not what flock(1) reads", tc.args, *fa, fa.Operands)
		}
	}
}
