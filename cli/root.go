package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/lockmgr/lockmgr/core/config"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// globals holds what every command shares: the flags of the root command.
type globals struct {
	// configFile is --config: the one configuration file to read.
	configFile string
}

// loadConfig reads the configuration once for the whole run: the
// environment, the files (or --config), and backendFlag, a --backend
// value already checked by checkBackendFlag.
func (g *globals) loadConfig(backendFlag string) (*config.Config, error) {
	return config.Load(config.LoadOptions{ExplicitFile: g.configFile, Backend: backendFlag})
}

// checkBackendFlag refuses a --backend value that cannot name a backend,
// as a usage error, before it reaches the configuration (where it would
// read as a configuration error) or a plugin file name.
func checkBackendFlag(name string) error {
	if name != "" && !config.ValidBackendName(name) {
		return usageErrorf("--backend %q is not a backend name (want flock, posix, ofd, auto, or a plugin name of lower-case letters, digits, '-' and '_')", name)
	}
	return nil
}

// extraCommands are added to the tree by files built only with a build
// tag (man.go), so that the lockmgr people run carries none of their
// dependencies.
var extraCommands []func(g *globals) *cobra.Command

// newRootCmd builds the command tree.
func newRootCmd() *cobra.Command {
	cobra.AddTemplateFunc("manName", func(path string) string { return strings.ReplaceAll(path, " ", "-") })
	g := &globals{}
	root := &cobra.Command{
		Use:   "lockmgr",
		Short: "Advisory file locks for shell scripts and programs",
		Long: `lockmgr takes advisory file locks on Linux, as flock(1) does, through a
backend chosen by configuration: flock (flock(2) locks, the default, the
ones flock(1) takes), posix (fcntl record locks, which NFS servers
arbitrate), ofd (open file description locks), etcd (a lock shared by
every host of a cluster), or another plugin.

  lockmgr run -n /run/lock/backup.lock -- backup.sh   # skip if running
  lockmgr status /run/lock/backup.lock                # who holds it?

The backend is, highest first: --backend, a [[rules]] entry that covers
the lock file, $LOCKMGR_BACKEND, the user's config file
(~/.config/lockmgr/config.toml), the system's (/etc/lockmgr/config.toml),
and flock. 'lockmgr config' shows which applies, and where it came from.

Run through a symbolic link named flock, lockmgr is flock(1), with
flock(1)'s options, messages and exit statuses: see lockmgr(1).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if v, _ := c.Flags().GetBool("version"); v {
				return printVersion(c.OutOrStdout())
			}
			if len(args) == 0 {
				return usageErrorf("missing command (see 'lockmgr --help')")
			}
			return unknownCommand(c, args[0])
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		// completion.go has its own, with bash, zsh and fish only.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		// Man pages are dated by SOURCE_DATE_EPOCH, not by a footer that
		// changes on every build.
		DisableAutoGenTag: true,
	}
	// Suggest "run" for "rnu": cobra suggests only exact prefixes by default.
	root.SuggestionsMinimumDistance = 2
	root.SetOut(outputNoter{os.Stdout})
	root.SetErr(os.Stderr)
	// Defined before cobra would add its own, so that -v stays free for
	// the subcommands' --verbose and means nothing on its own.
	root.Flags().Bool("version", false, "print lockmgr's version")
	root.PersistentFlags().StringVar(&g.configFile, "config", "",
		"read only this configuration `FILE` (default: $LOCKMGR_CONFIG, else the system and user files)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if !c.HasParent() {
			if hint := runOptionHint(c, err); hint != "" {
				return usageErrorf("%s", hint)
			}
		}
		return usageErrorf("%v (see '%s --help')", err, c.CommandPath())
	})
	root.SetHelpCommand(newHelpCmd())
	root.SetHelpTemplate(helpTemplate)
	root.AddCommand(
		newRunCmd(g),
		newLockCmd(g),
		newUnlockCmd(g),
		newStatusCmd(g),
		newBackendsCmd(g),
		newConfigCmd(g),
		newVersionCmd(),
		newCompletionCmd(),
	)
	for _, extra := range extraCommands {
		root.AddCommand(extra(g))
	}
	registerCompletions(root)
	return root
}

// unknownCommand is the usage error for `lockmgr NAME` with no command
// NAME, with cobra's suggestion folded into the one line.
func unknownCommand(root *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q", name)
	if s := root.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usageErrorf("%s (see 'lockmgr --help')", msg)
}

// unknownFlag is pflag's error for a flag it does not know, short or long.
var unknownFlag = regexp.MustCompile(`^unknown (?:shorthand flag: '(.)' in -\S+|flag: --([^=\s]+))`)

// runOptionHint is the usage error for one of run's options given to
// lockmgr itself, as someone used to 'flock -n FILE COMMAND' writes
// 'lockmgr -n FILE COMMAND': flock(1)'s options are run's. "" for any
// other unknown flag.
func runOptionHint(root *cobra.Command, err error) string {
	m := unknownFlag.FindStringSubmatch(err.Error())
	run, _, ferr := root.Find([]string{"run"})
	if m == nil || ferr != nil || run == root {
		return ""
	}
	var f *pflag.Flag
	spelled := "--" + m[2]
	if m[1] != "" {
		spelled = "-" + m[1]
		f = run.Flags().ShorthandLookup(m[1])
	} else {
		f = run.Flags().Lookup(m[2])
	}
	switch {
	case f == nil || f.Name == "help":
		return ""
	case f.Name == "version":
		return fmt.Sprintf("%s is an option of 'lockmgr run' (its version, as flock(1)'s -V); lockmgr's own is 'lockmgr --version'", spelled)
	}
	return fmt.Sprintf("%s is an option of 'lockmgr run', which takes flock(1)'s options: lockmgr run [OPTIONS] FILE -- COMMAND (see 'lockmgr run --help')", spelled)
}

// helpTemplate is --help for every command: the usage first, as flock(1)
// and most commands print it, then what the command does, its examples
// and flags (cobra's puts the usage after the whole description).
const helpTemplate = `Usage: {{if .HasAvailableSubCommands}}{{.CommandPath}} COMMAND [flags]{{if .Runnable}}
       {{.UseLine}}{{end}}{{else}}{{.UseLine}}{{end}}

{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Available Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}

{{if .HasAvailableSubCommands}}Each command's help: lockmgr COMMAND --help. {{end}}The manual: man {{.CommandPath | manName}}
`

// newHelpCmd replaces cobra's help command, which prints an unknown topic
// on stdout and exits 0.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Show help for a command",
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usageErrorf("no help for %q: unknown command (see 'lockmgr --help')", strings.Join(args, " "))
			}
			return target.Help()
		},
	}
}

// execute runs lockmgr with args and returns its exit code. Whatever
// happens, the user sees at most one line on stderr from lockmgr itself:
// even a bug shows as a line, not a Go stack trace. When lockmgr must end
// by a signal (the command's, or one that stopped the wait), it does so
// here, after everything else has been let go.
func execute(args []string) int {
	code, sig := executeCommand(args)
	if sig != 0 {
		dieBySignal(sig)
	}
	return code
}

// executeCommand runs lockmgr's command line, and returns its exit code
// and the signal to end by, if any.
func executeCommand(args []string) (code int, sig syscall.Signal) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(os.Stderr, "lockmgr: internal error:", oneLine(fmt.Sprint(r)))
			code, sig = exitSoftware, 0
		}
	}()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0, 0
	}
	return report(os.Stderr, err), exitSignalOf(err)
}

// exitSignalOf is the signal err says to end by, or 0.
func exitSignalOf(err error) syscall.Signal {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.signal
	}
	return 0
}
