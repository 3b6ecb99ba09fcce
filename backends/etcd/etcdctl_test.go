package main

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
)

// etcdctlLock is `etcdctl lock NAME` running: it prints its key once it
// holds the lock, and lets go when it gets SIGTERM.
type etcdctlLock struct {
	cmd   *exec.Cmd
	lines chan string
}

func startEtcdctlLock(t *testing.T, etcdctl, name string) *etcdctlLock {
	t.Helper()
	cmd := exec.Command(etcdctl, "--endpoints="+sharedEtcd.Endpoint(), "lock", name)
	cmd.Env = append(cmd.Environ(), "ETCDCTL_API=3")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &etcdctlLock{cmd: cmd, lines: make(chan string, 4)}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			l.lines <- s.Text()
		}
		close(l.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("etcdctl's stderr:\n%s", stderr.String())
		}
	})
	return l
}

// key waits for etcdctl to say it holds the lock, and returns its key.
func (l *etcdctlLock) key(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-l.lines:
		if !ok {
			t.Fatal("etcdctl lock exited without taking the lock")
		}
		return line
	case <-time.After(d):
		t.Fatalf("etcdctl lock did not take the lock in %v", d)
	}
	return ""
}

// unlock sends SIGTERM, on which etcdctl releases the lock and exits.
func (l *etcdctlLock) unlock(t *testing.T) {
	t.Helper()
	l.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { l.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("etcdctl lock still running 10s after SIGTERM")
	}
}

// TestEtcdctlLock: with prefix "", a lockmgr lock on NAME and the real
// `etcdctl lock NAME` exclude each other, both ways, for a name without
// "/" or "%"; for one with a slash, etcdctl takes lockmgr's lock by the
// name its keys spell (job%2Fx for job/x), and etcdctl's own job/x, which
// falls in job's key range, blocks lockmgr's job as it blocks etcdctl's.
func TestEtcdctlLock(t *testing.T) {
	etcdctl, err := exec.LookPath("etcdctl")
	if err != nil {
		t.Skip("etcdctl not found (Debian: apt-get install etcd-client): ", err)
	}
	b := newTestBackend(t, map[string]any{"prefix": ""})
	name := plainName("etcdctl")

	// etcdctl holds: lockmgr is refused, sees who holds, and gets it after.
	ctl := startEtcdctlLock(t, etcdctl, name)
	key := ctl.key(t, 20*time.Second)
	if !strings.HasPrefix(key, name+"/") {
		t.Fatalf("etcdctl holds key %q, not under %s/ as the package comment says", key, name)
	}
	if _, err := b.Acquire(context.Background(), request(name, false)); !errors.Is(err, backend.ErrBusy) {
		t.Fatalf("lockmgr lock while etcdctl holds %s: %v, want ErrBusy", name, err)
	}
	st, err := b.Inspect(context.Background(), name)
	if err != nil || len(st.Holders) != 1 || !strings.Contains(st.Holders[0].Detail, "key "+key) {
		t.Fatalf("Inspect while etcdctl holds: %+v, %v; want etcdctl's key %s as the holder", st, err, key)
	}
	ctl.unlock(t)
	held, err := b.Acquire(timeoutContext(t, 5*time.Second), request(name, true))
	if err != nil {
		t.Fatalf("lockmgr lock once etcdctl let go: %v", err)
	}

	// lockmgr holds: etcdctl waits, and gets it when lockmgr lets go.
	ctl = startEtcdctlLock(t, etcdctl, name)
	select {
	case line := <-ctl.lines:
		t.Fatalf("etcdctl lock said %q while lockmgr held the lock", line)
	case <-time.After(time.Second):
	}
	if err := b.Release(context.Background(), held.ID); err != nil {
		t.Fatal(err)
	}
	if key := ctl.key(t, 5*time.Second); !strings.HasPrefix(key, name+"/") {
		t.Fatalf("etcdctl holds key %q, not under %s/", key, name)
	}
	ctl.unlock(t)

	// A name with a slash: lockmgr's child/x is etcdctl's child%2Fx.
	child := name + "/x"
	if held, err = b.Acquire(context.Background(), request(child, false)); err != nil {
		t.Fatal(err)
	}
	ctl = startEtcdctlLock(t, etcdctl, name+"%2Fx")
	select {
	case line := <-ctl.lines:
		t.Fatalf("etcdctl lock %s%%2Fx said %q while lockmgr held %s", name, line, child)
	case <-time.After(time.Second):
	}
	if err := b.Release(context.Background(), held.ID); err != nil {
		t.Fatal(err)
	}
	if key := ctl.key(t, 5*time.Second); !strings.HasPrefix(key, name+"%2Fx/") {
		t.Fatalf("etcdctl holds key %q, not under %s%%2Fx/", key, name)
	}
	ctl.unlock(t)

	// etcdctl's own child/x is not lockmgr's child/x, and lies in the key
	// range of name, so it blocks lockmgr's name, as it blocks etcdctl's.
	ctl = startEtcdctlLock(t, etcdctl, child)
	ctl.key(t, 20*time.Second)
	if held, err = b.Acquire(context.Background(), request(child, false)); err != nil {
		t.Fatalf("lockmgr lock %s while etcdctl holds its own %s: %v, want it granted", child, child, err)
	}
	b.Release(context.Background(), held.ID)
	if _, err := b.Acquire(context.Background(), request(name, false)); !errors.Is(err, backend.ErrBusy) {
		t.Fatalf("lockmgr lock %s while etcdctl holds %s: %v, want ErrBusy", name, child, err)
	}
	ctl.unlock(t)
}
