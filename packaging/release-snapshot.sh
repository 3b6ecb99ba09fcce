#!/usr/bin/env bash
# make release-snapshot: everything a release makes, signed, without
# publishing, then checked as a user would check it.
#
#  1. builds the goreleaser pinned in packaging/tools (outside go.work);
#  2. makes a throwaway signing key in a temporary GNUPGHOME;
#  3. runs `goreleaser check` and `goreleaser release --snapshot --clean
#     --skip=publish`, which writes dist/, then packaging/aur-bin.sh, which
#     sets the lockmgr-bin PKGBUILD's pkgver and .SRCINFO in dist/aur;
#  4. verifies every signature with gpg, the checksum file with sha256sum,
#     the files in each tarball, and the binaries' architectures;
#  5. unpacks the amd64 tarball and runs it (packaging/smoke-test.sh): its
#     lockmgr must find its own plugins in ../lib/lockmgr and take locks.
#
# dist/ stays for `make package-check`; the key and all scratch files go.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}

say() { printf 'release-snapshot: %s\n' "$*" >&2; }
fail() { printf 'release-snapshot: FAIL: %s\n' "$*" >&2; exit 1; }
for tool in "$GO" gpg gpgconf sha256sum tar jq file make makepkg runuser; do
	command -v "$tool" >/dev/null || fail "$tool is not installed (.ci/run lists what to apt-get install)"
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/lockmgr-release.XXXXXX")
cleanup() {
	# The agent that the key generation started would outlive the directory.
	GNUPGHOME=$scratch/gnupg gpgconf --kill all 2>/dev/null || true
	rm -rf "$scratch"
}
trap cleanup EXIT

# 1. The pinned goreleaser. go build is a no-op when nothing changed.
pinned=$(awk '$1 == "github.com/goreleaser/goreleaser/v2" { print $2 }' packaging/tools/go.mod)
[ -n "$pinned" ] || fail "packaging/tools/go.mod does not require github.com/goreleaser/goreleaser/v2"
goreleaser=$root/.cache/bin/goreleaser
say "building goreleaser $pinned (packaging/tools, GOWORK=off)"
# Cold, that is some hundreds of "go: downloading" lines: shown only on failure.
(cd packaging/tools && GOWORK=off "$GO" build -o "$goreleaser" github.com/goreleaser/goreleaser/v2) >"$scratch/goreleaser-build.log" 2>&1 || {
	cat "$scratch/goreleaser-build.log" >&2
	fail "could not build goreleaser from packaging/tools"
}
built=$("$goreleaser" --version 2>&1 | awk '$1 == "GitVersion:" { print $2 }')
[ "$built" = "$pinned" ] || fail "built goreleaser $built, but packaging/tools pins $pinned"

# 2. A throwaway key: no passphrase, one day, gone with $scratch.
export GNUPGHOME=$scratch/gnupg
mkdir -m 700 "$GNUPGHOME"
say "generating a throwaway signing key in $GNUPGHOME"
gpg --batch --quiet --gen-key <<-'EOF'
	%no-protection
	Key-Type: eddsa
	Key-Curve: ed25519
	Key-Usage: sign
	Name-Real: lockmgr snapshot (throwaway)
	Name-Email: snapshot@lockmgr.invalid
	Expire-Date: 1d
	%commit
EOF
GPG_FINGERPRINT=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$GPG_FINGERPRINT" ] || fail "no fingerprint for the generated key"
export GPG_FINGERPRINT
say "signing with $GPG_FINGERPRINT"

# 3. The snapshot. LOCKMGR_* from the caller must not reach the hooks.
unset LOCKMGR_PLUGIN_DIR LOCKMGR_BACKEND LOCKMGR_CONFIG
# goreleaser takes the commit, its date and the tag from git, and gives up
# on all of them for a snapshot (commit "none") when it cannot read a
# remote URL. A clone has its origin; a repository without a remote gets
# one in the environment only, leaving .git/config alone.
git -C "$root" rev-parse --verify -q HEAD >/dev/null ||
	fail "release-snapshot needs a git checkout with a commit: goreleaser takes the version and commit from git"
if [ -z "$(git -C "$root" remote)" ]; then
	say "no git remote: goreleaser gets origin = https://github.com/lockmgr/lockmgr.git through GIT_CONFIG_*"
	export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0=https://github.com/lockmgr/lockmgr.git
fi
"$goreleaser" check || fail "goreleaser check rejects .goreleaser.yaml"
"$goreleaser" release --snapshot --clean --skip=publish || fail "goreleaser release --snapshot failed"
# The lockmgr-bin PKGBUILD's pkgver and .SRCINFO, as a release makes them.
bash packaging/aur-bin.sh dist || fail "packaging/aur-bin.sh could not fix dist/aur"

# 4. Verify what it made.
cd dist
version=$(jq -r .version metadata.json)
commit=$(jq -r .commit metadata.json)
[ -n "$version" ] && [ "$version" != null ] || fail "no version in dist/metadata.json"
say "verifying dist/ of lockmgr $version (commit $commit)"

checksums=lockmgr_${version}_checksums.txt
archives=()
for arch in amd64 arm64; do
	archives+=("lockmgr_${version}_linux_${arch}.tar.gz")
done
for f in "$checksums" "${archives[@]}"; do
	[ -f "$f" ] || fail "dist/$f is missing"
	[ -f "$f.sig" ] || fail "dist/$f.sig is missing"
	status=$(gpg --batch --status-fd 1 --verify "$f.sig" "$f" 2>"$scratch/gpg.err") || {
		cat "$scratch/gpg.err" >&2
		fail "gpg --verify $f.sig failed"
	}
	grep -q "^\[GNUPG:\] VALIDSIG $GPG_FINGERPRINT " <<<"$status" ||
		fail "$f.sig is not a good signature by $GPG_FINGERPRINT"
done
say "gpg: good signatures on $checksums and ${#archives[@]} archives"

sha256sum --quiet --strict -c "$checksums" || fail "sha256sum -c $checksums failed"
# Every archive and package is in the signed checksum file.
jq -r '.[] | select(.type == "Archive" or .type == "Linux Package") | .name' artifacts.json |
	while read -r name; do
		grep -q "  $name\$" "$checksums" || fail "$name is not in $checksums"
	done
say "sha256sum: $(wc -l <"$checksums") files match $checksums"

# goreleaser must build each binary as `make build` does: the same build
# tags (the lockmgr command's differ from lockmgr-full's and the plugins').
declare -A make_tags
while read -r bin tags; do
	make_tags[$bin]=$tags
done < <(make -C "$root" -s -n build BIN=/nonexistent | sed -n 's|.* -tags \([^ ]*\) \(.* \)\{0,1\}-o /nonexistent/\([^ ]*\) .*|\3 \1|p')
# The plugins are built in one loop, as lockmgr-backend-$b.
[ -n "${make_tags[lockmgr]}" ] && [ -n "${make_tags[lockmgr-full]}" ] && [ -n "${make_tags[lockmgr-backend-\$b]}" ] ||
	fail "make build -n does not show the -tags of lockmgr, lockmgr-full and the plugins: ${!make_tags[*]}"

# The tarball holds the tree the packages install under /usr, plus
# README.rst, LICENSE and the example config, in one directory.
mans=$(cd "$root/.cache/release/share/man" && ls -- man1/*.1.gz man5/*.5.gz)
[ -n "$mans" ] || fail "no man pages in .cache/release/share/man"
grep -qx 'man5/lockmgr.toml.5.gz' <<<"$mans" || fail "no lockmgr.toml(5) in .cache/release/share/man/man5"
expected_tree() {
	local top=$1
	{
		printf '%s\n' README.rst LICENSE bin/lockmgr etc/lockmgr/config.toml \
			lib/lockmgr/lockmgr-full lib/lockmgr/lockmgr-backend-etcd lib/lockmgr/lockmgr-backend-flock \
			lib/lockmgr/lockmgr-backend-ofd lib/lockmgr/lockmgr-backend-posix \
			share/bash-completion/completions/lockmgr share/zsh/site-functions/_lockmgr \
			share/fish/vendor_completions.d/lockmgr.fish
		sed 's|^|share/man/|' <<<"$mans"
	} | sed "s|^|$top/|" | LC_ALL=C sort
}
for arch in amd64 arm64; do
	tarball=lockmgr_${version}_linux_${arch}.tar.gz
	top=lockmgr_${version}_linux_${arch}
	tar -tzvf "$tarball" | awk '$1 !~ /^d/ && $2 != "root/root" { bad = 1; print "  not root/root: " $0 } END { exit bad }' >&2 ||
		fail "$tarball has files not owned by root/root"
	if ! diff -u <(expected_tree "$top") <(tar -tzf "$tarball" | grep -v '/$' | LC_ALL=C sort) >"$scratch/tree.diff"; then
		cat "$scratch/tree.diff" >&2
		fail "$tarball does not hold the expected files (- expected, + found)"
	fi
	mkdir -p "$scratch/unpack-$arch"
	tar -xzf "$tarball" -C "$scratch/unpack-$arch"
	case $arch in amd64) want='x86-64' ;; arm64) want='ARM aarch64' ;; esac
	for bin in bin/lockmgr lib/lockmgr/lockmgr-full lib/lockmgr/lockmgr-backend-{flock,posix,ofd,etcd}; do
		f=$scratch/unpack-$arch/$top/$bin
		file -b "$f" | grep -q "ELF 64-bit .*$want.*statically linked" ||
			fail "$tarball: $bin is not a static $want ELF: $(file -b "$f")"
		[ "$(stat -c %a "$f")" = 755 ] || fail "$tarball: $bin has mode $(stat -c %a "$f"), want 755"
		tags=$("$GO" version -m "$f" | awk '$1 == "build" && $2 ~ /^-tags=/ { sub(/^-tags=/, "", $2); print $2 }')
		key=${bin##*/}
		case $key in lockmgr-backend-*) key='lockmgr-backend-$b' ;; esac
		want_tags=${make_tags[$key]}
		[ "$tags" = "$want_tags" ] || fail "$tarball: $bin was built with -tags '$tags', make build uses '$want_tags'"
	done
	say "$tarball: the expected $(tar -tzf "$tarball" | grep -vc '/$') files, $want binaries"
done

# 5. Run the unpacked amd64 release from where it lies.
unpacked=$scratch/unpack-amd64/lockmgr_${version}_linux_amd64
[ ! -e /usr/lib/lockmgr ] || say "note: /usr/lib/lockmgr exists here; the test checks it is not used"
say "running the unpacked $unpacked/bin/lockmgr"
bash "$root/packaging/smoke-test.sh" "$unpacked/bin/lockmgr" "$unpacked/lib/lockmgr" \
	"$unpacked/etc/lockmgr/config.toml" "$version"
short=$("$unpacked/bin/lockmgr" version | sed -n 's/.*(commit \([0-9a-f]*\),.*/\1/p')
[ -n "$short" ] && [ "${commit#"$short"}" != "$commit" ] ||
	fail "lockmgr version names commit '$short', not a prefix of $commit"

say "OK: dist/ holds a signed, verified snapshot of lockmgr $version"
