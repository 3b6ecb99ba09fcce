package main

// `lockmgr config` shows the effective configuration and, for each value,
// the layer it came from, so that "why is this lock posix?" has an answer
// that names a file and a line.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/spf13/cobra"
)

func newConfigCmd(g *globals) *cobra.Command {
	var jsonOut bool
	var backendName string
	c := &cobra.Command{
		Use:   "config [--json] [-b NAME]",
		Short: "Show the effective configuration and where each value came from",
		Long: `Show the configuration lockmgr runs with: the backend, plugin_dir,
lock_file_mode and shared_plugin_idle, each with where it came from (default, system file, user
file, config file, env, flag); the files read; the path rules; the plugin
sha256 pins; and the plugin search path.

The layers, highest first: --backend, $LOCKMGR_BACKEND, the user's file
($XDG_CONFIG_HOME/lockmgr/config.toml or ~/.config/lockmgr/config.toml),
the system file (/etc/lockmgr/config.toml), the defaults. --config FILE or
$LOCKMGR_CONFIG names one file to read instead of both files. For the
backend, a [[rules]] entry that covers the lock file wins over every
layer but --backend: over $LOCKMGR_BACKEND too.

--json prints one object: "backend", "plugin_dir", "lock_file_mode" and
"shared_plugin_idle" (each {"value", "source", "kind"}), "files", "rules", "plugins",
"backends" and "plugin_search_path".

Backend settings are listed with where each came from, but a value is
printed only for a key its backend declares safe to show (the etcd
backend's endpoints, prefix, ttl, dial_timeout, tls_ca, tls_cert, tls_key
and username, and the keys [plugins.NAME] shown_settings lists for backend
NAME), and even then with the user info of any URL in it hidden
(http://***@host). Any other key, a misspelt one, any undeclared key of a
third-party backend, or a key that names a secret (password, token, ...),
shows "(set, not shown)".

Exit status: 0, or 78 when the configuration is invalid.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkBackendFlag(backendName); err != nil {
				return err
			}
			cfg, err := g.loadConfig(backendName)
			if err != nil {
				return err
			}
			if jsonOut {
				return printConfigJSON(c.OutOrStdout(), cfg)
			}
			return printConfig(c.OutOrStdout(), cfg)
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	c.Flags().StringVarP(&backendName, "backend", "b", "", "as if --backend `NAME` were given to a lock command")
	return c
}

// valueJSON is a scalar setting with its source.
type valueJSON struct {
	Value  string `json:"value"`
	Source string `json:"source"`
	Kind   string `json:"kind"`
}

// ruleJSON is a path rule with its source.
type ruleJSON struct {
	Path    string `json:"path"`
	Backend string `json:"backend"`
	Source  string `json:"source"`
}

// pinJSON is a plugin's sha256 pin with its source, and the settings
// declared safe to show.
type pinJSON struct {
	SHA256        string   `json:"sha256"`
	ShownSettings []string `json:"shown_settings,omitempty"`
	Source        string   `json:"source"`
}

// settingJSON is one key of a backend's settings with its source. Its
// value is what config.ShownSetting lets through: the value of a key the
// backend declares safe to show, URL user info hidden; for any other key,
// only that it is set.
type settingJSON struct {
	Value  any    `json:"value"`
	Source string `json:"source"`
}

// configJSON is the whole of config --json.
type configJSON struct {
	Backend          valueJSON                         `json:"backend"`
	PluginDir        valueJSON                         `json:"plugin_dir"`
	LockFileMode     valueJSON                         `json:"lock_file_mode"`
	SharedPluginIdle valueJSON                         `json:"shared_plugin_idle"`
	Files            []string                          `json:"files"`
	Rules            []ruleJSON                        `json:"rules"`
	Plugins          map[string]pinJSON                `json:"plugins"`
	Backends         map[string]map[string]settingJSON `json:"backends"`
	PluginSearchPath []string                          `json:"plugin_search_path"`
}

func configView(cfg *config.Config) configJSON {
	val := func(key, v string) valueJSON {
		src := cfg.Sources[key]
		return valueJSON{Value: v, Source: src.String(), Kind: src.Kind}
	}
	out := configJSON{
		Backend:          val(config.KeyBackend, cfg.Backend),
		PluginDir:        val(config.KeyPluginDir, cfg.PluginDir),
		LockFileMode:     val(config.KeyLockFileMode, fmt.Sprintf("%04o", uint32(cfg.LockFileMode.Perm()))),
		SharedPluginIdle: val(config.KeySharedPluginIdle, cfg.SharedPluginIdle.String()),
		Files:            append([]string{}, cfg.Files...),
		Rules:            []ruleJSON{},
		Plugins:          map[string]pinJSON{},
		Backends:         map[string]map[string]settingJSON{},
		PluginSearchPath: lockmgr.PluginSearchPath(cfg),
	}
	for _, r := range cfg.Rules {
		out.Rules = append(out.Rules, ruleJSON{Path: r.Path, Backend: r.Backend, Source: r.Source.String()})
	}
	for name, p := range cfg.Plugins {
		out.Plugins[name] = pinJSON{SHA256: p.SHA256, ShownSettings: p.ShownSettings, Source: p.Source.String()}
	}
	for name, settings := range cfg.Backends {
		view := make(map[string]settingJSON, len(settings))
		for key, value := range settings {
			view[key] = settingJSON{Value: cfg.ShownSetting(name, key, value), Source: cfg.BackendSources[name][key].String()}
		}
		out.Backends[name] = view
	}
	return out
}

func printConfigJSON(w io.Writer, cfg *config.Config) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(configView(cfg))
}

func printConfig(w io.Writer, cfg *config.Config) error {
	v := configView(cfg)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range []struct {
		key string
		val valueJSON
	}{
		{config.KeyBackend, v.Backend},
		{config.KeyPluginDir, v.PluginDir},
		{config.KeyLockFileMode, v.LockFileMode},
		{config.KeySharedPluginIdle, v.SharedPluginIdle},
	} {
		value := kv.val.Value
		if value == "" {
			value = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", kv.key, value, kv.val.Source)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	files := "(none)"
	if len(v.Files) > 0 {
		files = strings.Join(v.Files, ", ")
	}
	fmt.Fprintf(w, "\nfiles read: %s\n", files)
	if len(v.Rules) > 0 {
		fmt.Fprintln(w, "\nrules (longest matching path wins):")
		for _, r := range v.Rules {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Path, r.Backend, r.Source)
		}
		tw.Flush()
	}
	var pinned, declared []string
	for _, name := range slices.Sorted(maps.Keys(v.Plugins)) {
		if v.Plugins[name].SHA256 != "" {
			pinned = append(pinned, name)
		}
		if len(v.Plugins[name].ShownSettings) > 0 {
			declared = append(declared, name)
		}
	}
	if len(pinned) > 0 {
		fmt.Fprintln(w, "\nplugin sha256 pins:")
		for _, name := range pinned {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, v.Plugins[name].SHA256, v.Plugins[name].Source)
		}
		tw.Flush()
	}
	if len(declared) > 0 {
		fmt.Fprintln(w, "\nsettings declared safe to show:")
		for _, name := range declared {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, strings.Join(v.Plugins[name].ShownSettings, ", "), v.Plugins[name].Source)
		}
		tw.Flush()
	}
	if len(v.Backends) > 0 {
		fmt.Fprintln(w, "\nbackend settings:")
		for _, name := range slices.Sorted(maps.Keys(v.Backends)) {
			settings := v.Backends[name]
			for _, key := range slices.Sorted(maps.Keys(settings)) {
				fmt.Fprintf(tw, "  %s.%s\t%s\t%s\n", name, key, settingText(settings[key].Value), settings[key].Source)
			}
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nplugin search path:\n")
	for _, d := range v.PluginSearchPath {
		fmt.Fprintf(w, "  %s\n", d)
	}
	return nil
}

// settingText shows a setting's value on one line: strings as they are,
// anything else as JSON.
func settingText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
