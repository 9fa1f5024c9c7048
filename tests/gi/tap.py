# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs test functions and reports them as TAP, for the GI test scripts."""
import sys
import traceback


def run(tests):
    """Runs each function of @tests; prints TAP; returns the exit status."""
    print(f"1..{len(tests)}")
    failed = 0
    for number, test in enumerate(tests, 1):
        try:
            test()
            print(f"ok {number} {test.__name__}")
        except Exception:  # noqa: BLE001 - every failure is reported as TAP
            failed += 1
            print(f"not ok {number} {test.__name__}")
            for line in traceback.format_exc().splitlines():
                print(f"# {line}")
        sys.stdout.flush()
    return 1 if failed else 0
