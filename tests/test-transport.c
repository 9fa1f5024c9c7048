/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SIP.js Transport contract (SofiaWsTransport) on the in-memory pair: every rule of
 * sofia-ws-transport.h, every signal with its arguments and order. */
#include <sofia-ws/sofia-ws.h>

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "support/memory-transport.h"
#include "support/outcome.h"

typedef struct {
  MemoryTransport *a;
  MemoryTransport *b;
  MemoryKnobs *ka;
  GString *events;               /* "connecting,connected,..." as emitted by a */
  GPtrArray *errors;             /* GError* carried by a's transport-error */
  GPtrArray *received;           /* messages b received */
  GPtrArray *sent;               /* a's message-sent arguments */
  guint state_notifies;
} Fixture;

static void
record (Fixture    *f,
        const char *event)
{
  if (f->events->len > 0)
    g_string_append_c (f->events, ',');
  g_string_append (f->events, event);
}

static void
on_connecting (SofiaWsTransport *t, Fixture *f)
{
  g_assert_cmpint (sofia_ws_transport_get_state (t), ==, SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  record (f, "connecting");
}

static void
on_connected (SofiaWsTransport *t, Fixture *f)
{
  g_assert_cmpint (sofia_ws_transport_get_state (t), ==, SOFIA_WS_TRANSPORT_STATE_CONNECTED);
  g_assert_true (sofia_ws_transport_is_connected (t));
  record (f, "connected");
}

static void
on_disconnecting (SofiaWsTransport *t, Fixture *f)
{
  g_assert_cmpint (sofia_ws_transport_get_state (t), ==, SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);
  record (f, "disconnecting");
}

static void
on_disconnected (SofiaWsTransport *t, Fixture *f)
{
  g_assert_cmpint (sofia_ws_transport_get_state (t), ==, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  g_assert_false (sofia_ws_transport_is_connected (t));
  record (f, "disconnected");
}

static void
on_message_sent (SofiaWsTransport *t, const char *message, Fixture *f)
{
  g_ptr_array_add (f->sent, g_strdup (message));
  record (f, "message-sent");
}

static void
on_transport_error (SofiaWsTransport *t, const GError *error, Fixture *f)
{
  g_assert_nonnull (error);
  g_ptr_array_add (f->errors, g_error_copy (error));
  record (f, "transport-error");
}

static void
on_b_message (SofiaWsTransport *t, const char *message, Fixture *f)
{
  g_ptr_array_add (f->received, g_strdup (message));
}

static void
on_state_notify (GObject *object, GParamSpec *pspec, Fixture *f)
{
  f->state_notifies++;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  memory_transport_new_pair (&f->a, &f->b);
  f->ka = memory_transport_knobs (f->a);
  f->events = g_string_new (NULL);
  f->errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  f->received = g_ptr_array_new_with_free_func (g_free);
  f->sent = g_ptr_array_new_with_free_func (g_free);

  g_signal_connect (f->a, "connecting", G_CALLBACK (on_connecting), f);
  g_signal_connect (f->a, "connected", G_CALLBACK (on_connected), f);
  g_signal_connect (f->a, "disconnecting", G_CALLBACK (on_disconnecting), f);
  g_signal_connect (f->a, "disconnected", G_CALLBACK (on_disconnected), f);
  g_signal_connect (f->a, "message-sent", G_CALLBACK (on_message_sent), f);
  g_signal_connect (f->a, "transport-error", G_CALLBACK (on_transport_error), f);
  g_signal_connect (f->a, "notify::state", G_CALLBACK (on_state_notify), f);
  g_signal_connect (f->b, "message", G_CALLBACK (on_b_message), f);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  /* Let pending idles and timeouts of the pair run out, then check nothing leaked. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_signal_handlers_disconnect_by_data (f->a, f);
  g_signal_handlers_disconnect_by_data (f->b, f);
  g_assert_finalize_object (f->a);
  g_assert_finalize_object (f->b);
  g_string_free (f->events, TRUE);
  g_ptr_array_unref (f->errors);
  g_ptr_array_unref (f->received);
  g_ptr_array_unref (f->sent);
}

static void
outcome_clear (Outcome *o)
{
  g_clear_error (&o->error);
}

static void
on_after_connected_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Outcome *o = user_data;

  g_assert_false (o->done);
  o->ok = sofia_ws_transport_after_connected_finish (SOFIA_WS_TRANSPORT (source), result,
                                                     &o->error);
  g_assert_true (o->ok == (o->error == NULL));
  o->done = TRUE;
}

static void
wait_for (Outcome *o)
{
  while (!o->done)
    g_main_context_iteration (NULL, TRUE);
}

static gboolean
set_flag (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
wait_ms (guint ms)
{
  gboolean fired = FALSE;

  g_timeout_add (ms, set_flag, &fired);
  while (!fired)
    g_main_context_iteration (NULL, TRUE);
}

/* "At once" means: not from inside the call, but without waiting for any timer. */
static void
assert_completes_without_waiting (Outcome *o)
{
  g_assert_false (o->done);
  for (guint i = 0; i < 3 && !o->done; i++)
    g_main_context_iteration (NULL, FALSE);
  g_assert_true (o->done);
}

static void
connect_and_wait (SofiaWsTransport *t)
{
  Outcome o = { 0 };

  sofia_ws_transport_connect_async (t, NULL, NULL, on_connect_done, &o);
  wait_for (&o);
  g_assert_no_error (o.error);
  g_assert_true (o.ok);
}

static void
assert_events (Fixture *f, const char *expected)
{
  g_assert_cmpstr (f->events->str, ==, expected);
}

static void
reset_events (Fixture *f)
{
  g_string_truncate (f->events, 0);
  g_ptr_array_set_size (f->errors, 0);
  g_ptr_array_set_size (f->sent, 0);
  f->state_notifies = 0;
}

/* ---- basics -------------------------------------------------------------------------- */

static void
test_initial_state (Fixture *f, gconstpointer data)
{
  SofiaWsTransportState state = -1;

  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (f->a)), ==,
                   SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  g_assert_false (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->a)));
  g_object_get (f->a, "state", &state, NULL);
  g_assert_cmpint (state, ==, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  assert_events (f, "");
}

static void
test_connect (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };
  SofiaWsTransportState state;

  f->ka->connect_delay_ms = 5;
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &o);
  /* connecting is emitted by the call itself, as SIP.js does. */
  assert_events (f, "connecting");
  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (f->a)), ==,
                   SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  wait_for (&o);

  g_assert_no_error (o.error);
  g_assert_true (o.ok);
  assert_events (f, "connecting,connected");
  g_assert_cmpuint (f->state_notifies, ==, 2);
  g_assert_cmpuint (f->ka->connect_calls, ==, 1);
  g_object_get (f->a, "state", &state, NULL);
  g_assert_cmpint (state, ==, SOFIA_WS_TRANSPORT_STATE_CONNECTED);
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->a)));
}

static void
test_connect_joins_pending (Fixture *f, gconstpointer data)
{
  Outcome o1 = { 0 }, o2 = { 0 };

  f->ka->connect_delay_ms = 10;
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &o1);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &o2);
  wait_for (&o1);
  /* Both complete together. */
  g_assert_true (o2.done);

  g_assert_true (o1.ok);
  g_assert_true (o2.ok);
  g_assert_cmpuint (f->ka->connect_calls, ==, 1);
  assert_events (f, "connecting,connected");
}

static void
test_connect_failure_joined (Fixture *f, gconstpointer data)
{
  Outcome o1 = { 0 }, o2 = { 0 };
  const GError *carried;

  f->ka->connect_delay_ms = 5;
  f->ka->connect_error = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECT_TIMEOUT,
                                              "Connection timeout");
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &o1);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &o2);
  wait_for (&o1);
  wait_for (&o2);

  g_assert_error (o1.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECT_TIMEOUT);
  g_assert_error (o2.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECT_TIMEOUT);
  assert_events (f, "connecting,transport-error,disconnected");
  g_assert_cmpuint (f->errors->len, ==, 1);
  carried = g_ptr_array_index (f->errors, 0);
  g_assert_error (carried, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECT_TIMEOUT);
  g_assert_cmpstr (carried->message, ==, "Connection timeout");
  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (f->a)), ==,
                   SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  outcome_clear (&o1);
  outcome_clear (&o2);

  /* The transport can connect again afterwards. */
  g_clear_error (&f->ka->connect_error);
  reset_events (f);
  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  assert_events (f, "connecting,connected");
}

static void
test_connect_while_connected (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);

  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &o);
  assert_completes_without_waiting (&o);
  g_assert_true (o.ok);
  g_assert_cmpuint (f->ka->connect_calls, ==, 1);
  assert_events (f, "");
}

static void
test_connect_override_event (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };

  /* The implementation announces CONNECTED itself, 30 ms after its finish reported
   * override_event: the base class must wait for it instead of emitting `connected`. */
  f->ka->override_connect = TRUE;
  f->ka->override_connect_late_ms = 30;
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &o);
  while (f->ka->connect_calls == 0 || g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
  g_assert_false (o.done);
  assert_events (f, "connecting");
  wait_for (&o);
  g_assert_true (o.ok);
  assert_events (f, "connecting,connected");
}

static void
test_connect_override_event_immediate (Fixture *f, gconstpointer data)
{
  f->ka->override_connect = TRUE;
  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  /* Emitted once, by the implementation. */
  assert_events (f, "connecting,connected");
}

static void
test_connect_options_passed (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };
  GVariantDict dict;
  const char *server = NULL;

  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "server", "s", "ws://127.0.0.1:1/");
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), g_variant_dict_end (&dict), NULL,
                                    on_connect_done, &o);
  wait_for (&o);
  g_assert_nonnull (f->ka->last_connect_options);
  g_assert_true (g_variant_lookup (f->ka->last_connect_options, "server", "&s", &server));
  g_assert_cmpstr (server, ==, "ws://127.0.0.1:1/");
}

/* ---- disconnect ---------------------------------------------------------------------- */

static void
test_disconnect (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };
  GVariantDict dict;
  guint16 code = 0;

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  connect_and_wait (SOFIA_WS_TRANSPORT (f->b));
  reset_events (f);

  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "code", "q", (guint16) 1000);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), g_variant_dict_end (&dict),
                                       NULL, on_disconnect_done, &o);
  assert_events (f, "disconnecting");
  wait_for (&o);
  g_assert_true (o.ok);
  /* A user-requested disconnect emits `disconnected` (SIP.js 0.11; 0.13-0.15 lost it). */
  assert_events (f, "disconnecting,disconnected");
  g_assert_cmpuint (f->errors->len, ==, 0);
  g_assert_cmpuint (f->ka->disconnect_calls, ==, 1);
  g_assert_true (g_variant_lookup (f->ka->last_disconnect_options, "code", "q", &code));
  g_assert_cmpuint (code, ==, 1000);
  g_assert_false (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->a)));
  /* The peer saw the close as a drop. */
  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (f->b)), ==,
                   SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
}

static void
test_disconnect_while_disconnected (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };

  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL,
                                       on_disconnect_done, &o);
  assert_completes_without_waiting (&o);
  g_assert_true (o.ok);
  assert_events (f, "");
  g_assert_cmpuint (f->ka->disconnect_calls, ==, 0);
}

static void
test_disconnect_joins_pending (Fixture *f, gconstpointer data)
{
  Outcome o1 = { 0 }, o2 = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  f->ka->disconnect_delay_ms = 10;
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL,
                                       on_disconnect_done, &o1);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL,
                                       on_disconnect_done, &o2);
  wait_for (&o1);
  wait_for (&o2);
  g_assert_true (o1.ok);
  g_assert_true (o2.ok);
  g_assert_cmpuint (f->ka->disconnect_calls, ==, 1);
  assert_events (f, "disconnecting,disconnected");
}

static void
test_disconnect_while_connecting (Fixture *f, gconstpointer data)
{
  Outcome c = { 0 }, d = { 0 };

  f->ka->connect_delay_ms = 50;
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &c);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL,
                                       on_disconnect_done, &d);
  wait_for (&c);
  wait_for (&d);

  g_assert_error (c.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
  g_assert_true (d.ok);
  g_assert_true (f->ka->connect_saw_cancel);
  assert_events (f, "connecting,disconnecting,disconnected");
  g_assert_cmpuint (f->errors->len, ==, 0);
  outcome_clear (&c);
}

static void
test_disconnect_override_event (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  f->ka->override_disconnect = TRUE;
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL,
                                       on_disconnect_done, &o);
  wait_for (&o);
  g_assert_true (o.ok);
  assert_events (f, "disconnecting,disconnected");
}

static void
test_disconnect_failure (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  f->ka->disconnect_error = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_PEER_TIMEOUT,
                                                 "No close frame from the peer");
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL,
                                       on_disconnect_done, &o);
  wait_for (&o);
  g_assert_error (o.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_PEER_TIMEOUT);
  assert_events (f, "disconnecting,transport-error,disconnected");
  g_assert_false (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->a)));
  outcome_clear (&o);
}

static void
test_connect_while_disconnecting (Fixture *f, gconstpointer data)
{
  Outcome c = { 0 }, d = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  f->ka->disconnect_delay_ms = 20;
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL,
                                       on_disconnect_done, &d);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &c);
  wait_for (&c);
  g_assert_true (d.done);
  g_assert_true (d.ok);
  g_assert_true (c.ok);
  assert_events (f, "disconnecting,disconnected,connecting,connected");
  g_assert_cmpuint (f->ka->connect_calls, ==, 2);
}

static void
test_disconnect_supersedes_queued_connect (Fixture *f, gconstpointer data)
{
  Outcome d1 = { 0 }, c = { 0 }, d2 = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  f->ka->disconnect_delay_ms = 20;
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL,
                                       on_disconnect_done, &d1);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &c);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL,
                                       on_disconnect_done, &d2);
  wait_for (&d1);
  wait_for (&d2);
  wait_for (&c);
  g_assert_error (c.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
  g_assert_true (d1.ok && d2.ok);
  assert_events (f, "disconnecting,disconnected");
  g_assert_cmpuint (f->ka->connect_calls, ==, 1);
  outcome_clear (&c);
}

/* ---- send and receive ---------------------------------------------------------------- */

static const char options_request[] =
  "OPTIONS sip:b@example.invalid SIP/2.0\r\n"
  "Via: SIP/2.0/WS a.invalid;branch=z9hG4bK776asdhds\r\n"
  "Max-Forwards: 70\r\n"
  "To: <sip:b@example.invalid>\r\n"
  "From: <sip:a@example.invalid>;tag=1928301774\r\n"
  "Call-ID: a84b4c76e66710\r\n"
  "CSeq: 63104 OPTIONS\r\n"
  "Content-Length: 0\r\n\r\n";

static void
test_send (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };
  GVariantDict dict;
  gboolean force = FALSE;

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  connect_and_wait (SOFIA_WS_TRANSPORT (f->b));
  reset_events (f);

  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "force", "b", TRUE);
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->a), options_request,
                                 g_variant_dict_end (&dict), NULL, on_send_done, &o);
  wait_for (&o);
  g_assert_true (o.ok);
  assert_events (f, "message-sent");
  g_assert_cmpstr (g_ptr_array_index (f->sent, 0), ==, options_request);
  /* Options reach the implementation, unlike SIP.js 0.11-0.15. */
  g_assert_true (g_variant_lookup (f->ka->last_send_options, "force", "b", &force));
  g_assert_true (force);

  while (f->received->len == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpstr (g_ptr_array_index (f->received, 0), ==, options_request);
}

static void
test_send_not_connected (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };
  const GError *carried;

  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->a), options_request, NULL, NULL,
                                 on_send_done, &o);
  /* transport-error is emitted by the call, the failure reaches the callback later. */
  assert_events (f, "transport-error");
  g_assert_false (o.done);
  wait_for (&o);
  g_assert_error (o.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_NOT_CONNECTED);
  carried = g_ptr_array_index (f->errors, 0);
  g_assert_error (carried, SOFIA_WS_ERROR, SOFIA_WS_ERROR_NOT_CONNECTED);
  g_assert_cmpuint (f->ka->send_calls, ==, 0);
  assert_events (f, "transport-error");
  outcome_clear (&o);
}

static void
test_send_override_event (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  connect_and_wait (SOFIA_WS_TRANSPORT (f->b));
  reset_events (f);
  /* The implementation reports override_event and emits nothing: nothing is emitted. */
  f->ka->override_send = TRUE;
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->a), options_request, NULL, NULL,
                                 on_send_done, &o);
  wait_for (&o);
  g_assert_true (o.ok);
  assert_events (f, "");
  g_assert_cmpuint (f->ka->send_calls, ==, 1);
}

static void
test_send_failure (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  connect_and_wait (SOFIA_WS_TRANSPORT (f->b));
  reset_events (f);
  f->ka->send_error = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_QUEUE_FULL,
                                           "Send queue full");
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->a), options_request, NULL, NULL,
                                 on_send_done, &o);
  wait_for (&o);
  g_assert_error (o.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_QUEUE_FULL);
  assert_events (f, "");
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->a)));
  outcome_clear (&o);
}

static void
test_peer_drop (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                                 "WebSocket closed (code: 1006)");
  const GError *carried;

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  memory_transport_drop (f->a, error);
  assert_events (f, "transport-error,disconnected");
  carried = g_ptr_array_index (f->errors, 0);
  g_assert_error (carried, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
  g_assert_cmpstr (carried->message, ==, "WebSocket closed (code: 1006)");
}

static void
test_message_while_disconnected_is_a_bug (Fixture *f, gconstpointer data)
{
  g_test_expect_message ("SofiaWs", G_LOG_LEVEL_CRITICAL, "*assertion*state*failed*");
  sofia_ws_transport_emit_message (SOFIA_WS_TRANSPORT (f->b), options_request);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (f->received->len, ==, 0);
}

/* ---- afterConnected ------------------------------------------------------------------ */

static void
test_after_connected_before_connect (Fixture *f, gconstpointer data)
{
  Outcome a = { 0 }, c = { 0 };

  sofia_ws_transport_after_connected_async (SOFIA_WS_TRANSPORT (f->a), NULL,
                                            on_after_connected_done, &a);
  wait_ms (5);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_false (a.done);

  /* A failed attempt does not end the wait (SIP.js: once("connected")). */
  f->ka->connect_error = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECTION_REFUSED,
                                              "refused");
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &c);
  wait_for (&c);
  outcome_clear (&c);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_false (a.done);

  g_clear_error (&f->ka->connect_error);
  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  wait_for (&a);
  g_assert_true (a.ok);
}

static void
test_after_connected_when_connected (Fixture *f, gconstpointer data)
{
  Outcome a = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  sofia_ws_transport_after_connected_async (SOFIA_WS_TRANSPORT (f->a), NULL,
                                            on_after_connected_done, &a);
  assert_completes_without_waiting (&a);
  g_assert_true (a.ok);
}

static void
test_after_connected_cancel (Fixture *f, gconstpointer data)
{
  Outcome a = { 0 };
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  sofia_ws_transport_after_connected_async (SOFIA_WS_TRANSPORT (f->a), cancellable,
                                            on_after_connected_done, &a);
  g_cancellable_cancel (cancellable);
  wait_for (&a);
  g_assert_error (a.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  outcome_clear (&a);
  /* A later connect does not complete it twice (on_after_connected_done asserts). */
  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
}

/* ---- cancellation -------------------------------------------------------------------- */

static void
test_cancel_only_caller (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  f->ka->connect_delay_ms = 50;
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, cancellable,
                                    on_connect_done, &o);
  g_cancellable_cancel (cancellable);
  wait_for (&o);
  g_assert_error (o.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  outcome_clear (&o);

  /* The attempt is abandoned: state back to DISCONNECTED, without a transport-error. */
  while (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (f->a)) !=
         SOFIA_WS_TRANSPORT_STATE_DISCONNECTED)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (f->ka->connect_saw_cancel);
  assert_events (f, "connecting,disconnected");
}

static void
test_cancel_one_of_two (Fixture *f, gconstpointer data)
{
  Outcome o1 = { 0 }, o2 = { 0 };
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  f->ka->connect_delay_ms = 20;
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, cancellable,
                                    on_connect_done, &o1);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &o2);
  g_cancellable_cancel (cancellable);
  wait_for (&o1);
  g_assert_error (o1.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (o2.done);
  wait_for (&o2);
  g_assert_true (o2.ok);
  g_assert_false (f->ka->connect_saw_cancel);
  assert_events (f, "connecting,connected");
  outcome_clear (&o1);
}

static void
test_cancel_before_call (Fixture *f, gconstpointer data)
{
  Outcome c = { 0 }, s = { 0 }, d = { 0 };
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  g_cancellable_cancel (cancellable);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, cancellable,
                                    on_connect_done, &c);
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->a), "x", NULL, cancellable,
                                 on_send_done, &s);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, cancellable,
                                       on_disconnect_done, &d);
  wait_for (&c);
  wait_for (&s);
  wait_for (&d);
  g_assert_error (c.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_error (s.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_error (d.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  assert_events (f, "");
  g_assert_cmpuint (f->ka->connect_calls, ==, 0);
  outcome_clear (&c);
  outcome_clear (&s);
  outcome_clear (&d);
}

static void
test_cancel_send (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  connect_and_wait (SOFIA_WS_TRANSPORT (f->b));
  reset_events (f);
  f->ka->send_delay_ms = 20;
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->a), options_request, NULL, cancellable,
                                 on_send_done, &o);
  g_cancellable_cancel (cancellable);
  wait_for (&o);
  g_assert_error (o.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  assert_events (f, "");
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->a)));
  outcome_clear (&o);
}

static void
test_cancel_disconnect_wait (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  f->ka->disconnect_delay_ms = 20;
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->a), NULL, cancellable,
                                       on_disconnect_done, &o);
  g_cancellable_cancel (cancellable);
  wait_for (&o);
  g_assert_error (o.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  outcome_clear (&o);
  /* Cancelling the wait does not stop the disconnect. */
  while (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (f->a)) !=
         SOFIA_WS_TRANSPORT_STATE_DISCONNECTED)
    g_main_context_iteration (NULL, TRUE);
  assert_events (f, "disconnecting,disconnected");
}

/* ---- transitions and re-entrancy ----------------------------------------------------- */

static void
test_illegal_transition (Fixture *f, gconstpointer data)
{
  g_test_expect_message ("SofiaWs", G_LOG_LEVEL_CRITICAL, "*transition_is_legal*");
  sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (f->a), SOFIA_WS_TRANSPORT_STATE_CONNECTED);
  g_test_assert_expected_messages ();
  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (f->a)), ==,
                   SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  assert_events (f, "");

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  g_test_expect_message ("SofiaWs", G_LOG_LEVEL_CRITICAL, "*transition_is_legal*");
  sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (f->a), SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  g_test_assert_expected_messages ();
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->a)));
  assert_events (f, "");
}

static void
test_all_legal_transitions (Fixture *f, gconstpointer data)
{
  SofiaWsTransport *t = SOFIA_WS_TRANSPORT (f->a);

  /* Every edge of SIP.js 0.21's table, driven by the implementation. */
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_CONNECTED);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_CONNECTED);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  assert_events (f, "connecting,disconnected,connecting,disconnecting,connecting,connected,"
                    "disconnected,connecting,connected,disconnecting,disconnected");
  g_assert_cmpuint (f->state_notifies, ==, 11);
}

static void
second_handler_sees_connected (SofiaWsTransport *t, Fixture *f)
{
  g_assert_cmpint (sofia_ws_transport_get_state (t), ==, SOFIA_WS_TRANSPORT_STATE_CONNECTED);
  record (f, "connected-2");
}

static void
disconnect_on_connected (SofiaWsTransport *t, Outcome *d)
{
  sofia_ws_transport_disconnect_async (t, NULL, NULL, on_disconnect_done, d);
  /* Deferred: this handler, and the ones after it, still see CONNECTED. */
  g_assert_cmpint (sofia_ws_transport_get_state (t), ==, SOFIA_WS_TRANSPORT_STATE_CONNECTED);
}

static void
test_reentrant_disconnect_in_connected (Fixture *f, gconstpointer data)
{
  Outcome c = { 0 }, d = { 0 };

  g_signal_connect (f->a, "connected", G_CALLBACK (disconnect_on_connected), &d);
  g_signal_connect (f->a, "connected", G_CALLBACK (second_handler_sees_connected), f);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, NULL, on_connect_done, &c);
  wait_for (&c);
  wait_for (&d);
  g_assert_true (c.ok);
  g_assert_true (d.ok);
  assert_events (f, "connecting,connected,connected-2,disconnecting,disconnected");
  g_signal_handlers_disconnect_by_func (f->a, disconnect_on_connected, &d);
}

typedef struct {
  Outcome reconnect;
  gboolean asked;
} Reconnector;

static void
reconnect_on_disconnected (SofiaWsTransport *t, Reconnector *r)
{
  if (r->asked)
    return;
  r->asked = TRUE;
  sofia_ws_transport_connect_async (t, NULL, NULL, on_connect_done, &r->reconnect);
  g_assert_cmpint (sofia_ws_transport_get_state (t), ==, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
}

static void
test_reentrant_reconnect_in_disconnected (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED, "gone");
  Reconnector r = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  g_signal_connect (f->a, "disconnected", G_CALLBACK (reconnect_on_disconnected), &r);
  memory_transport_drop (f->a, error);
  wait_for (&r.reconnect);
  g_assert_true (r.reconnect.ok);
  assert_events (f, "transport-error,disconnected,connecting,connected");
  g_signal_handlers_disconnect_by_func (f->a, reconnect_on_disconnected, &r);
}

static void
transition_in_handler (SofiaWsTransport *t, const char *message, Fixture *f)
{
  /* An implementation reacting to its own signal: applied after the emission. */
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);
  sofia_ws_transport_transition (t, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  g_assert_cmpint (sofia_ws_transport_get_state (t), ==, SOFIA_WS_TRANSPORT_STATE_CONNECTED);
  record (f, "handler-done");
}

static void
test_reentrant_transitions_in_order (Fixture *f, gconstpointer data)
{
  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  reset_events (f);
  g_signal_connect (f->a, "message-sent", G_CALLBACK (transition_in_handler), f);
  sofia_ws_transport_emit_message_sent (SOFIA_WS_TRANSPORT (f->a), "x");
  assert_events (f, "message-sent,handler-done,disconnecting,disconnected");
  g_signal_handlers_disconnect_by_func (f->a, transition_in_handler, f);
}

static void
send_on_connected (SofiaWsTransport *t, Outcome *s)
{
  sofia_ws_transport_send_async (t, options_request, NULL, NULL, on_send_done, s);
}

static void
test_send_from_connected_handler (Fixture *f, gconstpointer data)
{
  Outcome s = { 0 };

  connect_and_wait (SOFIA_WS_TRANSPORT (f->b));
  g_signal_connect (f->a, "connected", G_CALLBACK (send_on_connected), &s);
  connect_and_wait (SOFIA_WS_TRANSPORT (f->a));
  wait_for (&s);
  g_assert_true (s.ok);
  assert_events (f, "connecting,connected,message-sent");
  g_signal_handlers_disconnect_by_func (f->a, send_on_connected, &s);
}

static void
test_no_leak_with_pending_waiters_cancelled (Fixture *f, gconstpointer data)
{
  Outcome a = { 0 }, c = { 0 };
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  /* Waiters hold the transport; cancelling them releases it (teardown asserts finalize). */
  f->ka->connect_delay_ms = 200;
  sofia_ws_transport_after_connected_async (SOFIA_WS_TRANSPORT (f->a), cancellable,
                                            on_after_connected_done, &a);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->a), NULL, cancellable,
                                    on_connect_done, &c);
  g_cancellable_cancel (cancellable);
  wait_for (&a);
  wait_for (&c);
  outcome_clear (&a);
  outcome_clear (&c);
  while (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (f->a)) !=
         SOFIA_WS_TRANSPORT_STATE_DISCONNECTED)
    g_main_context_iteration (NULL, TRUE);
}

/* What exit() does to a program of libsofia-ws: libsofia-sip-ua's destructor deletes its
 * thread-specific key, and must not delete another library's (before libsofia-ws made Sofia
 * create its own key as it loads, Sofia deleted key 0: GLib's, and a GLib thread still running
 * while the process exited aborted in pthread_setspecific()). In a subprocess that ends with
 * _exit(): the destructor cannot run twice. */
extern void sofia_su_uniqueid_destructor (void);

#define KEYS_PROBED 256

static gboolean
key_is_valid (pthread_key_t key)
{
  return pthread_setspecific (key, pthread_getspecific (key)) == 0;
}

static void
test_exit_keeps_thread_keys (void)
{
  if (g_test_subprocess ())
    {
      gboolean before[KEYS_PROBED];
      guint lost = 0;

      for (pthread_key_t key = 0; key < KEYS_PROBED; key++)
        before[key] = key_is_valid (key);
      g_assert_true (before[0]);
      sofia_su_uniqueid_destructor ();
      for (pthread_key_t key = 0; key < KEYS_PROBED; key++)
        if (before[key] && !key_is_valid (key))
          {
            g_test_message ("the destructor deleted key %u", (unsigned) key);
            lost++;
            /* key 0 was made before libsofia-ws loaded: never Sofia's own */
            g_assert_cmpuint (key, !=, 0);
          }
      /* Sofia's own key, made when libsofia-ws loaded */
      g_assert_cmpuint (lost, ==, 1);
      /* not exit(): the destructor would run again, and close its random source twice */
      fflush (stdout);
      _exit (0);
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) \
  g_test_add ("/transport/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

  g_test_add_func ("/transport/library/exit-keeps-thread-keys", test_exit_keeps_thread_keys);
  ADD ("initial-state", test_initial_state);
  ADD ("connect", test_connect);
  ADD ("connect/joins-pending", test_connect_joins_pending);
  ADD ("connect/failure-joined", test_connect_failure_joined);
  ADD ("connect/while-connected", test_connect_while_connected);
  ADD ("connect/override-event", test_connect_override_event);
  ADD ("connect/override-event-immediate", test_connect_override_event_immediate);
  ADD ("connect/options-passed", test_connect_options_passed);
  ADD ("connect/while-disconnecting", test_connect_while_disconnecting);
  ADD ("disconnect", test_disconnect);
  ADD ("disconnect/while-disconnected", test_disconnect_while_disconnected);
  ADD ("disconnect/joins-pending", test_disconnect_joins_pending);
  ADD ("disconnect/while-connecting", test_disconnect_while_connecting);
  ADD ("disconnect/override-event", test_disconnect_override_event);
  ADD ("disconnect/failure", test_disconnect_failure);
  ADD ("disconnect/supersedes-queued-connect", test_disconnect_supersedes_queued_connect);
  ADD ("send", test_send);
  ADD ("send/not-connected", test_send_not_connected);
  ADD ("send/override-event", test_send_override_event);
  ADD ("send/failure", test_send_failure);
  ADD ("peer-drop", test_peer_drop);
  ADD ("message/while-disconnected-is-a-bug", test_message_while_disconnected_is_a_bug);
  ADD ("after-connected/before-connect", test_after_connected_before_connect);
  ADD ("after-connected/when-connected", test_after_connected_when_connected);
  ADD ("after-connected/cancel", test_after_connected_cancel);
  ADD ("cancel/only-caller", test_cancel_only_caller);
  ADD ("cancel/one-of-two", test_cancel_one_of_two);
  ADD ("cancel/before-call", test_cancel_before_call);
  ADD ("cancel/send", test_cancel_send);
  ADD ("cancel/disconnect-wait", test_cancel_disconnect_wait);
  ADD ("cancel/releases-transport", test_no_leak_with_pending_waiters_cancelled);
  ADD ("transition/illegal", test_illegal_transition);
  ADD ("transition/all-legal", test_all_legal_transitions);
  ADD ("reentrant/disconnect-in-connected", test_reentrant_disconnect_in_connected);
  ADD ("reentrant/reconnect-in-disconnected", test_reentrant_reconnect_in_disconnected);
  ADD ("reentrant/transitions-in-order", test_reentrant_transitions_in_order);
  ADD ("reentrant/send-from-connected", test_send_from_connected_handler);

#undef ADD

  return g_test_run ();
}
