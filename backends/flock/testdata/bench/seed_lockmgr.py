"""The seed's LockMgr, as a peer for BenchmarkContended.

This is the Python class lockmgr replaces, kept as it was, race included:
release_lock() unlocks the lock file and then unlinks it. A process that
was blocked in flock(2) on the old file wakes up holding a lock on an
inode no longer at the path, while the next process to call acquire_lock()
creates a new file there and locks that: two holders at once. The
benchmark counts the updates this loses; do not fix it here.

Run as a worker by the benchmark:

    python3 seed_lockmgr.py contend LOCKFILE DATAFILE CYCLES

It prints "ready", waits for a line on stdin, runs CYCLES rounds of
lock / read-increment-write the counter in DATAFILE / unlock, and prints
"done" (or "error: ..." and exits 1).
"""

import fcntl
import os
import sys
import time


class LockMgr:
    """An exclusive advisory lock on a file, taken with flock(2)."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def acquire_lock(self, wait=True, timeout=None):
        """Take the lock: at once or not at all unless wait is set; then
        block until it is free, or, with a timeout in seconds, retry a
        non-blocking attempt until it passes. Returns whether it is held."""
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            if not wait:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            elif timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise
                        time.sleep(0.01)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release_lock(self):
        """Unlock, then remove the lock file (the seed's race)."""
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass  # another holder's release removed it already
        os.close(self.fd)
        self.fd = None


def contend(lock_path, data_path, cycles):
    mgr = LockMgr(lock_path)
    data = os.open(data_path, os.O_CREAT | os.O_RDWR, 0o644)
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(cycles):
        if not mgr.acquire_lock(wait=True):
            raise RuntimeError("acquire_lock(wait=True) returned False")
        # Ten digits, as the Go contenders write them, so that each write
        # covers the last whole even when two holders race.
        raw = os.pread(data, 32, 0)
        n = int(raw) if raw else 0
        os.pwrite(data, b"%010d" % (n + 1), 0)
        mgr.release_lock()
    print("done", flush=True)


def main(argv):
    if len(argv) != 5 or argv[1] != "contend":
        print("usage: seed_lockmgr.py contend LOCKFILE DATAFILE CYCLES", file=sys.stderr)
        return 2
    try:
        contend(argv[2], argv[3], int(argv[4]))
    except Exception as e:  # report, so that the benchmark fails loudly
        print("error: %s" % e, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
