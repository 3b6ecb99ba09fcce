package proclocks

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/lockmgr/lockmgr/core/backend"
)

// fileID names an inode the way /proc/locks does: the device number of
// the inode's superblock, and the inode number.
type fileID struct {
	major, minor uint32
	ino          uint64
}

// on reports whether l is a lock on the inode id names.
func (l Lock) on(id fileID) bool {
	return l.Inode == id.ino && l.Major == id.major && l.Minor == id.minor
}

// isFileLock reports whether kind is one of the lock mechanisms ForFile
// reports. Leases and delegations are left out: they do not exclude lock
// requests, only other opens, and lockmgr never takes them. "access"
// entries were the kernel's transient checks for mandatory locking.
func isFileLock(kind string) bool {
	return kind == KindFlock || kind == KindPOSIX || kind == KindOFD
}

// ForFile reports every flock, POSIX and OFD lock held on the file at
// path, and every request blocked in the kernel waiting for one, whoever
// took them. A symbolic link as path's last element is not followed, just
// as lockmgr refuses to lock through one: the link's own inode is what is
// looked up, and it never holds a lock. Each owner's Command comes from
// /proc/PID/comm.
//
// ForFile never opens the file. That matters to a caller holding POSIX
// locks on it: closing any descriptor of a file drops every POSIX lock
// the process holds on it, so opening and closing it here would release
// the very locks being inspected.
//
// Owners are settled as follows. A POSIX lock names its process. An OFD
// lock names none (PID -1), so ForFile looks for it in the "lock:" lines
// of /proc/PID/fdinfo; so too for a flock lock whose named process has
// exited, which happens when the lock's descriptor was inherited or
// passed on. When several processes share the lock's open file
// description, the lowest pid is the holder and Detail names the others.
// That scan of every process's descriptors is the expensive part, which is
// why it happens only when the file has such a lock. A blocked OFD request
// keeps PID -1: fdinfo lists granted locks only. An owner that cannot be
// found (another user's process, without privilege) also keeps PID -1.
//
// The file is matched to lock table lines by device and inode number.
// Where stat's device is not the one the lock table uses (btrfs
// subvolumes, overlayfs), ForFile learns the latter from the file's mount.
//
// Holders and waiters appear in /proc/locks order. Errors wrap their
// cause: for a path that does not exist, errors.Is(err, fs.ErrNotExist).
func ForFile(path string) (backend.Status, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return backend.Status{}, fmt.Errorf("proclocks: inspecting locks: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return backend.Status{}, fmt.Errorf("proclocks: inspecting locks on %s: stat gave no device and inode", path)
	}
	id := fileID{major: unix.Major(st.Dev), minor: unix.Minor(st.Dev), ino: st.Ino}
	table, err := readTable(procLocks)
	if err != nil {
		return backend.Status{}, fmt.Errorf("proclocks: inspecting locks on %s: %w", path, err)
	}
	mine, lockID := locksOn(table, id, func() (fileID, bool) { return superblockID(path, id) })
	owners, err := resolveOwners(mine, lockID)
	if err != nil {
		return backend.Status{}, fmt.Errorf("proclocks: inspecting locks on %s: %w", path, err)
	}
	status := backend.Status{Path: path}
	for _, o := range owners {
		lo := backend.LockOwner{
			PID:     o.PID,
			Command: Command(o.PID),
			Kind:    o.Kind,
			Mode:    o.Mode,
			Range:   o.Range,
			Detail:  o.detail,
		}
		if o.Waiting {
			status.Waiters = append(status.Waiters, lo)
		} else {
			status.Holders = append(status.Holders, lo)
		}
	}
	return status, nil
}

// locksOn picks from table the flock, POSIX and OFD locks and waiters on
// the inode id, and returns them with the device and inode /proc/locks
// names it by.
//
// /proc/locks names an inode by its superblock's device number, s_dev;
// stat's st_dev is usually the same (it is on ext4, xfs and tmpfs), but
// not always. A btrfs subvolume reports its own anonymous st_dev while
// its inodes live in the filesystem's one superblock, and overlayfs may
// report the underlying layer's st_dev for a file whose locks sit on the
// overlay inode. The dependable source of s_dev is the mount: statx gives
// the file's mount ID, and /proc/self/mountinfo that mount's superblock
// device. That costs a mountinfo read, so superblock is called only when
// no lock matches st_dev but some lock names the same inode number under
// another device. Matching on the inode number alone would be cheaper but
// wrong: small inode numbers recur on every tmpfs, and btrfs numbers each
// subvolume's inodes from 256, so a free file would seem locked whenever
// a namesake inode elsewhere was.
func locksOn(table []Lock, id fileID, superblock func() (fileID, bool)) ([]Lock, fileID) {
	var mine []Lock
	namesake := false
	for _, l := range table {
		if !isFileLock(l.Kind) {
			continue
		}
		if l.on(id) {
			mine = append(mine, l)
		} else if l.Inode == id.ino {
			namesake = true
		}
	}
	if len(mine) > 0 || !namesake {
		return mine, id
	}
	sb, ok := superblock()
	if !ok || sb == id {
		return nil, id
	}
	for _, l := range table {
		if isFileLock(l.Kind) && l.on(sb) {
			mine = append(mine, l)
		}
	}
	return mine, sb
}

// superblockID returns the file at path named by its superblock's device,
// as /proc/locks names it (see locksOn), and false if that cannot be told:
// a kernel before 5.8 gives no mount ID, and a path that now names another
// inode than id is a different file.
func superblockID(path string, id fileID) (fileID, bool) {
	var stx unix.Statx_t
	// AT_STATX_DONT_SYNC: the mount ID and inode number never change, so
	// an NFS client need not ask its server for them.
	flags := unix.AT_SYMLINK_NOFOLLOW | unix.AT_STATX_DONT_SYNC
	err := unix.Statx(unix.AT_FDCWD, path, flags, unix.STATX_INO|unix.STATX_MNT_ID, &stx)
	if err != nil || stx.Mask&unix.STATX_MNT_ID == 0 || stx.Ino != id.ino {
		return fileID{}, false
	}
	major, minor, ok := mountDevice("/proc/self/mountinfo", stx.Mnt_id)
	if !ok {
		return fileID{}, false
	}
	return fileID{major: major, minor: minor, ino: id.ino}, true
}

// mountDevice returns the superblock device of the mount with ID mntID,
// from a mountinfo file: its first field is the mount ID and its third
// the superblock's MAJOR:MINOR in decimal (see proc_pid_mountinfo(5)).
func mountDevice(mountinfo string, mntID uint64) (major, minor uint32, ok bool) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	want := strconv.FormatUint(mntID, 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[0] != want {
			continue
		}
		majField, minField, found := strings.Cut(fields[2], ":")
		if !found {
			return 0, 0, false
		}
		maj, err1 := strconv.ParseUint(majField, 10, 32)
		min, err2 := strconv.ParseUint(minField, 10, 32)
		if err1 != nil || err2 != nil {
			return 0, 0, false
		}
		return uint32(maj), uint32(min), true
	}
	return 0, 0, false
}
