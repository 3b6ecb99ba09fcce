package main

// The lockmgr command is built with the lockmgr_sharedonly tag (the
// Makefile, .goreleaser.yaml): it links neither go-plugin nor gRPC, whose
// package initialisation would otherwise be most of a command's start-up
// (docs/performance.rst), and reaches only the user's shared plugins
// (flock, ofd, etcd). A backend that needs a private plugin (posix,
// lock --fd, shared_plugin_idle = "0s", a shared plugin that refused or
// did not answer) is served by its full build, lockmgr-full, installed
// beside the plugins: lockmgr execs it, with its own arguments,
// environment and signal state, at the moment it finds that it needs
// one. Nothing is lost by the exec: lockmgr holds no lock then (a
// command takes one lock, and the private plugin was needed for it),
// its descriptors are close-on-exec, so any session it had opened ends,
// and it has written nothing (or it reports an error instead, below).

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"

	lockmgr "github.com/lockmgr/lockmgr/core"
)

// fullBuildName is the full build's file name, in the directory of
// lockmgr's own executable or in ../lib/lockmgr from it, where the
// plugins are installed.
const fullBuildName = "lockmgr-full"

// wroteOutput is set once lockmgr has written to its standard output: an
// exec after that would write it again.
var wroteOutput atomic.Bool

// outputNoter notes that its writer was written to.
type outputNoter struct{ w io.Writer }

func (o outputNoter) Write(p []byte) (int, error) {
	wroteOutput.Store(true)
	return o.w.Write(p)
}

// fullBuildEnv is set, to the full build's path, in the environment
// lockmgr execs it with, and unset again as soon as it starts, so that
// what it runs never sees it: a file in lockmgr-full's place that is no
// full build (a copy of lockmgr, a packaging mistake) is then refused
// rather than exec itself for ever.
const fullBuildEnv = "LOCKMGR_EXEC_FULL"

// useFullBuildForPrivatePlugins makes a build without private plugins
// exec the full build when it needs one.
func useFullBuildForPrivatePlugins() {
	execd := os.Getenv(fullBuildEnv)
	if execd != "" {
		os.Unsetenv(fullBuildEnv)
	}
	switch {
	case lockmgr.StartsPrivatePlugins:
	case execd != "":
		lockmgr.SetPrivatePluginFallback(func(string) error {
			return fmt.Errorf("%w, and %s is not the full build: it cannot either", lockmgr.ErrNoPrivatePlugins, execd)
		})
	default:
		lockmgr.SetPrivatePluginFallback(execFullBuild)
	}
}

// execFullBuild replaces lockmgr with its full build, which can start a
// private plugin for backend name; it returns only if it cannot.
func execFullBuild(name string) error {
	if wroteOutput.Load() {
		return fmt.Errorf("%w, and it has written output already; run %s instead", lockmgr.ErrNoPrivatePlugins, fullBuildName)
	}
	path, err := findFullBuild()
	if err != nil {
		return fmt.Errorf("%w, and %w", lockmgr.ErrNoPrivatePlugins, err)
	}
	// The caller's signal mask, and its ignored signals (restored as
	// main began), reach the full build as they reached lockmgr.
	env := append(os.Environ(), fullBuildEnv+"="+path)
	err = withCallerMask(func() error { return syscall.Exec(path, os.Args, env) })
	return fmt.Errorf("%w, and running %s failed: %w", lockmgr.ErrNoPrivatePlugins, path, err)
}

// findFullBuild returns the full build that belongs with this lockmgr,
// checked as a plugin binary is: never one another user could replace.
func findFullBuild() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding %s: %w", fullBuildName, err)
	}
	dir := filepath.Dir(exe)
	dirs := []string{dir, filepath.Join(dir, "..", "lib", "lockmgr")}
	for _, d := range dirs {
		p := filepath.Join(d, fullBuildName)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := lockmgr.VerifyPlugin(p); err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		return p, nil
	}
	return "", fmt.Errorf("no %s in %s or %s", fullBuildName, dirs[0], filepath.Clean(dirs[1]))
}
