package main

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestWaitOutlivesSeparateFailures: a wait without a deadline gives up
// only once the cluster has failed it for request_timeout on end, not at
// the second of two failures that came request_timeout apart with the
// waiter back in line between them. Each failure here is the waiter's
// lease revoked behind its back (as an expiry during a partition would
// end it); each time the waiter takes a new place in line, and when the
// holder lets go it is granted.
func TestWaitOutlivesSeparateFailures(t *testing.T) {
	const requestTimeout = 2 * time.Second
	holder := newTestBackend(t, nil)
	waiter := newTestBackend(t, map[string]any{"request_timeout": requestTimeout.String()})
	name := uniqueName("streak")
	held, err := holder.Acquire(context.Background(), request(name, false))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		id  uint64
		err error
	}
	got := make(chan result, 1)
	go func() {
		h, err := waiter.Acquire(context.Background(), request(name, true))
		got <- result{uint64(h.ID), err}
	}()

	cli := rawClient(t, sharedEtcd.Endpoint())
	prefix := keyPrefix("/lockmgr/", name) + "/"
	// inLine waits for a key in line behind the holder's whose lease is
	// not one of gone, and returns that lease.
	inLine := func(gone map[int64]bool) int64 {
		t.Helper()
		for {
			select {
			case r := <-got:
				t.Fatalf("the wait ended while the holder held the lock: id %d, %v", r.id, r.err)
			default:
			}
			resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range resp.Kvs[min(1, len(resp.Kvs)):] {
				if !gone[kv.Lease] {
					return kv.Lease
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	gone := map[int64]bool{}
	revoke := func(lease int64) {
		t.Helper()
		if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(lease)); err != nil {
			t.Fatal(err)
		}
		gone[lease] = true
	}

	revoke(inLine(gone))
	first := time.Now()
	lease := inLine(gone) // back in line: the cluster serves it again
	// The second failure comes once request_timeout has passed since the
	// first; however much later, it is a failure of its own.
	time.Sleep(time.Until(first.Add(requestTimeout + 500*time.Millisecond)))
	revoke(lease)
	inLine(gone)

	if err := holder.Release(context.Background(), held.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("wait after the holder let go: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("not granted 30s after the holder let go")
	}
}
