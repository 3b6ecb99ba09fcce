#!/usr/bin/env bash
# make package-check: build and install every package the way its users
# would, into scratch roots, and run what got installed.
#
#  1. packaging/PKGBUILD, built by makepkg (Debian's) as an unprivileged
#     user from a tarball of this working tree instead of the signed tag;
#  2. the lockmgr-bin PKGBUILD that goreleaser generated, built against the
#     snapshot tarball in dist/;
#  3. goreleaser's own packages: the .pkg.tar.zst, .deb and .rpm.
#
# The pacman packages are installed with pacman -U into a scratch root, the
# .deb and .rpm unpacked into one. Each must hold exactly the files `make
# install` lays out (the snapshot tarball's man pages), and for this
# machine's architecture each installed lockmgr must find its plugins in
# ROOT/usr/lib/lockmgr through ../lib/lockmgr and take locks
# (packaging/smoke-test.sh).
#
# Needs root (for useradd, runuser and pacman --root) and dist/ from
# `make release-snapshot`. Go modules for the source build come through
# the module proxy into a scratch module cache.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}

say() { printf 'package-check: %s\n' "$*" >&2; }
fail() { printf 'package-check: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root: it creates the build user, and pacman installs into scratch roots"
for tool in "$GO" makepkg pacman bsdtar fakeroot runuser useradd dpkg-deb jq tar sha256sum; do
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

# makepkg refuses to run as root, so it runs as this user.
user=${PACKAGE_CHECK_USER:-lockmgr-build}
if ! id -u "$user" >/dev/null 2>&1; then
	say "creating the unprivileged build user $user"
	useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/lockmgr-pkgcheck.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
chmod 755 "$scratch" # the build user must reach its own directories inside
mkdir "$scratch/home" "$scratch/go" "$scratch/src" "$scratch/aur"
chown "$user:" "$scratch/home" "$scratch/go" "$scratch/src" "$scratch/aur"

# as_builder CMD...: run as the build user, in a clean environment but for
# the Go settings in force here (proxy, checksum database, toolchain).
# TMPDIR stays unset: a plugin's unix socket lives below it, and the cli
# tests' deep working directories under a longer TMPDIR than /tmp push the
# socket path past the kernel's 108 bytes.
goenv=()
for v in GOPROXY GOSUMDB GONOSUMDB GONOPROXY GOPRIVATE GOINSECURE GOTOOLCHAIN; do
	val=$("$GO" env "$v")
	[ -z "$val" ] || goenv+=("$v=$val")
done
gobin=$("$GO" env GOROOT)/bin
as_builder() {
	runuser -u "$user" -- env -i \
		PATH="$gobin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		HOME="$scratch/home" LANG=C.UTF-8 \
		GOPATH="$scratch/go" GOMODCACHE="$scratch/go/mod" GOCACHE="$scratch/go/cache" "${goenv[@]}" \
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
	printf '%s\n' /etc/lockmgr/config.toml /usr/bin/lockmgr \
		/usr/lib/lockmgr/lockmgr-backend-etcd /usr/lib/lockmgr/lockmgr-backend-flock \
		/usr/lib/lockmgr/lockmgr-backend-ofd /usr/lib/lockmgr/lockmgr-backend-posix \
		/usr/share/bash-completion/completions/lockmgr /usr/share/fish/vendor_completions.d/lockmgr.fish \
		/usr/share/licenses/lockmgr/LICENSE /usr/share/zsh/site-functions/_lockmgr
	tar -tzf "$tarball" | sed -n 's|^[^/]*/share/man/|/usr/share/man/|p' | grep -v '/$'
} | LC_ALL=C sort >"$scratch/expected"
grep -q '^/usr/share/man/man1/lockmgr\.1\.gz$' "$scratch/expected" || fail "$tarball has no lockmgr.1.gz"

# check_tree NAME ROOT: ROOT holds exactly the expected files (pacman's
# database and a package's own metadata aside).
check_tree() {
	local name=$1 r=$2
	(cd "$r" && find . \( -path ./var -o -name '.[A-Z]*' \) -prune -o \( -type f -o -type l \) -print) |
		sed 's|^\.||' | LC_ALL=C sort >"$scratch/found"
	diff -u "$scratch/expected" "$scratch/found" >"$scratch/tree.diff" || {
		cat "$scratch/tree.diff" >&2
		fail "$name does not install the expected files (- expected, + found)"
	}
	say "$name: the expected $(wc -l <"$scratch/found") files"
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

say "note: makepkg's 'failed to initialize alpm library' is expected here: Debian has no pacman database for .BUILDINFO to list"

# 1. packaging/PKGBUILD from a tarball of this working tree. The tarball
# leaves out what .gitignore does, and .git; its top directory is the one
# the git source would give, $pkgname.
pkgver=$(sed -n 's/^pkgver=//p' packaging/PKGBUILD)
say "packaging/PKGBUILD: lockmgr $pkgver from a tarball of $root"
tar -C "$root" --exclude-vcs --exclude=./.cache --exclude=./dist --exclude=./bin --exclude=./out \
	--exclude=./bench/results --exclude='*.test' --exclude='*.prof' \
	--transform='s,^\.,lockmgr,' --owner=0 --group=0 -czf "$scratch/src/lockmgr-local.tar.gz" .
sum=$(sha256sum "$scratch/src/lockmgr-local.tar.gz" | cut -d' ' -f1)
# Only the source changes: the git tag ?signed becomes the local tarball,
# which has no signature, so makepkg runs with --skippgpcheck.
sed -e 's|^source=.*|source=("lockmgr-local.tar.gz")|' -e "s|^sha256sums=.*|sha256sums=('$sum')|" \
	packaging/PKGBUILD >"$scratch/src/PKGBUILD"
grep -qx 'source=("lockmgr-local.tar.gz")' "$scratch/src/PKGBUILD" && grep -qx "sha256sums=('$sum')" "$scratch/src/PKGBUILD" ||
	fail "could not point the scratch PKGBUILD at the local tarball (source= or sha256sums= changed shape?)"
chown -R "$user:" "$scratch/src"
(cd "$scratch/src" && as_builder makepkg --nodeps --skippgpcheck --noconfirm --noprogressbar) ||
	fail "makepkg of packaging/PKGBUILD failed"
pkg=$(cd "$scratch/src" && as_builder makepkg --packagelist)
[ -f "$pkg" ] || fail "makepkg made no $pkg"
backup_listed packaging/PKGBUILD "$pkg"
pacman_install "$scratch/root-src" "$pkg"
check_tree "packaging/PKGBUILD" "$scratch/root-src"
run_installed "packaging/PKGBUILD" "$scratch/root-src" "$pkgver"

# 2. goreleaser's lockmgr-bin PKGBUILD, its source pointed at the snapshot
# tarball (the release URL does not exist for a snapshot).
say "dist/aur/lockmgr-bin.pkgbuild against $tarball"
cp dist/aur/lockmgr-bin.pkgbuild "$scratch/aur/PKGBUILD"
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
check_tree lockmgr-bin "$scratch/root-aur"
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
		check_tree "$pkg" "$r"
		if [ "$arch" = "$goarch" ]; then
			run_installed "$pkg" "$r" "$version"
		fi
	done
done

say "OK: packaging/PKGBUILD, lockmgr-bin and goreleaser's packages install the same files, and run"
