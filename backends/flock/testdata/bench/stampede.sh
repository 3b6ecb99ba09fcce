#!/usr/bin/env bash
# stampede.sh: 200 waiting processes on one lock file, for `make bench`.
#
#   stampede.sh RESULTS NAME=COMMAND...
#
# For each NAME=COMMAND (COMMAND is a lock command taking `-w 120 FILE
# CMD...`, such as "/path/bin/lockmgr run" or "flock"), it holds FILE
# with flock(2) itself, starts N (STAMPEDE_N, default 200) processes of
# `COMMAND -w 120 FILE sh -c 'echo I >>OUT'`, waits until all of them are
# waiting, sums the Pss (from /proc/PID/smaps_rollup) of every lockmgr,
# lockmgr-backend and flock process among them and their children, then
# lets go of the lock and times how long they take to drain. It checks
# that every command ran exactly once, that nothing wrote to stderr, and
# that no plugin of the COMMAND's directory is left afterwards, and
# appends one benchstat line per NAME to RESULTS:
#
#   BenchmarkStampede/NAME 1 N commands S start-ms D drain-ms P pss-MiB W waiting ...
#
# start-ms runs from the first start to all waiting (what starting 200
# costs), drain-ms from the release to the last exit (what the handoffs
# cost). Every wait is bounded: the whole run gives up after
# STAMPEDE_PATIENCE seconds (default 90) per NAME, killing what it started.
set -euo pipefail

results=$1
shift
n=${STAMPEDE_N:-200}
patience=${STAMPEDE_PATIENCE:-90}
say() { printf 'stampede: %s\n' "$*" >&2; }

# sample PIDFILE [BINDIR] prints "COUNT PSS_KIB PLUGINS" over the
# processes listed in PIDFILE and their descendants whose command is a
# lock command: lockmgr, lockmgr-backend-* (comm keeps 15 characters) or
# flock; and over the plugins run from BINDIR that serve them from
# outside that tree: a shared plugin (issue 21) outlives the host that
# started it, and serves every other. The tree is walked from
# /proc/*/stat, so that another user's lockmgr processes on this shared
# machine are never counted.
sample() {
	python3 - "$1" "${2:-}" <<-'EOF'
		import os, sys
		roots = set(int(l) for l in open(sys.argv[1]) if l.strip())
		bindir = sys.argv[2]
		parent, comm = {}, {}
		for d in os.listdir("/proc"):
		    if not d.isdigit():
		        continue
		    try:
		        stat = open("/proc/%s/stat" % d).read()
		    except OSError:
		        continue
		    name = stat[stat.index("(") + 1:stat.rindex(")")]
		    rest = stat[stat.rindex(")") + 2:].split()
		    parent[int(d)], comm[int(d)] = int(rest[1]), name
		def shared_plugin(p):
		    try:
		        exe = os.readlink("/proc/%d/exe" % p)
		        env = open("/proc/%d/environ" % p, "rb").read()
		    except OSError:
		        return False
		    return bool(bindir) and os.path.dirname(exe) == bindir and b"\0LOCKMGR_LISTEN_FD=" in env
		def ours(p):
		    if shared_plugin(p):
		        return True
		    while p > 1:
		        if p in roots:
		            return True
		        p = parent.get(p, 0)
		    return False
		count = pss = plugins = 0
		for p, name in comm.items():
		    if not ours(p) or not (name in ("lockmgr", "flock") or name.startswith("lockmgr-backend")):
		        continue
		    try:
		        for line in open("/proc/%d/smaps_rollup" % p):
		            if line.startswith("Pss:"):
		                pss += int(line.split()[1])
		    except OSError:
		        continue
		    count += 1
		    plugins += name.startswith("lockmgr-backend")
		print(count, pss, plugins)
	EOF
}

# leftover DIR prints the number of running private plugins whose
# executable is in DIR: a plugin orphaned by its lockmgr is reparented
# away from the tree sample walks, but its executable still names it. A
# shared plugin stays, as it should, until it has been idle a while.
leftover() {
	local dir=$1 c=0 exe
	for exe in /proc/[0-9]*/exe; do
		case $(readlink "$exe" 2>/dev/null) in
		"$dir"/lockmgr-backend-*)
			grep -qzF LOCKMGR_LISTEN_FD= "${exe%/exe}/environ" 2>/dev/null || c=$((c + 1))
			;;
		esac
	done
	echo "$c"
}

now_ms() { date +%s%3N; }

one() {
	local name=$1 cmd=$2
	local dir lock out errs pids
	dir=$(mktemp -d "${TMPDIR:-/tmp}/lockmgr-stampede.XXXXXX")
	lock=$dir/lock out=$dir/out errs=$dir/errors pids=$dir/pids
	: >"$out"
	: >"$errs"
	: >"$pids"
	local bindir=
	case $cmd in /*) bindir=$(dirname "${cmd%% *}") ;; esac

	# Hold the lock on descriptor 9; no child inherits it (9>&-).
	exec 9>"$lock"
	flock 9
	local started all=() i
	started=$(now_ms)
	for i in $(seq "$n"); do
		# shellcheck disable=SC2086 # COMMAND is words
		$cmd -w 120 "$lock" sh -c "echo $i >>'$out'" 9>&- 2>>"$errs" &
		all+=($!)
		echo $! >>"$pids"
	done
	# All waiting: every process started, and the count of lock processes
	# (with their plugins) the same over a second of polls.
	local deadline=$((SECONDS + patience)) last= same=0 s streak=0 count pss plugins
	while :; do
		read -r count pss plugins <<<"$(sample "$pids" "$bindir")"
		s="$count $plugins" # Pss drifts as pages are shared; counts settle
		if [ "$count" -ge "$n" ] && [ "$s" = "$last" ]; then
			same=$((same + 1))
		else
			same=0 streak=$(now_ms)
		fi
		last=$s
		[ "$same" -ge 4 ] && break
		if [ "$SECONDS" -ge "$deadline" ]; then
			say "$name: not all waiting after ${patience}s ($s)"
			break
		fi
		sleep 0.25
	done
	local waiting_ms=$((streak - started))
	read -r count pss plugins <<<"$(sample "$pids" "$bindir")"
	local ran_early
	ran_early=$(wc -l <"$out")

	local released drained
	released=$(now_ms)
	flock -u 9
	exec 9>&-
	local left_running=0
	for i in "${all[@]}"; do
		while kill -0 "$i" 2>/dev/null; do
			if [ "$SECONDS" -ge "$((deadline + patience))" ]; then
				left_running=$((left_running + 1))
				kill -9 "$i" 2>/dev/null || true
				break
			fi
			sleep 0.02
		done
	done
	wait || true
	drained=$(($(now_ms) - released))

	local lines unique errors left=0
	lines=$(wc -l <"$out")
	unique=$(sort -u "$out" | wc -l)
	errors=$(wc -l <"$errs")
	if [ -n "$bindir" ]; then
		sleep 0.2 # a plugin stopping as its host exits
		left=$(leftover "$bindir")
	fi
	if [ "$errors" -gt 0 ]; then
		say "$name: $errors error lines, the first:"
		head -3 "$errs" >&2
	fi
	if [ "$lines" -ne "$n" ] || [ "$unique" -ne "$n" ] || [ "$ran_early" -ne 0 ]; then
		say "$name: $lines lines ($unique distinct) from $n commands, $ran_early before the release"
	fi
	printf 'BenchmarkStampede/%s 1 %d commands %d start-ms %d drain-ms %.1f pss-MiB %d waiting %d plugins-waiting %d ran-once %d not-once %d error-lines %d plugins-left %d killed\n' \
		"$name" "$n" "$waiting_ms" "$drained" "$(echo "$pss" | awk '{print $1/1024}')" "$count" "$plugins" \
		"$unique" "$((lines - unique + n - unique))" "$errors" "$left" "$left_running" >>"$results"
	rm -rf "$dir"
}

for spec in "$@"; do
	say "${spec%%=*}: $n processes"
	one "${spec%%=*}" "${spec#*=}"
done
