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
# hyperfine.md. ROUNDS=N changes the number of rounds (default 6).
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
}

start=$SECONDS
for round in $(seq "$rounds"); do
	say "round $round of $rounds ($((SECONDS - start))s so far)"
	bench Uncontended 0.5s 2
	bench Handoff 200x 1
	bench 'Contended|Scale' 1x 1
	bench DeadHolder 50x 1
	bench Timeout 30x 1
done

# The CLI beside flock(1), as whole commands. Each hyperfine run becomes
# one result line, so that benchstat sums these up like the rest. The two
# env- rows measure what starting the plugin ahead saves (LOCKMGR_PRESTART),
# both paying for env(1)'s exec alike.
if [ -z "$cli" ] || [ ! -x "$cli" ]; then
	say "skipping 'lockmgr run FILE true' vs 'flock FILE true': the CLI is not built (make build)"
elif ! command -v hyperfine >/dev/null || ! command -v python3 >/dev/null; then
	say "skipping 'lockmgr run FILE true' vs 'flock FILE true': needs hyperfine and python3"
else
	say "hyperfine: lockmgr run vs flock(1)"
	lock=$(mktemp "${TMPDIR:-/tmp}/lockmgr-bench.XXXXXX")
	trap 'rm -f "$lock"' EXIT
	hyperfine -N --warmup 20 --style none \
		--export-markdown "$out/hyperfine.md" --export-json "$out/hyperfine.json" \
		-n lockmgr-run "$cli run $lock true" -n flock-cmd "flock $lock true" \
		-n env-prestart-on "env LOCKMGR_PRESTART=1 $cli run $lock true" \
		-n env-prestart-off "env LOCKMGR_PRESTART=0 $cli run $lock true" >"$out/hyperfine.log" 2>&1
	python3 - "$out/hyperfine.json" >>"$results" <<-'EOF'
		import json, sys
		for r in json.load(open(sys.argv[1]))["results"]:
		    for t in r["times"]:
		        print("BenchmarkCLIRunTrue/%s 1 %d ns/op" % (r["command"], round(t * 1e9)))
	EOF
fi

"$bin/benchstat" "$results" >"$out/benchstat.txt" 2>&1
"$bin/benchstat" -format csv "$results" >"$out/benchstat.csv" 2>/dev/null
say "done in $((SECONDS - start))s; raw results, benchstat's tables and hyperfine's in ${out#"$root"/}/"
echo
"$go" run "$here/table.go" "$out/benchstat.csv" "$results"
