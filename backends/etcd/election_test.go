package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// survivorsBackend returns a clusterBackend on every member of c but
// gone. It has taken and given back a lock already, so that it is
// connected: what follows measures the election, not a dial.
func survivorsBackend(t *testing.T, c *etcdCluster, gone *etcdServer) *Backend {
	t.Helper()
	b := clusterBackend(t, c.survivors(gone))
	held, err := b.Acquire(timeoutContext(t, 20*time.Second), request(uniqueName("warm-up"), false))
	if err != nil {
		t.Fatalf("warming up on the survivors: %v", err)
	}
	if err := b.Release(context.Background(), held.ID); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkHolder checks on the cluster, through the survivors, that name is
// held by the key whose create revision is token.
func checkHolder(t *testing.T, c *etcdCluster, gone *etcdServer, name string, token uint64) {
	t.Helper()
	cli := rawClient(t, c.survivors(gone)...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, keyPrefix("/lockmgr/", name)+"/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil || len(resp.Kvs) == 0 || uint64(resp.Kvs[0].CreateRevision) != token {
		t.Fatalf("granted %s with token %d, but its keys are %v (%v)", name, token, resp, err)
	}
}

// TestWaitRidesThroughElection: a Lock with a 30s deadline, asked of the
// survivors just as the leader of a three-member cluster is killed, lands
// in the election. The members still follow the dead leader for an
// election timeout, so the lease's grant is forwarded to it and lost, and
// etcd answers it only when its request timeout expires (5s plus two
// election timeouts), with a retryable "request timed out". The cluster
// has a new leader long before the deadline, so the lock is granted: the
// wait does not give up at dial_timeout (1s here).
func TestWaitRidesThroughElection(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out an etcd request timeout")
	}
	c := testCluster(t)
	leader := c.leader(t)
	b := survivorsBackend(t, c, leader)
	name := uniqueName("election-wait")
	leader.Stop()
	killed := time.Now()
	held, err := b.Acquire(timeoutContext(t, 30*time.Second), request(name, true))
	if err != nil {
		t.Fatalf("Lock with a 30s deadline, from a client of the survivors, as the leader was killed: %v; want it granted once a leader is elected", err)
	}
	t.Logf("granted %v after the leader was killed", time.Since(killed))
	checkHolder(t, c, leader, name, held.FencingToken)
	if err := b.Release(context.Background(), held.ID); err != nil {
		t.Fatal(err)
	}
}

// TestTryRidesThroughElection: a TryLock that lands in an election waits
// for the cluster's answer, as a waiter does, rather than fail at
// dial_timeout; and its answer is the truth: granted when the lock is
// free, busy when it is held, never busy for want of an answer.
func TestTryRidesThroughElection(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out an etcd request timeout")
	}
	c := testCluster(t)
	leader := c.leader(t)
	b := survivorsBackend(t, c, leader)
	holder := survivorsBackend(t, c, leader)
	taken := uniqueName("election-held")
	theirs, err := holder.Acquire(timeoutContext(t, 20*time.Second), request(taken, false))
	if err != nil {
		t.Fatal(err)
	}
	free := uniqueName("election-free")
	leader.Stop()
	killed := time.Now()
	tries := make(chan error, 1)
	go func() {
		_, err := b.Acquire(context.Background(), request(taken, false))
		tries <- err
	}()
	held, err := b.Acquire(context.Background(), request(free, false))
	if err != nil {
		t.Fatalf("TryLock of a free lock, from a client of the survivors, as the leader was killed: %v; want it granted once a leader is elected", err)
	}
	t.Logf("free lock granted %v after the leader was killed", time.Since(killed))
	checkHolder(t, c, leader, free, held.FencingToken)
	if err := <-tries; !errors.Is(err, backend.ErrBusy) {
		t.Errorf("TryLock of a held lock as the leader was killed: %v, want ErrBusy", err)
	}
	t.Logf("held lock found busy %v after the leader was killed", time.Since(killed))
	b.Release(context.Background(), held.ID)
	holder.Release(context.Background(), theirs.ID)
}
