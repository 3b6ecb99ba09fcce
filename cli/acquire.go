package main

// Taking a lock the way `run` and `lock` share: the flags flock(1) users
// know (-x, -s, -n, -w, -E), and the wait with what --verbose says about
// it. The wait is written against a locker, two functions and an
// inspection, which both commands make from a lockmgr.Handle
// (handleLocker): run's on a file, lock's on the shell's descriptor.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/holders"
	"golang.org/x/sys/unix"
)

// modeValue is one of the flags that set the lock mode. Several flags
// write one variable, so the last one given wins, as in flock(1).
type modeValue struct {
	mode *backend.Mode
	set  backend.Mode
}

func (m modeValue) String() string { return "false" }
func (m modeValue) Type() string   { return "bool" }

func (m modeValue) Set(v string) error {
	if b, err := strconv.ParseBool(v); err != nil || !b {
		return fmt.Errorf("takes no value")
	}
	*m.mode = m.set
	return nil
}

// durationValue is a duration given in seconds, with fractions ("2.5"),
// or with a unit ("1m30s"), never negative.
type durationValue struct {
	d   *time.Duration
	set *bool
}

func (v durationValue) String() string {
	if v.d == nil || *v.d == 0 {
		return "0" // which pflag reads as "no default worth showing"
	}
	return v.d.String()
}

func (v durationValue) Type() string { return "seconds" }

func (v durationValue) Set(s string) error {
	d, err := parseSeconds(s)
	if err != nil {
		return err
	}
	*v.d = d
	if v.set != nil {
		*v.set = true
	}
	return nil
}

// parseSeconds reads "2", "0.5" or "1m30s".
func parseSeconds(s string) (time.Duration, error) {
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("%q is out of range", s)
		}
		d = time.Duration(f * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds or a duration such as 1m30s", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// lockFlags are the flags of every command that takes a lock (their
// spellings are in lockOptions).
type lockFlags struct {
	mode       backend.Mode
	nonblock   bool
	timeout    time.Duration
	timeoutSet bool
	conflict   int
	backend    string
	verbose    bool
}

// check refuses flag values that make no sense, as usage errors.
func (f *lockFlags) check() error {
	if f.conflict < 0 || f.conflict > 255 {
		return usageErrorf("--conflict-exit-code %d is out of range (0 to 255)", f.conflict)
	}
	return checkBackendFlag(f.backend)
}

// waits reports whether the lock is to be waited for: not with -n, and
// not with -w 0, which flock(1) also reads as "do not wait".
func (f *lockFlags) waits() bool {
	return !f.nonblock && !(f.timeoutSet && f.timeout == 0)
}

// locker is one lock to take.
type locker struct {
	// name names the lock in messages: a file, or a distributed
	// backend's lock name, which is known once the backend is (after the
	// first try).
	name func() string
	// try takes the lock if it is free: false, and no error, if it is held.
	try func() (bool, error)
	// wait takes the lock, waiting until it is free or ctx ends.
	wait func(ctx context.Context) error
	// inspect reports who holds the lock, for --verbose.
	inspect func(ctx context.Context) (backend.Status, error)
}

// handleLocker is the locker of h's lock in mode.
func handleLocker(h *lockmgr.Handle, mode backend.Mode) locker {
	return locker{
		name: func() string { return h.LockName(context.Background()) },
		try: func() (bool, error) {
			if mode == lockmgr.Shared {
				return h.TryRLock()
			}
			return h.TryLock()
		},
		wait: func(ctx context.Context) error {
			if mode == lockmgr.Shared {
				return h.RLock(ctx)
			}
			return h.Lock(ctx)
		},
		inspect: h.Status,
	}
}

// cancelOnSignal returns a context that the first signal from sigs
// cancels, and a function that stops watching and returns that signal, if
// one came. A person who presses ^C while lockmgr waits wants it to stop
// waiting; and catching SIGQUIT keeps Go's default for it, a dump of every
// goroutine, from reaching them.
func cancelOnSignal(sigs <-chan os.Signal) (context.Context, func() os.Signal) {
	ctx, cancel := context.WithCancel(context.Background())
	var got os.Signal
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case got = <-sigs:
			cancel()
		case <-stop:
		}
	}()
	return ctx, func() os.Signal {
		close(stop)
		<-done
		cancel()
		return got
	}
}

// conflictError is a lock that someone else holds: lockmgr exits with the
// -E code, silently as flock(1) does unless --verbose said why.
func (f *lockFlags) conflictError(err error) error {
	return &exitError{code: f.conflict, err: err, silent: true}
}

// acquire takes l as f says: at once or waiting, up to the timeout, and
// saying so on stderr with --verbose. It returns a conflictError when the
// lock is held, or the timeout passes, and the cause of any other failure;
// a canceled ctx (a signal) returns an error wrapping lockmgr.ErrCanceled.
func (f *lockFlags) acquire(ctx context.Context, l locker, stderr *os.File) error {
	start := time.Now()
	if !f.verbose {
		if !f.waits() {
			ok, err := l.try()
			if err == nil && !ok {
				return f.conflictError(nil)
			}
			return err
		}
		// One call, not a try and then a wait: the uncontended case is
		// the common one, and each call is a round trip to the plugin.
		ctx, cancel := f.deadline(ctx, start)
		defer cancel()
		return f.conflictErr(l.wait(ctx))
	}

	ok, err := l.try()
	if err != nil {
		return err
	}
	if !ok {
		held := holdersText(ctx, l)
		if !f.waits() {
			fmt.Fprintf(stderr, "lockmgr: %s is %s\n", l.name(), held)
			return f.conflictError(nil)
		}
		var live *liveLine
		if isTerminal(stderr) {
			live = startLiveLine(stderr, start, f.timeout, f.timeoutSet, l.name(), held)
		} else {
			fmt.Fprintf(stderr, "lockmgr: waiting for %s (%s)\n", l.name(), held)
		}
		wctx, cancel := f.deadline(ctx, start)
		err = l.wait(wctx)
		cancel()
		live.stop()
		if errors.Is(err, lockmgr.ErrTimeout) {
			fmt.Fprintf(stderr, "lockmgr: timed out after %s waiting for %s\n", seconds(time.Since(start)), l.name())
		}
		if err != nil {
			return f.conflictErr(err)
		}
	}
	fmt.Fprintf(stderr, "lockmgr: acquired %s after %s\n", l.name(), seconds(time.Since(start)))
	return nil
}

// deadline returns ctx bounded by --timeout from start, if one was given:
// the time spent finding out who holds the lock counts too.
func (f *lockFlags) deadline(ctx context.Context, start time.Time) (context.Context, context.CancelFunc) {
	if f.timeoutSet {
		return context.WithDeadline(ctx, start.Add(f.timeout))
	}
	return context.WithCancel(ctx)
}

// conflictErr turns a timeout into the -E exit, and returns other errors
// as they are.
func (f *lockFlags) conflictErr(err error) error {
	if errors.Is(err, lockmgr.ErrTimeout) || errors.Is(err, lockmgr.ErrBusy) {
		return f.conflictError(err)
	}
	return err
}

// seconds formats d as flock(1)'s verbose mode does, in seconds with
// milliseconds.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
}

// holdersText says who holds l, for a person, as lockmgr status does:
// "held by pid 1234 (lockmgr run), exclusive flock [running backup.sh
// (pid 1235)]".
func holdersText(ctx context.Context, l locker) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := l.inspect(ctx)
	if err != nil {
		return "held; who holds it is unknown: " + oneLine(err.Error())
	}
	st = holders.Attribute(st)
	if len(st.Holders) == 0 {
		// Between our try and the look, it may have been let go; or the
		// holder is out of sight (another PID namespace).
		return "held by a process lockmgr cannot see"
	}
	// The kernel's table is read in pieces while it changes, and a busy
	// system can show one lock twice; a person needs each holder once.
	var parts []string
	for _, o := range st.Holders {
		if t := ownerText(o) + detailText(o); !slices.Contains(parts, t) {
			parts = append(parts, t)
		}
	}
	return "held by " + strings.Join(parts, "; ")
}

// ownerText describes one lock owner: "pid 1234 (backup.sh), exclusive
// flock", with its byte range if it has one.
func ownerText(o backend.LockOwner) string {
	var b strings.Builder
	if o.PID > 0 {
		fmt.Fprintf(&b, "pid %d", o.PID)
		if o.Command != "" {
			fmt.Fprintf(&b, " (%s)", o.Command)
		}
	} else {
		b.WriteString("an unknown process")
	}
	fmt.Fprintf(&b, ", %s %s", o.Mode, o.Kind)
	if !o.Range.IsWholeFile() {
		b.WriteString(", bytes " + rangeText(o.Range))
	}
	return b.String()
}

// rangeText is a byte range as lslocks shows it: first and last byte, or
// EOF for a range that grows with the file.
func rangeText(r backend.Range) string {
	r = r.Normalize()
	if r.End == backend.ToEOF {
		return fmt.Sprintf("%d-EOF", r.Start)
	}
	return fmt.Sprintf("%d-%d", r.Start, r.End-1)
}

// isTerminal reports whether f is a terminal, where a live line may
// redraw itself; on a pipe or a file it would be noise.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// liveLine is the line --verbose redraws on a terminal while waiting:
// what it waits for, and the time spent and left.
type liveLine struct {
	w    io.Writer
	done chan struct{}
	wg   sync.WaitGroup
}

func startLiveLine(f *os.File, start time.Time, timeout time.Duration, bounded bool, path, held string) *liveLine {
	l := &liveLine{w: f, done: make(chan struct{})}
	width := 80
	if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		width = int(ws.Col)
	}
	draw := func() {
		elapsed := time.Since(start)
		tail := fmt.Sprintf(": %.1fs", elapsed.Seconds())
		if bounded {
			tail += fmt.Sprintf(", %.1fs left", max(timeout-elapsed, 0).Seconds())
		}
		fmt.Fprintf(f, "\r%s\x1b[K", liveText(width, path, held, tail))
	}
	draw()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-tick.C:
				draw()
			}
		}
	}()
	return l
}

// liveText fits the live line into width columns, since a line that
// wraps cannot be redrawn by a carriage return. What a person waits to
// learn goes last: first the path loses its leading directories (the
// person typed it), then the path goes, then the holder; the times
// always stay.
func liveText(width int, path, held, tail string) string {
	n := func(s string) int { return len([]rune(s)) }
	room := width - 1 - n(tail)
	with := " (" + held + ")"
	const prefix = "lockmgr: waiting for "
	if n(prefix)+n(path)+n(with) > room {
		p := []rune(path)
		if keep := max(room-n(prefix)-n(with)-1, 12); keep < len(p) {
			path = "…" + string(p[len(p)-keep:])
		}
	}
	var line string
	switch {
	case n(prefix)+n(path)+n(with) <= room:
		line = prefix + path + with
	case n("lockmgr: waiting")+n(with) <= room:
		line = "lockmgr: waiting" + with
	default:
		// Only the path, cut to what fits; on a terminal too narrow even
		// for that, only the word.
		p := []rune(path)
		if keep := room - n(prefix) - 1; keep >= len(p) {
			line = prefix + path
		} else if keep >= 4 {
			line = prefix + "…" + string(p[len(p)-keep:])
		} else {
			line = "lockmgr: waiting"
		}
	}
	r := []rune(line + tail)
	if len(r) > width-1 {
		r = r[:max(width-1, 0)]
	}
	return string(r)
}

// stop ends the live line and clears it; a nil one does nothing.
func (l *liveLine) stop() {
	if l == nil {
		return
	}
	close(l.done)
	l.wg.Wait()
	fmt.Fprint(l.w, "\r\x1b[K")
}
