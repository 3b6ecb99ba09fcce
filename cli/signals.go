package main

// What lockmgr does with signals, so that putting `lockmgr run` in front
// of a command changes nothing a shell or the command can see.
//
// Dispositions. A command started by flock(1) inherits its caller's
// ignored signals: nohup's SIGHUP, a background job's SIGINT. exec resets
// a caught signal to its default, so every signal lockmgr catches comes
// back to life in the command. lockmgr therefore never asks for a signal
// its caller ignored: it stays ignored in lockmgr, as in flock(1), and
// the command inherits it ignored. The Go runtime keeps an inherited
// SIG_IGN, and reports it through signal.Ignored, for SIGHUP and SIGINT
// only: it installs its own handler over every other signal before any
// of lockmgr's code runs, does not tell what it replaced, and unblocks
// SIGHUP, SIGINT, SIGTERM and SIGQUIT in its threads. sigentry.go
// recovers the rest, in a lockmgr linked with its own entry point; without
// it an ignored SIGTERM, SIGQUIT or SIGPIPE reaches the command at its
// default, and those four signals unblocked (docs/cli.rst, "Coming from
// flock(1)").
//
// Dying. A shell stops a loop only when its child was killed by SIGINT
// (bash's "wait and cooperative exit"), so lockmgr, like env, nice and
// sudo, ends itself by the signal that ended the command, after it has
// released the lock; and a signal that stops the wait for the lock ends
// lockmgr by that signal. The flock personality exits 128+N for a
// command killed by signal N, as util-linux flock(1) does, and dies by the
// signal itself, as flock(1) does, when the signal is aimed at it.

import (
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// relayedSignals are the signals `lockmgr run` catches: to stop waiting
// for the lock, and to pass on to the command.
var relayedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// catchableSignals returns the relayed signals that lockmgr's caller did
// not ignore. It must be called before any signal.Notify: Notify for an
// ignored signal replaces the SIG_IGN the command would have inherited.
func catchableSignals() []os.Signal {
	restoreIgnored()
	var out []os.Signal
	for _, s := range relayedSignals {
		if !callerIgnored(s) {
			out = append(out, s)
		}
	}
	return out
}

// notifyRelayed starts delivering the catchable relayed signals to c.
func notifyRelayed(c chan<- os.Signal) {
	if sigs := catchableSignals(); len(sigs) > 0 {
		signal.Notify(c, sigs...)
	}
}

// signalExit is the exit of a lockmgr that must end by signal sig: it is
// carried out by execute, after every deferred release has run.
func signalExit(sig syscall.Signal) error {
	return &exitError{code: exitSignal + int(sig), silent: true, signal: sig}
}

// dieBySignal ends lockmgr by sig: its default action, with the handler
// reset and the signal unblocked in the thread that raises it. A signal
// whose default action dumps core does so without a core file: the
// command's own dump, if any, is the one worth keeping. It returns only
// if sig's default does not end a process (SIGCHLD, SIGWINCH, a stop),
// and then the caller exits 128+sig.
func dieBySignal(sig syscall.Signal) {
	signal.Reset(sig)
	switch sig {
	case syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT, syscall.SIGBUS,
		syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSYS, syscall.SIGXCPU, syscall.SIGXFSZ:
		_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	case syscall.SIGCHLD, syscall.SIGURG, syscall.SIGWINCH, syscall.SIGCONT,
		syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return // their default does not end a process
	}
	// signal.Reset leaves the Go runtime's handler in place, which turns
	// SIGQUIT into a goroutine dump; the kernel's default is wanted.
	// An all-zero struct sigaction is SIG_DFL, no flags, an empty mask,
	// whatever the architecture's field order.
	var dfl [4]uint64
	_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	runtime.LockOSThread()
	var set unix.Sigset_t
	set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
	_ = unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	runtime.UnlockOSThread()
}

// commandExit is lockmgr's exit once the command has ended and the lock
// is released: the command's status; for a command killed by a signal,
// death by the same signal (in the flock personality, 128+N as flock(1)
// exits).
func (o *runOptions) commandExit(ps *os.ProcessState) error {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() && o.compat == nil {
		return signalExit(ws.Signal())
	}
	if code := childStatus(ps); code != 0 {
		return exitStatus(code)
	}
	return nil
}
