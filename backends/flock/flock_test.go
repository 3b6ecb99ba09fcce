package main

import (
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/locktest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	locktest.Main(m, "flock", func() backend.LockMgr { return newBackend() })
}

func TestConformance(t *testing.T) { locktest.Run(t) }

// TestWaiterSleepsInTheKernel: a waiter through the plugin blocks in
// flock(2) itself, as under flock(1).
func TestWaiterSleepsInTheKernel(t *testing.T) { locktest.RunKernelWait(t, unix.SYS_FLOCK) }
