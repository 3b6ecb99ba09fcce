// Package plugin makes a backend a lockmgr plugin, and is lockmgr's
// side of hashicorp/go-plugin: a backend's main is a call to Serve, and a
// host (core/pluginhost) starts a private plugin through go-plugin with
// the Handshake and PluginSet here, and reaches its control plane
// (Describe, Inspect, Configure) over gRPC.
//
// Everything that carries a lock is core/pluginrpc's session, which
// links neither go-plugin nor gRPC: a host that only connects to shared
// plugins (the lockmgr command) does not link this package, and so runs
// none of their initialisation as it starts.
package plugin

import (
	"context"
	"os"

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockpb/controlpb"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"google.golang.org/grpc"
)

// Name is the single plugin every backend binary serves.
const Name = "backend"

// Handshake is go-plugin's form of pluginrpc's handshake constants, which
// host and plugin both hand to go-plugin.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  pluginrpc.ProtocolVersion,
	MagicCookieKey:   pluginrpc.MagicCookieKey,
	MagicCookieValue: pluginrpc.MagicCookieValue,
}

// Serve runs impl as a backend plugin: the whole of a backend's main. It
// serves its hosts' sessions (pluginrpc.StartSessions) and, in a plugin
// that go-plugin started, the handshake and the control plane; the
// process exits once its host is gone and no lock it granted is kept by
// a keeper.
func Serve(impl backend.LockMgr) {
	pluginrpc.StartSessions(impl)
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         Set(impl),
		GRPCServer:      newGRPCServer,
		Logger:          pluginrpc.NewLogger("plugin"),
	})
}

// Shared reports whether this process was started as its user's shared
// plugin for a backend, which serves one host after another for as long
// as it is not idle (pluginrpc.ListenEnv): a backend may keep something
// ready for the next host, such as a connection or a lease.
func Shared() bool { return os.Getenv(pluginrpc.ListenEnv) != "" }

// GRPCPlugin is the go-plugin Plugin for a backend: Impl is set on the
// plugin side and nil on the host side.
type GRPCPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl backend.LockMgr
}

// GRPCServer registers the backend's control plane on the plugin side.
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	controlpb.RegisterBackendServer(s, &controlServer{control: pluginrpc.NewControl(p.Impl)})
	return nil
}

// GRPCClient returns the host side's *pluginrpc.Client, whose control
// plane is the plugin's connection c. Its session starts apart
// (pluginrpc.Client.StartSession).
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginrpc.NewClient(ControlPlane(c)), nil
}

// Set returns the plugin map for go-plugin's ClientConfig and
// ServeConfig; impl is nil on the host side.
func Set(impl backend.LockMgr) goplugin.PluginSet {
	return goplugin.PluginSet{Name: &GRPCPlugin{Impl: impl}}
}
