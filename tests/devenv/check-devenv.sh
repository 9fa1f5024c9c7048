#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# `meson devenv -C BUILD` runs the build tree's programs with nothing set by hand: the
# registrar (from PATH, loading the module of this build) serves ws, and the Python example
# (the library and typelib of this build) gets a 200 for its OPTIONS. TAP output.
#   check-devenv.sh BUILD-DIR SOURCE-DIR
set -u
build=$1
src=$2
work=$(mktemp -d)
registrar_pid=
status=0
cleanup() {
  # meson devenv stays the registrar's parent: stop the registrar (its child) by PID, then it.
  if [ -n "$registrar_pid" ]; then
    for child in $(pgrep -P "$registrar_pid"); do kill "$child" 2>/dev/null; done
    kill "$registrar_pid" 2>/dev/null
    wait "$registrar_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "1..3"
# Outside the tree, with none of the variables the build would need.
cd "$work"
env -u SOFIA_WS_PLUGIN_DIR -u LD_LIBRARY_PATH -u GI_TYPELIB_PATH -u SOFIA_DEBUG \
  meson devenv -C "$build" sofia-ws-registrar --listen 'sip:127.0.0.1:0;transport=ws' \
  >"$work/registrar.out" 2>&1 &
registrar_pid=$!
url=
for _ in $(seq 1 100); do
  url=$(sed -n 's/^listening sip:\([0-9.]*\):\([0-9]*\);transport=ws$/ws:\/\/\1:\2\//p' \
        "$work/registrar.out")
  [ -n "$url" ] && break
  sleep 0.1
done
if [ -n "$url" ]; then
  echo "ok 1 - the registrar runs from meson devenv's PATH with this build's module ($url)"
else
  echo "not ok 1 - the registrar did not start under meson devenv"
  sed 's/^/# /' "$work/registrar.out"
  echo "not ok 2 - the registrar printed more than its listening lines # no registrar"
  echo "not ok 3 - OPTIONS from the Python example # no registrar"
  exit 1
fi
# Only its "listening" lines: Sofia's GLib glue stays quiet unless SOFIA_DEBUG is set.
if grep -v '^listening ' "$work/registrar.out" >"$work/noise"; then
  echo "not ok 2 - the registrar printed more than its listening lines at start"
  sed 's/^/# /' "$work/noise"
  status=1
else
  echo "ok 2 - the registrar printed only its listening lines at start"
fi
if env -u SOFIA_WS_PLUGIN_DIR -u LD_LIBRARY_PATH -u GI_TYPELIB_PATH \
   meson devenv -C "$build" /usr/bin/python3 "$src/examples/ws-options.py" "$url" \
   >"$work/client.out" 2>&1; then
  echo "ok 3 - the Python example gets 200 through this build's typelib and library"
else
  echo "not ok 3 - the Python example failed under meson devenv"
  sed 's/^/# /' "$work/client.out"
  exit 1
fi
exit $status
