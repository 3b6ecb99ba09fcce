package main

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// spareLease waits, within bound, for b to hold a live spare lease, and
// returns its id.
func spareLease(t *testing.T, b *Backend, bound time.Duration) clientv3.LeaseID {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		b.mu.Lock()
		l := b.spare
		b.mu.Unlock()
		if l != nil && !isClosed(l.lost) {
			return l.sess.Lease()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no spare lease within %v", bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holderLease returns the lease of the one key under name's prefix.
func holderLease(t *testing.T, cli *clientv3.Client, name string) clientv3.LeaseID {
	t.Helper()
	resp, err := cli.Get(timeoutContext(t, 10*time.Second), keyPrefix("/lockmgr/", name)+"/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the keys of %s: %v, %v; want one", name, resp, err)
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}

// leaseAlive asks etcd whether lease id lives.
func leaseAlive(t *testing.T, cli *clientv3.Client, id clientv3.LeaseID) bool {
	t.Helper()
	resp, err := cli.TimeToLive(timeoutContext(t, 10*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	return resp.TTL > 0
}

// TestSpareLeaseTakenByNextLock: a backend that keeps a spare (a shared
// plugin's) has a lease granted once a lock is settled; the next lock
// takes it rather than wait for a grant, a new spare follows, and Close
// revokes it, so that nothing of the plugin outlives it in the cluster.
func TestSpareLeaseTakenByNextLock(t *testing.T) {
	b := newTestBackend(t, nil)
	b.keepSpare = true
	cli := rawClient(t, sharedEtcd.Endpoint())
	ctx := timeoutContext(t, 30*time.Second)

	first, err := b.Acquire(ctx, request(uniqueName("spare"), false))
	if err != nil {
		t.Fatal(err)
	}
	spare := spareLease(t, b, 10*time.Second)
	if err := b.Release(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	name := uniqueName("spare")
	second, err := b.Acquire(ctx, request(name, false))
	if err != nil {
		t.Fatal(err)
	}
	if got := holderLease(t, cli, name); got != spare {
		t.Fatalf("the second lock's key is on lease %x, not the spare %x", got, spare)
	}
	next := spareLease(t, b, 10*time.Second)
	if next == spare {
		t.Fatalf("the spare %x is still the spare after a lock took it", spare)
	}
	if err := b.Release(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	if leaseAlive(t, cli, spare) {
		t.Errorf("the lease %x of a released lock lives on", spare)
	}
	b.Close()
	if leaseAlive(t, cli, next) {
		t.Errorf("the spare %x outlives Close", next)
	}
}

// TestRevokedSpare: a spare whose lease is gone (revoked by an operator,
// or expired with its keep-alives unanswered) is no lock's lease: the
// next lock is granted on a live one, and is not lost.
func TestRevokedSpare(t *testing.T) {
	b := newTestBackend(t, nil)
	b.keepSpare = true
	cli := rawClient(t, sharedEtcd.Endpoint())
	ctx := timeoutContext(t, 30*time.Second)

	first, err := b.Acquire(ctx, request(uniqueName("lostspare"), false))
	if err != nil {
		t.Fatal(err)
	}
	spare := spareLease(t, b, 10*time.Second)
	if err := b.Release(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, spare); err != nil {
		t.Fatal(err)
	}
	name := uniqueName("lostspare")
	held, err := b.Acquire(ctx, request(name, false))
	if err != nil {
		t.Fatalf("a lock after its spare was revoked: %v", err)
	}
	defer b.Release(context.Background(), held.ID)
	if got := holderLease(t, cli, name); got == spare || !leaseAlive(t, cli, got) {
		t.Fatalf("the lock's key is on lease %x (the revoked spare is %x)", got, spare)
	}
	if isClosed(held.Lost) {
		t.Fatal("the lock is lost")
	}
}

// TestPrivateKeepsNoSpare: a backend that serves one host (a private
// plugin's, or one in a program of its own) grants no lease ahead.
func TestPrivateKeepsNoSpare(t *testing.T) {
	b := newTestBackend(t, nil)
	held, err := b.Acquire(timeoutContext(t, 30*time.Second), request(uniqueName("nospare"), false))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release(context.Background(), held.ID)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spare != nil || b.granting {
		t.Fatal("a backend that keeps no spare grants one")
	}
}
