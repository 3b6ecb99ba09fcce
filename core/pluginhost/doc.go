// Package pluginhost owns lockmgr's backend plugin processes whole: it
// finds a plugin binary on the search path and verifies it (discover.go),
// connects to the user's shared plugin for it, starting that if none runs
// (shared.go), or starts a private one with its lifeline, private socket
// directory and environment (process.go) through go-plugin (private.go),
// and stops it (host.go): one private process per backend per Host,
// shared by every lock of that backend, started on first use and stopped
// when the last user is done. A build with the lockmgr_sharedonly tag
// leaves private.go out, and with it go-plugin and gRPC, whose package
// initialisers the lockmgr command would otherwise run at every start;
// it hands a private start to the program's fallback
// (private_sharedonly.go, SetPrivateFallback). Nothing
// else in lockmgr starts, signals or waits for a plugin process; what the
// plugin side shares with the host (the handshake, the environment the
// host sets, the host-death signal) is core/pluginrpc's.
//
// Two rules shape it. A plugin must die with its host, which go-plugin
// does not ensure: each plugin gets a lifeline, a socket pair that is
// also the session every lock travels on (core/lockpb), and exits when
// the host's end is closed and no keeper holds a lock, with Pdeathsig as
// a backstop for a host that hands no lock on. And stopping must not make
// the host wait: a plugin is stopped by closing its session and its
// connection, never by waiting for it to exit (DoneAndWait aside, for a
// plugin that holds a copy of its caller's file).
package pluginhost
