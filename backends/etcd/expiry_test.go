package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// delayProxy stands between the backend and etcd like a network with a
// long way each way: it holds what the client sends for toServer, and
// what the server sends for toClient, and it can cut the way to the
// server (what the client sends is dropped from then on, and what is
// still on its way), as a partition would, while the server's answers
// to what reached it still come back.
type delayProxy struct {
	l        net.Listener
	target   string
	toServer time.Duration
	toClient time.Duration
	cut      atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
}

func startDelayProxy(t *testing.T, target string, toServer, toClient time.Duration) *delayProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{l: l, target: target, toServer: toServer, toClient: toClient}
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *delayProxy) Addr() string { return p.l.Addr().String() }

// CutToServer drops everything the client sends from now on.
func (p *delayProxy) CutToServer() { p.cut.Store(true) }

func (p *delayProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(s, c, p.toServer, true)
		go p.pipe(c, s, p.toClient, false)
	}
}

// pipe copies src to dst, each read held for delay after it was read;
// if cuttable, nothing more is written once the proxy is cut.
func (p *delayProxy) pipe(dst, src net.Conn, delay time.Duration, cuttable bool) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	chunks := make(chan chunk, 4096)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{time.Now().Add(delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.at))
		if cuttable && p.cut.Load() {
			continue
		}
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	for range chunks {
	}
	dst.Close()
}

// TestLossPrecedesExpiry: a holder counts its lease's TTL from when it
// sent the renewal the cluster confirmed, which is before the server
// handled it, so that it declares the lock lost before the server can
// expire the lease, however long the answer took to come back. Counted
// from the answer's arrival, the loss would come a return trip after the
// expiry, when another host may hold the lock already.
//
// Here the way to the server takes 0.5s and the way back 1.5s, and the
// way to the server is cut as soon as the lock is held, as a partition
// would cut it: the server expires the lease a TTL after it handled the
// last renewal that reached it, which is half a second after the holder
// sent it. What is compared is the holder's loss and the server's
// deletion of the holder's key, which comes at the expiry or up to half
// a second after (etcd looks for expired leases twice a second): the
// loss must come first. Counted from the answers, it would come a second
// or more after the deletion.
func TestLossPrecedesExpiry(t *testing.T) {
	p := startDelayProxy(t, sharedEtcd.Endpoint(), 500*time.Millisecond, 1500*time.Millisecond)
	b := newTestBackend(t, map[string]any{"endpoints": p.Addr(), "ttl": "5s", "dial_timeout": "10s"})
	name := uniqueName("expiry")
	cli := rawClient(t, sharedEtcd.Endpoint())
	ctx := timeoutContext(t, 2*time.Minute)
	start, err := cli.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	deletes := cli.Watch(ctx, keyPrefix("/lockmgr/", name)+"/", clientv3.WithPrefix(), clientv3.WithFilterPut(),
		clientv3.WithRev(start.Header.Revision+1))
	held, err := b.Acquire(timeoutContext(t, time.Minute), request(name, false))
	if err != nil {
		t.Fatal(err)
	}
	p.CutToServer()
	cut := time.Now()
	var lostAt, deletedAt time.Time
	lost := held.Lost
	for lostAt.IsZero() || deletedAt.IsZero() {
		select {
		case <-lost:
			lostAt, lost = time.Now(), nil
		case resp := <-deletes:
			if len(resp.Events) > 0 && deletedAt.IsZero() {
				deletedAt = time.Now()
			}
		case <-time.After(time.Minute):
			t.Fatalf("a minute after the cut: lost at %v, key deleted at %v", lostAt, deletedAt)
		}
	}
	t.Logf("after the cut: the holder declared the loss at %v, the server deleted its key at %v (TTL 5s)",
		lostAt.Sub(cut).Round(time.Millisecond), deletedAt.Sub(cut).Round(time.Millisecond))
	if !lostAt.Before(deletedAt) {
		t.Errorf("the holder declared the loss %v after the server had deleted its key: it counted its lease from the answers, not from the renewals it sent",
			lostAt.Sub(deletedAt).Round(time.Millisecond))
	}
}

// processRuns reports whether process pid exists and has not exited (a
// zombie has: it runs no more).
func processRuns(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// TestStopBeforeExpiry: with stop_before_expiry longer than lockmgr run's
// --grace, a command that ignores SIGTERM, run under a lock whose holder
// is cut off from etcd, has ended (by SIGKILL) before the server expires
// the lock's lease, so it never runs beside the next holder. The way to
// the server is cut by a proxy, so that the server lives on and its
// deletion of the holder's key shows when the lease expired; the test
// polls the command's /proc entry for its end. TTL 4s, stop_before_expiry
// 2s, --grace 1s: the command is killed a second or more before the lease
// can expire, which leaves a loaded machine a second to deliver SIGKILL.
func TestStopBeforeExpiry(t *testing.T) {
	bin := lockmgrBinary(t)
	p := startDelayProxy(t, sharedEtcd.Endpoint(), 0, 0)
	name := uniqueName("stop-early")
	cli := rawClient(t, sharedEtcd.Endpoint())
	ctx := timeoutContext(t, 2*time.Minute)
	start, err := cli.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	deletes := cli.Watch(ctx, keyPrefix("/lockmgr/", name)+"/", clientv3.WithPrefix(), clientv3.WithFilterPut(),
		clientv3.WithRev(start.Header.Revision+1))
	run := exec.Command(filepath.Join(bin, "lockmgr"), "run", "--backend", "etcd", "--grace", "1s", name, "--", "sh", "-c",
		`echo $$; trap '' TERM; exec sleep 600`)
	run.Env = lockmgrEnv(t, "LOCKMGR_ETCD_ENDPOINTS="+p.Addr(), "LOCKMGR_ETCD_TTL=4", "LOCKMGR_ETCD_STOP_BEFORE_EXPIRY=2")
	r := startLockmgr(t, run)
	line := r.next(t, 30*time.Second)
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("the command said %q, want its pid", line)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	p.CutToServer()
	cut := time.Now()
	var endedAt, deletedAt time.Time
	for tick := time.NewTicker(10 * time.Millisecond); endedAt.IsZero() || deletedAt.IsZero(); {
		select {
		case resp := <-deletes:
			if len(resp.Events) > 0 && deletedAt.IsZero() {
				deletedAt = time.Now()
			}
		case <-tick.C:
			if endedAt.IsZero() && !processRuns(pid) {
				endedAt = time.Now()
			}
		case <-time.After(time.Minute):
			t.Fatalf("a minute after the cut: command ended at %v, key deleted at %v", endedAt, deletedAt)
		}
	}
	t.Logf("after the cut: the command had ended at %v, the server deleted the holder's key at %v (TTL 4s, stop_before_expiry 2s, --grace 1s)",
		endedAt.Sub(cut).Round(time.Millisecond), deletedAt.Sub(cut).Round(time.Millisecond))
	if !endedAt.Before(deletedAt) {
		t.Errorf("the command ran %v beside the lease's expiry", endedAt.Sub(deletedAt).Round(time.Millisecond))
	}
	if code := r.exitCode(t, 30*time.Second); code != 75 {
		t.Errorf("lockmgr run after the loss: exit status %d, want 75 (lock lost)", code)
	}
}
