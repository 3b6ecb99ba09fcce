package main

// `lockmgr lock --fd N` and `lockmgr unlock --fd N` are flock(1)'s
// descriptor mode:
//
//	exec 9>/var/lock/job
//	lockmgr lock -n --fd 9 || exit 1
//	... the lock is held until the shell closes 9 ...
//
// lockmgr exits at once, with the lock left in place. That works only
// for locks that belong to an open file description (flock, ofd): a
// Handle made lockmgr.WithFile locks the open file description behind the
// shell's descriptor 9, which the shell keeps open after lockmgr and its
// plugin have gone (Detach leaves the lock there). A POSIX lock belongs
// to the process that takes it, and would die with the plugin a moment
// later.

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"github.com/lockmgr/lockmgr/core/proclocks"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// posixFDError explains why --fd cannot work with POSIX locks.
const posixFDError = "a POSIX lock belongs to the process that takes it, and would die with lockmgr's backend plugin as soon as lockmgr exits; use --backend flock or ofd, whose locks belong to the open file description the shell keeps open"

func newLockCmd(g *globals) *cobra.Command {
	o := newRunOptions()
	var fd int
	c := &cobra.Command{
		Use:   "lock [flags] --fd N",
		Short: "Lock the file open on a shell's descriptor, and leave it locked",
		Long: `Lock the open file behind descriptor N, inherited from the shell, and exit
with the lock left in place: it is held for as long as the shell (or
whatever inherited N) keeps N open, or until 'lockmgr unlock --fd N'.

  exec 9>/var/lock/job
  lockmgr lock -n --fd 9 || exit 1

This needs a backend whose locks belong to the open file description:
flock (the default) or ofd. POSIX locks die with the process that takes
them.

The exit status is 0 when the lock is taken, the --conflict-exit-code (1)
when it is held or --timeout passes, 66 when N is not open or was not
passed in by the caller, and otherwise
as for 'lockmgr run'.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("lock takes no FILE: open it in the shell and pass the descriptor, as in 'exec 9>%s; lockmgr lock --fd 9'", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			return lockFD(g, &o.lockFlags, fdFlag(c, fd))
		},
	}
	registerOptions(c.Flags(), o, forLock)
	c.Flags().Lookup("backend").Usage = "lock through backend `NAME`: flock or ofd (or a plugin whose locks belong to the open file description)"
	c.Flags().IntVar(&fd, "fd", 0, "lock the file open on descriptor `N`")
	return c
}

func newUnlockCmd(g *globals) *cobra.Command {
	var backendName string
	var verbose bool
	var fd int
	c := &cobra.Command{
		Use:   "unlock --fd N",
		Short: "Release the lock held through a shell's descriptor",
		Long: `Release the lock that 'lockmgr lock --fd N' (or flock(1), or any other
program) took on the open file behind descriptor N. The backend is the one
whose lock the descriptor holds, as the kernel shows it; a descriptor
that holds no lock is left alone, and that is not an error.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return unlockFD(g, backendName, fdFlag(c, fd), verbose)
		},
	}
	c.Flags().IntVar(&fd, "fd", 0, "unlock the file open on descriptor `N`")
	c.Flags().StringVarP(&backendName, "backend", "b", "", "release only a lock of backend `NAME` (default: whichever the descriptor holds)")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "say what was released")
	return c
}

// fdFlag returns --fd's value, or -1 if it was not given.
func fdFlag(c *cobra.Command, fd int) int {
	if !c.Flags().Changed("fd") {
		return -1
	}
	return fd
}

// openFD checks that fd is open and returns the path it names, for
// messages and the config's path rules.
func openFD(fd int) (string, error) {
	switch {
	case fd == -1:
		return "", usageErrorf("--fd N is required (a descriptor the shell opened, as in 'exec 9>/var/lock/job')")
	case fd < 0:
		return "", usageErrorf("--fd %d is not a descriptor", fd)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		return "", withCode(exitNoInput, fmt.Errorf("--fd %d: descriptor is not open (%v); open the lock file on it first, as in 'exec %d>/var/lock/job'", fd, err, fd))
	}
	if flags&unix.FD_CLOEXEC != 0 {
		// Open, but not by the caller: a descriptor inherited across exec
		// cannot be close-on-exec, and every descriptor lockmgr's own
		// runtime and packages open is (the runtime's cgroup files, epoll
		// and eventfd sit at 3 and up when the shell passed nothing
		// there). Locking one would report success on a lock no one holds.
		return "", withCode(exitNoInput, fmt.Errorf("--fd %d: descriptor was not passed in by the caller (it is one of lockmgr's own); open the lock file on it first, as in 'exec %d>/var/lock/job'", fd, fd))
	}
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		path = "fd " + strconv.Itoa(fd)
	}
	return path, nil
}

// fdBackend picks the backend for a descriptor naming path: the flag, or
// the configuration's choice for path, with auto decided by path's
// filesystem, as core decides it for a lock file (config.Resolve).
func fdBackend(cfg *config.Config, flag, path string) string {
	return cfg.Resolve(flag, path, lockfile.PathOnNetworkFS)
}

// fdHandle returns a Handle that locks the open file behind fd, named
// path, through backend name, and what to call when done with it. The
// Handle gets a copy of fd, never an *os.File of fd itself: os.File
// closes its descriptor when it is garbage collected, and fd is the
// caller's, which must stay open in lockmgr for as long as it runs (run
// --fd's command inherits it).
func fdHandle(cfg *config.Config, name string, fd int, path string) (*lockmgr.Handle, func(), error) {
	if name == config.BackendPOSIX {
		return nil, nil, usageErrorf("--fd with the posix backend: %s", posixFDError)
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, nil, withCode(exitNoInput, fmt.Errorf("--fd %d: %w", fd, err))
	}
	f := os.NewFile(uintptr(dup), path)
	h := lockmgr.New(path, lockmgr.WithConfig(cfg), lockmgr.WithBackend(name), lockmgr.WithFile(f))
	return h, func() { h.Close(); f.Close() }, nil
}

func lockFD(g *globals, o *lockFlags, fd int) error {
	_, err := lockDescriptor(g, o, fd)
	return err
}

// lockDescriptor locks the open file behind the caller's descriptor fd,
// and says what lock it took, for the outputs of run --fd's command.
func lockDescriptor(g *globals, o *lockFlags, fd int) (lockEnv, error) {
	if err := o.check(); err != nil {
		return lockEnv{}, err
	}
	path, err := openFD(fd)
	if err != nil {
		return lockEnv{}, err
	}
	cfg, err := g.loadConfig(o.backend)
	if err != nil {
		return lockEnv{}, err
	}
	name := fdBackend(cfg, o.backend, path)
	h, done, err := fdHandle(cfg, name, fd, path)
	if err != nil {
		return lockEnv{}, err
	}
	// done returns once the plugin, which holds a copy of the shell's
	// open file description, has exited, so that when the shell closes
	// its descriptor nothing else holds the description, as under
	// flock(1).
	defer done()

	sigs := make(chan os.Signal, 1)
	notifyRelayed(sigs)
	defer signal.Stop(sigs)
	ctx, stop := cancelOnSignal(sigs)
	err = o.acquire(ctx, handleLocker(h, o.mode), os.Stderr)
	// A lock taken stays with the open file description the shell holds,
	// even if a signal came as it was granted: done must not release it.
	_, _ = h.Detach()
	if s := stop(); s != nil {
		return lockEnv{}, signalExit(s.(syscall.Signal))
	}
	return lockEnv{name: path, backend: name}, err
}

// unlockFD releases the locks held through fd, as flock(1) -u does: with
// the kernel's unlock on the caller's own descriptor, which lockmgr has
// open, and no plugin. An unlock cannot conflict with anything. (It used
// to take the lock again through the backend's plugin, so that the
// backend would release one it had granted: a whole-file retake, which
// another process's lock on a separate byte range refused, and the lock
// stayed.) The kinds released are those the kernel shows fd holding, so
// nothing else of the file's, nor another open file description's lock,
// is touched.
//
// g is unused: an unlock reads no configuration, so that a broken one
// cannot keep a lock held.
func unlockFD(_ *globals, flag string, fd int, verbose bool) error {
	if err := checkBackendFlag(flag); err != nil {
		return err
	}
	path, err := openFD(fd)
	if err != nil {
		return err
	}
	held, err := fdLocks(fd)
	if err != nil {
		return err
	}
	if flag == config.BackendPOSIX {
		return usageErrorf("--fd with the posix backend: %s", posixFDError)
	}
	released := false
	for _, l := range held {
		if flag != "" && flag != l.Kind {
			continue
		}
		if err := kernelUnlock(fd, l.Kind); err != nil {
			return withCode(exitNoInput, fmt.Errorf("unlock --fd %d (%s, %s): %w", fd, path, l.Kind, err))
		}
		released = true
		if verbose {
			fmt.Fprintf(os.Stderr, "lockmgr: released the %s %s lock on %s\n", l.Mode, l.Kind, path)
		}
	}
	if !released && verbose {
		what := "no lock"
		if flag != "" {
			what = "no " + flag + " lock"
		}
		fmt.Fprintf(os.Stderr, "lockmgr: descriptor %d holds %s on %s\n", fd, what, path)
	}
	return nil
}

// kernelUnlock releases every lock of kind (flock or ofd) that fd's open
// file description holds: every byte range of it, for ofd.
func kernelUnlock(fd int, kind string) error {
	switch kind {
	case proclocks.KindFlock:
		return unix.Flock(fd, unix.LOCK_UN)
	case proclocks.KindOFD:
		// Start 0 and Len 0 cover the whole file, however long it grows.
		unlock := unix.Flock_t{Type: unix.F_UNLCK, Whence: io.SeekStart}
		return unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &unlock)
	}
	return fmt.Errorf("no unlock for locks of kind %q", kind)
}

// fdLocks returns the flock and OFD locks that fd's open file description
// holds, from the "lock:" lines of /proc/self/fdinfo/FD.
func fdLocks(fd int) ([]proclocks.Lock, error) {
	data, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("reading the locks of descriptor %d: %w", fd, err)
	}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "lock:"); ok {
			lines = append(lines, rest)
		}
	}
	locks, err := proclocks.Parse(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		return nil, fmt.Errorf("reading the locks of descriptor %d: %w", fd, err)
	}
	var out []proclocks.Lock
	seen := map[string]bool{}
	for _, l := range locks {
		if (l.Kind == proclocks.KindFlock || l.Kind == proclocks.KindOFD) && !l.Waiting && !seen[l.Kind] {
			seen[l.Kind] = true
			out = append(out, l)
		}
	}
	return out, nil
}
