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
	"github.com/lockmgr/lockmgr/core/pluginproc"
	"google.golang.org/grpc"
)

// Handshake is shared by lockmgr and every backend plugin; its values,
// and why they matter, are in pluginproc.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  pluginproc.ProtocolVersion,
	MagicCookieKey:   pluginproc.MagicCookieKey,
	MagicCookieValue: pluginproc.MagicCookieValue,
}

// PluginName is the single plugin every backend binary serves.
const PluginName = "backend"

// LifelineEnv names the environment variable that tells a plugin which
// descriptor is its lifeline (see pluginproc.LifelineEnv).
const LifelineEnv = pluginproc.LifelineEnv

// LogEnv names the environment variable that sets the log level of
// lockmgr and its plugins ("debug", "trace", ...); unset means silent.
const LogEnv = pluginproc.LogEnv

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
