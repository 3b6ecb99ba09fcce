// Package pluginrpc is the boundary between lockmgr and its backend
// plugins: the go-plugin handshake, the plugin set, and the gRPC adapters
// that carry backend.LockMgr across a process boundary in both directions.
//
// A backend's main is a call to Serve; a host (core/pluginhost) dispenses a
// *Client, which implements backend.LockMgr too, so code and tests cannot
// tell an in-process backend from a plugin.
package pluginrpc

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/grpc"
)

// Handshake is shared by lockmgr and every backend plugin. The cookie
// keeps a person who runs a plugin binary by hand from waiting on a
// silent process, and the protocol version must change whenever
// lockpb's service changes incompatibly, so that a mismatched pair fails
// at start with a clear error instead of mid-lock.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "LOCKMGR_PLUGIN",
	MagicCookieValue: "8f7d1c2e-lockmgr-backend",
}

// PluginName is the single plugin every backend binary serves.
const PluginName = "backend"

// LifelineEnv names the environment variable that tells a plugin which
// descriptor is its lifeline: the read end of a pipe whose write ends
// the host (and whatever the host hands them to) keep open. The plugin
// exits as soon as every write end is closed, which is how a plugin
// dies with its host even when the host is killed with SIGKILL.
const LifelineEnv = "LOCKMGR_LIFELINE_FD"

// LogEnv names the environment variable that sets the log level of
// lockmgr and its plugins ("debug", "trace", ...); unset means silent.
const LogEnv = "LOCKMGR_LOG"

// GRPCPlugin is the go-plugin Plugin for a backend: Impl is set on the
// plugin side and nil on the host side.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl backend.LockMgr
}

// GRPCServer registers the backend's gRPC service on the plugin side.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	lockpb.RegisterBackendServer(s, newServer(p.Impl))
	return nil
}

// GRPCClient returns the host side's *Client for the plugin's connection.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// PluginSet returns the plugin map for go-plugin's ClientConfig and
// ServeConfig; impl is nil on the host side.
func PluginSet(impl backend.LockMgr) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
