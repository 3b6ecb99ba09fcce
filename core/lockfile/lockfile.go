// Package lockfile opens lock files the way every lockmgr backend must:
// without following a planted symbolic link, without leaking the
// descriptor into children, and with a check that the file locked is still
// the file at the path.
//
// Backends share it so that the rules for what a lock file is live in one
// place, whatever kernel call then locks it.
package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// DefaultMode is the permission of a lock file lockmgr creates, before
// the umask: the owner's alone, as config.DefaultLockFileMode, because
// anyone who can open a lock file, even read-only, can lock it
// exclusively with flock(2) and block the owner's jobs.
const DefaultMode os.FileMode = 0o600

// Key identifies a file by device and inode, the identity the kernel
// attaches locks to, whatever path reached it.
type Key struct {
	Dev uint64
	Ino uint64
}

// KeyOf returns the identity of the open file f.
func KeyOf(f *os.File) (Key, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Key{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return Key{Dev: st.Dev, Ino: st.Ino}, nil
}

// Opened is a lock file opened by Open.
type Opened struct {
	// File is the open lock file.
	File *os.File
	// Key is its identity.
	Key Key
	// Created is true when Open created the file, so that a failure before
	// the lock is taken can remove it again and leave no trace.
	Created bool
	// Writable is true when the file is open for writing, which fcntl
	// write locks need.
	Writable bool
}

// Open opens the lock file at path, creating it with perm (0 means
// DefaultMode) if it does not exist.
//
// The last component must not be a symbolic link (O_NOFOLLOW), so that a
// link planted in a shared directory such as /tmp cannot redirect the lock
// onto another file. The file is opened for reading and writing where
// permitted; when it is not (a file one may only read, a read-only
// filesystem, a directory), it is opened read-only, which is enough for
// flock(2) locks and for fcntl read locks. A directory may be locked, as
// flock(1) allows.
func Open(path string, perm os.FileMode) (*Opened, error) {
	if perm == 0 {
		perm = DefaultMode
	}
	const flags = unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOCTTY
	// Open the existing file first: it is the common case, and O_EXCL on
	// the create tells whether this call made the file.
	created := false
	fd, err := unix.Open(path, flags|unix.O_RDWR, 0)
	for tries := 0; err == unix.ENOENT && tries < 3; tries++ {
		fd, err = unix.Open(path, flags|unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, uint32(perm.Perm()))
		if err == nil {
			created = true
		} else if err == unix.EEXIST {
			fd, err = unix.Open(path, flags|unix.O_RDWR, 0)
		}
	}
	writable := err == nil
	if err == unix.EACCES || err == unix.EROFS || err == unix.EISDIR || err == unix.ETXTBSY {
		// Reading is all a flock or a shared fcntl lock needs. Only an
		// existing file can be opened this way; creating one needs write
		// permission on the directory, which the first attempt lacked.
		var rerr error
		fd, rerr = unix.Open(path, flags|unix.O_RDONLY, 0)
		if rerr == nil {
			err = nil
		} else if rerr != unix.ENOENT {
			err = rerr
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: explain(err)}
	}
	f := os.NewFile(uintptr(fd), path)
	key, err := KeyOf(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Opened{File: f, Key: key, Created: created, Writable: writable}, nil
}

// ErrSymlink is the cause Open reports when the lock path is a symbolic
// link: O_NOFOLLOW's ELOOP, said plainly.
var ErrSymlink = errors.New("is a symbolic link (refused, so that a planted link cannot redirect the lock)")

func explain(err error) error {
	if err == unix.ELOOP {
		return fmt.Errorf("%w: %w", ErrSymlink, err)
	}
	return err
}

// StillAt reports whether path still names the file o has open. After a
// holder with remove-on-release unlinks the file, a process that opened
// the old file before the unlink can still lock it; it must notice, close
// it and try again with a fresh open, or two processes would both believe
// they hold the lock.
func (o *Opened) StillAt(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	return st.Dev == o.Key.Dev && st.Ino == o.Key.Ino, nil
}

// RemoveIfStillAt unlinks path if it still names the file o has open.
// Call it only while holding an exclusive lock on the whole file, before
// releasing that lock: that order is what makes remove-on-release safe.
func (o *Opened) RemoveIfStillAt(path string) error {
	ok, err := o.StillAt(path)
	if err != nil || !ok {
		return err
	}
	if err := unix.Unlink(path); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "unlink", Path: path, Err: err}
	}
	return nil
}

// Discard closes o and, if Open created the file, removes it again: for a
// lock attempt that failed before any lock was taken, so that bad input
// leaves no lock file behind where none existed.
//
// Between Open and now, another process may have opened the new file and
// locked it; unlinking it then would let a third process create a fresh
// file at the path and lock that too, and both would hold "the" lock. So
// the file is removed only while o holds it exclusively: tryExclusive
// must take, without waiting, an exclusive lock on the whole file through
// o's descriptor, with the backend's own mechanism. If it fails for any
// reason, the file stays (an empty lock file is harmless); closing o then
// drops the lock it may have taken.
func (o *Opened) Discard(path string, tryExclusive func(fd int) error) {
	if o.Created && tryExclusive != nil && tryExclusive(int(o.File.Fd())) == nil {
		_ = o.RemoveIfStillAt(path)
	}
	o.File.Close()
}

// Network filesystem magic numbers from statfs(2), for the filesystems on
// which a flock(2) lock is not seen by other clients.
const (
	magicNFS  = 0x6969
	magicSMB  = 0x517b
	magicCIFS = 0xff534d42
	magicSMB2 = 0xfe534d42
)

// NetworkFS returns the name of the network filesystem f lives on ("nfs",
// "cifs", "smb"), or "" for a local one.
func NetworkFS(f *os.File) string {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return ""
	}
	return networkName(st.Type)
}

// PathOnNetworkFS reports whether path (or, if it does not exist yet, its
// directory) lives on a network filesystem. The "auto" backend choice
// uses it to route NFS and CIFS paths to POSIX locks.
func PathOnNetworkFS(path string) bool {
	var st unix.Statfs_t
	for p := path; ; {
		if err := unix.Statfs(p, &st); err == nil {
			return networkName(st.Type) != ""
		}
		parent := parentDir(p)
		if parent == p {
			return false
		}
		p = parent
	}
}

func parentDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	if len(p) > 0 && p[0] == '/' {
		return "/"
	}
	return "."
}

func networkName(magic int64) string {
	switch uint32(magic) {
	case magicNFS:
		return "nfs"
	case magicCIFS, magicSMB2:
		return "cifs"
	case magicSMB:
		return "smb"
	}
	return ""
}
