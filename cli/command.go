package main

// Running the command: the one flow by which lockmgr turns an argv into a
// running process and its exit into lockmgr's, for every form that runs
// one (run FILE, run --fd, -F, and the flock personality's, -u FILE
// among them). flock(1) runs its command in one place, and a rule written
// once cannot be forgotten by one form: how the command is found
// (findCommand) and refused (cannotRun), how -c becomes a shell's command
// line, what the command inherits, that a file the kernel cannot execute
// (ENOEXEC: a script without #!) is run by /bin/sh, as execvp(3), which
// flock(1) calls, does, and how its end becomes lockmgr's (runCommand).
// What the forms do differently is a launch's fields.

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// command is a command to run, found as execvp(3) would find it.
type command struct {
	argv []string
	// path is where argv[0] was found; err, if not nil, why it cannot
	// be run.
	path string
	err  error
}

// findCommand finds argv[0] (lookPath).
func findCommand(argv []string) command {
	path, err := lookPath(argv[0])
	return command{argv: argv, path: path, err: err}
}

// cannotRun is the error for a command called name that cannot be found
// or run: in flock(1)'s words and code in the personality, the shell's
// (commandError) otherwise.
func (o *runOptions) cannotRun(name string, err error) error {
	if o.compat != nil {
		return exitStatus(o.compat.ExecFailed(name, err))
	}
	return commandError(name, err)
}

// ready is the last step before c runs, its lock held (or, with -u,
// none): a command that cannot be found is refused, and flock(1)'s
// --verbose says what runs. The personality finds out only here, as
// flock(1) finds out when it execs; run FILE refuses such a command
// before it touches the lock file (runFile).
func (o *runOptions) ready(c command) error {
	if c.err != nil {
		return o.cannotRun(c.argv[0], c.err)
	}
	o.compat.Executing(c.argv[0])
	return nil
}

// launch is how a command runs, where the forms differ. The zero launch
// runs it as a child with no lock of lockmgr's and nothing given (-u
// FILE; --fd, whose lock is on a descriptor the caller passed, which
// reaches the command at its own number), and only waits for it.
type launch struct {
	// env is the lock the command's outputs describe (commandEnv).
	env lockEnv
	// give reaches the command at the lowest number its caller left
	// free (commandFiles): the locked file (flock, ofd), or a plugin
	// lock's keeper. With handOver, lockmgr's copy is closed once the
	// command has its own, as a keeper must be; without it, the caller
	// keeps its copy open until the command ends, as flock(1) keeps its
	// lock file.
	give     *os.File
	handOver bool
	// exec replaces lockmgr with the command (-F), which holds the lock
	// through give, placed at the number reserved for it when lockmgr
	// started (cli/internal/fdslot): none of lockmgr's own descriptors,
	// such as its connection to the plugin, which the plugin's shutdown
	// closes on another goroutine, can be there, and the lock replaces
	// the placeholder in one dup3 just before execve(2). If the exec
	// fails, lockmgr exits at once with the error.
	exec bool
	// sigs, relay, lost and onLost are supervise's: the signals lockmgr
	// caught (none: nil), whether it passes them on, and a plugin's lost
	// lock and what to do about it.
	sigs   <-chan os.Signal
	relay  bool
	lost   <-chan struct{}
	onLost func(cmd *exec.Cmd) bool
	// ended, if set, runs once the command has ended, before lockmgr's
	// exit is decided: stopped is whether it was stopped for a lost lock.
	ended func(stopped bool)
}

// runCommand runs c, which ready has let through, as l says, and returns
// lockmgr's exit for it: the command's status (commandExit), 75 if it was
// stopped for a lost lock, or why it could not start.
func (o *runOptions) runCommand(c command, l launch) error {
	startFailed := o.cannotRun
	env := commandEnv(l.env)
	if l.exec {
		if _, err := fdslot.Place(int(l.give.Fd())); err != nil {
			return startFailed(c.argv[0], err)
		}
		return startFailed(c.argv[0], execCommand(c.path, c.argv, env))
	}
	cmd, exited, err := startCommand(c.path, c.argv, env, l.give)
	if l.handOver && l.give != nil {
		l.give.Close() // the command has its own copy
	}
	if err != nil {
		return startFailed(c.argv[0], err)
	}
	var onLost func() bool
	if l.onLost != nil {
		onLost = func() bool { return l.onLost(cmd) }
	}
	stopped := o.supervise(cmd, exited, l.sigs, l.lost, onLost, l.relay)
	if l.ended != nil {
		l.ended(stopped)
	}
	if stopped {
		return exitStatus(exitLost)
	}
	return o.commandExit(cmd.ProcessState)
}

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
// missingInterpreter returns the interpreter named by the #! line of the
// file an exec failed on with ENOENT, when that file is there: the kernel
// says "no such file" for a script whose interpreter is missing, and
// naming the script alone would send its user looking for the wrong file.
func missingInterpreter(err error) string {
	var pe *fs.PathError
	if !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	f, ferr := os.Open(pe.Path)
	if ferr != nil {
		return ""
	}
	defer f.Close()
	var head [256]byte
	n, _ := io.ReadFull(f, head[:])
	line, _, _ := strings.Cut(string(head[:n]), "\n")
	interp, ok := strings.CutPrefix(line, "#!")
	if !ok {
		return ""
	}
	if fields := strings.Fields(interp); len(fields) > 0 {
		return fields[0]
	}
	return ""
}

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
		if interp := missingInterpreter(err); interp != "" {
			return withCode(exitCannotExec, fmt.Errorf("%s: cannot execute: its interpreter %s is not there (its #! line)", name, interp))
		}
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
