package locktest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Peer is another process in a test, contending for a lock: it says what
// happened in lines on its stdout, and lets go and exits when its stdin
// closes. The helper modes of a re-run test binary, util-linux flock(1),
// a Python script and a C program all fit it, so a backend's tests can put
// any of them against lockmgr the same way.
type Peer struct {
	// Cmd is the running process.
	Cmd      *exec.Cmd
	stdin    io.WriteCloser
	lines    chan string
	stopOnce sync.Once
}

// StartPeer starts cmd as a Peer; the test's cleanup kills it if it is
// still running.
func StartPeer(t testing.TB, cmd *exec.Cmd) *Peer {
	t.Helper()
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Peer{Cmd: cmd, stdin: stdin, lines: make(chan string, 4)}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			p.lines <- s.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(p.Stop)
	return p
}

// Stop ends the peer at once, whatever it is doing, and reaps it; the
// test's cleanup calls it too, and calls after the first do nothing.
func (p *Peer) Stop() {
	p.stopOnce.Do(func() {
		p.stdin.Close()
		p.Cmd.Process.Kill()
		p.Cmd.Wait()
	})
}

// Expect fails the test unless the peer's next line is want.
func (p *Peer) Expect(t testing.TB, want string) {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("%q exited without a word, want %q", p.Cmd.Args, want)
		}
		if line != want {
			t.Fatalf("%q said %q, want %q", p.Cmd.Args, line, want)
		}
	case <-time.After(2 * promptly):
		t.Fatalf("%q said nothing in %v, want %q", p.Cmd.Args, 2*promptly, want)
	}
}

// Next returns the peer's next line, for a line that carries a value (a
// fencing token), failing the test if the peer exits first or says
// nothing within d.
func (p *Peer) Next(t testing.TB, d time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("%q exited without a word", p.Cmd.Args)
		}
		return line
	case <-time.After(d):
		t.Fatalf("%q said nothing in %v", p.Cmd.Args, d)
	}
	return ""
}

// Silent fails the test if the peer says anything within d: it is to be
// still waiting for the lock.
func (p *Peer) Silent(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if ok {
			t.Fatalf("%q said %q, want silence (still waiting)", p.Cmd.Args, line)
		}
		t.Fatalf("%q exited, want it still waiting", p.Cmd.Args)
	case <-time.After(d):
	}
}

// Send writes line to the peer's stdin, for a peer that acts on input
// (the seed's C programs let go when Enter is pressed).
func (p *Peer) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("%q: %v", p.Cmd.Args, err)
	}
}

// LetGo closes the peer's stdin, which makes it let go and exit, without
// waiting for it: for a test that measures what another process sees
// meanwhile. Wait or Release then collects it.
func (p *Peer) LetGo() { p.stdin.Close() }

// Wait lets the peer go and returns how it exited, whichever way that
// was, failing the test if it is still running 2*promptly later.
func (p *Peer) Wait(t testing.TB) error {
	t.Helper()
	p.LetGo()
	done := make(chan error, 1)
	go func() { done <- p.Cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * promptly):
		t.Fatalf("%q still running %v after its stdin closed", p.Cmd.Args, 2*promptly)
	}
	return nil
}

// Release lets the peer go and waits for it to exit cleanly.
func (p *Peer) Release(t testing.TB) {
	t.Helper()
	if err := p.Wait(t); err != nil {
		t.Fatalf("%q: %v", p.Cmd.Args, err)
	}
}

// Said checks that the peer said want, then releases it, so that whatever
// it got is let go before the test goes on.
func (p *Peer) Said(t testing.TB, want string) {
	t.Helper()
	p.Expect(t, want)
	p.Release(t)
}
