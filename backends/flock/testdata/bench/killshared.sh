#!/usr/bin/env bash
# killshared.sh DIR: kill the shared plugins whose sockets are in DIR (the
# runtime directory `make bench` gives lockmgr, LOCKMGR_RUNTIME_DIR), and
# return once they are gone: hyperfine's --prepare for a run that must
# start its plugin afresh, and the bench's clean-up.
set -u
dir=$1
pids=()
for env in /proc/[0-9]*/environ; do
	if grep -qzF "LOCKMGR_SOCKET=$dir/" "$env" 2>/dev/null; then
		pid=${env#/proc/}
		pid=${pid%/environ}
		kill -KILL "$pid" 2>/dev/null && pids+=("$pid")
	fi
done
for pid in "${pids[@]}"; do
	# Gone, or a zombie its starter has not reaped yet.
	while [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do
		sleep 0.005
	done
done
exit 0
