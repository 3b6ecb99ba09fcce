#!/usr/bin/env bash
# make package-check: build and install every package the way its users
# would, into scratch roots, and run what got installed.
#
#  1. packaging/PKGBUILD, built by makepkg (Debian's) as an unprivileged
#     user from a signed tag: the working tree is committed to a scratch
#     repository, tagged v$pkgver and signed with a throwaway key, which a
#     copy of the PKGBUILD names in validpgpkeys. makepkg must refuse the
#     same PKGBUILD pointed at an unsigned tag and at one signed by another
#     key. package() runs again (makepkg -R) with no go in PATH: it only
#     copies what build() made. Every installed ELF file must be a PIE with
#     GNU_RELRO and BIND_NOW, stripped by makepkg with its debug info in
#     the lockmgr-debug package, prepare() must leave the checkout
#     unmodified, and the build must leave nothing in the builder's home;
#  2. the lockmgr-bin PKGBUILD that goreleaser generated (and aur-bin.sh
#     fixed), built against the snapshot tarball in dist/; its .SRCINFO must
#     be what makepkg --printsrcinfo prints;
#  3. goreleaser's own packages: the .pkg.tar.zst, .deb and .rpm, whose
#     binaries must be static (by design, see .goreleaser.yaml).
#
# The pacman packages are installed with pacman -U into a scratch root, the
# .deb and .rpm unpacked into one. Each must hold exactly the files `make
# install` lays out (the snapshot tarball's man pages), the license in
# usr/share/licenses/PKGNAME, and for this machine's architecture each
# installed lockmgr must find its plugins in ROOT/usr/lib/lockmgr through
# ../lib/lockmgr and take locks (packaging/smoke-test.sh). Finally, vercmp
# must order a snapshot before a release candidate before the release, with
# the pkgvers both kinds of Arch package get.
#
# Needs root (for useradd, runuser and pacman --root) and dist/ from
# `make release-snapshot`. Go modules for the source build come through
# the module proxy into the build's own $srcdir.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}

say() { printf 'package-check: %s\n' "$*" >&2; }
fail() { printf 'package-check: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root: it creates the build user, and pacman installs into scratch roots"
for tool in "$GO" makepkg pacman vercmp bsdtar fakeroot runuser useradd dpkg-deb jq tar sha256sum git gpg gpgconf readelf; do
	command -v "$tool" >/dev/null || fail "$tool is not installed (.ci/run lists what to apt-get install)"
done
[ -f dist/metadata.json ] && [ -f dist/artifacts.json ] && [ -f dist/aur/lockmgr-bin.pkgbuild ] ||
	fail "no goreleaser snapshot in dist/: run make release-snapshot first"

version=$(jq -r .version dist/metadata.json)
case $(uname -m) in
x86_64) carch=x86_64 goarch=amd64 ;;
aarch64) carch=aarch64 goarch=arm64 ;;
*) fail "no lockmgr packages for $(uname -m)" ;;
esac

# makepkg refuses to run as root, so it runs as an unprivileged user: the
# one PACKAGE_CHECK_USER names, used as it is, or else one made for this
# run, named by its pid so that two runs on one machine never share it,
# and removed at the end with its group, whatever the outcome.
user=${PACKAGE_CHECK_USER:-lockmgr-build-$$}
created_user=
scratch=
cleanup() {
	if [ -n "$scratch" ]; then
		# The agents that key generation and verification started would
		# outlive their directories.
		GNUPGHOME=$scratch/gnupg-signer gpgconf --kill all 2>/dev/null || true
		runuser -u "$user" -- env GNUPGHOME="$scratch/gnupg-builder" gpgconf --kill all 2>/dev/null || true
		rm -rf "$scratch"
	fi
	if [ -n "$created_user" ]; then
		userdel "$user" 2>/dev/null || say "warning: could not remove the build user $user (userdel $user)"
		if getent group "$user" >/dev/null; then
			groupdel "$user" 2>/dev/null || say "warning: could not remove the group $user (groupdel $user)"
		fi
	fi
}
trap cleanup EXIT
if ! id -u "$user" >/dev/null 2>&1; then
	[ -z "${PACKAGE_CHECK_USER:-}" ] || fail "PACKAGE_CHECK_USER=$user: no such user"
	say "creating the unprivileged build user $user, removed at the end"
	useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
	created_user=1
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/lockmgr-pkgcheck.XXXXXX")
chmod 755 "$scratch" # the build user must reach its own directories inside
mkdir "$scratch/home" "$scratch/src" "$scratch/aur" "$scratch/nogo"
mkdir -m 700 "$scratch/gnupg-builder"
chown "$user:" "$scratch/home" "$scratch/src" "$scratch/aur" "$scratch/gnupg-builder"

# as_builder CMD...: run as the build user, in a clean environment but for
# the Go settings in force here (proxy, checksum database, toolchain), with
# its own keyring. GOPATH and GOCACHE are the PKGBUILD's business. PATH is
# builder_path, which has go in it unless a caller says otherwise.
# TMPDIR stays unset: a plugin's unix socket lives below it, and the cli
# tests' deep working directories under a longer TMPDIR than /tmp push the
# socket path past the kernel's 108 bytes.
goenv=()
for v in GOPROXY GOSUMDB GONOSUMDB GONOPROXY GOPRIVATE GOINSECURE GOTOOLCHAIN; do
	val=$("$GO" env "$v")
	[ -z "$val" ] || goenv+=("$v=$val")
done
gobin=$("$GO" env GOROOT)/bin
syspath=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
builder_path=$gobin:$syspath
as_builder() {
	runuser -u "$user" -- env -i \
		PATH="$builder_path" \
		HOME="$scratch/home" LANG=C.UTF-8 GNUPGHOME="$scratch/gnupg-builder" "${goenv[@]}" \
		CARCH="$carch" PKGEXT=.pkg.tar.zst \
		"$@"
}

# pacman_install ROOT PKG: pacman -U into a scratch root, with a pacman.conf
# that needs no keyring (nothing here is signed for pacman) and no hooks
# or scriptlets from this machine.
cat >"$scratch/pacman.conf" <<'EOF'
[options]
Architecture = auto
SigLevel = Never
LocalFileSigLevel = Never
EOF
pacman_install() {
	local r=$1 pkg=$2
	mkdir -p "$r/var/lib/pacman" "$r/var/cache/pacman/pkg" "$r/var/log" "$r/etc/pacman.d/hooks"
	pacman --config "$scratch/pacman.conf" --root "$r" --dbpath "$r/var/lib/pacman" \
		--cachedir "$r/var/cache/pacman/pkg" --logfile "$r/var/log/pacman.log" \
		--hookdir "$r/etc/pacman.d/hooks" \
		-U -dd --noconfirm --noscriptlet --noprogressbar "$pkg" >"$scratch/pacman.log" 2>&1 || {
		cat "$scratch/pacman.log" >&2
		fail "pacman -U $pkg into $r failed"
	}
	pacman --root "$r" --dbpath "$r/var/lib/pacman" -Q | sed 's/^/  installed: /' >&2
}

# The files every package must install: `make install`'s layout, with the
# man pages that the snapshot tarball carries.
tarball=dist/lockmgr_${version}_linux_${goarch}.tar.gz
[ -f "$tarball" ] || fail "no $tarball in dist/"
{
	printf '%s\n' /etc/lockmgr/config.toml /usr/bin/lockmgr /usr/lib/lockmgr/lockmgr-full \
		/usr/lib/lockmgr/lockmgr-backend-etcd /usr/lib/lockmgr/lockmgr-backend-flock \
		/usr/lib/lockmgr/lockmgr-backend-ofd /usr/lib/lockmgr/lockmgr-backend-posix \
		/usr/share/bash-completion/completions/lockmgr /usr/share/fish/vendor_completions.d/lockmgr.fish \
		/usr/share/licenses/PKGNAME/LICENSE /usr/share/zsh/site-functions/_lockmgr
	tar -tzf "$tarball" | sed -n 's|^[^/]*/share/man/|/usr/share/man/|p' | grep -v '/$'
} >"$scratch/expected-files"
grep -q '^/usr/share/man/man1/lockmgr\.1\.gz$' "$scratch/expected-files" || fail "$tarball has no lockmgr.1.gz"

# check_tree NAME ROOT PKGNAME: ROOT holds exactly the expected files
# (pacman's database and a package's own metadata aside), the license in
# usr/share/licenses/PKGNAME, as namcap wants it.
check_tree() {
	local name=$1 r=$2 pkgname=$3
	sed "s|/PKGNAME/|/$pkgname/|" "$scratch/expected-files" | LC_ALL=C sort >"$scratch/expected"
	(cd "$r" && find . \( -path ./var -o -name '.[A-Z]*' \) -prune -o \( -type f -o -type l \) -print) |
		sed 's|^\.||' | LC_ALL=C sort >"$scratch/found"
	diff -u "$scratch/expected" "$scratch/found" >"$scratch/tree.diff" || {
		cat "$scratch/tree.diff" >&2
		fail "$name does not install the expected files (- expected, + found)"
	}
	say "$name: the expected $(wc -l <"$scratch/found") files, the license in /usr/share/licenses/$pkgname"
}

# elf_files ROOT: every ELF file under ROOT (pacman's database aside).
elf_files() {
	local f
	find "$1" -path "$1/var" -prune -o -type f -print | LC_ALL=C sort | while read -r f; do
		[ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] && printf '%s\n' "$f"
	done
	return 0
}

# check_hardened NAME ROOT: every ELF file is a PIE (type DYN, as namcap's
# elffile-without-pie wants it), with a GNU_RELRO segment and BIND_NOW: full
# RELRO, namcap's elffile-without-relro. The PKGBUILD's flags must have
# reached the build: Go's build info names the PIE build mode (GOFLAGS),
# and the packed relocations (DT_RELR) come only from makepkg's $LDFLAGS
# (-z pack-relative-relocs).
check_hardened() {
	local name=$1 r=$2 f n=0 rel out
	while read -r f; do
		rel=${f#"$r"}
		n=$((n + 1))
		# Each output is read whole before grep looks at it (check_debug).
		out=$(readelf -hW "$f")
		grep -Eq '^ +Type: +DYN ' <<<"$out" || fail "$name: $rel is not a PIE: $(grep 'Type:' <<<"$out")"
		out=$(readelf -lW "$f")
		grep -q ' GNU_RELRO ' <<<"$out" || fail "$name: $rel has no GNU_RELRO segment"
		out=$(readelf -dW "$f")
		grep -Eq '\((FLAGS)\) +.*BIND_NOW|\(FLAGS_1\) +Flags:.* NOW' <<<"$out" || fail "$name: $rel lacks BIND_NOW"
		grep -q '(RELR) ' <<<"$out" || fail "$name: $rel has no DT_RELR: makepkg's LDFLAGS did not reach the linker"
		out=$("$GO" version -m "$f")
		grep -Eq '^[[:space:]]+build[[:space:]]+-buildmode=pie$' <<<"$out" ||
			fail "$name: $rel was not built with -buildmode=pie (GOFLAGS did not reach go build)"
	done < <(elf_files "$r")
	[ "$n" -eq 6 ] || fail "$name: $n ELF files, want 6 (lockmgr, lockmgr-full and four plugins)"
	say "$name: all $n ELF files are PIE with GNU_RELRO, BIND_NOW and makepkg's packed relocations:"
	for f in "$r/usr/bin/lockmgr" "$r/usr/lib/lockmgr/lockmgr-backend-flock"; do
		printf '    %s: %s; %s; %s\n' "${f#"$r"}" "$(readelf -hW "$f" | sed -n 's/^ *Type: *//p')" \
			"$(readelf -lW "$f" | awk '$1 == "GNU_RELRO" { print "GNU_RELRO " $3 " size " $6 }')" \
			"$(readelf -dW "$f" | awk '/\((FLAGS|FLAGS_1|RELR|NEEDED)\)/ { $1 = ""; printf "%s;", $0 }')" >&2
	done
}

# check_debug NAME ROOT DEBUGPKG: makepkg stripped every installed binary
# (no symbol table, a .gnu_debuglink to its debug file) and its debug
# package holds that file, with DWARF in it, for each: what a link with -s
# -w would leave it without.
check_debug() {
	local name=$1 r=$2 dbg=$3 f n=0 rel d secs
	mkdir "$scratch/debug"
	bsdtar -xf "$dbg" -C "$scratch/debug"
	# readelf's output is read whole before grep looks at it: under
	# pipefail, a grep -q that matches early leaves readelf to die of
	# SIGPIPE, which would fail the pipeline on a match.
	while read -r f; do
		rel=${f#"$r"}
		n=$((n + 1))
		secs=$(readelf -SW "$f")
		! grep -q ' \.symtab ' <<<"$secs" || fail "$name: $rel still has its symbol table: makepkg did not strip it"
		grep -q ' \.gnu_debuglink ' <<<"$secs" || fail "$name: $rel has no .gnu_debuglink to its debug file"
		d=$scratch/debug/usr/lib/debug$rel.debug
		[ -f "$d" ] || fail "$name: the debug package has no usr/lib/debug$rel.debug"
		secs=$(readelf -SW "$d" 2>/dev/null)
		grep -Eq ' \.(z)?debug_info ' <<<"$secs" || fail "$name: usr/lib/debug$rel.debug has no DWARF (was it linked with -s -w?)"
	done < <(elf_files "$r")
	[ "$n" -eq 6 ] || fail "$name: $n ELF files, want 6"
	say "$name: all $n ELF files stripped by makepkg, their DWARF in $(basename "$dbg")"
}

# check_static NAME ROOT: goreleaser's binaries are static by design (see
# .goreleaser.yaml): no interpreter and no dynamic section, so there are no
# run-time relocations for RELRO to protect.
check_static() {
	local name=$1 r=$2 f n=0
	while read -r f; do
		n=$((n + 1))
		! readelf -lW "$f" | grep -Eq ' (INTERP|DYNAMIC) ' || fail "$name: ${f#"$r"} is not static"
	done < <(elf_files "$r")
	[ "$n" -eq 6 ] || fail "$name: $n ELF files, want 6 (lockmgr, lockmgr-full and four plugins)"
	say "$name: all $n ELF files are static (no INTERP, no DYNAMIC)"
}

# run_installed NAME ROOT VERSION: the installed lockmgr, against its plugins.
run_installed() {
	local name=$1 r=$2 v=$3
	say "$name: running $r/usr/bin/lockmgr"
	bash packaging/smoke-test.sh "$r/usr/bin/lockmgr" "$r/usr/lib/lockmgr" "$r/etc/lockmgr/config.toml" "$v" ||
		fail "$name: the installed lockmgr does not work"
}

# backup_listed NAME PKG: pacman keeps an edited /etc/lockmgr/config.toml.
backup_listed() {
	bsdtar -xOf "$2" .PKGINFO | grep -qx 'backup = etc/lockmgr/config.toml' ||
		fail "$1: etc/lockmgr/config.toml is not in the package's backup list"
}

# Arch's makepkg.conf flags over Debian's (which sets none), so that the
# source build links as it would on Arch, and Arch's debug option, which
# Debian's turns off: makepkg strips the binaries and splits their debug
# info into a lockmgr-debug package.
{
	echo 'source /etc/makepkg.conf'
	echo 'OPTIONS=(strip docs !libtool !staticlibs emptydirs zipman purge debug !lto)'
	[ "$carch" != x86_64 ] || echo 'CFLAGS="-march=x86-64 -mtune=generic -O2 -pipe -fno-plt -fexceptions -Wp,-D_FORTIFY_SOURCE=3 -Wformat -Werror=format-security -fstack-clash-protection -fcf-protection -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer"'
	echo 'LDFLAGS="-Wl,-O1 -Wl,--sort-common -Wl,--as-needed -Wl,-z,relro -Wl,-z,now -Wl,-z,pack-relative-relocs"'
} >"$scratch/makepkg.conf"
chmod 644 "$scratch/makepkg.conf"

say "note: makepkg's 'failed to initialize alpm library' is expected here: Debian has no pacman database for .BUILDINFO to list"

# 1. packaging/PKGBUILD from a signed tag. Two throwaway keys (no
# passphrase, one day) in a keyring of root's: the release key, which signs
# the tag, and another. The builder's keyring has both public keys, so the
# wrong-key case fails on validpgpkeys rather than on a missing key.
pkgver=$(sed -n 's/^pkgver=//p' packaging/PKGBUILD)
export GNUPGHOME=$scratch/gnupg-signer
mkdir -m 700 "$GNUPGHOME"
genkey() {
	gpg --batch --quiet --gen-key <<-EOF
		%no-protection
		Key-Type: eddsa
		Key-Curve: ed25519
		Key-Usage: sign
		Name-Real: $1
		Name-Email: $2
		Expire-Date: 1d
		%commit
	EOF
	gpg --batch --with-colons --list-keys "$2" 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }'
}
say "generating throwaway tag-signing keys in $GNUPGHOME"
release_key=$(genkey 'lockmgr release (throwaway)' release@lockmgr.invalid)
other_key=$(genkey 'someone else (throwaway)' other@lockmgr.invalid)
[ ${#release_key} -eq 40 ] && [ ${#other_key} -eq 40 ] || fail "no fingerprints for the generated keys"
gpg --batch --export "$release_key" "$other_key" | as_builder gpg --batch --quiet --import ||
	fail "could not import the throwaway public keys into the builder's keyring"

# The scratch repository: this working tree's files (tracked, and untracked
# but not ignored, as they are now), committed once and tagged three ways.
repo=$scratch/repo
git init -q "$repo"
git -C "$root" ls-files -z -co --exclude-standard |
	while IFS= read -r -d '' f; do [ -f "$root/$f" ] && printf '%s\0' "$f"; done |
	tar -C "$root" --null -T - -cf - | tar -C "$repo" -xf -
wt_head=$(git -C "$root" rev-parse --short HEAD)
git_repo() { git -C "$repo" -c user.name='lockmgr package-check' -c user.email=package-check@lockmgr.invalid -c gpg.program=gpg "$@"; }
git_repo add -A
git_repo commit -q -m "package-check: the working tree of $wt_head"
git_repo -c user.signingkey="$release_key" tag -s "v$pkgver" -m "lockmgr $pkgver"
git_repo -c user.signingkey="$other_key" tag -s wrong-key -m "lockmgr $pkgver, signed by another key"
git_repo tag -a unsigned -m "lockmgr $pkgver, unsigned"
git -C "$repo" verify-tag "v$pkgver" 2>/dev/null || fail "git verify-tag v$pkgver fails in $repo"
chown -R "$user:" "$repo"

# pkgbuild_at DIR TAG: packaging/PKGBUILD in DIR, its source the scratch
# repository at TAG (?signed kept), its validpgpkeys the throwaway release key.
pkgbuild_at() {
	local dir=$1 tag=$2
	mkdir -p "$dir"
	sed -e "s|^_release_key=.*|_release_key=$release_key|" \
		-e "s|^source=.*|source=(\"\$pkgname::git+file://$repo#tag=$tag?signed\")|" \
		packaging/PKGBUILD >"$dir/PKGBUILD"
	grep -qx "_release_key=$release_key" "$dir/PKGBUILD" && grep -qx 'validpgpkeys=("$_release_key")' "$dir/PKGBUILD" &&
		grep -qx "source=(\"\$pkgname::git+file://$repo#tag=$tag?signed\")" "$dir/PKGBUILD" ||
		fail "could not point a copy of packaging/PKGBUILD at $repo#tag=$tag (_release_key=, validpgpkeys= or source= changed shape?)"
	chown -R "$user:" "$dir"
}

# makepkg must refuse a tag that the release key did not sign.
refused() {
	local tag=$1 why=$2 dir=$scratch/refuse-$1
	pkgbuild_at "$dir" "$tag"
	if (cd "$dir" && as_builder makepkg --verifysource --noconfirm --noprogressbar) >"$dir/log" 2>&1; then
		cat "$dir/log" >&2
		fail "makepkg accepted the $tag tag"
	fi
	grep -q "$why" "$dir/log" && grep -q 'One or more PGP signatures could not be verified' "$dir/log" || {
		cat "$dir/log" >&2
		fail "makepkg refused the $tag tag, but not for '$why'"
	}
	say "packaging/PKGBUILD: makepkg refuses the $tag tag ($why)"
}
refused unsigned 'SIGNATURE NOT FOUND'
refused wrong-key "invalid public key $other_key"

# Arch's convention: a pkgdesc of about 80 characters at most, without
# the package's name.
for f in packaging/PKGBUILD dist/aur/lockmgr-bin.pkgbuild; do
	desc=$(bash -c 'source "$1" && printf %s "$pkgdesc"' _ "$f")
	[ "${#desc}" -le 80 ] || fail "$f: pkgdesc is ${#desc} characters, more than 80: $desc"
done

say "packaging/PKGBUILD: lockmgr $pkgver from tag v$pkgver of $repo, signed by $release_key"
pkgbuild_at "$scratch/src" "v$pkgver"
(cd "$scratch/src" && as_builder makepkg --config "$scratch/makepkg.conf" --nodeps --noconfirm --noprogressbar) 2>&1 | tee "$scratch/makepkg.log" >&2
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "makepkg of packaging/PKGBUILD failed"
grep -Eq "lockmgr git repo \.\.\. Passed" "$scratch/makepkg.log" ||
	fail "makepkg did not report a verified signature on the v$pkgver tag"

# prepare() and build() leave the checkout as the tag has it (go.work.sum
# included), the module cache and build cache in $srcdir, and nothing in
# the builder's home but Go's telemetry counters (which only
# `go telemetry off` stops, not an environment variable).
changed=$(as_builder git -C "$scratch/src/src/lockmgr" status --porcelain)
[ -z "$changed" ] || fail "the build modified tracked files in its checkout: $changed"
[ -d "$scratch/src/src/gopath/pkg/mod" ] || fail "no module cache in \$srcdir/gopath: GOPATH is not in \$srcdir"
left=$(cd "$scratch/home" && find . -mindepth 1 ! -path ./.config ! -path ./.config/go \
	! -path ./.config/go/telemetry ! -path './.config/go/telemetry/*' -print)
[ -z "$left" ] || fail "the build left files in the builder's home: $left"
say "packaging/PKGBUILD: checkout unmodified, GOPATH in \$srcdir, nothing left in \$HOME"

# package() again with no go to run: it must only copy what build() made.
cat >"$scratch/nogo/go" <<'EOF'
#!/bin/sh
echo "package-check: package() ran go $*; it must only install what build() made" >&2
exit 1
EOF
chmod 755 "$scratch/nogo/go"
(cd "$scratch/src" && builder_path=$scratch/nogo:$syspath as_builder makepkg --config "$scratch/makepkg.conf" --repackage --force --nodeps --noconfirm --noprogressbar) ||
	fail "makepkg --repackage of packaging/PKGBUILD without go failed: package() builds"
pkgs=$(cd "$scratch/src" && as_builder makepkg --config "$scratch/makepkg.conf" --packagelist)
pkg=$(grep -v -- '/lockmgr-debug-' <<<"$pkgs")
dbgpkg=$(grep -- '/lockmgr-debug-' <<<"$pkgs" || true)
[ -f "$pkg" ] || fail "makepkg made no $pkg"
[ -n "$dbgpkg" ] && [ -f "$dbgpkg" ] || fail "makepkg made no lockmgr-debug package: $pkgs"
backup_listed packaging/PKGBUILD "$pkg"
pacman_install "$scratch/root-src" "$pkg"
check_tree packaging/PKGBUILD "$scratch/root-src" lockmgr
check_hardened packaging/PKGBUILD "$scratch/root-src"
check_debug packaging/PKGBUILD "$scratch/root-src" "$dbgpkg"
run_installed packaging/PKGBUILD "$scratch/root-src" "$pkgver"

# 2. goreleaser's lockmgr-bin PKGBUILD, its source pointed at the snapshot
# tarball (the release URL does not exist for a snapshot).
say "dist/aur/lockmgr-bin.pkgbuild against $tarball"
cp dist/aur/lockmgr-bin.pkgbuild "$scratch/aur/PKGBUILD"
# The .SRCINFO that goes to the AUR with it must describe it exactly.
chown -R "$user:" "$scratch/aur"
(cd "$scratch/aur" && as_builder makepkg --printsrcinfo) >"$scratch/srcinfo" ||
	fail "makepkg --printsrcinfo of dist/aur/lockmgr-bin.pkgbuild failed"
diff -u dist/aur/lockmgr-bin.srcinfo "$scratch/srcinfo" >"$scratch/srcinfo.diff" || {
	cat "$scratch/srcinfo.diff" >&2
	fail "dist/aur/lockmgr-bin.srcinfo is not makepkg --printsrcinfo of its PKGBUILD (- .srcinfo, + makepkg; packaging/aur-bin.sh writes it)"
}
say "dist/aur/lockmgr-bin.srcinfo: what makepkg --printsrcinfo prints"
cp "$tarball" "$scratch/aur/"
name=$(basename "$tarball")
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
sed -i "s|^source_$carch=.*|source_$carch=(\"$name\")|" "$scratch/aur/PKGBUILD"
grep -qx "source_$carch=(\"$name\")" "$scratch/aur/PKGBUILD" || fail "the AUR PKGBUILD has no source_$carch line"
if ! grep -qx "sha256sums_$carch=('$sum')" "$scratch/aur/PKGBUILD"; then
	say "note: the AUR PKGBUILD's sha256sums_$carch is not $tarball's; using the tarball's"
	sed -i "s|^sha256sums_$carch=.*|sha256sums_$carch=('$sum')|" "$scratch/aur/PKGBUILD"
fi
grep -q "sha256sums_$carch = $sum\$" dist/aur/lockmgr-bin.srcinfo || fail "dist/aur/lockmgr-bin.srcinfo lacks the tarball's sha256"
binver=$(sed -n 's/^pkgver=//p' "$scratch/aur/PKGBUILD")
grep -q "pkgver = $binver\$" dist/aur/lockmgr-bin.srcinfo || fail "dist/aur/lockmgr-bin.srcinfo lacks pkgver $binver"
chown -R "$user:" "$scratch/aur"
(cd "$scratch/aur" && as_builder makepkg --nodeps --noconfirm --noprogressbar) ||
	fail "makepkg of the AUR PKGBUILD failed"
pkg=$(cd "$scratch/aur" && as_builder makepkg --packagelist)
[ -f "$pkg" ] || fail "makepkg made no $pkg"
backup_listed lockmgr-bin "$pkg"
pacman_install "$scratch/root-aur" "$pkg"
check_tree lockmgr-bin "$scratch/root-aur" lockmgr-bin
check_static lockmgr-bin "$scratch/root-aur"
run_installed lockmgr-bin "$scratch/root-aur" "$version"

# 3. goreleaser's packages, every format and architecture; those for this
# machine are also run.
for arch in amd64 arm64; do
	for format in archlinux deb rpm; do
		pkg=$(jq -r --arg a "$arch" --arg f "$format" \
			'.[] | select(.type == "Linux Package" and .goarch == $a and .extra.Format == $f) | .path' dist/artifacts.json)
		[ -n "$pkg" ] && [ -f "$pkg" ] || fail "no $format package for $arch in dist/"
		r=$scratch/root-$format-$arch
		mkdir -p "$r"
		case $format in
		archlinux)
			backup_listed "$pkg" "$pkg"
			if [ "$arch" = "$goarch" ]; then
				pacman_install "$r" "$pkg"
			else
				bsdtar -xf "$pkg" -C "$r"
			fi
			;;
		deb)
			dpkg-deb -I "$pkg" conffiles | grep -qx /etc/lockmgr/config.toml ||
				fail "$pkg: /etc/lockmgr/config.toml is not a conffile"
			dpkg-deb -x "$pkg" "$r"
			;;
		rpm) bsdtar -xf "$pkg" -C "$r" -s '|^/||' ;; # -s: paths are absolute in an rpm
		esac
		check_tree "$pkg" "$r" lockmgr
		check_static "$pkg" "$r"
		if [ "$arch" = "$goarch" ]; then
			run_installed "$pkg" "$r" "$version"
		fi
	done
done

# 4. Versions: pacman must order a snapshot before a release candidate
# before the release, with the pkgvers lockmgr-bin and nfpm's package get.
# The snapshot's are real (this dist/); those of an rc and a release of the
# same version come from the mapping aur-bin.sh applies, which nfpm's must
# agree with on the snapshot.
[ "${version#*-}" != "$version" ] || fail "the snapshot version $version is not a prerelease"
base=${version%%-*}
aurver() { bash packaging/aur-bin.sh --pkgver "$1"; }
nfpmpkg=$(jq -r --arg a "$goarch" '.[] | select(.type == "Linux Package" and .goarch == $a and .extra.Format == "archlinux") | .path' dist/artifacts.json)
nfpmver=$(bsdtar -xOf "$nfpmpkg" .PKGINFO | sed -n 's/^pkgver = //p')
[ -n "$nfpmver" ] || fail "$nfpmpkg has no pkgver"
[ "$binver" = "$(aurver "$version")" ] || fail "lockmgr-bin's pkgver is $binver, want $(aurver "$version") (packaging/aur-bin.sh)"
[ "$(vercmp "$nfpmver" "$binver-1")" = 0 ] ||
	fail "nfpm's pkgver $nfpmver and lockmgr-bin's $binver-1 differ for pacman"
# older NEWER: vercmp must say older < NEWER.
older() {
	[ "$(vercmp "$1" "$2")" = -1 ] || fail "pacman does not order $1 before $2 (vercmp $1 $2 = $(vercmp "$1" "$2"))"
	printf '    vercmp %s %s = -1\n' "$1" "$2" >&2
}
rc1=$(aurver "$base-rc.1") rc2=$(aurver "$base-rc.2") rc10=$(aurver "$base-rc.10") rel=$(aurver "$base")
say "versions: snapshot $version is $binver (lockmgr-bin) and $nfpmver (nfpm); $base-rc.1 is $rc1; $base is $rel"
older "$binver" "$rc1"
older "$nfpmver" "$rc1-1"
older "$rc1" "$rc2"
older "$rc2" "$rc10"
older "$rc10" "$rel"
older "$binver-1" "$rel-1"
older "$nfpmver" "$rel-1"
# and the next version's snapshots come after the release.
next=$(awk -F. '{ print $1 "." $2 "." $3 + 1 }' <<<"$base")
older "$rel" "$(aurver "$next-dev.0000000")"

say "OK: packaging/PKGBUILD (signed tag, hardened), lockmgr-bin and goreleaser's packages install the same files, and run; pacman orders their versions"
