// Ofdpid shows the one field of struct flock that differs between the
// POSIX and the OFD lock commands: l_pid.
//
//	go run ./examples/research/ofdpid
//
// On input, F_SETLK ignores l_pid. The F_OFD_* commands insist that it be
// zero and refuse anything else with EINVAL (fcntl(2): "l_pid must be set
// to zero"). A C program that declares struct flock on the stack and sets
// only the fields it thinks of leaves l_pid holding whatever was there, so
// its OFD locks fail now and then, for no visible reason. In Go a
// unix.Flock_t literal is zero in every field not named, so the rule
// holds unless a program sets Pid itself, as this one does to show it.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lockmgr/lockmgr/examples/research/lockkind"
	"golang.org/x/sys/unix"
)

// stale stands for whatever an uninitialised struct flock holds in l_pid.
const stale = 12345

func main() {
	dir, err := os.MkdirTemp("", "ofdpid-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	f, err := lockkind.Open(filepath.Join(dir, "lock"))
	if err != nil {
		fail(err)
	}
	defer f.Close()

	for _, c := range []struct {
		name string
		cmd  int
		pid  int32
	}{
		{"F_OFD_SETLK", unix.F_OFD_SETLK, 0},
		{"F_OFD_SETLK", unix.F_OFD_SETLK, stale},
		{"F_SETLK", unix.F_SETLK, stale},
	} {
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Pid: c.pid}
		result := lockkind.Result(unix.FcntlFlock(f.Fd(), c.cmd, &lk))
		fmt.Printf("%-11s with l_pid = %-5d  %s\n", c.name, c.pid, result)
		// Let go, so that each request starts from an unlocked file.
		unlock := unix.Flock_t{Type: unix.F_UNLCK, Whence: io.SeekStart}
		_ = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &unlock)
		_ = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unlock)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ofdpid:", err)
	os.Exit(1)
}
