package pluginhost

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
)

// BinaryPrefix starts the file name of every backend plugin: backend NAME
// is the binary lockmgr-backend-NAME. It is backend.PluginBinaryPrefix,
// under the name pluginhost's users know.
const BinaryPrefix = backend.PluginBinaryPrefix

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
	if !backend.ValidName(name) {
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
			if !backend.ValidName(name) || seen[name] {
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

// maxLinks bounds the symbolic links followed to reach a plugin, as the
// kernel's own limit (40) bounds a lookup: a loop is an error, not a hang.
const maxLinks = 40

// Verify refuses a plugin binary that another user could have planted or
// replaced, since a plugin runs with the host's privileges. path is
// resolved one name at a time from /, following symbolic links, and
//
//   - every name on the way (each directory, each symbolic link, the
//     file itself) must be owned by root or by the user lockmgr runs as
//     (its effective uid), judged by lstat: the entry itself, not only
//     what a link points to;
//   - every directory looked through must be owned likewise and not
//     writable by group or others, unless it is sticky (as /tmp is):
//     there others may add names but not rename or remove ours, and a
//     name of theirs fails the owner rule;
//   - the directory that holds the plugin's name, and each directory
//     that holds a link or the file the name leads to, must not be
//     writable by group or others at all, sticky or not: there anyone
//     could add lockmgr-backend-NAME, as a link, or as a hard link to a
//     root-owned program, which lstat would show as root's;
//   - the file must be a regular executable file, not writable by group
//     or others.
//
// startProcess applies the same rules to the path, and the file's to the
// descriptor it then hashes and executes, so that what was checked is
// what runs.
func Verify(path string) error {
	real, st, err := resolveTrusted(path)
	if err != nil {
		return err
	}
	return checkBinary(real, st)
}

// resolveTrusted resolves path as Verify describes, checking every name
// and directory on the way, and returns the real path of what it names,
// a file or a directory, and its lstat.
func resolveTrusted(path string) (string, fs.FileInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, err
	}
	cur := "/"
	curSt, err := os.Lstat(cur)
	if err != nil {
		return "", nil, err
	}
	if err := trustedDir(cur, curSt, ""); err != nil {
		return "", nil, err
	}
	todo := names(abs)
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if name == ".." {
			// cur has no links in it, so its parent is its lexical one,
			// and was checked on the way down.
			cur = filepath.Dir(cur)
			if curSt, err = os.Lstat(cur); err != nil {
				return "", nil, err
			}
			continue
		}
		next := filepath.Join(cur, name)
		st, err := os.Lstat(next)
		if err != nil {
			return "", nil, err
		}
		if err := safeOwner(next, st); err != nil {
			return "", nil, err
		}
		last := len(todo) == 0
		if !st.IsDir() {
			// A link or the file itself: where it sits must be closed to
			// others.
			if err := trustedDir(cur, curSt, name); err != nil {
				return "", nil, err
			}
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxLinks {
				return "", nil, fmt.Errorf("%w: %s: more than %d symbolic links", ErrUnsafe, path, maxLinks)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", nil, err
			}
			if filepath.IsAbs(target) {
				cur = "/"
				if curSt, err = os.Lstat(cur); err != nil {
					return "", nil, err
				}
			}
			todo = append(names(target), todo...)
		case st.IsDir():
			if err := trustedDir(next, st, ""); err != nil {
				return "", nil, err
			}
			cur, curSt = next, st
		case !last:
			return "", nil, &fs.PathError{Op: "lookup", Path: next, Err: syscall.ENOTDIR}
		default:
			return next, st, nil
		}
	}
	return cur, curSt, nil
}

// names splits a path into the names a lookup goes through, leaving out
// empty ones and ".": not filepath.Clean, which would take "link/.." as
// "." where the kernel goes to the parent of link's target.
func names(path string) []string {
	var out []string
	for _, n := range strings.Split(path, "/") {
		if n != "" && n != "." {
			out = append(out, n)
		}
	}
	return out
}

// trustedDir refuses a directory that others may change: one not owned by
// root or the running user, or writable by group or others. A sticky
// directory may be writable by others, unless it holds entry, the name of
// a link or of the file being looked up, which must not be one that
// anyone could have added ("" for a directory looked through).
func trustedDir(dir string, st fs.FileInfo, entry string) error {
	if err := safeOwner(dir, st); err != nil {
		return err
	}
	perm := st.Mode().Perm()
	if perm&0o022 == 0 {
		return nil
	}
	sticky := st.Mode()&fs.ModeSticky != 0
	if sticky && entry == "" {
		return nil
	}
	if sticky {
		return fmt.Errorf("%w: %s is writable by group or others (mode %#o, sticky): anyone could have put %s there", ErrUnsafe, dir, perm|0o1000, entry)
	}
	return fmt.Errorf("%w: %s is writable by group or others (mode %#o)", ErrUnsafe, dir, perm)
}

// checkBinary refuses what must not run as a plugin: anything but a
// regular executable file owned by root or the running user and writable
// by no one else. st is the file's lstat or fstat.
func checkBinary(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrUnsafe, path)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: %s is not executable", ErrUnsafe, path)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %#o)", ErrUnsafe, path, st.Mode().Perm())
	}
	return safeOwner(path, st)
}

// safeOwner refuses an entry owned by anyone but root or the user lockmgr
// runs as (its effective uid, whose privileges the plugin gets).
func safeOwner(path string, st fs.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%w: %s: no owner to check", ErrUnsafe, path)
	}
	if uid := int(sys.Uid); uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not root or the running user (uid %d)", ErrUnsafe, path, uid, os.Geteuid())
	}
	return nil
}
