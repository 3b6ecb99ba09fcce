package main

import (
	"bufio"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestLostHolderExitsPromptly: a `lockmgr run` whose lock is lost while
// etcd is out of reach stops its command, and exits as soon as the
// command has: it does not wait on the cluster (a revoke that cannot get
// through) to exit. dial_timeout is 20s here, which a wait on the cluster
// would take; the bound of 5s from the command's end to lockmgr's is
// generous for a loaded machine (nothing in it needs the network) and
// well short of that.
func TestLostHolderExitsPromptly(t *testing.T) {
	bin := lockmgrBinary(t)
	srv, err := startEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	name := uniqueName("lost-exit")
	run := exec.Command(filepath.Join(bin, "lockmgr"), "run", "--backend", "etcd", name, "--", "sh", "-c",
		`echo locked; trap 'echo terminated; exit 0' TERM; while :; do sleep 0.05; done`)
	run.Env = lockmgrEnv(t, "LOCKMGR_ETCD_ENDPOINTS="+srv.Endpoint(), "LOCKMGR_ETCD_TTL=2", "LOCKMGR_ETCD_DIAL_TIMEOUT=20")
	var stderr syncBuffer
	run.Stderr = &stderr
	stdout, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	defer func() {
		run.Process.Kill()
		if t.Failed() {
			t.Logf("lockmgr run's stderr:\n%s", stderr.String())
		}
	}()
	lines := make(chan string, 4)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	next := func(d time.Duration) string {
		t.Helper()
		select {
		case line := <-lines:
			return line
		case <-time.After(d):
			t.Fatalf("the command said nothing in %v", d)
		}
		return ""
	}
	if line := next(30 * time.Second); line != "locked" {
		t.Fatalf("the command said %q, want locked", line)
	}
	srv.Stop()
	if line := next(30 * time.Second); line != "terminated" {
		t.Fatalf("after etcd stopped the command said %q, want terminated", line)
	}
	terminated := time.Now()
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 75 {
			t.Errorf("lockmgr run after the loss: %v, want exit status 75 (lock lost)", err)
		}
		t.Logf("lockmgr run exited %v after its command was told to stop", time.Since(terminated))
		if d := time.Since(terminated); d > 5*time.Second {
			t.Errorf("lockmgr run exited %v after its command was told to stop: it waited on the cluster", d)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("lockmgr run still running a minute after its command was told to stop")
	}
}
