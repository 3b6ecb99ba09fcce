package main

// The benchmarks behind `make bench`. Each sets lockmgr beside what a
// user would otherwise reach for, as sub-benchmarks of one benchmark, so
// that a noisy machine treats the peers alike and the table reads as a
// comparison (lockmgr-plugin comes first in each):
//
//	BenchmarkUncontended  Lock+Unlock of a free lock (flock, and ofd through its plugin)
//	BenchmarkPipeRoundTrip one byte there and back over pipes between two processes
//	BenchmarkWorkingRoundTrip the same, each process working 10 µs per round trip
//	BenchmarkHandoff      release in one process → acquire in another
//	BenchmarkContended    4 processes × 2,000 locked counter increments
//	BenchmarkDeadHolder   SIGKILL of a process holding the lock → lock free
//	BenchmarkTimeout      how late Lock(ctx) returns after ctx's deadline
//	BenchmarkScale        10,000 locks held at once through one plugin
//
// Only BenchmarkUncontended times a loop. The others count trials: b.N is
// the number of trials (handoffs, kills, timeouts, rounds), so
// `make bench` sets it with -benchtime Nx, they report their own
// metrics, and they suppress ns/op, which would time only the harness.
// `go test -run '^$' -bench . -benchtime 1x` runs every one once, as a
// smoke test. Nothing here asserts on time: the targets are judged by
// the table.
//
// Latencies across processes are read from CLOCK_MONOTONIC, which all
// processes on the machine share; a time.Time's monotonic reading means
// nothing in another process. The other processes are this test binary
// run again, picked by the environment in init, before locktest.Main;
// the one exception is the seed's Python class, testdata/bench/seed_lockmgr.py.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gofrs "github.com/gofrs/flock"
	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"golang.org/x/sys/unix"
)

// The peers, as sub-benchmark names.
const (
	peerPlugin    = "lockmgr-plugin"            // lockmgr through its flock plugin process
	peerPluginOFD = "lockmgr-plugin-ofd"        // lockmgr through the ofd plugin process
	peerInproc    = "lockmgr-inproc"            // lockmgr with the flock backend in-process (WithLockMgr)
	peerKernel    = "kernel-flock"              // flock(2) in Go, blocking in the kernel
	peerGofrs     = "gofrs-flock"               // github.com/gofrs/flock Lock, which blocks in flock(2)
	peerGofrsPoll = "gofrs-trylockcontext-10ms" // gofrs/flock TryLockContext, polling every 10 ms
	peerPython    = "python-seed"               // the seed's Python LockMgr, unlink race and all
)

// gofrsRetry is the retry delay given to gofrs/flock's TryLockContext.
const gofrsRetry = 10 * time.Millisecond

// The environment of a helper process: its role, and what it locks.
const (
	roleEnv      = "LOCKMGR_BENCH_ROLE" // "holder", "waiter" or "contender"
	implEnv      = "LOCKMGR_BENCH_IMPL" // a peer
	pathEnv      = "LOCKMGR_BENCH_PATH"
	dataEnv      = "LOCKMGR_BENCH_DATA"
	cyclesEnv    = "LOCKMGR_BENCH_CYCLES"
	pluginDirEnv = "LOCKMGR_BENCH_PLUGIN_DIR"
	workEnv      = "LOCKMGR_BENCH_WORK" // the echo's work per round trip, a time.Duration
)

func init() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(benchHelper(role))
	}
}

// peerLock is what every peer offers: an exclusive lock that waits.
type peerLock interface {
	Lock(ctx context.Context) error
	Unlock() error
	Close() error
}

func newPeerLock(impl, path, pluginDir string) (peerLock, error) {
	switch impl {
	case peerPlugin:
		return lockmgr.New(path, lockmgr.WithPluginDir(pluginDir), lockmgr.WithBackend("flock")), nil
	case peerPluginOFD:
		if err := buildOFDPlugin(pluginDir); err != nil {
			return nil, err
		}
		return lockmgr.New(path, lockmgr.WithPluginDir(pluginDir), lockmgr.WithBackend("ofd")), nil
	case peerInproc:
		return lockmgr.New(path, lockmgr.WithLockMgr(newBackend())), nil
	case peerKernel:
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return kernelFlock(fd), nil
	case peerGofrs:
		return gofrsLock{gofrs.New(path)}, nil
	case peerGofrsPoll:
		return gofrsPoll{gofrs.New(path)}, nil
	}
	return nil, fmt.Errorf("no peer %q", impl)
}

// The ofd plugin is built once, beside the flock plugin locktest.Main
// built, from the ofd backend's source (../ofd): the flock and ofd locks
// now travel to the host alike, and the targets cover both.
var (
	ofdPluginOnce sync.Once
	ofdPluginErr  error
)

func buildOFDPlugin(dir string) error {
	ofdPluginOnce.Do(func() {
		ofdPluginErr = locktest.BuildPlugin(filepath.Join("..", "ofd"), "ofd", dir)
	})
	return ofdPluginErr
}

// startPlugin starts a lockmgr handle's plugin (other peers have none),
// so that nothing timed includes it.
func startPlugin(l peerLock) error {
	if h, ok := l.(*lockmgr.Handle); ok {
		_, err := h.Info(context.Background())
		return err
	}
	return nil
}

// kernelFlock is a descriptor kept open and locked with a blocking
// flock(2): the kernel wakes the waiter when the lock is released.
type kernelFlock int

func (k kernelFlock) Lock(context.Context) error {
	for {
		if err := unix.Flock(int(k), unix.LOCK_EX); err != unix.EINTR {
			return err
		}
	}
}

func (k kernelFlock) Unlock() error { return unix.Flock(int(k), unix.LOCK_UN) }
func (k kernelFlock) Close() error  { return unix.Close(int(k)) }

type gofrsLock struct{ f *gofrs.Flock }

func (g gofrsLock) Lock(context.Context) error { return g.f.Lock() }
func (g gofrsLock) Unlock() error              { return g.f.Unlock() }
func (g gofrsLock) Close() error               { return g.f.Close() }

type gofrsPoll struct{ f *gofrs.Flock }

func (g gofrsPoll) Lock(ctx context.Context) error {
	ok, err := g.f.TryLockContext(ctx, gofrsRetry)
	if err == nil && !ok {
		err = errors.New("TryLockContext returned neither the lock nor an error")
	}
	return err
}
func (g gofrsPoll) Unlock() error { return g.f.Unlock() }
func (g gofrsPoll) Close() error  { return g.f.Close() }

func mustPeerLock(b *testing.B, impl, path string) peerLock {
	b.Helper()
	l, err := newPeerLock(impl, path, locktest.PluginDir())
	if err == nil {
		err = startPlugin(l)
	}
	if err != nil {
		b.Fatalf("%s: %v", impl, err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

func mustOK(b *testing.B, what string, err error) {
	b.Helper()
	if err != nil {
		b.Fatalf("%s: %v", what, err)
	}
}

// monotonicNow reads CLOCK_MONOTONIC in nanoseconds: one clock for every process.
func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// quantile returns the q-quantile of xs by nearest rank, sorting xs.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

func micros(ns int64) float64 { return float64(ns) / 1e3 }
func millis(ns int64) float64 { return float64(ns) / 1e6 }

// BenchmarkUncontended times Lock+Unlock of a lock no one else wants:
// through the flock and the ofd plugins (one round trip to lock; the
// plugin hands the locked descriptor over, and unlock is a local close),
// through the flock backend in-process, and with gofrs/flock, which like
// lockmgr opens the file at each lock and closes it at each unlock.
func BenchmarkUncontended(b *testing.B) {
	for _, impl := range []string{peerPlugin, peerPluginOFD, peerInproc, peerGofrs} {
		b.Run(impl, func(b *testing.B) {
			l := mustPeerLock(b, impl, filepath.Join(b.TempDir(), "lock"))
			ctx := context.Background()
			cycle := func() {
				if err := l.Lock(ctx); err != nil {
					b.Fatal(err)
				}
				if err := l.Unlock(); err != nil {
					b.Fatal(err)
				}
			}
			for range 100 {
				cycle()
			}
			lat := make([]float64, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				cycle()
				lat[i] = micros(time.Since(start).Nanoseconds())
			}
			b.StopTimer()
			b.ReportMetric(quantile(lat, 0.50), "p50-µs")
			b.ReportMetric(quantile(lat, 0.99), "p99-µs")
		})
	}
}

// BenchmarkPipeRoundTrip times one byte written to another process over
// a pipe and echoed back over a second pipe: the least a request to a
// plugin process can cost on this machine, and the yardstick the
// Uncontended target is read against (its p50 as a multiple of this
// p50). The echo is this test binary run again, as every helper is.
func BenchmarkPipeRoundTrip(b *testing.B) { benchRoundTrip(b, 0) }

// BenchmarkWorkingRoundTrip is BenchmarkPipeRoundTrip with roundTripWork
// of processor time spent on each side of each round trip, as a plugin's
// host and the plugin each spend about that much on a Lock+Unlock
// (perf sched, both pinned to one CPU: 11 to 12 µs in each). It is the
// least any two-process design with lockmgr's work could take here. Two
// processes that each work between messages seldom share a CPU, so each
// message wakes a processor that went idle, and what that costs is the
// machine's: on a virtual machine whose idle processors halt at once
// (guest_halt_poll_ns 0) it is most of the round trip
// (docs/performance.rst, "The machine's floor").
func BenchmarkWorkingRoundTrip(b *testing.B) { benchRoundTrip(b, roundTripWork) }

// roundTripWork is what BenchmarkWorkingRoundTrip's two processes each
// spend per round trip: a little less than a plugin round trip's.
const roundTripWork = 10 * time.Microsecond

// benchRoundTrip times round trips to an echo process, each side spending
// work on the processor per round trip.
func benchRoundTrip(b *testing.B, work time.Duration) {
	toEcho, echoIn, err := os.Pipe()
	mustOK(b, "pipe", err)
	echoOut, fromEcho, err := os.Pipe()
	mustOK(b, "pipe", err)
	exe, err := os.Executable()
	mustOK(b, "finding the test binary", err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"=echo", workEnv+"="+work.String())
	// *os.File stdin and stdout are the pipes themselves, with no copying
	// goroutine between: the echo reads and writes them directly.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = toEcho, fromEcho, os.Stderr
	mustOK(b, "starting the echo", cmd.Start())
	toEcho.Close()
	fromEcho.Close()
	b.Cleanup(func() {
		echoIn.Close() // the echo sees end-of-file and exits
		_ = cmd.Wait()
		echoOut.Close()
	})
	wfd, rfd := int(echoIn.Fd()), int(echoOut.Fd())
	one := []byte{'x'}
	roundTrip := func() {
		if _, err := unix.Write(wfd, one); err != nil {
			b.Fatalf("writing to the echo: %v", err)
		}
		for {
			n, err := unix.Read(rfd, one)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n != 1 {
				b.Fatalf("reading the echo: %d bytes, %v", n, err)
			}
			break
		}
		spin(work)
	}
	for range 100 {
		roundTrip()
	}
	lat := make([]float64, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		roundTrip()
		lat[i] = micros(time.Since(start).Nanoseconds())
	}
	b.StopTimer()
	b.ReportMetric(quantile(lat, 0.50), "p50-µs")
	b.ReportMetric(quantile(lat, 0.99), "p99-µs")
}

// spin keeps the processor busy for d: work, not a sleep, so that the
// process stays on its CPU as a host or a plugin at work does.
func spin(d time.Duration) {
	if d <= 0 {
		return
	}
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// echo is the round-trip benchmarks' other process: it writes back each
// byte it reads on stdin, after spending the work its environment names,
// until end-of-file.
func echo() int {
	work, err := time.ParseDuration(os.Getenv(workEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", workEnv+":", err)
		return 1
	}
	var buf [1]byte
	for {
		n, err := unix.Read(0, buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			fmt.Fprintln(os.Stderr, "echo: read:", err)
			return 1
		case n == 0:
			return 0
		}
		spin(work)
		if _, err := unix.Write(1, buf[:n]); err != nil {
			fmt.Fprintln(os.Stderr, "echo: write:", err)
			return 1
		}
	}
}

// BenchmarkHandoff measures, across processes, the time from a holder's
// release to a waiting process's acquire: the holder (this process)
// reads the clock just before it unlocks, the waiter just after its lock
// returns. Each peer is on both sides: lockmgr waits with non-blocking
// attempts woken by inotify, flock(2) is woken by the kernel itself, and
// gofrs/flock polls every 10 ms. b.N is the number of handoffs.
func BenchmarkHandoff(b *testing.B) {
	for _, impl := range []string{peerPlugin, peerKernel, peerGofrsPoll} {
		b.Run(impl, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "lock")
			holder := mustPeerLock(b, impl, path)
			ctx := context.Background()
			mustOK(b, "holder: lock", holder.Lock(ctx))
			w := startBenchProc(b, "waiter", impl, path)
			w.expect(b, "ready")
			hold := rand.New(rand.NewPCG(1, 2))
			lat := make([]float64, 0, b.N)
			for range b.N {
				w.Send(b, "wait")
				w.expect(b, "waiting")
				// Hold on long enough for the waiter to be well into its
				// wait, and for varying times, so that releases fall at
				// every point of a waiter's backoff.
				time.Sleep(2*time.Millisecond + time.Duration(hold.Int64N(int64(8*time.Millisecond))))
				released := monotonicNow()
				mustOK(b, "holder: unlock", holder.Unlock())
				acquired := w.clockReading(b)
				lat = append(lat, micros(acquired-released))
				// The waiter let go before it answered: this does not wait.
				mustOK(b, "holder: lock", holder.Lock(ctx))
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(quantile(lat, 0.50), "p50-µs")
			b.ReportMetric(quantile(lat, 0.99), "p99-µs")
			b.ReportMetric(quantile(lat, 1), "max-µs")
		})
	}
}

// Contention: this many processes, each this many cycles.
const (
	contenders    = 4
	contendCycles = 2000
)

// BenchmarkContended runs 4 processes that each lock, increment a counter
// kept in another file (read, add one, write), and unlock, 2,000 times.
// It reports the cycles per second of all four together, timed from
// when all are ready, and the updates lost: 8,000 less the final count.
// Only a lock that excludes loses none. b.N is the number of rounds.
func BenchmarkContended(b *testing.B) {
	for _, impl := range []string{peerPlugin, peerInproc, peerKernel, peerGofrs, peerPython} {
		b.Run(impl, func(b *testing.B) {
			var python string
			if impl == peerPython {
				var err error
				if python, err = exec.LookPath("python3"); err != nil {
					b.Skip("no python3 for the seed's LockMgr")
				}
			}
			var elapsed time.Duration
			lost := 0
			for range b.N {
				d, n := contendRound(b, impl, python)
				elapsed += d
				lost += n
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(b.N*contenders*contendCycles)/elapsed.Seconds(), "cycles/s")
			b.ReportMetric(float64(lost)/float64(b.N), "lost-updates")
		})
	}
}

func contendRound(b *testing.B, impl, python string) (time.Duration, int) {
	dir := b.TempDir()
	lock, data := filepath.Join(dir, "lock"), filepath.Join(dir, "counter")
	hs := make([]*benchProc, contenders)
	for i := range hs {
		if impl == peerPython {
			hs[i] = startProc(b, exec.Command(python, filepath.Join("testdata", "bench", "seed_lockmgr.py"),
				"contend", lock, data, strconv.Itoa(contendCycles)))
		} else {
			hs[i] = startBenchProc(b, "contender", impl, lock,
				dataEnv+"="+data, cyclesEnv+"="+strconv.Itoa(contendCycles))
		}
	}
	for _, h := range hs {
		h.expect(b, "ready")
	}
	start := time.Now()
	for _, h := range hs {
		h.Send(b, "go")
	}
	for _, h := range hs {
		h.expect(b, "done")
	}
	elapsed := time.Since(start)
	raw, err := os.ReadFile(data)
	mustOK(b, "reading the counter", err)
	n, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	mustOK(b, "parsing the counter", err)
	return elapsed, contenders*contendCycles - n
}

// increment adds one to the counter in f, written as ten digits so that
// every write covers the last whole even when writers race (the seed's).
func incrementCounter(f *os.File) error {
	var buf [32]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && err != io.EOF {
		return err
	}
	v := 0
	if s := strings.TrimSpace(string(buf[:n])); s != "" {
		if v, err = strconv.Atoi(s); err != nil {
			return fmt.Errorf("counter %q: %w", s, err)
		}
	}
	_, err = f.WriteAt([]byte(fmt.Sprintf("%010d", v+1)), 0)
	return err
}

// BenchmarkDeadHolder kills (SIGKILL) a process that holds the lock and
// times how long until a waiter in this process, already waiting, has
// it. Through lockmgr, the holder holds the locked descriptor its plugin
// handed over, so the kernel releases the lock at the holder's own exit,
// as with flock(2); a lockmgr waiter then learns of it from the inotify
// event it sleeps on, where flock(2)'s waiter is woken by the kernel.
// b.N is the number of kills.
func BenchmarkDeadHolder(b *testing.B) {
	const bound = 50 * time.Millisecond
	for _, impl := range []string{peerPlugin, peerKernel} {
		b.Run(impl, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "lock")
			waiter := mustPeerLock(b, impl, path)
			type result struct {
				at  int64
				err error
			}
			lat := make([]float64, 0, b.N)
			within := 0
			for range b.N {
				h := startBenchProc(b, "holder", impl, path)
				h.expect(b, "locked")
				got := make(chan result, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					err := waiter.Lock(ctx)
					got <- result{monotonicNow(), err}
				}()
				time.Sleep(5 * time.Millisecond) // into its wait
				killed := monotonicNow()
				h.Cmd.Process.Kill()
				var r result
				select {
				case r = <-got:
				case <-time.After(procPatience):
					b.Fatalf("lock still held %v after its holder was killed", procPatience)
				}
				if r.err != nil {
					b.Fatalf("lock after its holder was killed: %v", r.err)
				}
				lat = append(lat, millis(r.at-killed))
				if time.Duration(r.at-killed) <= bound {
					within++
				}
				mustOK(b, "unlock", waiter.Unlock())
				h.Stop()
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(quantile(lat, 0.50), "p50-ms")
			b.ReportMetric(quantile(lat, 1), "max-ms")
			b.ReportMetric(float64(within), "within-50ms")
			b.ReportMetric(float64(b.N), "trials")
		})
	}
}

// BenchmarkTimeout waits with a 100 ms timeout for a lock that another
// descriptor holds, and reports how late after the deadline Lock
// returned. It also counts the waits that ended with the wrong error: a
// wait past its deadline must report a timeout (ErrTimeout, matching
// context.DeadlineExceeded), and through the plugin it sometimes reports
// a cancel instead, when the host's cancel reaches the plugin before the
// plugin's own deadline fires. b.N is the number of waits.
func BenchmarkTimeout(b *testing.B) {
	const timeout = 100 * time.Millisecond
	for _, impl := range []string{peerPlugin, peerInproc, peerGofrsPoll} {
		b.Run(impl, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "lock")
			holder := mustPeerLock(b, peerKernel, path)
			mustOK(b, "holder: lock", holder.Lock(context.Background()))
			waiter := mustPeerLock(b, impl, path)
			late := make([]float64, 0, b.N)
			wrong := 0
			for range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				deadline, _ := ctx.Deadline()
				err := waiter.Lock(ctx)
				returned := time.Now()
				cancel()
				switch {
				case err == nil:
					b.Fatal("Lock took a lock another descriptor holds")
				case errors.Is(err, context.Canceled):
					if wrong == 0 {
						b.Logf("Lock past its deadline: %v, want a timeout", err)
					}
					wrong++
				case !errors.Is(err, context.DeadlineExceeded):
					b.Fatalf("Lock past its deadline: %v, want a timeout", err)
				}
				late = append(late, millis(returned.Sub(deadline).Nanoseconds()))
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(wrong), "canceled-not-timeout")
			b.ReportMetric(quantile(late, 0.50), "late-p50-ms")
			b.ReportMetric(quantile(late, 0.99), "late-p99-ms")
			b.ReportMetric(quantile(late, 1), "late-max-ms")
		})
	}
}

// Scale: locks held at once, and the probe locks timed beside them.
const (
	scaleHeld   = 10000
	scaleProbes = 500
)

// BenchmarkScale holds 10,000 locks at once, each on its own file through
// its own Handle, all served by one plugin process (in-process for the
// peer). It reports how many were acquired, the plugin's resident memory
// with all held and per lock, and the Lock latency on other files with
// 10,000 held and with 1 held (before taking the 10,000 and after
// releasing them), and their ratio. Every file exists before the first
// lock, so the two latencies differ only in the locks held. b.N is the
// number of rounds.
func BenchmarkScale(b *testing.B) {
	for _, impl := range []string{peerPlugin, peerInproc} {
		b.Run(impl, func(b *testing.B) {
			var s scaleResult
			for range b.N {
				s.add(scaleRound(b, impl))
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(s.held)/float64(b.N), "held")
			one, all := quantile(s.oneHeld, 0.5), quantile(s.allHeld, 0.5)
			b.ReportMetric(one, "p50-µs-1-held")
			b.ReportMetric(all, "p50-µs-10k-held")
			b.ReportMetric(all/one, "ratio-10k/1")
			b.ReportMetric(s.lockAll.Seconds()*1e3/float64(b.N), "lock-10k-ms")
			if s.rssAll > 0 {
				// MiB and KiB: benchstat would rescale a unit named MB.
				b.ReportMetric(float64(s.rssAll)/float64(b.N)/1024, "rss-MiB")
				b.ReportMetric(float64(s.rssAll-s.rssOne)/float64(s.held), "KiB/lock")
			}
		})
	}
}

type scaleResult struct {
	held             int
	oneHeld, allHeld []float64     // probe Lock latencies, µs
	lockAll          time.Duration // taking every lock
	rssOne, rssAll   int64         // the plugin's VmRSS, kB
}

func (s *scaleResult) add(r scaleResult) {
	s.held += r.held
	s.oneHeld = append(s.oneHeld, r.oneHeld...)
	s.allHeld = append(s.allHeld, r.allHeld...)
	s.lockAll += r.lockAll
	s.rssOne += r.rssOne
	s.rssAll += r.rssAll
}

func scaleRound(b *testing.B, impl string) scaleResult {
	dir := b.TempDir()
	held := make([]string, scaleHeld)
	probes := make([]string, scaleProbes)
	for i := range held {
		held[i] = filepath.Join(dir, fmt.Sprintf("held-%05d", i))
	}
	for i := range probes {
		probes[i] = filepath.Join(dir, fmt.Sprintf("probe-%03d", i))
	}
	for _, p := range append(slices.Clone(held), probes...) {
		mustOK(b, "creating a lock file", os.WriteFile(p, nil, 0o644))
	}
	var opts []lockmgr.Option
	if impl == peerPlugin {
		// A host of its own: a plugin process no other benchmark shares.
		host := pluginhost.New(pluginhost.Options{Dirs: []string{locktest.PluginDir()}})
		opts = []lockmgr.Option{lockmgr.WithHost(host), lockmgr.WithBackend("flock")}
	} else {
		opts = []lockmgr.Option{lockmgr.WithLockMgr(newBackend())}
	}
	ctx := context.Background()
	var handles []*lockmgr.Handle
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	lock := func(path string) (*lockmgr.Handle, time.Duration, error) {
		h := lockmgr.New(path, opts...)
		start := time.Now()
		err := h.Lock(ctx)
		return h, time.Since(start), err
	}
	probe := func() []float64 {
		lat := make([]float64, 0, len(probes))
		for _, p := range probes {
			h, d, err := lock(p)
			mustOK(b, "probe lock", err)
			lat = append(lat, micros(d.Nanoseconds()))
			h.Close()
		}
		return lat
	}

	before := locktest.PluginProcesses(os.Getpid())
	h, _, err := lock(held[0])
	handles = append(handles, h)
	mustOK(b, "first lock", err)
	pid := 0
	if impl == peerPlugin {
		var started []int
		for _, p := range locktest.PluginProcesses(os.Getpid()) {
			if !slices.Contains(before, p) {
				started = append(started, p)
			}
		}
		if len(started) != 1 {
			b.Fatalf("found %d new plugin processes, want 1", len(started))
		}
		pid = started[0]
	}
	var r scaleResult
	probe() // warm up
	r.oneHeld = probe()
	r.rssOne = vmRSS(pid)
	r.held = 1
	start := time.Now()
	for _, p := range held[1:] {
		h, _, err := lock(p)
		handles = append(handles, h)
		if err != nil {
			b.Logf("lock %d of %d: %v", r.held+1, scaleHeld, err)
			break
		}
		r.held++
	}
	r.lockAll = time.Since(start)
	r.rssAll = vmRSS(pid)
	r.allHeld = probe()
	// With 1 held again, so that the baseline is measured both before
	// and after, and a process warming up or cooling down shows in both.
	for _, h := range handles[1:] {
		mustOK(b, "unlock", h.Unlock())
		h.Close()
	}
	handles = handles[:1]
	r.oneHeld = append(r.oneHeld, probe()...)
	return r
}

// vmRSS returns the resident set of process pid in kB, 0 for pid 0.
func vmRSS(pid int) int64 {
	if pid == 0 {
		return 0
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// benchProc is another process of a benchmark, a locktest.Peer: it is
// told what to do on stdin and says what happened on stdout.
type benchProc struct{ *locktest.Peer }

// procPatience bounds every wait for a helper's answer: a hung helper
// fails the benchmark instead of hanging it.
const procPatience = time.Minute

func startBenchProc(b *testing.B, role, impl, path string, env ...string) *benchProc {
	b.Helper()
	exe, err := os.Executable()
	mustOK(b, "finding the test binary", err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+role, implEnv+"="+impl, pathEnv+"="+path,
		pluginDirEnv+"="+locktest.PluginDir())
	cmd.Env = append(cmd.Env, env...)
	return startProc(b, cmd)
}

func startProc(b *testing.B, cmd *exec.Cmd) *benchProc {
	b.Helper()
	return &benchProc{locktest.StartPeer(b, cmd)}
}

func (h *benchProc) expect(b *testing.B, want string) {
	b.Helper()
	if got := h.Next(b, procPatience); got != want {
		b.Fatalf("helper said %q, want %q", got, want)
	}
}

func (h *benchProc) clockReading(b *testing.B) int64 {
	b.Helper()
	s := h.Next(b, procPatience)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		b.Fatalf("helper said %q, want a clock reading", s)
	}
	return n
}

// benchHelper is a helper process's whole life: it locks the file at
// $LOCKMGR_BENCH_PATH with the peer $LOCKMGR_BENCH_IMPL as its role says.
func benchHelper(role string) int {
	if role == "echo" {
		return echo()
	}
	fail := func(what string, err error) int {
		fmt.Printf("error: %s: %v\n", what, err)
		return 1
	}
	l, err := newPeerLock(os.Getenv(implEnv), os.Getenv(pathEnv), os.Getenv(pluginDirEnv))
	if err != nil {
		return fail("starting", err)
	}
	defer l.Close()
	if err := startPlugin(l); err != nil {
		return fail("starting", err)
	}
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	switch role {
	case "holder":
		// Lock, say so, and hold until killed.
		if err := l.Lock(ctx); err != nil {
			return fail("lock", err)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
	case "waiter":
		// At each line: say "waiting", wait for the lock, read the clock,
		// let go, and answer with the reading.
		fmt.Println("ready")
		for in.Scan() {
			fmt.Println("waiting")
			if err := l.Lock(ctx); err != nil {
				return fail("lock", err)
			}
			acquired := monotonicNow()
			if err := l.Unlock(); err != nil {
				return fail("unlock", err)
			}
			fmt.Println(acquired)
		}
	case "contender":
		// At the first line, increment the counter under the lock, cycles times.
		data, err := os.OpenFile(os.Getenv(dataEnv), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return fail("counter", err)
		}
		cycles, err := strconv.Atoi(os.Getenv(cyclesEnv))
		if err != nil {
			return fail("cycles", err)
		}
		fmt.Println("ready")
		in.Scan()
		for range cycles {
			if err := l.Lock(ctx); err != nil {
				return fail("lock", err)
			}
			if err := incrementCounter(data); err != nil {
				return fail("increment", err)
			}
			if err := l.Unlock(); err != nil {
				return fail("unlock", err)
			}
		}
		fmt.Println("done")
	default:
		return fail("role", fmt.Errorf("no role %q", role))
	}
	return 0
}
