#!/usr/bin/env bash
# make bench: lockmgr's benchmarks, summed up in one table.
#
#   backends/flock/testdata/bench/run.sh [CLI]
#
# It runs backends/flock's Go benchmarks (bench_test.go) in rounds, each
# round running every peer of every comparison, so that a noisy machine's
# drift falls on all peers alike rather than on whichever ran last. With
# CLI (bin/lockmgr, built), hyperfine times `lockmgr run FILE true`
# against util-linux's `flock FILE true`. benchstat then takes the
# medians and confidence intervals, and table.go prints them as one table
# with each peer's ratio to lockmgr and the targets met or missed.
#
# Everything it writes stays in .cache/bench/: results.txt (the raw
# results, for benchstat), benchstat.txt (benchstat's own tables),
# hyperfine-ROUND.md. ROUNDS=N changes the number of rounds (default 6).
#
# With the CLI, stampede.sh then starts 200 `lockmgr run -w 120` on one
# held file beside 200 flock(1)s, and reports the time to start and to
# drain them and the Pss of all that wait (STAMPEDE_ROUNDS, default
# ROUNDS, times; STAMPEDE_N processes, default 200).
#
# OLD=DIR sets an older build beside this one in the same run: DIR holds
# its lockmgr and plugins (make build BIN=DIR), its benchmark binary
# flock.test (go test -c in its backends/flock), and src, its source
# tree (a symbolic link will do; OLD_SRC=PATH overrides it), because its
# benchmarks build their plugin from the source they run in. Each round
# then also runs the old binary's lockmgr-plugin and lockmgr-plugin-ofd
# benchmarks, their rows named BenchmarkX/lockmgr-plugin/old (and
# .../lockmgr-plugin-ofd/old) so that they sit under today's; and
# hyperfine and the stampede time the old lockmgr too (lockmgr-run/old).
# The other peers are not run twice: they are the same code in both.
# A quick smoke test of the benchmarks alone:
#
#   cd backends/flock && go test -run '^$' -bench . -benchtime 1x
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
go=${GO:-go}
rounds=${ROUNDS:-6}
out=$root/.cache/bench
bin=$root/.cache/bin
cli=${1:-}
old=${OLD:-}
if [ -n "$old" ]; then
	old=$(cd "$old" && pwd)
	old_src=${OLD_SRC:-$old/src}
	for f in "$old/flock.test" "$old/lockmgr" "$old_src/backends/flock"; do
		if [ ! -e "$f" ]; then
			printf 'bench: OLD=%s: no %s (see the comment at the top of run.sh)\n' "$old" "$f" >&2
			exit 2
		fi
	done
	old_src=$(cd "$old_src" && pwd)
fi
if [ -n "$cli" ]; then
	cli=$(cd "$(dirname "$cli")" && pwd)/$(basename "$cli")
fi

say() { printf 'bench: %s\n' "$*" >&2; }

mkdir -p "$out" "$bin"
results=$out/results.txt
: >"$results"

if [ ! -x "$bin/benchstat" ]; then
	say "installing benchstat into $bin"
	GOBIN=$bin "$go" install golang.org/x/perf/cmd/benchstat@latest
fi

cd "$root/backends/flock"
say "building the benchmarks"
"$go" test -c -o "$out/flock.test" .

# bench REGEXP BENCHTIME COUNT runs the benchmarks matching Benchmark(REGEXP)
# and adds their results to results.txt. BENCHTIME Nx means N trials for
# the benchmarks that count trials (see bench_test.go).
bench() {
	local log=$out/last.log
	if ! "$out/flock.test" -test.run '^$' -test.bench "^Benchmark($1)\$" \
		-test.benchtime "$2" -test.count "$3" -test.timeout 30m >"$log" 2>&1; then
		cat "$log" >&2
		say "Benchmark($1) failed"
		exit 1
	fi
	grep -v -e '^PASS$' -e '^ok ' "$log" >>"$results"
	# The round trips over pipes are the machine's, not a build's.
	if [ -z "$old" ] || [ "$1" = "$roundtrips" ]; then
		return
	fi
	# The old build's plugin peers of the same benchmarks, run in its own
	# source tree, renamed BenchmarkX/lockmgr-plugin/old-N (and -ofd).
	if ! (cd "$old_src/backends/flock" && "$old/flock.test" -test.run '^$' \
		-test.bench "^Benchmark($1)\$/^lockmgr-plugin(-ofd)?\$" \
		-test.benchtime "$2" -test.count "$3" -test.timeout 30m) >"$log" 2>&1; then
		cat "$log" >&2
		say "Benchmark($1) of the old build failed"
		exit 1
	fi
	grep '^Benchmark' "$log" | sed -E 's#^(Benchmark[^[:space:]]*)-([0-9]+)([[:space:]])#\1/old-\2\3#' >>"$results"
}

roundtrips='PipeRoundTrip|WorkingRoundTrip'
start=$SECONDS
for round in $(seq "$rounds"); do
	say "round $round of $rounds ($((SECONDS - start))s so far)"
	bench Uncontended 0.5s 2
	bench "$roundtrips" 0.5s 2
	bench Handoff 200x 1
	bench 'Contended|Scale' 1x 1
	bench DeadHolder 50x 1
	bench Timeout 30x 1
done

# The CLI beside flock(1), as whole commands. Each hyperfine run becomes
# one result line, so that benchstat sums these up like the rest, and
# each round adds every command's median over flock FILE true's of the
# same round (unit ×flock): the ratio the targets judge, paired within a
# round so that a busy spell between rounds cancels out.
#
# lockmgr-run-F execs the command in lockmgr's place (-F);
# flock-personality is lockmgr under the name flock (a symbolic link),
# which finds the plugins beside the binary the link names, as
# LOCKMGR_PLUGIN_DIR would: hyperfine sets no environment per command,
# and a global one would send the old build to today's plugins.
if [ -z "$cli" ] || [ ! -x "$cli" ]; then
	say "skipping 'lockmgr run FILE true' vs 'flock FILE true': the CLI is not built (make build)"
elif ! command -v hyperfine >/dev/null || ! command -v python3 >/dev/null; then
	say "skipping 'lockmgr run FILE true' vs 'flock FILE true': needs hyperfine and python3"
else
	lock=$(mktemp "${TMPDIR:-/tmp}/lockmgr-bench.XXXXXX")
	personality=$out/personality
	mkdir -p "$personality"
	ln -sfn "$cli" "$personality/flock"
	# The shared plugins of this run's own (issue 21), which no other
	# lockmgr on the machine reaches, and which end with the run. The old
	# build knows nothing of them.
	rundir=$out/run
	rm -rf "$rundir"
	export LOCKMGR_RUNTIME_DIR=$rundir
	trap 'rm -f "$lock"; "$here/killshared.sh" "$rundir"' EXIT
	if ! "$personality/flock" "$lock" true; then
		say "the flock personality ($personality/flock -> $cli) failed"
		exit 1
	fi
	# lockmgr-run finds its shared plugin running (the warm-up starts it);
	# lockmgr-run-cold starts it every time, its --prepare having killed
	# the last: a first run after boot.
	names=(lockmgr-run lockmgr-run-cold flock-cmd)
	cmds=("$cli run $lock true" "$cli run $lock true" "flock $lock true")
	preps=(true "$here/killshared.sh $rundir" true)
	if [ -n "$old" ]; then
		names+=(old-lockmgr-run)
		cmds+=("$old/lockmgr run $lock true")
		preps+=(true)
	fi
	names+=(lockmgr-run-F flock-personality)
	cmds+=("$cli run -F $lock true" "$personality/flock $lock true")
	preps+=(true true)
	# A posix lock needs a private plugin: lockmgr execs lockmgr-full for
	# it (cli/fullbuild.go), which costs a second program's start.
	names+=(lockmgr-run-posix)
	cmds+=("$cli run -b posix $lock true")
	preps+=(true)
	if [ -n "$old" ]; then
		names+=(old-lockmgr-run-posix)
		cmds+=("$old/lockmgr run -b posix $lock true")
		preps+=(true)
	fi
	# One hyperfine per round, HYPERFINE_RUNS (default 60) runs of each
	# command, the order turned by one each round: hyperfine times one
	# command after another, and on a shared machine a single run of it
	# gives whichever command came during a busy spell the worse figure.
	# The rows are printed in names' order whatever the order of the run.
	for round in $(seq "$rounds"); do
		say "hyperfine $round of $rounds ($((SECONDS - start))s so far)"
		args=()
		k=${#names[@]}
		for i in $(seq 0 $((k - 1))); do
			j=$(((i + round - 1) % k))
			args+=(-n "${names[j]}" --prepare "${preps[j]}" "${cmds[j]}")
		done
		hyperfine -N --warmup 10 --runs "${HYPERFINE_RUNS:-60}" --style none \
			--export-markdown "$out/hyperfine-$round.md" --export-json "$out/hyperfine-$round.json" \
			"${args[@]}" >"$out/hyperfine.log" 2>&1 || {
			cat "$out/hyperfine.log" >&2
			say "hyperfine failed"
			exit 1
		}
		python3 - "$out/hyperfine-$round.json" "${names[@]}" >>"$results" <<-'EOF'
			import json, sys
			sys.stdout.reconfigure(encoding="utf-8")  # the unit ×flock, whatever the locale
			order = sys.argv[2:]
			results = json.load(open(sys.argv[1]))["results"]
			results.sort(key=lambda r: order.index(r["command"]))
			flock = next(r["median"] for r in results if r["command"] == "flock-cmd")
			def row(r):
			    name = r["command"]
			    return name[len("old-"):] + "/old" if name.startswith("old-") else name
			for r in results:
			    for t in r["times"]:
			        print("BenchmarkCLIRunTrue/%s 1 %d ns/op" % (row(r), round(t * 1e9)))
			for r in results:
			    if r["command"] != "flock-cmd":
			        print("BenchmarkCLIRunTrue/%s 1 %.4f ×flock" % (row(r), r["median"] / flock))
		EOF
	done

	peers=("lockmgr-run=$cli run" "flock-cmd=flock")
	if [ -n "$old" ]; then
		peers+=("lockmgr-run/old=$old/lockmgr run")
	fi
	for round in $(seq "${STAMPEDE_ROUNDS:-$rounds}"); do
		say "stampede $round of ${STAMPEDE_ROUNDS:-$rounds} ($((SECONDS - start))s so far)"
		# From no plugin: the first of the 200 starts the shared one.
		"$here/killshared.sh" "$rundir"
		"$here/stampede.sh" "$results" "${peers[@]}"
	done

	# etcd: `lockmgr run -b etcd NAME true` against `etcdctl lock NAME
	# true`, on one etcd server that the etcd backend's test binary serves
	# (server_test.go), the unit ×etcdctl paired within each round.
	if ! command -v etcdctl >/dev/null; then
		say "skipping 'lockmgr run -b etcd' vs 'etcdctl lock': needs etcdctl (Debian's etcd-client)"
	else
		say "building the etcd server"
		(cd "$root" && "$go" test -c -o "$out/etcd.test" ./backends/etcd)
		etcddir=$(mktemp -d "${TMPDIR:-/tmp}/lockmgr-bench-etcd.XXXXXX")
		client=127.0.0.1:$((20000 + RANDOM % 6000)) peer=127.0.0.1:$((26000 + RANDOM % 6000))
		mkfifo "$etcddir/stdin"
		ETCDTEST_HELPER=etcd ETCDTEST_SERVER_NAME=bench ETCDTEST_SERVER_DIR="$etcddir/data" \
			ETCDTEST_SERVER_CLIENT=$client ETCDTEST_SERVER_PEER=$peer \
			ETCDTEST_SERVER_CLUSTER=bench=http://$peer \
			"$out/etcd.test" -test.run '^$' <"$etcddir/stdin" >"$etcddir/out" 2>&1 &
		etcdpid=$!
		exec 8>"$etcddir/stdin" # its stdin, closed to stop it
		for _ in $(seq 200); do
			grep -q '^ready$' "$etcddir/out" && break
			grep -q '^error' "$etcddir/out" && break
			sleep 0.05
		done
		if ! grep -q '^ready$' "$etcddir/out"; then
			cat "$etcddir/out" >&2
			say "the etcd server did not start"
			exit 1
		fi
		export LOCKMGR_ETCD_ENDPOINTS=http://$client ETCDCTL_API=3
		names=(lockmgr-run etcdctl)
		cmds=("$cli run -b etcd bench-lock true" "etcdctl --endpoints=http://$client lock bench-lock true")
		if [ -n "$old" ]; then
			names+=(old-lockmgr-run)
			cmds+=("$old/lockmgr run -b etcd bench-lock true")
		fi
		for round in $(seq "$rounds"); do
			say "etcd hyperfine $round of $rounds ($((SECONDS - start))s so far)"
			args=()
			k=${#names[@]}
			for i in $(seq 0 $((k - 1))); do
				j=$(((i + round - 1) % k))
				args+=(-n "${names[j]}" "${cmds[j]}")
			done
			hyperfine -N --warmup 5 --runs "${HYPERFINE_RUNS:-60}" --style none \
				--export-json "$out/hyperfine-etcd-$round.json" "${args[@]}" >"$out/hyperfine.log" 2>&1 || {
				cat "$out/hyperfine.log" >&2
				say "hyperfine failed"
				exit 1
			}
			python3 - "$out/hyperfine-etcd-$round.json" "${names[@]}" >>"$results" <<-'EOF'
				import json, sys
				sys.stdout.reconfigure(encoding="utf-8")
				order = sys.argv[2:]
				results = json.load(open(sys.argv[1]))["results"]
				results.sort(key=lambda r: order.index(r["command"]))
				peer = next(r["median"] for r in results if r["command"] == "etcdctl")
				def row(r):
				    name = r["command"]
				    return name[len("old-"):] + "/old" if name.startswith("old-") else name
				for r in results:
				    for t in r["times"]:
				        print("BenchmarkCLIRunEtcd/%s 1 %d ns/op" % (row(r), round(t * 1e9)))
				for r in results:
				    if r["command"] != "etcdctl":
				        print("BenchmarkCLIRunEtcd/%s 1 %.4f ×etcdctl" % (row(r), r["median"] / peer))
			EOF
		done
		exec 8>&-
		wait "$etcdpid" || true
		rm -rf "$etcddir"
	fi
fi

# What an idle processor does decides what waking a process on it costs:
# a virtual machine's guest that halts at once (cpuidle's haltpoll with
# guest_halt_poll_ns 0, where the kernel's default is 200000) pays the
# hypervisor for each such wake-up, and every plugin round trip has two
# (docs/performance.rst, "The machine's floor").
machine() {
	local idle=/sys/devices/system/cpu/cpuidle poll=/sys/module/haltpoll/parameters/guest_halt_poll_ns
	printf '%s CPUs, cpuidle driver %s' "$(nproc)" "$(cat "$idle/current_driver" 2>/dev/null || echo none)"
	if [ -r "$poll" ]; then
		printf ', guest_halt_poll_ns %s' "$(cat "$poll")"
	fi
}

"$bin/benchstat" "$results" >"$out/benchstat.txt" 2>&1
"$bin/benchstat" -format csv "$results" >"$out/benchstat.csv" 2>/dev/null
say "done in $((SECONDS - start))s; raw results, benchstat's tables and hyperfine's in ${out#"$root"/}/"
echo
printf 'machine: %s\n\n' "$(machine)"
"$go" run "$here/table.go" "$out/benchstat.csv" "$results"
