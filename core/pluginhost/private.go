//go:build !lockmgr_sharedonly

package pluginhost

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/plugin"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"google.golang.org/grpc"
)

// startPrivate starts a plugin of this host's own for backend name, from
// the verified binary at path, through go-plugin: the handshake, and the
// control plane over gRPC. A build with the lockmgr_sharedonly tag links
// none of this (private_sharedonly.go).
func (h *Host) startPrivate(name, path, sum string) (*Plugin, error) {
	spec := procSpec{Path: path, SHA256: sum, ShareLifeline: h.opts.ShareLifeline, ExtraFiles: h.opts.ExtraFiles}

	// go-plugin reads the handshake from a process of ours (process.go),
	// started with lockmgr's checks, lifeline and socket directory;
	// go-plugin's own environment comes in through the runner function.
	var proc *process
	var procErr error
	// go-plugin makes a directory of its own before it starts anything:
	// it goes in a private one of ours, made where the plugin's would be,
	// never in a place another user controls, nor on a read-only /tmp,
	// nor in a trusted place that is full (socketParentDir alone would name
	// that one, and go-plugin's mkdir would fail the start).
	socketParent, err := makeSocketDir()
	if err != nil {
		return nil, backend.Errorf("start", "", name, err)
	}
	// go-plugin's directory is removed as the plugin starts (RunnerFunc);
	// ours is needed no longer than the start.
	defer os.RemoveAll(socketParent)
	// The plugin's address is known once it has answered the handshake;
	// every connection to it is checked to reach that very process. Only
	// the control plane goes there: a process that stole the socket's name
	// could answer Describe or Inspect, never grant a lock, which travels
	// on the lifeline the plugin inherited.
	var target net.Addr
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		return proc.Dial(ctx, target)
	}
	gp := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: plugin.Handshake,
		Plugins:         plugin.Set(nil),
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, goPluginDir string) (runner.Runner, error) {
			// go-plugin made a socket directory of its own; each process
			// of ours has one already.
			os.Remove(goPluginDir)
			spec.Env = append(baseEnv(), slices.DeleteFunc(cmd.Env, func(kv string) bool {
				return strings.HasPrefix(kv, pluginrpc.SocketDirEnv+"=")
			})...)
			proc, procErr = startProcess(spec)
			if procErr != nil {
				return nil, procErr
			}
			return proc, nil
		},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		SkipHostEnv:      true,
		StartTimeout:     h.opts.StartTimeout,
		Logger:           h.opts.Logger.Named(name),
		GRPCDialOptions:  append(plugin.DialOptions(), grpc.WithContextDialer(dial)),
		UnixSocketConfig: &goplugin.UnixSocketConfig{TempDir: socketParent},
	})
	fail := func(err error) (*Plugin, error) {
		gp.Kill()
		if proc != nil {
			proc.Abandon()
		}
		return nil, err
	}
	h.opts.Logger.Debug("starting plugin", "backend", name, "path", path)
	go pluginrpc.Warm() // runs while the plugin starts
	target, err = gp.Start()
	var proto goplugin.ClientProtocol
	if err == nil {
		proto, err = gp.Client()
	}
	if err != nil {
		switch {
		case errors.Is(procErr, errChecksum):
			return fail(rejected(name, "%s does not match its pinned sha256", path))
		case errors.Is(procErr, ErrUnsafe):
			// startProcess checks again what it opens, and may find it changed.
			return fail(rejected(name, "%v", procErr))
		case procErr != nil:
			return fail(backend.Errorf("start", "", name, procErr))
		}
		return fail(rejected(name, "%s failed its handshake: %s", path, firstLine(err.Error())))
	}
	raw, err := proto.Dispense(plugin.Name)
	if err != nil {
		return fail(rejected(name, "%s: %s", path, firstLine(err.Error())))
	}
	client, ok := raw.(*pluginrpc.Client)
	if !ok {
		return fail(rejected(name, "%s is not a lockmgr backend", path))
	}
	// The connection is up: the socket's name is no longer needed, and
	// removing it now leaves nothing behind even if host and plugin are
	// both killed.
	defer os.RemoveAll(proc.SocketDir)
	client.SetName(name)
	// Every lock travels on the lifeline, and one that is a locked file
	// comes back on it, to stay with this process when the plugin goes.
	// A plugin that breaks the session's protocol, or leaves a cancel
	// unanswered, is killed here: its locks are then announced lost.
	logger := h.opts.Logger.Named(name)
	if err := client.StartSession(proc.Lifeline, pluginrpc.SessionOptions{
		Kill:          func() { _ = proc.Kill(context.Background()) },
		CancelTimeout: h.opts.CancelTimeout,
		Keepers:       h.opts.ShareLifeline,
		OnFailure:     func(err error) { logger.Error("plugin killed", "reason", err) },
	}); err != nil {
		return fail(rejected(name, "%s: opening its session: %s", path, firstLine(err.Error())))
	}
	// The plugin's death is heard at once even while no one reads the
	// session (no call in flight, no lock kept that could be lost): its
	// process is reaped as it exits.
	go func() {
		<-proc.exited
		client.PluginExited()
	}()

	if settings := h.opts.Settings[name]; len(settings) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.StartTimeout)
		err := client.Configure(ctx, settings)
		cancel()
		if err != nil {
			return fail(err)
		}
	}
	p := &Plugin{Client: client, Name: name, Path: path, host: h, gp: gp, proc: proc}
	if gc, ok := proto.(*goplugin.GRPCClient); ok {
		p.conn = gc.Conn
	}
	h.opts.Logger.Debug("plugin started", "backend", name)
	return p, nil
}

// StartsPrivatePlugins says whether this build of the host starts private
// plugins itself: true, as it was built without lockmgr_sharedonly.
const StartsPrivatePlugins = true
