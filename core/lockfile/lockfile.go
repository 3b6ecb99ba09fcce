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
// flock(1) allows. Open never blocks: anything but a regular file or a
// directory is refused (ErrNotRegular).
func Open(path string, perm os.FileMode) (*Opened, error) {
	if perm == 0 {
		perm = DefaultMode
	}
	// Open the existing file first: it is the common case, and O_EXCL on
	// the create tells whether this call made the file.
	created := false
	fd, key, err := open(path, unix.O_RDWR, 0)
	for tries := 0; err == unix.ENOENT && tries < 3; tries++ {
		fd, key, err = open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, uint32(perm.Perm()))
		if err == nil {
			created = true
		} else if err == unix.EEXIST {
			fd, key, err = open(path, unix.O_RDWR, 0)
		}
	}
	writable := err == nil
	if err == unix.EACCES || err == unix.EROFS || err == unix.EISDIR || err == unix.ETXTBSY {
		// Reading is all a flock or a shared fcntl lock needs. Only an
		// existing file can be opened this way; creating one needs write
		// permission on the directory, which the first attempt lacked.
		var rerr error
		fd, key, rerr = open(path, unix.O_RDONLY, 0)
		if rerr == nil {
			err = nil
		} else if rerr != unix.ENOENT {
			err = rerr
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: explain(err)}
	}
	return opened(fd, key, path, created, writable), nil
}

// OpenWritable opens the existing file at path for reading and writing,
// by Open's rules, but without its read-only fallback and without
// creating it. An open(2) error comes as an *fs.PathError whose cause is
// the errno, for the caller to tell a file it may not write from others.
func OpenWritable(path string) (*Opened, error) {
	fd, key, err := open(path, unix.O_RDWR, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: explain(err)}
	}
	return opened(fd, key, path, false, true), nil
}

// open opens path with flags and the flags every lock file is opened
// with, and returns a descriptor of a regular file or a directory.
//
// O_NONBLOCK keeps the open itself from blocking: a FIFO planted at the
// path would otherwise hold a read-only open until some process opened it
// for writing, past every deadline and signal but SIGKILL. What was opened
// is then checked, and O_NONBLOCK cleared, so that the descriptor, which
// a command may inherit, is an ordinary one.
func open(path string, flags int, perm uint32) (int, Key, error) {
	const always = unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOCTTY | unix.O_NONBLOCK
	fd, err := unix.Open(path, always|flags, perm)
	if err != nil {
		return -1, Key{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, Key{}, err
	}
	if kind := st.Mode & unix.S_IFMT; kind != unix.S_IFREG && kind != unix.S_IFDIR {
		unix.Close(fd)
		return -1, Key{}, &notRegularError{kind: kind}
	}
	// F_SETFL takes the status flags the open was given and ignores the
	// rest (access mode, creation flags), so no F_GETFL is needed first:
	// one system call fewer on every lock.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, (always|flags)&^unix.O_NONBLOCK); err != nil {
		unix.Close(fd)
		return -1, Key{}, err
	}
	return fd, Key{Dev: st.Dev, Ino: st.Ino}, nil
}

// opened wraps fd, which open returned with its key (from the fstat that
// checked its type, so none is needed here).
func opened(fd int, key Key, path string, created, writable bool) *Opened {
	return &Opened{File: os.NewFile(uintptr(fd), path), Key: key, Created: created, Writable: writable}
}

// ErrSymlink is the cause Open reports when the lock path is a symbolic
// link: O_NOFOLLOW's ELOOP, said plainly.
var ErrSymlink = errors.New("is a symbolic link (refused, so that a planted link cannot redirect the lock)")

// ErrNotRegular is the cause Open reports when the lock path names
// neither a regular file nor a directory: a FIFO, which anyone may plant
// in a shared directory and whose open could block without end, a
// device, a socket. The error also matches EBADFD, the errno systemd
// gives a file that is not regular, because the plugin boundary carries
// errnos, and a host then sees the same cause.
var ErrNotRegular = errors.New("not a regular file or a directory")

type notRegularError struct{ kind uint32 }

func (e *notRegularError) Error() string {
	what := map[uint32]string{
		unix.S_IFIFO: "a FIFO", unix.S_IFCHR: "a character device", unix.S_IFBLK: "a block device", unix.S_IFSOCK: "a socket",
	}[e.kind]
	if what == "" {
		what = "a special file"
	}
	return "is " + what + ", " + ErrNotRegular.Error() + " (refused: a lock file must be one)"
}

func (e *notRegularError) Unwrap() []error { return []error{ErrNotRegular, unix.EBADFD} }

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
