package lockkind

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// otherEnv, set in a process's environment, makes it serve as an Other.
const otherEnv = "LOCKKIND_OTHER"

// A program that imports lockkind is its own other process: started by
// StartOther, it serves requests before its main can run, and exits.
func init() {
	if os.Getenv(otherEnv) != "" {
		os.Exit(serve(os.Stdin, os.Stdout))
	}
}

// answerTimeout bounds a wait for the other process's answer to a request
// that does not block. It is generous: the experiments assert what
// happens, not how fast, and a loaded machine can be slow.
const answerTimeout = 10 * time.Second

// Other is another process, this same program started again, that takes
// locks when asked and keeps them until told to let go. Each request opens
// the lock file afresh, so each lock has an open file description of its
// own, as it would in an unrelated program.
//
// Requests go one at a time: each method waits for the answer to the
// last, except HoldAsync.
type Other struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	answers chan string
}

// OtherProgram is the program StartOther runs as the other process; ""
// means this program itself. Any program that imports lockkind serves.
var OtherProgram string

// StartOther starts the other process. It inherits files as its
// descriptors 3, 4, and so on, for HoldFD.
func StartOther(files ...*os.File) (*Other, error) {
	exe := OtherProgram
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), otherEnv+"=1")
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	o := &Other{cmd: cmd, stdin: stdin, answers: make(chan string, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			o.answers <- sc.Text()
		}
		close(o.answers)
	}()
	return o, nil
}

// Try asks the other process for a lock of kind k and type t on r of the
// file at path, without waiting, and to let go of it at once. The answer
// is "granted" when the lock was free for it, "busy" when someone else
// holds a conflicting lock.
func (o *Other) Try(path string, k Kind, t Type, r Range) string {
	return o.ask("try", path, k, t, r, false)
}

// Hold asks the other process for the same lock, waiting for it if wait
// is set, and to keep it until Release. It returns the answer: "granted",
// "busy", or the errno that refused it.
func (o *Other) Hold(path string, k Kind, t Type, r Range, wait bool) string {
	return o.ask("hold", path, k, t, r, wait)
}

// HoldAsync is Hold, waiting, for a request that may block for good: the
// answer comes on the channel when there is one. Send the other process
// nothing more until it has answered, except Kill.
func (o *Other) HoldAsync(path string, k Kind, t Type, r Range) <-chan string {
	ch := make(chan string, 1)
	if err := o.send("hold", path, k, t, r, true); err != nil {
		ch <- "error: " + err.Error()
		return ch
	}
	go func() {
		a, ok := <-o.answers
		if !ok {
			a = "exited"
		}
		ch <- a
	}()
	return ch
}

// HoldFD asks the other process for a lock on its descriptor fd, one it
// inherited from StartOther, without waiting; it keeps the descriptor
// open, locked or not, until Release(fd).
func (o *Other) HoldFD(fd int, k Kind, t Type, r Range) string {
	return o.ask("holdfd", strconv.Itoa(fd), k, t, r, false)
}

// Release makes the other process close every descriptor it holds for
// path (for HoldFD, the descriptor number), which releases its locks
// there.
func (o *Other) Release(path string) string {
	return o.ask("release", path, Flock, Write, Range{}, false)
}

// Close ends the other process, which releases whatever it holds, and
// waits for it to exit.
func (o *Other) Close() error {
	o.stdin.Close()
	return o.cmd.Wait()
}

// Kill ends the other process with SIGKILL, for one stuck in a wait, and
// waits for it to exit.
func (o *Other) Kill() {
	_ = o.cmd.Process.Kill()
	_ = o.cmd.Wait()
}

func (o *Other) ask(op, path string, k Kind, t Type, r Range, wait bool) string {
	if err := o.send(op, path, k, t, r, wait); err != nil {
		return "error: " + err.Error()
	}
	select {
	case a, ok := <-o.answers:
		if !ok {
			return "exited"
		}
		return a
	case <-time.After(answerTimeout):
		return "no answer"
	}
}

func (o *Other) send(op, path string, k Kind, t Type, r Range, wait bool) error {
	_, err := fmt.Fprintf(o.stdin, "%s %s %d %d %d %t %q\n", op, k, t, r.Start, r.Len, wait, path)
	return err
}

// Probe starts another process just to ask, without waiting, for a lock
// of kind k and type t on r of path, and returns its answer: "granted" or
// "busy".
func Probe(path string, k Kind, t Type, r Range) string {
	o, err := StartOther()
	if err != nil {
		return "error: " + err.Error()
	}
	defer o.Close()
	return o.Try(path, k, t, r)
}

// serve is the other process's whole life: it answers requests from in,
// one a line, on out, until in closes.
func serve(in io.Reader, out io.Writer) int {
	held := map[string][]*os.File{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		fmt.Fprintln(out, answer(sc.Text(), held))
	}
	return 0
}

// answer carries out one request.
func answer(line string, held map[string][]*os.File) string {
	var (
		op, kind, path string
		t              Type
		r              Range
		wait           bool
	)
	if _, err := fmt.Sscanf(line, "%s %s %d %d %d %t %q", &op, &kind, &t, &r.Start, &r.Len, &wait, &path); err != nil {
		return "error: bad request " + strconv.Quote(line)
	}
	k, err := ParseKind(kind)
	if err != nil {
		return "error: " + err.Error()
	}
	switch op {
	case "try", "hold":
		f, err := Open(path)
		if err != nil {
			return "error: " + err.Error()
		}
		err = k.Lock(int(f.Fd()), t, r, wait)
		if op == "try" || err != nil {
			f.Close()
		} else {
			held[path] = append(held[path], f)
		}
		return Result(err)
	case "holdfd":
		fd, err := strconv.Atoi(path)
		if err != nil {
			return "error: bad descriptor " + path
		}
		f := os.NewFile(uintptr(fd), "inherited")
		held[path] = append(held[path], f)
		return Result(k.Lock(fd, t, r, wait))
	case "release":
		for _, f := range held[path] {
			f.Close()
		}
		delete(held, path)
		return "released"
	}
	return "error: unknown request " + op
}
