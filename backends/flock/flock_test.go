package main

import (
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/locktest"
)

func TestMain(m *testing.M) {
	locktest.Main(m, "flock", func() backend.LockMgr { return newBackend() })
}

func TestConformance(t *testing.T) { locktest.Run(t) }
