package docs_test

// The docs' examples that can run, run here: the quickstart's two
// terminals and its status line, the environment the flock(1) table and
// the Environment section of cli.rst name, the flock link set-ups of
// cli.rst under the PATH cron, systemd and a login shell give, and the
// crontab lines of every page.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lockmgr/lockmgr/core/config"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// lockmgrBin builds lockmgr and its flock and posix plugins, once, into
// a directory where lockmgr finds the plugins beside it, and returns it.
func lockmgrBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds lockmgr")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "lockmgr-docs-")
		if binErr != nil {
			return
		}
		for _, b := range [][2]string{{"./cli", "lockmgr"}, {"./backends/flock", "lockmgr-backend-flock"}, {"./backends/posix", "lockmgr-backend-posix"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b[1]), b[0])
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("go build %s: %v\n%s", b[0], err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

// isolated is an environment with only the plugins beside lockmgr and no
// configuration file of the machine's.
func isolated(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOCKMGR_") {
			env = append(env, kv)
		}
	}
	return append(append(env, "LOCKMGR_CONFIG="+os.DevNull), extra...)
}

// consoleBlock returns the body of the first ".. code-block:: console"
// of page that holds the line want, unindented.
func consoleBlock(t *testing.T, page, want string) []string {
	t.Helper()
	lines := strings.Split(read(t, filepath.Join(root, "docs", page)), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != ".. code-block:: console" {
			continue
		}
		var body []string
		for i++; i < len(lines) && (lines[i] == "" || strings.HasPrefix(lines[i], " ")); i++ {
			if lines[i] != "" {
				body = append(body, strings.TrimPrefix(lines[i], "   "))
			}
		}
		if slices.Contains(body, want) {
			return body
		}
	}
	t.Fatalf("docs/%s has no console block with %q", page, want)
	return nil
}

// TestQuickstartTwoTerminals runs the quickstart's `go run
// ./examples/twoterm -both` and compares what it prints with the page, up
// to pids, the time B waited and the lock file's name.
func TestQuickstartTwoTerminals(t *testing.T) {
	bin := lockmgrBin(t)
	const cmdLine = "$ go run ./examples/twoterm -both"
	want := consoleBlock(t, "quickstart.rst", cmdLine)[1:]
	exe := filepath.Join(t.TempDir(), "twoterm")
	if out, err := exec.Command("go", "build", "-o", exe, "../twoterm").CombinedOutput(); err != nil {
		t.Fatalf("go build twoterm: %v\n%s", err, out)
	}
	lock := filepath.Join(t.TempDir(), "lockmgr-twoterm.lock")
	cmd := exec.Command(exe, "-both", "-hold", "100ms", "-plugin-dir", bin, lock)
	cmd.Env = isolated()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("twoterm -both: %v\n%s", err, out)
	}
	norm := strings.NewReplacer(lock, "/tmp/lockmgr-twoterm.lock")
	pid := regexp.MustCompile(`pid \d+`)
	after := regexp.MustCompile(`after \d+\.\ds`)
	clean := func(l string) string {
		return after.ReplaceAllString(pid.ReplaceAllString(norm.Replace(l), "pid N"), "after Ts")
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := range got {
		got[i] = clean(got[i])
	}
	for i := range want {
		want[i] = clean(want[i])
	}
	if !slices.Equal(got, want) {
		t.Errorf("docs/quickstart.rst shows, after %q:\n%s\nbut it prints:\n%s", cmdLine, strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

// TestQuickstartStatus checks the shape of the quickstart's `lockmgr
// status` sample against what status prints for a file that `lockmgr
// run` holds, with the default backend.
func TestQuickstartStatus(t *testing.T) {
	bin := lockmgrBin(t)
	block := consoleBlock(t, "quickstart.rst", "$ lockmgr status /run/lock/sync.lock")
	var want []string
	for _, l := range block[1:] {
		if strings.HasPrefix(l, "$ ") {
			break
		}
		want = append(want, l)
	}
	dir := t.TempDir()
	lock := filepath.Join(dir, "sync.lock")
	script := filepath.Join(dir, "sync.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n\"$LM\" status \"$LOCKMGR_LOCK_FILE\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "lockmgr"), "run", lock, "--", script)
	cmd.Env = isolated("LM=" + filepath.Join(bin, "lockmgr"))
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("lockmgr status of a held file: %v (want exit 1)\n%s", err, out)
	}
	pid := regexp.MustCompile(`pid \d+`)
	got := strings.Split(strings.TrimSpace(pid.ReplaceAllString(strings.ReplaceAll(string(out), lock, "/run/lock/sync.lock"), "pid N")), "\n")
	for i := range want {
		want[i] = pid.ReplaceAllString(want[i], "pid N")
	}
	if !slices.Equal(got, want) {
		t.Errorf("docs/quickstart.rst shows lockmgr status as:\n%s\nbut it prints:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

// TestCommandEnvDocumented runs a command under `lockmgr run` and checks
// that the LOCKMGR_ variables it gets are the ones cli.rst names for it,
// in the flock(1) table and in the Environment section's outputs, and
// that LOCKMGR_BACKEND, an input, reaches it as it was given.
func TestCommandEnvDocumented(t *testing.T) {
	bin := lockmgrBin(t)
	lock := filepath.Join(t.TempDir(), "env.lock")
	cmd := exec.Command(filepath.Join(bin, "lockmgr"), "run", "-b", "posix", lock, "--", "env")
	cmd.Env = isolated("LOCKMGR_BACKEND=flock")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lockmgr run ... env: %v", err)
	}
	var set []string
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "LOCKMGR_") {
			switch k {
			case config.EnvConfig:
				continue // the test's own
			case config.EnvBackend:
				if v != "flock" {
					t.Errorf("the command got %s=%s; the docs say it passes on what lockmgr got, flock", k, v)
				}
				continue
			}
			set = append(set, k)
		}
	}
	// The fencing token comes only from backends that give one.
	want := slices.DeleteFunc(config.OutputEnv(), func(k string) bool { return k == config.EnvFencingToken })
	slices.Sort(set)
	slices.Sort(want)
	if !slices.Equal(set, want) {
		t.Fatalf("lockmgr run sets %v for its command; config.OutputEnv() less the fencing token is %v", set, want)
	}

	text := read(t, filepath.Join(root, "docs", "cli.rst"))
	// The row of the flock(1) table, which runs over two lines.
	i := strings.Index(text, "\nthe command's environment ")
	if i < 0 {
		t.Fatal("docs/cli.rst has no \"the command's environment\" row")
	}
	row := text[i : i+strings.Index(text[i+1:], "\n``")+1]
	// The outputs of the Environment section.
	j := strings.Index(text, "Outputs, set by ``lockmgr run``")
	k := strings.Index(text[j:], "\nWith flock and ofd")
	if j < 0 || k < 0 {
		t.Fatal("docs/cli.rst has no Outputs list in its Environment section")
	}
	// Less the note on what earlier builds set.
	outputs := regexp.MustCompile(`\(Earlier builds[^)]*\)`).ReplaceAllString(text[j:j+k], "")
	name := regexp.MustCompile("``(LOCKMGR_[A-Z_]+)``")
	for what, s := range map[string]string{"the flock(1) table's environment row": row, "the Environment section's outputs": outputs} {
		var named []string
		for _, m := range name.FindAllStringSubmatch(s, -1) {
			if !slices.Contains(named, m[1]) {
				named = append(named, m[1])
			}
		}
		slices.Sort(named)
		if all := config.OutputEnv(); !slices.Equal(named, slices.Sorted(slices.Values(all))) {
			t.Errorf("docs/cli.rst, %s, names %v; lockmgr run sets %v", what, named, all)
		}
	}
}

// TestFlockLinkReach runs the flock link set-ups of cli.rst ("Where the
// link reaches") in a scratch root, with util-linux's flock as its
// /usr/bin/flock, and checks which flock answers under the PATH each kind
// of job gets: cron's /usr/bin:/bin reaches no link until the crontab's
// PATH line the docs give; systemd's and a login shell's reach the
// host-wide link; the service's drop-in reaches its own; a full path
// always gets util-linux's.
func TestFlockLinkReach(t *testing.T) {
	bin := lockmgrBin(t)
	utilFlock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("util-linux flock(1) is not installed (apt-get install util-linux)")
	}
	r := t.TempDir()
	for _, d := range []string{"usr/bin", "bin", "usr/local/bin", "usr/local/sbin", "usr/sbin", "usr/lib/lockmgr"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(r, name)); err != nil {
			t.Fatal(err)
		}
	}
	link(filepath.Join(bin, "lockmgr"), "usr/bin/lockmgr")
	link(filepath.Join(bin, "lockmgr-backend-flock"), "usr/lib/lockmgr/lockmgr-backend-flock")
	link(utilFlock, "usr/bin/flock")
	for _, tool := range []string{"sh", "env", "true"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		link(p, "bin/"+tool)
		link(p, "usr/bin/"+tool) // merged /usr, as systemd's PATH expects
	}

	// The docs' commands and PATH lines, rooted in r.
	text := read(t, filepath.Join(root, "docs", "cli.rst"))
	start := strings.Index(text, "Where the link reaches")
	if start < 0 {
		t.Fatal(`docs/cli.rst has no "Where the link reaches" section`)
	}
	text = text[start:]
	text = text[:strings.Index(text, "``examples/docs/run_test.go``")]
	reroot := regexp.MustCompile(`(^|[\s=:])/(usr|bin)\b`)
	rooted := func(l string) string { return reroot.ReplaceAllString(l, "${1}"+r+"/$2") }
	lineWith := func(prefix string) string {
		for _, l := range strings.Split(text, "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("the section has no line starting %q", prefix)
		return ""
	}
	run := func(cmdline string) {
		if out, err := exec.Command("sh", "-c", cmdline).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmdline, err, out)
		}
	}
	// For one service, then for the whole host.
	run(rooted(lineWith("install -d /usr/local/lib/lockmgr-flock")))
	run(rooted(lineWith("ln -s /usr/bin/lockmgr /usr/local/lib/lockmgr-flock/flock")))
	serviceEnv := rooted(strings.TrimPrefix(lineWith("Environment=PATH="), "Environment="))
	cronWithLine := rooted(lineWith("PATH=/usr/local/bin:/usr/bin:/bin"))

	which := func(path string, argv0 string) string {
		cmd := exec.Command(filepath.Join(r, "bin/env"), "-i", path, "LOCKMGR_CONFIG=/dev/null", "sh", "-c", argv0+" -V")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Sprintf("error %v: %s", err, out)
		}
		switch {
		case bytes.Contains(out, []byte("from lockmgr")):
			return "lockmgr"
		case bytes.Contains(out, []byte("util-linux")):
			return "util-linux"
		}
		return string(out)
	}
	cron := "PATH=" + r + "/usr/bin:" + r + "/bin"
	systemd := "PATH=" + r + "/usr/local/sbin:" + r + "/usr/local/bin:" + r + "/usr/sbin:" + r + "/usr/bin"
	login := "PATH=" + r + "/usr/local/bin:" + r + "/usr/bin:" + r + "/bin"
	check := func(when, path, argv0, want string) {
		t.Helper()
		if got := which(path, argv0); got != want {
			t.Errorf("%s: flock is %s's, want %s's", when, got, want)
		}
	}
	check("a service with the drop-in's PATH", serviceEnv, "flock", "lockmgr")
	check("a service without it, before the host-wide link", systemd, "flock", "util-linux")
	run(rooted(lineWith("ln -s /usr/bin/lockmgr /usr/local/bin/flock")))
	check("cron's own PATH, with the host-wide link", cron, "flock", "util-linux")
	check("cron with the crontab's PATH line", cronWithLine, "flock", "lockmgr")
	check("systemd's default PATH", systemd, "flock", "lockmgr")
	check("a login shell's PATH", login, "flock", "lockmgr")
	check("a full path", login, r+"/usr/bin/flock", "util-linux")
}

// TestCrontabLines checks every crontab line of the docs ("*/5 * * * *
// command"): cron sets only HOME, LOGNAME, SHELL and PATH
// (/usr/bin:/bin), so a job must use no other variable, and lockmgr must
// be on that PATH, as the packages install it.
func TestCrontabLines(t *testing.T) {
	crontab := regexp.MustCompile(`^\s*(?:[-*/,0-9]+\s+){5}(.*)$`)
	variable := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	n := 0
	for _, page := range rstFiles(t) {
		for i, l := range strings.Split(read(t, page), "\n") {
			m := crontab.FindStringSubmatch(l)
			if m == nil || !strings.Contains(m[1], "lockmgr") {
				continue
			}
			n++
			for _, v := range variable.FindAllStringSubmatch(m[1], -1) {
				if !slices.Contains([]string{"HOME", "LOGNAME", "SHELL", "PATH"}, v[1]) {
					t.Errorf("%s:%d: a cron job does not have $%s: %s", filepath.Base(page), i+1, v[1], strings.TrimSpace(l))
				}
			}
		}
	}
	if n < 2 {
		t.Errorf("found %d crontab lines in the docs, want at least 2; has the markup changed?", n)
	}
}
