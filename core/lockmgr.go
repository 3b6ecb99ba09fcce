// Package lockmgr takes advisory file locks on Linux through a backend
// chosen by configuration: flock(2), POSIX record locks (fcntl F_SETLK),
// or open file description locks (F_OFD_SETLK), each served by a plugin
// process (github.com/hashicorp/go-plugin) that dies with its host.
//
//	h := lockmgr.New("/run/lock/backup.lock")
//	defer h.Close()
//	if err := h.Lock(ctx); err != nil {
//		return err
//	}
//	defer h.Unlock()
//
// The backend is, in order of precedence: WithBackend, $LOCKMGR_BACKEND,
// the user's config file, /etc/lockmgr/config.toml, and flock. See
// github.com/lockmgr/lockmgr/core/config.
//
// Backends implement backend.LockMgr (github.com/lockmgr/lockmgr/core/backend);
// WithLockMgr uses one in-process, without a plugin.
package lockmgr

import (
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
)

// Mode is the kind of lock: Exclusive or Shared.
type Mode = backend.Mode

// The lock modes.
const (
	Exclusive = backend.Exclusive
	Shared    = backend.Shared
)

// The errors lockmgr returns, for errors.Is. They hold across the plugin
// boundary: a busy lock in a plugin is ErrBusy in the host.
var (
	ErrBusy            = backend.ErrBusy
	ErrTimeout         = backend.ErrTimeout
	ErrCanceled        = backend.ErrCanceled
	ErrNotLocked       = backend.ErrNotLocked
	ErrLost            = backend.ErrLost
	ErrUnsupported     = backend.ErrUnsupported
	ErrInvalid         = backend.ErrInvalid
	ErrBackendNotFound = backend.ErrBackendNotFound
	ErrPluginRejected  = backend.ErrPluginRejected
	ErrConfig          = backend.ErrConfig
	ErrUnavailable     = backend.ErrUnavailable
	// ErrPluginExited is why a lock its plugin held was lost when that
	// plugin exited; it is also ErrLost.
	ErrPluginExited = pluginrpc.ErrPluginExited
	// ErrNoPrivatePlugins is why a program built with the
	// lockmgr_sharedonly tag could not lock with a backend that needs a
	// private plugin (SetPrivatePluginFallback).
	ErrNoPrivatePlugins = pluginhost.ErrNoPrivatePlugins
)

// StartsPrivatePlugins says whether this build starts private plugins
// itself. A program built with the lockmgr_sharedonly tag does not: it
// links neither go-plugin nor gRPC, and starts faster for it, so that it
// reaches only the user's shared plugins (flock, ofd, etcd); posix, a
// handed-over file (WithFile) and sharing turned off need a private one.
// The lockmgr command is built so, and execs its full build for those.
const StartsPrivatePlugins = pluginhost.StartsPrivatePlugins

// SetPrivatePluginFallback sets what a program built with
// lockmgr_sharedonly does when a backend needs a private plugin: f is
// called with the backend's name before the start fails, and may replace
// the process with a build that can start one; an error it returns is
// the start's, else the start fails with ErrNoPrivatePlugins. A program
// built without the tag never calls f.
func SetPrivatePluginFallback(f func(backend string) error) { pluginhost.SetPrivateFallback(f) }

// Error is the type of every error lockmgr returns for a lock operation:
// it names the operation, the file and the backend.
type Error = backend.Error
