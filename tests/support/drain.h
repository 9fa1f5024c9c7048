/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Runs the thread-default main context until it has had nothing to do for 100 ms (10 s at
 * the most), so that what transports and listeners close in the background (libwebsockets
 * contexts torn down on the loop) is finished before a test checks for leaks. */
void test_drain_main_context (void);

G_END_DECLS
