package pluginrpc

import (
	"errors"
	"os"
	"testing"

	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/protobuf/proto"
)

// packetSeeds are well-formed and nearly well-formed packets of both
// directions, for the fuzzers to start from.
func packetSeeds(f *testing.F) {
	for _, m := range []proto.Message{
		&lockpb.SessionResponse{Call: 7, Result: &lockpb.SessionResponse_Acquired{Acquired: &lockpb.AcquireResponse{Handle: 8}}},
		&lockpb.SessionResponse{Call: 7, Result: &lockpb.SessionResponse_Acquired{Acquired: &lockpb.AcquireResponse{Handle: 8, HandedOver: true}}},
		&lockpb.SessionResponse{Call: 7, Result: &lockpb.SessionResponse_Failure{Failure: &lockpb.Failure{Sentinel: "busy"}}},
		&lockpb.SessionResponse{Call: 7, Result: &lockpb.SessionResponse_Released{Released: &lockpb.ReleaseResponse{}}},
		&lockpb.SessionResponse{Result: &lockpb.SessionResponse_Lost{Lost: &lockpb.LostEvent{Handle: 9}}},
		&lockpb.SessionResponse{Call: 7, Result: &lockpb.SessionResponse_CopyClosed{CopyClosed: &lockpb.CopyClosed{}}},
		&lockpb.SessionRequest{Call: 7, Op: &lockpb.SessionRequest_Acquire{Acquire: &lockpb.AcquireRequest{Path: "/x", Handle: 8}}},
		&lockpb.SessionRequest{Call: 7, Op: &lockpb.SessionRequest_Acquire{Acquire: &lockpb.AcquireRequest{Path: "/x", Handle: 8, Keeper: true}}},
		&lockpb.SessionRequest{Call: 7, Op: &lockpb.SessionRequest_Release{Release: &lockpb.ReleaseRequest{Handle: 8}}},
		&lockpb.SessionRequest{Call: 7, Op: &lockpb.SessionRequest_Cancel{Cancel: &lockpb.CancelRequest{}}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		for files := range byte(3) {
			f.Add(files, b)
		}
	}
	f.Add(byte(0), []byte{0xff, 0xff, 0xff})
}

// pipes returns n descriptors to send with a packet, and closes them as
// the test ends (a second close of one the code under test closed is
// harmless).
func pipes(t *testing.T, n byte) []*os.File {
	var files []*os.File
	for range n % 3 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		files = append(files, r)
		t.Cleanup(func() { r.Close() })
	}
	return files
}

// FuzzHostDispatch feeds the host's session arbitrary packets, with zero
// to two descriptors, while it waits for the answer to an acquire (call 7,
// handle 8) and keeps one granted lock (handle 9). Whatever comes, it
// must not panic, and it must accept a packet only if the protocol allows
// it there: any other is a protocol error, which ends the session.
func FuzzHostDispatch(f *testing.F) {
	packetSeeds(f)
	f.Fuzz(func(t *testing.T, nfiles byte, data []byte) {
		c := NewSessionClient()
		pc := &pendingCall{acquire: true, handle: 8, answer: make(chan reply, 1), ready: make(chan struct{})}
		c.calls[7] = pc
		c.kept[9] = make(chan struct{})
		files := pipes(t, nfiles)
		err := c.dispatch(received{data: data, files: files})
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("dispatch: %v, not a protocol error", err)
			}
			return
		}
		resp := &lockpb.SessionResponse{}
		if proto.Unmarshal(data, resp) != nil {
			t.Fatal("accepted a packet that does not decode")
		}
		switch {
		case resp.GetLost() != nil:
			if resp.GetCall() != 0 || resp.GetLost().GetHandle() != 9 || len(files) > 0 {
				t.Fatalf("accepted a loss notice the protocol forbids: %v with %d descriptors", resp, len(files))
			}
		case resp.GetCall() == 7:
			a := resp.GetAcquired()
			switch {
			case resp.GetReleased() != nil:
				t.Fatalf("accepted a release answer to an acquire: %v", resp)
			case a != nil && a.GetHandle() != 8:
				t.Fatalf("accepted a grant of another handle: %v", resp)
			case a != nil && a.GetHandedOver() != (len(files) == 1):
				t.Fatalf("accepted a grant (handed over %v) with %d descriptors", a.GetHandedOver(), len(files))
			case a == nil && len(files) > 0:
				t.Fatalf("accepted a descriptor with %v", resp)
			}
			switch {
			case resp.GetCopyClosed() != nil:
				t.Fatalf("accepted a copy_closed with no handed-over grant waiting: %v", resp)
			case a != nil && a.GetHandedOver():
				// Delivered at once, its call kept open for copy_closed.
				got := <-pc.answer
				if got.file == nil || got.sole == nil || pc.sole == nil || c.calls[7] != pc {
					t.Fatal("a handed-over grant was not delivered with its call kept open for copy_closed")
				}
			default:
				if got := <-pc.answer; got.resp == nil {
					t.Fatal("an accepted answer did not reach its call")
				}
			}
		default:
			t.Fatalf("accepted %v, which answers no call", resp)
		}
	})
}

// FuzzPluginDispatch feeds a plugin's session arbitrary packets, with
// zero to two descriptors. Whatever comes, it must not panic, and it must
// accept only a request the protocol allows: an acquire with exactly the
// descriptors it announces, a release, cancel or control request (describe,
// inspect, stat) with none, and a call id.
func FuzzPluginDispatch(f *testing.F) {
	packetSeeds(f)
	f.Fuzz(func(t *testing.T, nfiles byte, data []byte) {
		pluginEnd, hostEnd := sessionPair(t)
		defer hostEnd.Close()
		conn, err := newPacketConn(pluginEnd)
		if err != nil {
			t.Fatal(err)
		}
		ss := newSession(newScripted(nil), conn, nil)
		defer ss.end()
		files := pipes(t, nfiles)
		err = ss.dispatch(received{data: data, files: files})
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("dispatch: %v, not a protocol error", err)
			}
			return
		}
		req := &lockpb.SessionRequest{}
		if proto.Unmarshal(data, req) != nil {
			t.Fatal("accepted a packet that does not decode")
		}
		if req.GetCall() == 0 {
			t.Fatalf("accepted a request without a call id: %v", req)
		}
		want := 0
		switch {
		case req.GetAcquire() != nil:
			if req.GetAcquire().GetKeeper() {
				want = 1
			}
		case req.GetRelease() != nil, req.GetCancel() != nil,
			req.GetDescribe() != nil, req.GetInspect() != nil, req.GetStat() != nil:
		default:
			t.Fatalf("accepted a request of no known kind: %v", req)
		}
		if len(files) != want {
			t.Fatalf("accepted %v with %d descriptors, want %d", req, len(files), want)
		}
	})
}
