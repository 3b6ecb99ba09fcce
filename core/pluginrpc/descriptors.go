package pluginrpc

// The descriptor channel carries a lock that belongs to an open file
// description (flock, OFD) from the plugin that took it to its host, as
// the locked descriptor itself, so that the kernel holds the lock on the
// host's behalf and nothing needs to mirror it: a plugin that dies takes
// nothing with it, and a host that dies releases everything at once.
// gRPC cannot carry a descriptor, so it travels on the plugin's lifeline,
// a SOCK_SEQPACKET socket pair (core/pluginhost), as SCM_RIGHTS. The
// protocol is written down in core/lockpb/lockmgr.proto.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/lockmgr/lockmgr/core/backend"
	"golang.org/x/sys/unix"
)

// tagSize is the size of a descriptor message's body: the handle id.
const tagSize = 8

// descriptorSender is the plugin's end of the descriptor channel.
type descriptorSender struct {
	fd int
	mu sync.Mutex // one message at a time
}

// send hands f, tagged with the host's handle id, to the host. The
// caller still owns its own f and must close it.
func (s *descriptorSender) send(tag uint64, f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	msg := binary.LittleEndian.AppendUint64(nil, tag)
	s.mu.Lock()
	defer s.mu.Unlock()
	var serr error
	err = raw.Control(func(fd uintptr) {
		for {
			serr = unix.Sendmsg(s.fd, msg, unix.UnixRights(int(fd)), nil, 0)
			if serr != unix.EINTR {
				return
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("handing the locked descriptor to the host: %w", err)
	}
	return nil
}

// descriptorInbox is the host's end of the descriptor channel: it reads
// every descriptor the plugin sends and keeps it until the request it
// answers takes it, or closes it if that request was given up.
type descriptorInbox struct {
	mu        sync.Mutex
	arrived   map[uint64]arrival
	abandoned map[uint64]bool
	changed   chan struct{} // closed and replaced whenever arrived or ended changes
	ended     error         // why no more descriptors will come
}

// arrival is one message: a descriptor, or why it did not survive the trip.
type arrival struct {
	file *os.File
	err  error
}

// errChannelClosed ends a wait for a descriptor that can no longer come.
var errChannelClosed = errors.New("the plugin's descriptor channel is closed")

// newDescriptorInbox starts reading lifeline, the host's end of the
// plugin's lifeline, which must be non-blocking (core/pluginhost makes it
// so). It reads until the plugin closes its end or lifeline is closed.
func newDescriptorInbox(lifeline *os.File) *descriptorInbox {
	in := &descriptorInbox{
		arrived:   make(map[uint64]arrival),
		abandoned: make(map[uint64]bool),
		changed:   make(chan struct{}),
	}
	raw, err := lifeline.SyscallConn()
	if err != nil {
		in.end(err)
		return in
	}
	go in.read(raw)
	return in
}

func (in *descriptorInbox) read(raw syscall.RawConn) {
	buf := make([]byte, tagSize)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		var n, oobn, flags int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		})
		if err == nil {
			err = rerr
		}
		switch {
		case err != nil:
			in.end(err)
			return
		case n == 0 && oobn == 0:
			in.end(errChannelClosed)
			return
		case n != tagSize:
			continue // not ours to read: nothing the protocol sends
		}
		tag := binary.LittleEndian.Uint64(buf)
		var got arrival
		if flags&unix.MSG_CTRUNC != 0 {
			// The kernel could not install the descriptor here, which
			// releases the lock it carried.
			got.err = descriptorLimitError()
		} else if f, err := fileFromRights(oob[:oobn]); err != nil {
			got.err = err
		} else {
			got.file = f
		}
		in.deliver(tag, got)
	}
}

func fileFromRights(oob []byte) (*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if got, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("the plugin sent %d descriptors for one lock", len(fds))
	}
	return os.NewFile(uintptr(fds[0]), "lock"), nil
}

// descriptorLimitError says that this process has as many descriptors
// open as its limit allows, naming the limit, since every lock of a
// descriptor-holding backend is one descriptor.
func descriptorLimitError() error {
	var lim unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	return fmt.Errorf("%w: this process has reached its limit of %d open descriptors (RLIMIT_NOFILE; each lock held is one): raise it with ulimit -n or LimitNOFILE=", unix.EMFILE, lim.Cur)
}

func (in *descriptorInbox) deliver(tag uint64, got arrival) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.abandoned[tag] {
		delete(in.abandoned, tag)
		if got.file != nil {
			got.file.Close()
		}
		return
	}
	in.arrived[tag] = got
	in.signal()
}

func (in *descriptorInbox) signal() {
	close(in.changed)
	in.changed = make(chan struct{})
}

func (in *descriptorInbox) end(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ended == nil {
		in.ended = err
		clear(in.abandoned) // nothing more will come to close
		in.signal()
	}
}

// take returns the descriptor sent for tag. The plugin sends it before
// it answers the request, so a host that has the answer finds it here or
// on its way; it waits no longer than the channel lives.
func (in *descriptorInbox) take(tag uint64) (*os.File, error) {
	for {
		in.mu.Lock()
		got, ok := in.arrived[tag]
		ended, changed := in.ended, in.changed
		if ok {
			delete(in.arrived, tag)
		}
		in.mu.Unlock()
		switch {
		case ok:
			return got.file, got.err
		case ended != nil:
			return nil, backend.ErrLost
		}
		<-changed
	}
}

// abandon gives up the descriptor for tag, which a request that failed
// (a plugin that died before it answered, say) may or may not have been
// sent: if it came, or comes later, it is closed, releasing its lock.
func (in *descriptorInbox) abandon(tag uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if got, ok := in.arrived[tag]; ok {
		delete(in.arrived, tag)
		if got.file != nil {
			got.file.Close()
		}
		return
	}
	if in.ended == nil {
		in.abandoned[tag] = true
	}
}
