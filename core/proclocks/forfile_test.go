package proclocks

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lockmgr/lockmgr/core/backend"
)

// A second process for these tests is this test binary run again, with
// helperModeEnv saying what to do instead of running tests, on the file
// helperPathEnv names. It says "ready" on stdout once it holds its lock,
// and exits when its stdin closes, releasing it.
const (
	helperModeEnv = "PROCLOCKS_TEST_HELPER"
	helperPathEnv = "PROCLOCKS_TEST_PATH"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperModeEnv); mode != "" {
		if err := runHelper(mode, os.Getenv(helperPathEnv)); err != nil {
			fmt.Fprintf(os.Stderr, "proclocks test helper %s: %v\n", mode, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper does what a helper process in mode is for.
func runHelper(mode, path string) error {
	// Descriptor 3 is the parent's first ExtraFiles entry: a descriptor
	// sharing the parent's open file description.
	const inherited = 3
	switch mode {
	case "exit":
		return nil
	case "flock-inherited":
		// Lock the parent's open file description, then exit: the lock
		// outlives this process, which /proc/locks still names.
		if err := unix.Flock(inherited, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return fmt.Errorf("flock of inherited descriptor: %w", err)
		}
		return nil
	case "hold-inherited":
		fmt.Println("ready")
		return waitForStdinClose()
	}

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	switch mode {
	case "flock":
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return fmt.Errorf("flock %s: %w", path, err)
		}
	case "ofd-read":
		if err := fcntlLock(fd, unix.F_OFD_SETLK, unix.F_RDLCK, 0, 0); err != nil {
			return fmt.Errorf("OFD read lock on %s: %w", path, err)
		}
	case "posix-wait", "ofd-wait":
		cmd := unix.F_SETLKW
		if mode == "ofd-wait" {
			cmd = unix.F_OFD_SETLKW
		}
		// Say so before blocking; the parent watches /proc/locks for the
		// waiter itself.
		fmt.Println("waiting")
		if err := fcntlLock(fd, cmd, unix.F_WRLCK, 0, 0); err != nil {
			return fmt.Errorf("waiting for a write lock on %s: %w", path, err)
		}
	default:
		return fmt.Errorf("unknown helper mode %q", mode)
	}
	fmt.Println("ready")
	return waitForStdinClose()
}

func waitForStdinClose() error {
	_, err := io.Copy(io.Discard, os.Stdin)
	return err
}

// fcntlLock sets a POSIX or OFD lock (F_UNLCK to release) of length
// bytes from start on fd; a zero length reaches the end of the file.
func fcntlLock(fd, cmd int, typ int16, start, length int64) error {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: length}
	for {
		err := unix.FcntlFlock(uintptr(fd), cmd, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}

// helper is a running helper process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startHelper starts a helper process in mode on path, passing it extra
// as descriptors 3 and on, and stops it when the test ends.
func startHelper(t *testing.T, mode, path string, extra ...*os.File) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"="+mode, helperPathEnv+"="+path)
	cmd.ExtraFiles = extra
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A pipe of our own rather than StdoutPipe, whose reads must all end
	// before Wait: the reader here runs until the helper exits.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting helper %s: %v", mode, err)
	}
	w.Close()
	h := &helper{cmd: cmd, stdin: stdin, lines: make(chan string, 8)}
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// expect fails the test unless the helper's next line is want.
func (h *helper) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got, ok := <-h.lines:
		if !ok {
			t.Fatalf("helper %d exited before saying %q", h.pid(), want)
		}
		if got != want {
			t.Fatalf("helper %d said %q, want %q", h.pid(), got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %d did not say %q within 10s", h.pid(), want)
	}
}

// stop closes the helper's stdin, which ends it, and kills it if it is
// stuck (blocked on a lock, after a failed test).
func (h *helper) stop() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() {
		h.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}

// waitUntil polls cond until it holds, failing the test after 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting 10s for %s", what)
		}
	}
}

// lockFile creates an empty file to lock and opens it read-write.
func lockFile(t *testing.T) (*os.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

func forFile(t *testing.T, path string) backend.Status {
	t.Helper()
	st, err := ForFile(path)
	if err != nil {
		t.Fatalf("ForFile(%s): %v", path, err)
	}
	if st.Path != path {
		t.Errorf("ForFile(%s).Path = %q", path, st.Path)
	}
	return st
}

// checkOne fails the test unless owners is exactly want.
func checkOne(t *testing.T, what string, owners []backend.LockOwner, want backend.LockOwner) {
	t.Helper()
	if len(owners) != 1 || owners[0] != want {
		t.Errorf("%s = %+v, want [%+v]", what, owners, want)
	}
}

func TestForFileFlock(t *testing.T) {
	f, path := lockFile(t)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	st := forFile(t, path)
	checkOne(t, "holders", st.Holders, backend.LockOwner{
		PID: os.Getpid(), Command: Command(os.Getpid()), Kind: KindFlock, Mode: backend.Exclusive, Range: backend.WholeFile,
	})
	if len(st.Waiters) != 0 {
		t.Errorf("waiters = %+v, want none", st.Waiters)
	}
	if st.Holders[0].Command == "" {
		t.Error("holder's Command is empty")
	}
}

func TestForFilePOSIXRange(t *testing.T) {
	f, path := lockFile(t)
	if err := fcntlLock(int(f.Fd()), unix.F_SETLK, unix.F_RDLCK, 10, 10); err != nil {
		t.Fatal(err)
	}
	st := forFile(t, path)
	checkOne(t, "holders", st.Holders, backend.LockOwner{
		PID: os.Getpid(), Command: Command(os.Getpid()), Kind: KindPOSIX, Mode: backend.Shared, Range: backend.Range{Start: 10, End: 20},
	})
	// ForFile must not have opened and closed the file, which would
	// have dropped this process's POSIX locks on it.
	if st := forFile(t, path); len(st.Holders) != 1 {
		t.Errorf("a second ForFile found holders %+v: the first released the lock", st.Holders)
	}
}

func TestForFileOFD(t *testing.T) {
	f, path := lockFile(t)
	if err := fcntlLock(int(f.Fd()), unix.F_OFD_SETLK, unix.F_WRLCK, 0, 0); err != nil {
		t.Fatal(err)
	}
	// The kernel names no owner for an OFD lock; check that it still
	// does not, or this test would not test the fdinfo scan.
	ino := inode(t, path)
	locks, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(locks, func(l Lock) bool { return l.Inode == ino && l.Kind == KindOFD && l.PID == -1 }) {
		t.Fatalf("/proc/locks shows no OFD lock with pid -1 on inode %d: %+v", ino, locks)
	}
	st := forFile(t, path)
	checkOne(t, "holders", st.Holders, backend.LockOwner{
		PID: os.Getpid(), Command: Command(os.Getpid()), Kind: KindOFD, Mode: backend.Exclusive, Range: backend.WholeFile,
	})
}

func TestForFileOtherProcess(t *testing.T) {
	_, path := lockFile(t)
	h := startHelper(t, "flock", path)
	h.expect(t, "ready")
	st := forFile(t, path)
	// The helper is this test binary, so it has this process's command.
	checkOne(t, "holders", st.Holders, backend.LockOwner{
		PID: h.pid(), Command: Command(os.Getpid()), Kind: KindFlock, Mode: backend.Exclusive, Range: backend.WholeFile,
	})
	if got := ParentPID(h.pid()); got != os.Getpid() {
		t.Errorf("ParentPID(helper) = %d, want this process, %d", got, os.Getpid())
	}

	// Once the helper exits, its lock is gone.
	h.stop()
	if st := forFile(t, path); st.Locked() {
		t.Errorf("holders after the helper exited = %+v, want none", st.Holders)
	}
}

func TestForFileWaiter(t *testing.T) {
	for _, tt := range []struct {
		mode, kind string
		lockCmd    int
		waiterPID  func(h *helper) int
	}{
		{"posix-wait", KindPOSIX, unix.F_SETLK, func(h *helper) int { return h.pid() }},
		// The kernel names no process for a blocked OFD request, and
		// fdinfo lists granted locks only.
		{"ofd-wait", KindOFD, unix.F_OFD_SETLK, func(*helper) int { return -1 }},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			f, path := lockFile(t)
			if err := fcntlLock(int(f.Fd()), tt.lockCmd, unix.F_WRLCK, 0, 0); err != nil {
				t.Fatal(err)
			}
			h := startHelper(t, tt.mode, path)
			h.expect(t, "waiting")
			var st backend.Status
			waitUntil(t, "the helper's request to appear in /proc/locks", func() bool {
				st = forFile(t, path)
				return len(st.Waiters) > 0
			})
			pid := tt.waiterPID(h)
			checkOne(t, "waiters", st.Waiters, backend.LockOwner{
				PID: pid, Command: Command(pid), Kind: tt.kind, Mode: backend.Exclusive, Range: backend.WholeFile,
			})
			checkOne(t, "holders", st.Holders, backend.LockOwner{
				PID: os.Getpid(), Command: Command(os.Getpid()), Kind: tt.kind, Mode: backend.Exclusive, Range: backend.WholeFile,
			})

			// Released, the lock goes to the waiter, which stops waiting.
			if err := fcntlLock(int(f.Fd()), tt.lockCmd, unix.F_UNLCK, 0, 0); err != nil {
				t.Fatal(err)
			}
			h.expect(t, "ready")
			st = forFile(t, path)
			if len(st.Waiters) != 0 || len(st.Holders) != 1 || st.Holders[0].PID == os.Getpid() {
				t.Errorf("after release: holders %+v, waiters %+v; want the helper alone holding", st.Holders, st.Waiters)
			}
		})
	}
}

func TestForFileFlockPassedOn(t *testing.T) {
	f, path := lockFile(t)
	// The child locks the open file description it shares with us, and
	// exits; the lock lives on through our descriptor.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"=flock-inherited")
	cmd.ExtraFiles = []*os.File{f}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	child := cmd.Process.Pid

	ino := inode(t, path)
	locks, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(locks, func(l Lock) bool { return l.Inode == ino && l.Kind == KindFlock && l.PID == child }) {
		t.Fatalf("/proc/locks does not name the exited child %d for inode %d: %+v", child, ino, locks)
	}

	st := forFile(t, path)
	want := backend.LockOwner{
		PID: os.Getpid(), Command: Command(os.Getpid()), Kind: KindFlock, Mode: backend.Exclusive, Range: backend.WholeFile,
	}
	if len(st.Holders) == 1 {
		if !strings.Contains(st.Holders[0].Detail, strconv.Itoa(child)) {
			t.Errorf("holder's Detail %q does not name the exited pid %d", st.Holders[0].Detail, child)
		}
		want.Detail = st.Holders[0].Detail
	}
	checkOne(t, "holders", st.Holders, want)
}

func TestForFileSharedDescription(t *testing.T) {
	f, path := lockFile(t)
	if err := fcntlLock(int(f.Fd()), unix.F_OFD_SETLK, unix.F_RDLCK, 0, 0); err != nil {
		t.Fatal(err)
	}
	// sharer holds our open file description, and with it our lock;
	// other takes an identical lock through a description of its own.
	sharer := startHelper(t, "hold-inherited", path, f)
	sharer.expect(t, "ready")
	other := startHelper(t, "ofd-read", path)
	other.expect(t, "ready")

	// Without kcmp, ForFile can only guess which descriptors share a
	// description (see owners.go), and guesses this case wrong.
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(os.Getpid()), uintptr(sharer.pid()), kcmpFile, f.Fd(), 3, 0)
	if errno != 0 || r != 0 {
		t.Skipf("kcmp cannot compare descriptors here: result %d, error %v", r, errno)
	}

	st := forFile(t, path)
	// We are the sharer's parent: the description is ours, whichever pid
	// is lower.
	first, second := os.Getpid(), sharer.pid()
	var pids []int
	for _, o := range st.Holders {
		pids = append(pids, o.PID)
		if o.Kind != KindOFD || o.Mode != backend.Shared || o.Range != backend.WholeFile {
			t.Errorf("holder %+v, want a shared OFD lock on the whole file", o)
		}
		if o.PID == first && !strings.Contains(o.Detail, strconv.Itoa(second)) {
			t.Errorf("holder %d's Detail %q does not name pid %d, which shares its description", o.PID, o.Detail, second)
		}
	}
	slices.Sort(pids)
	if want := []int{first, other.pid()}; !slices.Equal(pids, slices.Sorted(slices.Values(want))) {
		t.Errorf("holders' pids = %v, want %v (shared description: %d and %d; own description: %d)",
			pids, want, os.Getpid(), sharer.pid(), other.pid())
	}
}

func TestForFileFree(t *testing.T) {
	_, path := lockFile(t)
	if st := forFile(t, path); st.Locked() || len(st.Waiters) != 0 {
		t.Errorf("free file: holders %+v, waiters %+v; want none", st.Holders, st.Waiters)
	}
}

func TestForFileSymlinkNotFollowed(t *testing.T) {
	f, path := lockFile(t)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(filepath.Dir(path), "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if st := forFile(t, link); st.Locked() {
		t.Errorf("a symlink to a locked file has holders %+v; want none, as it is not followed", st.Holders)
	}
}

func TestForFileNotExist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	st, err := ForFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ForFile(missing) = %+v, %v; want an error wrapping fs.ErrNotExist", st, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

// TestLockTableDevice checks the assumption ForFile's fast path rests on:
// that /proc/locks names a file by the st_dev stat gives it, on the
// filesystems where that holds; and that the superblock device from
// mountinfo, ForFile's fallback, matches /proc/locks everywhere.
func TestLockTableDevice(t *testing.T) {
	f, path := lockFile(t)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	var stat unix.Stat_t
	if err := unix.Lstat(path, &stat); err != nil {
		t.Fatal(err)
	}
	id := fileID{major: unix.Major(stat.Dev), minor: unix.Minor(stat.Dev), ino: stat.Ino}
	locks, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(locks, func(l Lock) bool {
		return l.Inode == stat.Ino && l.Kind == KindFlock && l.PID == os.Getpid()
	})
	if i < 0 {
		t.Fatalf("no flock lock of ours on inode %d in /proc/locks: %+v", stat.Ino, locks)
	}
	got := fileID{major: locks[i].Major, minor: locks[i].Minor, ino: locks[i].Inode}

	sb, ok := superblockID(path, id)
	if !ok {
		t.Errorf("no superblock device for %s from statx and mountinfo", path)
	} else if sb != got {
		t.Errorf("superblock device %d:%d, but /proc/locks says %d:%d", sb.major, sb.minor, got.major, got.minor)
	}

	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		t.Fatal(err)
	}
	switch sfs.Type {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		if got != id {
			t.Errorf("on filesystem type %#x, /proc/locks names %d:%d where stat says %d:%d", sfs.Type, got.major, got.minor, id.major, id.minor)
		}
	default:
		t.Logf("filesystem type %#x: stat %d:%d, /proc/locks %d:%d", sfs.Type, id.major, id.minor, got.major, got.minor)
	}
}

func TestMountDevice(t *testing.T) {
	mountinfo := filepath.Join(t.TempDir(), "mountinfo")
	content := `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
370 36 0:47 /home /home rw,relatime shared:2 - btrfs /dev/sda2 rw,subvol=/home
`
	if err := os.WriteFile(mountinfo, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id           uint64
		major, minor uint32
		ok           bool
	}{
		{36, 98, 0, true},
		{370, 0, 47, true},
		{37, 0, 0, false}, // a prefix of 370 must not match
	} {
		major, minor, ok := mountDevice(mountinfo, tt.id)
		if major != tt.major || minor != tt.minor || ok != tt.ok {
			t.Errorf("mountDevice(%d) = %d:%d, %v; want %d:%d, %v", tt.id, major, minor, ok, tt.major, tt.minor, tt.ok)
		}
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// lastPID is where the kernel keeps the last pid it handed out; root may
// write it to choose the next one.
const lastPID = "/proc/sys/kernel/ns_last_pid"

// TestForFileOwnerIsTheEldestSharerAfterPIDWrap: pids wrap around (at
// 32768 on many systems), so a child that inherited a locked descriptor
// can have a lower pid than the process it inherited it from. The owner
// of a description shared by a parent and its child is the parent, which
// is what a person must end for the lock to go; crediting the lowest pid
// named a short-lived `sleep` under `lockmgr run -v` on a busy machine.
func TestForFileOwnerIsTheEldestSharerAfterPIDWrap(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("choosing a child's pid takes root (writing " + lastPID + ")")
	}
	f, path := lockFile(t)
	// A child with a pid below ours shares our description.
	var child *helper
	for try := 0; child == nil && try < 50; try++ {
		low := freePIDBelow(t, os.Getpid())
		if err := os.WriteFile(lastPID, []byte(strconv.Itoa(low-1)), 0); err != nil {
			t.Skipf("cannot choose the next pid: %v", err)
		}
		h := startHelper(t, "hold-inherited", path, f)
		h.expect(t, "ready")
		if h.pid() < os.Getpid() {
			child = h
		} else {
			h.stop()
		}
	}
	if child == nil {
		t.Skip("could not start a child with a pid below this process's")
	}
	// Another child locks the description and exits, as a plugin does:
	// then /proc/locks names a dead pid and the owner comes from fdinfo.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"=flock-inherited")
	cmd.ExtraFiles = []*os.File{f}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}

	st := forFile(t, path)
	if len(st.Holders) != 1 {
		t.Fatalf("holders = %+v, want one", st.Holders)
	}
	if got := st.Holders[0].PID; got != os.Getpid() {
		t.Errorf("holder is pid %d, want this process %d, from which child %d inherited the description", got, os.Getpid(), child.pid())
	}
	if d := st.Holders[0].Detail; !strings.Contains(d, strconv.Itoa(child.pid())) {
		t.Errorf("holder's Detail %q does not name pid %d, which shares its description", d, child.pid())
	}
}

// freePIDBelow returns a pid below limit that no process has.
func freePIDBelow(t *testing.T, limit int) int {
	t.Helper()
	for pid := limit - 1; pid > 300; pid-- {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, fs.ErrNotExist) {
			return pid
		}
	}
	t.Skipf("no free pid below %d", limit)
	return 0
}
