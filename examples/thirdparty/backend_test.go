package main

import (
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/locktest"
)

// TestMain builds this package as the plugin binary lockmgr-backend-example
// and lets the test binary serve as the conformance suite's second process.
func TestMain(m *testing.M) {
	locktest.Main(m, name, func() backend.LockMgr { return newBackend() })
}

// TestConformance holds the backend to the rules every lockmgr backend
// keeps, in-process and through its plugin binary.
func TestConformance(t *testing.T) { locktest.Run(t) }
