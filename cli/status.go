package main

// `lockmgr status` answers "who holds this lock?" from the kernel's own
// tables, /proc/locks and /proc/PID/fdinfo, as lslocks(8) reads them
// (core/proclocks). The kernel knows every flock, POSIX and OFD lock,
// whoever took it: lockmgr with any backend, flock(1), a daemon. So for
// a file whose backend is flock, posix or ofd, status starts no plugin.
// Which backend that is, status decides as run does (--backend, else
// the configuration's rules, LOCKMGR_BACKEND and backend); another
// backend's locks (etcd, a third-party plugin) are not kernel locks, and
// for those its plugin is asked.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/holders"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"github.com/lockmgr/lockmgr/core/proclocks"
	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	var jsonOut bool
	var backendName string
	c := &cobra.Command{
		Use:   "status [--json] [-b NAME] FILE...",
		Short: "Show whether lock files are held, and by whom",
		Long: `For each FILE, say whether it is free or held; who holds it (pid, command,
kind flock/posix/ofd, mode, byte range) and who waits for it, as the kernel
reports them in /proc/locks and /proc/PID/fdinfo (as lslocks(8) does).
A FILE that does not exist, in a directory that does, is free.

A lock that lockmgr holds through a backend plugin is shown as held by the
lockmgr process, named by the command it runs (the plugin is named in the
detail). If that lockmgr was killed and its command keeps the lock alive,
the lock is shown as held by the command.

Waiters are processes blocked in the kernel (flock(1), say). A lockmgr
waiting for a flock or ofd lock waits in the user's shared plugin for the
backend, blocked in the kernel too, and is shown as that plugin, which
waits for every lockmgr of the user; posix waiters poll, and do not
appear.

Without --backend, FILE's backend is the one 'lockmgr run' would use (the
config's rules, $LOCKMGR_BACKEND, the config's backend): for flock, posix
or ofd every kernel lock on FILE is shown; for another backend (etcd, a
third-party one) its plugin is asked. With --backend flock, posix, ofd or
auto, only the locks that would stand in that backend's way: flock locks
for flock, POSIX and OFD locks (which conflict with each other) for posix
and ofd. With another backend, its plugin is asked.

--json prints an array with one object per FILE: "path", "locked",
"holders" and "waiters"; each holder and waiter has "pid" (-1 if unknown),
"command", "kind", "mode" ("exclusive" or "shared"), "start", "end" (one
past the last byte, or null for a lock that reaches the end of the file
however long it grows) and, when there is more to say, "detail".

Exit status: 0 when every FILE is free, 1 when any is held, 66 when a
FILE cannot be inspected (its directory does not exist, it is a symbolic
link), 69 when FILE's backend cannot be used, 78 for a configuration
error.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("status: missing FILE (usage: lockmgr status [--json] [-b NAME] FILE...)")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkBackendFlag(backendName); err != nil {
				return err
			}
			pick, done, err := statusInspectors(g, backendName)
			if err != nil {
				return err
			}
			defer done()
			return status(c.OutOrStdout(), os.Stderr, args, pick, jsonOut)
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	c.Flags().StringVarP(&backendName, "backend", "b", "", "show the locks that matter to backend `NAME` (see above)")
	return c
}

// inspector reports the locks on one lock file.
type inspector struct {
	inspect func(ctx context.Context, path string) (backend.Status, error)
	// byName is set for a distributed backend: its locks are names that
	// mean the same on every host, not files here, so they are passed on
	// as written, and the pids they report are not this host's to look up.
	byName bool
}

// statusInspectors returns how to pick the inspector for each FILE, and
// what to call when done: with --backend name, that backend's for every
// FILE; without, the backend run would use for it.
func statusInspectors(g *globals, name string) (func(file string) (inspector, error), func(), error) {
	if name != "" {
		in, done, err := statusInspector(g, nil, name)
		if err != nil {
			return nil, nil, err
		}
		return func(string) (inspector, error) { return in, nil }, done, nil
	}
	cfg, err := g.loadConfig("")
	if err != nil {
		return nil, nil, err
	}
	// A plugin is started once, for the first FILE that needs it.
	started := map[string]inspector{}
	var dones []func()
	pick := func(file string) (inspector, error) {
		b, _ := cfg.BackendFor(file, lockfile.PathOnNetworkFS)
		switch b {
		case config.BackendFlock, config.BackendPOSIX, config.BackendOFD:
			// Every kernel lock, as before: the kernel knows them all.
			return kernelInspector(nil), nil
		}
		if in, ok := started[b]; ok {
			return in, nil
		}
		in, done, err := statusInspector(g, cfg, b)
		if err != nil {
			if abs, aerr := filepath.Abs(file); aerr == nil {
				file = abs
			}
			return inspector{}, fmt.Errorf("status %s: %w", file, err)
		}
		started[b] = in
		dones = append(dones, done)
		return in, nil
	}
	return pick, func() {
		for _, d := range dones {
			d()
		}
	}, nil
}

// statusInspector picks how to inspect lock files for backend name, and
// returns what to call when done. cfg, if not nil, is the configuration
// already loaded.
func statusInspector(g *globals, cfg *config.Config, name string) (inspector, func(), error) {
	nothing := func() {}
	kinds := map[string][]string{
		config.BackendFlock: {proclocks.KindFlock},
		config.BackendPOSIX: {proclocks.KindPOSIX, proclocks.KindOFD},
		config.BackendOFD:   {proclocks.KindPOSIX, proclocks.KindOFD},
	}
	switch name {
	case "":
		return kernelInspector(nil), nothing, nil
	case config.BackendFlock, config.BackendPOSIX, config.BackendOFD:
		return kernelInspector(func(string) []string { return kinds[name] }), nothing, nil
	case config.BackendAuto:
		// The choice run would make, file by file (an explicit name needs
		// no configuration: cfg may be nil).
		return kernelInspector(func(path string) []string {
			return kinds[cfg.Resolve(config.BackendAuto, path, lockfile.PathOnNetworkFS)]
		}), nothing, nil
	}
	if cfg == nil {
		var err error
		if cfg, err = g.loadConfig(name); err != nil {
			return inspector{}, nil, err
		}
	}
	// The plugin's start has a bound of its own, whose error says what
	// went wrong (a handshake that never came), not that a wait ran out.
	b, err := lockmgr.OpenBackend(context.Background(), name, lockmgr.WithConfig(cfg))
	if err != nil {
		return inspector{}, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := b.Info(ctx)
	if err != nil {
		b.Close()
		return inspector{}, nil, err
	}
	return inspector{inspect: b.Inspect, byName: info.Capabilities.Distributed}, func() { b.Close() }, nil
}

// kernelInspector reads the kernel's lock tables in-process, keeping only
// the kinds of lock that kinds returns for a path (all, when nil).
func kernelInspector(kinds func(path string) []string) inspector {
	return inspector{inspect: func(_ context.Context, path string) (backend.Status, error) {
		st, err := proclocks.ForFile(path)
		if err != nil || kinds == nil {
			return st, err
		}
		keep := kinds(path)
		filter := func(in []backend.LockOwner) []backend.LockOwner {
			var out []backend.LockOwner
			for _, o := range in {
				for _, k := range keep {
					if o.Kind == k {
						out = append(out, o)
					}
				}
			}
			return out
		}
		st.Holders, st.Waiters = filter(st.Holders), filter(st.Waiters)
		return st, nil
	}}
}

// fileStatus is one FILE's answer.
type fileStatus struct {
	backend.Status
	missing bool
}

// status inspects files and prints the answers: as text, each as it
// comes, or as one JSON array at the end. An error with one file is
// reported and the others still inspected.
func status(stdout, stderr io.Writer, files []string, pick func(file string) (inspector, error), jsonOut bool) error {
	var (
		results []fileStatus
		held    bool
		errCode int
	)
	for _, f := range files {
		inspect, err := pick(f)
		var fst fileStatus
		if err == nil {
			fst, err = inspectFile(inspect, f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "lockmgr: "+oneLine(err.Error()))
			if errCode == 0 {
				errCode = exitCode(err)
			}
			continue
		}
		if !inspect.byName {
			fst.Status = holders.Attribute(fst.Status)
		}
		held = held || fst.Locked()
		if jsonOut {
			results = append(results, fst)
		} else {
			printStatus(stdout, fst)
		}
	}
	if jsonOut {
		if err := printStatusJSON(stdout, results); err != nil {
			return err
		}
	}
	switch {
	case errCode != 0:
		return exitStatus(errCode)
	case held:
		return exitStatus(exitHeld)
	}
	return nil
}

// inspectFile inspects one lock file. A file that does not exist is
// free, if its directory exists: nobody can hold it, and a lock file
// removed on release is how a free lock looks. A missing directory is an
// error, as it is for `lockmgr run`. A symbolic link is refused, as
// lockmgr refuses to lock through one.
func inspectFile(inspect inspector, file string) (fileStatus, error) {
	if inspect.byName {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := inspect.inspect(ctx, file)
		if err != nil {
			return fileStatus{}, fmt.Errorf("status %s: %w", file, err)
		}
		st.Path = file
		return fileStatus{Status: st}, nil
	}
	path, err := filepath.Abs(file)
	if err != nil {
		return fileStatus{}, withCode(exitNoInput, fmt.Errorf("status %s: %w", file, err))
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		if dfi, derr := os.Stat(dir); derr != nil || !dfi.IsDir() {
			return fileStatus{}, withCode(exitNoInput, fmt.Errorf("status %s: directory %s does not exist", path, dir))
		}
		return fileStatus{Status: backend.Status{Path: path}, missing: true}, nil
	case err != nil:
		return fileStatus{}, withCode(exitNoInput, fmt.Errorf("status %s: %w", path, unwrapPath(err)))
	case fi.Mode()&fs.ModeSymlink != 0:
		return fileStatus{}, withCode(exitNoInput, fmt.Errorf("status %s: %w", path, lockfile.ErrSymlink))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := inspect.inspect(ctx, path)
	if err != nil {
		return fileStatus{}, fmt.Errorf("status %s: %w", path, err)
	}
	st.Path = path
	return fileStatus{Status: st}, nil
}

// unwrapPath drops an *fs.PathError's op and path, which the message
// already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func printStatus(w io.Writer, st fileStatus) {
	switch {
	case st.missing:
		fmt.Fprintf(w, "%s: free (no such file)\n", st.Path)
		return
	case !st.Locked():
		fmt.Fprintf(w, "%s: free\n", st.Path)
	default:
		fmt.Fprintf(w, "%s: held\n", st.Path)
	}
	for _, o := range st.Holders {
		fmt.Fprintf(w, "  holder: %s%s\n", ownerText(o), detailText(o))
	}
	for _, o := range st.Waiters {
		fmt.Fprintf(w, "  waiter: %s%s\n", ownerText(o), detailText(o))
	}
}

func detailText(o backend.LockOwner) string {
	if o.Detail == "" {
		return ""
	}
	return " [" + o.Detail + "]"
}

// ownerJSON is a holder or waiter in status --json.
type ownerJSON struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
	Kind    string `json:"kind"`
	Mode    string `json:"mode"`
	Start   int64  `json:"start"`
	End     *int64 `json:"end"`
	Detail  string `json:"detail,omitempty"`
}

// statusJSON is one FILE in status --json.
type statusJSON struct {
	Path    string      `json:"path"`
	Locked  bool        `json:"locked"`
	Holders []ownerJSON `json:"holders"`
	Waiters []ownerJSON `json:"waiters"`
}

func printStatusJSON(w io.Writer, results []fileStatus) error {
	out := make([]statusJSON, 0, len(results))
	for _, st := range results {
		out = append(out, statusJSON{
			Path:    st.Path,
			Locked:  st.Locked(),
			Holders: ownersJSON(st.Holders),
			Waiters: ownersJSON(st.Waiters),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func ownersJSON(in []backend.LockOwner) []ownerJSON {
	out := make([]ownerJSON, 0, len(in))
	for _, o := range in {
		r := o.Range.Normalize()
		oj := ownerJSON{PID: o.PID, Command: o.Command, Kind: o.Kind, Mode: o.Mode.String(), Start: r.Start, Detail: o.Detail}
		if r.End != backend.ToEOF {
			end := r.End
			oj.End = &end
		}
		out = append(out, oj)
	}
	return out
}
