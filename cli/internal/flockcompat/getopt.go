package flockcompat

// getopt_long's reading of flock(1)'s options, emulated rather than
// borrowed from pflag, whose rules differ where scripts notice: "--nb"
// and "--nonb" are both -n, "-w2.5" glues a value, "-c" after --fd is
// the command line, and the messages are getopt's, word for word.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
)

// option is one of flock(1)'s options.
type option struct {
	long  string
	short byte // 0: long only
	arg   bool
}

// options are flock(1)'s options; a long option's unique prefix
// names it, and two names of one option are not ambiguous.
var options = []option{
	{"shared", 's', false}, {"exclusive", 'x', false}, {"unlock", 'u', false},
	{"nonblocking", 'n', false}, {"nb", 'n', false},
	{"timeout", 'w', true}, {"wait", 'w', true},
	{"conflict-exit-code", 'E', true}, {"close", 'o', false}, {"no-fork", 'F', false},
	{"verbose", 0, false}, {"fcntl", 0, false}, {"start", 0, true}, {"length", 0, true},
	{"fd", 0, true},
	{"help", 'h', false}, {"version", 'V', false},
}

// Usage is a command line flock(1) refuses: its Lines are printed as
// they are, then flock(1) exits with ExitUsage.
type Usage struct{ Lines []string }

func (e *Usage) Error() string { return strings.Join(e.Lines, "; ") }

// Args is a flock(1) command line as read: what each option set, and
// the operands after them.
type Args struct {
	Mode           backend.Mode // -s, -x (-e); exclusive by default
	Unlock         bool         // -u
	Nonblock       bool         // -n
	Timeout        time.Duration
	TimeoutSet     bool // -w was given: Timeout is a deadline
	Conflict       int  // -E; ExitConflict by default
	Close, NoFork  bool // -o, -F
	Verbose, Fcntl bool // --verbose, --fcntl
	Start, Length  int64
	RangeSet       bool // --start or --length, which imply --fcntl
	FD             int  // --fd, or -1
	Help, Version  bool // -h, -V: the reading stopped there
	Operands       []string
	// CommandLine is -c's argument given as an option (with --fd).
	CommandLine *string
}

// Parse reads args (without the program name) as flock(1)'s getopt_long
// does: options until the first operand or "--". -h and -V end the
// reading where they stand, as in flock(1). argv0 is the program name as
// invoked, which getopt's own messages use; short is its base name, which
// flock(1)'s messages use. A refusal is a *Usage.
func Parse(argv0, short string, args []string) (*Args, error) {
	fa := &Args{Mode: backend.Exclusive, Conflict: ExitConflict, FD: -1}
	tryHelp := fmt.Sprintf("Try '%s --help' for more information.", short)
	bad := func(format string, a ...any) error {
		return &Usage{[]string{fmt.Sprintf(argv0+": "+format, a...), tryHelp}}
	}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a == "-c" || a == "--command" {
			// -c as an option, with --fd: the one argument left is the
			// command line.
			if len(args)-i-1 != 1 {
				return nil, &Usage{[]string{fmt.Sprintf("%s: %s requires exactly one command argument", short, a)}}
			}
			fa.CommandLine = &args[i+1]
			return fa, nil
		}
		if strings.HasPrefix(a, "--") {
			name, value, hasValue := strings.Cut(a[2:], "=")
			opt, err := matchLong(name, argv0, a)
			if err != nil {
				return nil, &Usage{[]string{err.Error(), tryHelp}}
			}
			switch {
			case opt.arg && !hasValue:
				if i+1 == len(args) {
					return nil, bad("option '--%s' requires an argument", opt.long)
				}
				i++
				value = args[i]
			case !opt.arg && hasValue:
				return nil, bad("option '--%s' doesn't allow an argument", opt.long)
			}
			done, err := fa.set(opt, value, short)
			if err != nil || done {
				return fa, err
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			opt, ok := shortOption(a[j])
			if !ok {
				if a[j] == '?' {
					return nil, &Usage{[]string{tryHelp}}
				}
				return nil, bad("invalid option -- '%c'", a[j])
			}
			value := ""
			if opt.arg {
				value = a[j+1:]
				if value == "" {
					if i+1 == len(args) {
						return nil, bad("option requires an argument -- '%c'", a[j])
					}
					i++
					value = args[i]
				}
				j = len(a)
			}
			done, err := fa.set(opt, value, short)
			if err != nil || done {
				return fa, err
			}
		}
	}
	fa.Operands = args[i:]
	return fa, nil
}

// matchLong finds the long option name stands for: itself, or the one
// option it is a prefix of.
func matchLong(name, argv0, arg string) (option, error) {
	var found []option
	for _, opt := range options {
		if opt.long == name {
			return opt, nil
		}
		if strings.HasPrefix(opt.long, name) {
			found = append(found, opt)
		}
	}
	if len(found) == 0 {
		return option{}, fmt.Errorf("%s: unrecognized option '%s'", argv0, arg)
	}
	for _, opt := range found[1:] {
		if opt.short != found[0].short || opt.short == 0 {
			var names []string
			for _, f := range found {
				names = append(names, "'--"+f.long+"'")
			}
			return option{}, fmt.Errorf("%s: option '%s' is ambiguous; possibilities: %s", argv0, strings.SplitN(arg, "=", 2)[0], strings.Join(names, " "))
		}
	}
	return found[0], nil
}

// shortOption finds a short option; -e is -x.
func shortOption(c byte) (option, bool) {
	if c == 'e' {
		c = 'x'
	}
	for _, opt := range options {
		if opt.short == c && c != 0 {
			return opt, true
		}
	}
	return option{}, false
}

// set applies one option; done means -h or -V, which end the reading.
func (fa *Args) set(opt option, value, short string) (done bool, err error) {
	bad := func(what string) error {
		return &Usage{[]string{fmt.Sprintf("%s: %s: '%s'", short, what, value)}}
	}
	switch opt.long {
	case "shared":
		fa.Mode = backend.Shared
	case "exclusive":
		fa.Mode = backend.Exclusive
	case "unlock":
		fa.Unlock = true
	case "nonblocking", "nb":
		fa.Nonblock = true
	case "timeout", "wait":
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > math.MaxInt64/1e9 {
			return false, bad("invalid timeout value")
		}
		// flock(1) keeps microseconds; less than one is no wait at all.
		fa.Timeout = time.Duration(int64(f*1e6)) * time.Microsecond
		fa.TimeoutSet = true
	case "conflict-exit-code":
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			return false, bad("invalid exit code")
		}
		if n < 0 || n > 255 {
			return false, &Usage{[]string{short + ": exit code out of range (expected 0 to 255)"}}
		}
		fa.Conflict = int(n)
	case "close":
		fa.Close = true
	case "no-fork":
		fa.NoFork = true
	case "verbose":
		fa.Verbose = true
	case "fcntl":
		fa.Fcntl = true
	case "start", "length":
		n, ok := parseSize(value)
		if !ok {
			if opt.long == "start" {
				return false, bad("invalid as start offset")
			}
			return false, bad("invalid as length of lock range")
		}
		if opt.long == "start" {
			fa.Start = n
		} else {
			fa.Length = n
		}
		fa.RangeSet, fa.Fcntl = true, true
	case "fd":
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil || n < 0 {
			return false, bad("invalid file descriptor")
		}
		fa.FD = int(n)
	case "help":
		fa.Help = true
		return true, nil
	case "version":
		fa.Version = true
		return true, nil
	}
	return false, nil
}

// parseSize reads a byte count as util-linux does: a number with an
// optional K, M, G, T, P or E (powers of 1024, also as KiB) or KB, MB...
// (powers of 1000).
func parseSize(s string) (int64, bool) {
	end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if end == 0 {
		return 0, false
	}
	num, suffix := s, ""
	if end > 0 {
		num, suffix = s[:end], s[end:]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, false
	}
	if suffix == "" {
		return n, true
	}
	base := int64(1024)
	unit := strings.ToUpper(suffix[:1])
	switch rest := suffix[1:]; rest {
	case "", "iB":
	case "B":
		base = 1000
	default:
		return 0, false
	}
	power := strings.Index("KMGTPE", unit) + 1
	if power == 0 {
		return 0, false
	}
	for ; power > 0; power-- {
		if n > math.MaxInt64/base {
			return 0, false
		}
		n *= base
	}
	return n, true
}

// HasOption reports whether flock(1) has an option named word: a long
// name without its dashes, or a short letter. lockmgr's messages under
// the flock name suggest only options a flock(1) script can use.
func HasOption(word string) bool {
	for _, opt := range options {
		if opt.long == word || (len(word) == 1 && opt.short != 0 && opt.short == word[0]) {
			return true
		}
	}
	return false
}
