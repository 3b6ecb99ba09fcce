// Command nocancel is a third-party lockmgr backend that never answers a
// cancel: a wait, once begun, blocks for good whatever its context says,
// as a backend stuck in a call that takes no context (a lock service's
// client library, a blocking syscall nobody interrupts) would.
// boundary_test builds it to hold the host to its promise that a cancel
// ends a Lock whatever the plugin does.
//
// A try (no Wait) is granted at once and held as a POSIX record lock on
// the file, so that /proc/locks names the plugin process as its holder
// and shows the kernel dropping it when that process dies. The plugin
// keeps its locks (no hand-over): they live exactly as long as it does.
package main

import (
	"context"
	"os"
	"sync"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"github.com/lockmgr/lockmgr/core/plugin"
	"golang.org/x/sys/unix"
)

const name = "nocancel"

type deaf struct {
	mu   sync.Mutex
	next backend.HandleID
	held map[backend.HandleID]*os.File
}

func (d *deaf) Describe(context.Context) (backend.Info, error) {
	return backend.Info{Name: name, Capabilities: backend.Capabilities{Owner: backend.OwnerProcess}}, nil
}

// never is closed by no one.
var never = make(chan struct{})

func (d *deaf) Acquire(_ context.Context, req backend.Request) (backend.Held, error) {
	if req.Wait {
		// The test makes the lock file of a wait a FIFO, and reads from it
		// the line that says the wait has begun: the event it cancels on,
		// so that the cancel meets a wait in progress rather than racing
		// the request.
		if fi, err := os.Lstat(req.Path); err == nil && fi.Mode().Type() == os.ModeNamedPipe {
			if f, err := os.OpenFile(req.Path, os.O_WRONLY, 0); err == nil {
				_, _ = f.WriteString("waiting\n")
				f.Close()
			}
		}
		<-never // the context is ignored, on purpose
	}
	o, err := lockfile.Open(req.Path, 0o600)
	if err != nil {
		return backend.Held{}, backend.Errorf("lock", req.Path, name, err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(o.File.Fd(), unix.F_SETLK, &lk); err != nil {
		o.File.Close()
		if err == unix.EAGAIN || err == unix.EACCES {
			err = backend.ErrBusy
		}
		return backend.Held{}, backend.Errorf("lock", req.Path, name, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	d.held[d.next] = o.File
	return backend.Held{ID: d.next}, nil
}

func (d *deaf) Release(_ context.Context, id backend.HandleID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.held[id]
	if !ok {
		return backend.Errorf("unlock", "", name, backend.ErrNotLocked)
	}
	delete(d.held, id)
	return f.Close() // drops the POSIX lock
}

func (d *deaf) Inspect(_ context.Context, path string) (backend.Status, error) {
	return backend.Status{Path: path}, nil
}

func main() {
	plugin.Serve(&deaf{held: make(map[backend.HandleID]*os.File)})
}
