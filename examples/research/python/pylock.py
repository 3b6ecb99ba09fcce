"""Take a lock with one of Python's fcntl functions, and hold it.

    python3 pylock.py flock|lockf|ofd PATH

It takes an exclusive lock on the whole of PATH, prints "locked", and
holds the lock until its standard input closes (or Enter). The research
test asks another process for each kind of lock meanwhile, to show which
kernel lock each Python call takes:

  fcntl.flock   flock(2). Its lock belongs to the open file description,
                like an OFD lock, but it is a flock lock: it does not
                conflict with fcntl locks, OFD ones included.
  fcntl.lockf   not lockf(3) but fcntl(2) F_SETLK/F_SETLKW: a POSIX record
                lock, owned by the process. Unlike lockf(3), it has shared
                locks (LOCK_SH).
  ofd           fcntl.fcntl(fd, F_OFD_SETLK, struct flock packed by hand):
                the only way to an OFD lock from Python's standard library.
"""

import fcntl
import os
import struct
import sys

# Python 3.9 and later name it; the value is the same on every Linux.
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)

# struct flock on 64-bit Linux: short l_type, short l_whence, then (aligned
# to 8) off_t l_start, off_t l_len, pid_t l_pid, and 4 bytes of padding.
# Python cannot ask the C compiler for this; it has to be known, for each
# platform (../layout prints it). l_pid must be 0 for F_OFD_SETLK.
FLOCK_64 = "hhxxxxqqi4x"


def main(argv):
    if len(argv) != 3 or argv[1] not in ("flock", "lockf", "ofd"):
        print("usage: pylock.py flock|lockf|ofd PATH", file=sys.stderr)
        return 2
    how, path = argv[1], argv[2]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if how == "flock":
        fcntl.flock(fd, fcntl.LOCK_EX)
    elif how == "lockf":
        fcntl.lockf(fd, fcntl.LOCK_EX)
    else:
        if struct.calcsize("P") != 8 or struct.calcsize(FLOCK_64) != 32:
            print("pylock.py: struct flock's layout is known here for 64-bit Linux only", file=sys.stderr)
            return 2
        fcntl.fcntl(fd, F_OFD_SETLK, struct.pack(FLOCK_64, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    print("locked", flush=True)
    sys.stdin.readline()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
