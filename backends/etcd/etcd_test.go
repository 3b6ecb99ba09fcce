package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/locktest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// testTTL is the lease TTL every test lock gets unless it says otherwise:
// short, so that a killed holder's lock frees in seconds, and the embedded
// server's minimum (one and a half election timeouts, rounded up).
const testTTL = 2 * time.Second

// sharedEtcd is the server most tests lock on. Tests that stop etcd start
// one of their own.
var sharedEtcd *etcdServer

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	if locktest.IsChild() {
		// The suite's helper reaches the parent's server through the
		// LOCKMGR_ETCD_* variables it inherits.
		locktest.Main(m, backendName, inprocBackend)
	}
	dir, err := os.MkdirTemp("", "lockmgr-etcd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sharedEtcd, err = startEtcd(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	// Every host the tests start, and every plugin through its host's
	// configuration, finds the server the way a user's would.
	os.Setenv("LOCKMGR_ETCD_ENDPOINTS", sharedEtcd.Endpoint())
	os.Setenv("LOCKMGR_ETCD_TTL", fmt.Sprint(int(testTTL/time.Second)))
	code := locktest.RunMain(m, backendName, inprocBackend)
	if inproc.b != nil {
		inproc.b.Close()
	}
	sharedEtcd.Stop()
	os.RemoveAll(dir)
	if lockmgrBinaries.dir != "" {
		os.RemoveAll(lockmgrBinaries.dir)
	}
	os.Exit(code)
}

// inproc is the in-process target's backend: one for the whole test
// process, as a plugin serves every handle of its host.
var inproc struct {
	once sync.Once
	b    *Backend
}

func inprocBackend() backend.LockMgr {
	inproc.once.Do(func() {
		inproc.b = newBackend(os.Getpid())
		if err := inproc.b.Configure(context.Background(), envSettings()); err != nil {
			panic(err)
		}
	})
	return inproc.b
}

// envSettings builds the settings JSON from LOCKMGR_ETCD_* variables as
// lockmgr's configuration does: each variable is a key, and every value a
// string.
func envSettings() []byte {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if key, ok := strings.CutPrefix(k, "LOCKMGR_ETCD_"); ok && v != "" {
			m[strings.ToLower(key)] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// newTestBackend returns a backend configured with settings over the
// shared server's endpoint and the test TTL; the test's cleanup closes it.
func newTestBackend(t *testing.T, settings map[string]any) *Backend {
	t.Helper()
	all := map[string]any{"endpoints": sharedEtcd.Endpoint(), "ttl": int(testTTL / time.Second)}
	for k, v := range settings {
		all[k] = v
	}
	raw, _ := json.Marshal(all)
	b := newBackend(os.Getpid())
	if err := b.Configure(context.Background(), raw); err != nil {
		t.Fatalf("Configure(%s): %v", raw, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// rawClient is a plain etcd client for the tests to look behind the
// backend's back, or to lock the way etcdctl does.
func rawClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// uniqueName returns a lock name no other test or earlier run uses.
func uniqueName(what string) string { return "test/" + what + "/" + rand.Text() }

// plainName returns a unique lock name with no "/" or "%", which its etcd
// keys spell as it is, as `etcdctl lock` does.
func plainName(what string) string { return "test-" + what + "-" + rand.Text() }

// request asks for an exclusive lock on name, as a Handle would for
// lockmgr.New(name).
func request(name string, wait bool) backend.Request {
	return backend.Request{Path: "/nonexistent/" + name, Name: name, Wait: wait}
}

func timeoutContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) { locktest.Run(t) }

func TestKeyPrefix(t *testing.T) {
	for _, c := range []struct{ prefix, name, want string }{
		{"/lockmgr/", "job", "/lockmgr/job"},
		{"/lockmgr/", "/var/run/job", "/lockmgr/%2Fvar%2Frun%2Fjob"},
		{"/lockmgr/", "jobs/nightly", "/lockmgr/jobs%2Fnightly"},
		{"", "job", "job"}, // etcdctl lock job
		{"", "/job", "%2Fjob"},
		{"", "100%", "100%25"},
		{"", "a%2Fb", "a%252Fb"},
		{"", "a/b", "a%2Fb"},
		{"locks-", "job", "locks-job"},
		{"/lockmgr/", "job.x-y_z:1 é", "/lockmgr/job.x-y_z:1 é"},
	} {
		if got := keyPrefix(c.prefix, c.name); got != c.want {
			t.Errorf("keyPrefix(%q, %q) = %q, want %q", c.prefix, c.name, got, c.want)
		}
	}
}

// TestNamesIndependent: distinct names are distinct locks, whatever
// slashes or percent signs they hold: a holder of one never blocks another,
// neither parent nor child (job and job/x), nor names that differed only
// by a slash the prefix already had, nor a name that spells another's
// escape. Inspect agrees with the locks.
func TestNamesIndependent(t *testing.T) {
	b := newTestBackend(t, nil)
	base := "test-independent-" + rand.Text()
	for _, pair := range [][2]string{
		{base, base + "/x"},
		{base + "/x", base},
		{base + "/a/b", base + "/a"},
		{base, "/" + base},
		{base + "/y", base + "%2Fy"},
		{base + "%", base + "%25"},
	} {
		held, err := b.Acquire(context.Background(), request(pair[0], false))
		if err != nil {
			t.Fatalf("lock %q: %v", pair[0], err)
		}
		other, err := b.Acquire(context.Background(), request(pair[1], false))
		if err != nil {
			t.Errorf("lock %q while %q is held: %v, want it granted: distinct names are independent", pair[1], pair[0], err)
		} else {
			b.Release(context.Background(), other.ID)
		}
		if st, err := b.Inspect(context.Background(), pair[1]); err != nil || len(st.Holders)+len(st.Waiters) != 0 {
			t.Errorf("Inspect %q while only %q is held: %+v, %v; want it free", pair[1], pair[0], st, err)
		}
		if st, err := b.Inspect(context.Background(), pair[0]); err != nil || len(st.Holders) != 1 {
			t.Errorf("Inspect %q while it is held: %+v, %v; want one holder", pair[0], st, err)
		}
		if err := b.Release(context.Background(), held.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeyLayout checks the documented layout on a real server: the
// holder's key is PREFIX+NAME/LEASE, attached to that lease, its value
// names this process, its create revision is the fencing token, and
// Inspect reports it first and a waiter after it.
func TestKeyLayout(t *testing.T) {
	b := newTestBackend(t, map[string]any{"prefix": "/layout-test/"})
	name := "/" + uniqueName("layout")
	held, err := b.Acquire(context.Background(), request(name, false))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release(context.Background(), held.ID)
	cli := rawClient(t, sharedEtcd.Endpoint())
	// The name's slashes are spelled %2F (see keyName).
	pfx := "/layout-test/" + strings.ReplaceAll(name, "/", "%2F") + "/"
	resp, err := cli.Get(context.Background(), pfx, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("%d keys under %s, want the holder's alone", len(resp.Kvs), pfx)
	}
	kv := resp.Kvs[0]
	if want := fmt.Sprintf("%s%x", pfx, kv.Lease); string(kv.Key) != want || kv.Lease == 0 {
		t.Errorf("holder key %s (lease %x), want %s on its lease", kv.Key, kv.Lease, want)
	}
	if uint64(kv.CreateRevision) != held.FencingToken {
		t.Errorf("fencing token %d, want the key's create revision %d", held.FencingToken, kv.CreateRevision)
	}
	var rec ownerRecord
	if err := json.Unmarshal(kv.Value, &rec); err != nil || rec.PID != os.Getpid() {
		t.Errorf("holder key's value %q (%v), want JSON naming pid %d", kv.Value, err, os.Getpid())
	}

	// A waiter in another backend (another host, as far as etcd knows).
	w := newTestBackend(t, map[string]any{"prefix": "/layout-test/"})
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() {
		_, err := w.Acquire(ctx, request(name, true))
		waited <- err
	}()
	defer func() { cancel(); <-waited }()
	var st backend.Status
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, err = b.Inspect(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		if len(st.Waiters) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(st.Holders) != 1 || len(st.Waiters) != 1 {
		t.Fatalf("Inspect: %d holders, %d waiters, want 1 and 1: %+v", len(st.Holders), len(st.Waiters), st)
	}
	h := st.Holders[0]
	host, _ := os.Hostname()
	for _, want := range []string{fmt.Sprintf("lease %x", kv.Lease), "key " + string(kv.Key), fmt.Sprintf("revision %d", kv.CreateRevision), "host " + host} {
		if !strings.Contains(h.Detail, want) {
			t.Errorf("holder detail %q lacks %q", h.Detail, want)
		}
	}
	if h.PID != os.Getpid() || h.Kind != "etcd" || h.Mode != backend.Exclusive {
		t.Errorf("holder %+v, want pid %d, kind etcd, exclusive", h, os.Getpid())
	}
	if st.Waiters[0].PID != -1 {
		t.Errorf("waiter %+v: a waiter's key is empty, so its pid is unknown (-1)", st.Waiters[0])
	}
}

func TestSettings(t *testing.T) {
	good := []struct {
		json  string
		check func(settings) bool
	}{
		{`{}`, func(s settings) bool {
			return strings.Join(s.endpoints, ",") == "127.0.0.1:2379" && s.prefix == "/lockmgr/" && s.ttl == 10*time.Second && s.dialTimeout == 5*time.Second
		}},
		{``, func(s settings) bool { return s.ttl == 10*time.Second }},
		{`{"endpoints": "10.0.0.1:2379, http://10.0.0.2:2379"}`, func(s settings) bool {
			return strings.Join(s.endpoints, ",") == "10.0.0.1:2379,http://10.0.0.2:2379"
		}},
		{`{"endpoints": ["a.example:2379", "https://b.example:2379"]}`, func(s settings) bool {
			return strings.Join(s.endpoints, ",") == "a.example:2379,https://b.example:2379"
		}},
		{`{"ttl": "5"}`, func(s settings) bool { return s.ttl == 5*time.Second }},
		{`{"ttl": 7}`, func(s settings) bool { return s.ttl == 7*time.Second }},
		{`{"ttl": "1m"}`, func(s settings) bool { return s.ttl == time.Minute }},
		{`{"dial_timeout": "250ms"}`, func(s settings) bool { return s.dialTimeout == 250*time.Millisecond }},
		{`{"dial_timeout": "2.5"}`, func(s settings) bool { return s.dialTimeout == 2500*time.Millisecond }},
		{`{}`, func(s settings) bool { return s.requestTimeout == 8*time.Second }},
		{`{"request_timeout": "15s"}`, func(s settings) bool { return s.requestTimeout == 15*time.Second }},
		{`{}`, func(s settings) bool { return s.stopBeforeExpiry == 0 }},
		{`{"ttl": 15, "stop_before_expiry": "6s"}`, func(s settings) bool { return s.stopBeforeExpiry == 6*time.Second }},
		{`{"prefix": ""}`, func(s settings) bool { return s.prefix == "" }},
		{`{"username": "u", "password": "p"}`, func(s settings) bool { return s.username == "u" && s.password == "p" }},
		{`{"ttl": null}`, func(s settings) bool { return s.ttl == 10*time.Second }},
	}
	for _, c := range good {
		s, err := parseSettings([]byte(c.json))
		if err != nil {
			t.Errorf("parseSettings(%s): %v", c.json, err)
		} else if !c.check(s) {
			t.Errorf("parseSettings(%s) = %+v", c.json, s)
		}
	}

	bad := []struct{ json, key string }{
		{`{"endpoint": "a:1"}`, "endpoint"},
		{`{"ttl": "0"}`, "ttl"},
		{`{"ttl": "500ms"}`, "ttl"},
		{`{"ttl": "1500ms"}`, "ttl"},
		{`{"ttl": "soon"}`, "ttl"},
		{`{"ttl": true}`, "ttl"},
		{`{"ttl": -3}`, "ttl"},
		{`{"dial_timeout": "0s"}`, "dial_timeout"},
		{`{"request_timeout": "-1s"}`, "request_timeout"},
		{`{"stop_before_expiry": "-1s"}`, "stop_before_expiry"},
		{`{"ttl": 5, "stop_before_expiry": 5}`, "stop_before_expiry"},
		{`{"endpoints": ""}`, "endpoints"},
		{`{"endpoints": "no-port"}`, "endpoints"},
		{`{"endpoints": "ftp://a:1"}`, "endpoints"},
		{`{"endpoints": 2379}`, "endpoints"},
		{`{"prefix": 1}`, "prefix"},
		{`{"username": "root"}`, "username"},
		{`{"tls_cert": "/etc/ssl/client.pem"}`, "tls_key"},
		{`{"tls_ca": "/nonexistent/ca.pem"}`, "tls_ca"},
	}
	for _, c := range bad {
		_, err := parseSettings([]byte(c.json))
		if !errors.Is(err, backend.ErrConfig) || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), "etcd") {
			t.Errorf("parseSettings(%s): %v, want ErrConfig naming the key %s and the backend", c.json, err, c.key)
		}
	}
}

// TestPasswordNeverShown: whatever goes wrong, the password is in no
// error and in no description.
func TestPasswordNeverShown(t *testing.T) {
	const secret = "Tr0ub4dor-and-3-horses"
	for _, raw := range []string{
		`{"password": "` + secret + `"}`,                       // no username
		`{"username": "root", "password": ["` + secret + `"]}`, // wrong type
		`{"username": "root", "password": "` + secret + `"`,    // not JSON at all
		`{"username": "root", "password": "` + secret + `", "bogus": 1}`,
	} {
		_, err := parseSettings([]byte(raw))
		if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "Tr0ub") {
			t.Errorf("parseSettings(%s): %v, want an error without the password", raw, err)
		}
	}

	// A real server with authentication on, and the wrong password.
	srv, err := startEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	const rootPassword = "the-right-one-0451"
	admin := rawClient(t, srv.Endpoint())
	ctx := timeoutContext(t, time.Minute)
	if _, err := admin.UserAdd(ctx, "root", rootPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{secret, rootPassword} {
		b := newBackend(os.Getpid())
		// Authenticating is part of the dial, and etcd checks a password
		// with bcrypt, which on a loaded machine (under the race
		// detector) can take seconds: the dial is given ample time.
		raw, _ := json.Marshal(map[string]any{"endpoints": srv.Endpoint(), "username": "root", "password": pw, "dial_timeout": "20s"})
		if err := b.Configure(ctx, raw); err != nil {
			t.Fatal(err)
		}
		info, _ := b.Describe(ctx)
		if s := fmt.Sprintf("%+v", info); strings.Contains(s, pw) {
			t.Errorf("Describe shows the password: %s", s)
		}
		held, err := b.Acquire(ctx, request(uniqueName("auth"), false))
		switch {
		case pw == secret && err == nil:
			t.Error("locked with the wrong password")
		case pw == secret && strings.Contains(err.Error(), pw):
			t.Errorf("error shows the password: %v", err)
		case pw == secret && !errors.Is(err, backend.ErrConfig):
			t.Errorf("wrong password: %v, want ErrConfig (a matter for the settings, exit 78)", err)
		case pw == secret:
			t.Logf("wrong password: %v", err)
		case err != nil:
			t.Errorf("with the right password: %v", err)
		default:
			b.Release(ctx, held.ID)
		}
		_, err = b.Inspect(ctx, "anything")
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("Inspect's error shows the password: %v", err)
		}
		b.Close()
	}

	// Through a host and its plugin, with every log turned on: the
	// password reaches the plugin in the settings, and goes no further.
	a := startHost(t, "try", uniqueName("auth-plugin"), "LOCKMGR_LOG=trace",
		"LOCKMGR_ETCD_ENDPOINTS="+srv.Endpoint(), "LOCKMGR_ETCD_USERNAME=root",
		"LOCKMGR_ETCD_PASSWORD="+secret, "LOCKMGR_ETCD_DIAL_TIMEOUT=3")
	line := a.Next(t, 20*time.Second)
	if !strings.HasPrefix(line, "error:") {
		t.Fatalf("host with the wrong password said %q, want an error", line)
	}
	a.Wait(t)
	if out := line + a.stderr.String(); strings.Contains(out, secret) {
		t.Errorf("the password shows in the host's output:\n%s", out)
	}
	t.Logf("through the plugin: %s", line)
}

// TestFencingTokensIncrease: every new holder of a lock, in this process
// or another, through a plugin or not, gets a larger token than the last.
func TestFencingTokensIncrease(t *testing.T) {
	name := uniqueName("fencing")
	opts := [][]lockmgr.Option{
		{lockmgr.WithLockMgr(inprocBackend())},
		locktest.PluginOptions(),
		{lockmgr.WithLockMgr(newTestBackend(t, nil))},
	}
	cli := rawClient(t, sharedEtcd.Endpoint())
	var last uint64
	for i := range 9 {
		h := lockmgr.New(name, opts[i%len(opts)]...)
		if err := h.Lock(timeoutContext(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		token := h.FencingToken()
		if token <= last {
			t.Fatalf("holder %d got token %d, not above the last holder's %d", i, token, last)
		}
		last = token
		// Someone else's write between holders must not confuse it.
		if _, err := cli.Put(context.Background(), "/unrelated", "x"); err != nil {
			t.Fatal(err)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// And across processes, in the process test below.
}

// TestLostWhenEtcdStops: a held lock's lost channel fires when etcd goes
// away, once no member has confirmed its lease for a TTL, which is when
// the lease may expire on the server, and not much later.
func TestLostWhenEtcdStops(t *testing.T) {
	srv, err := startEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	b := newBackend(os.Getpid())
	raw, _ := json.Marshal(map[string]any{"endpoints": srv.Endpoint(), "ttl": "2s", "dial_timeout": "1s"})
	if err := b.Configure(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	name := uniqueName("lost")
	held, err := b.Acquire(context.Background(), request(name, false))
	if err != nil {
		t.Fatal(err)
	}
	// A bare etcd session beside it, to measure the library's own verdict.
	cli := rawClient(t, srv.Endpoint())
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Lost:
		t.Fatal("lost fired while etcd was up")
	case <-time.After(3 * time.Second): // longer than the TTL: keep-alives work
	}
	stopped := time.Now()
	srv.Stop()
	var lostAfter time.Duration
	select {
	case <-held.Lost:
		lostAfter = time.Since(stopped)
	case <-time.After(15 * time.Second):
		t.Fatal("lost did not fire 15s after etcd stopped")
	}
	select {
	case <-sess.Done():
		t.Logf("lost fired %v after etcd stopped; a bare concurrency.Session's Done fired %v after (TTL 2s)", lostAfter, time.Since(stopped))
	case <-time.After(15 * time.Second):
		t.Fatalf("concurrency.Session's Done did not fire 15s after etcd stopped (lost fired after %v)", lostAfter)
	}
	// The last confirmation came before the stop, so the loss is due
	// within a TTL of it; a second more is the slack of a loaded machine.
	if lostAfter > 3*time.Second {
		t.Errorf("lost fired %v after etcd stopped, a second later than the 2s TTL: the server may have expired the lease long before", lostAfter)
	}
	if err := b.Release(context.Background(), held.ID); !errors.Is(err, backend.ErrLost) {
		t.Errorf("Release after the loss: %v, want ErrLost", err)
	}
	// Nothing is left for ever: once etcd is back, the lock is free again
	// within the TTL (the lease could not be revoked while etcd was down).
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	held, err = b.Acquire(timeoutContext(t, 15*time.Second), request(name, true))
	if err != nil {
		t.Fatalf("lock after etcd came back: %v", err)
	}
	t.Logf("lock free again %v after etcd restarted", time.Since(start))
	b.Release(context.Background(), held.ID)
}

// TestKeyDeletedIsLost: a holder whose key someone deletes (an operator's
// `etcdctl del`) has lost the lock, since the next waiter now holds it,
// though its lease lives on; its lost channel fires.
func TestKeyDeletedIsLost(t *testing.T) {
	b := newTestBackend(t, nil)
	name := uniqueName("deleted")
	held, err := b.Acquire(context.Background(), request(name, false))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Lost:
		t.Fatal("lost fired before anything happened")
	case <-time.After(300 * time.Millisecond):
	}
	cli := rawClient(t, sharedEtcd.Endpoint())
	resp, err := cli.Delete(context.Background(), keyPrefix("/lockmgr/", name)+"/", clientv3.WithPrefix())
	if err != nil || resp.Deleted != 1 {
		t.Fatalf("deleting the holder's key: %v, %d deleted", err, resp.Deleted)
	}
	select {
	case <-held.Lost:
	case <-time.After(5 * time.Second):
		t.Fatal("lost did not fire 5s after the holder's key was deleted")
	}
	if err := b.Release(context.Background(), held.ID); !errors.Is(err, backend.ErrLost) {
		t.Fatalf("Release after the key was deleted: %v, want ErrLost", err)
	}
}

// TestLostWhenLeaseRevoked: when the cluster says the lease is gone (an
// operator's `etcdctl lease revoke`), the lock is lost, at once rather
// than a TTL later.
func TestLostWhenLeaseRevoked(t *testing.T) {
	b := newTestBackend(t, map[string]any{"ttl": "10s"})
	name := uniqueName("revoked")
	held, err := b.Acquire(context.Background(), request(name, false))
	if err != nil {
		t.Fatal(err)
	}
	cli := rawClient(t, sharedEtcd.Endpoint())
	resp, err := cli.Get(context.Background(), keyPrefix("/lockmgr/", name)+"/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the holder's key: %v, %v", resp, err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	select {
	case <-held.Lost:
		t.Logf("lost fired %v after the lease was revoked (TTL 10s)", time.Since(revoked))
	case <-time.After(5 * time.Second):
		t.Fatal("lost did not fire 5s after the lock's lease was revoked (TTL 10s)")
	}
	if err := b.Release(context.Background(), held.ID); !errors.Is(err, backend.ErrLost) {
		t.Fatalf("Release after the lease was revoked: %v, want ErrLost", err)
	}
}

// TestWaitEndsWhenEtcdStops: a waiter does not wait for ever on an etcd
// that is gone; it fails once its own lease is gone, without calling it a
// timeout of its own wait.
func TestWaitEndsWhenEtcdStops(t *testing.T) {
	srv, err := startEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	raw, _ := json.Marshal(map[string]any{"endpoints": srv.Endpoint(), "ttl": "2s", "dial_timeout": "1s"})
	holder, waiter := newBackend(os.Getpid()), newBackend(os.Getpid())
	for _, b := range []*Backend{holder, waiter} {
		if err := b.Configure(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
		defer b.Close()
	}
	name := uniqueName("wait-stop")
	if _, err := holder.Acquire(context.Background(), request(name, false)); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := waiter.Acquire(context.Background(), request(name, true))
		got <- err
	}()
	time.Sleep(500 * time.Millisecond)
	stopped := time.Now()
	srv.Stop()
	select {
	case err := <-got:
		if err == nil || errors.Is(err, backend.ErrTimeout) || errors.Is(err, backend.ErrCanceled) {
			t.Fatalf("wait with etcd gone: %v, want an error that is not the caller's timeout or cancel", err)
		}
		t.Logf("wait ended %v after etcd stopped: %v", time.Since(stopped), err)
	case <-time.After(15 * time.Second):
		t.Fatal("still waiting 15s after etcd stopped")
	}
	// And a try with etcd gone fails within the dial timeout, not as busy.
	start := time.Now()
	_, err = waiter.Acquire(context.Background(), request(name, false))
	if err == nil || errors.Is(err, backend.ErrBusy) || errors.Is(err, backend.ErrTimeout) || time.Since(start) > 5*time.Second {
		t.Fatalf("try with etcd gone: %v after %v, want a prompt error that is neither busy nor a timeout", err, time.Since(start))
	}
	// Which is the service being unavailable (lockmgr exits 69).
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("try with etcd gone: %v, want ErrUnavailable", err)
	}
}

// TestMutexInterop: a lock with prefix "" on a name without "/" or "%" is
// etcd's concurrency.Mutex on the lock's name, the very Mutex `etcdctl
// lock NAME` takes, so the two exclude each other both ways.
func TestMutexInterop(t *testing.T) {
	b := newTestBackend(t, map[string]any{"prefix": ""})
	name := plainName("mutex")
	cli := rawClient(t, sharedEtcd.Endpoint())
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	m := concurrency.NewMutex(sess, name)
	ctx := timeoutContext(t, 20*time.Second)
	if err := m.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, request(name, false)); !errors.Is(err, backend.ErrBusy) {
		t.Fatalf("lockmgr lock while a concurrency.Mutex holds the name: %v, want ErrBusy", err)
	}
	st, err := b.Inspect(ctx, name)
	if err != nil || len(st.Holders) != 1 || !strings.Contains(st.Holders[0].Detail, m.Key()) || st.Holders[0].PID != -1 {
		t.Fatalf("Inspect with a concurrency.Mutex holding: %+v, %v, want it as the holder, pid unknown", st, err)
	}
	// Our waiter is granted when the Mutex lets go.
	got := make(chan error, 1)
	var held backend.Held
	go func() {
		var err error
		held, err = b.Acquire(ctx, request(name, true))
		got <- err
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("lockmgr waiter granted while the Mutex held: %v", err)
	default:
	}
	if err := m.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("lockmgr waiter after the Mutex let go: %v", err)
	}
	m2 := concurrency.NewMutex(sess, name)
	if err := m2.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("concurrency.Mutex TryLock while lockmgr holds: %v, want ErrLocked", err)
	}
	if err := b.Release(ctx, held.ID); err != nil {
		t.Fatal(err)
	}
	if err := m2.TryLock(ctx); err != nil {
		t.Fatalf("concurrency.Mutex TryLock once lockmgr let go: %v", err)
	}
	m2.Unlock(ctx)
}

// TestSharedRefused: shared locks are not offered (see etcd.go), and
// asking for one says so rather than granting an exclusive lock.
func TestSharedRefused(t *testing.T) {
	b := newTestBackend(t, nil)
	_, err := b.Acquire(context.Background(), backend.Request{Path: "shared", Name: "shared", Mode: backend.Shared})
	if !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("shared lock: %v, want ErrUnsupported", err)
	}
}

// BenchmarkLockUnlock measures an uncontended lock and release on the
// embedded server: a lease grant, the Mutex's transaction, the holder's
// record, and a revoke.
func BenchmarkLockUnlock(b *testing.B) {
	be := newBackend(os.Getpid())
	raw, _ := json.Marshal(map[string]any{"endpoints": sharedEtcd.Endpoint()})
	if err := be.Configure(context.Background(), raw); err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	req := request(uniqueName("bench"), false)
	for b.Loop() {
		held, err := be.Acquire(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		if err := be.Release(context.Background(), held.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// TestErrorsHideEndpointCredentials: an endpoint URL may carry a user and
// password (http://user:secret@host:2379); no error shows them, neither a
// refused setting nor a cluster out of reach, since errors reach logs and
// terminals.
func TestErrorsHideEndpointCredentials(t *testing.T) {
	const secret = "s3cret-pw"
	_, err := parseSettings([]byte(`{"endpoints": "ftp://alice:` + secret + `@127.0.0.1:1"}`))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("refused endpoint: %v; want an error without the password", err)
	}

	b := newBackend(os.Getpid())
	defer b.Close()
	// A port nothing listens on: every attempt is refused, and the wait
	// ends at dial_timeout.
	raw, _ := json.Marshal(map[string]any{"endpoints": "http://alice:" + secret + "@127.0.0.1:9", "dial_timeout": "300ms"})
	err = b.Configure(context.Background(), raw)
	if err == nil {
		_, err = b.Acquire(context.Background(), request(uniqueName("secret"), false))
	}
	if err == nil {
		t.Fatal("locking through an endpoint nothing listens on succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("unreachable cluster: %q shows the password", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:9") {
		t.Errorf("unreachable cluster: %q does not name the endpoint", err)
	}
}
