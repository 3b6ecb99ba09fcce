// Twoterm is the seed's two-terminal test (test_lock.py) written with
// lockmgr's library: it takes a lock and holds it until you press Enter,
// and if someone else holds the lock it says who, and waits.
//
// Run it in two terminals, from the root of a checkout after `make build`
// (which puts the backend plugins in bin/):
//
//	go run ./examples/twoterm            # terminal 1: gets the lock
//	go run ./examples/twoterm            # terminal 2: waits for terminal 1
//
// or let it play both sides, starting itself again as the second:
//
//	go run ./examples/twoterm -both
//
// -backend picks the backend (flock, posix, ofd; by default the
// configured one), and the lock file is the one argument, by default
// lockmgr-twoterm.lock in the temporary directory.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/proclocks"
)

// options are the command line, which -both hands on to the second side.
type options struct {
	backend   string
	pluginDir string
	name      string
	hold      time.Duration
	path      string
}

func main() {
	var o options
	both := flag.Bool("both", false, "play both sides: hold the lock, start a second side that waits for it, then let go")
	flag.StringVar(&o.backend, "backend", "", "lock through backend `NAME` (flock, posix, ofd; default: the configured one)")
	flag.StringVar(&o.pluginDir, "plugin-dir", "bin", "look for backend plugins in `DIR` first (make build puts them in bin/)")
	flag.StringVar(&o.name, "name", "", "what this side calls itself (default: pid N)")
	flag.DurationVar(&o.hold, "hold", time.Second, "with -both, how long to hold the lock once the second side waits")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: twoterm [-both] [-backend NAME] [-plugin-dir DIR] [FILE]")
		flag.PrintDefaults()
	}
	flag.Parse()
	switch flag.NArg() {
	case 0:
		o.path = filepath.Join(os.TempDir(), "lockmgr-twoterm.lock")
	case 1:
		o.path = flag.Arg(0)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if abs, err := filepath.Abs(o.pluginDir); err == nil {
		o.pluginDir = abs
	}
	if o.name == "" {
		o.name = fmt.Sprintf("pid %d", os.Getpid())
		if *both {
			o.name = "A"
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *both {
		err = playBoth(ctx, o)
	} else {
		err = playOne(ctx, o, enterFrom(os.Stdin))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", o.name, err)
		if errors.Is(err, lockmgr.ErrBackendNotFound) {
			fmt.Fprintln(os.Stderr, "(build the plugins first with `make build`, which puts them in bin/, or install lockmgr)")
		}
		os.Exit(1)
	}
}

// say prints one line, prefixed with the side's name.
func (o options) say(format string, args ...any) {
	fmt.Printf("%s: %s\n", o.name, fmt.Sprintf(format, args...))
}

// newHandle returns a Handle for o's lock file through o's backend.
func (o options) newHandle() *lockmgr.Handle {
	opts := []lockmgr.Option{lockmgr.WithPluginDir(o.pluginDir)}
	if o.backend != "" {
		opts = append(opts, lockmgr.WithBackend(o.backend))
	}
	return lockmgr.New(o.path, opts...)
}

// acquire takes the lock: at once if it is free, else after saying who
// holds it and waiting until they let go (or ctx ends).
func acquire(ctx context.Context, o options, h *lockmgr.Handle) error {
	o.say("asking for the lock on %s", h.Path())
	ok, err := h.TryLock()
	if err != nil {
		return err
	}
	if ok {
		o.say("got it (backend %s)", h.Backend())
		return nil
	}
	o.say("%s; waiting", heldBy(ctx, h))
	start := time.Now()
	if err := h.Lock(ctx); err != nil {
		return err
	}
	o.say("got it after %.1fs (backend %s)", time.Since(start).Seconds(), h.Backend())
	return nil
}

// heldBy says who holds the lock, as the kernel reports it. lockmgr's
// locks are held by its backend plugin, a child of the process that asked,
// so that process is named too.
func heldBy(ctx context.Context, h *lockmgr.Handle) string {
	st, err := h.Status(ctx)
	if err != nil || len(st.Holders) == 0 {
		return "held by someone"
	}
	o := st.Holders[0]
	who := fmt.Sprintf("held by pid %d (%s)", o.PID, o.Command)
	if strings.HasPrefix(o.Command, backend.PluginComm()) {
		if parent := proclocks.ParentPID(o.PID); parent > 0 {
			who += fmt.Sprintf(", the plugin of pid %d (%s),", parent, proclocks.Command(parent))
		}
	}
	article := "an"
	if o.Mode == lockmgr.Shared {
		article = "a"
	}
	return fmt.Sprintf("%s as %s %s %s lock", who, article, o.Mode, o.Kind)
}

// playOne is one terminal's side: take the lock, hold it until enter
// fires, let go.
func playOne(ctx context.Context, o options, enter <-chan struct{}) error {
	h := o.newHandle()
	defer h.Close()
	if err := acquire(ctx, o, h); err != nil {
		return err
	}
	o.say("holding it; press Enter to let go")
	select {
	case <-enter:
	case <-ctx.Done():
	case <-h.Lost():
		return fmt.Errorf("lost the lock while holding it: %w", lockmgr.ErrLost)
	}
	if err := h.Unlock(); err != nil {
		return err
	}
	o.say("let go")
	return nil
}

// enterFrom returns a channel that fires when r yields a line or ends.
func enterFrom(r io.Reader) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(r).ReadString('\n')
		close(ch)
	}()
	return ch
}

// playBoth is -both: this process is side A, and it starts itself again
// as side B with B's stdin and stdout on pipes, so that it can watch B's
// lines and press B's Enter.
func playBoth(ctx context.Context, o options) error {
	a := o.newHandle()
	defer a.Close()
	if err := acquire(ctx, o, a); err != nil {
		return err
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-name", "B", "-plugin-dir", o.pluginDir}
	if o.backend != "" {
		args = append(args, "-backend", o.backend)
	}
	b := exec.Command(exe, append(args, o.path)...)
	b.Stderr = os.Stderr
	enterB, err := b.StdinPipe()
	if err != nil {
		return err
	}
	out, err := b.StdoutPipe()
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	finished := false
	defer func() {
		enterB.Close()
		if !finished {
			// B may be waiting for the lock this process still holds.
			_ = b.Process.Kill()
		}
		_ = b.Wait()
	}()
	o.say("holding it; started B, which asks for it too")

	lines := bufio.NewScanner(out)
	next := func() (string, bool) {
		if !lines.Scan() {
			return "", false
		}
		fmt.Println(lines.Text()) // B's line, as B's terminal would show it
		return lines.Text(), true
	}
	for {
		line, ok := next()
		if !ok {
			return errors.New("B exited before it waited for the lock")
		}
		if strings.HasSuffix(line, "; waiting") {
			break
		}
		if strings.HasPrefix(line, "B: got it") {
			return errors.New("B got the lock while A held it")
		}
	}
	time.Sleep(o.hold)
	o.say("pressing Enter")
	if err := a.Unlock(); err != nil {
		return err
	}
	o.say("let go")
	for {
		line, ok := next()
		if !ok {
			return errors.New("B exited without getting the lock")
		}
		if strings.HasPrefix(line, "B: holding it") {
			break
		}
	}
	o.say("pressing Enter for B")
	if _, err := io.WriteString(enterB, "\n"); err != nil {
		return err
	}
	for {
		if _, ok := next(); !ok {
			break
		}
	}
	finished = true
	return nil
}
