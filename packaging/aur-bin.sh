#!/usr/bin/env bash
# aur-bin.sh [DIST]: make goreleaser's lockmgr-bin PKGBUILD in DIST/aur
# (default dist/aur) fit for the AUR, after `goreleaser release`:
#
#  1. pkgver: goreleaser writes the version with - made _, so 0.0.1-rc.1
#     becomes 0.0.1_rc.1, which pacman sorts after 0.0.1 (the _ is a
#     separator, and a word after a separator is newer). The pkgver here
#     drops the -: 0.0.1rc.1, and a word right after the number is older,
#     as 1.0rc1 < 1.0 in vercmp(8). nfpm's archlinux packages get the same
#     string (with epoch 0:, which changes nothing), so both packages sort
#     alike: 0.0.1dev.HASH < 0.0.1rc.1 < 0.0.1.
#  2. .SRCINFO: goreleaser v2.16.0's lacks backup= and the renamed
#     sources; this writes `makepkg --printsrcinfo` of the PKGBUILD instead,
#     which is what the AUR expects it to be.
#
# aur-bin.sh --pkgver VERSION prints the pkgver for a release VERSION and
# does nothing else (package-check.sh tests the ordering with it).
# release-snapshot.sh runs it; for a release, run it after goreleaser and
# push DIST/aur/lockmgr-bin.pkgbuild and .srcinfo (packaging/README.rst).
set -euo pipefail

# pkgver_of VERSION: a semantic version as a pacman pkgver (see 1. above).
pkgver_of() {
	local v=$1 base pre
	case $v in
	*-*)
		base=${v%%-*} pre=${v#*-}
		# pacman allows no - in pkgver; within the prerelease it becomes _,
		# as nfpm does it.
		printf '%s%s\n' "$base" "${pre//-/_}"
		;;
	*) printf '%s\n' "$v" ;;
	esac
}

fail() { printf 'aur-bin: FAIL: %s\n' "$*" >&2; exit 1; }

if [ "${1:-}" = --pkgver ]; then
	[ $# -eq 2 ] || fail "usage: $0 --pkgver VERSION"
	pkgver_of "$2"
	exit 0
fi

dist=${1:-dist}
pkgbuild=$dist/aur/lockmgr-bin.pkgbuild
srcinfo=$dist/aur/lockmgr-bin.srcinfo
[ -f "$pkgbuild" ] && [ -f "$dist/metadata.json" ] || fail "no $pkgbuild or $dist/metadata.json: run goreleaser first"
command -v makepkg >/dev/null || fail "makepkg is not installed (Debian: makepkg, pacman-package-manager)"
version=$(jq -r .version "$dist/metadata.json")
[ -n "$version" ] && [ "$version" != null ] || fail "no version in $dist/metadata.json"

pkgver=$(pkgver_of "$version")
sed -i "s|^pkgver=.*|pkgver=$pkgver|" "$pkgbuild"
grep -qx "pkgver=$pkgver" "$pkgbuild" || fail "$pkgbuild has no pkgver= line to set"

# makepkg refuses to run as root, even to print; then it runs as nobody,
# in a directory of its own (makepkg wants its start directory writable).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lockmgr-aur.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$pkgbuild" "$tmp/PKGBUILD"
as=()
if [ "$(id -u)" -eq 0 ]; then
	chown -R nobody: "$tmp"
	as=(runuser -u nobody --)
fi
(cd "$tmp" && "${as[@]}" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 makepkg --printsrcinfo) >"$tmp/srcinfo" ||
	fail "makepkg --printsrcinfo of $pkgbuild failed"
grep -q "^	pkgver = $pkgver\$" "$tmp/srcinfo" || fail "makepkg --printsrcinfo gave no pkgver = $pkgver"
cp "$tmp/srcinfo" "$srcinfo"
printf 'aur-bin: %s: pkgver %s, and %s from makepkg --printsrcinfo\n' "$pkgbuild" "$pkgver" "$srcinfo" >&2
