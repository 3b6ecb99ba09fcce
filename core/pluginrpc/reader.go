package pluginrpc

// Who reads the host's end of the session, and how it waits.
//
// A lock's round trip is two wake-ups, one in each process; everything
// else is the Go runtime handing work between threads, and on a machine
// whose idle processors are slow to wake (a virtual machine's) each
// hand-off costs more than the round trip itself. So the goroutine that
// wants an answer reads the session itself, and waits for it in a
// blocking ppoll(2) on its own thread, as a C program would: the packet
// wakes the very thread that wants it, with no poller, no reader
// goroutine and no second thread in between (measured: see
// docs/performance.rst).
//
// One goroutine at a time holds the reader's role. A caller waiting for
// its answer takes it; while none does and the plugin keeps a lock that
// it may announce lost, a background goroutine holds it; while neither,
// no one reads, and the plugin's death is heard by its host reaping it
// (PluginExited). A holder is made to let go by a write to the kick
// eventfd, which its ppoll also waits on: a caller that wants the role,
// the caller's context ending, the session's end.

import (
	"context"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// errKicked ends a holder's wait: someone else wants the role, its
// context ended, or the session is ending.
var errKicked = errors.New("kicked")

// takeRole waits until this goroutine may read the session: for the
// background reader, until no caller wants to and a lock is kept; for a
// caller, until the reader before it lets go (the background reader is
// kicked at once). It gives up, reporting false, when stop or answered is
// closed or the session ends.
func (c *Client) takeRole(stop, answered <-chan struct{}, background bool) bool {
	for {
		c.roleMu.Lock()
		if !c.isDead() && !c.reading && (!background || c.bgTurnLocked()) {
			c.reading, c.bgReading = true, background
			c.roleMu.Unlock()
			return true
		}
		// Each kind of waiter has its own signal, closed only when its
		// turn may have come: a wake-up for nothing readies a goroutine,
		// and the runtime wakes a second thread to run it, on every call.
		wait := c.bgWake
		if !background {
			wait = c.roleFreed
			c.roleWanted++
		}
		kick := !background && c.bgReading
		c.roleMu.Unlock()
		if kick {
			c.kick()
		}
		var ok bool
		select {
		case <-wait:
			ok = true
		case <-stop:
		case <-answered:
		case <-c.dead:
		}
		if !background {
			c.roleMu.Lock()
			c.roleWanted--
			c.roleMu.Unlock()
		}
		if !ok {
			return false
		}
	}
}

// bgTurnLocked reports whether the background reader should hold the
// role: no caller waits for an answer, and the plugin keeps a lock it may
// announce lost. c.roleMu is held.
func (c *Client) bgTurnLocked() bool {
	return c.callersWaiting == 0 && c.keptCount.Load() > 0
}

// releaseRole lets the next reader in.
func (c *Client) releaseRole() {
	c.roleMu.Lock()
	c.reading, c.bgReading = false, false
	c.signalRoleLocked()
	c.roleMu.Unlock()
	c.closeKick()
}

// signalRoleLocked wakes whoever may take the role now: a caller waiting
// for it, or else the background reader if its turn has come. c.roleMu is
// held.
func (c *Client) signalRoleLocked() {
	if c.reading {
		return
	}
	if c.roleWanted > 0 {
		close(c.roleFreed)
		c.roleFreed = make(chan struct{})
		return
	}
	if c.bgTurnLocked() {
		close(c.bgWake)
		c.bgWake = make(chan struct{})
	}
}

// kick makes the role's holder return from its wait.
func (c *Client) kick() {
	c.roleMu.Lock()
	defer c.roleMu.Unlock()
	if c.kickFD >= 0 {
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		_, _ = unix.Write(c.kickFD, one)
	}
}

// waitReadable blocks this goroutine's thread until the session has a
// packet, or a kick comes (errKicked).
func (c *Client) waitReadable() error {
	var werr error
	err := c.conn.raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(c.kickFD), Events: unix.POLLIN}}
		for {
			_, werr = unix.Ppoll(fds, nil, nil)
			if werr != unix.EINTR {
				break
			}
		}
		if werr == nil && fds[1].Revents != 0 {
			var buf [8]byte
			_, _ = unix.Read(c.kickFD, buf[:])
			werr = errKicked
		}
	})
	if err != nil {
		return err
	}
	return werr
}

// readUntil dispatches packets as they come, holding the role, until done
// says so (nil), a kick (errKicked), or the session's end (its error). It
// waits first, since a caller has just sent its request (ppoll returns at
// once if a packet is waiting), and it leaves whatever follows its answer
// to the next reader: each recvmsg that finds nothing is a system call
// on the lock's path.
func (c *Client) readUntil(done func() bool) error {
	for !done() {
		if err := c.waitReadable(); err != nil {
			return err
		}
		var end error
		err := c.conn.raw.Control(func(fd uintptr) {
			c.readMu.Lock()
			end = c.drain(int(fd), done)
			c.readMu.Unlock()
		})
		if err != nil {
			return err
		}
		if end != nil {
			return end
		}
	}
	return nil
}

// receive reads the session while no caller does and the plugin keeps a
// lock it may announce lost, until the session ends.
func (c *Client) receive() {
	for {
		if !c.takeRole(nil, nil, true) {
			c.closeKick()
			return
		}
		// (takeRole returns false only once the session has ended.)
		end := c.readUntil(func() bool { return false })
		c.releaseRole()
		if errors.Is(end, errKicked) {
			continue
		}
		c.ended(end)
	}
}

// await waits until done, reading the session itself, until ctx ends; it
// reports whether done. ready is closed when done may have become true:
// the packet that makes it so may come to another reader.
func (c *Client) await(ctx context.Context, done func() bool, ready <-chan struct{}) bool {
	c.roleMu.Lock()
	c.callersWaiting++
	c.roleMu.Unlock()
	defer func() {
		c.roleMu.Lock()
		c.callersWaiting--
		c.signalRoleLocked() // perhaps the background reader's turn
		c.roleMu.Unlock()
	}()
	for !done() {
		if ctx.Err() != nil || c.isDead() {
			return done()
		}
		if !c.takeRole(ctx.Done(), ready, false) {
			return done()
		}
		// No goroutine watches ctx: one started here would wake another
		// thread on every call.
		unwatch := context.AfterFunc(ctx, c.kick)
		end := c.readUntil(done)
		unwatch()
		c.releaseRole()
		if end != nil && !errors.Is(end, errKicked) {
			c.ended(end)
		}
	}
	return true
}

// closeKick closes the kick eventfd once the session has ended and no
// one holds the role.
func (c *Client) closeKick() {
	c.roleMu.Lock()
	defer c.roleMu.Unlock()
	if c.kickFD >= 0 && !c.reading && c.isDead() {
		unix.Close(c.kickFD)
		c.kickFD = -1
	}
}

// newKick makes the kick eventfd.
func newKick() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, os.NewSyscallError("eventfd", err)
	}
	return fd, nil
}
