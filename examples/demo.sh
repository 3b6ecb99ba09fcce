#!/usr/bin/env bash
# lockmgr's main job in one command: two processes contend for one lock,
# the second waiting for the first, as the seed's two-terminal test did.
set -euo pipefail
lockmgr=${1:-bin/lockmgr}
lock=${TMPDIR:-/tmp}/lockmgr-demo.lock
"$lockmgr" run -v "$lock" -c 'echo "A: holding the lock for 2 seconds"; sleep 2; echo "A: done"' &
sleep 0.3
"$lockmgr" run -v -w 10 "$lock" -c 'echo "B: got the lock after A let go"'
wait
"$lockmgr" status "$lock" && echo "the lock is free again"
