package main

// The options of the commands that take a lock, written once: `lockmgr
// run`'s, `lockmgr lock`'s (the lock flags they share) and flock(1)'s, as
// the flock personality reads them. A row says how the option is spelt,
// whether it takes a value, what in runOptions it sets, and its help in
// run and lock; two small loops make each command line of the rows:
// registerOptions pflag's flags, flockOptions the personality's getopt
// options (cli/internal/flockcompat).
//
// The two readings differ on purpose, and stay so. pflag is lockmgr's
// own command line, which may say things its own way; the personality is
// util-linux flock(1)'s, word for word, since scripts test it. So a value
// has a reading for each: run's field (-w takes "2.5" or "1m30s"), and
// flock(1)'s in the row's flock function (-w takes seconds only, with
// getopt's messages). flock(1)'s --help is util-linux's text, not made
// from the rows (flockcompat.Help).

import (
	"fmt"
	"time"

	"github.com/lockmgr/lockmgr/cli/internal/flockcompat"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/spf13/pflag"
)

// commands is a set of the command lines that have an option.
type commands uint8

const (
	forRun commands = 1 << iota
	forLock
	forFlock
)

// lockOption is one option, in every command line that has it.
type lockOption struct {
	// long are its long names, as flock(1) spells them, in util-linux's
	// order: getopt_long's messages list the names a prefix matches in
	// that order. run and lock take them all, and show the first.
	long []string
	// runName is run's and lock's own name for it, shown in their help
	// instead of long's, which they then hide: --nonblock, where flock(1)
	// has --nonblocking and --nb.
	runName string
	// short is the letter every command line takes, 0 for none; alias a
	// second one, hidden from run's help (flock(1)'s -e for -x); runShort
	// a letter only run and lock take (-v: flock(1)'s --verbose has none).
	short, alias, runShort byte
	// in are the command lines that have the option.
	in commands
	// usage is its help in run and lock; `NAME` names its value.
	usage string
	// field is what the option sets: a *bool, *int, *int64 or *string,
	// or a pflag.Value, of Type "bool" for an option that takes no value
	// (modeValue). pflag reads run's and lock's values into it.
	field any
	// flock reads flock(1)'s syntax of the value into the options; nil
	// for an option that takes none, which sets field to true.
	flock func(value string) error
	// stop ends flock(1)'s reading of its command line (-h, -V).
	stop bool
}

// lockOptions are the options, setting o: in flock(1)'s order, then
// those flock(1) has not. -c is none of flock(1)'s options
// (flockcompat.Parse reads it where it may stand), and run's -h is
// cobra's.
func lockOptions(o *runOptions) []lockOption {
	const all = forRun | forLock | forFlock
	return []lockOption{
		{long: []string{"shared"}, short: 's', in: all, field: modeValue{&o.mode, backend.Shared},
			usage: "take a shared (read) lock"},
		{long: []string{"exclusive"}, short: 'x', alias: 'e', in: all, field: modeValue{&o.mode, backend.Exclusive},
			usage: "take an exclusive (write) lock; the default"},
		{long: []string{"unlock"}, short: 'u', in: forRun | forFlock, field: &o.unlock,
			usage: "with a descriptor number N instead of FILE: release the lock held through N, as 'lockmgr unlock --fd N'"},
		{long: []string{"nonblocking", "nb"}, runName: "nonblock", short: 'n', in: all, field: &o.nonblock,
			usage: "fail at once, rather than wait, if the lock is held"},
		{long: []string{"timeout", "wait"}, short: 'w', in: all, field: durationValue{&o.timeout, &o.timeoutSet},
			usage: "wait at most `SECONDS` for the lock (fractions allowed; 0 means --nonblock)",
			flock: func(v string) (err error) {
				o.timeout, err = flockcompat.Timeout(v)
				o.timeoutSet = true
				return err
			}},
		{long: []string{"conflict-exit-code"}, short: 'E', in: all, field: &o.conflict,
			usage: "exit `CODE` when the lock is held, or the timeout passes",
			flock: func(v string) (err error) {
				o.conflict, err = flockcompat.ExitCode(v)
				return err
			}},
		{long: []string{"close"}, short: 'o', in: forRun | forFlock, field: &o.close,
			usage: "do not let the command keep the lock alive if lockmgr is killed"},
		{long: []string{"no-fork"}, short: 'F', in: forRun | forFlock, field: &o.noFork,
			usage: "run the command in lockmgr's place rather than as its child (not with --close)"},
		{long: []string{"verbose"}, runShort: 'v', in: all, field: &o.verbose,
			usage: "say on stderr who holds the lock while waiting, and when it is acquired"},
		{long: []string{"fcntl"}, in: forRun | forFlock, field: &o.fcntl,
			usage: "take an open file description lock, as flock(1)'s --fcntl: the same as --backend ofd"},
		// run sets a range when --start or --length is given
		// (runOptions.run); in flock(1), either implies --fcntl too.
		{long: []string{"start"}, in: forRun | forFlock, field: &o.start,
			usage: "lock a byte range starting at byte `N` (posix, ofd)",
			flock: func(v string) (err error) {
				o.start, err = flockcompat.Start(v)
				o.rangeSet, o.fcntl = true, true
				return err
			}},
		{long: []string{"length"}, in: forRun | forFlock, field: &o.length,
			usage: "lock `N` bytes from --start; 0 reaches the end of the file however long it grows (posix, ofd)",
			flock: func(v string) (err error) {
				o.length, err = flockcompat.Length(v)
				o.rangeSet, o.fcntl = true, true
				return err
			}},
		{long: []string{"fd"}, in: forRun | forFlock, field: &o.fd,
			usage: "lock the file open on the caller's descriptor `N` rather than FILE, run the command with N, and leave the lock with N (what follows is the command)",
			flock: func(v string) (err error) {
				o.fd, err = flockcompat.FD(v)
				return err
			}},
		{long: []string{"help"}, short: 'h', in: forFlock, field: &o.help, stop: true},
		{long: []string{"version"}, short: 'V', in: forRun | forFlock, field: &o.version, stop: true,
			usage: "print lockmgr's version, as 'lockmgr version'"},

		// lockmgr's own. lock says what --backend takes for it (newLockCmd).
		{long: []string{"backend"}, short: 'b', in: forRun | forLock, field: &o.backend,
			usage: "lock through backend `NAME`: flock, posix, ofd, auto, or a plugin's name (overrides $LOCKMGR_BACKEND and the config)"},
		{long: []string{"on-lost"}, in: forRun, field: &o.onLost,
			usage: "what to do if the lock is lost while the command runs: `POLICY` term, kill or ignore"},
		{long: []string{"grace"}, in: forRun, field: durationValue{d: &o.grace},
			usage: "with --on-lost term, send SIGKILL `DURATION` after SIGTERM"},
		{long: []string{"command"}, short: 'c', in: forRun, field: &o.commandLine,
			usage: "with --fd: run `COMMAND-LINE` by $SHELL -c (after FILE, -c is not a flag but the command)"},
	}
}

// newRunOptions are the options before any is given: each command line
// starts from these, and pflag shows them as the defaults.
func newRunOptions() *runOptions {
	return &runOptions{
		lockFlags: lockFlags{mode: backend.Exclusive, conflict: exitHeld},
		onLost:    onLostTerm,
		grace:     5 * time.Second,
		fd:        -1,
	}
}

// registerOptions adds to fs the flags of the options cmd (run or lock)
// has, setting o.
func registerOptions(fs *pflag.FlagSet, o *runOptions, cmd commands) {
	for _, r := range lockOptions(o) {
		if r.in&cmd == 0 {
			continue
		}
		names, short := r.long, r.short
		if r.runName != "" {
			names = append([]string{r.runName}, names...)
		}
		if r.runShort != 0 {
			short = r.runShort
		}
		addFlag(fs, r.field, names[0], short, r.usage)
		// The other spellings are flock(1)'s, taken so that its scripts
		// run unchanged, and hidden, as one name for each is enough.
		for _, name := range names[1:] {
			addFlag(fs, r.field, name, 0, "same as --"+names[0]).Hidden = true
		}
		if r.alias != 0 {
			addFlag(fs, r.field, string(r.alias), r.alias, "same as --"+names[0]).Hidden = true
		}
	}
}

// addFlag adds the flag name (and its letter, if not 0) that sets field.
func addFlag(fs *pflag.FlagSet, field any, name string, letter byte, usage string) *pflag.Flag {
	short := ""
	if letter != 0 {
		short = string(letter)
	}
	switch p := field.(type) {
	case *bool:
		fs.BoolVarP(p, name, short, *p, usage)
	case *int:
		fs.IntVarP(p, name, short, *p, usage)
	case *int64:
		fs.Int64VarP(p, name, short, *p, usage)
	case *string:
		fs.StringVarP(p, name, short, *p, usage)
	case pflag.Value:
		f := fs.VarPF(p, name, short, usage)
		if p.Type() == "bool" {
			f.NoOptDefVal = "true" // given alone, as a bool flag is
		}
		return f
	default:
		panic(fmt.Sprintf("option --%s sets a %T", name, field))
	}
	return fs.Lookup(name)
}

// flockOptions are flock(1)'s options, for flockcompat.Parse, setting o.
func flockOptions(o *runOptions) []flockcompat.Option {
	var opts []flockcompat.Option
	for _, r := range lockOptions(o) {
		if r.in&forFlock == 0 {
			continue
		}
		opt := flockcompat.Option{Long: r.long, Arg: r.flock != nil, Stop: r.stop}
		for _, c := range []byte{r.short, r.alias} {
			if c != 0 {
				opt.Short += string(c)
			}
		}
		opt.Set = r.flock
		if opt.Set == nil {
			field := r.field
			opt.Set = func(string) error { return setTrue(field) }
		}
		opts = append(opts, opt)
	}
	return opts
}

// setTrue sets an option that takes no value: field is a *bool, or a
// pflag.Value of Type "bool".
func setTrue(field any) error {
	if p, ok := field.(*bool); ok {
		*p = true
		return nil
	}
	return field.(pflag.Value).Set("true")
}
