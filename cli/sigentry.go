package main

// What lockmgr's caller set for signals, recorded before the Go runtime
// changes it: by lockmgrEntry (sigentry_linux_amd64.s) or by the C
// constructor in sigentry_cgo.go, whichever the build has; entryRan stays
// 0 in a build with neither. signals.go says why, which build has which,
// and what a build with neither loses.

import (
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

var (
	// entryRan is 1 once lockmgrEntry has filled in the two below.
	entryRan uint64
	// entryHandlers[sig] is the handler sig had at exec: 0 SIG_DFL,
	// 1 SIG_IGN (anything else cannot survive an exec).
	entryHandlers [65]uint64
	// entryMask is the signal mask at exec, bit sig-1 for sig.
	entryMask uint64
	// entryScratch receives one struct sigaction at a time.
	entryScratch [4]uint64
)

// keptIgnored are the signals lockmgr leaves ignored, in itself and in
// the command, when its caller ignored them. Not SIGCHLD, which flock(1)
// also resets (an ignored SIGCHLD would make the kernel reap the command
// before lockmgr learns its status), nor the signals the Go runtime needs
// (SIGURG, SIGPROF, the real-time ones) or that report faults.
var keptIgnored = []syscall.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
	syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGTERM, syscall.SIGTSTP, syscall.SIGTTIN,
	syscall.SIGTTOU, syscall.SIGWINCH, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM,
	syscall.SIGIO, syscall.SIGPWR,
}

// callerIgnored reports whether lockmgr's caller ignored s.
func callerIgnored(s os.Signal) bool {
	sig, ok := s.(syscall.Signal)
	if ok && entryRan == 1 && sig > 0 && int(sig) < len(entryHandlers) {
		return entryHandlers[sig] == 1
	}
	return signal.Ignored(s)
}

// restoreIgnored ignores again, in lockmgr, the signals its caller
// ignored and the Go runtime took over, so that the command inherits
// them ignored, as from flock(1).
func restoreIgnored() {
	if entryRan != 1 {
		return
	}
	for _, sig := range keptIgnored {
		if entryHandlers[sig] == 1 && !signal.Ignored(sig) {
			signal.Ignore(sig)
		}
	}
}

// withCallerMask runs start (which starts a command) on a thread whose
// signal mask is the caller's, which the command then inherits; without
// the entry's record it just runs start.
func withCallerMask(start func() error) error {
	if entryRan != 1 {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	set.Val[0] = entryMask
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &set, &old); err != nil {
		return start()
	}
	defer func() { _ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil) }()
	return start()
}
