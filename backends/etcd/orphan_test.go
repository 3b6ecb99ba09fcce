package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// TestCloseWaitsForRelease: a Close that comes while a Release is
// revoking its lock's lease (a plugin whose host died ends that host's
// session and is closed at once, by the parent-death signal) lets the
// revocation finish before it closes the client. Closed under it, the
// revocation was cut short and the lock stayed held until its lease
// expired: TestKilledHostFreesPromptly failed so, now and then, on a
// loaded machine.
func TestCloseWaitsForRelease(t *testing.T) {
	b := newTestBackend(t, nil)
	cli := rawClient(t, sharedEtcd.Endpoint())
	name := uniqueName("close-release")
	held, err := b.Acquire(timeoutContext(t, 30*time.Second), request(name, false))
	if err != nil {
		t.Fatal(err)
	}
	lease := holderLease(t, cli, name)
	bcli, _, _ := b.client()

	entered, release := make(chan struct{}), make(chan struct{})
	hold := func() {
		close(entered)
		select {
		case <-release:
		case <-bcli.Ctx().Done(): // the client closed under the revocation
		}
	}
	revokeHoldForTest.Store(&hold)
	defer revokeHoldForTest.Store(nil)

	released := make(chan error, 1)
	go func() { released <- b.Release(context.Background(), held.ID) }()
	<-entered
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	// Close has begun once it has taken the client.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		taken := b.cli == nil
		b.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not begin")
		}
	}
	select {
	case <-closed:
		t.Error("Close returned while a Release was still revoking its lease")
	default:
	}
	close(release)
	if err := <-released; err != nil {
		t.Errorf("Release beside a Close: %v", err)
	}
	<-closed
	if leaseAlive(t, cli, lease) {
		t.Errorf("the released lock's lease %x lives on after Close", lease)
	}
}
