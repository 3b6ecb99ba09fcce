package pluginhost

import (
	"errors"
	"sync/atomic"
)

// ErrNoPrivatePlugins is why a host built with the lockmgr_sharedonly tag
// could not start a backend's plugin: the backend needed a private one
// (posix, a handed-over file, sharing turned off or refused), and such a
// build links no go-plugin to start one with.
var ErrNoPrivatePlugins = errors.New("needs a private plugin, which this build of lockmgr cannot start (built with lockmgr_sharedonly)")

var privateFallback atomic.Pointer[func(backend string) error]

// SetPrivateFallback sets what a host built with lockmgr_sharedonly does
// when a backend needs a private plugin: f is called with the backend's
// name, and may replace the process with a build that can start one (the
// lockmgr command execs its full build there); its error, if it returns
// one, is the start's. A host built without the tag starts private
// plugins itself and never calls f.
func SetPrivateFallback(f func(backend string) error) {
	privateFallback.Store(&f)
}
