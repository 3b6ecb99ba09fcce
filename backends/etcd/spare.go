package main

// A shared plugin serves one command after another, each of which takes
// one lock, and each lock needs a lease: granted as the request comes,
// that is one round of the cluster's consensus (a write to every
// member's log) on the path of every command. So a shared plugin keeps
// one lease granted ahead, kept alive and watched like a held lock's:
// the spare. The next lock takes it instead of granting one, and another
// is granted in the background once that lock is settled. A spare holds
// no key, so it locks nothing and shows nowhere; a spare that is lost
// (its keep-alives unanswered) is never taken; the plugin revokes it as
// it exits (Close), and if the plugin is killed, it expires within its
// TTL having held nothing. A private plugin, which serves one command,
// keeps none: its spare would be one more grant and revocation per
// command.

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// takeSpare returns the spare lease for a lock to bind, if there is a
// live one, and leaves none.
func (b *Backend) takeSpare() *lock {
	b.mu.Lock()
	l := b.spare
	b.spare = nil
	b.mu.Unlock()
	if l != nil && isClosed(l.lost) {
		go l.end()
		return nil
	}
	return l
}

// refillSpare grants a new spare lease in the background if the backend
// keeps one and has none, and none is being granted.
func (b *Backend) refillSpare(cli *clientv3.Client, cfg settings) {
	b.mu.Lock()
	if !b.keepSpare || b.spare != nil || b.granting || b.cli != cli {
		b.mu.Unlock()
		return
	}
	b.granting = true
	// A Close waits for the grant, so that the spare is revoked on a
	// client still open rather than left to expire.
	b.ending.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.ending.Done()
		l, err := grantLease(context.Background(), cli, cfg)
		b.mu.Lock()
		b.granting = false
		keep := err == nil && b.cli == cli && b.spare == nil
		if keep {
			b.spare = l
		}
		b.mu.Unlock()
		if err == nil && !keep {
			// Closed meanwhile, or another came first.
			_ = l.end()
		}
	}()
}
