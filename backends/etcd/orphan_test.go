package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestTryNeverBusyBehindItsOwnKey: a TryLock the cluster granted but whose
// answer was lost (its leader died after committing it) leaves a key of
// ours holding the lock until its lease, abandoned, is revoked in the
// background. The retry must not take that key for another holder: exit
// 1 means the cluster said someone else holds the lock.
func TestTryNeverBusyBehindItsOwnKey(t *testing.T) {
	b := newTestBackend(t, nil)
	var once sync.Once
	lostAnswer := func() error {
		var err error
		once.Do(func() { err = fmt.Errorf("answer lost: %w", context.DeadlineExceeded) })
		return err
	}
	lostAnswerForTest.Store(&lostAnswer)
	// The abandoned lease's revocation, the first, is slow to reach the
	// cluster: until the test ends.
	release := make(chan struct{})
	var revokes atomic.Int32
	hold := func() {
		if revokes.Add(1) == 1 {
			<-release
		}
	}
	revokeHoldForTest.Store(&hold)
	defer func() {
		lostAnswerForTest.Store(nil)
		revokeHoldForTest.Store(nil)
		close(release)
	}()
	held, err := b.Acquire(context.Background(), request(uniqueName("orphan"), false))
	if err != nil {
		t.Fatalf("TryLock with nobody else holding the lock: %v", err)
	}
	if err := b.Release(context.Background(), held.ID); err != nil {
		t.Fatal(err)
	}
}
