// Package holders says who holds a lock as a person means it, where the
// kernel's answer (package proclocks) names a process nobody would look
// for: a lockmgr backend plugin.
//
// The kernel names the process that took the lock, and for lockmgr's own
// locks that is a backend plugin: a process nobody started by hand. So a
// lock held by a plugin is credited to the lockmgr that owns the plugin,
// and the command that lockmgr runs is named beside it, each pid with its
// own command: "pid 1234 (lockmgr run) [running backup.sh (pid 1235),
// ...]" is the lockmgr to signal, and the script a person recognises.
//
// A flock or ofd lock is handed over by its plugin: lockmgr holds the
// locked descriptor itself, shares it with its command, and the process
// /proc/locks names (the plugin) has exited. Such a lock is credited to
// the lockmgr, running its command; once that lockmgr is gone, to the
// command, which holds the descriptor (proclocks.ForFile finds it).
//
// A plugin's host is its parent while the host lives. `lockmgr run`
// hands its command the lock's keeper (the write end of a pipe whose read
// end the plugin watches, and whose closing makes it release that lock),
// so that a posix or etcd lock outlives a lockmgr killed with SIGKILL, as
// flock(1)'s does; the plugin is then reparented (to init or a
// subreaper), and the parent is no longer the host. The test is whether
// the parent holds the plugin's lifeline (the host's end of its session,
// which the plugin's environment names: pluginrpc.LifelineHostEnv), as
// every live host does. When it does not, the lock is credited to the
// process that keeps one of the plugin's keepers open: the command (the
// eldest, if it has passed the keeper on to its own children), which is
// what has to end for the lock to go.
//
// Why a package of its own, and not part of proclocks: proclocks reads
// the kernel's tables and knows nothing of lockmgr's processes, and it
// cannot: the plugin boundary that defines them (pluginrpc's lifeline)
// depends on proclocks through fdlock, so proclocks importing it would be
// a cycle. (The plugins' command name, which both need, is
// backend.PluginComm.) This package sits above both
// and joins them: what the kernel says, read through what lockmgr knows
// of the processes it starts. Everything here is read from /proc, which
// anyone may read for their own processes; what cannot be read (another
// user's process, one that exited mid-look) is left as the kernel said.
package holders

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/pluginrpc"
	"github.com/lockmgr/lockmgr/core/proclocks"
)

// lockmgrComm is lockmgr's own command name, for a host whose command is
// more interesting than the host.
const lockmgrComm = "lockmgr"

// Attribute returns st with each holder and waiter that is a backend
// plugin, or a lockmgr holding a descriptor its plugin handed over,
// credited to the process a person would look for, as the package comment
// describes; the process the kernel named is kept in Detail. Other owners
// are returned as they are. Use it on what proclocks.ForFile (or a kernel
// lock backend's Inspect) returns, for a status a person reads; not on a
// distributed backend's answer, whose pids belong to other hosts.
func Attribute(st backend.Status) backend.Status {
	for i := range st.Holders {
		st.Holders[i] = attributeOwner(st.Holders[i])
	}
	for i := range st.Waiters {
		st.Waiters[i] = attributeOwner(st.Waiters[i])
	}
	return st
}

func attributeOwner(o backend.LockOwner) backend.LockOwner {
	if o.PID > 0 && o.Command == lockmgrComm {
		// A lockmgr that holds the locked descriptor itself (flock, ofd: the
		// plugin that took the lock has handed it over and is gone). What
		// matters is the lockmgr and the command it runs, which shares the
		// descriptor; who took the lock no longer does.
		if sub := subcommandOf(o.PID); sub != "" {
			o.Command += " " + sub
		}
		if child, comm := commandOf(o.PID); child > 0 {
			o.Detail = fmt.Sprintf("running %s (pid %d)", comm, child)
		}
		return o
	}
	if o.PID <= 0 || !strings.HasPrefix(o.Command, backend.PluginComm()) {
		return o
	}
	plugin := o.PID
	if isShared(plugin) {
		// The user's shared plugin waits and locks for every host that
		// reaches it, and neither its parent nor the keepers it holds say
		// for which of them this lock is: naming one would be a guess.
		o.Detail = joinDetail(o.Detail, fmt.Sprintf("the shared plugin %s, for one of the lockmgr processes it serves", pluginName(plugin)))
		return o
	}
	via := fmt.Sprintf("through its plugin %s (pid %d)", pluginName(plugin), plugin)
	lifeline := lifelineOf(plugin)
	host := proclocks.ParentPID(plugin)
	// Without the lifeline (another user's plugin, unreadable) the parent
	// is the best guess; pid 1 then is init, which never hosts a plugin.
	if host > 0 && (lifeline != "" && holds(host, lifeline) || lifeline == "" && host > 1) {
		o.PID = host
		o.Command = proclocks.Command(host)
		if o.Command == lockmgrComm {
			if sub := subcommandOf(host); sub != "" {
				o.Command += " " + sub
			}
			if child, comm := commandOf(host); child > 0 {
				o.Detail = joinDetail(o.Detail, fmt.Sprintf("running %s (pid %d), %s", comm, child, via))
				return o
			}
		}
		o.Detail = joinDetail(o.Detail, via)
		return o
	}
	for _, pipe := range keepersOf(plugin) {
		if keeper := keeperOf(pipe, plugin); keeper > 0 {
			o.PID = keeper
			o.Command = proclocks.Command(keeper)
			o.Detail = joinDetail(o.Detail, fmt.Sprintf("%s, which this process keeps alive after its lockmgr exited", strings.TrimPrefix(via, "through its ")))
			return o
		}
	}
	o.Detail = joinDetail(o.Detail, "a lockmgr backend plugin whose lockmgr has exited")
	return o
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// pluginName is the plugin's binary name, lockmgr-backend-NAME, from its
// command line, which anyone may read.
func pluginName(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return backend.PluginComm()
	}
	arg0, _, _ := strings.Cut(string(data), "\x00")
	if name := filepath.Base(arg0); strings.HasPrefix(name, backend.PluginBinaryPrefix) {
		return name
	}
	return backend.PluginComm()
}

// isShared reports whether the plugin pid is a user's shared plugin,
// started listening for hosts (pluginrpc.ListenEnv), which its
// environment says.
func isShared(pid int) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return err == nil && strings.Contains(string(env), "\x00"+pluginrpc.ListenEnv+"=")
}

// lifelineOf returns the host's end of the plugin's lifeline as
// /proc/PID/fd shows it ("socket:[12345]"), or "" if it cannot be read:
// the plugin's environment names it.
func lifelineOf(pid int) string {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, pluginrpc.LifelineHostEnv+"="); ok && strings.HasPrefix(v, "socket:") {
			return v
		}
	}
	return ""
}

// keepersOf returns the keepers the plugin pid watches, as /proc/PID/fd
// shows them ("pipe:[12345]"): every pipe among its descriptors but its
// standard ones, which are its host's.
func keepersOf(pid int) []string {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if n, _ := strconv.Atoi(e.Name()); n <= 2 {
			continue
		}
		if link, err := os.Readlink(dir + e.Name()); err == nil && strings.HasPrefix(link, "pipe:") {
			out = append(out, link)
		}
	}
	return out
}

// holds reports whether process pid has a descriptor open on target, a
// /proc/PID/fd link text.
func holds(pid int, target string) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if link, err := os.Readlink(dir + e.Name()); err == nil && link == target {
			return true
		}
	}
	return false
}

// keeperOf returns the process that keeps target (a keeper) open, other
// than the plugin itself: of all that do, the one whose parent does not,
// lowest pid first; 0 if none can be seen. Only called for a plugin whose
// host is gone, so the scan of every process is rare.
func keeperOf(target string, plugin int) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var keepers []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == plugin {
			continue
		}
		if holds(pid, target) {
			keepers = append(keepers, pid)
		}
	}
	slices.Sort(keepers)
	for _, pid := range keepers {
		if !slices.Contains(keepers, proclocks.ParentPID(pid)) {
			return pid
		}
	}
	return 0
}

// subcommandOf returns the lockmgr command that process pid (a lockmgr)
// is running, "run" say, from its command line, which anyone may read
// (see subcommand). It returns "" when the command line cannot be read.
func subcommandOf(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	return subcommand(strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"))
}

// subcommand returns the lockmgr command in args, a lockmgr's command
// line: the first argument that is not a flag (nor --config's value), if
// it is a word in lower case; "" otherwise.
func subcommand(args []string) string {
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--config":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			if strings.IndexFunc(a, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
				return ""
			}
			return a
		}
	}
	return ""
}

// commandOf returns the command a lockmgr process runs: its child that
// is not a backend plugin, and that child's command name; 0 if none.
// /proc/PID/task/TID/children lists the children each thread forked, and
// a Go program forks from whichever thread it happens to run on.
func commandOf(pid int) (int, string) {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			child, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if comm := proclocks.Command(child); comm != "" && !strings.HasPrefix(comm, backend.PluginComm()) {
				return child, comm
			}
		}
	}
	return 0, ""
}
