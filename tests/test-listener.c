/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SofiaWsListener against a real third-party client, Node's `ws` package
 * (tests/interop/node/ws-probe.mjs): handshake rules, RFC 7118 framing, every bad input
 * with its close code, and the listener serving on afterwards. */
#include <sofia-ws/sofia-ws.h>

#include <string.h>

#include "support/drain.h"
#include "support/sip-text.h"
#include "support/ws-probe.h"

typedef enum {
  ANSWER,                         /* answer requests with 200 */
  CLOSE_4000,                     /* disconnect with 4000 on the first message */
  STOP_LISTENER,                  /* stop the listener on the first message */
} Behaviour;

typedef struct {
  SofiaWsListener *listener;
  Behaviour behaviour;
  GPtrArray *connections;         /* SofiaWsWebSocket * accepted */
  GPtrArray *messages;            /* char * received by the server */
  GPtrArray *errors;              /* GError * from the server side's transport-error */
  guint disconnected;
  char probe_url[128];
} Fixture;

static void
on_server_message (SofiaWsTransport *t, const char *message, Fixture *f)
{
  g_ptr_array_add (f->messages, g_strdup (message));
  switch (f->behaviour)
    {
    case CLOSE_4000:
      sofia_ws_transport_disconnect_async (t, g_variant_new_parsed ("{'code': <@q 4000>, "
                                                                    "'reason': <'bye'>}"),
                                           NULL, NULL, NULL);
      break;
    case STOP_LISTENER:
      sofia_ws_listener_stop (f->listener);
      break;
    case ANSWER:
    default:
      if (sip_text_status (message) == 0)
        {
          g_autofree char *response = sip_text_response (message, 200, "OK");

          sofia_ws_transport_send_async (t, response, NULL, NULL, NULL, NULL);
        }
    }
}

static void
on_server_error (SofiaWsTransport *t, const GError *error, Fixture *f)
{
  g_ptr_array_add (f->errors, g_error_copy (error));
}

static void
on_server_disconnected (SofiaWsTransport *t, Fixture *f)
{
  f->disconnected++;
}

static void
on_accepted (SofiaWsListener *l, SofiaWsWebSocket *connection, Fixture *f)
{
  g_ptr_array_add (f->connections, g_object_ref (connection));
  g_signal_connect (connection, "message", G_CALLBACK (on_server_message), f);
  g_signal_connect (connection, "transport-error", G_CALLBACK (on_server_error), f);
  g_signal_connect (connection, "disconnected", G_CALLBACK (on_server_disconnected), f);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->connections = g_ptr_array_new_with_free_func (g_object_unref);
  f->messages = g_ptr_array_new_with_free_func (g_free);
  f->errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  f->listener = sofia_ws_listener_new ();
  g_signal_connect (f->listener, "accepted", G_CALLBACK (on_accepted), f);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  for (guint i = 0; i < f->connections->len; i++)
    g_signal_handlers_disconnect_by_data (f->connections->pdata[i], f);
  g_ptr_array_unref (f->connections);
  g_signal_handlers_disconnect_by_data (f->listener, f);
  g_assert_finalize_object (f->listener);
  test_drain_main_context ();
  g_ptr_array_unref (f->messages);
  g_ptr_array_unref (f->errors);
}

static gboolean
start_listener (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  if (!test_ws_probe_available ())
    return FALSE;
  g_assert_true (sofia_ws_listener_start (f->listener, &error));
  g_assert_no_error (error);
  return TRUE;
}

/* The probe (tests/support/ws-probe.c) against this listener at @path. */
static const char *
probe_url (Fixture *f, const char *path)
{
  g_snprintf (f->probe_url, sizeof f->probe_url, "ws://127.0.0.1:%u%s",
              sofia_ws_listener_get_port (f->listener), path);
  return f->probe_url;
}

#define probe(f, path, ...) test_ws_probe (probe_url ((f), (path)), __VA_ARGS__)

static char *
report_string (GKeyFile *report, const char *key)
{
  return g_key_file_get_string (report, "probe", key, NULL);
}

static gint
report_int (GKeyFile *report, const char *key)
{
  return g_key_file_get_integer (report, "probe", key, NULL);
}

static gboolean
report_bool (GKeyFile *report, const char *key)
{
  return g_key_file_get_boolean (report, "probe", key, NULL);
}

static const GError *
first_error (Fixture *f)
{
  g_assert_cmpuint (f->errors->len, >, 0);
  return f->errors->pdata[0];
}

static void
wait_disconnected (Fixture *f, guint n)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (f->disconnected < n)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
}

/* The listener still serves: a normal exchange works. */
static void
assert_still_serving (Fixture *f)
{
  g_autoptr(GKeyFile) report = probe (f, "/", "options", NULL);
  g_autofree char *reply = report_string (report, "reply");

  g_assert_true (report_bool (report, "opened"));
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
}

/* ---- tests ---------------------------------------------------------------------------- */

static void
test_options (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *protocol = NULL, *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "options", NULL);
  g_assert_true (report_bool (report, "opened"));
  protocol = report_string (report, "protocol");
  g_assert_cmpstr (protocol, ==, "sip");
  reply = report_string (report, "reply");
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
  g_assert_nonnull (strstr (reply, "Call-ID: probe-1\r\n"));
  g_assert_false (report_bool (report, "replyBinary"));
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1000);
  wait_disconnected (f, 1);
  g_assert_cmpuint (f->errors->len, ==, 1);      /* the peer's close, reported as CLOSED */
  g_assert_error (first_error (f), SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
  g_assert_cmpuint (sofia_ws_listener_get_n_connections (f->listener), ==, 0);
}

static void
test_fragmented (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "fragmented", NULL);
  reply = report_string (report, "reply");
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
  g_assert_cmpuint (f->messages->len, ==, 1);
  g_assert_true (g_str_has_prefix (f->messages->pdata[0], "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"));
  g_assert_true (g_str_has_suffix (f->messages->pdata[0], "Content-Length: 0\r\n\r\n"));
}

static void
test_binary (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "binary", NULL);
  reply = report_string (report, "reply");
  /* Accepted as binary, answered in text. */
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
  g_assert_false (report_bool (report, "replyBinary"));
}

static void
test_crlf_keepalive (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "crlf", NULL);
  reply = report_string (report, "reply");
  g_assert_cmpstr (reply, ==, "\r\n");
  g_assert_cmpuint (f->messages->len, ==, 0);
}

static void
test_invalid_utf8 (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "invalid-utf8", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1007);
  wait_disconnected (f, 1);
  g_assert_cmpuint (f->messages->len, ==, 0);
  g_assert_error (first_error (f), SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_MESSAGE);
  assert_still_serving (f);
}

static void
test_nul_reported_not_fatal (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "nul", NULL);
  /* The NUL message is reported, not delivered; the connection carries on with the next. */
  reply = report_string (report, "reply");
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
  g_assert_cmpuint (f->messages->len, ==, 1);
  g_assert_error (first_error (f), SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_MESSAGE);
}

static void
test_oversize (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;

  g_object_set (f->listener, "max-message-size", 1024, NULL);
  if (!start_listener (f))
    return;
  report = probe (f, "/", "oversize", "--size", "1025", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1009);
  wait_disconnected (f, 1);
  g_assert_error (first_error (f), SOFIA_WS_ERROR, SOFIA_WS_ERROR_MESSAGE_TOO_LARGE);
  g_assert_cmpuint (f->messages->len, ==, 0);
  assert_still_serving (f);

  /* At the limit exactly, the message is delivered. */
  g_clear_pointer (&report, g_key_file_unref);
  report = probe (f, "/", "oversize", "--size", "1024", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1000);
  g_assert_cmpuint (strlen (f->messages->pdata[f->messages->len - 1]), ==, 1024);
}

static void
test_no_subprotocol_refused (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autoptr(GKeyFile) other = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "handshake", "--no-protocol", NULL);
  g_assert_false (report_bool (report, "opened"));
  g_assert_cmpint (report_int (report, "status"), ==, 400);
  /* lws itself refuses a subprotocol it does not serve, before any filter: no HTTP status. */
  other = probe (f, "/", "handshake", "--protocol", "foo", NULL);
  g_assert_false (report_bool (other, "opened"));
  g_assert_cmpuint (f->connections->len, ==, 0);
  assert_still_serving (f);
}

static void
test_origin_allowlist (Fixture *f, gconstpointer data)
{
  const char *allowed[] = { "https://app.example.com", NULL };
  g_autoptr(GKeyFile) bad = NULL, good = NULL, none = NULL;

  g_object_set (f->listener, "allowed-origins", allowed, NULL);
  if (!start_listener (f))
    return;
  bad = probe (f, "/", "handshake", "--origin", "https://evil.example.net", NULL);
  g_assert_false (report_bool (bad, "opened"));
  g_assert_cmpint (report_int (bad, "status"), ==, 403);
  none = probe (f, "/", "handshake", NULL);
  g_assert_false (report_bool (none, "opened"));
  g_assert_cmpint (report_int (none, "status"), ==, 403);
  good = probe (f, "/", "handshake", "--origin", "https://app.example.com", NULL);
  g_assert_true (report_bool (good, "opened"));
  g_assert_cmpuint (f->connections->len, ==, 1);
}

static void
test_path (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) wrong = NULL, right = NULL;

  g_object_set (f->listener, "path", "/ws", NULL);
  if (!start_listener (f))
    return;
  wrong = probe (f, "/other", "handshake", NULL);
  g_assert_false (report_bool (wrong, "opened"));
  g_assert_cmpint (report_int (wrong, "status"), ==, 404);
  right = probe (f, "/ws?x=1", "handshake", NULL);
  g_assert_true (report_bool (right, "opened"));
}

static void
on_client_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  gboolean *connected = user_data;
  g_autoptr(GError) error = NULL;

  *connected = sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result, &error);
  g_assert_no_error (error);
}

static void
test_connection_limit (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) refused = NULL, again = NULL;
  g_autoptr(SofiaWsWebSocket) holder = NULL;
  g_autofree char *url = NULL;
  gboolean connected = FALSE;

  g_object_set (f->listener, "max-connections", 1, NULL);
  if (!start_listener (f))
    return;
  url = g_strdup_printf ("ws://127.0.0.1:%u/", sofia_ws_listener_get_port (f->listener));
  holder = sofia_ws_websocket_new (url);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (holder), NULL, NULL,
                                    on_client_connected, &connected);
  while (!connected || f->connections->len == 0)
    g_main_context_iteration (NULL, TRUE);

  refused = probe (f, "/", "handshake", NULL);
  g_assert_false (report_bool (refused, "opened"));
  g_assert_cmpint (report_int (refused, "status"), ==, 503);

  /* Once the first one has gone, there is room again. */
  g_clear_object (&holder);
  wait_disconnected (f, 1);
  again = probe (f, "/", "handshake", NULL);
  g_assert_true (report_bool (again, "opened"));
}

static void
test_peer_vanishes (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *message = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "terminate", NULL);
  g_assert_true (report_bool (report, "opened"));
  wait_disconnected (f, 1);
  g_assert_error (first_error (f), SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
  message = g_strdup (first_error (f)->message);
  g_assert_nonnull (strstr (message, "1006"));
  g_assert_cmpuint (sofia_ws_listener_get_n_connections (f->listener), ==, 0);
  assert_still_serving (f);
}

static void
test_server_close_code (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reason = NULL;

  f->behaviour = CLOSE_4000;
  if (!start_listener (f))
    return;
  report = probe (f, "/", "wait-close", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 4000);
  reason = report_string (report, "closeReason");
  g_assert_cmpstr (reason, ==, "bye");
  wait_disconnected (f, 1);
  /* A requested disconnect is not an error. */
  g_assert_cmpuint (f->errors->len, ==, 0);
}

static void
test_listener_stop_going_away (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;

  f->behaviour = STOP_LISTENER;
  if (!start_listener (f))
    return;
  report = probe (f, "/", "wait-close", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1001);
  g_assert_cmpuint (sofia_ws_listener_get_port (f->listener), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) \
  g_test_add ("/listener/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

  ADD ("options", test_options);
  ADD ("fragmented", test_fragmented);
  ADD ("binary", test_binary);
  ADD ("crlf-keepalive", test_crlf_keepalive);
  ADD ("invalid-utf8", test_invalid_utf8);
  ADD ("nul-reported-not-fatal", test_nul_reported_not_fatal);
  ADD ("oversize", test_oversize);
  ADD ("no-subprotocol-refused", test_no_subprotocol_refused);
  ADD ("origin-allowlist", test_origin_allowlist);
  ADD ("path", test_path);
  ADD ("connection-limit", test_connection_limit);
  ADD ("peer-vanishes", test_peer_vanishes);
  ADD ("server-close-code", test_server_close_code);
  ADD ("listener-stop-going-away", test_listener_stop_going_away);

#undef ADD

  return g_test_run ();
}
