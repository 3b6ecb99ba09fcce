// Package pluginrpc is the boundary between lockmgr and its backend
// plugins that both sides share: the handshake's constants and the
// environment a host sets for its plugin (handshake.go), the session
// that carries every lock (core/lockpb) and its two ends, Client on the
// host's side and the session server on the plugin's, and the shared
// plugin's own serving (shared.go).
//
// It links no gRPC and no go-plugin, so that a host that reaches its
// plugins only through sessions (the lockmgr command, whose start-up is
// on the path of every command) runs none of their initialisation.
// go-plugin's half of the boundary, the handshake as go-plugin takes it
// and the gRPC control plane, is core/plugin.
package pluginrpc
