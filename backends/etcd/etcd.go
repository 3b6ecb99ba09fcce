package main

// An etcd lock is a key attached to a lease, and it lasts exactly as long
// as the lease: etcd deletes the key when the lease is revoked or expires.
// Each lock gets a lease of its own (one concurrency.Session), so that
// releasing it is one Revoke, a lock that fails half-way is cleaned up the
// same way, and losing one lease loses one lock, not every lock the
// process holds. The Mutex on top is etcd's own concurrency.Mutex, the
// one etcdctl uses, so the two interoperate (see the package comment for
// the key layout).
//
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

// Shared locks are not offered. etcd's reader/writer recipe
// (client/v3/experimental/recipes.RWMutex) cannot be used as it is: its
// waits watch with context.Background, so nothing can cancel them or give
// them a deadline (not even revoking our lease, since they watch the key
// ahead of ours, not our own); it has no try-lock; it orders keys by mod
// revision, which the holder record below would upset; and its readers
// wait only for keys under PREFIX/write, so a reader would be granted
// beside a concurrency.Mutex holder (etcdctl's, or our own exclusive
// lock) on the same name. A
// correct reader protocol over the Mutex layout is possible (readers that
// mark their keys and wait only for earlier unmarked ones), but it would
// be lockmgr's own invention rather than etcd's, so Capabilities.Shared is
// false and Request.Validate refuses shared locks with ErrUnsupported.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/raft/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

const backendName = "etcd"

// capabilities are what an etcd lock can promise: it excludes every
// process on every host that reaches the cluster, it belongs to a lease
// (a session), and its key's create revision is a fencing token. It has
// no file, so nothing about files applies.
var capabilities = backend.Capabilities{
	Shared:        false, // see the comment at the top of this file
	ByteRanges:    false,
	Owner:         backend.OwnerSession,
	Distributed:   true,
	FencingTokens: true,
}

// Backend is the etcd backend: one etcd client, shared by every lock of
// the process, and one lease per lock. Its methods are safe for
// concurrent use.
type Backend struct {
	owner ownerRecord // what the holder writes on its key

	// dialMu serializes making the client, which may talk to etcd (to
	// authenticate), so that it is not done under mu.
	dialMu sync.Mutex

	mu     sync.Mutex
	cfg    settings
	cli    *clientv3.Client
	nextID backend.HandleID
	locks  map[backend.HandleID]*lock
}

// ownerRecord is the value a holder puts on its key, for Inspect.
type ownerRecord struct {
	Host    string `json:"host"`
	PID     int    `json:"pid"`
	Command string `json:"command,omitempty"`
}

// newBackend returns a backend with the default settings whose locks are
// recorded as held by process hostPID: the plugin's parent when it runs
// as a plugin, the process itself when embedded.
func newBackend(hostPID int) *Backend {
	host, _ := os.Hostname()
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", hostPID))
	return &Backend{
		owner: ownerRecord{Host: host, PID: hostPID, Command: strings.TrimSpace(string(comm))},
		cfg:   defaultSettings(),
		locks: map[backend.HandleID]*lock{},
	}
}

// Describe implements backend.LockMgr. It says nothing about the
// settings: they may hold a password.
func (b *Backend) Describe(context.Context) (backend.Info, error) {
	return backend.Info{Name: backendName, Version: version, Capabilities: capabilities}, nil
}

// Configure implements backend.Configurer: settings is the [backends.etcd]
// table merged with the LOCKMGR_ETCD_* environment, as one JSON object.
// It must come before the first lock, since the client is made then.
func (b *Backend) Configure(_ context.Context, raw []byte) error {
	cfg, err := parseSettings(raw)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cli != nil {
		return &backend.Error{Op: "configure", Backend: backendName,
			Err: fmt.Errorf("%w: the backend is already connected to etcd; configure it before the first lock", backend.ErrConfig)}
	}
	b.cfg = cfg
	return nil
}

// client returns the etcd client, making it on first use, and the
// settings it was made with.
func (b *Backend) client() (*clientv3.Client, settings, error) {
	b.dialMu.Lock()
	defer b.dialMu.Unlock()
	b.mu.Lock()
	cli, cfg := b.cli, b.cfg
	b.mu.Unlock()
	if cli != nil {
		return cli, cfg, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.endpoints,
		DialTimeout: cfg.dialTimeout,
		TLS:         cfg.tls,
		Username:    cfg.username,
		Password:    cfg.password,
		// The plugin's stderr is relayed into lockmgr's own output, and
		// the client logs every reconnection: keep it quiet.
		Logger: zap.NewNop(),
		// gRPC's default reconnection backoff grows to two minutes. A lock
		// client must be back within its lease's TTL of etcd's return, or
		// a lock that survived a brief outage on the server is lost for
		// want of a keep-alive, and waiters sit idle behind a free lock.
		// Trying every second or so while etcd is away costs nothing.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: cfg.dialTimeout,
		})},
	})
	if err != nil {
		kind := backend.ErrUnavailable
		if isAuthError(err) {
			kind = backend.ErrConfig
		}
		return nil, cfg, redact(fmt.Errorf("connecting to etcd at %s: %w: %w", cfg.endpointList(), kind, err))
	}
	b.mu.Lock()
	b.cli = cli
	b.mu.Unlock()
	return cli, cfg, nil
}

// Close gives up every lock the backend holds, revoking their leases, and
// closes its connection to etcd. An embedding program calls it before it
// exits, so that its locks free at once instead of when their leases
// expire.
func (b *Backend) Close() error {
	b.mu.Lock()
	locks := b.locks
	b.locks = map[backend.HandleID]*lock{}
	cli := b.cli
	b.cli = nil
	b.mu.Unlock()
	for _, l := range locks {
		_ = l.end()
	}
	if cli == nil {
		return nil
	}
	return cli.Close()
}

// lockName is the name a request's lock is keyed on: the name as the
// user wrote it, which means the same on every host.
func lockName(req backend.Request) string {
	if req.Name != "" {
		return req.Name
	}
	return req.Path
}

// keyPrefix returns the etcd key prefix of the lock name under prefix:
// the prefix as it is, then the name with "/" written as "%2F" and "%" as
// "%25" (see keyName).
func keyPrefix(prefix, name string) string { return prefix + keyName(name) }

// keyName is a lock name as its etcd keys spell it. concurrency.Mutex
// keys a lock's holder and waiters under NAME+"/", and takes every key in
// that range for one of them, so a name with a "/" in it would land in the
// range of the name before the slash: a holder of job/x would block job,
// though job would not block job/x. Writing "/" as "%2F" keeps every
// spelled name free of "/", so no name's range holds another's keys and
// distinct names are distinct locks; writing "%" as "%25" keeps two names
// from being spelled alike (a/b and a%2Fb). A name with neither is spelled
// as it is, so that `etcdctl lock NAME` takes the very same lock.
func keyName(name string) string {
	if !strings.ContainsAny(name, "/%") {
		return name
	}
	var b strings.Builder
	for i := range len(name) {
		switch c := name[i]; c {
		case '/':
			b.WriteString("%2F")
		case '%':
			b.WriteString("%25")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Acquire implements backend.LockMgr. Each attempt is a lease of its own,
// a place in the Mutex's line on it, and the holder's record once first
// in line. An attempt that fails because the cluster could not serve it
// (no member reachable, no leader, a request lost with a dead leader, the
// lease expired meanwhile) is abandoned, its lease revoked in the
// background as far as the cluster lets it, and another is made: until
// the caller's deadline if it has one; without one (a wait without a
// deadline, or a try), until no member can be reached for dial_timeout or
// the cluster has failed for request_timeout. Giving up is the service
// being unavailable, never "busy": busy is said only when the cluster
// said the lock is held.
func (b *Backend) Acquire(ctx context.Context, req backend.Request) (backend.Held, error) {
	name := lockName(req)
	fail := func(err error) (backend.Held, error) {
		return backend.Held{}, backend.Errorf("lock", name, backendName, err)
	}
	if err := req.Validate(capabilities); err != nil {
		return fail(err)
	}
	if ctx.Err() != nil {
		return fail(backend.WaitError(ctx))
	}
	cli, cfg, err := b.client()
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	_, hasDeadline := ctx.Deadline()
	var failing time.Time // when the cluster began to fail this Acquire, on end
	for pause := 50 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		l, what, queued, err := b.attempt(ctx, cli, cfg, name, req.Wait)
		switch {
		case err == nil:
			b.mu.Lock()
			b.nextID++
			id := b.nextID
			b.locks[id] = l
			b.mu.Unlock()
			return backend.Held{ID: id, FencingToken: uint64(l.rev), Lost: l.lost}, nil
		case errors.Is(err, backend.ErrBusy):
			return fail(err) // the cluster said it is held
		case errors.Is(err, errQueued):
			// The wait in line ended: the lock was held, as the cluster
			// last said.
			return fail(backend.WaitError(ctx))
		case ctx.Err() != nil && !pastDeadline(ctx):
			return fail(backend.WaitError(ctx)) // canceled by the caller
		case ctx.Err() != nil:
			// The deadline passed while the cluster was still to answer.
			return fail(cfg.unanswered(time.Since(start), err, ""))
		case !retryable(err):
			return fail(cfg.cause(ctx, what, err))
		}
		if failing.IsZero() || queued {
			// An attempt that got a place in line was served by the
			// cluster, however long ago it began: its failure starts a
			// run of failures of its own. Otherwise a wait without a
			// deadline would give up at the second of two failures hours
			// apart, as though the cluster had failed it all along.
			failing = time.Now()
		}
		if !hasDeadline {
			switch {
			case errors.Is(err, errNoConnection):
				return fail(cfg.unanswered(time.Since(start), err, fmt.Sprintf(" within dial_timeout (%v)", cfg.dialTimeout)))
			case time.Since(failing) >= cfg.requestTimeout:
				return fail(cfg.unanswered(time.Since(start), err, fmt.Sprintf(" (failing for longer than request_timeout, %v)", cfg.requestTimeout)))
			}
		}
		select {
		case <-ctx.Done():
			return fail(cfg.unanswered(time.Since(start), err, ""))
		case <-time.After(pause):
		}
	}
}

// attempt makes one attempt at the lock: a connection, a lease, a place
// in line (waiting in it if wait is set) and the holder's record. It
// returns the lock, or what it was doing when it failed, whether it had
// got a place in line behind a holder by then, and why. A
// failed attempt's lease is revoked: at once when the cluster is
// answering, so that no key of ours is left in the line; in the
// background when it is not, since the caller must not wait on it (the
// lease expires within its TTL anyway, its keep-alives stopped).
func (b *Backend) attempt(ctx context.Context, cli *clientv3.Client, cfg settings, name string, wait bool) (*lock, string, bool, error) {
	if err := awaitConnection(ctx, cli, cfg.dialTimeout); err != nil {
		return nil, "connecting", false, err
	}
	l, err := grant(ctx, cli, cfg, name)
	if err != nil {
		return nil, "granting a lease", false, err
	}
	err = l.acquire(ctx, wait)
	if err == nil {
		err = l.claim(ctx, b.owner)
	}
	if err != nil {
		if retryable(err) || (ctx.Err() != nil && !errors.Is(err, errQueued)) {
			go l.end()
		} else {
			_ = l.end()
		}
		return nil, "locking " + l.mutexPrefix(), l.queued, err
	}
	return l, "", true, nil
}

// errNoConnection is why an attempt failed when no member of the cluster
// could be reached within dial_timeout.
var errNoConnection = errors.New("no member could be reached")

// errQueued marks the end of a wait in line behind another holder, by the
// caller's deadline or cancel.
var errQueued = errors.New("waiting behind the holder")

// awaitConnection waits until the client is connected to a member of the
// cluster, for at most d (and not past ctx): that is what dial_timeout
// bounds. Requests wait for a connection without failing, so without this
// a cluster out of reach could not be told from one that is slow to
// answer.
func awaitConnection(ctx context.Context, cli *clientv3.Client, d time.Duration) error {
	conn := cli.ActiveConnection()
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		st := conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.Idle:
			conn.Connect()
		}
		if !conn.WaitForStateChange(cctx, st) {
			return errNoConnection
		}
	}
}

// pastDeadline reports whether ctx has a deadline, and it has passed: a
// cancel at or after it is the deadline's (a plugin's host cancels its
// call when the deadline passes, and that may arrive before the plugin's
// own copy of the deadline fires).
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// retryable reports whether err says the cluster could not serve a
// request for now, rather than refused it: it had no leader, or lost the
// request with its leader (etcd's "request timed out"), or could not be
// reached, or did not answer within request_timeout, or a lease expired
// for want of answers. Another attempt may succeed.
func retryable(err error) bool {
	switch {
	case errors.Is(err, errNoConnection), errors.Is(err, errLeaseGone), errors.Is(err, concurrency.ErrSessionExpired),
		errors.Is(err, rpctypes.ErrLeaseNotFound), errors.Is(err, rpctypes.ErrNotLeader),
		errors.Is(err, context.DeadlineExceeded): // request_timeout; the caller's own is checked first
		return true
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable || ee.Code() == codes.ResourceExhausted
	}
	if st, ok := status.FromError(err); ok {
		// A member without a leader drops a proposal: raft's own error,
		// which etcd passes on as it is.
		return st.Code() == codes.Unavailable || st.Code() == codes.ResourceExhausted || st.Message() == raft.ErrProposalDropped.Error()
	}
	return false
}

// Release implements backend.LockMgr: it revokes the lock's lease, which
// deletes its key at once, so the next waiter need not wait for a TTL.
func (b *Backend) Release(_ context.Context, id backend.HandleID) error {
	b.mu.Lock()
	l := b.locks[id]
	delete(b.locks, id)
	b.mu.Unlock()
	if l == nil {
		return backend.Errorf("unlock", "", backendName, backend.ErrNotLocked)
	}
	wasLost := isClosed(l.lost)
	err := l.end()
	switch {
	case wasLost:
		return backend.Errorf("unlock", l.name, backendName, backend.ErrLost)
	case err != nil:
		return backend.Errorf("unlock", l.name, backendName, err)
	}
	return nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Inspect implements backend.LockMgr. path is the lock's name. Every key
// under the lock's prefix is a holder or a waiter: the one created first
// holds the lock, exactly as concurrency.Mutex decides it.
func (b *Backend) Inspect(ctx context.Context, path string) (backend.Status, error) {
	st := backend.Status{Path: path}
	fail := func(err error) (backend.Status, error) {
		return st, backend.Errorf("inspect", path, backendName, err)
	}
	cli, cfg, err := b.client()
	if err != nil {
		return fail(err)
	}
	pfx := keyPrefix(cfg.prefix, path) + "/"
	gctx, cancel := context.WithTimeout(ctx, cfg.dialTimeout)
	defer cancel()
	resp, err := cli.Get(gctx, pfx, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return fail(cfg.cause(ctx, "reading "+pfx, err))
	}
	for i, kv := range resp.Kvs {
		o := backend.LockOwner{PID: -1, Kind: backendName, Mode: backend.Exclusive, Range: backend.WholeFile}
		detail := fmt.Sprintf("lease %x, key %s, revision %d", kv.Lease, kv.Key, kv.CreateRevision)
		// A lockmgr holder says who it is; etcdctl's keys, and waiters',
		// are empty.
		var rec ownerRecord
		if len(kv.Value) > 0 && json.Unmarshal(kv.Value, &rec) == nil {
			if rec.PID > 0 {
				o.PID = rec.PID
			}
			o.Command = rec.Command
			if rec.Host != "" {
				detail += ", host " + rec.Host
			}
		}
		o.Detail = detail
		if i == 0 {
			st.Holders = append(st.Holders, o)
		} else {
			st.Waiters = append(st.Waiters, o)
		}
	}
	return st, nil
}

// errLeaseGone is why a lock could not be granted, or was lost: its lease
// expired, or may have, because etcd did not answer its keep-alives.
var errLeaseGone = errors.New("the lock's lease expired, or etcd did not renew it in time")

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

// grant starts the lock's session: a lease of cfg.ttl, kept alive, and
// watched for its loss.
func grant(ctx context.Context, cli *clientv3.Client, cfg settings, name string) (*lock, error) {
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
				name: name, cli: cli, cfg: cfg, sess: sess, ctx: lctx, cancel: cancelLock,
				mutex:    concurrency.NewMutex(sess, keyPrefix(cfg.prefix, name)),
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

// mutexPrefix is the key prefix the lock's Mutex puts its key under.
func (l *lock) mutexPrefix() string { return keyPrefix(l.cfg.prefix, l.name) + "/" }

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

// acquire takes the Mutex if it is free; if the cluster says it is held,
// it is ErrBusy, or, if wait is set, waits in line for it until ctx ends
// (errQueued) or the lease is lost. Each request is bounded by
// request_timeout, so that etcd's own answer to a request lost with a
// dead leader ("request timed out") can come.
func (l *lock) acquire(ctx context.Context, wait bool) error {
	tctx, cancel := context.WithTimeout(ctx, l.cfg.requestTimeout)
	err := l.mutex.TryLock(tctx)
	cancel()
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

// settings are the backend's configuration, decoded and checked.
type settings struct {
	endpoints   []string
	prefix      string
	ttl         time.Duration
	dialTimeout time.Duration
	// requestTimeout bounds one request to a connected cluster; see
	// defaultRequestTimeout.
	requestTimeout time.Duration
	// stopBeforeExpiry is how long before its lease can expire a lock
	// is declared lost (see watch); under ttl.
	stopBeforeExpiry time.Duration
	tls              *tls.Config
	username         string
	password         string
}

// defaultSettings are what an unconfigured backend uses: a local etcd,
// on the port and with the dial timeout etcdctl would use, and a TTL
// short enough that a crashed holder's lock frees within seconds.
func defaultSettings() settings {
	return settings{
		endpoints:      []string{"127.0.0.1:2379"},
		prefix:         "/lockmgr/",
		ttl:            10 * time.Second,
		dialTimeout:    5 * time.Second,
		requestTimeout: defaultRequestTimeout,
	}
}

// defaultRequestTimeout is how long a request to a connected cluster may
// take: etcd answers a request it cannot serve (a proposal lost with a
// leader that died) only when its own request timeout expires, 5s and two
// election timeouts, 7s with etcd's default election timeout of 1s; a
// second more is for the answer's way back. Cut shorter, the request
// would be given up just before etcd said it may be tried again.
const defaultRequestTimeout = 8 * time.Second

func (s settings) endpointList() string { return strings.Join(s.endpoints, ",") }

// errUnreachable is why a lock failed when etcd did not answer in time.
// It stands in for the context.DeadlineExceeded of the bounded call, which
// must not reach the caller: that would read as the caller's own wait
// timing out (backend.ErrTimeout), which it did not.
var errUnreachable = fmt.Errorf("%w: etcd did not answer", backend.ErrUnavailable)

// cause turns an error from etcd, met while doing what, into the error
// Acquire or Inspect reports: the caller's own deadline or cancel as
// backend.ErrTimeout or backend.ErrCanceled, and anything else with the
// endpoints it came from.
func (s settings) cause(ctx context.Context, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return backend.WaitError(ctx)
	case errors.Is(err, backend.ErrBusy):
		return err
	case errors.Is(err, errLeaseGone):
		return redact(fmt.Errorf("%s at %s: %w", what, s.endpointList(), err))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return redact(fmt.Errorf("%s: %w at %s within %v (dial_timeout)", what, errUnreachable, s.endpointList(), s.dialTimeout))
	case isAuthError(err):
		// The settings' username and password, or the user's rights: a
		// matter for the configuration, not for trying again.
		return redact(fmt.Errorf("%s at %s: %w: %w", what, s.endpointList(), backend.ErrConfig, err))
	}
	// Anything else etcd says is the service failing to serve.
	return redact(fmt.Errorf("%s at %s: %w: %w", what, s.endpointList(), backend.ErrUnavailable, err))
}

// unanswered is the error of an Acquire that gave up after spent, with
// the cluster never having served it: the service unavailable, naming the
// endpoints (without their credentials) and what went wrong last, never
// the raw gRPC status. why says what ended it, if not the caller's
// deadline.
func (s settings) unanswered(spent time.Duration, last error, why string) error {
	return redact(fmt.Errorf("%w: etcd at %s did not serve the lock within %v: %s%s",
		backend.ErrUnavailable, s.endpointList(), spent.Round(100*time.Millisecond), problem(last), why))
}

// problem says in a few words what last went wrong with a request.
func problem(err error) string {
	var ee rpctypes.EtcdError
	switch {
	case errors.Is(err, errNoConnection):
		return errNoConnection.Error()
	case errors.Is(err, errLeaseGone), errors.Is(err, concurrency.ErrSessionExpired), errors.Is(err, rpctypes.ErrLeaseNotFound):
		return "the lease expired for want of answers"
	case errors.As(err, &ee):
		return ee.Error() // etcd's own words: "etcdserver: no leader"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "no answer"
	}
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// redacted is an error whose text hides the user info of every URL in it
// (an endpoint written http://user:password@host:2379), since errors end
// up in logs and on terminals; errors.Is and As still see the error
// inside.
type redacted struct{ err error }

func redact(err error) error { return redacted{err} }

func (r redacted) Error() string { return config.RedactUserinfo(r.err.Error()) }

func (r redacted) Unwrap() error { return r.err }

// isAuthError reports whether etcd refused the settings' username and
// password, or the user's rights.
func isAuthError(err error) bool {
	for _, auth := range []error{rpctypes.ErrAuthFailed, rpctypes.ErrPermissionDenied, rpctypes.ErrInvalidAuthToken, rpctypes.ErrUserEmpty} {
		if errors.Is(err, auth) {
			return true
		}
	}
	return false
}

// settingKeys are the keys of [backends.etcd], each with its decoder.
var settingKeys = map[string]func(*settings, json.RawMessage) error{
	"endpoints":    decodeEndpoints,
	"prefix":       func(s *settings, v json.RawMessage) error { return decodeString(v, &s.prefix) },
	"ttl":          decodeTTL,
	"dial_timeout": decodeDialTimeout,
	"request_timeout": func(s *settings, v json.RawMessage) error {
		return decodePositive(v, &s.requestTimeout)
	},
	"stop_before_expiry": decodeStopBeforeExpiry,
	"tls_ca":             nil, // read together with tls_cert and tls_key
	"tls_cert":           nil,
	"tls_key":            nil,
	"username":           func(s *settings, v json.RawMessage) error { return decodeString(v, &s.username) },
	"password":           decodePassword,
}

// configError is a setting refused, naming the key but never its value,
// which may be a secret, unless the caller put it in why.
func configError(key, why string) error {
	return &backend.Error{Op: "configure", Backend: backendName,
		Err: fmt.Errorf("%w: %s: %s", backend.ErrConfig, key, why)}
}

// parseSettings decodes the JSON object the host sends to Configure.
func parseSettings(raw []byte) (settings, error) {
	s := defaultSettings()
	if len(bytes.TrimSpace(raw)) == 0 {
		return s, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		// The decoder's message may quote the text, and with it a password.
		return s, &backend.Error{Op: "configure", Backend: backendName,
			Err: fmt.Errorf("%w: the settings are not one JSON object", backend.ErrConfig)}
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the same first error every time
	for _, k := range keys {
		decode, known := settingKeys[k]
		if !known {
			return s, configError(k, "unknown key (known: endpoints, prefix, ttl, dial_timeout, request_timeout, stop_before_expiry, tls_ca, tls_cert, tls_key, username, password)")
		}
		if decode == nil || string(fields[k]) == "null" {
			continue
		}
		if err := decode(&s, fields[k]); err != nil {
			return s, configError(k, err.Error())
		}
	}
	if err := decodeTLS(&s, fields); err != nil {
		return s, err
	}
	switch {
	case s.stopBeforeExpiry >= s.ttl:
		return s, configError("stop_before_expiry", fmt.Sprintf("%v is not shorter than the ttl, %v", s.stopBeforeExpiry, s.ttl))
	case s.password != "" && s.username == "":
		return s, configError("password", "given without a username")
	case s.username != "" && s.password == "":
		return s, configError("username", "given without a password")
	}
	return s, nil
}

func decodeString(v json.RawMessage, into *string) error {
	if err := json.Unmarshal(v, into); err != nil {
		return errors.New("want a string")
	}
	return nil
}

func decodePassword(s *settings, v json.RawMessage) error {
	if err := json.Unmarshal(v, &s.password); err != nil {
		return errors.New("want a string") // and not a word of what it was
	}
	return nil
}

// decodeEndpoints takes a comma-separated string, as an environment
// variable gives it, or an array of strings, as TOML does.
func decodeEndpoints(s *settings, v json.RawMessage) error {
	var list []string
	var one string
	if err := json.Unmarshal(v, &one); err == nil {
		list = strings.Split(one, ",")
	} else if err := json.Unmarshal(v, &list); err != nil {
		return errors.New(`want a string ("host:port,host:port") or an array of strings`)
	}
	var eps []string
	for _, ep := range list {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			continue
		}
		if err := checkEndpoint(ep); err != nil {
			return err
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return errors.New("no endpoint given")
	}
	s.endpoints = eps
	return nil
}

// checkEndpoint accepts what etcdctl's --endpoints does: host:port, or a
// URL with the http, https, unix or unixs scheme.
func checkEndpoint(ep string) error {
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return fmt.Errorf("endpoint %q is not a URL", config.RedactUserinfo(ep))
		}
		switch u.Scheme {
		case "http", "https", "unix", "unixs":
			return nil
		}
		return fmt.Errorf("endpoint %q: scheme %q is not http, https, unix or unixs", config.RedactUserinfo(ep), u.Scheme)
	}
	if _, port, err := net.SplitHostPort(ep); err != nil || port == "" {
		return fmt.Errorf("endpoint %q is not host:port or a URL", config.RedactUserinfo(ep))
	}
	return nil
}

// decodeDuration takes a JSON number of seconds, or a string: a number of
// seconds ("5", as an environment variable gives it) or a Go duration
// ("1500ms").
func decodeDuration(v json.RawMessage) (time.Duration, error) {
	var text string
	if err := json.Unmarshal(v, &text); err != nil {
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return 0, errors.New(`want seconds (5) or a duration ("5s")`)
		}
		text = n.String()
	}
	text = strings.TrimSpace(text)
	if secs, err := strconv.ParseFloat(text, 64); err == nil {
		if secs > float64(1<<31) || secs < -float64(1<<31) {
			return 0, fmt.Errorf("%q seconds is out of range", text)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		return 0, fmt.Errorf(`%q is neither seconds (5) nor a duration ("5s")`, text)
	}
	return d, nil
}

// decodeTTL takes the lease TTL, which etcd counts in whole seconds.
func decodeTTL(s *settings, v json.RawMessage) error {
	d, err := decodeDuration(v)
	switch {
	case err != nil:
		return err
	case d < time.Second:
		return fmt.Errorf("%v is under the minimum of 1s", d)
	case d%time.Second != 0:
		return fmt.Errorf("%v is not a whole number of seconds, which is what an etcd lease counts in", d)
	}
	s.ttl = d
	return nil
}

func decodeDialTimeout(s *settings, v json.RawMessage) error {
	return decodePositive(v, &s.dialTimeout)
}

// decodeStopBeforeExpiry takes a duration of zero or more.
func decodeStopBeforeExpiry(s *settings, v json.RawMessage) error {
	d, err := decodeDuration(v)
	switch {
	case err != nil:
		return err
	case d < 0:
		return fmt.Errorf("%v is negative", d)
	}
	s.stopBeforeExpiry = d
	return nil
}

// decodePositive takes a duration that must be positive.
func decodePositive(v json.RawMessage, into *time.Duration) error {
	d, err := decodeDuration(v)
	switch {
	case err != nil:
		return err
	case d <= 0:
		return fmt.Errorf("%v is not positive", d)
	}
	*into = d
	return nil
}

// decodeTLS reads the certificate files the tls_* keys name, now, so that
// a wrong path is an error of the configuration rather than of a lock.
func decodeTLS(s *settings, fields map[string]json.RawMessage) error {
	var ca, cert, key string
	for k, into := range map[string]*string{"tls_ca": &ca, "tls_cert": &cert, "tls_key": &key} {
		if v, ok := fields[k]; ok && string(v) != "null" {
			if err := decodeString(v, into); err != nil {
				return configError(k, err.Error())
			}
		}
	}
	if ca == "" && cert == "" && key == "" {
		return nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return configError("tls_ca", err.Error())
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return configError("tls_ca", fmt.Sprintf("no PEM certificate in %s", ca))
		}
	}
	switch {
	case cert != "" && key == "":
		return configError("tls_key", "tls_cert is given, but not the key that goes with it")
	case key != "" && cert == "":
		return configError("tls_cert", "tls_key is given, but not the certificate that goes with it")
	case cert != "":
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return configError("tls_cert", fmt.Sprintf("%s with key %s: %v", cert, key, err))
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	s.tls = conf
	return nil
}
