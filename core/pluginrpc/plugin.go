// Package pluginrpc is the boundary between lockmgr and its backend
// plugins, shared by both sides as go-plugin's examples share theirs: the
// handshake and the environment a host sets for its plugin (handshake.go),
// the plugin set, and the adapters that carry backend.LockMgr across the
// process boundary in both directions.
//
// A backend's main is a call to Serve, which needs nothing of the host's
// side; a host (core/pluginhost, which owns the plugin process) dispenses
// a *Client, which implements backend.LockMgr too, so code and tests
// cannot tell an in-process backend from a plugin.
package pluginrpc

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb"
	"google.golang.org/grpc"
)

// PluginName is the single plugin every backend binary serves.
const PluginName = "backend"

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
