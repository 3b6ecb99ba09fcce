//go:build mangen

package main

// The man pages are generated from the command tree, so that they never
// disagree with --help. The generator (cobra/doc, which brings a markdown
// renderer and a YAML encoder) is built only with the mangen tag: linked
// into every lockmgr, its package initialisation alone would cost more
// than the rest of the command line does. `make man` runs:
//
//	go run -tags mangen ./cli man DIR
//
// SOURCE_DATE_EPOCH, if set, dates the pages, for reproducible builds.

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() {
	extraCommands = append(extraCommands, newManCmd)
}

func newManCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages into DIR",
		Hidden: true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("man: name the directory to write the man pages into")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return withCode(exitNoInput, fmt.Errorf("man: %w", err))
			}
			header := &doc.GenManHeader{Section: "1", Source: "lockmgr " + version, Manual: "lockmgr manual"}
			if err := doc.GenManTree(c.Root(), header, dir); err != nil {
				return withCode(exitNoInput, fmt.Errorf("man: writing man pages into %s: %w", dir, err))
			}
			return nil
		},
	}
}
