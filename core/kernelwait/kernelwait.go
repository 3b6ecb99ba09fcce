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
// Without Enable, or past MaxWaiters, Wait reports ErrUnavailable and the
// caller waits its other way (core/lockwait), so a library that locks in
// its user's process never touches that process's signals.
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
// library in its user's program does not. It fails, and Wait stays
// unavailable, if the runtime is not handling Signal (os/signal ignored
// or reset it).
func Enable() error { return enableOnce() }

func enable() error {
	var act sigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(Signal), 0,
		uintptr(unsafe.Pointer(&act)), 8, 0, 0); e != 0 {
		return e
	}
	if act.handler == sigDFL || act.handler == sigIGN {
		return errors.New("kernelwait: the Go runtime does not handle signal 40")
	}
	act.flags &^= saRestart
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(Signal),
		uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
		return e
	}
	enabled.Store(true)
	return nil
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
	pid, tid := unix.Getpid(), unix.Gettid()
	done, stopped := make(chan struct{}), make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stopped)
		t := time.NewTicker(resend)
		defer t.Stop()
		for {
			_ = unix.Tgkill(pid, tid, Signal)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	var err error
	for {
		err = lock()
		if err != unix.EINTR || ctx.Err() != nil {
			break
		}
	}
	close(done)
	if !stop() {
		// The interrupter ran: wait until it sends no more, then make one
		// system call, on whose return the kernel delivers any signal
		// still pending here, before the thread serves other goroutines.
		<-stopped
		_ = unix.Getpid()
	}
	return err
}
