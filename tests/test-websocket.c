/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SofiaWsWebSocket and SofiaWsListener against each other over loopback, in one process:
 * handshake rules, RFC 7118 framing, close codes, queues, timeouts, reconnection. */
#include <sofia-ws/sofia-ws.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#include "support/drain.h"
#include "support/outcome.h"
#include "support/raw-ws.h"
#include "support/test-resolver.h"

/* The default GResolver of the whole test: made-up names, no DNS (see main()). */
static TestResolver *resolver;

typedef struct {
  SofiaWsListener *listener;
  GPtrArray *accepted;            /* SofiaWsWebSocket * */
  GPtrArray *server_received;     /* char * */
  SofiaWsWebSocket *client;
  GString *client_events;
  GPtrArray *client_received;
  GPtrArray *client_errors;       /* GError * */
  char *url;
  struct _Pki *pki;               /* wss cases: a CA and certificates made by the test */
  SofiaWsListener *wss;           /* wss cases: a listener serving wss with them */
} Fixture;

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
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_signal_handlers_disconnect_by_data (f->client, f);
  g_assert_finalize_object (f->client);
  for (guint i = 0; i < f->accepted->len; i++)
    g_signal_handlers_disconnect_by_data (f->accepted->pdata[i], f);
  g_ptr_array_unref (f->accepted);
  if (f->listener != NULL)
    {
      g_signal_handlers_disconnect_by_data (f->listener, f);
      g_assert_finalize_object (f->listener);
    }
  /* Let lws close what is left and tear its contexts down. */
  test_drain_main_context ();
  g_ptr_array_unref (f->server_received);
  g_string_free (f->client_events, TRUE);
  g_ptr_array_unref (f->client_received);
  g_ptr_array_unref (f->client_errors);
  g_free (f->url);
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

/* ---- a misbehaving server ------------------------------------------------------------- */

typedef enum {
  RAW_SILENT,                     /* accepts TCP, never answers the handshake */
  RAW_HANDSHAKE_THEN_SILENT,      /* a correct 101, then nothing: no PONG, no close */
  RAW_NO_SIP,                     /* a 101 without Sec-WebSocket-Protocol */
  RAW_FORBIDDEN,                  /* HTTP 403 */
} RawMode;

typedef struct {
  GSocketService *service;
  RawMode mode;
  guint16 port;
  GPtrArray *connections;         /* GSocketConnection *, kept open */
  char *host_header;              /* the Host header of the last handshake */
} RawServer;

static char *
websocket_accept_for (const char *key)
{
  g_autoptr(GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  guint8 digest[20];
  gsize len = sizeof digest;

  g_checksum_update (sha1, (const guchar *) key, -1);
  g_checksum_update (sha1, (const guchar *) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", -1);
  g_checksum_get_digest (sha1, digest, &len);
  return g_base64_encode (digest, len);
}

typedef struct {
  RawServer *server;
  GSocketConnection *connection;
  GDataInputStream *in;
  char *key;
} RawClient;

static void raw_read_line (RawClient *client);

static void
raw_client_free (RawClient *client)
{
  g_object_unref (client->in);
  g_object_unref (client->connection);
  g_free (client->key);
  g_free (client);
}

static void
raw_answer (RawClient *client)
{
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (client->connection));
  g_autofree char *accept = websocket_accept_for (client->key ? client->key : "");
  g_autofree char *response = NULL;

  switch (client->server->mode)
    {
    case RAW_HANDSHAKE_THEN_SILENT:
      response = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                                   "Sec-WebSocket-Protocol: sip\r\n\r\n", accept);
      break;
    case RAW_NO_SIP:
      response = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                                  accept);
      break;
    case RAW_FORBIDDEN:
      response = g_strdup ("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
      break;
    case RAW_SILENT:
    default:
      return;
    }
  g_output_stream_write_all (out, response, strlen (response), NULL, NULL, NULL);
}

static void
on_raw_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  RawClient *client = user_data;
  g_autofree char *line = g_data_input_stream_read_line_finish_utf8 (client->in, result, NULL,
                                                                     NULL);

  if (line == NULL)
    {
      raw_client_free (client);
      return;
    }
  if (g_ascii_strncasecmp (line, "Sec-WebSocket-Key:", 18) == 0)
    client->key = g_strstrip (g_strdup (line + 18));
  if (g_ascii_strncasecmp (line, "Host:", 5) == 0)
    {
      g_free (client->server->host_header);
      client->server->host_header = g_strstrip (g_strdup (line + 5));
    }
  if (line[0] == '\0')
    {
      raw_answer (client);
      raw_client_free (client);
      return;
    }
  raw_read_line (client);
}

static void
raw_read_line (RawClient *client)
{
  g_data_input_stream_read_line_async (client->in, G_PRIORITY_DEFAULT, NULL, on_raw_line, client);
}

static gboolean
on_raw_incoming (GSocketService *service, GSocketConnection *connection, GObject *source,
                 RawServer *server)
{
  RawClient *client = g_new0 (RawClient, 1);

  g_ptr_array_add (server->connections, g_object_ref (connection));
  client->server = server;
  client->connection = g_object_ref (connection);
  client->in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  g_data_input_stream_set_newline_type (client->in, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
  g_filter_input_stream_set_close_base_stream (G_FILTER_INPUT_STREAM (client->in), FALSE);
  raw_read_line (client);
  return TRUE;
}

static void
raw_server_start_on (RawServer *server, RawMode mode, GSocketFamily family)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (family);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;

  server->mode = mode;
  server->connections = g_ptr_array_new_with_free_func (g_object_unref);
  server->service = g_socket_service_new ();
  g_socket_listener_add_address (G_SOCKET_LISTENER (server->service), address,
                                 G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL, &bound,
                                 &error);
  g_assert_no_error (error);
  server->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_signal_connect (server->service, "incoming", G_CALLBACK (on_raw_incoming), server);
  g_socket_service_start (server->service);
}

static void
raw_server_start (RawServer *server, RawMode mode)
{
  raw_server_start_on (server, mode, G_SOCKET_FAMILY_IPV4);
}

static void
raw_server_stop (RawServer *server)
{
  g_socket_service_stop (server->service);
  g_socket_listener_close (G_SOCKET_LISTENER (server->service));
  g_object_unref (server->service);
  for (guint i = 0; i < server->connections->len; i++)
    g_io_stream_close (server->connections->pdata[i], NULL, NULL);
  g_ptr_array_unref (server->connections);
  g_free (server->host_header);
}

static char *
raw_url (RawServer *server)
{
  return g_strdup_printf ("ws://127.0.0.1:%u/", server->port);
}

/* Connects @client and returns the error it fails with (the test fails if it connects). */
static GError *
connect_failure (SofiaWsWebSocket *client)
{
  Outcome o = { 0 };

  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "connect to fail");
  g_assert_false (o.ok);
  g_assert_nonnull (o.error);
  return o.error;
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
  /* The client's end of the connection, as the server sees it. */
  g_assert_nonnull (sofia_ws_websocket_get_local_address (f->client));
  g_assert_cmpstr (sofia_ws_websocket_get_local_address (f->client), ==,
                   sofia_ws_websocket_get_remote_address (server));
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
  client = client_new (f, url);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "refused connect");
  g_assert_error (o.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECTION_REFUSED);
  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (client)), ==,
                   SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  g_assert_cmpstr (f->client_events->str, ==, "connecting,transport-error,disconnected");
  g_assert_error ((GError *) f->client_errors->pdata[0], SOFIA_WS_ERROR,
                  SOFIA_WS_ERROR_CONNECTION_REFUSED);
  g_signal_handlers_disconnect_by_data (client, f);
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

static void
test_connect_timeout (Fixture *f, gconstpointer data)
{
  RawServer raw = { 0 };
  g_autofree char *url = NULL;
  g_autoptr(SofiaWsWebSocket) client = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;
  double elapsed;

  raw_server_start (&raw, RAW_SILENT);
  url = raw_url (&raw);
  client = client_new (f, url);
  g_object_set (client, "connection-timeout", 1, NULL);
  start = g_get_monotonic_time ();
  error = connect_failure (client);
  elapsed = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECT_TIMEOUT);
  g_assert_cmpfloat (elapsed, >=, 0.9);
  g_assert_cmpstr (f->client_events->str, ==, "connecting,transport-error,disconnected");
  g_signal_handlers_disconnect_by_data (client, f);
  raw_server_stop (&raw);
}

/* A client against a server that answers @mode fails with @code. */
static void
assert_connect_fails_against (RawMode mode, gint code)
{
  RawServer raw = { 0 };
  g_autofree char *url = NULL;
  g_autoptr(SofiaWsWebSocket) client = NULL;
  g_autoptr(GError) error = NULL;

  raw_server_start (&raw, mode);
  url = raw_url (&raw);
  client = sofia_ws_websocket_new (url);
  error = connect_failure (client);
  g_assert_error (error, SOFIA_WS_ERROR, code);
  raw_server_stop (&raw);
}

static void
test_server_without_sip_subprotocol (Fixture *f, gconstpointer data)
{
  assert_connect_fails_against (RAW_NO_SIP, SOFIA_WS_ERROR_PROTOCOL);
}

static void
test_handshake_refused (Fixture *f, gconstpointer data)
{
  assert_connect_fails_against (RAW_FORBIDDEN, SOFIA_WS_ERROR_HANDSHAKE_REFUSED);
}

static void
test_dead_peer (Fixture *f, gconstpointer data)
{
  RawServer raw = { 0 };
  g_autofree char *url = NULL;
  Outcome o = { 0 };
  gint64 start;
  double elapsed;
  SofiaWsWebSocket *client;

  raw_server_start (&raw, RAW_HANDSHAKE_THEN_SILENT);
  url = raw_url (&raw);
  client = client_new (f, url);
  g_object_set (client, "ping-interval", 1, "ping-timeout", 1, NULL);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "connect");
  g_assert_no_error (o.error);
  start = g_get_monotonic_time ();
  while (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (client)))
    {
      g_assert_cmpint (g_get_monotonic_time () - start, <, 10 * G_USEC_PER_SEC);
      g_main_context_iteration (NULL, TRUE);
    }
  elapsed = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  g_assert_cmpfloat (elapsed, >=, 1.5);
  g_assert_cmpstr (f->client_events->str, ==,
                   "connecting,connected,transport-error,disconnected");
  g_assert_error ((GError *) f->client_errors->pdata[0], SOFIA_WS_ERROR,
                  SOFIA_WS_ERROR_PEER_TIMEOUT);
  g_signal_handlers_disconnect_by_data (client, f);
  g_object_unref (client);
  raw_server_stop (&raw);
}

static void
test_pings_keep_a_live_peer (Fixture *f, gconstpointer data)
{
  gint64 end;

  /* Our own listener answers PINGs: 3 s with ping 1 s / timeout 1 s stays connected. */
  g_object_set (f->client, "ping-interval", 1, "ping-timeout", 1, NULL);
  connect_client (f);
  end = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->client)));
  g_assert_cmpuint (f->client_errors->len, ==, 0);
}

static void
assert_host_header (GSocketFamily family, const char *host)
{
  RawServer raw = { 0 };
  g_autofree char *url = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(SofiaWsWebSocket) client = NULL;
  Outcome o = { 0 };

  raw_server_start_on (&raw, RAW_HANDSHAKE_THEN_SILENT, family);
  url = g_strdup_printf ("ws://%s:%u/", host, raw.port);
  expected = g_strdup_printf ("%s:%u", host, raw.port);
  client = sofia_ws_websocket_new (url);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "connect");
  g_assert_no_error (o.error);
  g_assert_cmpstr (raw.host_header, ==, expected);
  g_clear_object (&client);
  raw_server_stop (&raw);
}

static void
test_host_header (Fixture *f, gconstpointer data)
{
  assert_host_header (G_SOCKET_FAMILY_IPV4, "127.0.0.1");
  /* An IPv6 literal keeps its brackets in Host. */
  assert_host_header (G_SOCKET_FAMILY_IPV6, "[::1]");
}

/* ---- wss ----------------------------------------------------------------------------- */

typedef struct _Pki {
  char *dir;
  char *ca;                       /* the CA that signed the server's certificate */
  char *other_ca;                 /* a CA that did not */
  char *cert;
  char *key;
} Pki;

static void
run_openssl (const char *dir, const char *command)
{
  g_autofree char *full = g_strdup_printf ("cd '%s' && %s", dir, command);
  const char *argv[] = { "sh", "-c", full, NULL };
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed: %s", command, err);
}

/* A throwaway PKI: two CAs, and a server certificate for 127.0.0.1/localhost from the first. */
static void
pki_make (Pki *pki)
{
  static const char ec[] = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  g_autofree char *cmd = NULL;

  pki->dir = g_dir_make_tmp ("sofia-ws-pki-XXXXXX", NULL);
  g_assert_nonnull (pki->dir);
  cmd = g_strdup_printf ("openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 "
                         "-subj '/CN=sofia-ws test CA' 2>/dev/null && "
                         "openssl req -x509 %s -keyout other.key -out other.pem -days 2 "
                         "-subj '/CN=another CA' 2>/dev/null && "
                         "openssl req %s -keyout server.key -out server.csr "
                         "-subj '/CN=localhost' 2>/dev/null && "
                         "printf 'subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\\n' "
                         "> ext.cnf && "
                         "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
                         "-CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null",
                         ec, ec, ec);
  run_openssl (pki->dir, cmd);
  pki->ca = g_build_filename (pki->dir, "ca.pem", NULL);
  pki->other_ca = g_build_filename (pki->dir, "other.pem", NULL);
  pki->cert = g_build_filename (pki->dir, "server.pem", NULL);
  pki->key = g_build_filename (pki->dir, "server.key", NULL);
}

static void
pki_clear (Pki *pki)
{
  const char *files[] = { "ca.pem", "ca.key", "ca.srl", "other.pem", "other.key", "server.pem",
                          "server.key", "server.csr", "ext.cnf" };

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (pki->dir, files[i], NULL);
      g_unlink (path);
    }
  g_rmdir (pki->dir);
  g_free (pki->dir);
  g_free (pki->ca);
  g_free (pki->other_ca);
  g_free (pki->cert);
  g_free (pki->key);
}

static void
wss_fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture_setup (f, data);
  f->pki = g_new0 (Pki, 1);
  pki_make (f->pki);
  f->wss = g_object_new (SOFIA_WS_TYPE_LISTENER,
                         "tls-certificate-file", f->pki->cert,
                         "tls-key-file", f->pki->key,
                         NULL);
  g_signal_connect (f->wss, "accepted", G_CALLBACK (on_accepted), f);
  g_assert_true (sofia_ws_listener_start (f->wss, &error));
  g_assert_no_error (error);
  g_assert_true (sofia_ws_listener_get_is_secure (f->wss));
}

static void
wss_fixture_teardown (Fixture *f, gconstpointer data)
{
  g_signal_handlers_disconnect_by_data (f->wss, f);
  g_clear_object (&f->wss);
  fixture_teardown (f, data);
  pki_clear (f->pki);
  g_free (f->pki);
}

static char *
wss_url (Fixture *f, const char *host)
{
  return g_strdup_printf ("wss://%s:%u/", host, sofia_ws_listener_get_port (f->wss));
}

static void
test_wss (Fixture *f, gconstpointer data)
{
  g_autofree char *url = wss_url (f, "localhost");
  g_autoptr(SofiaWsWebSocket) client = sofia_ws_websocket_new (url);
  Outcome o = { 0 };

  g_object_set (client, "tls-ca-file", f->pki->ca, NULL);
  g_assert_true (sofia_ws_websocket_get_is_secure (client));
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "wss connect");
  g_assert_no_error (o.error);
  send_and_wait (SOFIA_WS_TRANSPORT (client), options_request);
  wait_for_len (f->server_received, 1, "request over wss");
  g_assert_cmpstr (f->server_received->pdata[0], ==, options_request);
  g_assert_true (sofia_ws_websocket_get_is_secure (server_side (f)));
}

static void
test_wss_wrong_ca_refused (Fixture *f, gconstpointer data)
{
  g_autofree char *url = wss_url (f, "localhost");
  g_autoptr(SofiaWsWebSocket) client = client_new (f, url);
  g_autoptr(SofiaWsWebSocket) no_ca = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) error2 = NULL;

  g_object_set (client, "tls-ca-file", f->pki->other_ca, NULL);
  error = connect_failure (client);
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_TLS);
  g_assert_cmpstr (f->client_events->str, ==, "connecting,transport-error,disconnected");
  g_signal_handlers_disconnect_by_data (client, f);

  /* Without a CA file the system's CAs are used, which do not know the test CA either. */
  no_ca = sofia_ws_websocket_new (url);
  error2 = connect_failure (no_ca);
  g_assert_error (error2, SOFIA_WS_ERROR, SOFIA_WS_ERROR_TLS);
  g_assert_cmpuint (f->accepted->len, ==, 0);
}

static void
test_wss_verification_off_only_when_asked (Fixture *f, gconstpointer data)
{
  g_autofree char *url = wss_url (f, "127.0.0.1");
  g_autoptr(SofiaWsWebSocket) client = sofia_ws_websocket_new (url);
  Outcome o = { 0 };

  g_object_set (client, "tls-ca-file", f->pki->other_ca, "tls-verify", FALSE, NULL);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "unverified wss connect");
  g_assert_no_error (o.error);
  g_assert_true (o.ok);
}

static void
test_wss_to_plain_listener (Fixture *f, gconstpointer data)
{
  g_autofree char *url = g_strdup_printf ("wss://127.0.0.1:%u/",
                                          sofia_ws_listener_get_port (f->listener));
  g_autoptr(SofiaWsWebSocket) client = sofia_ws_websocket_new (url);
  g_autoptr(GError) error = NULL;

  g_object_set (client, "tls-verify", FALSE, NULL);
  error = connect_failure (client);
  g_assert_true (g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_TLS) ||
                 g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECTION_REFUSED));
}

static void
test_wss_listener_bad_files (Fixture *f, gconstpointer data)
{
  g_autoptr(SofiaWsListener) listener = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) error2 = NULL;

  listener = g_object_new (SOFIA_WS_TYPE_LISTENER, "tls-certificate-file", "/nonexistent.pem",
                           "tls-key-file", "/nonexistent.key", NULL);
  g_assert_false (sofia_ws_listener_start (listener, &error));
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_TLS);
  g_clear_object (&listener);

  listener = g_object_new (SOFIA_WS_TYPE_LISTENER, "tls-certificate-file", "/etc/hostname",
                           NULL);
  g_assert_false (sofia_ws_listener_start (listener, &error2));
  g_assert_error (error2, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT);
}

/* ---- queues and reconnection ----------------------------------------------------------- */

#define QUEUE_TEST_SENDS 400

/* A message goes out at once while the socket takes it; behind a peer that stops reading, the
 * kernel's buffers fill, then lws's, then the send queue, and the send past its limit fails
 * with QUEUE_FULL (the ones before it stay queued, and fail with CLOSED when the peer goes). */
static void
test_send_queue_limit (Fixture *f, gconstpointer data)
{
  RawServer raw = { 0 };
  g_autofree char *url = NULL;
  g_autofree char *big = g_strnfill (64 * 1024, 'a');
  g_autofree Outcome *o = g_new0 (Outcome, QUEUE_TEST_SENDS);
  g_autofree gboolean *still_queued = g_new0 (gboolean, QUEUE_TEST_SENDS);
  Outcome c = { 0 };
  SofiaWsWebSocket *client;
  guint sent = 0, queued = 0, full = 0, closed = 0, first_full = QUEUE_TEST_SENDS;

  raw_server_start (&raw, RAW_HANDSHAKE_THEN_SILENT);
  url = raw_url (&raw);
  client = client_new (f, url);
  g_object_set (client, "send-queue-limit", 4, "max-message-size", 1024 * 1024, NULL);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &c);
  wait_until (&c.done, "connect");
  g_assert_no_error (c.error);

  for (guint i = 0; i < QUEUE_TEST_SENDS; i++)
    sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (client), big, NULL, NULL, on_send_done,
                                   &o[i]);
  /* Everything but the four queued ones completes. */
  for (;;)
    {
      guint done = 0;

      for (guint i = 0; i < QUEUE_TEST_SENDS; i++)
        done += o[i].done;
      if (done >= QUEUE_TEST_SENDS - 4)
        break;
      g_main_context_iteration (NULL, TRUE);
    }
  for (guint i = 0; i < QUEUE_TEST_SENDS; i++)
    {
      if (!o[i].done)
        queued++;
      else if (o[i].error == NULL)
        {
          g_assert_cmpuint (i, <, first_full);    /* the ones that went out came first */
          sent++;
        }
      else
        {
          g_assert_error (o[i].error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_QUEUE_FULL);
          first_full = MIN (first_full, i);
          full++;
        }
    }
  g_test_message ("%u sent, %u queued, %u refused", sent, queued, full);
  g_assert_cmpuint (queued, ==, 4);
  g_assert_cmpuint (sent, >, 0);
  g_assert_cmpuint (full, >, 0);
  g_assert_cmpuint (sent + queued + full, ==, QUEUE_TEST_SENDS);

  /* The peer goes: the queued ones fail, none is left hanging. */
  for (guint i = 0; i < QUEUE_TEST_SENDS; i++)
    still_queued[i] = !o[i].done;
  raw_server_stop (&raw);
  for (guint i = 0; i < QUEUE_TEST_SENDS; i++)
    if (still_queued[i])
      {
        wait_until (&o[i].done, "a queued send to fail");
        g_assert_error (o[i].error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
        closed++;
      }
  g_assert_cmpuint (closed, ==, 4);
  for (guint i = 0; i < QUEUE_TEST_SENDS; i++)
    g_clear_error (&o[i].error);
  g_signal_handlers_disconnect_by_data (client, f);
  g_object_unref (client);
}

static void
test_sends_flushed_before_close (Fixture *f, gconstpointer data)
{
  Outcome o[5] = { { 0 } }, d = { 0 };

  connect_client (f);
  for (guint i = 0; i < 5; i++)
    sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->client), options_request, NULL, NULL,
                                   on_send_done, &o[i]);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->client), NULL, NULL,
                                       on_disconnect_done, &d);
  wait_until (&d.done, "disconnect");
  for (guint i = 0; i < 5; i++)
    {
      wait_until (&o[i].done, "send");
      g_assert_no_error (o[i].error);
    }
  wait_for_len (f->server_received, 5, "all five before the close");
  while (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (server_side (f))))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (sofia_ws_websocket_get_close_code (server_side (f)), ==, 1000);
}

static void
test_oversized_send_refused (Fixture *f, gconstpointer data)
{
  Outcome o = { 0 }, e = { 0 };
  g_autofree char *big = g_strnfill (2000, 'x');

  g_object_set (f->client, "max-message-size", 1000, NULL);
  connect_client (f);
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->client), big, NULL, NULL, on_send_done,
                                 &o);
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->client), "", NULL, NULL, on_send_done,
                                 &e);
  wait_until (&o.done, "send");
  wait_until (&e.done, "send");
  g_assert_error (o.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_MESSAGE_TOO_LARGE);
  g_assert_error (e.error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_MESSAGE);
  g_clear_error (&o.error);
  g_clear_error (&e.error);
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->client)));
}

static void
on_message_sent (SofiaWsTransport *t, const char *message, GPtrArray *sent)
{
  g_ptr_array_add (sent, g_strdup (message));
}

/* The synchronous send for C servers: parts joined in one message, message-sent announced,
 * errors returned at once. */
static void
test_send_vectors (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) sent = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_strnfill (2000, 'x');
  SofiaWsWebSocket *server;
  const char *head = "SIP/2.0 200 OK\r\n";
  const char *tail = "Content-Length: 0\r\n\r\n";
  GOutputVector parts[] = { { head, strlen (head) }, { NULL, 0 }, { tail, strlen (tail) } };
  GOutputVector binary[] = { { "a\0b", 3 } };
  GOutputVector oversized[] = { { big, 2000 } };

  /* Not connected yet: refused, nothing queued. */
  g_assert_false (sofia_ws_websocket_send_vectors (f->client, parts, G_N_ELEMENTS (parts),
                                                   &error));
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_NOT_CONNECTED);
  g_clear_error (&error);

  connect_client (f);
  server = server_side (f);
  g_signal_connect (server, "message-sent", G_CALLBACK (on_message_sent), sent);

  g_assert_true (sofia_ws_websocket_send_vectors (server, parts, G_N_ELEMENTS (parts), &error));
  g_assert_no_error (error);
  /* Written at once: announced before this returns. */
  g_assert_cmpuint (sent->len, ==, 1);
  g_assert_cmpstr (sent->pdata[0], ==, "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  wait_for_len (f->client_received, 1, "response at the client");
  g_assert_cmpstr (f->client_received->pdata[0], ==,
                   "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");

  /* A NUL byte makes it a binary frame, delivered whole: the string has U+FFFD for it. */
  g_assert_true (sofia_ws_websocket_send_vectors (server, binary, 1, &error));
  g_assert_no_error (error);
  wait_for_len (f->client_received, 2, "the message with a NUL byte at the client");
  g_assert_cmpstr (f->client_received->pdata[1], ==, "a\xef\xbf\xbd" "b");
  g_assert_cmpuint (f->client_errors->len, ==, 0);

  g_object_set (server, "max-message-size", 1000, NULL);
  g_assert_false (sofia_ws_websocket_send_vectors (server, oversized, 1, &error));
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_MESSAGE_TOO_LARGE);
  g_clear_error (&error);
  g_assert_false (sofia_ws_websocket_send_vectors (server, parts, 0, &error));
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_MESSAGE);
  g_clear_error (&error);
  g_assert_cmpuint (sent->len, ==, 2);
  g_assert_cmpstr (sent->pdata[1], ==, "a\xef\xbf\xbd" "b");
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (server)));
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->client)));
  g_signal_handlers_disconnect_by_data (server, sent);
}

typedef struct {
  SofiaWsWebSocket *server;
  guint nested;                   /* messages handled from a nested iteration */
  guint depth;
  guint handled;
} Nesting;

static const char third_message[] = "SIP/2.0 200 OK\r\nCSeq: 3 OPTIONS\r\n\r\n";

static gboolean
set_flag (gpointer flag)
{
  *(gboolean *) flag = TRUE;
  return G_SOURCE_REMOVE;
}

/* A handler running the main context itself, as a modal dialog or a synchronous wrapper
 * would: the nested iterations must neither re-enter libwebsockets (uv_run() does not
 * recurse) nor spin on its fd; they block in poll like any other. */
static void
on_message_iterate (SofiaWsTransport *t, const char *message, Nesting *n)
{
  gboolean fired = FALSE;
  guint iterations = 0;

  if (n->depth > 0)
    n->nested++;
  n->depth++;
  if (n->handled++ == 0)
    {
      /* More data on the socket while we iterate: its fd is readable all along. */
      GOutputVector third = { third_message, strlen (third_message) };

      g_assert_true (sofia_ws_websocket_send_vectors (n->server, &third, 1, NULL));
    }
  g_timeout_add (30, set_flag, &fired);
  while (!fired)
    {
      g_main_context_iteration (NULL, TRUE);
      iterations++;
    }
  n->depth--;
  g_assert_cmpuint (iterations, <, 20);
}

static void
test_nested_iteration_in_handler (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  Nesting n = { 0 };
  SofiaWsWebSocket *server;
  const char *first = "SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n";
  const char *second = "SIP/2.0 200 OK\r\nCSeq: 2 OPTIONS\r\n\r\n";
  GOutputVector one = { first, strlen (first) }, two = { second, strlen (second) };

  connect_client (f);
  server = n.server = server_side (f);
  g_signal_connect (f->client, "message", G_CALLBACK (on_message_iterate), &n);

  /* Both written now, back to back: the second is there while the first one's handler
   * iterates. */
  g_assert_true (sofia_ws_websocket_send_vectors (server, &one, 1, &error));
  g_assert_true (sofia_ws_websocket_send_vectors (server, &two, 1, &error));
  g_assert_no_error (error);
  wait_for_len (f->client_received, 3, "the three messages");
  g_assert_cmpuint (n.nested, ==, 0);           /* never delivered from inside the first */
  g_assert_cmpstr (f->client_received->pdata[0], ==, first);
  g_assert_cmpstr (f->client_received->pdata[1], ==, second);
  g_assert_cmpstr (f->client_received->pdata[2], ==, third_message);

  /* And the connection still works both ways afterwards. */
  g_signal_handlers_disconnect_by_data (f->client, &n);
  send_and_wait (SOFIA_WS_TRANSPORT (f->client), options_request);
  wait_for_len (f->server_received, 1, "request at the server");
  g_assert_cmpstr (f->server_received->pdata[0], ==, options_request);
}

static void
test_close_reason_cut_at_a_character (Fixture *f, gconstpointer data)
{
  g_autoptr(GString) reason = g_string_new ("x");
  g_autoptr(GString) expected = g_string_new ("(code: 4002, x");
  g_autoptr(GVariant) options = NULL;
  const char *message;

  /* "x" and 70 two-byte characters: 123 bytes hold "x" and 61 of them, whole. */
  for (guint i = 0; i < 70; i++)
    g_string_append (reason, "\xc3\xa9");
  for (guint i = 0; i < 61; i++)
    g_string_append (expected, "\xc3\xa9");
  g_string_append (expected, ")");
  options = g_variant_ref_sink (g_variant_new_parsed ("{'code': <@q 4002>, 'reason': <%s>}",
                                                      reason->str));
  connect_client (f);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (server_side (f)), options, NULL,
                                       NULL, NULL);
  while (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->client)))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (sofia_ws_websocket_get_close_code (f->client), ==, 4002);
  message = ((GError *) f->client_errors->pdata[0])->message;
  g_assert_true (g_str_has_suffix (message, expected->str));
}

static void
test_server_disconnects_client (Fixture *f, gconstpointer data)
{
  connect_client (f);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (server_side (f)),
                                       g_variant_new_parsed ("{'code': <@q 4001>}"), NULL, NULL,
                                       NULL);
  while (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->client)))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpstr (f->client_events->str, ==,
                   "connecting,connected,transport-error,disconnected");
  g_assert_error ((GError *) f->client_errors->pdata[0], SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
  g_assert_cmpuint (sofia_ws_websocket_get_close_code (f->client), ==, 4001);
}

static void
on_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Outcome *o = user_data;

  o->ok = sofia_ws_listener_stop_finish (SOFIA_WS_LISTENER (source), result, &o->error);
  o->done = TRUE;
}

/* Stops the fixture's listener and waits until its port is released. */
static void
stop_listener_and_wait (Fixture *f)
{
  Outcome o = { 0 };

  sofia_ws_listener_stop_async (f->listener, NULL, on_stopped, &o);
  wait_until (&o.done, "listener stop");
  g_assert_no_error (o.error);
  g_assert_true (o.ok);
  g_signal_handlers_disconnect_by_data (f->listener, f);
  g_clear_object (&f->listener);
}

static gboolean
events_end_with (Fixture *f, const char *suffix)
{
  return g_str_has_suffix (f->client_events->str, suffix);
}

static void
test_reconnection (Fixture *f, gconstpointer data)
{
  guint16 port = sofia_ws_listener_get_port (f->listener);
  g_autoptr(GError) error = NULL;
  gint64 deadline;

  g_object_set (f->client, "reconnection-attempts", 5, "reconnection-delay", 1, NULL);
  connect_client (f);

  /* The server goes away: the first attempt is immediate and refused. */
  stop_listener_and_wait (f);
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (!events_end_with (f, "connecting,transport-error,disconnected"))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("no refused attempt: %s", f->client_events->str);
      g_main_context_iteration (NULL, TRUE);
    }

  /* It comes back on the same port: a later attempt connects. */
  f->listener = g_object_new (SOFIA_WS_TYPE_LISTENER, "port", port, NULL);
  g_signal_connect (f->listener, "accepted", G_CALLBACK (on_accepted), f);
  g_assert_true (sofia_ws_listener_start (f->listener, &error));
  g_assert_no_error (error);
  while (!events_end_with (f, "connecting,connected"))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("no reconnection: %s", f->client_events->str);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_true (g_str_has_prefix (f->client_events->str,
                                   "connecting,connected,transport-error,disconnected,"
                                   "connecting,transport-error,disconnected,connecting"));
  send_and_wait (SOFIA_WS_TRANSPORT (f->client), options_request);
}

static void
test_stop_releases_port (Fixture *f, gconstpointer data)
{
  guint16 port = sofia_ws_listener_get_port (f->listener);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  gboolean bound;

  connect_client (f);
  stop_listener_and_wait (f);
  g_assert_cmpuint (sofia_ws_websocket_get_close_code (f->client), ==, 1001);

  /* Another socket can bind the port at once. */
  address = g_inet_socket_address_new_from_string ("127.0.0.1", port);
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         NULL);
  bound = g_socket_bind (socket, address, TRUE, &error) && g_socket_listen (socket, &error);
  g_assert_no_error (error);
  g_assert_true (bound);
}

static void
test_stop_without_connections_releases_port (Fixture *f, gconstpointer data)
{
  guint16 port = sofia_ws_listener_get_port (f->listener);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  stop_listener_and_wait (f);
  address = g_inet_socket_address_new_from_string ("127.0.0.1", port);
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         NULL);
  g_assert_true (g_socket_bind (socket, address, TRUE, &error));
  g_assert_no_error (error);
  g_assert_true (g_socket_listen (socket, &error));
  g_assert_no_error (error);
}

static guint
count_events (Fixture *f, const char *event)
{
  g_auto(GStrv) events = g_strsplit (f->client_events->str, ",", -1);
  guint n = 0;

  for (guint i = 0; events[i] != NULL; i++)
    n += g_strcmp0 (events[i], event) == 0;
  return n;
}

static void
test_reconnection_gives_up (Fixture *f, gconstpointer data)
{
  gint64 end;

  g_object_set (f->client, "reconnection-attempts", 2, "reconnection-delay", 1, NULL);
  connect_client (f);
  stop_listener_and_wait (f);

  /* Attempts at about 0 s and 1 s; nothing after. */
  end = g_get_monotonic_time () + 4 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
  g_assert_cmpuint (count_events (f, "connecting"), ==, 3);
  g_assert_true (events_end_with (f, "transport-error,disconnected"));
  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (f->client)), ==,
                   SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
}

static void
test_user_disconnect_does_not_reconnect (Fixture *f, gconstpointer data)
{
  Outcome d = { 0 };
  gint64 end;

  g_object_set (f->client, "reconnection-attempts", 5, NULL);
  connect_client (f);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->client), NULL, NULL,
                                       on_disconnect_done, &d);
  wait_until (&d.done, "disconnect");
  end = g_get_monotonic_time () + G_USEC_PER_SEC;
  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
  g_assert_cmpstr (f->client_events->str, ==,
                   "connecting,connected,disconnecting,disconnected");
}

static void
test_client_origin (Fixture *f, gconstpointer data)
{
  const char *allowed[] = { "https://app.example.com", NULL };
  g_autoptr(SofiaWsWebSocket) refused = NULL;
  g_autoptr(GError) error = NULL;

  sofia_ws_listener_stop (f->listener);
  g_signal_handlers_disconnect_by_data (f->listener, f);
  g_clear_object (&f->listener);
  f->listener = g_object_new (SOFIA_WS_TYPE_LISTENER, "allowed-origins", allowed, NULL);
  g_signal_connect (f->listener, "accepted", G_CALLBACK (on_accepted), f);
  g_assert_true (sofia_ws_listener_start (f->listener, &error));
  g_free (f->url);
  f->url = g_strdup_printf ("ws://127.0.0.1:%u/", sofia_ws_listener_get_port (f->listener));

  refused = sofia_ws_websocket_new (f->url);
  g_object_set (refused, "origin", "https://other.example.com", NULL);
  error = connect_failure (refused);
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_HANDSHAKE_REFUSED);

  g_object_set (f->client, "server", f->url, "origin", "https://app.example.com", NULL);
  connect_client (f);
}


/* ---- peers that misbehave: raw sockets ------------------------------------------------------ */

static void
wait_until_for (gboolean *flag, const char *what, guint seconds)
{
  gint64 deadline = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;

  while (!*flag)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("timed out waiting for %s", what);
      g_main_context_iteration (NULL, TRUE);
    }
}

/* Waits until the fixture's listener holds @n connections (it forgets closed ones). */
#define WAIT_FOR_CONNECTIONS(f, n)                                                        \
  G_STMT_START {                                                                          \
    gint64 wait_deadline_ = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;                \
    while (sofia_ws_listener_get_n_connections ((f)->listener) != (n))                    \
      {                                                                                   \
        if (g_get_monotonic_time () > wait_deadline_)                                     \
          g_error ("the listener still holds %u connections",                             \
                   sofia_ws_listener_get_n_connections ((f)->listener));                  \
        g_main_context_iteration (NULL, TRUE);                                            \
      }                                                                                   \
  } G_STMT_END

static void
on_server_error (SofiaWsTransport *t, const GError *error, GPtrArray *errors)
{
  g_ptr_array_add (errors, g_error_copy (error));
}

/* A raw peer, connected, and the server side of its connection (the fixture's last). */
static RawWs *
raw_peer_connect (Fixture *f, int rcvbuf)
{
  guint accepted = f->accepted->len;
  RawWs *ws = raw_ws_connect (sofia_ws_listener_get_port (f->listener), "/", rcvbuf);

  wait_for_len (f->accepted, accepted + 1, "the raw peer's connection");
  return ws;
}

/* RFC 6455 7.1.5: a close frame without a status code is reported as 1005, not as a lost
 * connection (1006). */
static void
test_close_without_code_is_1005 (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  g_autoptr(RawWs) raw = raw_peer_connect (f, 0);
  SofiaWsWebSocket *server = server_side (f);
  guint16 code = 0;

  g_signal_connect (server, "transport-error", G_CALLBACK (on_server_error), errors);
  g_assert_true (raw_ws_send_frame (raw, 8, NULL, 0));
  while (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (server)))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (sofia_ws_websocket_get_close_code (server), ==, 1005);
  g_assert_cmpuint (errors->len, ==, 1);
  g_assert_error ((GError *) errors->pdata[0], SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
  g_test_message ("%s", ((GError *) errors->pdata[0])->message);
  g_assert_nonnull (strstr (((GError *) errors->pdata[0])->message, "code: 1005"));
  g_assert_null (strstr (((GError *) errors->pdata[0])->message, "1006"));
  /* The server echoes an empty close (RFC 6455 5.5.1), lws's way. */
  if (raw_ws_read_close (raw, &code))
    g_test_message ("the server answered with a close frame (code %u)", code);
  g_signal_handlers_disconnect_by_data (server, errors);
}

/* A message with NUL bytes (a binary SIP body) is delivered, as a text frame (U+0000 is valid
 * UTF-8) and as a binary one; the string has U+FFFD for each NUL. */
static void
test_nul_bytes_delivered (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  g_autoptr(RawWs) raw = raw_peer_connect (f, 0);
  SofiaWsWebSocket *server = server_side (f);
  const char message[] = "MESSAGE sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\nx\0y";

  g_signal_connect (server, "transport-error", G_CALLBACK (on_server_error), errors);
  g_assert_true (raw_ws_send_frame (raw, 1, message, sizeof message - 1));
  g_assert_true (raw_ws_send_frame (raw, 2, message, sizeof message - 1));
  wait_for_len (f->server_received, 2, "both messages");
  for (guint i = 0; i < 2; i++)
    g_assert_cmpstr (f->server_received->pdata[i], ==,
                     "MESSAGE sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\nx\xef\xbf\xbdy");
  g_assert_cmpuint (errors->len, ==, 0);
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (server)));
  g_signal_handlers_disconnect_by_data (server, errors);
}

#define FLOOD_SEND_TIMEOUT 2

/* A peer that floods CRLF keepalives and reads nothing, through a small receive buffer, after
 * a large message filled the socket's buffers (tiny answers alone take minutes to): at most
 * one answer waits in the server's queue, and the peer has send-timeout to read before it is
 * closed (1008, PEER_TIMEOUT) and its queue freed. */
static void
test_keepalive_flood_bounded (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  g_autoptr(RawWs) raw = raw_peer_connect (f, 4096);
  SofiaWsWebSocket *server = server_side (f);
  g_autofree char *big = g_strnfill (4 * 1024 * 1024, 'b');
  GOutputVector message[] = { { big, 4 * 1024 * 1024 } };
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  gint64 deadline = start + (3 * FLOOD_SEND_TIMEOUT + 20) * G_USEC_PER_SEC;
  gsize max_buffered = 0;
  guint pings = 0;

  g_object_set (server, "send-timeout", FLOOD_SEND_TIMEOUT, "max-message-size",
                8 * 1024 * 1024, NULL);
  g_signal_connect (server, "transport-error", G_CALLBACK (on_server_error), errors);
  g_assert_true (sofia_ws_websocket_send_vectors (server, message, 1, &error));
  g_assert_no_error (error);
  while (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (server)))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("still connected after %u keepalives; %" G_GSIZE_FORMAT " bytes queued",
                 pings, sofia_ws_websocket_get_buffered_amount (server));
      for (guint i = 0; i < 100 && raw_ws_can_send (raw); i++)
        if (raw_ws_send_frame (raw, 1, "\r\n\r\n", 4))
          pings++;
      g_main_context_iteration (NULL, FALSE);
      max_buffered = MAX (max_buffered, sofia_ws_websocket_get_buffered_amount (server));
      if (!raw_ws_can_send (raw))
        g_main_context_iteration (NULL, TRUE);
    }
  g_test_message ("%u keepalives; at most %" G_GSIZE_FORMAT " bytes queued; closed after %"
                  G_GINT64_FORMAT " ms", pings, max_buffered,
                  (g_get_monotonic_time () - start) / 1000);
  /* One "\r\n" answer at most, whatever the number of keepalives. */
  g_assert_cmpuint (max_buffered, <=, 2);
  g_assert_cmpuint (sofia_ws_websocket_get_buffered_amount (server), ==, 0);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, FLOOD_SEND_TIMEOUT * G_USEC_PER_SEC);
  g_assert_cmpuint (errors->len, ==, 1);
  g_assert_error ((GError *) errors->pdata[0], SOFIA_WS_ERROR, SOFIA_WS_ERROR_PEER_TIMEOUT);
  WAIT_FOR_CONNECTIONS (f, 0);
  g_signal_handlers_disconnect_by_data (server, errors);
}

/* Messages to a peer that reads nothing: the queue stops at send-queue-bytes (QUEUE_FULL),
 * and a disconnect behind it completes at the send timeout, the queue freed, rather than
 * waiting for ever. */
static void
test_stuck_queue_bounded_and_closed (Fixture *f, gconstpointer data)
{
  g_autoptr(RawWs) raw = raw_peer_connect (f, 4096);
  SofiaWsWebSocket *server = server_side (f);
  g_autofree char *body = g_strnfill (16 * 1024, 'b');
  GOutputVector message[] = { { body, 16 * 1024 } };
  g_autoptr(GError) error = NULL;
  Outcome d = { 0 };
  gint64 asked;
  guint sent = 0;

  g_object_set (server, "send-timeout", FLOOD_SEND_TIMEOUT, "send-queue-bytes", 64 * 1024,
                "send-queue-limit", 100000, NULL);
  while (sofia_ws_websocket_send_vectors (server, message, 1, &error))
    {
      sent++;
      g_assert_cmpuint (sofia_ws_websocket_get_buffered_amount (server), <=, 64 * 1024);
      g_main_context_iteration (NULL, FALSE);
      g_assert_cmpuint (sent, <, 10000);
    }
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_QUEUE_FULL);
  g_test_message ("%u messages of 16 KiB taken before QUEUE_FULL; %" G_GSIZE_FORMAT
                  " bytes queued", sent, sofia_ws_websocket_get_buffered_amount (server));
  g_assert_cmpuint (sofia_ws_websocket_get_buffered_amount (server), >, 0);

  asked = g_get_monotonic_time ();
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (server), NULL, NULL,
                                       on_disconnect_done, &d);
  wait_until_for (&d.done, "the disconnect", 2 * FLOOD_SEND_TIMEOUT + 10);
  g_test_message ("disconnected %" G_GINT64_FORMAT " ms after asking",
                  (g_get_monotonic_time () - asked) / 1000);
  g_assert_cmpint (g_get_monotonic_time () - asked, >=, FLOOD_SEND_TIMEOUT * G_USEC_PER_SEC);
  g_assert_cmpuint (sofia_ws_websocket_get_buffered_amount (server), ==, 0);
  WAIT_FOR_CONNECTIONS (f, 0);
}

/* trace-sip: every message in and out is logged with g_debug(). */
static GPtrArray *traced;

static void
record_debug (const char *log_domain, GLogLevelFlags log_level, const char *message,
              gpointer user_data)
{
  g_ptr_array_add (traced, g_strdup (message));
}

static gboolean
traced_contains (const char *prefix, const char *text)
{
  for (guint i = 0; i < traced->len; i++)
    if (g_str_has_prefix (traced->pdata[i], prefix) && strstr (traced->pdata[i], text) != NULL)
      return TRUE;
  return FALSE;
}

static void
test_trace_sip (Fixture *f, gconstpointer data)
{
  guint handler;

  traced = g_ptr_array_new_with_free_func (g_free);
  /* GLib drops debug messages before any handler unless debug output is on. */
  g_log_set_debug_enabled (TRUE);
  handler = g_log_set_handler ("SofiaWs", G_LOG_LEVEL_DEBUG, record_debug, NULL);
  g_object_set (f->client, "trace-sip", TRUE, NULL);
  connect_client (f);
  send_and_wait (SOFIA_WS_TRANSPORT (f->client), options_request);
  send_and_wait (SOFIA_WS_TRANSPORT (server_side (f)), "SIP/2.0 200 OK\r\nCall-ID: traced\r\n\r\n");
  wait_for_len (f->client_received, 1, "response");
  g_assert_true (traced_contains ("sent to", "Call-ID: ws-call-1"));
  g_assert_true (traced_contains ("received from", "Call-ID: traced"));
  g_log_remove_handler ("SofiaWs", handler);
  g_log_set_debug_enabled (FALSE);
  g_clear_pointer (&traced, g_ptr_array_unref);
}

/* ---- host names: GResolver, asynchronously ------------------------------------------------ */

typedef struct {
  guint ticks;                    /* while the lookup is under way */
  guint lookups_done;             /* test_resolver_finished() when the lookup has ended */
} Ticker;

static gboolean
on_tick (gpointer user_data)
{
  Ticker *t = user_data;

  if (test_resolver_finished (resolver) < t->lookups_done)
    t->ticks++;
  return G_SOURCE_CONTINUE;
}

static char *
url_for_name (Fixture *f, const char *name)
{
  return g_strdup_printf ("ws://%s:%u/", name, sofia_ws_listener_get_port (f->listener));
}

/* A name that takes 1.5 s to resolve: the loop keeps running meanwhile (a 100 ms timer keeps
 * firing), then the connection is made to the address it resolved to. */
static void
test_name_resolved_without_blocking (Fixture *f, gconstpointer data)
{
  g_autofree char *url = url_for_name (f, "slow.sofia-ws.test");
  g_autoptr(SofiaWsWebSocket) client = client_new (f, url);
  Ticker ticker = { 0, test_resolver_finished (resolver) + 1 };
  guint started = test_resolver_started (resolver);
  Outcome o = { 0 };
  gint64 start;
  guint tick_id;

  test_resolver_add (resolver, "slow.sofia-ws.test", 1500, "127.0.0.1");
  tick_id = g_timeout_add (100, on_tick, &ticker);
  start = g_get_monotonic_time ();
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  g_assert_cmpuint (test_resolver_started (resolver), ==, started + 1);
  wait_until (&o.done, "connect by name");
  g_source_remove (tick_id);
  g_assert_no_error (o.error);
  g_assert_true (o.ok);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 1400 * 1000);
  /* About 15 ticks while the lookup was under way; a loop blocked in the lookup would have
   * none (fewer on a loaded machine or under valgrind, but not none). */
  g_test_message ("%u ticks of 100 ms during the 1.5 s lookup", ticker.ticks);
  g_assert_cmpuint (ticker.ticks, >=, 3);
  g_assert_cmpstr (f->client_events->str, ==, "connecting,connected");
  g_assert_cmpstr (sofia_ws_websocket_get_remote_address (client), ==, "127.0.0.1");
  wait_for_len (f->accepted, 1, "accepted");
  send_and_wait (SOFIA_WS_TRANSPORT (client), options_request);
  wait_for_len (f->server_received, 1, "request at the server");
  g_signal_handlers_disconnect_by_data (client, f);
}

/* The Host header carries the name, not the address it resolved to. */
static void
test_name_in_host_header (Fixture *f, gconstpointer data)
{
  RawServer raw = { 0 };
  g_autofree char *url = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(SofiaWsWebSocket) client = NULL;
  Outcome o = { 0 };

  test_resolver_add (resolver, "host.sofia-ws.test", 10, "127.0.0.1");
  raw_server_start (&raw, RAW_HANDSHAKE_THEN_SILENT);
  url = g_strdup_printf ("ws://host.sofia-ws.test:%u/", raw.port);
  expected = g_strdup_printf ("host.sofia-ws.test:%u", raw.port);
  client = sofia_ws_websocket_new (url);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "connect by name to the raw server");
  g_assert_no_error (o.error);
  g_assert_cmpstr (raw.host_header, ==, expected);
  g_clear_object (&client);
  test_drain_main_context ();
  raw_server_stop (&raw);
}

/* Every address of the name in turn: the first refuses (nobody on 127.0.0.2), the second
 * accepts. */
static void
test_name_addresses_tried_in_turn (Fixture *f, gconstpointer data)
{
  g_autofree char *url = url_for_name (f, "two.sofia-ws.test");
  g_autoptr(SofiaWsWebSocket) client = client_new (f, url);
  Outcome o = { 0 };

  test_resolver_add (resolver, "two.sofia-ws.test", 10, "127.0.0.2,127.0.0.1");
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "connect to the second address");
  g_assert_no_error (o.error);
  g_assert_cmpstr (f->client_events->str, ==, "connecting,connected");
  g_assert_cmpstr (sofia_ws_websocket_get_remote_address (client), ==, "127.0.0.1");
  g_signal_handlers_disconnect_by_data (client, f);
}

/* A name that does not resolve: a RESOLVE error naming the host, and the usual events. */
static void
test_name_not_resolved (Fixture *f, gconstpointer data)
{
  g_autofree char *url = url_for_name (f, "fail.sofia-ws.test");
  g_autoptr(SofiaWsWebSocket) client = client_new (f, url);
  g_autoptr(GError) error = NULL;

  test_resolver_add (resolver, "fail.sofia-ws.test", 50, NULL);
  error = connect_failure (client);
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_RESOLVE);
  g_assert_nonnull (strstr (error->message, "fail.sofia-ws.test"));
  g_assert_nonnull (strstr (error->message, "test resolver: no address"));
  g_assert_cmpstr (f->client_events->str, ==, "connecting,transport-error,disconnected");
  g_assert_error ((GError *) f->client_errors->pdata[0], SOFIA_WS_ERROR,
                  SOFIA_WS_ERROR_RESOLVE);
  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (client)), ==,
                   SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  g_assert_cmpuint (f->accepted->len, ==, 0);
  g_signal_handlers_disconnect_by_data (client, f);
}

/* A reconnection whose lookup fails reports RESOLVE and goes on with the schedule; the next
 * one, the name resolving again, connects. */
static void
test_name_not_resolved_on_reconnection (Fixture *f, gconstpointer data)
{
  g_autofree char *url = url_for_name (f, "flaky.sofia-ws.test");
  guint16 port = sofia_ws_listener_get_port (f->listener);
  g_autoptr(SofiaWsWebSocket) client = client_new (f, url);
  g_autoptr(GError) error = NULL;
  Outcome o = { 0 };
  gint64 deadline;

  test_resolver_add (resolver, "flaky.sofia-ws.test", 10, "127.0.0.1");
  g_object_set (client, "reconnection-attempts", 5, "reconnection-delay", 1, NULL);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "connect by name");
  g_assert_no_error (o.error);

  test_resolver_add (resolver, "flaky.sofia-ws.test", 10, NULL);
  stop_listener_and_wait (f);
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (!g_str_has_suffix (f->client_events->str, "connecting,transport-error,disconnected"))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("no failed reconnection: %s", f->client_events->str);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_cmpuint (f->client_errors->len, ==, 2);       /* the loss, then the lookup */
  g_assert_error ((GError *) f->client_errors->pdata[1], SOFIA_WS_ERROR,
                  SOFIA_WS_ERROR_RESOLVE);

  test_resolver_add (resolver, "flaky.sofia-ws.test", 10, "127.0.0.1");
  f->listener = g_object_new (SOFIA_WS_TYPE_LISTENER, "port", port, NULL);
  g_signal_connect (f->listener, "accepted", G_CALLBACK (on_accepted), f);
  g_assert_true (sofia_ws_listener_start (f->listener, &error));
  g_assert_no_error (error);
  while (!g_str_has_suffix (f->client_events->str, "connecting,connected"))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("no reconnection: %s", f->client_events->str);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_true (g_str_has_prefix (f->client_events->str,
                                   "connecting,connected,transport-error,disconnected,"
                                   "connecting,transport-error,disconnected,connecting"));
  g_signal_handlers_disconnect_by_data (client, f);
}

/* A disconnect while the name is being looked up drops the lookup: the resolver sees it
 * cancelled, nothing happens when it would have answered, and no connection is made. */
static void
test_disconnect_during_resolution (Fixture *f, gconstpointer data)
{
  g_autofree char *url = url_for_name (f, "slow2.sofia-ws.test");
  g_autoptr(SofiaWsWebSocket) client = client_new (f, url);
  guint finished = test_resolver_finished (resolver);
  guint cancelled = test_resolver_cancelled (resolver);
  Outcome o = { 0 }, d = { 0 };
  g_autofree char *events = NULL;
  gint64 end;

  test_resolver_add (resolver, "slow2.sofia-ws.test", 800, "127.0.0.1");
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  end = g_get_monotonic_time () + 200 * 1000;
  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
  g_assert_false (o.done);
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL,
                                       on_disconnect_done, &d);
  wait_until (&d.done, "disconnect");
  wait_until (&o.done, "the connect to end");
  g_assert_false (o.ok);
  g_clear_error (&o.error);
  events = g_strdup (f->client_events->str);
  g_assert_null (strstr (events, "connected,"));
  g_assert_true (g_str_has_suffix (events, "disconnected"));

  /* The lookup ends (cancelled) and nothing follows. */
  test_resolver_wait_idle (resolver);
  g_assert_cmpuint (test_resolver_finished (resolver), ==, finished + 1);
  g_assert_cmpuint (test_resolver_cancelled (resolver), ==, cancelled + 1);
  end = g_get_monotonic_time () + 300 * 1000;
  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
  g_assert_cmpstr (f->client_events->str, ==, events);
  g_assert_cmpuint (f->accepted->len, ==, 0);
  g_assert_cmpint (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (client)), ==,
                   SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
  g_signal_handlers_disconnect_by_data (client, f);
}

/* The last reference dropped while a reconnection looks the name up (a connect call would
 * hold the transport; a reconnection does not): the lookup is cancelled and its answer
 * touches nothing (valgrind would see a use after free). */
static void
test_dispose_during_resolution (Fixture *f, gconstpointer data)
{
  g_autofree char *url = url_for_name (f, "slow3.sofia-ws.test");
  SofiaWsWebSocket *client = client_new (f, url);
  guint cancelled = test_resolver_cancelled (resolver);
  guint started;
  gint64 deadline;
  Outcome o = { 0 };

  test_resolver_add (resolver, "slow3.sofia-ws.test", 10, "127.0.0.1");
  g_object_set (client, "reconnection-attempts", 3, NULL);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL, on_connect_done, &o);
  wait_until (&o.done, "connect by name");
  g_assert_no_error (o.error);

  test_resolver_add (resolver, "slow3.sofia-ws.test", 800, "127.0.0.1");
  started = test_resolver_started (resolver);
  stop_listener_and_wait (f);
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (test_resolver_started (resolver) == started)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("no reconnection: %s", f->client_events->str);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_true (g_str_has_suffix (f->client_events->str, "disconnected,connecting"));
  g_signal_handlers_disconnect_by_data (client, f);
  g_assert_finalize_object (client);
  test_resolver_wait_idle (resolver);
  g_assert_cmpuint (test_resolver_cancelled (resolver), ==, cancelled + 1);
}

/* The connection timeout covers the lookup: a lookup slower than it fails the connect with
 * CONNECT_TIMEOUT, and is cancelled. */
static void
test_connect_timeout_covers_resolution (Fixture *f, gconstpointer data)
{
  g_autofree char *url = url_for_name (f, "slow4.sofia-ws.test");
  g_autoptr(SofiaWsWebSocket) client = client_new (f, url);
  guint cancelled = test_resolver_cancelled (resolver);
  g_autoptr(GError) error = NULL;
  gint64 start;
  double elapsed;

  test_resolver_add (resolver, "slow4.sofia-ws.test", 2500, "127.0.0.1");
  g_object_set (client, "connection-timeout", 1, NULL);
  start = g_get_monotonic_time ();
  error = connect_failure (client);
  elapsed = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECT_TIMEOUT);
  g_assert_nonnull (strstr (error->message, "still resolving slow4.sofia-ws.test"));
  g_assert_cmpfloat (elapsed, >=, 0.9);
  g_assert_cmpstr (f->client_events->str, ==, "connecting,transport-error,disconnected");
  /* The timeout came first: the lookup was still under way, and was cancelled. */
  test_resolver_wait_idle (resolver);
  g_assert_cmpuint (test_resolver_cancelled (resolver), ==, cancelled + 1);
  g_assert_cmpuint (f->accepted->len, ==, 0);
  g_signal_handlers_disconnect_by_data (client, f);
}

/* Over wss the certificate is checked against the name, not the address it resolved to: the
 * server's certificate names localhost and 127.0.0.1, so a name that resolves to 127.0.0.1
 * but is not in the certificate is refused, while localhost is accepted (test_wss). */
static void
test_wss_name_checked_not_address (Fixture *f, gconstpointer data)
{
  g_autofree char *url = wss_url (f, "other.sofia-ws.test");
  g_autoptr(SofiaWsWebSocket) client = client_new (f, url);
  g_autoptr(GError) error = NULL;
  guint started = test_resolver_started (resolver);

  test_resolver_add (resolver, "other.sofia-ws.test", 10, "127.0.0.1");
  g_object_set (client, "tls-ca-file", f->pki->ca, NULL);
  error = connect_failure (client);
  g_assert_cmpuint (test_resolver_started (resolver), ==, started + 1);
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_TLS);
  g_assert_cmpstr (f->client_events->str, ==, "connecting,transport-error,disconnected");
  g_assert_cmpuint (f->accepted->len, ==, 0);
  g_signal_handlers_disconnect_by_data (client, f);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  resolver = test_resolver_install ();

#define ADD(path, fn) \
  g_test_add ("/websocket/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
#define ADD_WSS(path, fn) \
  g_test_add ("/websocket/" path, Fixture, NULL, wss_fixture_setup, fn, wss_fixture_teardown)

  ADD ("connect-send-receive-disconnect", test_connect_send_receive_disconnect);
  ADD ("connect-refused", test_connect_refused);
  ADD ("invalid-url", test_invalid_url);
  ADD ("connect-timeout", test_connect_timeout);
  ADD ("server-without-sip-subprotocol", test_server_without_sip_subprotocol);
  ADD ("handshake-refused", test_handshake_refused);
  ADD ("dead-peer", test_dead_peer);
  ADD ("pings-keep-a-live-peer", test_pings_keep_a_live_peer);
  ADD ("send-queue-limit", test_send_queue_limit);
  ADD ("sends-flushed-before-close", test_sends_flushed_before_close);
  ADD ("oversized-send-refused", test_oversized_send_refused);
  ADD ("send-vectors", test_send_vectors);
  ADD ("nested-iteration-in-handler", test_nested_iteration_in_handler);
  ADD ("server-disconnects-client", test_server_disconnects_client);
  ADD ("close-reason-cut-at-a-character", test_close_reason_cut_at_a_character);
  ADD ("reconnection", test_reconnection);
  ADD ("reconnection-gives-up", test_reconnection_gives_up);
  ADD ("stop-releases-port", test_stop_releases_port);
  ADD ("stop-without-connections-releases-port", test_stop_without_connections_releases_port);
  ADD ("user-disconnect-does-not-reconnect", test_user_disconnect_does_not_reconnect);
  ADD ("host-header", test_host_header);
  ADD ("client-origin", test_client_origin);
  ADD ("trace-sip", test_trace_sip);
  ADD ("close-without-code-is-1005", test_close_without_code_is_1005);
  ADD ("nul-bytes-delivered", test_nul_bytes_delivered);
  ADD ("keepalive-flood-bounded", test_keepalive_flood_bounded);
  ADD ("stuck-queue-bounded-and-closed", test_stuck_queue_bounded_and_closed);
  ADD_WSS ("wss", test_wss);
  ADD_WSS ("wss-wrong-ca-refused", test_wss_wrong_ca_refused);
  ADD_WSS ("wss-verification-off-only-when-asked", test_wss_verification_off_only_when_asked);
  ADD ("wss-to-plain-listener", test_wss_to_plain_listener);
  ADD ("wss-listener-bad-files", test_wss_listener_bad_files);
  ADD ("name-resolved-without-blocking", test_name_resolved_without_blocking);
  ADD ("name-in-host-header", test_name_in_host_header);
  ADD ("name-addresses-tried-in-turn", test_name_addresses_tried_in_turn);
  ADD ("name-not-resolved", test_name_not_resolved);
  ADD ("name-not-resolved-on-reconnection", test_name_not_resolved_on_reconnection);
  ADD ("disconnect-during-resolution", test_disconnect_during_resolution);
  ADD ("dispose-during-resolution", test_dispose_during_resolution);
  ADD ("connect-timeout-covers-resolution", test_connect_timeout_covers_resolution);
  ADD_WSS ("wss-name-checked-not-address", test_wss_name_checked_not_address);

#undef ADD
#undef ADD_WSS

  status = g_test_run ();
  test_resolver_uninstall (resolver);
  return status;
}
