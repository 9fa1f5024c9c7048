/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "outcome.h"

typedef gboolean (*FinishFunc) (SofiaWsTransport *self, GAsyncResult *result, GError **error);

static void
finish (FinishFunc    func,
        GObject      *source,
        GAsyncResult *result,
        Outcome      *o)
{
  g_assert_false (o->done);
  o->ok = func (SOFIA_WS_TRANSPORT (source), result, &o->error);
  g_assert_true (o->ok == (o->error == NULL));
  o->done = TRUE;
}

void
on_connect_done (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  finish (sofia_ws_transport_connect_finish, source, result, user_data);
}

void
on_disconnect_done (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  finish (sofia_ws_transport_disconnect_finish, source, result, user_data);
}

void
on_send_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  finish (sofia_ws_transport_send_finish, source, result, user_data);
}
