#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Build the sofia-ws Debian packages from this checkout, lint them, and copy them out.
#
#   packaging/build-deb.sh [OUTDIR]        (as root, on Debian bookworm)
#
# OUTDIR defaults to _build-deb/ at the top of the repository (git-ignored). It receives the
# binary packages (.deb, with the -dbgsym packages), the .changes and .buildinfo files, and the
# source package (.dsc and .tar.xz), so that the autopkgtests can be run from it:
#
#   autopkgtest OUTDIR/sofia-ws_<version>_<arch>.changes OUTDIR/sofia-ws_<version>.dsc -- null
#
# The build happens in a temporary copy of the tree (without _build*, .git and node_modules)
# with packaging/debian/ moved to debian/, so the checkout never gets build output.
# DEB_BUILD_PROFILES (e.g. nocheck) and DEB_BUILD_OPTIONS are honoured; the build always runs
# with parallel=2. Set SOFIA_WS_AUTOPKGTEST=1 to also run the autopkgtests on this machine
# (autopkgtest's null runner: it installs the packages and their test dependencies here).

set -eu

say () {
    printf '==> %s\n' "$*"
}

die () {
    printf 'build-deb: error: %s\n' "$*" >&2
    exit 1
}

top=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$top/meson.build" ] && [ -f "$top/packaging/debian/control" ] ||
    die "cannot find the sofia-ws source tree above $0"

outdir=${1:-$top/_build-deb}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

[ "$(id -u)" = 0 ] || die "run as root: the packaging tools and Build-Depends are installed with apt-get"

profiles=$(printf '%s' "${DEB_BUILD_PROFILES:-}" | tr -s ' ,' ',' | sed 's/^,//; s/,$//')

export DEBIAN_FRONTEND=noninteractive
tools="dpkg-dev debhelper devscripts lintian build-essential"
if [ "${SOFIA_WS_AUTOPKGTEST:-0}" = 1 ]; then
    tools="$tools autopkgtest"
fi

say "Installing the packaging tools: $tools"
apt-get update -q
# shellcheck disable=SC2086 # $tools is a list of package names
apt-get install -y -q --no-install-recommends $tools

stage=$(mktemp -d "${TMPDIR:-/tmp}/sofia-ws-deb.XXXXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM HUP

version=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
srcdir="$stage/sofia-ws-$version"

say "Copying the source tree to $srcdir (without _build*, .git, node_modules)"
mkdir -p "$srcdir"
tar -C "$top" -cf - \
    --exclude='./_build*' \
    --exclude='.git' \
    --exclude='node_modules' \
    --exclude='__pycache__' \
    --exclude='*.pyc' \
    . | tar -C "$srcdir" -xf -
mv "$srcdir/packaging/debian" "$srcdir/debian"

say "Installing the Build-Depends${profiles:+ (build profiles: $profiles)}"
apt-get build-dep -y -q --no-install-recommends ${profiles:+-P "$profiles"} "$srcdir"

say "Building the source package sofia-ws $version (for lintian and autopkgtest)"
(cd "$stage" && dpkg-source -b "sofia-ws-$version")

build_options=$(printf '%s' "${DEB_BUILD_OPTIONS:-}" | tr ' ' '\n' | grep -v '^parallel=' | tr '\n' ' ' || true)
export DEB_BUILD_OPTIONS="${build_options}parallel=2"
say "Building the binary packages (DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS)"
(cd "$srcdir" && dpkg-buildpackage -us -uc -b ${profiles:+-P"$profiles"})

dsc="$stage/sofia-ws_$version.dsc"
changes="$stage/sofia-ws_${version}_$arch.changes"
[ -f "$changes" ] || die "dpkg-buildpackage did not produce $changes"

say "Running lintian on $(basename "$dsc") and $(basename "$changes")"
lintian_log="$stage/lintian.log"
lintian_rc=0
lintian --fail-on error,warning "$dsc" "$changes" >"$lintian_log" 2>&1 || lintian_rc=$?
cat "$lintian_log"
if grep -q '^[EW]: ' "$lintian_log" || [ "$lintian_rc" != 0 ]; then
    die "lintian reported errors or warnings (exit status $lintian_rc)"
fi
say "lintian: no errors, no warnings"

say "Copying the packages to $outdir"
rm -f "$outdir"/libsofia-ws-*.deb "$outdir"/gir1.2-sofiaws-*.deb "$outdir"/sofia-ws*.deb \
      "$outdir"/sofia-ws_*.changes "$outdir"/sofia-ws_*.buildinfo \
      "$outdir"/sofia-ws_*.dsc "$outdir"/sofia-ws_*.tar.*
# The .changes lists every file of the build; copy exactly those.
files=$(sed -n '/^Files:/,/^[^ ]/s/^ [0-9a-f]\{32\} [0-9]* [^ ]* [^ ]* //p' "$changes")
for f in $files; do
    cp "$stage/$f" "$outdir/"
done
cp "$changes" "$dsc" "$stage/sofia-ws_$version.tar.xz" "$outdir/"
ls -l "$outdir"

if [ "${SOFIA_WS_AUTOPKGTEST:-0}" = 1 ]; then
    say "Running the autopkgtests (null runner, on this machine)"
    autopkgtest "$outdir/$(basename "$changes")" "$srcdir" -- null
fi

say "Done: sofia-ws $version packages are in $outdir"
