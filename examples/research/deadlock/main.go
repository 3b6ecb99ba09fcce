// Deadlock shows which kind of lock the kernel checks for deadlocks:
// only POSIX locks, and only when the request waits (F_SETLKW).
//
//	go run ./examples/research/deadlock -kind posix
//
// This process locks file X and another process locks file Y. This
// process then waits for Y, and the other process asks to wait for X,
// which closes the cycle: each waits for the other. For POSIX locks the
// kernel follows the chain of owners and refuses the request that would
// close it with EDEADLK. It cannot do that for flock(2) or OFD locks,
// whose owners are open file descriptions, not processes that could be
// waiting (fs/locks.c: "This deadlock detector can't reasonably detect
// deadlocks with FL_OFDLCK locks"): both processes wait for good, and the
// program ends the deadlock by killing the other process.
//
// lockmgr never blocks in the kernel (it waits with non-blocking attempts),
// so it never sees EDEADLK: give a wait a timeout instead.
package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/lockmgr/lockmgr/core/proclocks"
	"github.com/lockmgr/lockmgr/examples/research/lockkind"
)

func main() {
	e := lockkind.Begin("deadlock", lockkind.POSIX)
	defer e.End()
	k := e.Kind
	x, y := filepath.Join(e.Dir, "X"), filepath.Join(e.Dir, "Y")
	whole := lockkind.Range{}

	fx, err := lockkind.Open(x)
	if err != nil {
		e.Fail(err)
	}
	defer fx.Close()
	if err := k.Lock(int(fx.Fd()), lockkind.Write, whole, false); err != nil {
		e.Fail(err)
	}
	other, err := lockkind.StartOther()
	if err != nil {
		e.Fail(err)
	}
	defer other.Close()
	if got := other.Hold(y, k, lockkind.Write, whole, false); got != "granted" {
		e.Fail(fmt.Errorf("the other process could not lock Y: %s", got))
	}
	fmt.Printf("%s: this process holds X; another process holds Y\n", k)

	fy, err := lockkind.Open(y)
	if err != nil {
		e.Fail(err)
	}
	defer fy.Close()
	ours := make(chan error, 1)
	go func() { ours <- k.Lock(int(fy.Fd()), lockkind.Write, whole, true) }()
	if err := waitForWaiter(y); err != nil {
		e.Fail(err)
	}
	fmt.Printf("%s: this process waits for Y (blocked in the kernel)\n", k)

	// The kernel decides at the request: it refuses a wait that would
	// close a cycle before the request joins the queue, so a request that
	// shows in the lock table as waiting was not found to deadlock.
	theirs := other.HoldAsync(x, k, lockkind.Write, whole)
	queued := make(chan error, 1)
	go func() { queued <- waitForWaiter(x) }()
	select {
	case got := <-theirs:
		fmt.Printf("%s: the other process asks to wait for X, closing the cycle: %s\n", k, got)
		fmt.Printf("%s: the kernel refused the wait that would have deadlocked\n", k)
		other.Release(y)
		fmt.Printf("%s: the other process let go of Y; this process's wait for Y: %s\n", k, lockkind.Result(<-ours))
	case err := <-queued:
		if err != nil {
			e.Fail(err)
		}
		fmt.Printf("%s: the other process asks to wait for X, closing the cycle: it waits, no error\n", k)
		fmt.Printf("%s: deadlock, not detected: both processes would wait for ever\n", k)
		other.Kill()
		fmt.Printf("%s: killed the other process; this process's wait for Y: %s\n", k, lockkind.Result(<-ours))
	}
}

// waitForWaiter returns once the kernel's lock table shows a process
// blocked waiting for a lock on path: this process's own wait for Y, so
// that the order of the two waits is certain, and the other process's
// wait for X, which shows that the kernel let it wait.
func waitForWaiter(path string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := proclocks.ForFile(path)
		if err != nil {
			return err
		}
		if len(st.Waiters) > 0 {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("no waiter for %s appeared in /proc/locks", path)
}
