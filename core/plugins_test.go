package lockmgr_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/locktest"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"golang.org/x/sys/unix"
)

// builtPlugins builds the named backends' plugins into a fresh directory
// that Verify accepts, and returns it.
func builtPlugins(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err := locktest.BuildPlugin(filepath.Join("..", "backends", name), name, dir); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pluginOpts are the options of a Handle that finds its plugins in dir
// alone, whatever the environment and config files of the machine say.
func pluginOpts(dir, name string) []lockmgr.Option {
	return []lockmgr.Option{lockmgr.WithBackend(name), lockmgr.WithPluginDir(dir), lockmgr.WithConfig(&config.Config{})}
}

// heldElsewhere reports whether path's file is flock-locked by an open
// file description other than the test's own: whether a fresh one is
// refused.
func heldElsewhere(t *testing.T, path string) bool {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	switch err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err {
	case nil:
		return false
	case unix.EWOULDBLOCK:
		return true
	default:
		t.Fatal(err)
		return false
	}
}

func openLockFile(t *testing.T) (*os.File, string) {
	t.Helper()
	path := lockPath(t)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

// TestWithFile: a Handle made WithFile locks the caller's open file
// description, as flock(1) locks a shell's descriptor. Unlock and Close
// release it; Detach leaves it with the file, and once Close has returned
// no plugin holds a copy, so closing the caller's file releases it.
func TestWithFile(t *testing.T) {
	dir := builtPlugins(t, "flock")
	f, path := openLockFile(t)

	h := lockmgr.New(path, append(pluginOpts(dir, "flock"), lockmgr.WithFile(f))...)
	ok, err := h.TryLock()
	try(t, "TryLock", ok, err, true)
	if !heldElsewhere(t, path) {
		t.Fatal("after TryLock, the file is not locked")
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if heldElsewhere(t, path) {
		t.Fatal("after Unlock, the caller's open file still holds the lock")
	}

	if err := h.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := h.Detach()
	if err != nil {
		t.Fatal(err)
	}
	if got != f {
		t.Errorf("Detach returned %v, want the caller's file %v", got, f)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if !heldElsewhere(t, path) {
		t.Fatal("after Detach and Close, the lock is gone while the caller's file is open")
	}
	f.Close()
	if heldElsewhere(t, path) {
		t.Fatal("the caller closed its file after Close, and the lock is still held: a plugin kept a copy")
	}

	g, path := openLockFile(t)
	h = lockmgr.New(path, append(pluginOpts(dir, "flock"), lockmgr.WithFile(g))...)
	if err := h.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if heldElsewhere(t, path) {
		t.Fatal("Close without Detach left the caller's file locked")
	}
}

// TestWithFileAlone: WithFile locks through a plugin of the Handle's own,
// which alone is handed the file; with a host or an in-process backend,
// which have no copy of it, the lock is refused as invalid.
func TestWithFileAlone(t *testing.T) {
	f, path := openLockFile(t)
	for name, opt := range map[string]lockmgr.Option{
		"WithLockMgr": lockmgr.WithLockMgr(flockBackend()),
		"WithHost":    lockmgr.WithHost(pluginhost.New(pluginhost.Options{})),
	} {
		h := lockmgr.New(path, lockmgr.WithFile(f), opt)
		_, err := h.TryLock()
		h.Close()
		if !errors.Is(err, lockmgr.ErrInvalid) {
			t.Errorf("WithFile and %s: TryLock = %v, want ErrInvalid", name, err)
		}
	}
}

// TestWithLifeline: only a Handle made WithLifeline can hand its plugin's
// lifeline on, and one made without it does not share that Handle's
// plugin (which would then die with this process).
func TestWithLifeline(t *testing.T) {
	dir := builtPlugins(t, "posix")
	path := lockPath(t)
	cfg := &config.Config{}
	opts := []lockmgr.Option{lockmgr.WithBackend("posix"), lockmgr.WithPluginDir(dir), lockmgr.WithConfig(cfg)}

	without := lockmgr.New(path, opts...)
	defer without.Close()
	if err := without.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := without.Lifeline(); !errors.Is(err, lockmgr.ErrUnsupported) {
		t.Fatalf("Lifeline without WithLifeline = %v, want ErrUnsupported", err)
	}
	if err := without.Unlock(); err != nil {
		t.Fatal(err)
	}

	with := lockmgr.New(path, append(opts, lockmgr.WithLifeline())...)
	defer with.Close()
	if err := with.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := with.Lifeline()
	if err != nil {
		t.Fatalf("Lifeline with WithLifeline: %v", err)
	}
	f.Close()
}

// TestOpenBackend: a Backend starts the plugin a lock would, describes
// it, and inspects a lock without taking one.
func TestOpenBackend(t *testing.T) {
	dir := builtPlugins(t, "flock")
	ctx := context.Background()
	b, err := lockmgr.OpenBackend(ctx, "flock", pluginOpts(dir, "flock")...)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	info, err := b.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "flock" || b.Name() != "flock" {
		t.Errorf("Info().Name = %q, Name() = %q, want flock", info.Name, b.Name())
	}

	f, path := openLockFile(t)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	st, err := b.Inspect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(st.Holders, func(o backend.LockOwner) bool { return o.PID == os.Getpid() }) {
		t.Errorf("Inspect(%s) = %+v, want this process among the holders", path, st)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}

	if _, err := lockmgr.OpenBackend(ctx, "nosuch", pluginOpts(dir, "nosuch")...); !errors.Is(err, lockmgr.ErrBackendNotFound) {
		t.Errorf("OpenBackend(nosuch) = %v, want ErrBackendNotFound", err)
	}
}

// TestListAndVerifyPlugins: the plugins on the search path of a
// configuration are listed as a lock would find them, and each verified
// as a lock's start would.
func TestListAndVerifyPlugins(t *testing.T) {
	dir := builtPlugins(t, "flock")
	t.Setenv(pluginhost.DirEnv, "")
	dirs := lockmgr.PluginSearchPath(&config.Config{PluginDir: dir})
	if !slices.Contains(dirs, dir) {
		t.Fatalf("PluginSearchPath = %v, want it to hold the configured %s", dirs, dir)
	}
	want := lockmgr.FoundPlugin{Name: "flock", Path: filepath.Join(dir, lockmgr.PluginBinaryPrefix+"flock")}
	found := lockmgr.ListPlugins([]string{dir})
	if !slices.Contains(found, want) {
		t.Fatalf("ListPlugins = %v, want %v among them", found, want)
	}
	if err := lockmgr.VerifyPlugin(want.Path); err != nil {
		t.Errorf("VerifyPlugin(%s) = %v", want.Path, err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := lockmgr.VerifyPlugin(want.Path); err == nil {
		t.Errorf("VerifyPlugin of a plugin in a directory anyone may write = nil, want a refusal")
	}
}
