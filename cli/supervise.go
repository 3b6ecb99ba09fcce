package main

// Seeing the command out: while it runs under a lock, lockmgr waits for
// it, passes signals on where the command relies on lockmgr, and acts on
// --on-lost if a plugin loses the lock. Every command lockmgr runs goes
// through supervise (runCommand), whichever backend holds its lock;
// --fd's and flock -u's catch no signal, and are only waited for, as
// flock(1) waits for its command.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"golang.org/x/sys/unix"
)

// supervise waits for the command to exit and, if lost fires, acts on
// --on-lost through onLost (which reports whether it is stopping the
// command). It reports whether the command was stopped for a lost lock.
//
// A signal for lockmgr is relayed to the command only where lockmgr
// holds what the command relies on (relay: a plugin's lock, which ends if
// lockmgr does not see the command out). Where the command holds the lock
// itself (flock, ofd), lockmgr does as flock(1) does: it has no handler,
// and the signal ends it, while the command, which got any signal sent to
// the process group from the sender, not a second copy from lockmgr, runs
// on with its lock.
func (o *runOptions) supervise(cmd *exec.Cmd, exited <-chan struct{}, sigs <-chan os.Signal, lost <-chan struct{}, onLost func() bool, relay bool) bool {
	var (
		killAt  <-chan time.Time
		stopped bool
	)
	for {
		select {
		case s := <-sigs:
			if !relay {
				dieBySignal(s.(syscall.Signal))
				continue // a signal whose default does not end a process
			}
			forward(cmd.Process, s.(syscall.Signal))
		case <-lost:
			lost = nil
			stopped = onLost()
			if stopped && o.onLost == onLostTerm {
				killAt = time.After(o.grace)
			}
		case <-killAt:
			killAt = nil
			_ = cmd.Process.Signal(syscall.SIGKILL)
		case <-exited:
			return stopped
		}
	}
}

// lockLost acts on --on-lost, and reports whether the command is being
// stopped.
func (o *runOptions) lockLost(h *lockmgr.Handle, cmd *exec.Cmd, name string) bool {
	what := fmt.Sprintf("lost the lock on %s (%s): %s", h.LockName(context.Background()), h.Backend(), lossCause(h))
	switch o.onLost {
	case onLostIgnore:
		fmt.Fprintf(os.Stderr, "lockmgr: warning: %s; %s (pid %d) runs on without it (--on-lost ignore)\n", what, name, cmd.Process.Pid)
		return false
	case onLostKill:
		fmt.Fprintf(os.Stderr, "lockmgr: %s; killing %s (pid %d)\n", what, name, cmd.Process.Pid)
		_ = cmd.Process.Signal(syscall.SIGKILL)
	default:
		fmt.Fprintf(os.Stderr, "lockmgr: %s; stopping %s (pid %d) with SIGTERM, SIGKILL after %s\n", what, name, cmd.Process.Pid, o.grace)
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	return true
}

// forward passes signal s on to the command, unless the terminal has sent
// it to the command already: ^C and ^\ go to the terminal's whole
// foreground process group, lockmgr and its command alike, and a second
// SIGINT makes many programs (terraform, a shell's trap handler) give up
// their cleanup. Go cannot see who sent a signal, so that case is told by
// lockmgr and its command both being in the terminal's foreground group;
// a `kill -INT` of lockmgr in that state is then not passed on.
func forward(p *os.Process, s syscall.Signal) {
	if (s == syscall.SIGINT || s == syscall.SIGQUIT) && inForeground(p.Pid) {
		return
	}
	_ = p.Signal(s)
}

// inForeground reports whether lockmgr and process pid are both in the
// foreground process group of lockmgr's controlling terminal.
func inForeground(pid int) bool {
	fd, err := unix.Open("/dev/tty", unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return false
	}
	ours := unix.Getpgrp()
	theirs, err := unix.Getpgid(pid)
	return err == nil && fg == ours && theirs == ours
}

// lossCause says why a lock was lost: its plugin died, or the plugin, still
// running, reported the loss (an etcd lease that expired while the lock
// service was out of reach).
func lossCause(h *lockmgr.Handle) string {
	if errors.Is(h.LostCause(), lockmgr.ErrPluginExited) {
		return "its backend plugin exited"
	}
	return "the backend lost it (a lease that expired, or a lock service out of reach)"
}
