package main

import (
	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/spf13/cobra"
)

func newCompletionCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print the completion script for bash, zsh or fish on stdout.

  bash:  lockmgr completion bash > /etc/bash_completion.d/lockmgr
  zsh:   lockmgr completion zsh > "${fpath[1]}/_lockmgr"
  fish:  lockmgr completion fish > ~/.config/fish/completions/lockmgr.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("completion: name one shell: bash, zsh or fish")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			root, out := c.Root(), c.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			}
			return usageErrorf("completion: unknown shell %q: want bash, zsh or fish", args[0])
		},
	}
	return c
}

// completeBackends offers the backends a --backend flag may name: the
// built-in ones and the plugins on the search path (not verified: that
// would start every plugin on each press of tab).
func completeBackends(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	names := []string{config.BackendFlock, config.BackendPOSIX, config.BackendOFD, config.BackendAuto}
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	// The config may name a plugin_dir; without it (or with a broken
	// config) the default search path still helps.
	cfg, err := config.Load(config.LoadOptions{})
	if err != nil {
		cfg = nil
	}
	for _, f := range lockmgr.ListPlugins(lockmgr.PluginSearchPath(cfg)) {
		if !seen[f.Name] {
			names = append(names, f.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// registerCompletions adds the dynamic completions to the tree.
func registerCompletions(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Flags().Lookup("backend") != nil {
			_ = c.RegisterFlagCompletionFunc("backend", completeBackends)
		}
		for _, name := range []string{"on-lost"} {
			if c.Flags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions([]string{onLostTerm, onLostKill, onLostIgnore}, cobra.ShellCompDirectiveNoFileComp))
			}
		}
	}
}
