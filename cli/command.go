package main

// Starting the command: the one place where lockmgr turns an argv into a
// running process, for every form that runs one (run, run --fd, -F, and
// the flock personality's). flock(1) starts its command in one place, and
// a rule written once cannot be forgotten by one form: how -c becomes a
// shell's command line, what the command inherits, and that a file the
// kernel cannot execute (ENOEXEC: a script without #!) is run by /bin/sh,
// as execvp(3), which flock(1) calls, does.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/lockmgr/lockmgr/cli/internal/fdslot"
	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/config"
)

// shellArgv is the command that runs line, as -c COMMAND-LINE does in
// flock(1): $SHELL -c line, with /bin/sh when SHELL is unset or empty.
func shellArgv(line string) []string {
	shell := os.Getenv("SHELL")
	if shell == "" {
		shell = "/bin/sh"
	}
	return []string{shell, "-c", line}
}

// startAsExecvp calls start(path, argv), with the caller's signal mask,
// and, if the kernel cannot execute path (ENOEXEC), calls it again with
// /bin/sh running path as a script, as execvp(3) does. start either
// starts a child or replaces lockmgr: both go through here.
func startAsExecvp(path string, argv []string, start func(path string, argv []string) error) error {
	err := withCallerMask(func() error { return start(path, argv) })
	if errors.Is(err, syscall.ENOEXEC) {
		shArgv := append([]string{"/bin/sh", path}, argv[1:]...)
		err = withCallerMask(func() error { return start("/bin/sh", shArgv) })
	}
	return err
}

// startCommand starts the command at path (lookPath's answer for argv[0])
// with the caller's stdio and signal mask and every descriptor the caller
// passed to lockmgr, unchanged, plus give, if not nil, at the lowest
// number the caller left free (see commandFiles). exited is closed when
// the command has ended; its status is then in cmd.ProcessState. The
// error is the start's own, for the caller to explain in its voice.
func startCommand(path string, argv []string, env []string, give *os.File) (cmd *exec.Cmd, exited <-chan struct{}, err error) {
	// Once for both tries: each *os.File closes its descriptor, the
	// caller's, when it is collected, so none may be dropped while
	// lockmgr runs.
	files := commandFiles(give)
	newCmd := func(path string, argv []string) *exec.Cmd {
		return &exec.Cmd{
			Path:       path,
			Args:       argv,
			Env:        env,
			Stdin:      os.Stdin,
			Stdout:     os.Stdout,
			Stderr:     os.Stderr,
			ExtraFiles: files,
		}
	}
	err = startAsExecvp(path, argv, func(path string, argv []string) error {
		cmd = newCmd(path, argv)
		return cmd.Start()
	})
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the status is in cmd.ProcessState
		close(done)
	}()
	return cmd, done, nil
}

// execCommand replaces lockmgr with the command at path, as -F does,
// with the caller's signal mask. It returns only if the exec failed.
func execCommand(path string, argv []string, env []string) error {
	return startAsExecvp(path, argv, func(path string, argv []string) error {
		return syscall.Exec(path, argv, env)
	})
}

// commandFiles is exec.Cmd.ExtraFiles for a command that must see every
// descriptor its caller gave lockmgr at the number it had, plus give at
// the lowest number the caller left free, as flock(1)'s command sees the
// lock file it opened. The caller's descriptors are those lockmgr
// inherited: they are not close-on-exec, while every descriptor the Go
// runtime and lockmgr open is. Each of the caller's below that free
// number is passed at its own number, so that exec.Cmd, which fills
// 3, 4, ... in order, replaces none of them.
func commandFiles(give *os.File) []*os.File {
	if give == nil {
		return nil
	}
	var files []*os.File
	for fd := 3; callerDescriptor(fd); fd++ {
		files = append(files, os.NewFile(uintptr(fd), "inherited"))
	}
	return append(files, give)
}

// callerDescriptor reports whether fd is open and was inherited from
// lockmgr's caller.
var callerDescriptor = fdslot.CallerDescriptor

// lockEnv is what the command's outputs say of the lock it runs under:
// the lock's name (a file's absolute path, or a distributed lock's name),
// the backend that holds it, and its fencing token, if any. The zero
// lockEnv is no lock at all.
type lockEnv struct {
	name, backend string
	token         uint64
}

// handleEnv is the lockEnv of the lock h holds.
func handleEnv(h *lockmgr.Handle) lockEnv {
	return lockEnv{name: h.LockName(context.Background()), backend: h.Backend(), token: h.FencingToken()}
}

// commandEnv is the environment of every command lockmgr starts (run's,
// -F's, --fd's, the flock personality's): lockmgr's own, with the
// outputs (config.OutputEnv) set afresh from l. A value lockmgr got from
// a parent run never passes through: it would describe the parent's
// lock, not this one. With no lock (-u), no output is set.
func commandEnv(l lockEnv) []string {
	env := make([]string, 0, len(os.Environ())+3)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(config.OutputEnv(), name) {
			env = append(env, kv)
		}
	}
	if l.name != "" {
		env = append(env, envLockFile+"="+l.name)
	}
	if l.backend != "" {
		env = append(env, envBackend+"="+l.backend)
	}
	if l.token != 0 {
		env = append(env, envFencingToken+"="+strconv.FormatUint(l.token, 10))
	}
	return env
}

// childStatus is the command's status as a shell reports it.
func childStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignal + int(ws.Signal())
	}
	return ps.ExitCode()
}

// commandError explains a command that cannot be run, with the shell's
// exit codes: 127 when it does not exist, 126 when it cannot be executed.
func commandError(name string, err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return withCode(exitNotFound, fmt.Errorf("%s: command not found", name))
	case errors.Is(err, exec.ErrDot):
		return withCode(exitNotFound, fmt.Errorf("%s: found only in the current directory, through a relative $PATH entry (run it as ./%s)", name, name))
	case errors.Is(err, fs.ErrNotExist):
		return withCode(exitNotFound, fmt.Errorf("%s: no such file or directory", name))
	case errors.Is(err, fs.ErrPermission):
		return withCode(exitCannotExec, fmt.Errorf("%s: cannot execute: permission denied (not an executable file)", name))
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return withCode(exitCannotExec, fmt.Errorf("%s: cannot execute: %v", name, err))
}
