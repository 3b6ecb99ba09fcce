package lockfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// unprivilegedEnv turns the test binary into a helper that gives up root
// and then opens a lock file: root's CAP_DAC_OVERRIDE opens a 0444 file
// for writing, so the read-only fallback can only be seen without it.
const unprivilegedEnv = "LOCKFILE_TEST_OPEN_AS_NOBODY"

// nobody is the uid and gid the helper switches to. It need not exist in
// /etc/passwd: the kernel checks numbers.
const nobody = 65534

func TestMain(m *testing.M) {
	if path := os.Getenv(unprivilegedEnv); path != "" {
		os.Exit(openAsNobody(path))
	}
	os.Exit(m.Run())
}

// openResult is what the unprivileged helper reports about one Open.
type openResult struct {
	Err        string
	Permission bool // errors.Is(err, fs.ErrPermission)
	Writable   bool
	Created    bool
	Uid        int
}

func openAsNobody(path string) int {
	// Since Go 1.16 these change every thread of the process, so the open
	// below runs without root whatever thread it lands on.
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Fprintln(os.Stderr, "setgroups:", err)
		return 2
	}
	if err := syscall.Setgid(nobody); err != nil {
		fmt.Fprintln(os.Stderr, "setgid:", err)
		return 2
	}
	if err := syscall.Setuid(nobody); err != nil {
		fmt.Fprintln(os.Stderr, "setuid:", err)
		return 2
	}
	res := openResult{Uid: os.Geteuid()}
	o, err := Open(path, 0)
	if err != nil {
		res.Err, res.Permission = err.Error(), errors.Is(err, fs.ErrPermission)
	} else {
		res.Writable, res.Created = o.Writable, o.Created
		o.File.Close()
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 2
	}
	return 0
}

// openWithoutRoot opens path with Open in a process without root's
// privileges: this process if it has none, else a helper that drops them.
func openWithoutRoot(t *testing.T, path string) openResult {
	t.Helper()
	if os.Geteuid() != 0 {
		var res openResult
		o, err := Open(path, 0)
		if err != nil {
			res.Err, res.Permission = err.Error(), errors.Is(err, fs.ErrPermission)
			return res
		}
		res.Writable, res.Created = o.Writable, o.Created
		o.File.Close()
		return res
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Spare a -race helper the race runtime's one-second sleep at exit.
	cmd.Env = append(os.Environ(), unprivilegedEnv+"="+path, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unprivileged helper: %v", err)
	}
	var res openResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("unprivileged helper said %q: %v", out, err)
	}
	if res.Uid != nobody {
		t.Fatalf("helper ran as uid %d, want %d", res.Uid, nobody)
	}
	return res
}

// publicDir returns a fresh directory that other users may enter but not
// write to, removed when the test ends. (t.TempDir's are private.)
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lockfile-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
			t.Fatalf("%s is not searchable by other users, so an unprivileged helper cannot reach %s; set TMPDIR to a directory that is", d, dir)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return dir
}

func mustOpen(t *testing.T, path string) *Opened {
	t.Helper()
	o, err := Open(path, 0)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { o.File.Close() })
	return o
}

func TestOpenCreates(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	p := filepath.Join(t.TempDir(), "lock")
	o := mustOpen(t, p)
	if !o.Created || !o.Writable {
		t.Fatalf("Open of a new file: Created %v, Writable %v, want both true", o.Created, o.Writable)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != DefaultMode {
		t.Fatalf("new lock file has mode %#o, want %#o", st.Mode().Perm(), DefaultMode)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if o.Key != (Key{Dev: sys.Dev, Ino: sys.Ino}) {
		t.Fatalf("Key %+v, but stat says dev %d ino %d", o.Key, sys.Dev, sys.Ino)
	}

	again := mustOpen(t, p)
	if again.Created {
		t.Fatal("Open of an existing file reports Created")
	}
	if !again.Writable {
		t.Fatal("Open of an existing writable file is not Writable")
	}
	if again.Key != o.Key {
		t.Fatalf("two opens of one file have keys %+v and %+v", o.Key, again.Key)
	}

	p2 := filepath.Join(t.TempDir(), "lock")
	if _, err := Open(p2, 0o640); err != nil { // not DefaultMode, so that an ignored perm shows
		t.Fatal(err)
	}
	if st, err := os.Stat(p2); err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("Open(perm 0640) made mode %v (stat: %v)", st.Mode().Perm(), err)
	}
}

func TestOpenIsCloseOnExec(t *testing.T) {
	o := mustOpen(t, filepath.Join(t.TempDir(), "lock"))
	flags, err := unix.FcntlInt(o.File.Fd(), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("lock file descriptor lacks FD_CLOEXEC: a child would inherit the lock")
	}
}

// A command inherits the lock file's descriptor: it must be an ordinary,
// blocking one, whatever Open used to keep the open itself from blocking.
// Each way Open opens a file is checked: existing, created, read-only.
func TestOpenLeavesDescriptorBlocking(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(dir, "readonly")
	if err := os.WriteFile(readOnly, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{existing, filepath.Join(dir, "created"), readOnly} {
		o := mustOpen(t, path)
		raw, err := o.File.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags int
		var ferr error
		if err := raw.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
			t.Fatal(err, ferr)
		}
		if flags&unix.O_NONBLOCK != 0 {
			t.Errorf("%s: lock file descriptor is O_NONBLOCK (flags %#x): a command that inherits it would read and write it non-blocking", path, flags)
		}
		if flags&unix.O_APPEND != 0 {
			t.Errorf("%s: lock file descriptor has O_APPEND (flags %#x), which Open never asked for", path, flags)
		}
	}
}

func TestOpenRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("target exists %v", existing), func(t *testing.T) {
			target := filepath.Join(dir, fmt.Sprintf("target-%v", existing))
			link := filepath.Join(dir, fmt.Sprintf("link-%v", existing))
			if existing {
				if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			o, err := Open(link, 0)
			if err == nil {
				o.File.Close()
				t.Fatal("Open followed a symbolic link")
			}
			if !errors.Is(err, ErrSymlink) || !errors.Is(err, unix.ELOOP) {
				t.Fatalf("Open(symlink): %v, want ErrSymlink wrapping ELOOP", err)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != link {
				t.Fatalf("Open(symlink): %v, want a *fs.PathError naming %s", err, link)
			}
			if !existing {
				if _, serr := os.Lstat(target); !errors.Is(serr, fs.ErrNotExist) {
					t.Fatalf("the link's target was created (lstat: %v)", serr)
				}
			} else if b, _ := os.ReadFile(target); string(b) != "keep" {
				t.Fatalf("the link's target was changed: %q", b)
			}
		})
	}
}

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	o := mustOpen(t, dir)
	if o.Writable || o.Created {
		t.Fatalf("Open(directory): Writable %v, Created %v, want both false", o.Writable, o.Created)
	}
	// flock(1) locks directories; so must a read-only descriptor.
	if err := unix.Flock(int(o.File.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock on the directory: %v", err)
	}
}

// TestOpenReadOnlyFile checks the fallback for a file the caller may only
// read. As root the kernel grants O_RDWR on a 0444 file anyway, so the
// open runs in a helper that has given up root. (EROFS, a read-only
// filesystem, takes the same branch of Open, but needs a read-only mount,
// which a test cannot count on being allowed to make.)
func TestOpenReadOnlyFile(t *testing.T) {
	dir := publicDir(t)
	p := filepath.Join(dir, "lock")
	if err := os.WriteFile(p, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o444); err != nil {
		t.Fatal(err)
	}
	// Nor may the caller write the directory, whoever owns it.
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) }) // so that it can be removed
	res := openWithoutRoot(t, p)
	if res.Err != "" {
		t.Fatalf("Open(0444 file) without root: %s", res.Err)
	}
	if res.Writable || res.Created {
		t.Fatalf("Open(0444 file) without root: Writable %v, Created %v, want both false", res.Writable, res.Created)
	}

	// A file that does not exist in a directory the caller cannot write:
	// the read-only retry finds nothing, and the error is the permission
	// problem, not "no such file".
	missing := filepath.Join(dir, "missing")
	res = openWithoutRoot(t, missing)
	if res.Err == "" || !res.Permission {
		t.Fatalf("Open(new file in a read-only directory) without root: %q, want a permission error", res.Err)
	}
	if _, err := os.Lstat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused Open created the file (lstat: %v)", err)
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no-such-dir", "lock")
	_, err := Open(p, 0)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open in a missing directory: %v, want ErrNotExist", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != p {
		t.Fatalf("Open in a missing directory: %v, want a *fs.PathError naming %s", err, p)
	}
}

// replace puts a new file at path by rename, as an editor or a
// remove-on-release holder followed by a new creator would.
func replace(t *testing.T, path string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestStillAt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	o := mustOpen(t, p)
	if ok, err := o.StillAt(p); err != nil || !ok {
		t.Fatalf("StillAt right after Open = %v, %v; want true", ok, err)
	}
	replace(t, p)
	if ok, err := o.StillAt(p); err != nil || ok {
		t.Fatalf("StillAt after the path was replaced = %v, %v; want false", ok, err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if ok, err := o.StillAt(p); err != nil || ok {
		t.Fatalf("StillAt after the path was removed = %v, %v; want false, nil", ok, err)
	}
	// A symbolic link to the very file is not the file: StillAt looks at
	// the path itself, as Open's O_NOFOLLOW does.
	q := filepath.Join(t.TempDir(), "lock")
	oq := mustOpen(t, q)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(q, link); err != nil {
		t.Fatal(err)
	}
	if ok, err := oq.StillAt(link); err != nil || ok {
		t.Fatalf("StillAt(a symlink to the file) = %v, %v; want false", ok, err)
	}
}

func TestRemoveIfStillAt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	o := mustOpen(t, p)
	replace(t, p)
	if err := o.RemoveIfStillAt(p); err != nil {
		t.Fatalf("RemoveIfStillAt after replacement: %v", err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "new" {
		t.Fatalf("RemoveIfStillAt removed or changed the file that replaced ours (read %q, %v)", b, err)
	}

	q := filepath.Join(t.TempDir(), "lock")
	oq := mustOpen(t, q)
	if err := oq.RemoveIfStillAt(q); err != nil {
		t.Fatalf("RemoveIfStillAt: %v", err)
	}
	if _, err := os.Lstat(q); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("RemoveIfStillAt left our own file in place (lstat: %v)", err)
	}
	// Gone already: nothing to do, and no error.
	if err := oq.RemoveIfStillAt(q); err != nil {
		t.Fatalf("RemoveIfStillAt on a removed path: %v", err)
	}
}

// tryFlock takes an exclusive flock(2) lock on fd without waiting.
func tryFlock(fd int) error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) }

// TestDiscardLeavesFileLockedByAnother: a created file that someone else
// has opened and locked meanwhile stays, and so does one whose lock
// attempt fails for any reason.
func TestDiscardLeavesFileLockedByAnother(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	o, err := Open(p, 0)
	if err != nil || !o.Created {
		t.Fatalf("Open: created %v, %v; want a new file", o != nil && o.Created, err)
	}
	other, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := tryFlock(int(other.Fd())); err != nil {
		t.Fatal(err)
	}
	o.Discard(p, tryFlock)
	if _, err := os.Lstat(p); err != nil {
		t.Fatalf("Discard removed a file another open file description holds locked: %v", err)
	}

	q := filepath.Join(t.TempDir(), "lock")
	if o, err = Open(q, 0); err != nil {
		t.Fatal(err)
	}
	o.Discard(q, func(int) error { return unix.ENOLCK })
	if _, err := os.Lstat(q); err != nil {
		t.Fatalf("Discard removed a file it could not lock: %v", err)
	}
}

func TestDiscard(t *testing.T) {
	dir := t.TempDir()

	created := filepath.Join(dir, "created")
	o, err := Open(created, 0)
	if err != nil {
		t.Fatal(err)
	}
	o.Discard(created, tryFlock)
	if _, err := os.Lstat(created); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Discard left behind the file Open created (lstat: %v)", err)
	}
	if _, err := o.File.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Discard did not close the file (stat: %v)", err)
	}

	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err = Open(existing, 0)
	if err != nil {
		t.Fatal(err)
	}
	o.Discard(existing, tryFlock)
	if b, err := os.ReadFile(existing); err != nil || string(b) != "mine" {
		t.Fatalf("Discard removed or changed a file Open did not create (read %q, %v)", b, err)
	}

	// Created, then replaced by someone else: the replacement stays.
	replaced := filepath.Join(dir, "replaced")
	o, err = Open(replaced, 0)
	if err != nil {
		t.Fatal(err)
	}
	replace(t, replaced)
	o.Discard(replaced, tryFlock)
	if b, err := os.ReadFile(replaced); err != nil || string(b) != "new" {
		t.Fatalf("Discard removed a file that replaced the one Open created (read %q, %v)", b, err)
	}
}

func TestPathOnNetworkFS(t *testing.T) {
	dir := t.TempDir()
	if PathOnNetworkFS(dir) {
		t.Fatalf("PathOnNetworkFS(%s) = true for a temporary directory", dir)
	}
	// A path that does not exist yet is judged by its nearest directory.
	if PathOnNetworkFS(filepath.Join(dir, "a", "b", "lock")) {
		t.Fatal("PathOnNetworkFS(a missing path under a local directory) = true")
	}
	if PathOnNetworkFS("relative-lock-that-does-not-exist") {
		t.Fatal("PathOnNetworkFS(a missing relative path) = true")
	}
	o := mustOpen(t, filepath.Join(dir, "lock"))
	if fs := NetworkFS(o.File); fs != "" {
		t.Fatalf("NetworkFS(a file in %s) = %q, want \"\"", dir, fs)
	}
}

func TestNetworkName(t *testing.T) {
	for magic, want := range map[int64]string{
		magicNFS:                "nfs",
		magicSMB:                "smb",
		magicCIFS:               "cifs",
		int64(int32(-0xacb2be)): "cifs", // 0xff534d42 as a signed 32-bit f_type
		magicSMB2:               "cifs",
		0xef53:                  "", // ext4
		0x01021994:              "", // tmpfs
	} {
		if got := networkName(magic); got != want {
			t.Errorf("networkName(%#x) = %q, want %q", magic, got, want)
		}
	}
}

func TestParentDir(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b": "/a",
		"/a":   "/",
		"/":    "/",
		"a/b":  "a",
		"a":    ".",
	} {
		if got := parentDir(in); got != want {
			t.Errorf("parentDir(%q) = %q, want %q", in, got, want)
		}
	}
}
