package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/locktest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// lockmgrBinaries is the directory of the lockmgr command and this
// plugin beside it, built once for every test that runs them.
var lockmgrBinaries struct {
	once sync.Once
	dir  string
	err  error
}

// lockmgrBinary builds the real lockmgr command, with this backend's
// plugin beside it, where lockmgr looks for its plugins first, and
// returns their directory. TestMain removes it.
func lockmgrBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the lockmgr command")
	}
	lockmgrBinaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "lockmgr-etcd-bin-")
		if err != nil {
			lockmgrBinaries.err = err
			return
		}
		lockmgrBinaries.dir = dir
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "lockmgr"), "github.com/lockmgr/lockmgr/cli")
		if out, err := build.CombinedOutput(); err != nil {
			lockmgrBinaries.err = fmt.Errorf("building lockmgr: %v\n%s", err, out)
			return
		}
		lockmgrBinaries.err = locktest.BuildPlugin(".", backendName, dir)
	})
	if lockmgrBinaries.err != nil {
		t.Fatal(lockmgrBinaries.err)
	}
	return lockmgrBinaries.dir
}

// TestLockmgrRun runs the real `lockmgr run` with this backend, as a user
// would: the fencing token reaches the command, a second run is refused
// while the first holds, and when etcd goes away the command is stopped
// (--on-lost term) and lockmgr says the lock was lost. The CLI is built
// here rather than tested in the cli module, which must not depend on
// etcd.
func TestLockmgrRun(t *testing.T) {
	bin := lockmgrBinary(t)
	srv, err := startEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	env := []string{
		"LOCKMGR_ETCD_ENDPOINTS=" + srv.Endpoint(), "LOCKMGR_ETCD_TTL=2", "LOCKMGR_ETCD_DIAL_TIMEOUT=1",
		"XDG_CONFIG_HOME=" + t.TempDir(), // no user configuration of the machine's
	}
	name := uniqueName("run")
	lockmgrCmd := func(args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, "lockmgr"), args...)
		cmd.Env = append(cmd.Environ(), env...)
		return cmd
	}

	run := lockmgrCmd("run", "--backend", "etcd", "--on-lost", "term", name, "--", "sh", "-c",
		`echo "token=$LOCKMGR_FENCING_TOKEN"; trap 'echo terminated; exit 0' TERM; while :; do sleep 0.1; done`)
	r := startLockmgr(t, run)

	line := r.next(t, 30*time.Second)
	token, err := strconv.ParseInt(strings.TrimPrefix(line, "token="), 10, 64)
	if err != nil || token <= 0 {
		t.Fatalf("the command said %q, want token=N with the fencing token", line)
	}
	cli := rawClient(t, srv.Endpoint())
	resp, err := cli.Get(context.Background(), keyPrefix("/lockmgr/", name)+"/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != token {
		t.Fatalf("token %d, but the lock's keys are %v (%v): want one, created at revision %d", token, resp, err, token)
	}

	// A second run is refused while the first holds.
	second := lockmgrCmd("run", "--backend", "etcd", "-n", name, "--", "true")
	out, err := second.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second lockmgr run -n while the first holds: %v, want exit status 1\n%s", err, out)
	}

	// status finds the holder under the same key, slashes and all.
	out, err = lockmgrCmd("status", "-b", "etcd", name).CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "key "+keyPrefix("/lockmgr/", name)+"/") {
		t.Fatalf("lockmgr status -b etcd %s while it is held: %v, want exit status 1 and its key\n%s", name, err, out)
	}
	// A longer name is another lock, not a part of this one.
	if out, err := lockmgrCmd("run", "--backend", "etcd", "-n", name+"/x", "--", "true").CombinedOutput(); err != nil {
		t.Fatalf("lockmgr run -n %s/x while %s is held: %v, want it to run\n%s", name, name, err, out)
	}

	stopped := time.Now()
	srv.Stop()
	if line := r.next(t, 20*time.Second); line != "terminated" {
		t.Fatalf("after etcd stopped the command said %q, want terminated (SIGTERM from --on-lost term)", line)
	}
	t.Logf("the command was sent SIGTERM %v after etcd stopped (TTL 2s)", time.Since(stopped))
	if code := r.exitCode(t, 20*time.Second); code != 75 {
		t.Fatalf("lockmgr run after the loss: exit status %d, want 75 (lock lost)\n%s", code, r.stderr.String())
	}
	said := strings.TrimSpace(r.stderr.String())
	want := "lockmgr: lost the lock on " + name + " (etcd): the backend lost it"
	if !strings.HasPrefix(said, want) || strings.Count(said, "\n") != 0 {
		t.Errorf("lockmgr run said %q, want one line starting %q", said, want)
	}
}

// lockmgrEnv is the environment of a lockmgr the tests run: no user
// configuration of the machine's, and env added.
func lockmgrEnv(t *testing.T, env ...string) []string {
	return append(os.Environ(), append([]string{"XDG_CONFIG_HOME=" + t.TempDir()}, env...)...)
}

// TestUnreachableExit: with no etcd at the endpoint, `lockmgr run -b etcd`
// exits 69 (the lock service unavailable) with one line that names the
// backend and the endpoint, without the endpoint's password, raw gRPC
// status or a stack; with -n, with no flag, and with -w 3, a wait shorter
// than the cluster's silence, which must not read as "the lock is held"
// (exit 1), as a cron script would take it.
func TestUnreachableExit(t *testing.T) {
	bin := lockmgrBinary(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-pw"
	env := lockmgrEnv(t, fmt.Sprintf("LOCKMGR_ETCD_ENDPOINTS=http://alice:%s@127.0.0.1:%d", secret, port),
		// The default, stated: longer than -w 3, as the cluster's silence is.
		"LOCKMGR_ETCD_DIAL_TIMEOUT=5")
	for _, flags := range [][]string{{"-n"}, {"-w", "3"}, nil} {
		args := append(append([]string{"run", "-b", "etcd"}, flags...), uniqueName("unreachable"), "--", "true")
		cmd := exec.Command(filepath.Join(bin, "lockmgr"), args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != exitUnavailableCode {
			t.Errorf("lockmgr %s with no etcd: %v after %v, want exit status 69; stderr %q", strings.Join(flags, " "), err, took, stderr.String())
			continue
		}
		line := stderr.String()
		switch {
		case strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n"):
			t.Errorf("lockmgr %s with no etcd said %q, want one line", strings.Join(flags, " "), line)
		case !strings.HasPrefix(line, "lockmgr: ") || !strings.Contains(line, "(etcd)") || !strings.Contains(line, fmt.Sprintf("127.0.0.1:%d", port)):
			t.Errorf("lockmgr %s with no etcd said %q, want a line starting \"lockmgr: \" that names the backend and the endpoint", strings.Join(flags, " "), line)
		case strings.Contains(line, secret) || strings.Contains(line, "rpc error") || strings.Contains(line, "code =") || strings.Contains(line, "goroutine"):
			t.Errorf("lockmgr %s with no etcd said %q: a password, raw gRPC status or a stack", strings.Join(flags, " "), line)
		}
		t.Logf("lockmgr %s: exit 69 after %v: %s", strings.Join(flags, " "), took.Round(time.Millisecond), strings.TrimSpace(line))
	}
}

// exitUnavailableCode is lockmgr's documented exit status for a lock
// service that cannot be reached (EX_UNAVAILABLE).
const exitUnavailableCode = 69
