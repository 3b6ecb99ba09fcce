package main

// Shared locks are not offered. etcd's reader/writer recipe
// (client/v3/experimental/recipes.RWMutex) cannot be used as it is: its
// waits watch with context.Background, so nothing can cancel them or give
// them a deadline (not even revoking our lease, since they watch the key
// ahead of ours, not our own); it has no try-lock; it orders keys by mod
// revision, which the holder record (ownerRecord) would upset; and its readers
// wait only for keys under PREFIX/write, so a reader would be granted
// beside a concurrency.Mutex holder (etcdctl's, or our own exclusive
// lock) on the same name. A
// correct reader protocol over the Mutex layout is possible (readers that
// mark their keys and wait only for earlier unmarked ones), but it would
// be lockmgr's own invention rather than etcd's, so Capabilities.Shared is
// false and Request.Validate refuses shared locks with ErrUnsupported.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/redact"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
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
	// ending counts the Releases revoking a lock's lease, and a spare's
	// grant, which Close waits for before it closes the client: closed
	// under them, it would cut their revocations short, and the locks
	// would stay held until their leases expire. A plugin whose host dies ends its session and
	// is closed at once (the parent-death signal), so the two meet there.
	ending sync.WaitGroup

	// keepSpare has a lease granted ahead of the next lock (spare.go),
	// in a shared plugin; spare is that lease, and granting says one is
	// being granted.
	keepSpare bool
	spare     *lock
	granting  bool
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

// ownerFor is the holder record of a lock taken for process hostPID, as
// its plugin's session knows it: a shared plugin serves many hosts, none
// of them its parent. Zero leaves the record the backend was made with.
func (b *Backend) ownerFor(hostPID int) ownerRecord {
	if hostPID <= 0 || hostPID == b.owner.PID {
		return b.owner
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", hostPID))
	return ownerRecord{Host: b.owner.Host, PID: hostPID, Command: strings.TrimSpace(string(comm))}
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
		return nil, cfg, redact.Error(fmt.Errorf("connecting to etcd at %s: %w: %w", cfg.endpointList(), kind, err))
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
	spare := b.spare
	b.spare = nil
	b.mu.Unlock()
	for _, l := range locks {
		_ = l.end()
	}
	if spare != nil {
		_ = spare.end()
	}
	b.ending.Wait()
	if cli == nil {
		return nil
	}
	return cli.Close()
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
	// abandoned are the leases of this Acquire's failed attempts whose
	// revocation runs in the background: a key of one of them may still
	// be in line, and even hold the lock (a TryLock the cluster granted,
	// whose answer was lost with a dying leader).
	var abandoned []clientv3.LeaseID
	for pause := 50 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		l, what, queued, err := b.attempt(ctx, cli, cfg, name, req.Wait, b.ownerFor(req.HostPID))
		if err != nil && l != nil {
			abandoned = append(abandoned, l.sess.Lease())
		}
		switch {
		case err == nil:
			b.mu.Lock()
			b.nextID++
			id := b.nextID
			b.locks[id] = l
			b.mu.Unlock()
			return backend.Held{ID: id, FencingToken: uint64(l.rev), Lost: l.lost}, nil
		case errors.Is(err, backend.ErrBusy) && len(abandoned) > 0:
			// The holder may be our own abandoned key: "busy" is said only
			// once none of ours is left. Revoke them now, and ask again.
			if err = revokeAll(ctx, cli, cfg, abandoned); err == nil {
				abandoned = nil
				continue
			}
			if !retryable(err) {
				return fail(cfg.cause(ctx, "revoking a lease of an earlier try", err))
			}
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
// lease expires within its TTL anyway, its keep-alives stopped), and
// then the failed lock is returned too, for the caller to know the
// lease a key of it may still be in line under.
func (b *Backend) attempt(ctx context.Context, cli *clientv3.Client, cfg settings, name string, wait bool, owner ownerRecord) (*lock, string, bool, error) {
	if err := awaitConnection(ctx, cli, cfg.dialTimeout); err != nil {
		return nil, "connecting", false, err
	}
	// Once this attempt is settled, the next lock gets a spare lease.
	defer b.refillSpare(cli, cfg)
	l := b.takeSpare()
	if l != nil {
		l.bind(name)
	} else {
		var err error
		if l, err = grant(ctx, cli, cfg, name); err != nil {
			return nil, "granting a lease", false, err
		}
	}
	err := l.acquire(ctx, wait)
	if err == nil {
		err = l.claim(ctx, owner)
	}
	if err != nil {
		if retryable(err) || (ctx.Err() != nil && !errors.Is(err, errQueued)) {
			go l.end()
			// Returned for its lease, which may still hold a key.
			return l, "locking " + l.mutexPrefix(), l.queued, err
		}
		_ = l.end()
		return nil, "locking " + l.mutexPrefix(), l.queued, err
	}
	return l, "", true, nil
}

// revokeAll revokes leases, each within request_timeout: a lease already
// gone is revoked as far as anyone can tell.
func revokeAll(ctx context.Context, cli *clientv3.Client, cfg settings, leases []clientv3.LeaseID) error {
	for _, id := range leases {
		rctx, cancel := context.WithTimeout(ctx, cfg.requestTimeout)
		_, err := cli.Revoke(rctx, id)
		cancel()
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
	}
	return nil
}

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

// Release implements backend.LockMgr: it revokes the lock's lease, which
// deletes its key at once, so the next waiter need not wait for a TTL.
func (b *Backend) Release(_ context.Context, id backend.HandleID) error {
	b.mu.Lock()
	l := b.locks[id]
	delete(b.locks, id)
	if l != nil {
		// Under mu, so before any Close takes the locks, and so before
		// its Wait.
		b.ending.Add(1)
	}
	b.mu.Unlock()
	if l == nil {
		return backend.Errorf("unlock", "", backendName, backend.ErrNotLocked)
	}
	defer b.ending.Done()
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
