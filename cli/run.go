package main

// `lockmgr run` is flock(1)'s main use: take the lock, run the command,
// release the lock when the command ends.
//
// The lock's lifetime follows flock(1). There, the command inherits the
// locked descriptor, so the lock outlives a flock(1) killed with SIGKILL
// for as long as the command (and whatever inherited from it) runs; -o
// keeps the descriptor out of the command, so that the lock ends with
// flock(1). For flock and ofd, whose locks belong to an open file
// description, lockmgr does exactly that: the plugin hands it the locked
// descriptor, and the command inherits it at the lowest number its caller
// left free.
//
// A posix lock belongs to the plugin process, and an etcd lock to its
// lease, so there the plugin keeps the lock for as long as its keeper has
// a copy open. lockmgr asks for a keeper (WithLifeline) and hands a copy
// to the command: killing lockmgr leaves the plugin, and that lock (no
// other), alive until the command and its heirs have exited. With -o the
// command gets no copy, and the lock ends with lockmgr. Either way a plugin whose
// locks outlive it (etcd leases) gives them back before it exits. If such
// a plugin loses the lock while the command runs, the command is running
// unguarded: --on-lost says what to do about it.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lockmgr/lockmgr/cli/internal/fdslot"
	"github.com/lockmgr/lockmgr/cli/internal/flockcompat"
	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/spf13/cobra"
)

// Environment variables lockmgr sets for the command it runs: outputs,
// which no lockmgr reads (see config.OutputEnv).
const (
	envLockFile     = config.EnvLockFile
	envBackend      = config.EnvLockBackend
	envFencingToken = config.EnvFencingToken
)

// The --on-lost policies.
const (
	onLostTerm   = "term"
	onLostKill   = "kill"
	onLostIgnore = "ignore"
)

type runOptions struct {
	lockFlags
	close  bool
	onLost string
	grace  time.Duration
	start  int64
	length int64
	// rangeSet is whether --start or --length was given.
	rangeSet bool
	// fd is --fd, or -1; commandLine is -c given before the operands,
	// which only --fd allows.
	fd          int
	commandLine string
	// flock(1)'s own options (flockopts.go): -u, -F, --fcntl, -V; and
	// its -h, which only the personality reads (run's is cobra's).
	unlock, noFork, fcntl, version, help bool
	// compat, in the flock personality, makes lockmgr speak as util-linux
	// flock(1): its messages, --verbose lines and exit codes.
	compat *flockcompat.Voice
}

func newRunCmd(g *globals) *cobra.Command {
	o := newRunOptions()
	c := &cobra.Command{
		Use:   "run [flags] FILE {-- COMMAND [ARG...] | -c COMMAND-LINE}",
		Short: "Run a command while holding a lock on FILE",
		Long: `Take a lock on FILE, run COMMAND, and release the lock when COMMAND ends,
as flock(1) does; the exit status is COMMAND's. FILE is created if it does
not exist (never through a symbolic link). With the etcd backend, FILE is
a lock name shared by every host, and no file is made.

Flags go before FILE; whatever follows FILE is the command. With -c,
COMMAND-LINE is run by $SHELL -c (/bin/sh when SHELL is unset). flock(1)'s
spellings work too: -e, --nb, --wait, -u, -F, --fcntl, -V, --fd N, and a
descriptor number instead of FILE ('lockmgr run 9').

As under flock(1), the command inherits the lock: it stays held while the
command runs even if lockmgr is killed; --close (-o) ends it with lockmgr.
The command gets LOCKMGR_LOCK_FILE, LOCKMGR_LOCK_BACKEND and, from
backends that give one, LOCKMGR_FENCING_TOKEN. Signals, a lost lock
(--on-lost) and how COMMAND is found: lockmgr-run(1).

` + exitCodesHelp,
		Example: `  # A cron job that skips a run while the last one is still going:
  lockmgr run -n /run/lock/backup.lock -- /usr/local/bin/backup.sh

  # Wait up to 30 seconds, saying who holds the lock meanwhile:
  lockmgr run -v -w 30 /run/lock/db.lock -c 'pg_dump db > db.sql'

  # Readers share, a writer excludes them:
  lockmgr run -s /run/lock/data.lock -- report.sh`,
		Args: cobra.ArbitraryArgs, // parseRunArgs reads them
		RunE: func(c *cobra.Command, args []string) error { return o.run(g, c.Flags().Changed, args) },
	}
	// Everything after FILE is the command's, as in flock(1).
	c.Flags().SetInterspersed(false)
	registerOptions(c.Flags(), o, forRun)
	return c
}

// parseRunArgs splits what follows run's flags into the lock file and the
// command to run: FILE -- COMMAND..., FILE -c LINE, or FILE COMMAND... as
// flock(1) takes it.
func parseRunArgs(args []string) (file string, argv []string, err error) {
	const usage = "(usage: lockmgr run [flags] FILE -- COMMAND [ARG...], or FILE -c COMMAND-LINE)"
	if len(args) == 0 {
		return "", nil, usageErrorf("run: missing FILE and COMMAND %s", usage)
	}
	file, rest := args[0], args[1:]
	if file == "" {
		return "", nil, usageErrorf("run: FILE is empty %s", usage)
	}
	if len(rest) == 0 {
		return "", nil, usageErrorf("run: missing COMMAND after %s %s", file, usage)
	}
	switch first := rest[0]; {
	case first == "--":
		argv = rest[1:]
	case first == "-c" || first == "--command":
		if len(rest) != 2 {
			return "", nil, usageErrorf("run: %s takes exactly one command line, got %d arguments %s", first, len(rest)-1, usage)
		}
		argv = shellArgv(rest[1])
	case strings.HasPrefix(first, "-"):
		// Almost surely a flag put after FILE, which would otherwise run
		// as a command named "-n"; `FILE -- -cmd` runs such a command.
		return "", nil, usageErrorf("run: %q after FILE: flags go before FILE, and a command after -- %s", first, usage)
	default:
		argv = rest
	}
	if len(argv) == 0 || argv[0] == "" {
		return "", nil, usageErrorf("run: missing COMMAND after -- %s", usage)
	}
	return file, argv, nil
}

// check refuses bad flag values, as usage errors.
func (o *runOptions) check(changed func(string) bool) error {
	if err := o.checkFlock(); err != nil {
		return err
	}
	if err := o.lockFlags.check(); err != nil {
		return err
	}
	switch o.onLost {
	case onLostTerm, onLostKill, onLostIgnore:
	default:
		return usageErrorf("--on-lost %q: want term, kill or ignore", o.onLost)
	}
	if changed("start") && o.start < 0 {
		return usageErrorf("--start %d is negative", o.start)
	}
	if changed("length") && o.length < 0 {
		return usageErrorf("--length %d is negative", o.length)
	}
	return nil
}

// run is the whole of `lockmgr run`; changed reports whether a flag was
// given.
func (o *runOptions) run(g *globals, changed func(string) bool, args []string) error {
	if o.version {
		return printVersion(os.Stdout)
	}
	if fd, ok := fdArg(args); ok {
		// flock(1)'s `flock [-u] N`: lock (or unlock) a descriptor.
		if err := o.check(changed); err != nil {
			return err
		}
		return o.runFD(g, fd)
	}
	if o.fd >= 0 {
		// flock(1)'s --fd N COMMAND: everything after the flags is the
		// command.
		if changed("command") {
			args = append([]string{"-c", o.commandLine}, args...)
		}
		_, argv, err := parseRunArgs(append([]string{"--fd"}, args...))
		if err != nil {
			return err
		}
		if err := o.check(changed); err != nil {
			return err
		}
		return o.runWithFD(g, o.fd, argv)
	}
	if changed("fd") {
		return usageErrorf("--fd %d is not a descriptor", o.fd)
	}
	if changed("command") {
		return usageErrorf("run: -c goes after FILE, as in 'lockmgr run FILE -c COMMAND-LINE' (before it, only with --fd N)")
	}
	if o.unlock {
		return usageErrorf("run: --unlock (-u) takes a descriptor number, as in 'lockmgr run -u 9'; a lock taken for a command ends with the command")
	}
	file, argv, err := parseRunArgs(args)
	if err != nil {
		return err
	}
	if err := o.check(changed); err != nil {
		return err
	}
	o.rangeSet = changed("start") || changed("length")
	return o.runFile(g, file, argv)
}

// runFile runs argv while holding a lock on file.
func (o *runOptions) runFile(g *globals, file string, argv []string) error {
	// Find the command before touching the lock file: a command that is
	// not there must not leave a lock file behind. flock(1) finds out
	// only when it has the lock, and so does its personality (ready).
	c := findCommand(argv)
	if c.err != nil && o.compat == nil {
		return o.cannotRun(argv[0], c.err)
	}
	cfg, err := g.loadConfig(o.backend)
	if err != nil {
		return err
	}

	opts := []lockmgr.Option{lockmgr.WithConfig(cfg)}
	if !o.close {
		// The command inherits the lock: a plugin's through its
		// keeper (runWithPlugin).
		opts = append(opts, lockmgr.WithLifeline())
	}
	if o.backend != "" {
		// Above the config's path rules too: the flag is the user's
		// explicit choice for this one lock.
		opts = append(opts, lockmgr.WithBackend(o.backend))
	}
	if o.rangeSet {
		opts = append(opts, lockmgr.WithRange(o.start, o.length))
	}
	h := lockmgr.New(file, opts...)
	defer h.Close()

	sigs := make(chan os.Signal, 8)
	notifyRelayed(sigs)
	defer signal.Stop(sigs)

	start := time.Now()
	if err := o.acquire(h, sigs); err != nil {
		return err
	}
	o.compat.Acquired(time.Since(start))
	for _, w := range h.Warnings() {
		fmt.Fprintln(os.Stderr, "lockmgr: warning: "+oneLine(w))
	}
	if err := o.ready(c); err != nil {
		return err
	}
	return o.runLocked(h, c, sigs)
}

// acquire takes the lock, or gives up on a signal.
func (o *runOptions) acquire(h *lockmgr.Handle, sigs <-chan os.Signal) error {
	ctx, stop := cancelOnSignal(sigs)
	l := handleLocker(h, o.mode)
	f := o.lockFlags
	if o.compat != nil {
		f.verbose = false // flock(1)'s lines instead (package flockcompat)
	}
	err := f.acquire(ctx, l, os.Stderr)
	if s := stop(); s != nil {
		// A signal that came as the lock was granted still means stop:
		// the command has not started, and must not. lockmgr ends by
		// it, as an uncaught signal would have ended flock(1).
		return signalExit(s.(syscall.Signal))
	}
	compatFailed(o.compat, err, &o.lockFlags)
	return err
}

// runLocked runs the command while h holds the lock, and returns its exit
// status (or 75 if the lock was lost and the command stopped for it).
//
// A lock that is the locked file f (flock, ofd) is run with as flock(1)
// does: the command inherits f, unless --close, so the lock lasts as long
// as the command and whatever inherited from it, even if lockmgr is
// killed. When the command ends lockmgr closes its own copy and never
// unlocks the open file description: a background child that inherited
// it keeps the lock, as under flock(1). Nothing can lose such a lock, and
// the plugin that took it is no longer needed: it is stopped now, so that
// a running lockmgr run is one process. With -F the command replaces
// lockmgr, as with flock(1) -F, if a number was reserved for the lock at
// start (launch.exec); if not, it runs as lockmgr's child, which holds
// the lock just as long. A lock its plugin keeps is runWithPlugin's.
func (o *runOptions) runLocked(h *lockmgr.Handle, c command, sigs <-chan os.Signal) error {
	env := handleEnv(h)
	f, err := h.Detach()
	if err != nil {
		return o.runWithPlugin(h, c, env, sigs)
	}
	defer f.Close()
	h.Close()
	l := launch{env: env, give: f, sigs: sigs}
	switch {
	case o.noFork && fdslot.Number() >= 0:
		l.exec = true
	case o.close:
		l.give = nil
	}
	return o.runCommand(c, l)
}

// runWithPlugin runs the command holding a lock that its plugin holds
// (posix, etcd, a third-party backend): the command inherits the lock's
// keeper, unless --close, so that the lock lives as long as the command;
// and if the plugin loses the lock meanwhile, --on-lost says what becomes
// of the command. -F cannot replace lockmgr here: the lock needs lockmgr
// to stay.
func (o *runOptions) runWithPlugin(h *lockmgr.Handle, c command, env lockEnv, sigs <-chan os.Signal) error {
	lost := h.Lost()
	select {
	case <-lost:
		return withCode(exitLost, fmt.Errorf("lost the lock on %s (%s) before %s started: %s", h.LockName(context.Background()), h.Backend(), c.argv[0], lossCause(h)))
	default:
	}
	l := launch{
		env: env, handOver: true,
		sigs: sigs, relay: true, lost: lost,
		onLost: func(cmd *exec.Cmd) bool { return o.lockLost(h, cmd, c.argv[0]) },
		// The lock is released whatever the command's heirs hold (a
		// daemon it started may keep the keeper open): closing the
		// handle ends the plugin's session, and the plugin, keeping
		// nothing now, exits. Nothing is waited for.
		ended: func(stopped bool) {
			uerr := h.Unlock()
			h.Close()
			if !stopped && uerr != nil && !errors.Is(uerr, lockmgr.ErrLost) {
				fmt.Fprintln(os.Stderr, "lockmgr: warning: "+oneLine(uerr.Error()))
			}
		},
	}
	if !o.close {
		var err error
		if l.give, err = h.Lifeline(); err != nil {
			return err
		}
	}
	return o.runCommand(c, l)
}
