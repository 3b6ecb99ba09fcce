package pluginproc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
)

// BinaryPrefix starts the file name of every backend plugin: backend NAME
// is the binary lockmgr-backend-NAME.
const BinaryPrefix = "lockmgr-backend-"

// DirEnv names the environment variable that adds a plugin directory.
const DirEnv = "LOCKMGR_PLUGIN_DIR"

// SystemDir is where packages install the plugins.
const SystemDir = "/usr/lib/lockmgr"

// SearchPath returns the directories searched for plugins, in order: the
// explicit option, $LOCKMGR_PLUGIN_DIR, the config's plugin_dir, the
// running executable's directory, ../lib/lockmgr relative to it (so that
// /usr/bin/lockmgr finds /usr/lib/lockmgr, and an unpacked tarball finds
// its own plugins), and SystemDir. Empty entries are skipped.
func SearchPath(explicit, configDir string) []string {
	dirs := []string{explicit, os.Getenv(DirEnv), configDir}
	if exe, err := os.Executable(); err == nil {
		exeDir := filepath.Dir(exe)
		dirs = append(dirs, exeDir, filepath.Join(exeDir, "..", "lib", "lockmgr"))
	}
	dirs = append(dirs, SystemDir)
	var out []string
	seen := map[string]bool{}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		d = filepath.Clean(d)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// Find returns the path of backend name's plugin binary: the first
// lockmgr-backend-NAME in dirs.
func Find(name string, dirs []string) (string, error) {
	if !config.ValidBackendName(name) {
		return "", backend.Errorf("start", "", name, fmt.Errorf("%w: invalid backend name %q", backend.ErrBackendNotFound, name))
	}
	for _, d := range dirs {
		p := filepath.Join(d, BinaryPrefix+name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", backend.Errorf("start", "", name, fmt.Errorf("%w: no %s%s in %s", backend.ErrBackendNotFound, BinaryPrefix, name, strings.Join(dirs, ":")))
}

// Found is a plugin binary found on the search path.
type Found struct {
	Name string
	Path string
}

// List returns every backend plugin in dirs, each name once (the first
// found wins, as Find would choose), sorted by name.
func List(dirs []string) []Found {
	seen := map[string]bool{}
	var out []Found
	for _, d := range dirs {
		matches, _ := filepath.Glob(filepath.Join(d, BinaryPrefix+"*"))
		for _, m := range matches {
			name := strings.TrimPrefix(filepath.Base(m), BinaryPrefix)
			if !config.ValidBackendName(name) || seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, Found{Name: name, Path: m})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ErrUnsafe is the cause Verify reports for a plugin that anyone but its
// owner could have replaced.
var ErrUnsafe = errors.New("unsafe plugin")

// Verify refuses a plugin binary that another user could have written:
// one that is not a regular executable file, that is group- or
// world-writable, or that is owned by anyone but root or the current user,
// and the same for the directory that holds it. A plugin runs with the
// host's privileges, so a writable one is a way in.
func Verify(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	st, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrUnsafe, real)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: %s is not executable", ErrUnsafe, real)
	}
	if err := safeOwner(real, st); err != nil {
		return err
	}
	dir := filepath.Dir(real)
	dst, err := os.Stat(dir)
	if err != nil {
		return err
	}
	return safeOwner(dir, dst)
}

func safeOwner(path string, st fs.FileInfo) error {
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %#o)", ErrUnsafe, path, st.Mode().Perm())
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := int(sys.Uid); uid != 0 && uid != os.Getuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not root or the current user", ErrUnsafe, path, uid)
	}
	return nil
}
