// Command lockmgr-backend-posix is lockmgr's POSIX record lock (fcntl
// F_SETLK) backend plugin. lockmgr starts it; it is not meant to be run by
// hand.
package main

import "github.com/lockmgr/lockmgr/core/plugin"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	plugin.Serve(newBackend())
}
