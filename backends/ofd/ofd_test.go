package main

import (
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/locktest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	locktest.Main(m, "ofd", func() backend.LockMgr { return newBackend() })
}

func TestConformance(t *testing.T) { locktest.Run(t) }

// TestWaiterSleepsInTheKernel: a waiter through the plugin blocks in
// F_OFD_SETLKW itself, in fcntl(2).
func TestWaiterSleepsInTheKernel(t *testing.T) { locktest.RunKernelWait(t, unix.SYS_FCNTL) }
