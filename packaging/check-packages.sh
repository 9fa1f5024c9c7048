#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The Debian packages, end to end, as a TAP test (meson suite 'packaging', run by ./run test):
# build them with packaging/build-deb.sh (lintian must be clean), install them with apt,
# run the autopkgtests, the GI example test and the demo against the installed files (no
# build tree on any path), purge them and check that nothing is left. Needs root, for apt.
#
# The package build itself skips the test suites (nocheck): ./run test has just run them.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
n=0
failed=0

ok () {
    n=$((n + 1))
    printf 'ok %d %s\n' "$n" "$1"
}

not_ok () {
    n=$((n + 1))
    failed=$((failed + 1))
    printf 'not ok %d %s\n' "$n" "$1"
    sed 's/^/# /' "$2"
}

step () {
    name=$1
    shift
    if "$@" >"$log" 2>&1; then ok "$name"; else not_ok "$name" "$log"; fi
}

if [ "$(id -u)" != 0 ]; then
    echo "1..0 # SKIP installing packages needs root"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sofia-ws-packages.XXXXXXXX")
log="$work/step.log"
trap 'rm -rf "$work"' EXIT INT TERM HUP
packages="libsofia-ws-1.0-0 libsofia-ws-dev gir1.2-sofiaws-1.0 sofia-ws-plugin libsofia-ws-doc"

echo "1..11"

step "the packages build and lintian is clean" \
    env DEB_BUILD_OPTIONS=nocheck DEB_BUILD_PROFILES=nocheck "$top/packaging/build-deb.sh" "$work/debs"

debs=$(ls "$work"/debs/libsofia-ws-1.0-0_*.deb "$work"/debs/libsofia-ws-dev_*.deb \
          "$work"/debs/gir1.2-sofiaws-1.0_*.deb "$work"/debs/sofia-ws-plugin_*.deb \
          "$work"/debs/libsofia-ws-doc_*.deb 2>/dev/null)
# shellcheck disable=SC2086 # the file names have no spaces
step "apt installs the packages" \
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $debs

for t in c-api python-gi gjs-gi registrar-ws; do
    step "autopkgtest $t against the installed packages" \
        env AUTOPKGTEST_TMP="$work" "$top/packaging/debian/tests/$t"
done

# The API reference: the GObject classes and the page of the Sofia-SIP side, with its tags.
step "the API reference is installed (GObject API and the Sofia-SIP page)" \
    sh -c 'd=/usr/share/doc/sofia-ws-1.0 && test -f $d/index.html &&
           test -f $d/class.WebSocket.html && test -f $d/class.Listener.html &&
           grep -q sofia_ws_tport_add_listener $d/sofia-tport.html &&
           grep -q WSTAG_MAX_CONNECTIONS $d/sofia-tport.html'

step "the GI example test against the installed library and typelib" \
    env -u GI_TYPELIB_PATH -u LD_LIBRARY_PATH G_TEST_SRCDIR="$top/tests" \
    /usr/bin/python3 "$top/tests/gi/test-example.py"

# The demo as users run it once the packages are installed: /usr/bin/sofia-ws-registrar with
# the installed module, bob on the installed typelib, alice on SIP.js (npm ci has run).
step "the demo against the installed registrar, module and typelib" \
    env -u GI_TYPELIB_PATH -u LD_LIBRARY_PATH -u SOFIA_WS_PLUGIN_DIR -u SOFIA_WS_REGISTRAR \
    /usr/bin/python3 "$top/examples/demo/demo.py" --registrar /usr/bin/sofia-ws-registrar \
    --node-dir "$top/tests/interop/node"

# shellcheck disable=SC2086
step "apt purges the packages" \
    env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $packages

leftovers () {
    for p in $packages; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed'; then
            echo "still installed: $p"
        fi
    done
    ls -d /usr/include/sofia-ws-1.0 /usr/lib/*/libsofia-ws-1.0.so* \
          /usr/lib/*/pkgconfig/sofia-ws-1.0.pc /usr/lib/*/girepository-1.0/SofiaWs-1.0.typelib \
          /usr/share/gir-1.0/SofiaWs-1.0.gir /usr/lib/*/sofia-ws-1.0 /usr/bin/sofia-ws-registrar \
          /usr/bin/sofia-ws-edge /usr/share/man/man1/sofia-ws-edge.1.gz /etc/sofia-ws \
          /lib/systemd/system/sofia-ws-edge.service \
          /usr/share/man/man1/sofia-ws-registrar.1.gz /usr/share/doc/sofia-ws-1.0 \
          /usr/share/devhelp/books/sofia-ws-1.0 2>/dev/null | sed 's/^/left behind: /'
}
leftovers >"$log" 2>&1
if [ -s "$log" ]; then not_ok "nothing is left after the purge" "$log"; else ok "nothing is left after the purge"; fi

[ "$failed" = 0 ]
