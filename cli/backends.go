package main

// `lockmgr backends` lists every backend plugin on the search path and
// proves each one usable the only way that counts: it starts it, as a
// lock would, and asks for its description. That covers the file checks
// (permissions, owner), the sha256 pin, and the handshake.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/spf13/cobra"
)

func newBackendsCmd(g *globals) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "backends [--json]",
		Short: "List the backend plugins found, and check each one",
		Long: `List every backend plugin (lockmgr-backend-NAME) on the plugin search path:
$LOCKMGR_PLUGIN_DIR, the config's plugin_dir, lockmgr's own directory,
../lib/lockmgr beside it, and /usr/lib/lockmgr. The first of a name wins,
as it would for a lock.

Each plugin is verified as a lock would use it: its file and directory
must be writable by their owner only and owned by root or you, it must
match its sha256 pin in the config if it has one, and it must start and
answer lockmgr's handshake. The list gives each plugin's name, path,
version and capabilities, or why it failed.

The PLUGIN column says which plugin process answered: the user's shared
plugin for the backend (its pid, and the other processes it serves, or
how long it has served none: it exits once idle for shared_plugin_idle),
or a private one, started for this command alone.

--json prints an array of objects with "name", "path", "version",
"capabilities" (an object), "ok", "error" and "plugin" (an object with
"pid", "shared", "other_hosts" and "idle_seconds").

A backend the configuration selects for some lock (backend, or flock by
default; $LOCKMGR_BACKEND; a [[rules]] entry's; auto means flock and
posix) must have a plugin: each one that has none is a line on stderr.

Exit status: 0 when every plugin found passed and every backend selected
has one, 69 when any failed, none was found, or a selected backend has
no plugin, 78 for a configuration error.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return backends(g, c.OutOrStdout(), c.ErrOrStderr(), jsonOut)
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return c
}

// backendJSON is one plugin in backends --json.
type backendJSON struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Version string `json:"version"`
	// Capabilities keep backend.Capabilities' own JSON names, so that
	// every capability is here without a line of code for it.
	Capabilities *backend.Capabilities `json:"capabilities"`
	OK           bool                  `json:"ok"`
	Error        string                `json:"error"`
	// Plugin is the plugin process that answered, once started.
	Plugin *pluginJSON `json:"plugin,omitempty"`
}

// pluginJSON is a backend's plugin process in backends --json.
type pluginJSON struct {
	PID    int  `json:"pid"`
	Shared bool `json:"shared"`
	// OtherHosts counts the processes it serves besides lockmgr backends.
	OtherHosts int `json:"other_hosts"`
	// IdleSeconds is how long a shared plugin has served no other host.
	IdleSeconds float64 `json:"idle_seconds,omitempty"`
}

// String describes the plugin process in the table's PLUGIN column.
func (p *pluginJSON) String() string {
	switch {
	case p == nil:
		return "-"
	case !p.Shared:
		return fmt.Sprintf("private, pid %d", p.PID)
	case p.OtherHosts > 0:
		return fmt.Sprintf("shared, pid %d, %d other hosts", p.PID, p.OtherHosts)
	}
	return fmt.Sprintf("shared, pid %d, idle %.0fs", p.PID, p.IdleSeconds)
}

func backends(g *globals, stdout, stderr io.Writer, jsonOut bool) error {
	cfg, err := g.loadConfig("")
	if err != nil {
		return err
	}
	dirs := lockmgr.PluginSearchPath(cfg)
	found := lockmgr.ListPlugins(dirs)
	results := make([]backendJSON, len(found))
	// Each check starts a process; side by side they take as long as the
	// slowest, not the sum.
	var wg sync.WaitGroup
	for i, f := range found {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = checkBackend(cfg, f)
		}()
	}
	wg.Wait()

	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tSTATUS\tPATH\tPLUGIN\tCAPABILITIES")
		for _, r := range results {
			if r.OK {
				fmt.Fprintf(tw, "%s\t%s\tok\t%s\t%s\t%s\n", r.Name, r.Version, r.Path, r.Plugin, strings.Join(r.Capabilities.Words(), ", "))
			} else {
				fmt.Fprintf(tw, "%s\t-\tfailed\t%s\t-\t%s\n", r.Name, r.Path, r.Error)
			}
		}
		if len(results) > 0 {
			tw.Flush()
		}
	}
	if len(found) == 0 {
		return withCode(exitUnavailable, fmt.Errorf("no backend plugins (lockmgr-backend-NAME) found in %s", strings.Join(dirs, ":")))
	}
	failed := false
	for _, r := range results {
		failed = failed || !r.OK
	}
	have := make(map[string]bool, len(found))
	for _, f := range found {
		have[f.Name] = true
	}
	for _, sel := range selectedBackends(cfg) {
		if !have[sel.name] {
			fmt.Fprintf(stderr, "lockmgr: backend %s (%s) has no plugin: no %s%s in %s\n",
				sel.name, sel.source, lockmgr.PluginBinaryPrefix, sel.name, strings.Join(dirs, ":"))
			failed = true
		}
	}
	if failed {
		return exitStatus(exitUnavailable)
	}
	return nil
}

// selection is a backend the configuration selects, and where.
type selection struct{ name, source string }

// selectedBackends lists, once each, the backends the configuration
// selects for some lock: its backend (flock when unset), which
// LOCKMGR_BACKEND overrides, and each rule's. auto selects both flock and
// posix, since it picks one or the other by the lock file's filesystem.
func selectedBackends(cfg *config.Config) []selection {
	var out []selection
	seen := map[string]bool{}
	add := func(name string, src config.Source) {
		names := []string{name}
		if name == config.BackendAuto {
			names = []string{config.BackendFlock, config.BackendPOSIX}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, selection{n, src.String()})
			}
		}
	}
	if cfg.Backend == "" {
		add(config.DefaultBackend, config.Source{Kind: config.KindDefault})
	} else {
		add(cfg.Backend, cfg.Sources[config.KeyBackend])
	}
	for _, r := range cfg.Rules {
		add(r.Backend, r.Source)
	}
	return out
}

// checkBackend starts one plugin, as a lock under cfg would, and asks it
// to describe itself.
func checkBackend(cfg *config.Config, f lockmgr.FoundPlugin) backendJSON {
	r := backendJSON{Name: f.Name, Path: f.Path}
	fail := func(err error) backendJSON {
		var be *backend.Error
		if errors.As(err, &be) && be.Err != nil {
			err = be.Err // the name and the op are in the row already
		}
		r.Error = oneLine(err.Error())
		return r
	}
	// Verify first, for its own words; the start would verify too.
	if err := lockmgr.VerifyPlugin(f.Path); err != nil {
		return fail(err)
	}
	// The start has a bound of its own, whose error says what went wrong
	// (a handshake that never came), not that a wait ran out.
	b, err := lockmgr.OpenBackend(context.Background(), f.Name, lockmgr.WithConfig(cfg))
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := b.Info(ctx)
	if err != nil {
		return fail(err)
	}
	if info.Name != f.Name {
		return fail(fmt.Errorf("%s calls itself %q, not %q", f.Path, info.Name, f.Name))
	}
	r.Version = info.Version
	r.Capabilities = &info.Capabilities
	if p, err := b.Process(ctx); err == nil && p.PID > 0 {
		r.Plugin = &pluginJSON{PID: p.PID, Shared: p.Shared, OtherHosts: p.OtherHosts}
		if !p.IdleSince.IsZero() {
			r.Plugin.IdleSeconds = time.Since(p.IdleSince).Seconds()
		}
	}
	r.OK = true
	return r
}
