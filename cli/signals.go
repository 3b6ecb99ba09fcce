package main

// Signals in lockmgr: the whole model, written down here once. Every
// other place that touches a signal does one part of it and points here.
//
// There are two kinds of process. lockmgr itself (this program, the
// host) stands between a caller and a command, and must change nothing
// either can see about signals. A backend plugin (core/plugin.Serve)
// is lockmgr's own child, started by core/pluginhost, and owns its
// signals outright. Four signal jobs follow.
//
// 1. The caller's dispositions and mask reach the command (host). A
// command started by flock(1) inherits its caller's ignored signals
// (nohup's SIGHUP, a background job's SIGINT) and signal mask, and exec
// resets a caught signal to its default, so every signal lockmgr catches
// comes back to life in the command. lockmgr therefore never asks for a
// signal its caller ignored (catchableSignals), ignores again what its
// caller ignored (restoreIgnored; SIGCHLD excepted, as flock(1) resets
// it too: keptIgnored lists the rest), and starts the command with the
// caller's mask (withCallerMask). The Go runtime makes this hard: before
// any Go code runs it installs its own handler over most signals,
// without saying what it replaced, and unblocks in its threads the
// signals it needs. So the caller's state is recorded before the runtime
// starts, by one of:
//
//   - lockmgrEntry (sigentry_linux_amd64.s, variables in sigentry.go):
//     an ELF entry point, used when Go's linker links lockmgr with
//     -ldflags=-E=main.lockmgrEntry; the Makefile (CLIENTRY) does so for
//     CGO_ENABLED=0 on amd64, as make build and the releases are built;
//   - a C constructor (sigentry_cgo.go), in a cgo build, whose entry is
//     the C library's and which ignores -E; on any architecture;
//   - neither: a build without cgo on another architecture (arm64), or
//     without the flag (go build, go install, go run, a test binary).
//
// What a build with neither loses, as measured with Go 1.26 on Linux:
// it knows what the runtime tells (signal.Ignored), which is only that
// SIGHUP and SIGINT were ignored, and it leaves alone the ignored
// SIGTSTP, SIGTTIN and SIGTTOU, whose handlers the runtime does not
// replace; the command inherits those five ignored, as from flock(1).
// An ignored SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM,
// SIGWINCH, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGIO or SIGPWR reaches the
// command at its default instead. And the command's mask is the caller's
// less SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD, SIGURG, SIGPROF, the
// fault signals (SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV,
// SIGSTKFLT, SIGSYS) and the real-time signals 33 and 34, which arrive
// unblocked. docs/cli.rst ("Coming from flock(1)") tells users the same.
//
// 2. Relaying and dying (host). `lockmgr run` catches SIGINT, SIGTERM,
// SIGHUP and SIGQUIT (relayedSignals), unless its caller ignored them: to
// stop waiting for the lock, and to pass on to the command. A shell stops
// a loop only when its child was killed by SIGINT (bash's "wait and
// cooperative exit"), so lockmgr, like env, nice and sudo, ends itself by
// the signal that ended the command, after it has released the lock
// (commandExit, dieBySignal: the kernel's default action, reset by a raw
// rt_sigaction, since signal.Reset leaves the runtime's handler); and a
// signal that stops the wait for the lock ends lockmgr by that signal.
// The flock personality exits 128+N for a command killed by signal N, as
// util-linux flock(1) does, and dies by the signal itself, as flock(1)
// does, when the signal is aimed at it.
//
// 3. A plugin outlives the signals meant for its host (plugin). The
// session with its host alone decides when a plugin ends, so it ignores
// the very signals lockmgr relays, one list (pluginrpc.GroupSignals: a
// terminal's ^C and ^\, a hangup, a service manager's SIGTERM to the
// whole group), which must not
// drop the lock that guards a command still shutting down; and it takes
// pluginrpc.HostDeathSignal (SIGUSR2) as its parent-death signal
// (Pdeathsig), which the host sets as it starts it unless it hands the
// lock on. Both are in core/pluginrpc (serve.go, handshake.go).
//
// 4. A real-time signal ends a blocking lock call (plugin).
// core/kernelwait takes real-time signal 40 (kernelwait.Signal) to
// interrupt a lock call blocked in the kernel once its context ends, as
// flock(1) interrupts its wait with a timer signal; its package comment
// says how. Only a process that owns its signals may do that: a plugin
// does (Serve calls kernelwait.Enable); lockmgr itself never does, since
// its signals are its caller's and its command's.

import (
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"unsafe"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"golang.org/x/sys/unix"
)

// relayedSignals are the signals `lockmgr run` catches: to stop waiting
// for the lock, and to pass on to the command. They are the ones a plugin
// ignores, and come from the same list.
var relayedSignals = lockmgr.GroupSignals()

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
