// Command rogue is a buggy third-party lockmgr backend: it speaks the
// session (core/lockpb) itself, on its lifeline, instead of through
// plugin.Serve, and gets it wrong in the way its lock file's name asks
// for. boundary_test builds it to hold the host to fail-stop: a plugin
// that breaks the protocol is killed, every descriptor it sent is closed,
// and every lock it kept is announced lost.
//
// A lock file named "keep" is granted at once and kept here as a POSIX
// lock, so that /proc/locks shows this process holding it. The others are
// answered with a flock-locked copy of the file, sent wrongly:
//
//	too-many      a handed-over grant with two descriptors
//	none          a handed-over grant with none
//	undue         a grant it keeps, with a descriptor
//	after-cancel  waits (saying so into the file, a FIFO) for the cancel,
//	              answers it, then sends the grant anyway
package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hashicorp/go-plugin"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
	lockplugin "github.com/lockmgr/lockmgr/core/plugin"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

type control struct{}

func (control) Describe(context.Context) (backend.Info, error) {
	return backend.Info{Name: "rogue", Capabilities: backend.Capabilities{Owner: backend.OwnerProcess}}, nil
}
func (control) Acquire(context.Context, backend.Request) (backend.Held, error) {
	return backend.Held{}, backend.ErrUnsupported
}
func (control) Release(context.Context, backend.HandleID) error { return backend.ErrUnsupported }
func (control) Inspect(_ context.Context, p string) (backend.Status, error) {
	return backend.Status{Path: p}, nil
}

var session int

func send(m *lockpb.SessionResponse, fds ...int) {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_ = unix.Sendmsg(session, b, oob, nil, 0)
}

// flocked opens path and locks it with flock(2), for a descriptor to send.
func flocked(path string) int {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		panic(err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		panic(err)
	}
	return fd
}

func granted(call, handle uint64, handedOver bool) *lockpb.SessionResponse {
	return &lockpb.SessionResponse{Call: call, Result: &lockpb.SessionResponse_Acquired{Acquired: &lockpb.AcquireResponse{Handle: handle, HandedOver: handedOver}}}
}

// serveSession answers the host's requests, wrongly where asked to.
func serveSession() {
	buf := make([]byte, pluginrpc.MaxMessage)
	waiting := map[uint64]*lockpb.AcquireRequest{} // after-cancel calls
	var kept []int
	for {
		n, _, _, _, err := unix.Recvmsg(session, buf, nil, 0)
		if err != nil || n == 0 {
			os.Exit(0)
		}
		req := &lockpb.SessionRequest{}
		if proto.Unmarshal(buf[:n], req) != nil {
			os.Exit(1)
		}
		call := req.GetCall()
		if req.GetCancel() != nil {
			if a := waiting[call]; a != nil {
				send(&lockpb.SessionResponse{Call: call, Result: &lockpb.SessionResponse_Failure{Failure: &lockpb.Failure{Sentinel: "canceled"}}})
				send(granted(call, a.GetHandle(), true), flocked(a.GetPath()+".locked"))
			}
			continue
		}
		a := req.GetAcquire()
		if a == nil {
			send(&lockpb.SessionResponse{Call: call, Result: &lockpb.SessionResponse_Released{Released: &lockpb.ReleaseResponse{}}})
			continue
		}
		path, handle := a.GetPath(), a.GetHandle()
		switch filepath.Base(path) {
		case "keep":
			fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
			if err != nil {
				panic(err)
			}
			lk := unix.Flock_t{Type: unix.F_WRLCK}
			if err := unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk); err != nil {
				panic(err)
			}
			kept = append(kept, fd)
			send(granted(call, handle, false))
		case "too-many":
			send(granted(call, handle, true), flocked(path), flocked(path+".second"))
		case "none":
			send(granted(call, handle, true))
		case "undue":
			send(granted(call, handle, false), flocked(path))
		case "after-cancel":
			waiting[call] = a
			if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
				_, _ = f.WriteString("waiting\n")
				f.Close()
			}
		}
	}
}

func main() {
	fd, err := strconv.Atoi(os.Getenv(pluginrpc.LifelineEnv))
	if err != nil {
		os.Exit(2)
	}
	session = fd
	go serveSession()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: lockplugin.Handshake,
		Plugins:         lockplugin.Set(control{}),
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
