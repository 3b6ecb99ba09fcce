package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit identify the build; release builds set them with
// -ldflags "-X main.version=1.2.3 -X main.commit=abc1234".
var version, commit = "dev", ""

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print lockmgr's version",
		Long: `Print lockmgr's version, the commit it was built from, and the Go
release and platform. Backend plugins have versions of their own: see
'lockmgr backends'.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return printVersion(c.OutOrStdout())
		},
	}
}

// printVersion writes "lockmgr VERSION (commit C, GO, OS/ARCH)".
func printVersion(w io.Writer) error {
	c := commit
	if c == "" {
		// A plain `go build` in a checkout records the commit itself;
		// it is only read here, so that other commands do not pay for it.
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	_, err := fmt.Fprintf(w, "lockmgr %s (commit %s, %s, %s/%s)\n", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q (see '%s --help')", c.CommandPath(), args[0], c.CommandPath())
	}
	return nil
}
