package main

import "github.com/lockmgr/lockmgr/core/fdlock"

// newBackend returns the ofd backend, for main to serve and the tests to
// use in-process. The mechanism, Linux open file description locks and
// what they mean, is core/fdlock's (fdlock.OFD), shared with the tests;
// this plugin adds only its name and version.
func newBackend() *fdlock.Backend { return fdlock.New(fdlock.OFD("ofd", version)) }
