//go:build mangen

package main

// The man pages' renderer: each command of the tree becomes a page with
// the sections an admin looks for (NAME, SYNOPSIS, DESCRIPTION, OPTIONS,
// EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES, SEE ALSO), from the
// command's own texts and the sections of manpages.go. cobra/doc's pages
// have none of the last five, and render a boolean flag as
// "--help[=false]".

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// manName is the page name of command c: lockmgr, lockmgr-run...
func manName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-")
}

// manDate is the pages' date: SOURCE_DATE_EPOCH if set, for reproducible
// builds, else today.
func manDate() (string, error) {
	t := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
		}
		t = time.Unix(n, 0)
	}
	return t.UTC().Format("2006-01-02"), nil
}

// writeManTree writes a page for root and every command under it that a
// user can run, into dir.
func writeManTree(root *cobra.Command, dir string) error {
	date, err := manDate()
	if err != nil {
		return err
	}
	var cmds []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag() // cobra adds it only to the command it runs
		cmds = append(cmds, c)
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				walk(sub)
			}
		}
	}
	walk(root)
	for _, c := range cmds {
		f, err := os.Create(filepath.Join(dir, manName(c)+".1"))
		if err != nil {
			return err
		}
		werr := writeManPage(f, c, cmds, date)
		if err := f.Close(); werr == nil {
			werr = err
		}
		if werr != nil {
			return werr
		}
	}
	return nil
}

// writeManPage writes command c's page; all are the pages it refers to.
func writeManPage(w io.Writer, c *cobra.Command, all []*cobra.Command, date string) error {
	name := manName(c)
	extra := manExtras[name]
	b := &strings.Builder{}
	fmt.Fprintf(b, ".TH %s 1 %s \"lockmgr %s\" \"lockmgr manual\"\n", strings.ToUpper(name), date, roffEscape(version))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(b, "%s \\- %s\n", roffEscape(name), roffEscape(lowerFirst(c.Short)))

	b.WriteString(".SH SYNOPSIS\n")
	synopsis := extra.synopsis
	if synopsis == nil {
		synopsis = []string{c.UseLine()}
	}
	for i, s := range synopsis {
		if i > 0 {
			b.WriteString(".br\n")
		}
		word, rest, _ := strings.Cut(s, " ")
		if strings.HasPrefix(s, c.CommandPath()+" ") {
			word, rest = c.CommandPath(), strings.TrimPrefix(s, c.CommandPath()+" ")
		}
		fmt.Fprintf(b, ".B %s\n%s\n", roffEscape(word), roffEscape(rest))
	}

	b.WriteString(".SH DESCRIPTION\n")
	long := c.Long
	if long == "" {
		long = c.Short + "."
	}
	b.WriteString(roffText(withoutExitStatus(long)))
	for _, s := range extra.before {
		writeSection(b, s)
	}

	if c.HasAvailableSubCommands() {
		b.WriteString(".SH COMMANDS\n")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				fmt.Fprintf(b, ".TP\n.BR %s (1)\n%s\n", roffEscape(manName(sub)), roffEscape(sub.Short+"."))
			}
		}
	}

	if flags := visibleFlags(c.NonInheritedFlags()); len(flags) > 0 {
		b.WriteString(".SH OPTIONS\n")
		writeFlags(b, flags)
	}
	if flags := visibleFlags(c.InheritedFlags()); len(flags) > 0 {
		b.WriteString(".SS Options of every command\n")
		writeFlags(b, flags)
	}

	writeSection(b, manSection{"EXIT STATUS", "", extra.exits})
	for _, s := range extra.after {
		writeSection(b, s)
	}
	if c.Example != "" || extra.examples != "" {
		b.WriteString(".SH EXAMPLES\n")
		ex := strings.TrimRight(c.Example, "\n")
		if extra.examples != "" {
			if ex != "" {
				ex += "\n\n"
			}
			ex += extra.examples
		}
		b.WriteString(roffText(ex))
	}

	b.WriteString(".SH SEE ALSO\n")
	var refs []string
	for _, other := range all {
		if other != c {
			refs = append(refs, roffEscape(manName(other))+" (1)")
		}
	}
	refs = append(refs, "lockmgr.toml (5)", "lockmgr\\-etcd (5)", "flock (1)", "lslocks (8)", "flock (2)", "fcntl (2)")
	for i, r := range refs {
		sep := ","
		if i == len(refs)-1 {
			sep = ""
		}
		fmt.Fprintf(b, ".BR %s%s\n", r, sep)
	}
	b.WriteString(".PP\nThe HTML manual, built from the source tree's docs/ with \\fBmake docs\\fR, says more: why each backend behaves as it does, and what lockmgr costs.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// manSection is a section of a page: a title and either text (the help's
// plain-text conventions, see roffText) or a list of terms and their
// definitions.
type manSection struct {
	title string
	text  string
	defs  []manDef
}

// manDef is one term of a list: a name in bold, its meaning.
type manDef struct{ term, def string }

func writeSection(b *strings.Builder, s manSection) {
	if s.text == "" && len(s.defs) == 0 {
		return
	}
	if strings.HasPrefix(s.title, "  ") {
		fmt.Fprintf(b, ".SS %s\n", roffEscape(strings.TrimSpace(s.title)))
	} else {
		fmt.Fprintf(b, ".SH %s\n", roffEscape(s.title))
	}
	if s.text != "" {
		b.WriteString(roffText(s.text))
	}
	for _, d := range s.defs {
		fmt.Fprintf(b, ".TP\n.B %s\n%s\n", roffEscape(d.term), roffFill(d.def))
	}
}

// visibleFlags are fs's flags that a user may give, by name.
func visibleFlags(fs *pflag.FlagSet) []*pflag.Flag {
	var out []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			out = append(out, f)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// writeFlags lists flags as a man page does: "-w, --timeout SECONDS",
// then what it does and its default; a boolean flag takes no value.
func writeFlags(b *strings.Builder, flags []*pflag.Flag) {
	for _, f := range flags {
		varname, usage := pflag.UnquoteUsage(f)
		if f.Value.Type() == "bool" {
			varname = ""
		}
		if f.Name == "help" {
			usage = "print the help and exit"
		}
		b.WriteString(".TP\n")
		if f.Shorthand != "" {
			fmt.Fprintf(b, "\\fB\\-%s\\fR, ", roffEscape(f.Shorthand))
		}
		fmt.Fprintf(b, "\\fB\\-\\-%s\\fR", roffEscape(f.Name))
		if varname != "" {
			fmt.Fprintf(b, " \\fI%s\\fR", roffEscape(varname))
		}
		b.WriteString("\n")
		if d := f.DefValue; f.Value.Type() != "bool" && d != "" && d != "0" && d != "-1" && d != "[]" && !strings.Contains(usage, "default") {
			usage += " (default: " + d + ")"
		}
		b.WriteString(roffFill(upperFirst(usage)) + "\n")
	}
}

// withoutExitStatus drops the help's "Exit status:" paragraph and what
// follows it in the same paragraph: the page has a section for it.
func withoutExitStatus(s string) string {
	paras := strings.Split(strings.TrimSpace(s), "\n\n")
	var keep []string
	for _, p := range paras {
		if !strings.HasPrefix(p, "Exit status:") {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, "\n\n")
}

// roffText renders plain help text: paragraphs separated by blank lines
// are filled; lines indented by two spaces or more are shown as they are
// (examples, tables).
func roffText(s string) string {
	var b strings.Builder
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	inFill, inEx := false, false
	for _, l := range lines {
		switch {
		case strings.TrimSpace(l) == "":
			if inEx {
				b.WriteString(".EE\n")
				inEx = false
			}
			inFill = false
		case strings.HasPrefix(l, "  "):
			if !inEx {
				b.WriteString(".PP\n.EX\n")
				inEx, inFill = true, false
			}
			b.WriteString(roffLine(l) + "\n")
		default:
			if inEx {
				b.WriteString(".EE\n")
				inEx = false
			}
			if !inFill {
				b.WriteString(".PP\n")
				inFill = true
			}
			b.WriteString(roffLine(l) + "\n")
		}
	}
	if inEx {
		b.WriteString(".EE\n")
	}
	return b.String()
}

// roffFill renders a definition, filled.
func roffFill(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = roffLine(strings.TrimSpace(l))
	}
	return strings.Join(lines, "\n")
}

// roffLine is one line of text, escaped, and kept from reading as a
// request.
func roffLine(l string) string {
	l = roffEscape(l)
	if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
		l = `\&` + l
	}
	return l
}

// roffEscape escapes what roff would read as markup: the backslash, and
// the minus sign, which would otherwise be a hyphen (and break
// copied-and-pasted options).
func roffEscape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
