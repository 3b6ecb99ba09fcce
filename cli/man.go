//go:build mangen

package main

// The man pages are generated from the command tree, so that they never
// disagree with --help, by manroff.go, with the sections --help has no
// room for from manpages.go. The generators (cobra/doc for the HTML
// reference brings a markdown renderer and a YAML encoder) are built only
// with the mangen tag: linked into every lockmgr, their package
// initialisation alone would cost more than the rest of the command line
// does. `make man` runs:
//
//	go run -tags mangen ./cli man DIR
//
// SOURCE_DATE_EPOCH, if set, dates the pages, for reproducible builds.
//
// The HTML documentation's command reference comes from the same tree:
// docs/conf.py runs
//
//	go run -tags mangen ./cli rst DIR
//
// at every Sphinx build, into a directory that is not checked in.

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() {
	extraCommands = append(extraCommands, newManCmd, newReSTCmd)
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
			if err := writeManTree(c.Root(), dir); err != nil {
				return withCode(exitNoInput, fmt.Errorf("man: writing man pages into %s: %w", dir, err))
			}
			return nil
		},
	}
}

func newReSTCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:    "rst DIR",
		Short:  "Write the command reference as reStructuredText into DIR",
		Hidden: true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("rst: name the directory to write the reStructuredText pages into")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return withCode(exitNoInput, fmt.Errorf("rst: %w", err))
			}
			root := c.Root()
			asReST(root)
			noPrefix := func(string) string { return "" }
			// Sphinx cross-references to the labels GenReST writes
			// (".. _lockmgr_run:"), rather than links to .rst files, which
			// would be dead in the HTML.
			sphinxRef := func(name, ref string) string { return fmt.Sprintf(":ref:`%s <%s>`", name, ref) }
			if err := doc.GenReSTTreeCustom(root, dir, noPrefix, sphinxRef); err != nil {
				return withCode(exitNoInput, fmt.Errorf("rst: writing pages into %s: %w", dir, err))
			}
			return nil
		},
	}
}

// asReST makes c's tree safe for GenReST, which copies each command's
// texts into the page as they are. The long help is plain text laid out
// for a terminal (indented examples, the exit status table), which
// reStructuredText would read as markup and warn about, so it becomes a
// literal block, shown exactly as --help shows it. The one-line summaries
// stay prose, with reStructuredText's markup characters escaped. The tree
// is this run's own, so changing it changes nothing else.
func asReST(c *cobra.Command) {
	long := c.Long
	if long == "" {
		long = c.Short
	}
	c.Long = "::\n\n" + indent(long, "  ")
	c.Short = rstEscape(c.Short)
	for _, sub := range c.Commands() {
		asReST(sub)
	}
}

// indent puts prefix before every line of s that is not empty.
func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// rstEscape backslash-escapes the characters that start inline markup in
// reStructuredText (emphasis, literals, substitutions, references,
// footnotes), so that a summary such as "bash|zsh|fish" reads as written.
func rstEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "`", "\\`", "|", `\|`, "_", `\_`, "[", `\[`, "]", `\]`).Replace(s)
}
