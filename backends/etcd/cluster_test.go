package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// leaderTrials is how many times TestLeaderLossKeepsLock kills a leader.
// Each trial takes about five seconds; the default keeps the test near a
// minute, and a soak asks for more (-etcd.leader-trials=100).
var leaderTrials = flag.Int("etcd.leader-trials", 10, "how many etcd leaders TestLeaderLossKeepsLock kills")

// Timing of the test cluster: an election after 500ms without a
// heartbeat, and leases six times as long, the proportions of a cluster
// with etcd's default election timeout (1s) and a lease of 6s. (Leases
// of 2s, four times, left too little room on a loaded machine once a
// lease is counted from when its renewal was sent: 12 of 60 locks were
// declared lost with a quorum left, at load 15.)
const (
	clusterTick = 50 * time.Millisecond
	clusterTTL  = 3 * time.Second
)

// leader returns the member the live members agree leads the cluster,
// waiting for one to be elected.
func (c *etcdCluster) leader(t *testing.T) *etcdServer {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, m := range c.members {
			if m.stopped() {
				continue
			}
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: time.Second, Logger: zap.NewNop()})
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.Endpoint())
			cancel()
			cli.Close()
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no member of the cluster leads it 20s after asking")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testCluster starts a three-member cluster with the test timing. The
// test's cleanup stops it, after the backends the test makes on it are
// closed: their cleanups are registered later, and run first.
func testCluster(t *testing.T) *etcdCluster {
	t.Helper()
	c, err := startCluster(t.TempDir(), 3, clusterTick)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// clusterBackend returns a backend on the members at endpoints, with the
// cluster's TTL and a dial timeout of a second, shorter than the request
// etcd answers only when its request timeout expires; the test's cleanup
// closes it.
func clusterBackend(t *testing.T, endpoints []string) *Backend {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{
		"endpoints": strings.Join(endpoints, ","), "ttl": clusterTTL.String(), "dial_timeout": "1s",
	})
	b := newBackend(os.Getpid())
	if err := b.Configure(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestLeaderLossKeepsLock: killing the leader of a three-member cluster,
// which leaves a quorum, costs no lock. etcd's new leader extends every
// lease, so a holder that declared its lock lost would stop a job for
// nothing, and a rolling restart of etcd would stop every job. Each trial
// takes locks on three clients, a few at different phases of their
// keep-alives, kills the leader at a random moment, and watches the locks
// for longer than their TTL; then it checks on the cluster that every
// lock's key is still there, and restarts the killed member.
func TestLeaderLossKeepsLock(t *testing.T) {
	if testing.Short() {
		t.Skip("kills etcd leaders for a minute")
	}
	c := testCluster(t)
	var backends []*Backend
	for range 3 {
		backends = append(backends, clusterBackend(t, c.Endpoints()))
	}
	cli := rawClient(t, c.Endpoints()...)
	const perBackend = 2
	type heldLock struct {
		b    *Backend
		name string
		held backend.Held
	}
	var total, lost int
	for trial := range *leaderTrials {
		var locks []heldLock
		for i := range perBackend {
			for j, b := range backends {
				name := uniqueName(fmt.Sprintf("leader-%d-%d-%d", trial, j, i))
				held, err := b.Acquire(timeoutContext(t, 20*time.Second), request(name, false))
				if err != nil {
					t.Fatalf("trial %d: lock %s: %v", trial, name, err)
				}
				locks = append(locks, heldLock{b, name, held})
				// Spread the locks' keep-alives over their period.
				time.Sleep(clusterTTL / 3 / (perBackend * 3))
			}
		}
		leader := c.leader(t)
		time.Sleep(rand.N(clusterTTL / 2))
		leader.Stop()
		killed := time.Now()
		// A lock lost for want of renewals is lost within a TTL of the
		// last one, which came before the kill.
		lostNow := map[int]time.Duration{}
		for watch := time.After(clusterTTL + time.Second); ; {
			for i, l := range locks {
				if _, ok := lostNow[i]; !ok && isClosed(l.held.Lost) {
					lostNow[i] = time.Since(killed)
				}
			}
			select {
			case <-time.After(10 * time.Millisecond):
				continue
			case <-watch:
			}
			break
		}
		total += len(locks)
		lost += len(lostNow)
		for i, after := range lostNow {
			t.Errorf("trial %d: lock %s declared lost %v after the leader %s was killed, with a quorum left", trial, locks[i].name, after, leader.name)
		}
		// What the cluster says: every lock's key is still there, on a
		// live lease.
		for i, l := range locks {
			if _, ok := lostNow[i]; ok {
				l.b.Release(context.Background(), l.held.ID)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := cli.Get(ctx, keyPrefix("/lockmgr/", l.name)+"/", clientv3.WithPrefix())
			cancel()
			if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != int64(l.held.FencingToken) {
				t.Errorf("trial %d: lock %s not lost, but its keys are %v (%v): want its holder's key, revision %d", trial, l.name, resp, err, l.held.FencingToken)
			}
			if err := l.b.Release(context.Background(), l.held.ID); err != nil {
				t.Errorf("trial %d: release of %s: %v", trial, l.name, err)
			}
		}
		if err := leader.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d trials: %d of %d locks declared lost when the leader was killed", *leaderTrials, lost, total)
}

// TestLostWithoutQuorum: the other side of the rule. With two of three
// members killed, no member can renew a lease, and a holder declares its
// lock lost once no member has confirmed the lease for a full TTL.
func TestLostWithoutQuorum(t *testing.T) {
	c := testCluster(t)
	b := clusterBackend(t, c.Endpoints())
	held, err := b.Acquire(timeoutContext(t, 20*time.Second), request(uniqueName("quorum"), false))
	if err != nil {
		t.Fatal(err)
	}
	c.members[0].Stop()
	c.members[1].Stop()
	stopped := time.Now()
	select {
	case <-held.Lost:
		t.Logf("lost fired %v after the quorum was gone (TTL %v)", time.Since(stopped), clusterTTL)
	case <-time.After(5 * clusterTTL):
		t.Fatalf("lost did not fire %v after the quorum was gone (TTL %v)", 5*clusterTTL, clusterTTL)
	}
	if err := b.Release(context.Background(), held.ID); !errors.Is(err, backend.ErrLost) {
		t.Errorf("Release after the loss: %v, want ErrLost", err)
	}
}
