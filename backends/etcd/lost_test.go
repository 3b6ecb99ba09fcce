package main

import (
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
	r := startLockmgr(t, run)
	if line := r.next(t, 30*time.Second); line != "locked" {
		t.Fatalf("the command said %q, want locked", line)
	}
	srv.Stop()
	if line := r.next(t, 30*time.Second); line != "terminated" {
		t.Fatalf("after etcd stopped the command said %q, want terminated", line)
	}
	terminated := time.Now()
	if code := r.exitCode(t, time.Minute); code != 75 {
		t.Errorf("lockmgr run after the loss: exit status %d, want 75 (lock lost)", code)
	}
	t.Logf("lockmgr run exited %v after its command was told to stop", time.Since(terminated))
	if d := time.Since(terminated); d > 5*time.Second {
		t.Errorf("lockmgr run exited %v after its command was told to stop: it waited on the cluster", d)
	}
}
