package main

// An etcd lock is a key attached to a lease, and it lasts exactly as long
// as the lease: etcd deletes the key when the lease is revoked or expires.
// Each lock gets a lease of its own (one concurrency.Session), so that
// releasing it is one Revoke, a lock that fails half-way is cleaned up the
// same way, and losing one lease loses one lock, not every lock the
// process holds. The Mutex on top is etcd's own concurrency.Mutex, the
// one etcdctl uses, so the two interoperate (see the package comment for
// the key layout).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// lock is one lock, from its lease's grant to its revocation.
type lock struct {
	name  string
	cli   *clientv3.Client
	cfg   settings
	sess  *concurrency.Session
	mutex *concurrency.Mutex
	rev   int64 // the holder key's create revision, once held
	// queued is set, by acquire's goroutine alone, once the cluster has
	// put the lock in line behind a holder.
	queued bool
	ctx    context.Context    // the lock's watches live as long as it
	cancel context.CancelFunc // ends them, in end

	lost     chan struct{} // closed by lose
	loseOnce sync.Once
	released chan struct{} // closed by end, before anything else it does
	endOnce  sync.Once
	endErr   error
}

// grant starts the lock's session: a lease of cfg.ttl, kept alive, and
// watched for its loss.
func grant(ctx context.Context, cli *clientv3.Client, cfg settings, name string) (*lock, error) {
	l, err := grantLease(ctx, cli, cfg)
	if err != nil {
		return nil, err
	}
	l.bind(name)
	return l, nil
}

// grantLease starts a lock's session before its name is known (a spare,
// spare.go): a lease of cfg.ttl, kept alive, and watched for its loss.
func grantLease(ctx context.Context, cli *clientv3.Client, cfg settings) (*lock, error) {
	gctx, cancel := context.WithTimeout(ctx, cfg.requestTimeout)
	defer cancel()
	sent := time.Now() // the lease lives a TTL from no earlier than this
	resp, err := cli.Grant(gctx, int64(cfg.ttl/time.Second))
	if err != nil {
		return nil, err
	}
	// The server may raise the TTL to its own minimum; it keeps its word.
	ttl := time.Duration(resp.TTL) * time.Second
	lctx, cancelLock := context.WithCancel(cli.Ctx())
	ka, err := cli.KeepAlive(lctx, resp.ID)
	if err == nil {
		var sess *concurrency.Session
		sess, err = concurrency.NewSession(cli, concurrency.WithLease(resp.ID), concurrency.WithTTL(int(resp.TTL)))
		if err == nil {
			l := &lock{
				cli: cli, cfg: cfg, sess: sess, ctx: lctx, cancel: cancelLock,
				lost:     make(chan struct{}),
				released: make(chan struct{}),
			}
			go l.watch(ka, sent, ttl)
			return l, nil
		}
	}
	cancelLock()
	rctx, rcancel := context.WithTimeout(cli.Ctx(), cfg.dialTimeout)
	defer rcancel()
	_, _ = cli.Revoke(rctx, resp.ID)
	return nil, err
}

// bind makes l the lock named name: its Mutex's keys go under that
// name's prefix. It is called once, before the lock is tried.
func (l *lock) bind(name string) {
	l.name = name
	l.mutex = concurrency.NewMutex(l.sess, keyPrefix(l.cfg.prefix, name))
}

// mutexPrefix is the key prefix the lock's Mutex puts its key under.
func (l *lock) mutexPrefix() string { return keyPrefix(l.cfg.prefix, l.name) + "/" }

// acquire takes the Mutex if it is free; if the cluster says it is held,
// it is ErrBusy, or, if wait is set, waits in line for it until ctx ends
// (errQueued) or the lease is lost. Each request is bounded by
// request_timeout, so that etcd's own answer to a request lost with a
// dead leader ("request timed out") can come.
func (l *lock) acquire(ctx context.Context, wait bool) error {
	tctx, cancel := context.WithTimeout(ctx, l.cfg.requestTimeout)
	err := l.mutex.TryLock(tctx)
	cancel()
	if f := lostAnswerForTest.Load(); err == nil && f != nil {
		err = (*f)()
	}
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, concurrency.ErrLocked):
		return err
	case !wait:
		return backend.ErrBusy
	}
	// Held, as the cluster has just said: wait in line.
	l.queued = true
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	got := make(chan error, 1)
	// Mutex.Lock cleans up after a canceled wait with a Delete that waits
	// for etcd however long it takes; the lease's revocation does the same
	// cleaning, so the caller is answered at once and Lock finishes alone.
	go func() { got <- l.mutex.Lock(wctx) }()
	select {
	case err := <-got:
		switch {
		case err == nil && isClosed(l.lost):
			return errLeaseGone
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("%w: %w", errQueued, ctx.Err())
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errQueued, ctx.Err())
	case <-l.lost:
		return errLeaseGone
	}
}

// claim confirms that the lock is still ours, writes who holds it on its
// key, and records the key's create revision as the fencing token. The
// write is guarded by that revision, so it cannot land on a key that has
// since been deleted and made again by someone else.
func (l *lock) claim(ctx context.Context, owner ownerRecord) error {
	owns := l.mutex.IsOwner()
	rev := owns.GetCompare().GetCreateRevision()
	value, err := json.Marshal(owner)
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, l.cfg.requestTimeout)
	defer cancel()
	resp, err := l.cli.Txn(tctx).If(owns).
		Then(clientv3.OpPut(l.mutex.Key(), string(value), clientv3.WithLease(l.sess.Lease()))).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded || isClosed(l.lost) {
		return errLeaseGone
	}
	l.rev = rev
	go l.watchKey(resp.Header.Revision + 1)
	return nil
}

// end stops the lease's keep-alives and revokes it, which deletes the
// lock's key. It is safe to call more than once and from any goroutine;
// the first call does the work and every call returns its result. A lock
// already lost is not waited on: its lease is gone, or expires within a
// TTL of the last renewal, and the cluster may be out of reach, so the
// revoke is left to the background, best effort, and the holder can exit
// at once.
func (l *lock) end() error {
	l.endOnce.Do(func() {
		close(l.released)
		l.cancel()
		l.sess.Orphan()
		if isClosed(l.lost) {
			go l.revoke()
			return
		}
		l.endErr = l.revoke()
	})
	return l.endErr
}

// revoke revokes the lock's lease. If etcd cannot be reached, the lease
// expires within its TTL anyway; do not hold the caller longer than a
// dial for it.
func (l *lock) revoke() error {
	if f := revokeHoldForTest.Load(); f != nil {
		(*f)()
	}
	ctx, cancel := context.WithTimeout(l.cli.Ctx(), l.cfg.dialTimeout)
	defer cancel()
	_, err := l.cli.Revoke(ctx, l.sess.Lease())
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		// Expired already: the key is gone, which is all we wanted.
	case err != nil:
		return fmt.Errorf("revoking lease %x at %s (the lock frees when it expires, within %v): %w",
			int64(l.sess.Lease()), l.cfg.endpointList(), l.cfg.ttl, err)
	}
	return nil
}

// Set only by tests, to hold the seams below open: lostAnswerForTest makes
// a TryLock the cluster granted look as though its answer was lost (a
// leader that died after committing it); revokeHoldForTest holds a lock's
// revocation, as a slow way to the cluster would.
var (
	lostAnswerForTest atomic.Pointer[func() error]
	revokeHoldForTest atomic.Pointer[func()]
)
