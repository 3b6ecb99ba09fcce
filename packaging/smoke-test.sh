#!/usr/bin/env bash
# smoke-test.sh LOCKMGR PLUGIN_DIR CONFIG VERSION
#
# Proves that an installed or unpacked lockmgr works on its own: that it
# finds its three plugins in PLUGIN_DIR through its own search path (no
# LOCKMGR_PLUGIN_DIR, no plugin_dir, nothing from /usr/lib/lockmgr unless
# PLUGIN_DIR is that), that each plugin passes `lockmgr backends`, that
# `lockmgr run` takes a lock with each backend, and that the shipped CONFIG
# parses, as it is and with every key uncommented. VERSION is what
# `lockmgr version` and each plugin must report.
# release-snapshot.sh and package-check.sh call it for every archive and
# package.
set -euo pipefail

if [ $# -ne 4 ]; then
	echo "usage: $0 LOCKMGR PLUGIN_DIR CONFIG VERSION" >&2
	exit 64
fi
lockmgr=$1 plugin_dir=$2 config=$3 version=$4
say() { printf '  smoke-test: %s\n' "$*" >&2; }
fail() { printf '  smoke-test: FAIL: %s\n' "$*" >&2; exit 1; }

[ -x "$lockmgr" ] || fail "$lockmgr is not an executable"
[ -f "$config" ] || fail "no config file $config"
plugin_dir=$(realpath -e "$plugin_dir") || fail "no plugin directory $2"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lockmgr-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Only what this test says: no plugin directory from the environment, and
# the shipped config as the one file read, which replaces both the system
# and the user file (so /etc/lockmgr on this machine cannot interfere).
unset LOCKMGR_PLUGIN_DIR LOCKMGR_BACKEND
export LOCKMGR_CONFIG=$config XDG_CONFIG_HOME=$tmp/xdg HOME=$tmp

out=$("$lockmgr" version) || fail "$lockmgr version exited $?"
case $out in
"lockmgr $version (commit "*) ;;
*) fail "lockmgr version says '$out', want version $version" ;;
esac
say "$out"

"$lockmgr" config >/dev/null || fail "lockmgr config rejects $config (exit $?)"
sed -E 's/^#([a-z0-9_]+ =|\[)/\1/' "$config" >"$tmp/uncommented.toml"
grep -q '^backend = ' "$tmp/uncommented.toml" || fail "$config has no commented '#backend = ' line"
LOCKMGR_CONFIG=$tmp/uncommented.toml "$lockmgr" config >/dev/null ||
	fail "$config with every key uncommented does not parse (exit $?)"
say "config: $config parses, commented and uncommented"

json=$("$lockmgr" backends --json) || {
	"$lockmgr" backends >&2 || true
	fail "lockmgr backends exited non-zero"
}
want=$(jq -cn --arg dir "$plugin_dir" --arg v "$version" \
	'[("etcd","flock","ofd","posix") | {name: ., dir: $dir, version: $v, ok: true}]')
got=$(jq -c 'map({name, dir: (.path | sub("/[^/]*$"; "")), version, ok})' <<<"$json")
if [ "$got" != "$want" ]; then
	"$lockmgr" backends >&2 || true
	fail "lockmgr backends: got $got, want $want"
fi
"$lockmgr" backends | sed 's/^/    /' >&2

for b in flock posix ofd; do
	lock=$tmp/$b.lock
	"$lockmgr" run -b "$b" "$lock" true || fail "lockmgr run -b $b $lock true exited $?"
	# While the outer lockmgr holds the lock, a second one must be refused:
	# -E 42 tells a refusal from any other failure.
	rc=0
	"$lockmgr" run -b "$b" "$lock" "$lockmgr" run -n -E 42 -b "$b" "$lock" true || rc=$?
	[ "$rc" -eq 42 ] || fail "lockmgr run -n -b $b under a held lock exited $rc, want 42 (busy)"
done
say "lockmgr run takes and excludes locks with flock, posix and ofd"
