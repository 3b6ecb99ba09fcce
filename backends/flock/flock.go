package main

import "github.com/lockmgr/lockmgr/core/fdlock"

// newBackend returns the flock backend, for main to serve and the tests to
// use in-process. The mechanism, flock(2) and what it means, is
// core/fdlock's (fdlock.Flock), shared with the tests and the examples;
// this plugin adds only its name and version.
func newBackend() *fdlock.Backend { return fdlock.New(fdlock.Flock("flock", version)) }
