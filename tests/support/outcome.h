/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sofia-ws/sofia-ws.h>

G_BEGIN_DECLS

/* The outcome of one async call of the transport contract, for tests that wait on it. */
typedef struct {
  gboolean done;
  gboolean ok;
  GError *error;
} Outcome;

/* GAsyncReadyCallbacks for sofia_ws_transport_{connect,disconnect,send}_async() with an
 * Outcome * as user data: they finish the call, assert it completes once and that it failed
 * exactly when it set an error, and set done. */
void on_connect_done    (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data);
void on_disconnect_done (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data);
void on_send_done       (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data);

G_END_DECLS
