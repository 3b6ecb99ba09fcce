package pluginhost

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
)

// privateDir returns a fresh directory that only its owner may write, as
// Verify insists for a plugin directory.
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyPlugin puts an executable into dir as backend name's binary. Finding
// and verifying look at names, owners and modes, never at contents, so any
// executable serves.
func copyPlugin(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, BinaryPrefix+name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return p
}

func TestSearchPath(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exeDir := filepath.Dir(exe)
	t.Setenv(DirEnv, "/env/plugins/")
	got := SearchPath("/explicit", "/config/dir")
	want := []string{
		"/explicit",
		"/env/plugins",
		"/config/dir",
		exeDir,
		filepath.Join(exeDir, "..", "lib", "lockmgr"),
		SystemDir,
	}
	if strings.Join(got, ":") != strings.Join(want, ":") {
		t.Fatalf("SearchPath = %q,\nwant %q", got, want)
	}

	// Empty entries are skipped, and each directory appears once, at its
	// first place, however it is spelled.
	t.Setenv(DirEnv, "")
	got = SearchPath("", "")
	want = []string{exeDir, filepath.Join(exeDir, "..", "lib", "lockmgr"), SystemDir}
	if strings.Join(got, ":") != strings.Join(want, ":") {
		t.Fatalf("SearchPath with nothing set = %q, want %q", got, want)
	}
	t.Setenv(DirEnv, SystemDir+"/")
	got = SearchPath("/a/b/../b", "/a/b/.")
	want = []string{"/a/b", SystemDir, exeDir, filepath.Join(exeDir, "..", "lib", "lockmgr")}
	if strings.Join(got, ":") != strings.Join(want, ":") {
		t.Fatalf("SearchPath with duplicates = %q, want %q", got, want)
	}
}

func TestFind(t *testing.T) {
	empty, first, second := privateDir(t), privateDir(t), privateDir(t)
	p1 := copyPlugin(t, first, "flock")
	copyPlugin(t, second, "flock")
	got, err := Find("flock", []string{empty, first, second})
	if err != nil || got != p1 {
		t.Fatalf("Find = %q, %v; want the first on the path, %q", got, err, p1)
	}

	_, err = Find("nope", []string{empty, first})
	if !errors.Is(err, backend.ErrBackendNotFound) {
		t.Fatalf("Find(missing): %v, want ErrBackendNotFound", err)
	}
	for _, want := range []string{empty, first, BinaryPrefix + "nope", "(nope)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Find(missing): %q does not say %q", err, want)
		}
	}
}

func TestFindRefusesInvalidNames(t *testing.T) {
	dir := privateDir(t)
	// A file a name with a slash would reach, had it been accepted.
	if err := os.Mkdir(filepath.Join(dir, BinaryPrefix+".."), 0o755); err != nil {
		t.Fatal(err)
	}
	copyPlugin(t, dir, "x")
	if err := os.Rename(filepath.Join(dir, BinaryPrefix+"x"), filepath.Join(dir, BinaryPrefix+"..", "x")); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 65)
	for _, name := range []string{"../x", "", "Flock", "a/b", "-x", ".x", "x y", "x\n", long} {
		p, err := Find(name, []string{dir})
		if err == nil {
			t.Errorf("Find(%q) = %q, want a refusal", name, p)
			continue
		}
		if !errors.Is(err, backend.ErrBackendNotFound) || !strings.Contains(err.Error(), "invalid backend name") {
			t.Errorf("Find(%q): %v, want ErrBackendNotFound for an invalid name", name, err)
		}
	}
}

func TestVerify(t *testing.T) {
	if err := Verify(copyPlugin(t, privateDir(t), "flock")); err != nil {
		t.Fatalf("Verify(a plugin in a private directory): %v", err)
	}

	dir := privateDir(t)
	p := copyPlugin(t, dir, "flock")
	link := filepath.Join(privateDir(t), BinaryPrefix+"flock")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if err := Verify(link); err != nil {
		t.Fatalf("Verify(a link to a safe plugin): %v", err)
	}

	unsafe := func(what string, wantInMsg string) {
		t.Helper()
		err := Verify(p)
		if !errors.Is(err, ErrUnsafe) {
			t.Fatalf("Verify(%s): %v, want ErrUnsafe", what, err)
		}
		if !strings.Contains(err.Error(), wantInMsg) {
			t.Fatalf("Verify(%s): %q does not name %s", what, err, wantInMsg)
		}
	}
	chmod := func(path string, mode os.FileMode) {
		t.Helper()
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}

	chmod(p, 0o775)
	unsafe("a group-writable binary", p)
	chmod(p, 0o757)
	unsafe("a world-writable binary", p)
	chmod(p, 0o644)
	unsafe("a non-executable file", p)
	chmod(p, 0o755)
	chmod(dir, 0o777)
	unsafe("a binary in a world-writable directory", dir)
	chmod(dir, 0o775)
	unsafe("a binary in a group-writable directory", dir)
	chmod(dir, 0o755)
	if err := Verify(p); err != nil {
		t.Fatalf("Verify after the permissions were put right: %v", err)
	}

	// Through a link, the checks apply to the file and the directory the
	// link leads to.
	chmod(dir, 0o777)
	if err := Verify(link); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Verify(a link into a world-writable directory): %v, want ErrUnsafe", err)
	}
	chmod(dir, 0o755)

	sub := filepath.Join(dir, BinaryPrefix+"dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Verify(sub); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Verify(a directory): %v, want ErrUnsafe", err)
	}
	if err := Verify(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Verify(a missing file) = nil")
	}
}

// TestVerifyPlantedName: a name added to a directory others may write is
// refused, whatever it leads to, sticky bit or not, and whoever owns it;
// a sticky directory further up, as /tmp is, is no reason to refuse.
func TestVerifyPlantedName(t *testing.T) {
	good := copyPlugin(t, privateDir(t), "flock")
	shared := privateDir(t)
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(shared); err != nil || st.Mode()&os.ModeSticky == 0 || st.Mode().Perm() != 0o777 {
		t.Fatalf("%s is not sticky and world-writable: %v, %v", shared, st.Mode(), err)
	}
	link := filepath.Join(shared, BinaryPrefix+"flock")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	err := Verify(link)
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), shared+" is writable by group or others") {
		t.Fatalf("Verify(a link in a sticky world-writable directory): %v, want ErrUnsafe naming %s", err, shared)
	}
	// A hard link there is refused the same way: lstat shows the owner of
	// the file it shares, not who added the name.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(good, link); err != nil {
		t.Fatal(err)
	}
	if err := Verify(link); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Verify(a hard link in a sticky world-writable directory): %v, want ErrUnsafe", err)
	}

	// Below a sticky directory, in a private one: fine.
	sub := filepath.Join(shared, "mine")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Verify(copyPlugin(t, sub, "flock")); err != nil {
		t.Fatalf("Verify(a plugin in a private directory under a sticky one): %v", err)
	}
	// A relative link with "..", resolved as the kernel would.
	rel := filepath.Join(sub, BinaryPrefix+"rel")
	if err := os.Symlink("../mine/"+BinaryPrefix+"flock", rel); err != nil {
		t.Fatal(err)
	}
	if err := Verify(rel); err != nil {
		t.Fatalf("Verify(a relative link): %v", err)
	}
	loop := filepath.Join(sub, BinaryPrefix+"loop")
	if err := os.Symlink(BinaryPrefix+"loop", loop); err != nil {
		t.Fatal(err)
	}
	if err := Verify(loop); err == nil {
		t.Fatal("Verify(a link to itself) = nil")
	}
}

// TestVerifyOwners: a link, or a directory on the way, owned by another
// user is refused, though what the link leads to is safe.
func TestVerifyOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user takes root")
	}
	const other = 4242
	good := copyPlugin(t, privateDir(t), "flock")
	dir := privateDir(t)
	link := filepath.Join(dir, BinaryPrefix+"flock")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, other, other); err != nil {
		t.Fatal(err)
	}
	err := Verify(link)
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), link+" is owned by uid 4242") {
		t.Fatalf("Verify(a link owned by another user): %v, want ErrUnsafe naming the link's owner", err)
	}

	parent := privateDir(t)
	sub := filepath.Join(parent, "theirs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	p := copyPlugin(t, sub, "flock")
	if err := os.Chown(sub, other, other); err != nil {
		t.Fatal(err)
	}
	err = Verify(p)
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), sub+" is owned by uid 4242") {
		t.Fatalf("Verify(a plugin in another user's directory): %v, want ErrUnsafe naming it", err)
	}
}
