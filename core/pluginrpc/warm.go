package pluginrpc

import (
	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/protobuf/proto"
)

// Warm readies the session's messages for their first use. The protobuf
// runtime builds a message type's encoder and decoder the first time one
// is marshalled; unwarmed, that falls inside the first lock call, on the
// path of every `lockmgr run`. Host and plugin each call it while they
// wait for the other's side of the handshake, where it costs no time.
func Warm() {
	req := &lockpb.SessionRequest{Call: 1, Op: &lockpb.SessionRequest_Acquire{Acquire: &lockpb.AcquireRequest{Path: "/"}}}
	if b, err := proto.Marshal(req); err == nil {
		_ = proto.Unmarshal(b, &lockpb.SessionRequest{})
	}
	resp := &lockpb.SessionResponse{Call: 1, Result: &lockpb.SessionResponse_Acquired{Acquired: &lockpb.AcquireResponse{}}}
	if b, err := proto.Marshal(resp); err == nil {
		_ = proto.Unmarshal(b, &lockpb.SessionResponse{})
	}
}
