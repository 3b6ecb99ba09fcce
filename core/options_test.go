package lockmgr_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
)

// ofdBackend returns an in-process backend of Linux OFD locks, which take
// byte ranges, so that a range reaches the kernel as the option gave it.
func ofdBackend() backend.LockMgr {
	mech := fdlock.OFD("test-ofd", "")
	// As flockBackend: the backend keeps its locks.
	mech.Info.Capabilities.HandsOver = false
	return fdlock.New(mech)
}

// TestWithRangeNegativeIsInvalid: WithRange with a negative length or
// start is ErrInvalid at Lock, naming the file, and locks nothing. A
// negative length used to overflow into "to the end of the file", so
// WithRange(0, -1) locked the whole file.
func TestWithRangeNegativeIsInvalid(t *testing.T) {
	impl := ofdBackend()
	for _, rng := range [][2]int64{{0, -1}, {10, -5}, {-1, 10}, {-5, 0}} {
		p := lockPath(t)
		h := lockmgr.New(p, lockmgr.WithLockMgr(impl), lockmgr.WithRange(rng[0], rng[1]))
		err := h.Lock(context.Background())
		if !errors.Is(err, lockmgr.ErrInvalid) {
			h.Close()
			t.Fatalf("Lock with WithRange(%d, %d): %v, want ErrInvalid", rng[0], rng[1], err)
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("Lock with WithRange(%d, %d): %q does not name the file %s", rng[0], rng[1], err, p)
		}
		h.Close()
		other := lockmgr.New(p, lockmgr.WithLockMgr(impl))
		ok, err := other.TryLock()
		if err != nil || !ok {
			t.Errorf("after the refused WithRange(%d, %d), TryLock of the whole file = %v, %v; want true, nil", rng[0], rng[1], ok, err)
		}
		other.Close()
	}
}
