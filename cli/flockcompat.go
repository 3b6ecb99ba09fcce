package main

// The flock personality: lockmgr run under the name `flock` (a symbolic
// link to lockmgr, first on PATH) behaves as util-linux flock(1), so that
// scripts that must not notice keep working, with the backend chosen by
// lockmgr's configuration: a rule that puts /mnt/nfs on posix moves the
// file forms (`flock FILE COMMAND`) of every flock(1) script on that
// mount to POSIX locks without editing one. The descriptor forms (`flock
// 9`) cannot follow: a POSIX lock belongs to a process, and would end
// with this one, so they are refused there (posixForFD).
//
// flock(1)'s contract, as scripts see it, is followed here: getopt_long's
// argument syntax (options up to the first operand, clustered short
// options, unique prefixes of long ones) and its messages, the
// <sysexits.h> codes flock(1) uses (64 usage, 65 a lock call refused, 66
// a lock file that cannot be opened, 69 a command that cannot be run, 71
// out of descriptors or memory, 73 a read-only or full filesystem), the
// command's status as flock(1) reports it (128+N for a command killed by
// signal N), and the --verbose lines, word for word, on the streams
// flock(1) writes them to. What lockmgr does deliberately differently
// stays (a symbolic link as lock file is refused): docs/cli.rst lists it.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"golang.org/x/sys/unix"
)

// flockName is the name under which lockmgr is flock(1).
const flockName = "flock"

// flock(1)'s exit codes, from <sysexits.h>, beside lockmgr's own.
const (
	exitDataErr   = 65 // EX_DATAERR: the lock call itself failed
	exitOSErr     = 71 // EX_OSERR: out of descriptors, memory or locks
	exitCantCreat = 73 // EX_CANTCREAT: read-only or full filesystem
)

// flockCompat is the personality's state: how flock(1) would speak.
// Its methods do nothing on a nil receiver, which is `lockmgr run`.
type flockCompat struct {
	// name is what flock(1) calls itself in messages: the base name it
	// was invoked by.
	name string
	// target names the lock in messages: the file as given, or the
	// descriptor number.
	target  string
	verbose bool
	stdout  io.Writer
	stderr  io.Writer
}

// acquired prints --verbose's line for a lock taken after d.
func (c *flockCompat) acquired(d time.Duration) {
	if c == nil || !c.verbose {
		return
	}
	us := d.Microseconds()
	fmt.Fprintf(c.stdout, "%s: getting lock took %d.%06d seconds\n", c.name, us/1e6, us%1e6)
}

// executing prints --verbose's line before the command runs.
func (c *flockCompat) executing(name string) {
	if c == nil || !c.verbose {
		return
	}
	fmt.Fprintf(c.stdout, "%s: executing %s\n", c.name, name)
}

// failed prints --verbose's line for a lock not taken because it is held
// (err is then the silent -E exit).
func (c *flockCompat) failed(err error, f *lockFlags) {
	var ee *exitError
	if c == nil || !c.verbose || !errors.As(err, &ee) || !ee.silent || ee.signal != 0 {
		return
	}
	if f.waits() {
		fmt.Fprintf(c.stderr, "%s: timeout while waiting to get lock\n", c.name)
	} else {
		fmt.Fprintf(c.stderr, "%s: failed to get lock\n", c.name)
	}
}

// execFailed is flock(1)'s exit when the command cannot be run: 69
// (EX_UNAVAILABLE), after the lock was taken.
func (c *flockCompat) execFailed(name string, err error) error {
	errno := syscall.ENOENT
	if errors.Is(err, fs.ErrPermission) {
		errno = syscall.EACCES
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		errno = e
	}
	fmt.Fprintf(c.stderr, "%s: failed to execute %s: %s\n", c.name, name, strerror(errno))
	code := exitUnavailable
	if errno == syscall.ENOMEM {
		code = exitOSErr
	}
	return exitStatus(code)
}

// strerror is glibc's text for errno, which Go's starts in lower case.
func strerror(errno syscall.Errno) string {
	s := errno.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// report prints err as flock(1) would and returns flock(1)'s exit code
// for it.
func (c *flockCompat) report(err error) int {
	var ee *exitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) && ee.silent {
		return ee.code
	}
	code := exitCode(err)
	var errno syscall.Errno
	if code == exitNoInput && errors.As(err, &errno) {
		// What lockmgr calls the lock file's trouble, flock(1) splits
		// into the open (66, 71, 73) and the lock call (65, 71).
		switch errno {
		case syscall.EROFS, syscall.ENOSPC:
			code = exitCantCreat
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM:
			code = exitOSErr
		case syscall.ENOLCK:
			fmt.Fprintf(c.stderr, "%s: %s: %s\n", c.name, c.target, strerror(errno))
			return exitOSErr
		case syscall.EBADF, syscall.EINVAL, syscall.EIO, syscall.EDEADLK, syscall.EOPNOTSUPP:
			fmt.Fprintf(c.stderr, "%s: %s: %s\n", c.name, c.target, strerror(errno))
			return exitDataErr
		}
		fmt.Fprintf(c.stderr, "%s: cannot open lock file %s: %s\n", c.name, c.target, strerror(errno))
		return code
	}
	if code == exitNotFound || code == exitCannotExec {
		code = exitUnavailable
	}
	fmt.Fprintf(c.stderr, "%s: %s\n", c.name, oneLine(err.Error()))
	return code
}

// flockOption is one of flock(1)'s options.
type flockOption struct {
	long  string
	short byte // 0: long only
	arg   bool
}

// flockOptions are flock(1)'s options; a long option's unique prefix
// names it, and two names of one option are not ambiguous.
var flockOptions = []flockOption{
	{"shared", 's', false}, {"exclusive", 'x', false}, {"unlock", 'u', false},
	{"nonblocking", 'n', false}, {"nb", 'n', false},
	{"timeout", 'w', true}, {"wait", 'w', true},
	{"conflict-exit-code", 'E', true}, {"close", 'o', false}, {"no-fork", 'F', false},
	{"verbose", 0, false}, {"fcntl", 0, false}, {"start", 0, true}, {"length", 0, true},
	{"fd", 0, true},
	{"help", 'h', false}, {"version", 'V', false},
}

// flockUsage is a usage error: its lines are printed as they are, then
// exit 64.
type flockUsage struct{ lines []string }

func (e *flockUsage) Error() string { return strings.Join(e.lines, "; ") }

// flockArgs is a parsed flock(1) command line.
type flockArgs struct {
	o          *runOptions
	help, vers bool
	operands   []string
	// commandLine is -c's argument given as an option (with --fd).
	commandLine *string
}

// parseFlockArgs reads args (without the program name) as flock(1)'s
// getopt_long does: options until the first operand or "--". help and
// version end the reading where they stand, as in flock(1).
func parseFlockArgs(argv0, short string, args []string) (*flockArgs, error) {
	o := &runOptions{onLost: onLostTerm, grace: 5 * time.Second, fd: -1}
	o.mode = backend.Exclusive
	o.conflict = exitHeld
	fa := &flockArgs{o: o}
	tryHelp := fmt.Sprintf("Try '%s --help' for more information.", short)
	bad := func(format string, a ...any) error {
		return &flockUsage{[]string{fmt.Sprintf(argv0+": "+format, a...), tryHelp}}
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
				return nil, &flockUsage{[]string{fmt.Sprintf("%s: %s requires exactly one command argument", short, a)}}
			}
			fa.commandLine = &args[i+1]
			return fa, nil
		}
		if strings.HasPrefix(a, "--") {
			name, value, hasValue := strings.Cut(a[2:], "=")
			opt, err := matchLong(name, argv0, a)
			if err != nil {
				return nil, &flockUsage{[]string{err.Error(), tryHelp}}
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
					return nil, &flockUsage{[]string{tryHelp}}
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
	fa.operands = args[i:]
	return fa, nil
}

// matchLong finds the long option name stands for: itself, or the one
// option it is a prefix of.
func matchLong(name, argv0, arg string) (flockOption, error) {
	var found []flockOption
	for _, opt := range flockOptions {
		if opt.long == name {
			return opt, nil
		}
		if strings.HasPrefix(opt.long, name) {
			found = append(found, opt)
		}
	}
	if len(found) == 0 {
		return flockOption{}, fmt.Errorf("%s: unrecognized option '%s'", argv0, arg)
	}
	for _, opt := range found[1:] {
		if opt.short != found[0].short || opt.short == 0 {
			var names []string
			for _, f := range found {
				names = append(names, "'--"+f.long+"'")
			}
			return flockOption{}, fmt.Errorf("%s: option '%s' is ambiguous; possibilities: %s", argv0, strings.SplitN(arg, "=", 2)[0], strings.Join(names, " "))
		}
	}
	return found[0], nil
}

// shortOption finds a short option; -e is -x.
func shortOption(c byte) (flockOption, bool) {
	if c == 'e' {
		c = 'x'
	}
	for _, opt := range flockOptions {
		if opt.short == c && c != 0 {
			return opt, true
		}
	}
	return flockOption{}, false
}

// set applies one option; done means -h or -V, which end the reading.
func (fa *flockArgs) set(opt flockOption, value, short string) (done bool, err error) {
	o := fa.o
	bad := func(what string) error {
		return &flockUsage{[]string{fmt.Sprintf("%s: %s: '%s'", short, what, value)}}
	}
	switch opt.long {
	case "shared":
		o.mode = backend.Shared
	case "exclusive":
		o.mode = backend.Exclusive
	case "unlock":
		o.unlock = true
	case "nonblocking", "nb":
		o.nonblock = true
	case "timeout", "wait":
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > math.MaxInt64/1e9 {
			return false, bad("invalid timeout value")
		}
		// flock(1) keeps microseconds; less than one is no wait at all.
		o.timeout = time.Duration(int64(f*1e6)) * time.Microsecond
		o.timeoutSet = true
	case "conflict-exit-code":
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			return false, bad("invalid exit code")
		}
		if n < 0 || n > 255 {
			return false, &flockUsage{[]string{short + ": exit code out of range (expected 0 to 255)"}}
		}
		o.conflict = int(n)
	case "close":
		o.close = true
	case "no-fork":
		o.noFork = true
	case "verbose":
		o.verbose = true
	case "fcntl":
		o.fcntl = true
	case "start", "length":
		n, ok := parseSize(value)
		if !ok {
			if opt.long == "start" {
				return false, bad("invalid as start offset")
			}
			return false, bad("invalid as length of lock range")
		}
		if opt.long == "start" {
			o.start = n
		} else {
			o.length = n
		}
		o.rangeSet, o.fcntl = true, true
	case "fd":
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil || n < 0 {
			return false, bad("invalid file descriptor")
		}
		o.fd = int(n)
	case "help":
		fa.help = true
		return true, nil
	case "version":
		fa.vers = true
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

// executeFlock is lockmgr as flock(1): argv is the whole command line,
// program name first. It returns the exit code and the signal to end by.
func executeFlock(argv []string) (code int, sig syscall.Signal) {
	short := filepath.Base(argv[0])
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "%s: internal error: %s\n", short, oneLine(fmt.Sprint(r)))
			code, sig = exitSoftware, 0
		}
	}()
	c := &flockCompat{name: short, stdout: os.Stdout, stderr: os.Stderr}
	if !isTerminal(os.Stdout) {
		// flock(1) prints its --verbose lines with stdio, which holds
		// them until exit unless stdout is a terminal: after the
		// command's own output, in a pipe or a file.
		w := bufio.NewWriter(os.Stdout)
		defer w.Flush()
		c.stdout = w
	}
	err := runFlock(c, argv)
	var usage *flockUsage
	if errors.As(err, &usage) {
		for _, l := range usage.lines {
			fmt.Fprintln(os.Stderr, l)
		}
		return exitUsage, 0
	}
	return c.report(err), exitSignalOf(err)
}

// runFlock reads flock(1)'s command line and does what it says.
func runFlock(c *flockCompat, argv []string) error {
	short := c.name
	if len(argv) < 2 {
		return &flockUsage{[]string{short + ": not enough arguments", fmt.Sprintf("Try '%s --help' for more information.", short)}}
	}
	fa, err := parseFlockArgs(argv[0], short, argv[1:])
	if err != nil {
		return err
	}
	switch {
	case fa.help:
		flockHelp(c.stdout, short)
		return nil
	case fa.vers:
		fmt.Fprintf(c.stdout, "%s from lockmgr %s\n", short, version)
		return nil
	}
	o := fa.o
	o.compat = c
	c.verbose, o.verbose = o.verbose, false
	if o.noFork && o.close {
		return &flockUsage{[]string{short + ": the --no-fork and --close options are incompatible"}}
	}
	if err := o.checkFlock(); err != nil {
		return err
	}
	g := &globals{}
	ops := fa.operands
	if o.fd >= 0 {
		// --fd N COMMAND: the lock goes around the command, on the
		// caller's descriptor.
		c.target = strconv.Itoa(o.fd)
		var cmd []string
		switch {
		case fa.commandLine != nil:
			cmd = shellArgv(*fa.commandLine)
		case len(ops) > 0:
			cmd = ops
		default:
			return &flockUsage{[]string{short + ": requires file descriptor, file or directory"}}
		}
		if !callerFD(o.fd) {
			return c.badFD()
		}
		if !o.unlock {
			if err := c.posixForFD(g, o); err != nil {
				return err
			}
		}
		return o.runWithFD(g, o.fd, cmd)
	}
	if fa.commandLine != nil {
		return &flockUsage{[]string{short + ": requires file descriptor, file or directory"}}
	}
	switch {
	case len(ops) > 1:
		file, cmd := ops[0], ops[1:]
		c.target = file
		if cmd[0] == "-c" || cmd[0] == "--command" {
			if len(cmd) != 2 {
				return &flockUsage{[]string{fmt.Sprintf("%s: %s requires exactly one command argument", short, cmd[0])}}
			}
			cmd = shellArgv(cmd[1])
		}
		if o.unlock {
			return c.runUnlocked(file, cmd)
		}
		return o.runFile(g, file, cmd)
	case len(ops) == 1:
		n, err := strconv.ParseInt(ops[0], 10, 32)
		if err != nil {
			return &flockUsage{[]string{fmt.Sprintf("%s: bad file descriptor: '%s'", short, ops[0])}}
		}
		c.target = strconv.FormatInt(n, 10)
		if n < 0 || !callerFD(int(n)) {
			return c.badFD()
		}
		start := time.Now()
		if o.unlock {
			err = unlockFD(g, o.backend, int(n), false)
		} else if err = c.posixForFD(g, o); err == nil {
			err = lockFD(g, &o.lockFlags, int(n))
			c.failed(err, &o.lockFlags)
		}
		if err == nil {
			c.acquired(time.Since(start))
		}
		return err
	}
	return &flockUsage{[]string{short + ": requires file descriptor, file or directory"}}
}

// callerFD reports whether descriptor fd is one the caller passed in.
// One that is not open is not; nor is one that is open but close-on-exec,
// since no descriptor inherited across exec can be: it is lockmgr's own
// (the Go runtime's epoll and cgroup files, a plugin started ahead), at 3
// and up wherever the caller left a gap. For flock(1) both are a
// descriptor it never got, and its lock call fails with EBADF.
func callerFD(fd int) bool {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil && flags&unix.FD_CLOEXEC == 0
}

// posixForFD refuses to lock the descriptor c.target when lockmgr's
// configuration puts its file on the posix backend: a POSIX lock belongs
// to the process that takes it, lockmgr's plugin, and would end when this
// flock exits, leaving the script unguarded. lockmgr's own answer names
// --backend, which flock(1) has not; this one names what a flock(1)
// script can change (the form of the call) and what its admin can (the
// configuration that chose posix). Any other trouble with the
// configuration is left to lockFD to report.
func (c *flockCompat) posixForFD(g *globals, o *runOptions) error {
	if o.backend != "" {
		return nil // --fcntl: ofd
	}
	path, err := os.Readlink("/proc/self/fd/" + c.target)
	if err != nil {
		return nil
	}
	cfg, err := g.loadConfig("")
	if err != nil {
		return nil
	}
	name, src := cfg.BackendFor(path, lockfile.PathOnNetworkFS)
	if name != config.BackendPOSIX {
		return nil
	}
	fmt.Fprintf(c.stderr, "%s: %s: lockmgr's configuration (%s) puts %s on the posix backend, whose lock would end when %s exits: lock the file by name around the command ('%s FILE COMMAND'), or route the path to flock or ofd\n",
		c.name, c.target, src, path, c.name, c.name)
	return exitStatus(exitUsage)
}

// badFD is flock(1)'s answer to a descriptor that is not open: its lock
// call fails with EBADF.
func (c *flockCompat) badFD() error {
	fmt.Fprintf(c.stderr, "%s: %s: %s\n", c.name, c.target, strerror(syscall.EBADF))
	return exitStatus(exitDataErr)
}

// runUnlocked is `flock -u FILE COMMAND`: flock(1) opens FILE (making it
// if need be), unlocks what that new open holds, which is nothing, and
// runs the command. The open never blocks, as no lock file's does: a
// FIFO planted at FILE would otherwise hold it until someone wrote to it.
func (c *flockCompat) runUnlocked(file string, argv []string) error {
	f, err := os.OpenFile(file, os.O_RDONLY|os.O_CREATE|syscall.O_NOCTTY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0o666)
	if errors.Is(err, syscall.EISDIR) {
		f, err = os.Open(file)
	}
	if err != nil {
		return err
	}
	f.Close()
	start := time.Now()
	path, err := lookPath(argv[0])
	c.acquired(time.Since(start))
	if err != nil {
		return c.execFailed(argv[0], err)
	}
	c.executing(argv[0])
	// No lock goes round the command, and no output says there is one.
	cmd, exited, err := startCommand(path, argv, commandEnv(lockEnv{}), nil)
	if err != nil {
		return c.execFailed(argv[0], err)
	}
	<-exited
	if code := childStatus(cmd.ProcessState); code != 0 {
		return exitStatus(code)
	}
	return nil
}

// flockHelp prints the personality's usage, with flock(1)'s options.
func flockHelp(w io.Writer, name string) {
	fmt.Fprintf(w, `
Usage:
 %[1]s [options] <file>|<directory> <command> [<argument>...]
 %[1]s [options] <file>|<directory> -c <command>
 %[1]s [options] <file descriptor number>

Take a lock for a shell script: lockmgr running as util-linux flock(1),
with the backend chosen by lockmgr's configuration.

Options:
 -s, --shared             take a shared lock
 -x, --exclusive          take an exclusive lock (the default)
 -u, --unlock             release a lock
 -n, --nonblock           fail at once rather than wait
 -w, --timeout <secs>     wait at most this long
 -E, --conflict-exit-code <number>  exit status for a conflict or timeout
 -o, --close              do not let the command inherit the lock
 -c, --command <command>  run one command line through the shell
 -F, --no-fork            run the command in place of %[1]s
     --fcntl              take an open file description lock (backend ofd)
     --start <offset>     first byte of the locked range (implies --fcntl)
     --length <number>    bytes in the locked range (implies --fcntl)
     --fd <number>        lock the caller's descriptor around the command
     --verbose            say how long the lock took, and what runs

 -h, --help               show this help
 -V, --version            show the version

See lockmgr's docs/cli.rst, "Coming from flock(1)".
`, name)
}
