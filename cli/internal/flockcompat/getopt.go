package flockcompat

// getopt_long's reading of flock(1)'s options, emulated rather than
// borrowed from pflag, whose rules differ where scripts notice: "--nb"
// and "--nonb" are both -n, "-w2.5" glues a value, "-c" after --fd is
// the command line, and the messages are getopt's, word for word.
//
// Which options there are, and what each sets, is the caller's: lockmgr
// writes them once, in one table with `lockmgr run`'s (cli/lockoptions.go),
// and hands them to Parse. What is flock(1)'s alone stays here: the
// reading, its messages, and the syntax of the values it takes (Timeout,
// ExitCode, Start, Length, FD).

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Option is one of flock(1)'s options, as Parse reads it.
type Option struct {
	// Long are its long names, in util-linux's order: getopt_long's
	// messages list the names a prefix matches in that order.
	Long []string
	// Short are its letters ("xe": -e is flock(1)'s other -x); "" for
	// none.
	Short string
	// Arg is whether it takes a value.
	Arg bool
	// Stop ends the reading where the option stands, as -h and -V do in
	// flock(1).
	Stop bool
	// Set applies the option, with its value if it takes one. An error
	// from Timeout, ExitCode, Start, Length or FD is said in flock(1)'s
	// words.
	Set func(value string) error
}

// Usage is a command line flock(1) refuses: its Lines are printed as
// they are, then flock(1) exits with ExitUsage.
type Usage struct{ Lines []string }

func (e *Usage) Error() string { return strings.Join(e.Lines, "; ") }

// Parse reads args (without the program name) as flock(1)'s getopt_long
// does, applying each of options as it is read: options until the first
// operand or "--", which it returns, or until an option that stops the
// reading (-h, -V). commandLine is -c's argument given as an option (with
// --fd), which ends the reading too. argv0 is the program name as invoked,
// which getopt's own messages use; short is its base name, which
// flock(1)'s messages use. A refusal is a *Usage.
func Parse(argv0, short string, args []string, options []Option) (operands []string, commandLine *string, err error) {
	tryHelp := fmt.Sprintf("Try '%s --help' for more information.", short)
	bad := func(format string, a ...any) error {
		return &Usage{[]string{fmt.Sprintf(argv0+": "+format, a...), tryHelp}}
	}
	set := func(opt *Option, value string) error {
		var v *badValue
		if err := opt.Set(value); errors.As(err, &v) {
			return &Usage{[]string{short + ": " + v.text(value)}}
		} else if err != nil {
			return err
		}
		return nil
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
				return nil, nil, &Usage{[]string{fmt.Sprintf("%s: %s requires exactly one command argument", short, a)}}
			}
			return nil, &args[i+1], nil
		}
		if strings.HasPrefix(a, "--") {
			name, value, hasValue := strings.Cut(a[2:], "=")
			opt, long, err := matchLong(options, name, argv0, a)
			if err != nil {
				return nil, nil, &Usage{[]string{err.Error(), tryHelp}}
			}
			switch {
			case opt.Arg && !hasValue:
				if i+1 == len(args) {
					return nil, nil, bad("option '--%s' requires an argument", long)
				}
				i++
				value = args[i]
			case !opt.Arg && hasValue:
				return nil, nil, bad("option '--%s' doesn't allow an argument", long)
			}
			if err := set(opt, value); err != nil || opt.Stop {
				return nil, nil, err
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			opt := shortOption(options, a[j])
			if opt == nil {
				if a[j] == '?' {
					return nil, nil, &Usage{[]string{tryHelp}}
				}
				return nil, nil, bad("invalid option -- '%c'", a[j])
			}
			value := ""
			if opt.Arg {
				value = a[j+1:]
				if value == "" {
					if i+1 == len(args) {
						return nil, nil, bad("option requires an argument -- '%c'", a[j])
					}
					i++
					value = args[i]
				}
				j = len(a)
			}
			if err := set(opt, value); err != nil || opt.Stop {
				return nil, nil, err
			}
		}
	}
	return args[i:], nil, nil
}

// matchLong finds the option name stands for, and the long name it
// matched: the option so named, or the one option whose names it is a
// prefix of. Two names of one option are not ambiguous.
func matchLong(options []Option, name, argv0, arg string) (*Option, string, error) {
	type match struct {
		opt  *Option
		long string
	}
	var found []match
	for i := range options {
		for _, long := range options[i].Long {
			if long == name {
				return &options[i], long, nil
			}
			if strings.HasPrefix(long, name) {
				found = append(found, match{&options[i], long})
			}
		}
	}
	if len(found) == 0 {
		return nil, "", fmt.Errorf("%s: unrecognized option '%s'", argv0, arg)
	}
	for _, m := range found[1:] {
		if m.opt != found[0].opt {
			var names []string
			for _, f := range found {
				names = append(names, "'--"+f.long+"'")
			}
			return nil, "", fmt.Errorf("%s: option '%s' is ambiguous; possibilities: %s", argv0, strings.SplitN(arg, "=", 2)[0], strings.Join(names, " "))
		}
	}
	return found[0].opt, found[0].long, nil
}

// shortOption finds the option of letter c, or nil.
func shortOption(options []Option, c byte) *Option {
	for i := range options {
		if strings.IndexByte(options[i].Short, c) >= 0 {
			return &options[i]
		}
	}
	return nil
}

// badValue is a value flock(1) refuses for an option: Parse says
// "flock: what: 'VALUE'", or without the value (quote false) for a value
// it read but cannot use.
type badValue struct {
	what  string
	quote bool
}

func (v *badValue) Error() string { return v.what }

func (v *badValue) text(value string) string {
	if !v.quote {
		return v.what
	}
	return fmt.Sprintf("%s: '%s'", v.what, value)
}

// Timeout reads -w's value as flock(1) does: seconds, with a fraction,
// kept to the microsecond (less than one is no wait at all). "1m30s",
// which `lockmgr run` takes, is not flock(1)'s.
func Timeout(value string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > math.MaxInt64/1e9 {
		return 0, &badValue{"invalid timeout value", true}
	}
	return time.Duration(int64(f*1e6)) * time.Microsecond, nil
}

// ExitCode reads -E's value as flock(1) does: a number from 0 to 255.
func ExitCode(value string) (int, error) {
	n, err := strconv.ParseInt(value, 10, 32)
	if err != nil {
		return 0, &badValue{"invalid exit code", true}
	}
	if n < 0 || n > 255 {
		return 0, &badValue{"exit code out of range (expected 0 to 255)", false}
	}
	return int(n), nil
}

// Start reads --start's value, a size (parseSize).
func Start(value string) (int64, error) {
	n, ok := parseSize(value)
	if !ok {
		return 0, &badValue{"invalid as start offset", true}
	}
	return n, nil
}

// Length reads --length's value, a size (parseSize).
func Length(value string) (int64, error) {
	n, ok := parseSize(value)
	if !ok {
		return 0, &badValue{"invalid as length of lock range", true}
	}
	return n, nil
}

// FD reads --fd's value: a descriptor number.
func FD(value string) (int, error) {
	n, err := strconv.ParseInt(value, 10, 32)
	if err != nil || n < 0 {
		return 0, &badValue{"invalid file descriptor", true}
	}
	return int(n), nil
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
