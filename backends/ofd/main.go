// Command lockmgr-backend-ofd is lockmgr's open-file-description lock
// (fcntl F_OFD_SETLK) backend plugin. lockmgr starts it; it is not meant to
// be run by hand.
package main

import "github.com/lockmgr/lockmgr/core/plugin"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	plugin.Serve(newBackend())
}
