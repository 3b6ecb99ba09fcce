package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
)

func TestExitCode(t *testing.T) {
	wrap := func(err error) error { return backend.Errorf("lock", "/run/lock/x", "flock", err) }
	for _, tc := range []struct {
		err  error
		want int
	}{
		{wrap(&fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}), exitNoInput},
		{wrap(syscall.EROFS), exitNoInput},
		{wrap(syscall.EBADF), exitNoInput},
		{wrap(backend.ErrBackendNotFound), exitUnavailable},
		{wrap(backend.ErrPluginRejected), exitUnavailable},
		{backend.Errorf("start", "", "x", errors.New("socket directory: permission denied")), exitUnavailable},
		{wrap(backend.ErrLost), exitUnavailable},
		{wrap(fmt.Errorf("granting a lease: %w: etcd did not answer", backend.ErrUnavailable)), exitUnavailable},
		{wrap(fmt.Errorf("%w: ttl: want seconds", backend.ErrConfig)), exitConfig},
		{wrap(backend.Unsupportedf("byte ranges")), exitUsage},
		{wrap(backend.Invalidf("mode")), exitUsage},
		{&config.Error{File: "/etc/lockmgr/config.toml", Line: 3, Msg: "bad"}, exitConfig},
		{fmt.Errorf("status: %w", &config.Error{Msg: "bad env"}), exitConfig},
		{usageErrorf("bad flag"), exitUsage},
		{withCode(exitLost, errors.New("lost")), exitLost},
		{errors.New("something else"), exitSoftware},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestReport(t *testing.T) {
	var b strings.Builder
	if code := report(&b, exitStatus(7)); code != 7 || b.Len() != 0 {
		t.Errorf("a silent exit printed %q and exited %d", b.String(), code)
	}
	code := report(&b, &config.Error{File: "f.toml", Line: 2, Msg: "invalid TOML: x\n  1| a\n  2| b"})
	if code != exitConfig || b.String() != "lockmgr: f.toml:2: invalid TOML: x; 1| a; 2| b\n" {
		t.Errorf("report = %d, %q", code, b.String())
	}
}
