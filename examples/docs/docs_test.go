package docs_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
)

// root is the repository, from examples/docs.
const root = "../.."

// manPage is the hand-written lockmgr.toml(5); etcdPage lockmgr-etcd(5),
// the settings of the etcd backend.
var (
	manPage  = filepath.Join(root, "docs", "man", "lockmgr.toml.5")
	etcdPage = filepath.Join(root, "docs", "man", "lockmgr-etcd.5")
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rstFiles returns every page of the documentation.
func rstFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.rst"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/*.rst: %v", err)
	}
	return files
}

// TestExitCodes checks the exit status table of docs/cli.rst against the
// constants of cli/exitcodes.go: every code lockmgr can exit with is
// listed, and nothing else.
func TestExitCodes(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(root, "cli", "exitcodes.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{0} // success is no constant
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || len(spec.Values) != len(spec.Names) {
			return true
		}
		for i, name := range spec.Names {
			lit, ok := spec.Values[i].(*ast.BasicLit)
			if !ok || lit.Kind != token.INT || !strings.HasPrefix(name.Name, "exit") {
				continue
			}
			v, err := strconv.Atoi(lit.Value)
			if err != nil {
				t.Fatalf("%s = %s: %v", name.Name, lit.Value, err)
			}
			want = append(want, v)
		}
		return true
	})
	if len(want) < 10 {
		t.Fatalf("found only %v in cli/exitcodes.go; has it changed shape?", want)
	}

	// The table's first column, between the "Exit status" heading and the
	// next section: numbers, "N" (the command's status) and "128+N".
	var got []int
	in := false
	sc := bufio.NewScanner(strings.NewReader(read(t, filepath.Join(root, "docs", "cli.rst"))))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "Exit status":
			in = true
		case in && line == "Environment":
			in = false
		case in && line != "" && line[0] != ' ' && line[0] != '=':
			first := strings.Fields(line)[0]
			if first == "128+N" {
				got = append(got, 128)
			} else if n, err := strconv.Atoi(first); err == nil {
				got = append(got, n)
			}
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("docs/cli.rst lists exit codes %v; cli/exitcodes.go has %v (128 standing for 128+N)", got, want)
	}
}

// tomlExample is one TOML example from the docs.
type tomlExample struct {
	where string
	text  string
}

// rejected reports whether the example is one the docs show being
// refused: its first line is a comment starting "# rejected".
func (e tomlExample) rejected() bool {
	return strings.HasPrefix(strings.TrimSpace(e.text), "# rejected")
}

// rstTOML returns the bodies of the ".. code-block:: toml" blocks of an
// rst page.
func rstTOML(name, text string) []tomlExample {
	var out []tomlExample
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != ".. code-block:: toml" {
			continue
		}
		start := i + 1
		var body []string
		for i = start; i < len(lines); i++ {
			l := lines[i]
			if l != "" && !strings.HasPrefix(l, " ") {
				break
			}
			body = append(body, strings.TrimPrefix(l, "   "))
		}
		i--
		out = append(out, tomlExample{where: name + ":" + strconv.Itoa(start), text: strings.Join(body, "\n")})
	}
	return out
}

// manTOML returns the bodies of the .EX/.EE blocks of a man page that
// hold TOML (not a command line), with its escapes undone.
func manTOML(name, text string) []tomlExample {
	unescape := strings.NewReplacer(`\-`, "-", `\e`, `\`, `\(dq`, `"`, `\&`, "")
	var out []tomlExample
	var body []string
	in := false
	for i, l := range strings.Split(text, "\n") {
		switch {
		case l == ".EX":
			in, body = true, nil
		case l == ".EE":
			in = false
			if len(body) > 0 && strings.Contains(body[0], "lockmgr ") {
				continue // a command line
			}
			out = append(out, tomlExample{where: name + ":" + strconv.Itoa(i+1), text: strings.Join(body, "\n")})
		case in:
			body = append(body, unescape.Replace(l))
		}
	}
	return out
}

// TestTOMLExamples parses every TOML example in the docs and the man page
// with lockmgr's own parser: each must parse, except those marked
// "# rejected", which must not. It also uncomments the packaged
// /etc/lockmgr/config.toml, which configuration.rst quotes, and parses
// the settings it shows.
func TestTOMLExamples(t *testing.T) {
	var examples []tomlExample
	for _, f := range rstFiles(t) {
		examples = append(examples, rstTOML(filepath.Base(f), read(t, f))...)
	}
	fromMan := manTOML("lockmgr.toml.5", read(t, manPage))
	if len(fromMan) < 4 {
		t.Errorf("found %d examples in lockmgr.toml.5, want at least 4", len(fromMan))
	}
	fromEtcd := manTOML("lockmgr-etcd.5", read(t, etcdPage))
	if len(fromEtcd) < 2 {
		t.Errorf("found %d TOML examples in lockmgr-etcd.5, want at least 2", len(fromEtcd))
	}
	examples = append(append(examples, fromMan...), fromEtcd...)
	if len(examples) < 8 {
		t.Fatalf("found only %d TOML examples; has the markup changed?", len(examples))
	}
	for _, e := range examples {
		_, err := config.Parse(e.where, []byte(e.text))
		switch {
		case e.rejected() && err == nil:
			t.Errorf("%s: the docs show this refused, but it parses:\n%s", e.where, e.text)
		case !e.rejected() && err != nil:
			t.Errorf("%s: %v\n%s", e.where, err, e.text)
		}
	}

	// The packaged file: "#key = ..." and "#[table]" lines are settings
	// commented out; "# ..." lines are prose.
	var settings []string
	for _, l := range strings.Split(read(t, filepath.Join(root, "packaging", "config.toml")), "\n") {
		if len(l) > 1 && l[0] == '#' && l[1] != ' ' {
			settings = append(settings, l[1:])
		}
	}
	f, err := config.Parse("packaging/config.toml, uncommented", []byte(strings.Join(settings, "\n")))
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(settings, "\n"))
	}
	if f.Backend != config.DefaultBackend || f.LockFileMode != config.DefaultLockFileMode {
		t.Errorf("packaging/config.toml shows backend %q and lock_file_mode %#o as defaults; they are %q and %#o",
			f.Backend, f.LockFileMode, config.DefaultBackend, config.DefaultLockFileMode)
	}
}

// TestConfigDocumented checks that the configuration reference and the
// man page both name every key, the defaults, the files and the
// environment variables, as the code spells them.
func TestConfigDocumented(t *testing.T) {
	words := []string{
		config.KeyBackend, config.KeyPluginDir, config.KeyLockFileMode,
		"[plugins.", "sha256", "shown_settings", "[[rules]]", "path", "[backends.",
		config.BackendFlock, config.BackendPOSIX, config.BackendOFD, config.BackendAuto,
		`"` + config.DefaultBackend + `"`, `"0600"`,
		config.DefaultSystemFile, "lockmgr/config.toml", pluginhost.SystemDir,
		config.EnvConfig, config.EnvBackend, pluginhost.DirEnv, pluginrpc.LogEnv, "XDG_CONFIG_HOME",
	}
	if config.DefaultLockFileMode != 0o600 {
		t.Errorf("the docs say lock_file_mode defaults to 0600; it is %#o", config.DefaultLockFileMode)
	}
	man := strings.NewReplacer(`\-`, "-", `\(dq`, `"`, `\fI`, "", `\fB`, "", `\fR`, "", "\n.BR ", " ", "\n.B ", " ").Replace(read(t, manPage))
	for name, text := range map[string]string{
		"docs/configuration.rst": read(t, filepath.Join(root, "docs", "configuration.rst")),
		"lockmgr.toml.5":         man,
	} {
		for _, w := range words {
			if !strings.Contains(text, w) {
				t.Errorf("%s does not mention %q", name, w)
			}
		}
	}
}

// TestManPage lints lockmgr.toml(5) and lockmgr-etcd(5) with groff,
// which the packages install as they are.
func TestManPage(t *testing.T) {
	text := read(t, manPage)
	if !strings.Contains(text, "\n.TH LOCKMGR.TOML 5 ") || !strings.Contains(text, "\nlockmgr.toml \\- ") {
		t.Error("lockmgr.toml.5 lacks its .TH line or its NAME")
	}
	if text := read(t, etcdPage); !strings.Contains(text, "\n.TH LOCKMGR\\-ETCD 5 ") || !strings.Contains(text, "\nlockmgr\\-etcd \\- ") {
		t.Error("lockmgr-etcd.5 lacks its .TH line or its NAME")
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skipf("groff is not installed, so the section 5 pages are not linted: %v", err)
	}
	for _, page := range []string{manPage, etcdPage} {
		out, err := exec.Command(groff, "-man", "-ww", "-z", page).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff -man -ww -z %s: %v\n%s", filepath.Base(page), err, out)
		}
	}
}

// TestEtcdPageNamesEveryKey checks lockmgr-etcd(5) against the keys the
// etcd backend accepts (settingKeys in backends/etcd/settings.go): each is
// described as a key of the page, and the page describes no other.
func TestEtcdPageNamesEveryKey(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(root, "backends", "etcd", "settings.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || len(spec.Names) != 1 || spec.Names[0].Name != "settingKeys" || len(spec.Values) != 1 {
			return true
		}
		for _, elt := range spec.Values[0].(*ast.CompositeLit).Elts {
			if lit, ok := elt.(*ast.KeyValueExpr).Key.(*ast.BasicLit); ok {
				k, _ := strconv.Unquote(lit.Value)
				keys = append(keys, k)
			}
		}
		return false
	})
	if len(keys) < 5 {
		t.Fatalf("found only %v in backends/etcd's settingKeys; has it changed shape?", keys)
	}
	// The terms of the KEYS section: ".BR key " or ".BR key ", " key2 ...".
	text := read(t, etcdPage)
	sec := text[strings.Index(text, ".SH KEYS"):]
	sec = sec[:len(".SH KEYS")+strings.Index(sec[len(".SH KEYS"):], "\n.SH ")]
	var described []string
	lines := strings.Split(sec, "\n")
	for i, l := range lines {
		if l != ".TP" || i+1 == len(lines) {
			continue
		}
		for _, w := range regexp.MustCompile(`(?:^\.BR |", " )([a-z_]+)`).FindAllStringSubmatch(lines[i+1], -1) {
			described = append(described, w[1])
		}
	}
	slices.Sort(keys)
	slices.Sort(described)
	if !slices.Equal(keys, described) {
		t.Errorf("lockmgr-etcd.5 describes the keys %v; the etcd backend accepts %v", described, keys)
	}
}

// literalInclude is one ".. literalinclude::" of a Go file, with the
// options that cut it.
type literalInclude struct {
	page, file, startAt, endBefore string
}

var directive = regexp.MustCompile(`^\.\. literalinclude:: (\S+)$`)

func literalIncludes(t *testing.T) []literalInclude {
	var out []literalInclude
	for _, page := range rstFiles(t) {
		lines := strings.Split(read(t, page), "\n")
		for i, l := range lines {
			m := directive.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			li := literalInclude{page: filepath.Base(page), file: filepath.Join(root, "docs", m[1])}
			for _, opt := range lines[i+1:] {
				opt = strings.TrimSpace(opt)
				if !strings.HasPrefix(opt, ":") {
					break
				}
				if v, ok := strings.CutPrefix(opt, ":start-at: "); ok {
					li.startAt = v
				}
				if v, ok := strings.CutPrefix(opt, ":end-before: "); ok {
					li.endBefore = v
				}
			}
			out = append(out, li)
		}
	}
	return out
}

// TestQuotedGoIsWhole checks every piece of Go the docs quote from a file
// by start and end markers: it must be whole declarations, ending with a
// closing brace, and hold at most one Example function, so that moving
// code around in a file shows here, not as a page quoting half of two
// functions.
func TestQuotedGoIsWhole(t *testing.T) {
	n := 0
	for _, li := range literalIncludes(t) {
		if !strings.HasSuffix(li.file, ".go") || li.startAt == "" {
			continue
		}
		n++
		text := read(t, li.file)
		i := strings.Index(text, li.startAt)
		if i < 0 {
			t.Errorf("%s: %q is not in %s", li.page, li.startAt, li.file)
			continue
		}
		text = text[i:]
		if li.endBefore != "" {
			j := strings.Index(text, li.endBefore)
			if j < 0 {
				t.Errorf("%s: %q does not follow %q in %s", li.page, li.endBefore, li.startAt, li.file)
				continue
			}
			text = text[:j]
		}
		text = strings.TrimSpace(text)
		if !strings.HasSuffix(text, "}") {
			t.Errorf("%s quotes %s from %q, which does not end with a whole declaration:\n%s", li.page, li.file, li.startAt, text)
		}
		if c := strings.Count(text, "\nfunc Example") + strings.Count(text[:min(len(text), 12)], "func Example"); c > 1 {
			t.Errorf("%s quotes %d Example functions from %s at %q, want one", li.page, c, li.file, li.startAt)
		}
	}
	if n < 6 {
		t.Errorf("found %d quotes of Go with start markers, want at least 6", n)
	}
}

// testName is a test cited in the docs, in reStructuredText's double
// back-quotes: TestX, or TestX/sub.
var testName = regexp.MustCompile("``(Test[A-Z][A-Za-z0-9]*)(/[A-Za-z0-9*-]+)?``")

// TestCitedTestsExist checks that every test the docs name, such as the
// semantics matrix's TestCloseOther, is a test function of this
// repository, and a named subtest one its file runs.
func TestCitedTestsExist(t *testing.T) {
	funcs := map[string]string{} // test name -> its file's text
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".cache" || d.Name() == "dist" || d.Name() == "_generated") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		text := read(t, path)
		for _, m := range regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9]+)\(`).FindAllStringSubmatch(text, -1) {
			funcs[m[1]] = text
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := 0
	for _, page := range rstFiles(t) {
		for _, m := range testName.FindAllStringSubmatch(read(t, page), -1) {
			cited++
			text, ok := funcs[m[1]]
			if !ok {
				t.Errorf("%s cites %s, which is no test function", filepath.Base(page), m[1])
				continue
			}
			// A subtest is named in its file whole ("OFDPidEINVAL") or, for
			// one per kind, up to the dash ("Against-" + kind).
			sub := strings.TrimPrefix(m[2], "/")
			sub, _, _ = strings.Cut(sub, "*")
			if i := strings.Index(sub, "-"); i >= 0 && !strings.Contains(text, `"`+sub) {
				sub = sub[:i+1]
			}
			if sub != "" && !strings.Contains(text, `"`+sub) {
				t.Errorf("%s cites %s%s, and %s runs no subtest named so", filepath.Base(page), m[1], m[2], m[1])
			}
		}
	}
	if cited < 15 {
		t.Errorf("found %d cited tests, want at least 15; has the markup changed?", cited)
	}
}

// repoPath is a file or directory of the repository cited in the docs.
// A Go name such as core/lockfile.Open is left out (goName).
var (
	repoPath = regexp.MustCompile("``((?:core|cli|backends|examples|packaging|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_])``")
	goName   = regexp.MustCompile(`\.[A-Z][A-Za-z0-9]*$`)
)

// TestCitedPathsExist checks that every repository path the docs cite in
// literal text exists.
func TestCitedPathsExist(t *testing.T) {
	cited := 0
	for _, page := range rstFiles(t) {
		for _, m := range repoPath.FindAllStringSubmatch(read(t, page), -1) {
			path := m[1]
			if goName.MatchString(path) || strings.ContainsAny(path, "*") || strings.Contains(path, "NAME") || strings.HasPrefix(path, "examples/research/ROW") {
				continue
			}
			cited++
			if _, err := os.Stat(filepath.Join(root, path)); err != nil {
				t.Errorf("%s cites %s: %v", filepath.Base(page), path, err)
			}
		}
	}
	if cited < 20 {
		t.Errorf("found %d cited paths, want at least 20", cited)
	}
}

// TestCLIReference runs the generator docs/conf.py runs, the hidden
// `lockmgr rst DIR` of a lockmgr built with the mangen tag, and checks
// that it writes one page per command a user can run, with the label the
// pages link by, and none for the hidden commands. Sphinx itself checks
// the markup, in `make docs`.
func TestCLIReference(t *testing.T) {
	if testing.Short() {
		t.Skip("builds lockmgr")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "-tags", "mangen", "./cli", "rst", dir)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run -tags mangen ./cli rst: %v\n%s", err, out)
	}
	for _, c := range []string{"", "_run", "_lock", "_unlock", "_status", "_backends", "_config", "_version", "_completion"} {
		page := filepath.Join(dir, "lockmgr"+c+".rst")
		if text := read(t, page); !strings.HasPrefix(text, ".. _lockmgr"+c+":\n") {
			t.Errorf("%s does not start with its label", page)
		}
	}
	for _, hidden := range []string{"lockmgr_man.rst", "lockmgr_rst.rst", "lockmgr_help.rst"} {
		if _, err := os.Stat(filepath.Join(dir, hidden)); err == nil {
			t.Errorf("the reference has a page %s for a hidden command", hidden)
		}
	}
	// The exit status table of `lockmgr run --help` is terminal text; it
	// must reach the page as a literal block, not as markup.
	if run := read(t, filepath.Join(dir, "lockmgr_run.rst")); !strings.Contains(run, "::\n\n  Take a lock on FILE") || !strings.Contains(run, "\n    127      the command was not found") {
		t.Errorf("lockmgr_run.rst does not carry the help text as a literal block:\n%s", run)
	}
}
