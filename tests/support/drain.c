/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "drain.h"

void
test_drain_main_context (void)
{
  GMainContext *context = g_main_context_get_thread_default ();
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  gint64 quiet_since = g_get_monotonic_time ();

  while (g_get_monotonic_time () - quiet_since < 100 * 1000 && g_get_monotonic_time () < deadline)
    {
      if (g_main_context_iteration (context, FALSE))
        quiet_since = g_get_monotonic_time ();
      else
        g_usleep (1000);
    }
}
