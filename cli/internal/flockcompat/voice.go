package flockcompat

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"syscall"
	"time"
)

// Voice says what flock(1) says, on the streams it says it on. lockmgr's
// run flow holds one in the personality and nil otherwise: every method
// does nothing on a nil Voice, so the flow calls them unconditionally.
type Voice struct {
	// Name is what flock(1) calls itself in messages: the base name it
	// was invoked by.
	Name string
	// Target names the lock in messages: the file as given, or the
	// descriptor number.
	Target string
	// Verbose is --verbose: say how long the lock took and what runs.
	Verbose bool
	// Stdout and Stderr are where flock(1) writes each kind of line.
	Stdout, Stderr io.Writer
}

// Acquired prints --verbose's line for a lock taken after d.
func (v *Voice) Acquired(d time.Duration) {
	if v == nil || !v.Verbose {
		return
	}
	us := d.Microseconds()
	fmt.Fprintf(v.Stdout, "%s: getting lock took %d.%06d seconds\n", v.Name, us/1e6, us%1e6)
}

// Executing prints --verbose's line before the command runs.
func (v *Voice) Executing(name string) {
	if v == nil || !v.Verbose {
		return
	}
	fmt.Fprintf(v.Stdout, "%s: executing %s\n", v.Name, name)
}

// NotAcquired prints --verbose's line for a lock not taken because
// someone else holds it; waited says whether a timeout ran out (-w) or
// the call did not wait (-n).
func (v *Voice) NotAcquired(waited bool) {
	if v == nil || !v.Verbose {
		return
	}
	if waited {
		fmt.Fprintf(v.Stderr, "%s: timeout while waiting to get lock\n", v.Name)
	} else {
		fmt.Fprintf(v.Stderr, "%s: failed to get lock\n", v.Name)
	}
}

// ExecFailed says that the command cannot be run, and returns flock(1)'s
// exit code for it: 69 (EX_UNAVAILABLE), or 71 for want of memory.
// flock(1) finds this out after taking the lock, when execvp fails.
func (v *Voice) ExecFailed(name string, err error) int {
	errno := syscall.ENOENT
	if errors.Is(err, fs.ErrPermission) {
		errno = syscall.EACCES
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		errno = e
	}
	fmt.Fprintf(v.Stderr, "%s: failed to execute %s: %s\n", v.Name, name, Strerror(errno))
	if errno == syscall.ENOMEM {
		return ExitOSErr
	}
	return ExitUnavailable
}

// BadFD says that the descriptor Target is not open, as flock(1) does
// when its lock call fails with EBADF, and returns the code it exits with.
func (v *Voice) BadFD() int {
	fmt.Fprintf(v.Stderr, "%s: %s: %s\n", v.Name, v.Target, Strerror(syscall.EBADF))
	return ExitDataErr
}

// Strerror is glibc's text for errno, which Go's starts in lower case.
func Strerror(errno syscall.Errno) string {
	s := errno.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
