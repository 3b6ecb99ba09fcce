package pluginrpc

// The session's packets: one protobuf message each, with the descriptors
// that concern it, on a SOCK_SEQPACKET socket (core/lockpb says who sends
// what). Both sides read and write them here, so that the limits are
// written once and checked the same way on each side.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// MaxMessage bounds one session packet, in bytes. A path is at most
// PATH_MAX (4096) bytes and a lock's name is a path or a key of the same
// order, so no honest message comes near it; a larger one is refused by
// its sender, and ends the session if it is received.
const MaxMessage = 64 << 10

// maxRights is the most descriptors a packet carries. The receive buffer
// has room for more, so that a packet with too many is seen as such and
// every descriptor in it closed, rather than cut to size by the kernel.
const (
	maxRights  = 1
	roomRights = 4
)

// ErrProtocol is the cause of a session ended because the other side
// broke the protocol: a packet too large or cut short, garbage, an answer
// that fits no call, a descriptor where none is due or none where one is.
var ErrProtocol = errors.New("protocol error")

// protocolErrorf returns an error wrapping ErrProtocol.
func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// errTooLarge is a message this side refuses to send.
var errTooLarge = fmt.Errorf("message larger than the session's limit of %d bytes", MaxMessage)

// packetConn is one end of a session. Sends may come from any goroutine;
// receives from one only.
//
// How a goroutine waits for a packet differs by side, each measured the
// faster for it (docs/performance.rst). A plugin runs on one P
// (core/plugin.Serve): its reader parks in the runtime's poller, and the
// thread the packet wakes goes on to run the call it starts. A host runs
// on every P: through the poller, a packet would wake the poller's
// thread, which readies the goroutine waiting for it, and the runtime
// wakes a third thread to run that; on a machine whose idle processors
// are slow to wake (a virtual machine's) those hand-offs cost more than
// the round trip itself. So the host's end is unpolled: kept out of the
// poller, it is read by the goroutine that wants the answer, waiting in
// ppoll(2) on its own thread as a C program would (reader.go).
type packetConn struct {
	file *os.File
	raw  syscall.RawConn
	// unpolled says the socket is not in the poller (newUnpolledConn).
	unpolled bool

	sendMu sync.Mutex
	closed atomic.Bool

	oob []byte // the receiver's
}

// recvBufs are the buffers a packet of up to MaxMessage bytes is
// received into, each held only for the recvmsg call, its bytes then
// copied out. A buffer of every connection's own would be MaxMessage
// bytes, written through (zeroed) as the heap hands it out, for each of
// a shared plugin's hosts: 12.5 MiB for 200 hosts waiting, for packets
// of a few dozen bytes. Not a sync.Pool, which the garbage collector
// empties: a plugin that collects often would then zero a fresh 64 KiB
// for many of its packets, a few microseconds each.
var recvBufs = make(chan *[]byte, 4)

func getRecvBuf() *[]byte {
	select {
	case b := <-recvBufs:
		return b
	default:
		b := make([]byte, MaxMessage)
		return &b
	}
}

func putRecvBuf(b *[]byte) {
	select {
	case recvBufs <- b:
	default: // as many are kept as receive at once, at most four
	}
}

// newPacketConn wraps f, a non-blocking SOCK_SEQPACKET socket (os.NewFile
// of a descriptor already made non-blocking), so that waiting for a packet
// parks a goroutine in the runtime's poller rather than a thread, and
// closing f wakes it. The packetConn owns f.
func newPacketConn(f *os.File) (*packetConn, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &packetConn{
		file: f,
		raw:  raw,
		oob:  make([]byte, unix.CmsgSpace(roomRights*4)),
	}, nil
}

// newUnpolledConn wraps f, a SOCK_SEQPACKET socket, kept out of the
// poller: the packetConn owns a non-blocking duplicate that os.NewFile
// never registered, and closes f. Only reader.go receives on it.
func newUnpolledConn(f *os.File) (*packetConn, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	dup := -1
	var derr error
	if err := raw.Control(func(fd uintptr) {
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3)
		if derr == nil {
			// os.NewFile puts a non-blocking descriptor in the
			// poller, a blocking one not.
			derr = unix.SetNonblock(dup, false)
		}
	}); err != nil {
		derr = err
	}
	f.Close()
	if derr != nil {
		if dup >= 0 {
			unix.Close(dup)
		}
		return nil, os.NewSyscallError("fcntl", derr)
	}
	own := os.NewFile(uintptr(dup), f.Name())
	if err := unix.SetNonblock(dup, true); err != nil {
		own.Close()
		return nil, os.NewSyscallError("fcntl", err)
	}
	c, err := newPacketConn(own)
	if err != nil {
		return nil, err
	}
	c.unpolled = true
	return c, nil
}

// close ends the session from this side: the other side reads end of
// file, and a wait in progress here returns. On an unpolled connection a
// wait in ppoll holds the descriptor open past Close, and would sleep on:
// shutting the socket down wakes it.
func (c *packetConn) close() error {
	if c.closed.Swap(true) {
		return os.ErrClosed
	}
	if c.unpolled {
		_ = c.raw.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	}
	return c.file.Close()
}

// roomWait bounds each wait of an unpolled send for room, so that it
// notices the connection's close.
const roomWait = 50 * time.Millisecond

// sendUnpolled sends one packet on an unpolled connection, waiting for
// room as long as the other side does not read and the connection is
// open. c.sendMu is held.
func (c *packetConn) sendUnpolled(b, oob []byte) error {
	var serr error
	err := c.raw.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		timeout := unix.NsecToTimespec(roomWait.Nanoseconds())
		for {
			serr = unix.Sendmsg(int(fd), b, oob, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
			if serr != unix.EAGAIN && serr != unix.EINTR {
				return
			}
			if c.closed.Load() {
				serr = os.ErrClosed
				return
			}
			if _, err := unix.Ppoll(pfd, &timeout, nil); err != nil && err != unix.EINTR {
				serr = err
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// send sends m, with files as SCM_RIGHTS, in one packet. The caller keeps
// its own copies of files.
func (c *packetConn) send(m proto.Message, files ...*os.File) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > MaxMessage {
		return errTooLarge
	}
	if len(files) > maxRights {
		return fmt.Errorf("%d descriptors in one packet, at most %d", len(files), maxRights)
	}
	return withDescriptors(files, func(fds []int) error {
		var oob []byte
		if len(fds) > 0 {
			oob = unix.UnixRights(fds...)
		}
		c.sendMu.Lock()
		defer c.sendMu.Unlock()
		if c.unpolled {
			return c.sendUnpolled(b, oob)
		}
		var serr error
		err := c.raw.Write(func(fd uintptr) bool {
			serr = unix.Sendmsg(int(fd), b, oob, nil, unix.MSG_NOSIGNAL)
			return serr != unix.EAGAIN && serr != unix.EINTR
		})
		if err == nil {
			err = serr
		}
		return err
	})
}

// withDescriptors calls f with the descriptors of files, each kept valid
// (and its blocking mode untouched, unlike File.Fd) until f returns.
func withDescriptors(files []*os.File, f func([]int) error) error {
	if len(files) == 0 {
		return f(nil)
	}
	raw, err := files[0].SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	cerr := raw.Control(func(fd uintptr) {
		ferr = withDescriptors(files[1:], func(rest []int) error {
			return f(append([]int{int(fd)}, rest...))
		})
	})
	if cerr != nil {
		return cerr
	}
	return ferr
}

// received is one packet as it came: its message's bytes (valid until the
// next receive) and its descriptors, which the receiver now owns.
type received struct {
	data  []byte
	files []*os.File
	// rightsCut says the kernel could not install every descriptor the
	// packet carried (this process is at its descriptor limit): those it
	// could not are closed, releasing whatever lock they held.
	rightsCut bool
}

// closeFiles closes every descriptor of r.
func (r received) closeFiles() {
	for _, f := range r.files {
		f.Close()
	}
}

// errAgain is recvNow's answer when no packet is waiting.
var errAgain = errors.New("no packet waiting")

// recv waits in the poller for the next packet (a polled connection's
// receiver; reader.go reads an unpolled one). It returns io.EOF once the other side
// has closed its end, and an error wrapping ErrProtocol for a packet
// larger than MaxMessage or with more descriptors than any packet
// carries; either way nothing it received stays open.
func (c *packetConn) recv() (received, error) {
	var r received
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		r, rerr = c.recvNow(int(fd))
		return rerr != errAgain
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return received{}, err
	}
	return r, nil
}

// recvNow takes the next packet off fd, the connection's descriptor, if
// one is waiting, and errAgain if none is; otherwise as recv. The caller
// must be the only one receiving: the control buffer is the connection's.
func (c *packetConn) recvNow(fd int) (received, error) {
	var n, oobn, flags int
	var err error
	buf := getRecvBuf()
	for {
		n, oobn, flags, _, err = unix.Recvmsg(fd, *buf, c.oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
		if err != unix.EINTR {
			break
		}
	}
	var data []byte
	if err == nil && n > 0 {
		data = bytes.Clone((*buf)[:n])
	}
	putRecvBuf(buf)
	if err == unix.EAGAIN {
		return received{}, errAgain
	}
	if err != nil {
		return received{}, err
	}
	if n == 0 && oobn == 0 && flags&unix.MSG_TRUNC == 0 {
		return received{}, io.EOF
	}
	r := received{data: data, rightsCut: flags&unix.MSG_CTRUNC != 0}
	if oobn > 0 {
		files, perr := filesFromRights(c.oob[:oobn])
		r.files = files
		if perr != nil {
			r.closeFiles()
			return received{}, protocolErrorf("unreadable descriptors: %v", perr)
		}
	}
	switch {
	case flags&unix.MSG_TRUNC != 0:
		r.closeFiles()
		return received{}, protocolErrorf("a packet larger than %d bytes", MaxMessage)
	case len(r.files) > maxRights:
		r.closeFiles()
		return received{}, protocolErrorf("%d descriptors in one packet, at most %d", len(r.files), maxRights)
	case r.rightsCut && len(r.files) == roomRights:
		// The room was full: more came than any packet may carry.
		r.closeFiles()
		return received{}, protocolErrorf("more than %d descriptors in one packet", roomRights)
	}
	return r, nil
}

// filesFromRights returns the descriptors in oob, a control message
// buffer, each as a file this process owns. On error, those returned
// must still be closed.
func filesFromRights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	var bad error
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			bad = err
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "received"))
		}
	}
	return files, bad
}

// descriptorLimitError says that this process has as many descriptors
// open as its limit allows, naming the limit, since every lock of a
// descriptor-holding backend is one descriptor.
func descriptorLimitError() error {
	var lim unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	return fmt.Errorf("%w: this process has reached its limit of %d open descriptors (RLIMIT_NOFILE; each lock held is one): raise it with ulimit -n or LimitNOFILE=", unix.EMFILE, lim.Cur)
}

// isEOF reports whether err means the other side closed the session.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, os.ErrClosed)
}
