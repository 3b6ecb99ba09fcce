// Package pluginproc finds backend plugin binaries and starts their
// processes: the search path and its safety checks, and the exec with its
// lifeline, socket directory and environment. core/pluginhost talks to
// the process through go-plugin, which reads the handshake from a *Proc
// as from any runner.
package pluginproc
