#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs the fuzzer FUZZER (with $FUZZ_PRELOAD, the ASan runtime, preloaded: clang links the
# fuzzer's libstdc++ before it, and ASan must come first) with its seed corpus SEEDS, writing what it finds to a fresh directory
# (never into the source tree), then removes it; exits with the fuzzer's status (non-zero on a
# crash, leak, undefined behaviour or timeout; the crashing input is left in $PWD as crash-*).
#   run-fuzz.sh FUZZER SEEDS [libFuzzer options...]
set -eu
fuzzer=$1 seeds=$2
shift 2
name=$(basename "$fuzzer")
work=$(mktemp -d "${TMPDIR:-/tmp}/$name-XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0
env ${FUZZ_PRELOAD:+LD_PRELOAD="$FUZZ_PRELOAD"} "$fuzzer" "$@" "$work" "$seeds" || status=$?
# libFuzzer's status for a finding (a leak, -error_exitcode) is 77, which meson reads as a skip.
[ "$status" -ne 77 ] || status=1
echo "$name: $(ls "$work" | wc -l) new inputs in this run; exit $status"
exit "$status"
