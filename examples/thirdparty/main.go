// Command lockmgr-backend-example is a third-party lockmgr backend in
// miniature, the one docs/thirdparty.rst walks through. Copy this
// directory to start a backend of your own.
//
//	go build -o /usr/local/lib/lockmgr/lockmgr-backend-example .
//	lockmgr run -b example /tmp/x.lock -- true
//
// A backend's main is a call to plugin.Serve; the backend itself is a
// plain Go type (backend.go) that the tests can also use in-process.
package main

import "github.com/lockmgr/lockmgr/core/plugin"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	plugin.Serve(newBackend())
}
