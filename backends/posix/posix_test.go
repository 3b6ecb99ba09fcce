package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/proclocks"
	"golang.org/x/sys/unix"
)

// A second process for these tests is this test binary run again, with
// helperEnv saying what to do on the range of the file that the other
// POSIX_TEST_ variables name (see runHelper). It must be another process:
// within this one, POSIX locks never conflict.
const helperEnv = "POSIX_TEST_HELPER"

// Generous bounds, as in locktest: loaded CI machines are slow, and
// nothing here measures speed.
const (
	promptly = 10 * time.Second
	shortly  = 300 * time.Millisecond
)

func TestMain(m *testing.M) {
	// Before locktest.Main, which would build the plugin first.
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	locktest.Main(m, "posix", func() backend.LockMgr { return newBackend() })
}

func TestConformance(t *testing.T) { locktest.Run(t) }

// runHelper is the helper process's whole life. In mode "probe" it tries
// once to set a POSIX lock and prints "free" (it got it) or "busy"; in
// mode "hold" it takes the lock, prints "locked", and holds it until its
// stdin closes; in mode "run" it only runs until its stdin closes.
func runHelper(mode string) int {
	if mode == "run" {
		// Just be a running program until stdin closes.
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	path := os.Getenv("POSIX_TEST_PATH")
	typ := int16(unix.F_WRLCK)
	if os.Getenv("POSIX_TEST_TYPE") == "read" {
		typ = unix.F_RDLCK
	}
	start, err1 := strconv.ParseInt(os.Getenv("POSIX_TEST_START"), 10, 64)
	length, err2 := strconv.ParseInt(os.Getenv("POSIX_TEST_LEN"), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Println("error:", err)
		return 2
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	defer f.Close()
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: length}
	err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	switch {
	case err == unix.EAGAIN || err == unix.EACCES:
		fmt.Println("busy")
		return 0
	case err != nil:
		fmt.Println("error:", err)
		return 2
	case mode == "probe":
		fmt.Println("free")
		return 0
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// helperCmd returns the helper process in mode, for a lock of type typ
// ("read" or "write") on r of the file at path.
func helperCmd(ctx context.Context, mode, path, typ string, r backend.Range) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "POSIX_TEST_PATH="+path, "POSIX_TEST_TYPE="+typ,
		"POSIX_TEST_START="+strconv.FormatInt(r.Start, 10), "POSIX_TEST_LEN="+strconv.FormatInt(r.Len(), 10))
	cmd.Stderr = os.Stderr
	return cmd
}

// probe reports whether another process could set a POSIX lock of type
// typ on r of the file at path: "free" or "busy".
func probe(t *testing.T, path, typ string, r backend.Range) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), promptly)
	defer cancel()
	out, err := helperCmd(ctx, "probe", path, typ, r).Output()
	got := strings.TrimSpace(string(out))
	if err != nil || (got != "free" && got != "busy") {
		t.Fatalf("probe of a %s lock on %+v: %q, %v", typ, r, got, err)
	}
	return got
}

// wantProbe fails the test unless another process finds a typ lock on r
// of path want ("free" or "busy").
func wantProbe(t *testing.T, path, typ string, r backend.Range, want string) {
	t.Helper()
	if got := probe(t, path, typ, r); got != want {
		t.Errorf("another process finds a %s lock on [%d,%d) %s, want %s", typ, r.Start, r.End, got, want)
	}
}

func lockPath(t *testing.T) string { return filepath.Join(t.TempDir(), "lock") }

func acquire(t *testing.T, b *Backend, req backend.Request) backend.HandleID {
	t.Helper()
	held, err := b.Acquire(context.Background(), req)
	if err != nil {
		t.Fatalf("Acquire %s %+v: %v", req.Mode, req.Range, err)
	}
	return held.ID
}

func release(t *testing.T, b *Backend, id backend.HandleID) {
	t.Helper()
	if err := b.Release(context.Background(), id); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// entryOf returns the number of descriptors in the table entry of the
// file at path, and whether it has one.
func entryOf(t *testing.T, path string) (files int, ok bool) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	inodes.mu.Lock()
	defer inodes.mu.Unlock()
	e := inodes.byKey[lockfile.Key{Dev: st.Dev, Ino: st.Ino}]
	if e == nil {
		return 0, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.files), true
}

// ourPOSIXLocks returns the POSIX locks this process holds on path, as
// the kernel reports them.
func ourPOSIXLocks(t *testing.T, path string) []backend.LockOwner {
	t.Helper()
	st, err := proclocks.ForFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Waiters) != 0 {
		t.Errorf("waiters in the kernel: %+v; this backend must never block there", st.Waiters)
	}
	var mine []backend.LockOwner
	for _, h := range st.Holders {
		if h.PID == os.Getpid() && h.Kind == proclocks.KindPOSIX {
			mine = append(mine, h)
		}
	}
	return mine
}

func TestDescribe(t *testing.T) {
	info, err := newBackend().Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := info.Capabilities
	if info.Name != "posix" || !c.Shared || !c.ByteRanges || c.Owner != backend.OwnerProcess ||
		c.InheritedAcrossFork || !c.NetworkFilesystems || c.InheritedFD {
		t.Errorf("Describe = %+v", info)
	}
}

// Inspecting a held lock, and another handle's lock and release on the
// same file, must neither open a second descriptor nor close one: either
// would drop the first handle's lock, since POSIX locks belong to the
// process and closing any descriptor of the file releases them all.
func TestInspectAndSecondHandleKeepLock(t *testing.T) {
	p := lockPath(t)
	a, b := newBackend(), newBackend()
	ctx := context.Background()
	first := backend.Range{Start: 0, End: 10}
	other := backend.Range{Start: 20, End: 30}
	ida := acquire(t, a, backend.Request{Path: p, Mode: backend.Exclusive, Range: first})

	st, err := a.Inspect(ctx, p)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	want := backend.LockOwner{PID: os.Getpid(), Command: proclocks.Command(os.Getpid()), Kind: "posix", Mode: backend.Exclusive, Range: first}
	if len(st.Holders) != 1 || st.Holders[0] != want {
		t.Errorf("Inspect holders = %+v, want [%+v]", st.Holders, want)
	}

	idb := acquire(t, b, backend.Request{Path: p, Mode: backend.Exclusive, Range: other})
	if n, ok := entryOf(t, p); !ok || n != 1 {
		t.Errorf("two handles on one file: table entry %v with %d descriptors, want 1 shared descriptor", ok, n)
	}
	wantProbe(t, p, "write", other, "busy")
	release(t, b, idb)

	wantProbe(t, p, "write", first, "busy")
	wantProbe(t, p, "write", other, "free")
	if _, err := b.Inspect(ctx, p); err != nil {
		t.Fatalf("second Inspect: %v", err)
	}
	if got := ourPOSIXLocks(t, p); len(got) != 1 || got[0].Range != first || got[0].Mode != backend.Exclusive {
		t.Errorf("after Inspect and another handle's release, the kernel shows %+v, want only the exclusive %+v", got, first)
	}

	release(t, a, ida)
	wantProbe(t, p, "write", backend.WholeFile, "free")
	if n, ok := entryOf(t, p); ok {
		t.Errorf("table entry still there with %d descriptors after the last release", n)
	}
}

// Two shared locks overlap; releasing one must leave the other's whole
// range locked against other processes, and unlock only the rest.
func TestSharedOverlapRelease(t *testing.T) {
	p := lockPath(t)
	a, b := newBackend(), newBackend()
	ra := backend.Range{Start: 0, End: 20}
	rb := backend.Range{Start: 10, End: 30}
	ida := acquire(t, a, backend.Request{Path: p, Mode: backend.Shared, Range: ra})
	idb := acquire(t, b, backend.Request{Path: p, Mode: backend.Shared, Range: rb})

	// In-process exclusion: the kernel would grant this one.
	_, err := newBackend().Acquire(context.Background(), backend.Request{Path: p, Mode: backend.Exclusive, Range: backend.Range{Start: 25, End: 26}})
	if !errors.Is(err, backend.ErrBusy) {
		t.Errorf("exclusive lock inside another handle's shared range: %v, want ErrBusy", err)
	}
	wantProbe(t, p, "write", backend.Range{Start: 0, End: 1}, "busy")
	wantProbe(t, p, "read", backend.Range{Start: 0, End: 30}, "free")

	release(t, a, ida)
	wantProbe(t, p, "write", backend.Range{Start: 0, End: 10}, "free")
	wantProbe(t, p, "write", backend.Range{Start: 10, End: 11}, "busy")
	wantProbe(t, p, "write", backend.Range{Start: 19, End: 20}, "busy")
	wantProbe(t, p, "write", backend.Range{Start: 29, End: 30}, "busy")
	wantProbe(t, p, "read", rb, "free")

	release(t, b, idb)
	wantProbe(t, p, "write", backend.WholeFile, "free")
}

// TestKernelMatchesTable drives random acquires and releases by several
// handles and checks, after each, that the in-process rules decided as two
// processes' locks would, and that the kernel holds exactly the union of
// the handles' locks: the same lock type on every byte.
func TestKernelMatchesTable(t *testing.T) {
	p := lockPath(t)
	const (
		handles = 6
		steps   = 300
		size    = 48 // ranges fall in [0,size); size stands for "size to EOF"
	)
	type slot struct {
		b    *Backend
		id   backend.HandleID
		held bool
		mode backend.Mode
		rng  backend.Range
	}
	shared := newBackend()
	slots := make([]slot, handles)
	for i := range slots {
		// Some handles share a Backend, some have their own, as the
		// plugin and the in-process library have.
		if i%2 == 0 {
			slots[i].b = shared
		} else {
			slots[i].b = newBackend()
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// typeAt is the lock type the handles hold on byte i: 0, 'r' or 'w'.
	typeAt := func(i int64) byte {
		var typ byte
		for _, s := range slots {
			if s.held && s.rng.Start <= i && i < s.rng.End {
				if s.mode == backend.Exclusive {
					return 'w'
				}
				typ = 'r'
			}
		}
		return typ
	}
	for step := range steps {
		s := &slots[rng.IntN(handles)]
		if s.held {
			release(t, s.b, s.id)
			s.held = false
		} else {
			start := rng.Int64N(size)
			r := backend.Range{Start: start, End: start + 1 + rng.Int64N(size-start)}
			if rng.IntN(5) == 0 {
				r.End = backend.ToEOF
			}
			mode := backend.Shared
			if rng.IntN(3) == 0 {
				mode = backend.Exclusive
			}
			conflict := false
			for _, o := range slots {
				if o.held && o.rng.Overlaps(r) && (o.mode == backend.Exclusive || mode == backend.Exclusive) {
					conflict = true
				}
			}
			held, err := s.b.Acquire(context.Background(), backend.Request{Path: p, Mode: mode, Range: r})
			switch {
			case conflict && !errors.Is(err, backend.ErrBusy):
				t.Fatalf("step %d: %s %+v beside a conflicting lock: %v, want ErrBusy", step, mode, r, err)
			case !conflict && err != nil:
				t.Fatalf("step %d: %s %+v with no conflict: %v", step, mode, r, err)
			case err == nil:
				s.id, s.held, s.mode, s.rng = held.ID, true, mode, r
			}
		}
		kernel := make(map[int64]byte)
		for _, l := range ourPOSIXLocks(t, p) {
			typ := byte('r')
			if l.Mode == backend.Exclusive {
				typ = 'w'
			}
			for i := l.Range.Start; i < min(l.Range.End, size+1); i++ {
				if kernel[i] != 0 {
					t.Fatalf("step %d: the kernel shows byte %d locked twice by one process", step, i)
				}
				kernel[i] = typ
			}
		}
		for i := int64(0); i <= size; i++ {
			if kernel[i] != typeAt(i) {
				t.Fatalf("step %d: byte %d has kernel lock %q, handles hold %q\nkernel: %+v",
					step, i, kernel[i], typeAt(i), ourPOSIXLocks(t, p))
			}
		}
	}
	for _, s := range slots {
		if s.held {
			release(t, s.b, s.id)
		}
	}
	if got := ourPOSIXLocks(t, p); len(got) != 0 {
		t.Errorf("locks left after every handle released: %+v", got)
	}
	if n, ok := entryOf(t, p); ok {
		t.Errorf("table entry left with %d descriptors after every handle released", n)
	}
}

// Remove-on-release unlinks the file only when no one else, in this
// process or another, holds any of it.
func TestRemoveOnReleaseOnlyWhenAlone(t *testing.T) {
	exists := func(p string) bool {
		_, err := os.Lstat(p)
		return err == nil
	}
	t.Run("OtherHandle", func(t *testing.T) {
		p := lockPath(t)
		a, b := newBackend(), newBackend()
		ida := acquire(t, a, backend.Request{Path: p, Mode: backend.Shared, RemoveOnRelease: true})
		idb := acquire(t, b, backend.Request{Path: p, Mode: backend.Shared, Range: backend.Range{Start: 100, End: 101}})
		release(t, a, ida)
		if !exists(p) {
			t.Fatal("removed while another handle held part of the file")
		}
		wantProbe(t, p, "write", backend.Range{Start: 100, End: 101}, "busy")
		wantProbe(t, p, "write", backend.Range{Start: 0, End: 100}, "free")
		release(t, b, idb)
	})
	t.Run("OtherProcess", func(t *testing.T) {
		p := lockPath(t)
		a := newBackend()
		ida := acquire(t, a, backend.Request{Path: p, Mode: backend.Shared, RemoveOnRelease: true})
		c := locktest.StartPeer(t, helperCmd(context.Background(), "hold", p, "read", backend.Range{Start: 5, End: 6}))
		c.Expect(t, "locked")
		release(t, a, ida)
		if !exists(p) {
			t.Fatal("removed while another process held part of the file")
		}
		// The refused conversion must have left nothing locked.
		if got := ourPOSIXLocks(t, p); len(got) != 0 {
			t.Errorf("locks left after release: %+v", got)
		}
		c.Release(t)
	})
	t.Run("Alone", func(t *testing.T) {
		p := lockPath(t)
		a := newBackend()
		ida := acquire(t, a, backend.Request{Path: p, Mode: backend.Exclusive, Range: backend.Range{Start: 0, End: 10}, RemoveOnRelease: true})
		release(t, a, ida)
		if exists(p) {
			t.Fatal("lock file still there after release with remove-on-release")
		}
	})
}

func TestRefusesInheritedFD(t *testing.T) {
	p := lockPath(t)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = newBackend().Acquire(context.Background(), backend.Request{Path: p, FD: int(f.Fd())})
	if !errors.Is(err, backend.ErrUnsupported) {
		t.Fatalf("Acquire with an inherited descriptor: %v, want ErrUnsupported", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "dies with") || !strings.Contains(msg, p) || !strings.Contains(msg, "posix") {
		t.Errorf("error %q should name the path and the backend and say that a POSIX lock dies with its process", msg)
	}
}

// A directory can only be opened read-only: enough for a shared lock, not
// for an exclusive one, which must fail plainly rather than as busy, and
// without leaving descriptors behind that cannot be closed while the
// shared lock is held.
func TestExclusiveNeedsWritable(t *testing.T) {
	dir := t.TempDir()
	b := newBackend()
	id := acquire(t, b, backend.Request{Path: dir, Mode: backend.Shared})
	for range 3 {
		_, err := b.Acquire(context.Background(), backend.Request{Path: dir, Mode: backend.Exclusive, Range: backend.Range{Start: 50, End: 60}})
		if err == nil || errors.Is(err, backend.ErrBusy) || !strings.Contains(err.Error(), "open for writing") {
			t.Fatalf("exclusive lock on a read-only file: %v, want an error saying it needs the file open for writing", err)
		}
	}
	if n, _ := entryOf(t, dir); n != 1 {
		t.Errorf("after refused exclusive locks, the table entry has %d descriptors, want 1", n)
	}
	if got := ourPOSIXLocks(t, dir); len(got) != 1 || got[0].Mode != backend.Shared {
		t.Errorf("after the refused exclusive lock, the kernel shows %+v, want the one shared lock", got)
	}
	release(t, b, id)
	if n, ok := entryOf(t, dir); ok {
		t.Errorf("table entry left with %d descriptors", n)
	}
}

// A file that could only be opened read-only for a shared lock may become
// writable; an exclusive lock then opens a writable descriptor beside the
// read-only one, which must stay open while the shared lock is held. A
// running program's file is read-only until it exits (ETXTBSY), even for
// root, whom permissions would not stop.
func TestWritableDescriptorJoinsReadOnly(t *testing.T) {
	prog := filepath.Join(t.TempDir(), "prog")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, self, 0o755); err != nil {
		t.Fatal(err)
	}
	running := exec.Command(prog, "-test.run=^$")
	running.Env = append(os.Environ(), helperEnv+"=run")
	run := locktest.StartPeer(t, running)
	if fd, err := unix.Open(prog, unix.O_RDWR|unix.O_CLOEXEC, 0); err != unix.ETXTBSY {
		if err == nil {
			unix.Close(fd)
		}
		t.Skipf("opening a running program for writing: %v, not ETXTBSY", err)
	}

	b := newBackend()
	sharedRange := backend.Range{Start: 0, End: 10}
	exclRange := backend.Range{Start: 20, End: 30}
	ids := acquire(t, b, backend.Request{Path: prog, Mode: backend.Shared, Range: sharedRange})
	if _, err := b.Acquire(context.Background(), backend.Request{Path: prog, Mode: backend.Exclusive, Range: exclRange}); err == nil || errors.Is(err, backend.ErrBusy) {
		t.Fatalf("exclusive lock on a running program: %v, want a read-only error", err)
	}
	run.Release(t)

	idx := acquire(t, b, backend.Request{Path: prog, Mode: backend.Exclusive, Range: exclRange})
	if n, _ := entryOf(t, prog); n != 2 {
		t.Errorf("table entry has %d descriptors, want the read-only one and a writable one", n)
	}
	wantProbe(t, prog, "write", sharedRange, "busy")
	wantProbe(t, prog, "read", sharedRange, "free")
	wantProbe(t, prog, "read", exclRange, "busy")
	release(t, b, idx)
	wantProbe(t, prog, "write", sharedRange, "busy")
	wantProbe(t, prog, "write", exclRange, "free")
	release(t, b, ids)
	wantProbe(t, prog, "write", backend.WholeFile, "free")
	if n, ok := entryOf(t, prog); ok {
		t.Errorf("table entry left with %d descriptors", n)
	}
}

// The backend and Python's fcntl.lockf, which sets POSIX locks too,
// exclude each other both ways.
func TestPythonLockf(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	const script = `
import fcntl, sys
f = open(sys.argv[1], "r+")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    print("busy", flush=True)
    sys.exit(0)
print("locked", flush=True)
if sys.argv[2] == "hold":
    sys.stdin.read()
`
	lockf := func(p, mode string) *locktest.Peer {
		return locktest.StartPeer(t, exec.Command(python, "-c", script, p, mode))
	}
	p := lockPath(t)
	b := newBackend()

	for _, mode := range []backend.Mode{backend.Exclusive, backend.Shared} {
		id := acquire(t, b, backend.Request{Path: p, Mode: mode, Range: backend.Range{Start: 10, End: 20}})
		lockf(p, "try").Expect(t, "busy")
		release(t, b, id)
	}
	lockf(p, "try").Expect(t, "locked")

	py := lockf(p, "hold")
	py.Expect(t, "locked")
	_, err = b.Acquire(context.Background(), backend.Request{Path: p, Mode: backend.Shared})
	if !errors.Is(err, backend.ErrBusy) {
		t.Fatalf("shared lock while python holds lockf: %v, want ErrBusy", err)
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*promptly)
		defer cancel()
		held, err := b.Acquire(ctx, backend.Request{Path: p, Mode: backend.Exclusive, Wait: true})
		if err == nil {
			err = b.Release(context.Background(), held.ID)
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("waiter returned while python held the lock: %v", err)
	case <-time.After(shortly):
	}
	py.Release(t)
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiter after python let go: %v", err)
		}
	case <-time.After(promptly):
		t.Fatalf("waiter still waiting %v after python let go", promptly)
	}
}

func TestUncovered(t *testing.T) {
	r := func(s, e int64) backend.Range { return backend.Range{Start: s, End: e} }
	h := func(rs ...backend.Range) []*hold {
		var out []*hold
		for _, x := range rs {
			out = append(out, &hold{rng: x})
		}
		return out
	}
	tests := []struct {
		r     backend.Range
		holds []*hold
		want  []backend.Range
	}{
		{r(0, 10), nil, []backend.Range{r(0, 10)}},
		{r(0, 10), h(r(20, 30)), []backend.Range{r(0, 10)}},
		{r(0, 10), h(r(0, 10)), nil},
		{r(0, 10), h(r(5, 8), r(2, 3)), []backend.Range{r(0, 2), r(3, 5), r(8, 10)}},
		{r(0, 10), h(r(2, 6), r(4, 8)), []backend.Range{r(0, 2), r(8, 10)}},
		{r(5, backend.ToEOF), h(r(0, 10), r(20, backend.ToEOF)), []backend.Range{r(10, 20)}},
		{backend.WholeFile, h(r(10, 20)), []backend.Range{r(0, 10), r(20, backend.ToEOF)}},
	}
	for _, tt := range tests {
		got := uncovered(tt.r, tt.holds)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("uncovered(%v, %d holds) = %v, want %v", tt.r, len(tt.holds), got, tt.want)
		}
	}
}

// TestFailedLockKeepsFileAnotherLocked: a lock attempt that created the
// file and then failed for a reason other than a conflict gives the file
// up with remove (as lockLoop does); if another process has meanwhile
// opened the new file and locked it, the file must stay, or a third
// process would create a fresh one at the path and lock it too. It used
// to be unlinked without any lock held on it.
func TestFailedLockKeepsFileAnotherLocked(t *testing.T) {
	p := lockPath(t)
	e, created, err := inodes.use(p, 0, backend.Exclusive)
	if err != nil || !created {
		t.Fatalf("use: created %v, %v; want a new file", created, err)
	}
	holder := locktest.StartPeer(t, helperCmd(context.Background(), "hold", p, "write", backend.WholeFile))
	holder.Expect(t, "locked")
	if err := inodes.unref(e, p); err != nil {
		t.Fatalf("unref: %v", err)
	}
	if _, err := os.Lstat(p); err != nil {
		t.Fatalf("giving up the new file removed it while another process holds it: %v", err)
	}
	wantProbe(t, p, "write", backend.WholeFile, "busy")

	// With no one else on it, the new file goes.
	q := lockPath(t)
	if e, created, err = inodes.use(q, 0, backend.Exclusive); err != nil || !created {
		t.Fatalf("use: created %v, %v; want a new file", created, err)
	}
	if err := inodes.unref(e, q); err != nil {
		t.Fatalf("unref: %v", err)
	}
	if _, err := os.Lstat(q); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("giving up the new file left it behind (lstat: %v)", err)
	}
}
