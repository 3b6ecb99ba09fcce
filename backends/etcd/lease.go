package main

// The lease is kept alive by the client library, and a lock is only as
// good as that. The rule for declaring a lock lost is the cluster's own
// word: the lock is lost when the cluster says its lease is gone (a
// keep-alive answered with a TTL of zero, LeaseNotFound, or the holder's
// key deleted, by `etcdctl del` or a revoke), or when a full TTL has
// passed since the sending of the last renewal a member confirmed. Not
// earlier: a change of leader
// leaves a gap in the answers (an election takes one to two election
// timeouts, a second or two by default), and the new leader extends every
// lease by a full TTL when it takes over, so a lock declared lost during
// the gap would stop a user's job for nothing, and a rolling restart of
// etcd would stop every job. Not later either: the server counts the TTL
// from when it handled the last renewal, which is after we sent it, so
// counted from the sending the loss is announced strictly before the
// server can expire the lease, by at least the way there, however slow
// the answer's way back. A holder that is paused, or a command slow to
// stop, can still overlap the next holder; that is what fencing tokens
// are for (docs/etcd.rst).
//
// The library's own keep-alive channel cannot carry that rule alone: it
// closes alike when the server says the lease is gone, when the library
// has heard nothing for a TTL, and, for the first answer, after only the
// dial timeout and a second, which can be shorter than the TTL; and once
// closed it renews no more; nor does it say when the renewal it answers
// was sent. So each lock renews on its own (probe, see renewAfter),
// timing each renewal's sending, counts its deadline from those (watch),
// and when the library's channel closes asks the cluster on its own
// until an answer or the deadline comes: a renewal confirms the lease and
// the library's keep-alive is started again, and LeaseNotFound is the
// cluster saying the lock is gone.

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// renewAfter is how long after sending a renewal that was confirmed the
// lock renews its lease on its own again; only these renewals, timed from their sending, move its
// deadline (see watch), though the library renews too, a third of the
// TTL after each of its own answers. A leader that dies takes the
// renewals with it until the next one is elected, and the lease is lost
// unless that gap, counted from the sending of the last renewal confirmed
// before the death, stays under a TTL; renewing every sixth of the TTL
// keeps the part of the gap that is ours small, which lets a TTL of four
// or five election timeouts ride through an election.
func renewAfter(ttl time.Duration) time.Duration { return ttl / 6 }

// watch follows the confirmations of the lock's lease and declares the
// lock lost by the rule at the top of this file: when the cluster says the
// lease is gone, or when no confirmation has come for a full TTL counted
// from when the confirmed renewal was sent, the first of which, the
// grant, was sent at sent. ka is the library's keep-alive channel.
//
// The TTL is counted from the sending, not from the answer's arrival:
// the server counts it from when it handled the renewal, which is after
// the sending and before the answer, so the loss comes strictly before
// the server can expire the lease, however slow the way there or back.
// The library's own renewals renew the lease on the server, but when
// each was sent is not known here, so their answers move no deadline;
// the lock's own renewals (probe), whose sending it times, do.
//
// With stop_before_expiry set, the loss is declared that much earlier, so
// that a command stopped for it (lockmgr run --on-lost) can have ended,
// SIGKILL after --grace included, before the lease can expire.
func (l *lock) watch(ka <-chan *clientv3.LeaseKeepAliveResponse, sent time.Time, ttl time.Duration) {
	deadline := sent.Add(ttl - l.cfg.stopBeforeExpiry)
	expire := time.NewTimer(time.Until(deadline))
	defer expire.Stop()
	renew := time.NewTimer(renewAfter(ttl))
	defer renew.Stop()
	var probed chan probeResult // set while a probe runs
	startProbe := func() {
		if probed == nil {
			probed = make(chan probeResult, 1)
			go l.probe(deadline, probed)
		}
	}
	for {
		select {
		case <-l.released:
			return
		case _, ok := <-ka:
			if !ok {
				// The server said the lease is gone, or the library gave
				// up on it, or the client is closing: ask.
				ka = nil
				startProbe()
			}
		case <-renew.C:
			startProbe()
		case r := <-probed:
			probed = nil
			switch {
			case errors.Is(r.err, rpctypes.ErrLeaseNotFound), r.err != nil && l.ctx.Err() != nil:
				// Gone, or the client closed and nothing renews it now.
				l.lose()
				return
			case r.err != nil || r.at.After(deadline):
				// No answer by the deadline; expire says so.
				continue
			}
			if d := r.sent.Add(r.ttl - l.cfg.stopBeforeExpiry); d.After(deadline) {
				deadline = d
				expire.Reset(time.Until(deadline))
			}
			// The next renewal a sixth of the TTL after this one was
			// sent, or at once if its answer took longer than that.
			renew.Reset(time.Until(r.sent.Add(renewAfter(r.ttl))))
			if ka == nil {
				var err error
				if ka, err = l.cli.KeepAlive(l.ctx, l.sess.Lease()); err != nil {
					l.lose() // the client's keep-alives have halted
					return
				}
			}
		case <-expire.C:
			l.lose()
			return
		}
	}
}

// probeResult is what a probe heard: a renewal sent at sent and answered
// at at with ttl, or why there was none.
type probeResult struct {
	sent, at time.Time
	ttl      time.Duration
	err      error
}

// probe renews the lock's lease on its own, over a stream of its own,
// until the cluster answers or deadline passes, and sends what it heard.
// A member with no leader holds the renewal until one is elected, and
// then forwards it, so the answer comes as soon as the cluster can give
// it.
func (l *lock) probe(deadline time.Time, result chan<- probeResult) {
	ctx, cancel := context.WithDeadline(l.ctx, deadline)
	defer cancel()
	for {
		sent := time.Now()
		resp, err := l.cli.KeepAliveOnce(ctx, l.sess.Lease())
		switch {
		case err == nil && resp.TTL <= 0:
			result <- probeResult{err: rpctypes.ErrLeaseNotFound}
			return
		case err == nil:
			result <- probeResult{sent: sent, at: time.Now(), ttl: time.Duration(resp.TTL) * time.Second}
			return
		case errors.Is(err, rpctypes.ErrLeaseNotFound), ctx.Err() != nil:
			result <- probeResult{err: err}
			return
		}
		// Refused for another reason (KeepAliveOnce itself retries while
		// the cluster is unavailable): try again shortly.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lose marks the lock lost, unless it was released, and gives up its
// lease in the background: should the lease still live (etcd answered
// late), revoking it frees the lock for others now rather than at expiry.
func (l *lock) lose() {
	l.loseOnce.Do(func() {
		// end closes released before it stops the watches, so a watch
		// that ends after a Release is seen as the Release it is.
		if isClosed(l.released) {
			return
		}
		close(l.lost)
		go l.end()
	})
}

// watchKey declares the lock lost if its key is deleted, from revision
// on, by anyone but our own Release: `etcdctl del` by an operator, say,
// which hands the lock to the next waiter while our lease lives on, and
// which no keep-alive would notice.
func (l *lock) watchKey(revision int64) {
	for resp := range l.cli.Watch(l.ctx, l.mutex.Key(), clientv3.WithRev(revision), clientv3.WithFilterPut()) {
		for _, ev := range resp.Events {
			if ev.Type == mvccpb.DELETE {
				l.lose()
				return
			}
		}
	}
	// The watch ended: the lock was released, or the client closed
	// (which ends the keep-alives too, and watch declares the loss), or
	// the revision was compacted away, which leaves watch on guard.
}
