// Package kernelwait lets a plugin wait for a busy lock the way
// util-linux flock(1) does: blocked in the kernel's lock call, woken by
// the kernel the moment the holder lets go, and still cancellable.
//
// flock(1) makes a blocking flock(2) cancellable with a timer signal whose
// handler lacks SA_RESTART, so the call fails with EINTR. A Go program
// cannot install such a handler of its own, since the runtime owns every
// signal and installs its handlers with SA_RESTART, under which the
// kernel restarts flock(2) and F_OFD_SETLKW instead of failing them. So
// Enable takes one real-time signal the runtime handles and ignores
// (Signal), and clears SA_RESTART from the runtime's own handler for it:
// the runtime still handles every delivery, and a lock call interrupted by
// it returns EINTR. Wait then runs the lock call on a thread of its own
// and, once the context ends, signals that thread until the call returns.
//
// The signal comes from a POSIX timer made for each wait, aimed at the
// waiting thread, never from tgkill(2): a real-time signal sent by
// tgkill is refused (EAGAIN) once RLIMIT_SIGPENDING is reached, and the
// lock call would then never be interrupted, while a timer's signal is
// allocated as the timer is made, before the thread blocks, and its
// delivery cannot fail. Where no timer can be made, the thread does not
// block in the kernel at all.
//
// Without Enable, past MaxWaiters, without a timer, or once Signal is no
// longer handled as Enable left it (os/signal may ignore it, or reinstall
// the runtime's handler with SA_RESTART, for code of the plugin's own),
// Wait reports ErrUnavailable and the caller waits its other way
// (core/lockwait), so a library that locks in its user's process never
// touches that process's signals, and a wait always ends.
package kernelwait

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Signal interrupts a waiting thread: the ninth real-time signal, which
// neither the Go runtime nor glibc reserves, and which the runtime
// ignores unless os/signal asks for it.
const Signal = unix.Signal(40)

// MaxWaiters bounds the threads blocked in lock calls at once, so that a
// plugin with thousands of waiters stays far below the runtime's limit of
// 10,000 threads; the waiters beyond it wait the inotify way.
const MaxWaiters = 64

// resend is how often a waiter that must stop is signalled again: a
// signal that arrives just before the thread enters the lock call
// interrupts nothing, and the next one will.
const resend = time.Millisecond

// ErrUnavailable means that Wait cannot block in the kernel here: Enable
// was not called or failed, or MaxWaiters threads already wait.
var ErrUnavailable = errors.New("kernel waits unavailable")

var (
	enabled atomic.Bool
	slots   = make(chan struct{}, MaxWaiters)
	// handler is the runtime's handler for Signal, as Enable found it.
	handler uintptr
	// actionMu serializes reading and rewriting Signal's action.
	actionMu sync.Mutex
)

// sigaction is the kernel's struct sigaction, which has this layout on
// every 64-bit Linux architecture Go supports with a restorer (amd64,
// arm64, riscv64, ...): it is only read and written back, never built.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	sigDFL    = 0
	sigIGN    = 1
	saRestart = 0x10000000 // SA_RESTART, the same on every Linux architecture Go supports
)

var enableOnce = sync.OnceValue(enable)

// Enable makes Signal interrupt lock calls, for the life of the process.
// Only a process that owns its signals should call it: a plugin does, a
// library in its user's program does not (cli/signals.go has lockmgr's
// whole signal model). It fails, and Wait stays
// unavailable, if the runtime is not handling Signal (os/signal ignored
// or reset it).
func Enable() error { return enableOnce() }

func enable() error {
	actionMu.Lock()
	defer actionMu.Unlock()
	var act sigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(Signal), 0,
		uintptr(unsafe.Pointer(&act)), 8, 0, 0); e != 0 {
		return e
	}
	if act.handler == sigDFL || act.handler == sigIGN {
		return errors.New("kernelwait: the Go runtime does not handle signal 40")
	}
	handler = act.handler
	if err := clearRestart(&act); err != nil {
		return err
	}
	enabled.Store(true)
	return nil
}

func clearRestart(act *sigaction) error {
	if act.flags&saRestart == 0 {
		return nil
	}
	act.flags &^= saRestart
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(Signal),
		uintptr(unsafe.Pointer(act)), 0, 8, 0, 0); e != 0 {
		return e
	}
	return nil
}

// interrupts reports whether Signal, delivered now, would interrupt a lock
// call: the runtime's handler, as Enable found it, is still the one
// installed. Code of the plugin's own may have used os/signal since: an
// ignored Signal interrupts nothing, and the runtime reinstalls its
// handler with SA_RESTART, which is cleared again here.
func interrupts() bool {
	actionMu.Lock()
	defer actionMu.Unlock()
	var act sigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(Signal), 0,
		uintptr(unsafe.Pointer(&act)), 8, 0, 0); e != 0 {
		return false
	}
	return act.handler == handler && clearRestart(&act) == nil
}

// sigevent is the kernel's struct sigevent, 64 bytes on every 64-bit
// Linux architecture, in its SIGEV_THREAD_ID form.
type sigevent struct {
	value  uintptr
	signo  int32
	notify int32
	tid    int32
	_      [44]byte
}

const sigevThreadID = 4 // SIGEV_THREAD_ID

// timer is a POSIX timer that sends Signal to one thread.
type timer int32

// newTimer makes a disarmed timer aimed at thread tid. It fails (EAGAIN)
// where the signal cannot be allocated, RLIMIT_SIGPENDING reached.
func newTimer(tid int) (timer, error) {
	ev := sigevent{signo: int32(Signal), notify: sigevThreadID, tid: int32(tid)}
	var id int32
	if _, _, e := unix.Syscall(unix.SYS_TIMER_CREATE, uintptr(unix.CLOCK_MONOTONIC),
		uintptr(unsafe.Pointer(&ev)), uintptr(unsafe.Pointer(&id))); e != 0 {
		return 0, e
	}
	return timer(id), nil
}

// fire makes t send its signal now, and again every resend: one that
// arrives just before the thread enters the lock call interrupts nothing,
// and the next one will. While one is pending, another is not queued
// (the kernel counts an overrun), so nothing piles up.
func (t timer) fire() {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(1), Interval: unix.NsecToTimespec(int64(resend))}
	unix.Syscall6(unix.SYS_TIMER_SETTIME, uintptr(t), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
}

func (t timer) delete() {
	unix.Syscall(unix.SYS_TIMER_DELETE, uintptr(t), 0, 0)
}

// Wait runs lock, a blocking lock call, until it returns something other
// than EINTR or ctx ends; once ctx ends it interrupts the call. It
// returns lock's result, which is nil when the lock was granted even if
// ctx ended meanwhile (the caller must then give it back), or EINTR when
// ctx ended first. It returns ErrUnavailable, having called nothing, when
// the kernel wait is unavailable.
func Wait(ctx context.Context, lock func() error) error {
	if !enabled.Load() {
		return ErrUnavailable
	}
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	default:
		return ErrUnavailable
	}
	// The signal is aimed at this thread, so the call must stay on it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The runtime keeps the signal mask the process inherited for every
	// signal it does not need, Signal among them: a caller that started
	// lockmgr with it blocked would leave the lock call uninterruptible.
	// Unblock it on this thread while it waits.
	var only, old unix.Sigset_t
	only.Val[(Signal-1)/64] = 1 << ((Signal - 1) % 64)
	if err := unix.PthreadSigmask(unix.SIG_UNBLOCK, &only, &old); err != nil {
		return ErrUnavailable
	}
	if old.Val[(Signal-1)/64]&only.Val[(Signal-1)/64] != 0 {
		defer unix.PthreadSigmask(unix.SIG_BLOCK, &only, nil)
	}
	if !interrupts() {
		return ErrUnavailable
	}
	// The interrupt must be sure to arrive before the thread may block.
	t, err := newTimer(unix.Gettid())
	if err != nil {
		return ErrUnavailable
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		t.fire()
	})
	for {
		err = lock()
		if err != unix.EINTR || ctx.Err() != nil {
			break
		}
	}
	if !stop() {
		// The timer was set going: delete it only once that is done (its
		// id may be reused at once), then make one system call, on whose
		// return the kernel delivers any signal still pending here, before
		// the thread serves other goroutines.
		<-fired
		t.delete()
		_ = unix.Getpid()
	} else {
		t.delete()
	}
	return err
}
