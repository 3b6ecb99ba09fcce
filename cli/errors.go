package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
)

// exitError carries the exit code a command has decided on. A silent one
// has been reported already, or is not an error at all (the command's own
// exit status, a conflict without --verbose), and prints nothing.
type exitError struct {
	code   int
	err    error
	silent bool
	// signal, if not 0, is the signal lockmgr ends itself by, once every
	// deferred release has run (signals.go); code is the exit status if
	// that signal does not end a process.
	signal syscall.Signal
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// withCode gives err the exit code code.
func withCode(code int, err error) error {
	return &exitError{code: code, err: err}
}

// exitStatus ends lockmgr with code and no message.
func exitStatus(code int) error {
	return &exitError{code: code, silent: true}
}

// usageErrorf is a usage error (64): a bad flag, value or argument.
func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// report prints err as lockmgr's one line on stderr, unless it is silent,
// and returns the exit code it means.
func report(stderr io.Writer, err error) int {
	var ee *exitError
	if errors.As(err, &ee) && ee.silent {
		return ee.code
	}
	fmt.Fprintln(stderr, "lockmgr: "+oneLine(err.Error()))
	return exitCode(err)
}

// oneLine folds a message onto one line. A shell script's reader, and
// syslog, see one line per error; a multi-line cause (a TOML excerpt, a
// plugin's output) must not break that.
func oneLine(msg string) string {
	msg = strings.TrimSpace(msg)
	if !strings.ContainsAny(msg, "\r\n") {
		return msg
	}
	var parts []string
	for _, line := range strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, "; ")
}
