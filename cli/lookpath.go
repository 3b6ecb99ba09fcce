package main

// Finding the command as execvp(3) does, which is how flock(1) finds it:
// a script that runs under flock(1) must run under lockmgr.
//
// Two rules differ from Go's exec.LookPath. An empty element of $PATH
// (a leading or trailing colon, or "::") means the current directory, as
// does ".", and a command found there is run: exec.LookPath refuses such a
// result (exec.ErrDot) to protect Go programs that build $PATH from
// untrusted input, but lockmgr runs what its caller's $PATH says, as the
// shell and flock(1) would, and the caller chose that $PATH. And with
// $PATH unset, glibc's execvp searches /bin:/usr/bin, where exec.LookPath
// finds nothing. Finally, a file that is executable but not a program the
// kernel can start (a script without a #! line) is run by /bin/sh, as
// execvp does (command.go).

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// defaultPath is glibc's search path for execvp when $PATH is unset.
const defaultPath = "/bin:/usr/bin"

// lookPath finds the command name as execvp would run it: the name
// itself if it has a slash, else the first executable file named name in
// a directory of $PATH. A failure is an *exec.Error wrapping
// exec.ErrNotFound, or a permission error when only files that cannot be
// executed were found (execvp's EACCES).
func lookPath(name string) (string, error) {
	if name == "" {
		return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", &exec.Error{Name: name, Err: err}
		}
		return name, nil
	}
	path, ok := os.LookupEnv("PATH")
	if !ok {
		path = defaultPath
	}
	var denied error
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		err := executable(p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, fs.ErrPermission) && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return "", &exec.Error{Name: name, Err: denied}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// executable reports why execve(2) of p would fail before reading it: it
// does not exist, or it is a directory or not executable (EACCES).
func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return &fs.PathError{Op: "exec", Path: p, Err: syscall.EACCES}
	}
	if err := unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS); err != nil {
		return &fs.PathError{Op: "exec", Path: p, Err: err}
	}
	return nil
}
