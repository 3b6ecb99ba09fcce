package main

import (
	"strings"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/cli/internal/flockcompat"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/spf13/pflag"
)

// TestFlockParse holds the personality's reading of a command line to
// getopt_long's, through lockOptions: options up to the first operand,
// clusters, values glued or apart, unique prefixes, and two names of one
// option never ambiguous.
func TestFlockParse(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		check    func(o *runOptions, commandLine *string) bool
		operands int
		usage    string // a usage error containing this
	}{
		{[]string{"-snw", "2.5", "f", "cmd", "-x"}, func(o *runOptions, _ *string) bool {
			return o.mode == backend.Shared && o.nonblock && o.timeout == 2500*time.Millisecond
		}, 3, ""},
		{[]string{"-E7", "--nonb", "--wait=0", "f", "c"}, func(o *runOptions, _ *string) bool {
			return o.conflict == 7 && o.nonblock && o.timeoutSet && o.timeout == 0
		}, 2, ""},
		{[]string{"--nb", "--", "-f", "c"}, func(o *runOptions, _ *string) bool { return o.nonblock }, 2, ""},
		{[]string{"-s", "-e", "f", "c"}, func(o *runOptions, _ *string) bool { return o.mode == backend.Exclusive }, 2, ""},
		{[]string{"f", "c"}, func(o *runOptions, _ *string) bool {
			return o.mode == backend.Exclusive && o.conflict == exitHeld && o.fd == -1 && !o.timeoutSet
		}, 2, ""},
		{[]string{"--start", "1K", "--length=2", "f", "c"}, func(o *runOptions, _ *string) bool {
			return o.start == 1024 && o.length == 2 && o.fcntl && o.rangeSet
		}, 2, ""},
		{[]string{"--fd", "9", "-c", "echo hi"}, func(o *runOptions, cl *string) bool {
			return o.fd == 9 && cl != nil && *cl == "echo hi"
		}, 0, ""},
		{[]string{"-w", "0.0000001", "f", "c"}, func(o *runOptions, _ *string) bool { return o.timeoutSet && o.timeout == 0 }, 2, ""},
		{[]string{"-V", "--bogus"}, func(o *runOptions, _ *string) bool { return o.version }, 0, ""},
		{[]string{"--he", "--bogus"}, func(o *runOptions, _ *string) bool { return o.help }, 0, ""},
		{[]string{"-uoF", "--verb", "--fc", "f", "c"}, func(o *runOptions, _ *string) bool {
			return o.unlock && o.close && o.noFork && o.verbose && o.fcntl
		}, 2, ""},
		{[]string{"--no", "f", "c"}, nil, 0, "option '--no' is ambiguous; possibilities: '--nonblocking' '--no-fork'"},
		{[]string{"--n", "f", "c"}, nil, 0, "possibilities: '--nonblocking' '--nb' '--no-fork'"},
		{[]string{"--s", "f", "c"}, nil, 0, "option '--s' is ambiguous"},
		{[]string{"--bogus", "f", "c"}, nil, 0, "unrecognized option '--bogus'"},
		{[]string{"-q"}, nil, 0, "invalid option -- 'q'"},
		{[]string{"-v", "f", "c"}, nil, 0, "invalid option -- 'v'"},
		{[]string{"--backend=ofd", "f", "c"}, nil, 0, "unrecognized option '--backend=ofd'"},
		{[]string{"-w"}, nil, 0, "option requires an argument -- 'w'"},
		{[]string{"--timeout"}, nil, 0, "option '--timeout' requires an argument"},
		{[]string{"--shared=yes", "f", "c"}, nil, 0, "option '--shared' doesn't allow an argument"},
		{[]string{"-w", "-1", "f", "c"}, nil, 0, "invalid timeout value: '-1'"},
		{[]string{"-w", "1m30s", "f", "c"}, nil, 0, "invalid timeout value: '1m30s'"},
		{[]string{"-E", "256", "f", "c"}, nil, 0, "exit code out of range"},
		{[]string{"--start", "1Q", "f", "c"}, nil, 0, "invalid as start offset: '1Q'"},
		{[]string{"--fd", "x", "c"}, nil, 0, "invalid file descriptor: 'x'"},
		{[]string{"--fd", "9", "-c", "a", "b"}, nil, 0, "-c requires exactly one command argument"},
	} {
		o := newRunOptions()
		ops, cl, err := flockcompat.Parse("flock", "flock", tc.args, flockOptions(o))
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
		if !tc.check(o, cl) || len(ops) != tc.operands {
			t.Errorf("Parse(%q) = %+v, operands %q; not what flock(1) reads", tc.args, *o, ops)
		}
	}
}

// TestRunTakesFlockSpellings: every spelling of a shared option that
// flock(1) takes, run takes too, and to the same effect.
func TestRunTakesFlockSpellings(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(o *runOptions) bool
	}{
		{[]string{"-s", "-e"}, func(o *runOptions) bool { return o.mode == backend.Exclusive }},
		{[]string{"--nb"}, func(o *runOptions) bool { return o.nonblock }},
		{[]string{"--nonblocking"}, func(o *runOptions) bool { return o.nonblock }},
		{[]string{"--wait", "1m30s"}, func(o *runOptions) bool { return o.timeoutSet && o.timeout == 90*time.Second }},
		{[]string{"-E", "7", "-uoFV", "--fcntl", "--start", "0x10", "--length", "2", "--fd", "9"}, func(o *runOptions) bool {
			return o.conflict == 7 && o.unlock && o.close && o.noFork && o.version && o.fcntl && o.start == 16 && o.length == 2 && o.fd == 9
		}},
	} {
		o := newRunOptions()
		fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
		registerOptions(fs, o, forRun)
		if err := fs.Parse(tc.args); err != nil || !tc.check(o) {
			t.Errorf("run %q: %v, %+v", tc.args, err, *o)
		}
	}
}

// TestLockOptionRows: a row says one thing to both readings: flock(1)
// reads a value for exactly the options whose field takes one.
func TestLockOptionRows(t *testing.T) {
	for _, r := range lockOptions(newRunOptions()) {
		takes := true
		switch p := r.field.(type) {
		case *bool:
			takes = false
		case pflag.Value:
			takes = p.Type() != "bool"
		}
		if r.in&forFlock != 0 && takes != (r.flock != nil) {
			t.Errorf("--%s: its field takes a value: %v; flock(1) reads one: %v", r.long[0], takes, r.flock != nil)
		}
	}
}
