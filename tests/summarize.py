#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Counts the results of `meson test` runs from their JSON logs.

Every TAP test point counts once; a test that ended badly (crash, timeout, bail out, non-zero
exit) without a failing point counts as one failure of its own, so nothing is hidden.
Prints the failures, then `N passed, N failed` (and `, N skipped`). Exit 1 if anything failed.
"""
import json
import re
import sys

TAP_POINT = re.compile(r"^(not ok|ok)\b(.*)$")
SKIP = re.compile(r"#\s*skip", re.IGNORECASE)
# A TAP TODO point ("not ok N # TODO reason") is a known, declared gap: counted as skipped,
# never as passed.
TODO = re.compile(r"#\s*todo", re.IGNORECASE)


def count(logs):
    passed = failed = skipped = 0
    failures = []
    for label, path in logs:
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except OSError as e:
            failures.append(f"{label}: no test log ({e})")
            failed += 1
            continue
        for line in lines:
            test = json.loads(line)
            name = f"{label}{test['name']}"
            points = 0
            bad_points = 0
            for out in (test.get("stdout") or "").splitlines():
                m = TAP_POINT.match(out)
                if not m:
                    continue
                points += 1
                if TODO.search(m.group(2)):
                    skipped += 1
                elif m.group(1) == "not ok":
                    bad_points += 1
                    failed += 1
                    failures.append(f"{name}: {out}")
                elif SKIP.search(m.group(2)):
                    skipped += 1
                else:
                    passed += 1
            result = test["result"]
            if result == "SKIP" and points == 0:
                skipped += 1
            elif result not in ("OK", "SKIP", "EXPECTEDFAIL") and bad_points == 0:
                failed += 1
                failures.append(f"{name}: {result} (exit {test.get('returncode')})")
            elif result == "OK" and points == 0:
                passed += 1
    return passed, failed, skipped, failures


def main(argv):
    logs = []
    for arg in argv[1:]:
        label, _, path = arg.rpartition("=")
        logs.append((f"{label} " if label else "", path))
    passed, failed, skipped, failures = count(logs)
    for failure in failures:
        print(f"FAILED {failure}")
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
