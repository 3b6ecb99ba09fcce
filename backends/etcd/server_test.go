package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
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
	dir    string
	client string // host:port
	peer   string

	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.WriteCloser // kept, since closing it stops the server
}

// Variables that make the test binary an etcd server process.
const (
	serverDir    = "ETCDTEST_SERVER_DIR"
	serverClient = "ETCDTEST_SERVER_CLIENT"
	serverPeer   = "ETCDTEST_SERVER_PEER"
)

// startEtcd starts a server with its data in dir, on free ports.
func startEtcd(dir string) (*etcdServer, error) {
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &etcdServer{dir: dir, client: fmt.Sprintf("127.0.0.1:%d", cport), peer: fmt.Sprintf("127.0.0.1:%d", pport)}
	return s, s.start()
}

// freePort returns a port nothing listens on just now. Another process
// could take it before etcd does; on a test machine that is rare enough.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
	cmd.Env = append(os.Environ(), helperEnv+"=etcd", serverDir+"="+s.dir, serverClient+"="+s.client, serverPeer+"="+s.peer)
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

// Restart starts the stopped server again, on the same ports and data.
func (s *etcdServer) Restart() error { return s.start() }

// serveEtcd is the server process's whole life: it runs etcd until its
// stdin closes or it is killed.
func serveEtcd() int {
	cfg := embed.NewConfig()
	cfg.Name = "lockmgr-test"
	cfg.Dir = os.Getenv(serverDir)
	client := url.URL{Scheme: "http", Host: os.Getenv(serverClient)}
	peer := url.URL{Scheme: "http", Host: os.Getenv(serverPeer)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
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
