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
// flock(1)'s contract, as scripts see it (its getopt, usage text,
// messages and sysexits codes), is package flockcompat's. This file is
// the glue: it turns a flock(1) command line into the run flow's options,
// picks the form (FILE COMMAND, --fd N COMMAND, N), and reports lockmgr's
// errors in flock(1)'s words. What lockmgr does deliberately differently
// stays (a symbolic link as lock file is refused): docs/cli.rst lists it.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/lockmgr/lockmgr/cli/internal/flockcompat"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"golang.org/x/sys/unix"
)

// flockName is the name under which lockmgr is flock(1).
const flockName = flockcompat.Name

// reportAsFlock prints err as flock(1) would and returns flock(1)'s exit
// code for it: lockmgr's errors, in flock(1)'s words and codes.
func reportAsFlock(c *flockcompat.Voice, err error) int {
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
			code = flockcompat.ExitCantCreat
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM:
			code = flockcompat.ExitOSErr
		case syscall.ENOLCK:
			fmt.Fprintf(c.Stderr, "%s: %s: %s\n", c.Name, c.Target, flockcompat.Strerror(errno))
			return flockcompat.ExitOSErr
		case syscall.EBADF, syscall.EINVAL, syscall.EIO, syscall.EDEADLK, syscall.EOPNOTSUPP:
			fmt.Fprintf(c.Stderr, "%s: %s: %s\n", c.Name, c.Target, flockcompat.Strerror(errno))
			return flockcompat.ExitDataErr
		}
		fmt.Fprintf(c.Stderr, "%s: cannot open lock file %s: %s\n", c.Name, c.Target, flockcompat.Strerror(errno))
		return code
	}
	if code == exitNotFound || code == exitCannotExec {
		code = exitUnavailable
	}
	fmt.Fprintf(c.Stderr, "%s: %s\n", c.Name, oneLine(err.Error()))
	return code
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
	c := &flockcompat.Voice{Name: short, Stdout: os.Stdout, Stderr: os.Stderr}
	if !isTerminal(os.Stdout) {
		// flock(1) prints its --verbose lines with stdio, which holds
		// them until exit unless stdout is a terminal: after the
		// command's own output, in a pipe or a file.
		w := bufio.NewWriter(os.Stdout)
		defer w.Flush()
		c.Stdout = w
	}
	err := runFlock(c, argv)
	var usage *flockcompat.Usage
	if errors.As(err, &usage) {
		for _, l := range usage.Lines {
			fmt.Fprintln(os.Stderr, l)
		}
		return exitUsage, 0
	}
	return reportAsFlock(c, err), exitSignalOf(err)
}

// runFlock reads flock(1)'s command line and does what it says.
func runFlock(c *flockcompat.Voice, argv []string) error {
	short := c.Name
	if len(argv) < 2 {
		return &flockcompat.Usage{Lines: []string{short + ": not enough arguments", fmt.Sprintf("Try '%s --help' for more information.", short)}}
	}
	// flock(1)'s defaults where it has no option (--on-lost, --grace) are
	// run's.
	o := newRunOptions()
	ops, commandLine, err := flockcompat.Parse(argv[0], short, argv[1:], flockOptions(o))
	if err != nil {
		return err
	}
	switch {
	case o.help:
		flockcompat.Help(c.Stdout, short)
		return nil
	case o.version:
		fmt.Fprintf(c.Stdout, "%s from lockmgr %s\n", short, version)
		return nil
	}
	o.compat = c
	// --verbose is the Voice's, not lockFlags': flock(1)'s lines replace
	// lockmgr's.
	c.Verbose, o.verbose = o.verbose, false
	if o.noFork && o.close {
		return &flockcompat.Usage{Lines: []string{short + ": the --no-fork and --close options are incompatible"}}
	}
	if err := o.checkFlock(); err != nil {
		return err
	}
	g := &globals{}
	if o.fd >= 0 {
		// --fd N COMMAND: the lock goes around the command, on the
		// caller's descriptor.
		c.Target = strconv.Itoa(o.fd)
		var cmd []string
		switch {
		case commandLine != nil:
			cmd = shellArgv(*commandLine)
		case len(ops) > 0:
			cmd = ops
		default:
			return &flockcompat.Usage{Lines: []string{short + ": requires file descriptor, file or directory"}}
		}
		if !callerFD(o.fd) {
			return exitStatus(c.BadFD())
		}
		if !o.unlock {
			if err := posixForFD(c, g, o); err != nil {
				return err
			}
		}
		return o.runWithFD(g, o.fd, cmd)
	}
	if commandLine != nil {
		return &flockcompat.Usage{Lines: []string{short + ": requires file descriptor, file or directory"}}
	}
	switch {
	case len(ops) > 1:
		file, cmd := ops[0], ops[1:]
		c.Target = file
		if cmd[0] == "-c" || cmd[0] == "--command" {
			if len(cmd) != 2 {
				return &flockcompat.Usage{Lines: []string{fmt.Sprintf("%s: %s requires exactly one command argument", short, cmd[0])}}
			}
			cmd = shellArgv(cmd[1])
		}
		if o.unlock {
			return o.runUnlocked(file, cmd)
		}
		return o.runFile(g, file, cmd)
	case len(ops) == 1:
		n, err := strconv.ParseInt(ops[0], 10, 32)
		if err != nil {
			return &flockcompat.Usage{Lines: []string{fmt.Sprintf("%s: bad file descriptor: '%s'", short, ops[0])}}
		}
		c.Target = strconv.FormatInt(n, 10)
		if n < 0 || !callerFD(int(n)) {
			return exitStatus(c.BadFD())
		}
		start := time.Now()
		if o.unlock {
			err = unlockFD(g, o.backend, int(n), false)
		} else if err = posixForFD(c, g, o); err == nil {
			err = lockFD(g, &o.lockFlags, int(n))
			compatFailed(c, err, &o.lockFlags)
		}
		if err == nil {
			c.Acquired(time.Since(start))
		}
		return err
	}
	return &flockcompat.Usage{Lines: []string{short + ": requires file descriptor, file or directory"}}
}

// compatFailed has c say, if err is a lock someone else holds (the silent
// -E exit), that the lock was not taken, as flock(1)'s --verbose does.
func compatFailed(c *flockcompat.Voice, err error, f *lockFlags) {
	var ee *exitError
	if errors.As(err, &ee) && ee.silent && ee.signal == 0 {
		c.NotAcquired(f.waits())
	}
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

// posixForFD refuses to lock the descriptor c.Target when lockmgr's
// configuration puts its file on the posix backend: a POSIX lock belongs
// to the process that takes it, lockmgr's plugin, and would end when this
// flock exits, leaving the script unguarded. lockmgr's own answer names
// --backend, which flock(1) has not; this one names what a flock(1)
// script can change (the form of the call) and what its admin can (the
// configuration that chose posix). Any other trouble with the
// configuration is left to lockFD to report.
func posixForFD(c *flockcompat.Voice, g *globals, o *runOptions) error {
	if o.backend != "" {
		return nil // --fcntl: ofd
	}
	path, err := os.Readlink("/proc/self/fd/" + c.Target)
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
	fmt.Fprintf(c.Stderr, "%s: %s: lockmgr's configuration (%s) puts %s on the posix backend, whose lock would end when %s exits: lock the file by name around the command ('%s FILE COMMAND'), or route the path to flock or ofd\n",
		c.Name, c.Target, src, path, c.Name, c.Name)
	return exitStatus(exitUsage)
}

// runUnlocked is `flock -u FILE COMMAND`: flock(1) opens FILE (making it
// if need be), unlocks what that new open holds, which is nothing, and
// runs the command. The open never blocks, as no lock file's does: a
// FIFO planted at FILE would otherwise hold it until someone wrote to it.
func (o *runOptions) runUnlocked(file string, argv []string) error {
	f, err := os.OpenFile(file, os.O_RDONLY|os.O_CREATE|syscall.O_NOCTTY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0o666)
	if errors.Is(err, syscall.EISDIR) {
		f, err = os.Open(file)
	}
	if err != nil {
		return err
	}
	f.Close()
	start := time.Now()
	c := findCommand(argv)
	o.compat.Acquired(time.Since(start))
	if err := o.ready(c); err != nil {
		return err
	}
	// No lock goes round the command, and no output says there is one.
	return o.runCommand(c, launch{})
}
