/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* tests/interop/node/ws-probe.mjs, a WebSocket client on Node's `ws` package that plays one
 * scripted case against a server this process serves and prints a report (a key file, group
 * "probe"). */

/* Whether tests/interop/node has @package in its node_modules; if not, the test is skipped
 * with the reason (run `npm ci` there) and FALSE is returned. */
gboolean  test_node_package_available (const char *package);

/* Whether the probe can run (tests/interop/node has its node_modules); if not, the test is
 * skipped with the reason and FALSE is returned. */
gboolean  test_ws_probe_available (void);

/* Runs the probe's @case_name against @url, with the extra arguments that follow
 * (NULL-terminated), iterating the thread-default main context meanwhile (at most 30 s), and
 * returns its report. Fails the test when it prints none. */
GKeyFile *test_ws_probe           (const char *url,
                                   const char *case_name,
                                   ...) G_GNUC_NULL_TERMINATED;

G_END_DECLS
