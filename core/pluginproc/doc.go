// Package pluginproc finds backend plugin binaries and starts their
// processes: the search path and its safety checks, and the exec with its
// lifeline, socket directory and environment. It speaks no RPC and
// imports no gRPC, so that the lockmgr command can start a plugin from a
// package initializer while its own gRPC packages are still initializing
// (Prestart); core/pluginhost then talks to the process through
// go-plugin, which reads the handshake from a *Proc as from any runner.
package pluginproc
