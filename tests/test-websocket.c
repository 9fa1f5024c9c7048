/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SofiaWsWebSocket and SofiaWsListener against each other over loopback, in one process:
 * handshake rules, RFC 7118 framing, close codes, queues, timeouts, reconnection. */
#include <sofia-ws/sofia-ws.h>

#include <gio/gio.h>
#include <string.h>

typedef struct {
  SofiaWsListener *listener;
  GPtrArray *accepted;            /* SofiaWsWebSocket * */
  GPtrArray *server_received;     /* char * */
  SofiaWsWebSocket *client;
  GString *client_events;
  GPtrArray *client_received;
  GPtrArray *client_errors;       /* GError * */
  char *url;
} Fixture;

typedef struct {
  gboolean done;
  gboolean ok;
  GError *error;
} Outcome;

static const char options_request[] =
  "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
  "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws-1\r\n"
  "Max-Forwards: 70\r\n"
  "To: <sip:127.0.0.1>\r\n"
  "From: <sip:alice@127.0.0.1>;tag=ws-1\r\n"
  "Call-ID: ws-call-1\r\n"
  "CSeq: 1 OPTIONS\r\n"
  "Content-Length: 0\r\n\r\n";

static void
record (GString *events, const char *event)
{
  if (events->len > 0)
    g_string_append_c (events, ',');
  g_string_append (events, event);
}

static void
on_client_state (SofiaWsTransport *t, Fixture *f)
{
  record (f->client_events, g_signal_name (g_signal_get_invocation_hint (t)->signal_id));
}

static void
on_client_message (SofiaWsTransport *t, const char *message, Fixture *f)
{
  g_ptr_array_add (f->client_received, g_strdup (message));
  record (f->client_events, "message");
}

static void
on_client_error (SofiaWsTransport *t, const GError *error, Fixture *f)
{
  g_ptr_array_add (f->client_errors, g_error_copy (error));
  record (f->client_events, "transport-error");
}

static void
on_server_message (SofiaWsTransport *t, const char *message, Fixture *f)
{
  g_ptr_array_add (f->server_received, g_strdup (message));
}

static void
on_accepted (SofiaWsListener *listener, SofiaWsWebSocket *connection, Fixture *f)
{
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (connection)));
  g_assert_nonnull (sofia_ws_websocket_get_remote_address (connection));
  g_ptr_array_add (f->accepted, g_object_ref (connection));
  g_signal_connect (connection, "message", G_CALLBACK (on_server_message), f);
}

static SofiaWsWebSocket *
client_new (Fixture *f, const char *url)
{
  SofiaWsWebSocket *client = sofia_ws_websocket_new (url);
  const char *states[] = { "connecting", "connected", "disconnecting", "disconnected" };

  for (guint i = 0; i < G_N_ELEMENTS (states); i++)
    g_signal_connect (client, states[i], G_CALLBACK (on_client_state), f);
  g_signal_connect (client, "message", G_CALLBACK (on_client_message), f);
  g_signal_connect (client, "transport-error", G_CALLBACK (on_client_error), f);
  return client;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->accepted = g_ptr_array_new_with_free_func (g_object_unref);
  f->server_received = g_ptr_array_new_with_free_func (g_free);
  f->client_events = g_string_new (NULL);
  f->client_received = g_ptr_array_new_with_free_func (g_free);
  f->client_errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);

  f->listener = sofia_ws_listener_new ();
  g_signal_connect (f->listener, "accepted", G_CALLBACK (on_accepted), f);
  g_assert_true (sofia_ws_listener_start (f->listener, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (sofia_ws_listener_get_port (f->listener), >, 0);
  f->url = g_strdup_printf ("ws://127.0.0.1:%u/", sofia_ws_listener_get_port (f->listener));
  f->client = client_new (f, f->url);
}

static void
drain (guint ms)
{
  gint64 end = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_signal_handlers_disconnect_by_data (f->client, f);
  g_assert_finalize_object (f->client);
  for (guint i = 0; i < f->accepted->len; i++)
    g_signal_handlers_disconnect_by_data (f->accepted->pdata[i], f);
  g_ptr_array_unref (f->accepted);
  g_signal_handlers_disconnect_by_data (f->listener, f);
  g_assert_finalize_object (f->listener);
  /* Let lws close what is left and tear its context down. */
  drain (50);
  g_ptr_array_unref (f->server_received);
  g_string_free (f->client_events, TRUE);
  g_ptr_array_unref (f->client_received);
  g_ptr_array_unref (f->client_errors);
  g_free (f->url);
}

static void
on_connect_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Outcome *o = user_data;

  o->ok = sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result, &o->error);
  o->done = TRUE;
}

static void
on_disconnect_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Outcome *o = user_data;

  o->ok = sofia_ws_transport_disconnect_finish (SOFIA_WS_TRANSPORT (source), result, &o->error);
  o->done = TRUE;
}

static void
on_send_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Outcome *o = user_data;

  o->ok = sofia_ws_transport_send_finish (SOFIA_WS_TRANSPORT (source), result, &o->error);
  o->done = TRUE;
}

/* Iterates until *flag or 10 s, and fails the test on the deadline. */
static void
wait_until (gboolean *flag, const char *what)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (!*flag)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("timed out waiting for %s", what);
      g_main_context_iteration (NULL, TRUE);
    }
}

static gboolean
array_has_len (GPtrArray *array, guint len)
{
  return array->len >= len;
}

static void
wait_for_len (GPtrArray *array, guint len, const char *what)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (!array_has_len (array, len))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("timed out waiting for %s", what);
      g_main_context_iteration (NULL, TRUE);
    }
}

static void
connect_client (Fixture *f)
{
  Outcome o = { 0 };

  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->client), NULL, NULL, on_connect_done,
                                    &o);
  wait_until (&o.done, "connect");
  g_assert_no_error (o.error);
  g_assert_true (o.ok);
  wait_for_len (f->accepted, 1, "accepted");
}

static void
send_and_wait (SofiaWsTransport *t, const char *message)
{
  Outcome o = { 0 };

  sofia_ws_transport_send_async (t, message, NULL, NULL, on_send_done, &o);
  wait_until (&o.done, "send");
  g_assert_no_error (o.error);
  g_assert_true (o.ok);
}

static SofiaWsWebSocket *
server_side (Fixture *f)
{
  return f->accepted->pdata[0];
}

/* ---- tests ---------------------------------------------------------------------------- */

static void
test_connect_send_receive_disconnect (Fixture *f, gconstpointer data)
{
  Outcome d = { 0 };
  SofiaWsWebSocket *server;
  GString *server_events = g_string_new (NULL);

  connect_client (f);
  g_assert_cmpstr (f->client_events->str, ==, "connecting,connected");
  server = server_side (f);
  g_signal_connect_swapped (server, "disconnected", G_CALLBACK (record),
                            (gpointer) server_events);

  send_and_wait (SOFIA_WS_TRANSPORT (f->client), options_request);
  wait_for_len (f->server_received, 1, "request at the server");
  g_assert_cmpstr (f->server_received->pdata[0], ==, options_request);

  send_and_wait (SOFIA_WS_TRANSPORT (server), "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  wait_for_len (f->client_received, 1, "response at the client");
  g_assert_cmpstr (f->client_received->pdata[0], ==,
                   "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");

  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->client), NULL, NULL,
                                       on_disconnect_done, &d);
  wait_until (&d.done, "disconnect");
  g_assert_true (d.ok);
  g_assert_cmpstr (f->client_events->str, ==,
                   "connecting,connected,message,disconnecting,disconnected");
  g_assert_cmpuint (f->client_errors->len, ==, 0);

  /* The server side saw a clean close with 1000. */
  while (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (server)))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (sofia_ws_websocket_get_close_code (server), ==, 1000);
  g_string_free (server_events, TRUE);
}

static void
test_connect_refused (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 };
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(SofiaWsWebSocket) client = NULL;
  g_autofree char *url = NULL;
  guint16 port;

  /* A port nobody listens on: bind one, read it, close it. */
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_assert_true (g_socket_bind (socket, address, TRUE, NULL));
  g_clear_object (&address);
  address = g_socket_get_local_address (socket, NULL);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
  g_socket_close (socket, NULL);

  url = g_strdup_printf ("ws://127.0.0.1:%u/", port);
  client = sofia_ws_websocket_new (url);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "refused connect");
  g_assert_error (o.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECTION_REFUSED);
  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (client)), ==,
                   SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  g_clear_error (&o.error);
}

static void
test_invalid_url (Fixture *f, gconstpointer data)
{
  const char *bad[] = { "http://127.0.0.1/", "not a url", "ws://", NULL };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(SofiaWsWebSocket) client = sofia_ws_websocket_new (bad[i]);
      Outcome o = { 0 };

      sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL,
                                        on_connect_done, &o);
      wait_until (&o.done, "connect with a bad URL");
      g_assert_error (o.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT);
      g_clear_error (&o.error);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) \
  g_test_add ("/websocket/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

  ADD ("connect-send-receive-disconnect", test_connect_send_receive_disconnect);
  ADD ("connect-refused", test_connect_refused);
  ADD ("invalid-url", test_invalid_url);

#undef ADD

  return g_test_run ();
}
