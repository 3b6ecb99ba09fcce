package config

// Path rules pick a backend for a lock file by the directory it is in. A
// directory has many spellings (a symbolic link to it, a link to one of
// its parents, a bind mount of it) and every spelling must get the same
// backend: two backends on one file are two lock mechanisms that do not
// see each other, and both holders would believe they hold the lock. So a
// rule is matched against the directory itself, not against the text of
// the path: symbolic links are resolved on both sides, and the lock
// file's ancestors are compared with the rule's directory by device and
// inode, which a bind mount shares with its source.

import (
	"io/fs"
	"os"
	"path/filepath"
)

// BackendFor picks the backend that locks path: the backend of the rule
// whose directory is path's nearest ancestor (or path itself), else
// c.Backend. It also returns the Source that decided, so a caller can
// report why.
//
// path is cleaned, and a relative path is resolved against the working
// directory, since rules name absolute paths; that is also how lockmgr
// opens it. When there are rules, the symbolic links in path's directory
// are then resolved (the file itself may not exist yet, and lockmgr
// refuses a lock file that is a link), and so are those in each rule's
// path, as far as it exists. An ancestor of the resolved path matches a
// rule when it is the rule's resolved path, or the same directory (device
// and inode) under another name, such as a bind mount. The nearest
// matching ancestor wins, which is the longest matching rule when rules
// are spelt plainly; between rules for one directory, the earlier rule,
// from the higher-precedence file, wins.
//
// Still out of reach: a bind mount (or a second mount) of a directory
// below a rule's directory, whose ancestors are the mount point's rather
// than the rule's; and a hard link to a lock file from a directory that
// no rule covers. Configure a rule for each such mount point, or use one
// backend for the whole host.
//
// BackendAuto is resolved here, per path, because one configuration covers
// both local and network file systems. On NFS and SMB, Linux emulates
// flock(2) with whole-file byte-range locks, so flock's promise (locks
// owned by the open file description, independent of fcntl locks) does not
// hold there; the posix backend uses byte-range locks openly, which is what
// the server arbitrates anyway.
// Elsewhere flock is the common choice of scripts and tools. isNetwork
// reports whether path is on a network file system; nil means never.
// The Source returned for a resolved "auto" is that of the "auto" setting.
func (c *Config) BackendFor(path string, isNetwork func(path string) bool) (string, Source) {
	p := filepath.Clean(path)
	if !filepath.IsAbs(p) {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
	}

	name, src := c.Backend, c.Sources[KeyBackend]
	if name == "" {
		name, src = DefaultBackend, Source{Kind: KindDefault}
	}
	if len(c.Rules) > 0 {
		p = lockPath(p)
		if r := c.ruleFor(p); r != nil {
			name, src = r.Backend, r.Source
		}
	}

	if name == BackendAuto {
		if isNetwork != nil && isNetwork(p) {
			name = BackendPOSIX
		} else {
			name = BackendFlock
		}
	}
	return name, src
}

// ruleDir is a rule's directory as matching sees it.
type ruleDir struct {
	path string      // resolved as far as it exists
	info fs.FileInfo // nil when it cannot be stat'ed
}

// ruleFor returns the rule for p, clean, absolute and resolved by
// lockPath, or nil when no rule covers it.
func (c *Config) ruleFor(p string) *Rule {
	dirs := make([]ruleDir, len(c.Rules))
	for i, r := range c.Rules {
		d := ruleDir{path: resolved(filepath.Clean(r.Path))}
		if fi, err := os.Stat(d.path); err == nil {
			d.info = fi
		}
		dirs[i] = d
	}
	for a := p; ; a = filepath.Dir(a) {
		var info fs.FileInfo
		if fi, err := os.Stat(a); err == nil {
			info = fi
		}
		for i, d := range dirs {
			if a == d.path || info != nil && d.info != nil && os.SameFile(info, d.info) {
				return &c.Rules[i]
			}
		}
		if a == "/" || a == "." {
			return nil
		}
	}
}

// lockPath returns p, clean and absolute, with the symbolic links of its
// directory resolved. Its last component is kept as it is: the file may
// not exist yet, and where it is a link lockmgr refuses to lock it.
func lockPath(p string) string {
	if p == "/" {
		return p
	}
	return filepath.Join(resolved(filepath.Dir(p)), filepath.Base(p))
}

// resolved returns p, clean and absolute, with its symbolic links
// resolved as far as it exists: the part that cannot be resolved (not
// made yet, or behind a directory one may not search) is appended as it
// is written.
func resolved(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	parent := filepath.Dir(p)
	if parent == p {
		return p
	}
	return filepath.Join(resolved(parent), filepath.Base(p))
}
