// Command otherprotocol is a lockmgr backend built against a protocol
// version lockmgr does not speak: what a plugin left behind by an upgrade
// looks like. host_test builds it to check that the host refuses it with
// one clear line.
package main

import (
	"github.com/hashicorp/go-plugin"
	lockplugin "github.com/lockmgr/lockmgr/core/plugin"
)

func main() {
	handshake := lockplugin.Handshake
	handshake.ProtocolVersion++
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         lockplugin.Set(nil),
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
