package locktest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
)

// RunKernelWait checks, through the plugin, that a waiter sleeps in the
// kernel's blocking lock call, one of syscalls (flock(2) for flock,
// fcntl(2) for ofd), as under flock(1): the kernel then grants it the
// lock the moment the holder lets go, with no inotify event to wait for.
// It also checks that such a waiter still ends at its deadline and then
// holds nothing. It is for backends whose Mechanism has a blocking Lock.
func RunKernelWait(t *testing.T, syscalls ...int) {
	var tgt Target
	for _, x := range Targets() {
		if x.Name == "plugin" {
			tgt = x
		}
	}
	s := &suiteRun{tgt: tgt}
	s.info = s.describe(t)
	p := filepath.Join(t.TempDir(), "lock")
	holder := s.handle(t, p)
	if err := holder.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatal(err)
	}
	waiter := s.handle(t, p, lockmgr.WithHost(privateHost(t)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	granted := make(chan error, 1)
	go func() { granted <- waiter.Lock(ctx) }()

	// The waiter's plugin is the newest plugin of this process that has
	// a thread in the lock call; look until one does.
	deadline := time.Now().Add(promptly)
	var where string
	for where == "" && time.Now().Before(deadline) {
		for _, pid := range PluginProcesses(os.Getpid()) {
			if tid := threadIn(pid, syscalls); tid != 0 {
				where = fmt.Sprintf("plugin %d, thread %d", pid, tid)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if where == "" {
		t.Fatalf("no plugin thread is in system call(s) %v while a lock is awaited: the waiter does not sleep in the kernel", syscalls)
	}
	t.Logf("the waiter sleeps in the kernel: %s", where)
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-granted:
		if err != nil {
			t.Fatalf("the waiter after the release: %v", err)
		}
	case <-time.After(promptly):
		t.Fatal("the waiter was not granted the released lock")
	}
	if err := waiter.Unlock(); err != nil {
		t.Fatal(err)
	}

	// A waiter past its deadline is interrupted, and takes nothing later.
	if err := holder.Lock(timeoutContext(t, promptly)); err != nil {
		t.Fatal(err)
	}
	if err := waiter.Lock(timeoutContext(t, shortly)); err == nil {
		t.Fatal("a waiter was granted a held lock")
	}
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
	third := s.handle(t, p)
	ok, err := third.TryLock()
	if err != nil || !ok {
		t.Fatalf("after a timed-out wait the lock is not free: %v, %v", ok, err)
	}
	third.Unlock()
}

// threadIn returns a thread of process pid that is in one of syscalls, or
// 0. /proc/PID/task/TID/syscall begins with the number of the system call
// the thread is blocked in.
func threadIn(pid int, syscalls []int) int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(raw))
		if len(fields) == 0 {
			continue
		}
		nr, err := strconv.Atoi(fields[0])
		if err != nil {
			continue
		}
		for _, want := range syscalls {
			if nr == want {
				tid, _ := strconv.Atoi(task.Name())
				return tid
			}
		}
	}
	return 0
}
