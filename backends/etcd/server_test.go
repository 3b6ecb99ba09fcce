package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// etcdServer is a real etcd for the tests: a one-member cluster embedded
// in a process of its own (the test binary re-run), listening on 127.0.0.1
// ports of its own and keeping its data in dir.
//
// It runs apart from the tests so that stopping it is abrupt: a SIGKILL,
// as a crash or a power cut would stop it. Stopped in-process, embed's
// graceful shutdown keeps answering open streams, lease keep-alives among
// them, for seconds (its request timeout), which would blur every
// measurement of what a holder sees when etcd goes away.
type etcdServer struct {
	dir     string
	client  string // host:port
	peer    string
	name    string // the member's name
	cluster string // the initial cluster, as etcd's --initial-cluster takes it
	tick    time.Duration

	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.WriteCloser // kept, since closing it stops the server
}

// Variables that make the test binary an etcd server process.
const (
	serverDir     = "ETCDTEST_SERVER_DIR"
	serverClient  = "ETCDTEST_SERVER_CLIENT"
	serverPeer    = "ETCDTEST_SERVER_PEER"
	serverName    = "ETCDTEST_SERVER_NAME"    // the member's name
	serverCluster = "ETCDTEST_SERVER_CLUSTER" // the initial cluster
	serverTick    = "ETCDTEST_SERVER_TICK"    // the heartbeat interval; an election takes ten
)

// startAttempts bounds how often a server, or a cluster, is started again
// on fresh ports when another process took one of its ports between
// freePort and etcd's own listen (errPortTaken).
const startAttempts = 5

// errPortTaken is a start that failed because a port freePort chose was
// taken before etcd could listen on it.
var errPortTaken = errors.New("a port was taken before etcd listened on it")

// startEtcd starts a server with its data in dir, on free ports.
func startEtcd(dir string) (*etcdServer, error) {
	for attempt := 1; ; attempt++ {
		s, err := newMember(dir, "lockmgr-test")
		if err != nil {
			return nil, err
		}
		s.cluster = s.name + "=http://" + s.peer
		err = s.start()
		if errors.Is(err, errPortTaken) && attempt < startAttempts {
			continue
		}
		return s, err
	}
}

// newMember is a server on free ports, not started, not yet part of a
// cluster.
func newMember(dir, name string) (*etcdServer, error) {
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	return &etcdServer{dir: dir, name: name, client: fmt.Sprintf("127.0.0.1:%d", cport), peer: fmt.Sprintf("127.0.0.1:%d", pport)}, nil
}

// etcdCluster is a real multi-member etcd cluster, each member a process
// of its own that can be killed and restarted like a single server.
type etcdCluster struct {
	members []*etcdServer
}

// startCluster starts n members with their data under dir, electing a
// leader after tick*10 without a heartbeat (etcd's default tick is 100ms).
// The members start together, since none is ready before a quorum is.
func startCluster(dir string, n int, tick time.Duration) (*etcdCluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := startClusterOnce(dir, n, tick)
		if errors.Is(err, errPortTaken) && attempt < startAttempts {
			// The members that did start were killed; their data,
			// made for ports now dropped, goes too.
			if rerr := os.RemoveAll(dir); rerr != nil {
				return nil, rerr
			}
			if rerr := os.MkdirAll(dir, 0o700); rerr != nil {
				return nil, rerr
			}
			continue
		}
		return c, err
	}
}

// startClusterOnce is startCluster's one attempt, on one choice of ports.
func startClusterOnce(dir string, n int, tick time.Duration) (*etcdCluster, error) {
	c := &etcdCluster{}
	var peers []string
	for i := range n {
		m, err := newMember(filepath.Join(dir, fmt.Sprint(i)), fmt.Sprintf("member-%d", i))
		if err != nil {
			return nil, err
		}
		m.tick = tick
		c.members = append(c.members, m)
		peers = append(peers, m.name+"=http://"+m.peer)
	}
	errs := make(chan error, n)
	for _, m := range c.members {
		m.cluster = strings.Join(peers, ",")
		go func() { errs <- m.start() }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && (first == nil || errors.Is(err, errPortTaken)) {
			first = err
		}
	}
	if first != nil {
		c.Stop()
	}
	return c, first
}

// Endpoints are the members' client addresses, as LOCKMGR_ETCD_ENDPOINTS
// takes them.
func (c *etcdCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.Endpoint())
	}
	return eps
}

// survivors are the client addresses of every member but gone.
func (c *etcdCluster) survivors(gone *etcdServer) []string {
	var eps []string
	for _, m := range c.members {
		if m != gone {
			eps = append(eps, m.Endpoint())
		}
	}
	return eps
}

// Stop kills every member.
func (c *etcdCluster) Stop() {
	for _, m := range c.members {
		m.Stop()
	}
}

// Ports for test servers are drawn from below Linux's default ephemeral
// range (32768-60999). A port the kernel hands out for a listen on :0 is
// one it also hands out as the local port of outgoing connections, and
// the tests make many (every client of every server): on a busy machine
// one of them took a port between freePort and etcd's listen.
const (
	portLow  = 20000
	portHigh = 32767
)

// freePort returns a port nothing listens on just now, outside the
// ephemeral range. Another process could still take it before etcd does:
// a start that fails so is made again on fresh ports (errPortTaken).
func freePort() (int, error) {
	var lastErr error
	for range 100 {
		port := portLow + rand.IntN(portHigh-portLow+1)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			lastErr = err
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d: %w", portLow, portHigh, lastErr)
}

// Endpoint is the server's client address, as LOCKMGR_ETCD_ENDPOINTS
// takes it.
func (s *etcdServer) Endpoint() string { return s.client }

func (s *etcdServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=etcd", serverDir+"="+s.dir, serverClient+"="+s.client, serverPeer+"="+s.peer,
		serverName+"="+s.name, serverCluster+"="+s.cluster, serverTick+"="+s.tick.String())
	cmd.Stderr = os.Stderr
	// Its stdin is its lifeline: if the tests die, it follows.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			if strings.Contains(line, "address already in use") {
				return fmt.Errorf("etcd in %s did not start: %q: %w", s.dir, line, errPortTaken)
			}
			return fmt.Errorf("etcd in %s did not start: %q", s.dir, line)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("etcd in %s not ready after a minute", s.dir)
	}
	s.cmd, s.stdin = cmd, stdin
	return nil
}

// Stop kills the server at once: its connections drop, and nothing more
// is answered.
func (s *etcdServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		s.cmd.Wait()
		s.stdin.Close()
		s.cmd, s.stdin = nil, nil
	}
}

// stopped reports whether the server is stopped.
func (s *etcdServer) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd == nil
}

// Restart starts the stopped server again, on the same ports and data.
func (s *etcdServer) Restart() error { return s.start() }

// serveEtcd is the server process's whole life: it runs etcd until its
// stdin closes or it is killed.
func serveEtcd() int {
	cfg := embed.NewConfig()
	cfg.Name = os.Getenv(serverName)
	cfg.Dir = os.Getenv(serverDir)
	client := url.URL{Scheme: "http", Host: os.Getenv(serverClient)}
	peer := url.URL{Scheme: "http", Host: os.Getenv(serverPeer)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = os.Getenv(serverCluster)
	if tick, err := time.ParseDuration(os.Getenv(serverTick)); err == nil && tick > 0 {
		cfg.TickMs = uint(tick / time.Millisecond)
		cfg.ElectionMs = 10 * cfg.TickMs
	}
	// The tests' output is about locks; etcd's own log is noise there.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	// The tests are done with it, or dead: no need to be graceful.
	return 0
}
