package lockwait

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/lockfile"
)

// Generous bounds: a loaded CI machine may be slow to deliver an event,
// and these tests only care that the wake comes, not how fast.
const (
	promptly = 10 * time.Second
	// quietly is how long a watch must stay asleep to show that nothing
	// woke it; it only has to outlast a spurious early return.
	quietly = 200 * time.Millisecond
	// never is a backoff delay no test outlives, so that a Next that
	// returns was woken by an event or by Wake, not by its timer.
	never = time.Hour
)

// watchFile creates a lock file, opens it, and subscribes to it.
func watchFile(t *testing.T) (*os.File, *Watch, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lock")
	o, err := lockfile.Open(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.File.Close() })
	w := New(o.File, o.Key)
	t.Cleanup(w.Close)
	if theHub.ino == nil {
		t.Fatalf("no inotify instance: %v", theHub.initErr)
	}
	if wdOf(w) < 0 {
		t.Fatal("New added no inotify watch")
	}
	return o.File, w, p
}

// wdOf returns w's inotify watch descriptor, which the hub's reader may
// reset when the kernel drops the watch.
func wdOf(w *Watch) int32 {
	theHub.mu.Lock()
	defer theHub.mu.Unlock()
	return w.wd
}

// asleep starts w.Next with a backoff that never fires, and returns the
// channel its result arrives on.
func asleep(ctx context.Context, w *Watch) <-chan error {
	w.delay = never
	got := make(chan error, 1)
	go func() { got <- w.Next(ctx) }()
	return got
}

func expectAsleep(t *testing.T, got <-chan error, what string) {
	t.Helper()
	select {
	case err := <-got:
		t.Fatalf("Next returned (%v) %s", err, what)
	case <-time.After(quietly):
	}
}

func expectWoken(t *testing.T, w *Watch, got <-chan error, by string) {
	t.Helper()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Next after %s: %v", by, err)
		}
	case <-time.After(promptly):
		t.Fatalf("Next still asleep %v after %s", promptly, by)
	}
	// Only a wake resets the backoff; the timer would have doubled it.
	if w.delay != FirstDelay {
		t.Fatalf("after %s the delay is %v, want %v: Next returned by its timer, not a wake", by, w.delay, FirstDelay)
	}
}

func TestWakesWhenAnotherDescriptorCloses(t *testing.T) {
	_, w, p := watchFile(t)
	// Opening is no release: it must not wake the waiter.
	other, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*promptly)
	defer cancel()
	got := asleep(ctx, w)
	expectAsleep(t, got, "when another descriptor was only opened")
	// A holder that exits or unlocks by closing fires IN_CLOSE_NOWRITE.
	other.Close()
	expectWoken(t, w, got, "another descriptor of the file closed")
}

func TestWakesOnWritableClose(t *testing.T) {
	_, w, p := watchFile(t)
	other, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := asleep(context.Background(), w)
	other.Close()
	expectWoken(t, w, got, "a writable descriptor of the file closed")
}

func TestWakesOnUnlink(t *testing.T) {
	_, w, p := watchFile(t)
	got := asleep(context.Background(), w)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	expectWoken(t, w, got, "the file was unlinked")
}

func TestWakesOnRename(t *testing.T) {
	_, w, p := watchFile(t)
	got := asleep(context.Background(), w)
	if err := os.Rename(p, p+".old"); err != nil {
		t.Fatal(err)
	}
	expectWoken(t, w, got, "the file was renamed")
}

// TestWatchesTheOpenInode checks that a watch follows the file it has
// open, not the path: after the path is replaced, closing a descriptor
// of the new file is no reason to wake.
func TestWatchesTheOpenInode(t *testing.T) {
	_, w, p := watchFile(t)
	tmp := p + ".new"
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got := asleep(context.Background(), w)
	// Renaming over the watched file unlinks it (IN_ATTRIB): a holder that
	// removed it on release may be gone, so the waiter must look again.
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	expectWoken(t, w, got, "the file was replaced by a rename")
	newFile, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	got = asleep(context.Background(), w)
	newFile.Close()
	expectAsleep(t, got, "for a close of the file that replaced the watched one")
	Wake(w.key)
	expectWoken(t, w, got, "Wake")
}

func TestWake(t *testing.T) {
	_, w, _ := watchFile(t)
	_, other, _ := watchFile(t)
	got := asleep(context.Background(), w)
	expectAsleep(t, got, "before any Wake")
	Wake(other.key)
	// Wake signals synchronously: had it reached w, w.ch would hold it.
	expectAsleep(t, got, "when another file's waiters were woken")
	Wake(w.key)
	expectWoken(t, w, got, "Wake(key)")
	if len(other.ch) != 1 {
		t.Fatal("Wake(key) did not signal the other file's waiter")
	}
}

func TestWakeWakesEveryWaiterOnTheFile(t *testing.T) {
	f, w, _ := watchFile(t)
	key, err := lockfile.KeyOf(f)
	if err != nil {
		t.Fatal(err)
	}
	w2 := New(f, key)
	defer w2.Close()
	got, got2 := asleep(context.Background(), w), asleep(context.Background(), w2)
	Wake(key)
	expectWoken(t, w, got, "Wake(key)")
	expectWoken(t, w2, got2, "Wake(key)")
}

func TestNextReturnsContextError(t *testing.T) {
	_, w, _ := watchFile(t)

	ctx, cancel := context.WithCancel(context.Background())
	got := asleep(ctx, w)
	expectAsleep(t, got, "before its context was canceled")
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(promptly):
		t.Fatalf("Next still asleep %v after its context was canceled", promptly)
	}

	// An ended context wins even over a pending wake.
	Wake(w.key)
	if err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a canceled context: %v, want context.Canceled", err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), quietly)
	defer dcancel()
	w.delay = never
	select {
	case <-w.ch:
	default:
	}
	if err := w.Next(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next past its deadline: %v, want context.DeadlineExceeded", err)
	}
}

func TestBackoff(t *testing.T) {
	_, w, _ := watchFile(t)
	want := FirstDelay
	for range 8 {
		if w.delay != want {
			t.Fatalf("delay %v, want %v", w.delay, want)
		}
		if err := w.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
		want = min(2*want, MaxDelay)
	}
	if w.delay != MaxDelay {
		t.Fatalf("delay %v after many quiet sleeps, want the cap %v", w.delay, MaxDelay)
	}
	Wake(w.key)
	if err := w.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.delay != FirstDelay {
		t.Fatalf("delay %v after a wake, want %v", w.delay, FirstDelay)
	}
}

func TestUntil(t *testing.T) {
	_, w, _ := watchFile(t)
	tries := 0
	err := w.Until(context.Background(), func() (bool, error) {
		tries++
		return tries == 3, nil
	})
	if err != nil || tries != 3 {
		t.Fatalf("Until = %v after %d tries, want nil after 3", err, tries)
	}
	boom := errors.New("boom")
	if err := w.Until(context.Background(), func() (bool, error) { return false, boom }); err != boom {
		t.Fatalf("Until with a failing attempt = %v, want %v", err, boom)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tries = 0
	err = w.Until(ctx, func() (bool, error) { tries++; return false, nil })
	if !errors.Is(err, context.Canceled) || tries != 1 {
		t.Fatalf("Until with a canceled context = %v after %d tries, want context.Canceled after 1", err, tries)
	}
}

// subscribed reports whether w is in the hub's tables, by key and by
// inotify watch descriptor.
func subscribed(w *Watch, wd int32) (byKey, byWD bool) {
	theHub.mu.Lock()
	defer theHub.mu.Unlock()
	_, byKey = theHub.byKey[w.key][w]
	if ws := theHub.byWD[wd]; ws != nil {
		_, byWD = ws.subs[w]
	}
	return byKey, byWD
}

func TestClose(t *testing.T) {
	f, w, p := watchFile(t)
	w2 := New(f, w.key)
	defer w2.Close()
	wd := wdOf(w)
	if wdOf(w2) != wd {
		t.Fatalf("two watches of one inode got watch descriptors %d and %d, want one shared", wd, wdOf(w2))
	}
	if k, d := subscribed(w, wd); !k || !d {
		t.Fatalf("after New: in byKey %v, in byWD %v; want both", k, d)
	}

	w.Close()
	if k, d := subscribed(w, wd); k || d {
		t.Fatalf("after Close: in byKey %v, in byWD %v; want neither", k, d)
	}
	if wdOf(w) != -1 {
		t.Fatalf("after Close the watch descriptor is %d, want -1", wdOf(w))
	}
	w.Close() // idempotent

	// Closing one watch leaves the other's inotify watch working.
	if k, d := subscribed(w2, wd); !k || !d {
		t.Fatalf("the other watch after Close: in byKey %v, in byWD %v; want both", k, d)
	}
	Wake(w.key)
	if len(w.ch) != 0 {
		t.Fatal("Wake reached a closed watch")
	}
	if len(w2.ch) != 1 {
		t.Fatal("Wake did not reach the remaining watch")
	}
	<-w2.ch
	got := asleep(context.Background(), w2)
	other, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	expectWoken(t, w2, got, "a close, with the file's other watch closed")

	w2.Close()
	theHub.mu.Lock()
	_, keyLeft := theHub.byKey[w.key]
	_, wdLeft := theHub.byWD[wd]
	theHub.mu.Unlock()
	if keyLeft || wdLeft {
		t.Fatalf("after the last Close the hub still has the key (%v) or the watch descriptor (%v)", keyLeft, wdLeft)
	}
}

// TestKernelDropsWatch: once the watched inode is gone (unlinked, last
// descriptor closed), the kernel removes the watch; the hub must forget
// it, and Close must still work.
func TestKernelDropsWatch(t *testing.T) {
	f, w, p := watchFile(t)
	wd := wdOf(w)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	f.Close()
	deadline := time.Now().Add(promptly)
	for {
		theHub.mu.Lock()
		_, left := theHub.byWD[wd]
		gone := w.wd == -1
		theHub.mu.Unlock()
		if !left && gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub still has watch descriptor %d %v after its inode was freed", wd, promptly)
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.Close()
	theHub.mu.Lock()
	_, keyLeft := theHub.byKey[w.key]
	theHub.mu.Unlock()
	if keyLeft {
		t.Fatal("Close after the kernel dropped the watch left the key subscribed")
	}
}
