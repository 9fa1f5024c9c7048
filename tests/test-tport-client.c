/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Outgoing WebSocket connections from Sofia's NTA through the tport module
 * (sofia_ws_tport_add_client() + NTATAG_TPORT): to the project's registrar (a second Sofia
 * process, started on port 0 and stopped by PID) and to a real Kamailio with its websocket
 * module. Requests go out over a connection the module dials, later requests reuse it, the
 * peer's requests come back over it, and failures (refused, silent peer, TLS) end the request
 * with 503 and leave nothing behind. The agent runs on a GLib root, or on Sofia's own epoll
 * root driving the module's GMainContext. */
#include <sofia-ws/sofia-ws-tport.h>

#include <string.h>

#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/tport_tag.h>

#include "support/drain.h"
#include "support/kamailio-peer.h"
#include "support/registrar-peer.h"
#include "support/test-resolver.h"
#include "support/valgrind-compat.h"

typedef struct {
  gboolean plain_root;
  gboolean wss;
} Params;

/* The default GResolver of the whole test: made-up names, no DNS (see main()). */
static TestResolver *resolver;

typedef struct {
  const Params *params;
  RegistrarPeer *registrar;
  guint16 port;
  TestCertificate *certificate;   /* wss: the registrar's */
  su_root_t *root;
  nta_agent_t *agent;
  nta_leg_t *leg;
  tport_t *client;
  GPtrArray *requests;            /* method names of requests the agent received */
} Fixture;

typedef struct {
  int status;
  char *phrase;
  char *via;
} Result;

/* The client's WSTAG_CONNECT_TIMEOUT: 2 s, and more where valgrind runs both ends (a wss
 * handshake with a registrar under memcheck on a loaded machine took longer than 2 s). */
static guint
connect_timeout (void)
{
  return RUNNING_ON_VALGRIND ? 10 : 2;
}

/* ---- the registrar ------------------------------------------------------------------------ */

static void
start_registrar (Fixture *f)
{
  g_autofree char *certificate_option = NULL;
  g_autofree char *key_option = NULL;
  const char *args[5] = { "--listen", "sip:127.0.0.1:0;transport=ws", NULL };

  if (f->params->wss)
    {
      f->certificate = test_certificate_new ("127.0.0.1");
      certificate_option = g_strdup_printf ("--tls-certificate=%s", f->certificate->certificate);
      key_option = g_strdup_printf ("--tls-key=%s", f->certificate->key);
      args[1] = "sips:127.0.0.1:0;transport=wss";
      args[2] = certificate_option;
      args[3] = key_option;
    }
  f->registrar = registrar_peer_start (args);
  f->port = registrar_peer_get_port (f->registrar, f->params->wss ? "wss" : "ws");
  g_assert_cmpuint (f->port, >, 0);
}

/* While the test reads the registrar, the agent's loop and GLib's default context keep
 * running: the registrar may be waiting for us. */
static void
iterate_both (gpointer data)
{
  Fixture *f = data;

  if (f->params->plain_root)
    {
      su_root_step (f->root, 5);
      g_main_context_iteration (NULL, FALSE);
    }
  else
    g_main_context_iteration (NULL, TRUE);
}

static char *
registrar_line (Fixture *f, const char *prefix)
{
  return registrar_peer_read_line (f->registrar, prefix, iterate_both, f);
}

/* ---- the agent ---------------------------------------------------------------------------- */

/* Runs the agent's root (GLib's main context, or Sofia's own loop) until @done. */
static gboolean
run_until (Fixture *f, int *done, guint seconds)
{
  gint64 deadline = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;

  while (!*done && g_get_monotonic_time () < deadline)
    {
      if (f->params->plain_root)
        su_root_step (f->root, 10);
      else
        g_main_context_iteration (NULL, TRUE);
    }
  return *done;
}

static void
spin (Fixture *f, guint ms)
{
  gint64 deadline = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < deadline)
    {
      if (f->params->plain_root)
        su_root_step (f->root, 10);
      else if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
}

static int
on_request (nta_leg_magic_t *magic,
            nta_leg_t       *leg,
            nta_incoming_t  *irq,
            sip_t const     *sip)
{
  Fixture *f = (Fixture *) magic;

  g_ptr_array_add (f->requests, g_strdup (sip->sip_request->rq_method_name));
  return 200;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ca = NULL;

  f->params = data;
  f->requests = g_ptr_array_new_with_free_func (g_free);
  start_registrar (f);

  if (f->params->plain_root)
    f->root = su_root_create (f);
  else
    {
      f->root = su_glib_root_create (f);
      g_source_attach (su_glib_root_gsource (f->root), NULL);
    }
  f->agent = nta_agent_create (f->root, URL_STRING_MAKE ("sip:127.0.0.1:0;transport=tcp"),
                               NULL, NULL, NTATAG_UA (0), TAG_END ());
  g_assert_nonnull (f->agent);
  f->leg = nta_leg_tcreate (f->agent, on_request, (nta_leg_magic_t *) f, NTATAG_NO_DIALOG (1),
                            TAG_END ());
  ca = f->certificate ? g_strdup (f->certificate->certificate) : NULL;
  f->client = sofia_ws_tport_add_client (f->agent, f->params->wss ? "wss" : "ws", &error,
                                         TAG_IF (ca, WSTAG_TLS_CA_FILE (ca)),
                                         WSTAG_CONNECT_TIMEOUT (connect_timeout ()),
                                         TAG_END ());
  g_assert_no_error (error);
  g_assert_nonnull (f->client);
  g_assert_true (sofia_ws_tport_is_ws (f->client));
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  nta_leg_destroy (f->leg);
  nta_agent_destroy (f->agent);
  spin (f, 50);
  su_root_destroy (f->root);
  if (!f->params->plain_root)
    test_drain_main_context ();
  g_clear_pointer (&f->registrar, registrar_peer_stop);
  g_clear_pointer (&f->certificate, test_certificate_free);
  g_ptr_array_unref (f->requests);
}

static int
on_response (nta_outgoing_magic_t *magic,
             nta_outgoing_t       *orq,
             sip_t const          *sip)
{
  Result *result = (Result *) magic;
  int status = sip ? sip->sip_status->st_status : nta_outgoing_status (orq);

  if (status < 200)
    return 0;
  result->status = status;
  result->phrase = g_strdup (sip ? sip->sip_status->st_phrase : "");
  if (sip != NULL && sip->sip_via != NULL)
    result->via = sip_header_as_string (NULL, (sip_header_t const *) sip->sip_via);
  return 0;
}

static void
result_clear (Result *result)
{
  g_free (result->phrase);
  su_free (NULL, result->via);
  memset (result, 0, sizeof *result);
}

/* Sends @method to @uri over the client and waits for the final response. */
static void
request (Fixture *f, const char *method, const char *uri, Result *result, tag_type_t tag,
         tag_value_t value, ...)
{
  nta_outgoing_t *orq;
  g_autoptr(GError) error = NULL;
  tport_t *connection;
  ta_list ta;

  memset (result, 0, sizeof *result);
  connection = sofia_ws_tport_connect (f->client, uri, &error);
  g_assert_no_error (error);
  g_assert_nonnull (connection);
  g_assert_nonnull (sofia_ws_tport_get_transport (connection));
  ta_start (ta, tag, value);
  orq = nta_outgoing_tcreate (f->leg, on_response, (nta_outgoing_magic_t *) result, NULL,
                              sip_method_unknown, method, URL_STRING_MAKE (uri),
                              SIPTAG_TO_STR (uri), SIPTAG_FROM_STR ("<sip:client@127.0.0.1>"),
                              NTATAG_TPORT (connection), ta_tags (ta));
  ta_end (ta);
  g_assert_nonnull (orq);
  g_assert_true (run_until (f, &result->status, 40));
  nta_outgoing_destroy (orq);
}

static char *
registrar_uri (Fixture *f)
{
  return g_strdup_printf ("sip:127.0.0.1:%u;transport=%s", f->port, f->params->wss ? "wss" : "ws");
}

/* ---- tests -------------------------------------------------------------------------------- */

static void
test_options (Fixture *f, gconstpointer data)
{
  g_autofree char *uri = registrar_uri (f);
  g_autofree char *first = NULL, *second = NULL;
  Result result;

  request (f, "OPTIONS", uri, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  /* The module's Via, with what the registrar saw. */
  g_assert_nonnull (result.via);
  g_assert_true (g_str_has_prefix (result.via, f->params->wss ? "SIP/2.0/WSS sofia-ws.invalid;"
                                                              : "SIP/2.0/WS sofia-ws.invalid;"));
  g_assert_nonnull (strstr (result.via, "received=127.0.0.1"));
  first = registrar_line (f, "OPTIONS from ");
  result_clear (&result);

  /* The second request reuses the connection: the registrar sees the same source port. */
  request (f, "OPTIONS", uri, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  second = registrar_line (f, "OPTIONS from ");
  g_assert_cmpstr (first, ==, second);
  result_clear (&result);
}

/* REGISTER through the client, then bob (another Sofia client connection of the same agent
 * would reuse ours, so bob is a plain SofiaWsWebSocket) sends a MESSAGE to the registered user:
 * the registrar relays it over our connection, and the agent answers it. */
static void
test_request_back (Fixture *f, gconstpointer data)
{
  g_autofree char *uri = registrar_uri (f);
  g_autofree char *aor = g_strdup_printf ("sip:alice@127.0.0.1:%u", f->port);
  g_autofree char *server = g_strdup_printf ("%s://127.0.0.1:%u/", f->params->wss ? "wss" : "ws",
                                             f->port);
  const char *ca = f->certificate ? f->certificate->certificate : NULL;
  g_autofree char *line = NULL;
  g_autoptr(SofiaWsWebSocket) bob = NULL;
  Result result;
  GMainContext *bob_context = NULL;

  request (f, "REGISTER", uri, &result,
           SIPTAG_TO_STR (aor), SIPTAG_CONTACT_STR ("<sip:alice@sofia-ws.invalid;transport=ws>"),
           SIPTAG_EXPIRES_STR ("600"), TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  result_clear (&result);
  line = registrar_line (f, "REGISTER ");
  g_assert_nonnull (strstr (line, ": 1 binding(s)"));

  /* bob lives on GLib's default context; on the plain root, iterate it by hand too. */
  bob = sofia_ws_websocket_new (server);
  if (ca != NULL)
    g_object_set (bob, "tls-ca-file", ca, NULL);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (bob), NULL, NULL, NULL, NULL);
  bob_context = g_main_context_default ();
  while (!sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (bob)))
    {
      g_main_context_iteration (bob_context, FALSE);
      if (f->params->plain_root)
        su_root_step (f->root, 5);
    }
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (bob),
                                 "MESSAGE sip:alice@127.0.0.1 SIP/2.0\r\n"
                                 "Via: SIP/2.0/WS bob.invalid;branch=z9hG4bK-back-1\r\n"
                                 "Max-Forwards: 70\r\n"
                                 "To: <sip:alice@127.0.0.1>\r\n"
                                 "From: <sip:bob@127.0.0.1>;tag=b1\r\n"
                                 "Call-ID: request-back-1\r\n"
                                 "CSeq: 1 MESSAGE\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 5\r\n\r\nhello",
                                 NULL, NULL, NULL, NULL);
  {
    gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

    while (f->requests->len == 0 && g_get_monotonic_time () < deadline)
      {
        g_main_context_iteration (bob_context, FALSE);
        if (f->params->plain_root)
          su_root_step (f->root, 5);
        else
          g_usleep (500);
      }
  }
  g_assert_cmpuint (f->requests->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (f->requests, 0), ==, "MESSAGE");
  g_clear_pointer (&line, g_free);
  line = registrar_line (f, "MESSAGE relayed: ");
  g_assert_cmpstr (line, ==, "MESSAGE relayed: 200 OK");

  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (bob), NULL, NULL, NULL, NULL);
}

/* Nothing listens: the request ends with 503 at once, and the failed connection is gone. */
static void
test_refused (Fixture *f, gconstpointer data)
{
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *uri = NULL;
  g_autofree char *good = registrar_uri (f);
  Result result;
  guint16 port;

  /* A port that was free a moment ago. */
  g_assert_true (g_socket_bind (socket, any, FALSE, NULL));
  bound = g_socket_get_local_address (socket, NULL);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (socket, NULL);
  uri = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", port);

  request (f, "OPTIONS", uri, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 503);
  result_clear (&result);

  /* And the client still works. */
  request (f, "OPTIONS", good, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  result_clear (&result);
}

/* A TCP peer that accepts and never answers the handshake: 503 after the connect timeout. */
static void
test_silent_peer (Fixture *f, gconstpointer data)
{
  g_autoptr(GSocketListener) listener = g_socket_listener_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *uri = NULL;
  Result result;
  guint16 port;
  gint64 started;

  port = g_socket_listener_add_any_inet_port (listener, NULL, &error);
  g_assert_no_error (error);
  uri = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", port);
  started = g_get_monotonic_time ();
  request (f, "OPTIONS", uri, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 503);
  /* The connect timeout, not NTA's 32 s transaction timer. */
  g_assert_cmpint (g_get_monotonic_time () - started, <, (connect_timeout () + 8) * G_USEC_PER_SEC);
  result_clear (&result);
}

/* wss to a server whose certificate the client's CA file does not vouch for: 503. */
static void
test_wrong_ca (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestCertificate) other = test_certificate_new ("other");
  g_autofree char *uri = registrar_uri (f);
  tport_t *strict;
  Result result;

  strict = sofia_ws_tport_add_client (f->agent, "wss", &error, WSTAG_TLS_CA_FILE (other->certificate),
                                      TAG_END ());
  g_assert_no_error (error);
  f->client = strict;
  request (f, "OPTIONS", uri, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 503);
  result_clear (&result);
}

/* ---- Kamailio ------------------------------------------------------------------------------ */

static void
test_kamailio_register (Fixture *f, gconstpointer data)
{
  g_autoptr(KamailioPeer) kamailio = NULL;
  g_autofree char *uri = NULL;
  g_autofree char *aor = NULL;
  Result result;

  kamailio = kamailio_peer_start_or_skip ();
  if (kamailio == NULL)
    return;
  uri = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", kamailio_peer_get_port (kamailio));
  aor = g_strdup_printf ("sip:sofia@127.0.0.1:%u", kamailio_peer_get_port (kamailio));

  request (f, "REGISTER", uri, &result, SIPTAG_TO_STR (aor),
           SIPTAG_CONTACT_STR ("<sip:sofia@sofia-ws.invalid;transport=ws>"),
           SIPTAG_EXPIRES_STR ("300"), TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  result_clear (&result);
  request (f, "OPTIONS", uri, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  result_clear (&result);
}

static void
count (int *counter)
{
  (*counter)++;
}

/* Kamailio restarts under a registered client with WSTAG_RECONNECT: the connection's tport
 * stays, reconnects, and the client registers again over it. */
static void
test_kamailio_restart (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KamailioPeer) kamailio = NULL;
  g_autofree char *uri = NULL;
  g_autofree char *aor = NULL;
  tport_t *reconnecting, *connection;
  SofiaWsTransport *transport;
  gulong connected = 0;
  int reconnections = 0;
  Result result;

  kamailio = kamailio_peer_start_or_skip ();
  if (kamailio == NULL)
    return;
  uri = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", kamailio_peer_get_port (kamailio));
  aor = g_strdup_printf ("sip:sofia@127.0.0.1:%u", kamailio_peer_get_port (kamailio));
  reconnecting = sofia_ws_tport_add_client (f->agent, "ws", &error, WSTAG_RECONNECT (5),
                                            TAG_END ());
  g_assert_no_error (error);
  f->client = reconnecting;
  connection = sofia_ws_tport_connect (reconnecting, uri, &error);
  g_assert_no_error (error);
  tport_ref (connection);
  transport = sofia_ws_tport_get_transport (connection);

  request (f, "REGISTER", uri, &result, SIPTAG_TO_STR (aor),
           SIPTAG_CONTACT_STR ("<sip:sofia@sofia-ws.invalid;transport=ws>"),
           SIPTAG_EXPIRES_STR ("300"), TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  result_clear (&result);

  connected = g_signal_connect_swapped (transport, "connected", G_CALLBACK (count), &reconnections);
  kamailio_peer_restart (kamailio, &error);
  g_assert_no_error (error);
  /* The same connection tport, reconnected underneath (a request written into the dying
   * connection would be lost, as over TCP: NTA does not retransmit on reliable transports). */
  g_assert_true (run_until (f, &reconnections, 20));
  g_signal_handler_disconnect (transport, connected);
  request (f, "REGISTER", uri, &result, SIPTAG_TO_STR (aor),
           SIPTAG_CONTACT_STR ("<sip:sofia@sofia-ws.invalid;transport=ws>"),
           SIPTAG_EXPIRES_STR ("300"), TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  result_clear (&result);
  g_assert_true (sofia_ws_tport_connect (reconnecting, uri, &error) == connection);
  g_assert_true (sofia_ws_tport_get_transport (connection) == transport);
  g_assert_false (tport_is_closed (connection));
  tport_unref (connection);
}

/* ---- host names ---------------------------------------------------------------------------- */

typedef struct {
  guint ticks;                    /* while the lookup is under way */
  guint lookups_done;             /* test_resolver_finished() once it has ended */
} Ticker;

static void
on_tick (su_root_magic_t *magic, su_timer_t *timer, su_timer_arg_t *arg)
{
  Ticker *t = (Ticker *) arg;

  if (test_resolver_finished (resolver) < t->lookups_done)
    t->ticks++;
}

/* A connection to a host name that takes 1.5 s to resolve: sofia_ws_tport_connect() returns
 * at once, the agent's root keeps running (a 100 ms su_timer keeps firing), and the request
 * sent meanwhile goes out once connected. The connection then carries the address the name
 * resolved to, and is found again by the name and by that address. */
static void
test_name (Fixture *f, gconstpointer data)
{
  g_autofree char *uri = g_strdup_printf ("sip:slow.sofia-ws.test:%u;transport=ws", f->port);
  g_autofree char *by_address = registrar_uri (f);
  g_autoptr(GError) error = NULL;
  Ticker ticker = { 0, test_resolver_finished (resolver) + 1 };
  guint started = test_resolver_started (resolver);
  su_timer_t *timer = su_timer_create (su_root_task (f->root), 100);
  tport_t *connection;
  Result result;
  gint64 start;

  test_resolver_add (resolver, "slow.sofia-ws.test", 1500, "127.0.0.1");
  g_assert_cmpint (su_timer_run (timer, on_tick, (su_timer_arg_t *) &ticker), ==, 0);
  start = g_get_monotonic_time ();
  request (f, "OPTIONS", uri, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  result_clear (&result);
  g_assert_cmpuint (test_resolver_started (resolver), ==, started + 1);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 1400 * 1000);
  g_test_message ("%u ticks of 100 ms during the 1.5 s lookup", ticker.ticks);
  g_assert_cmpuint (ticker.ticks, >=, 3);
  su_timer_destroy (timer);

  connection = sofia_ws_tport_connect (f->client, uri, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tport_name (connection)->tpn_canon, ==, "slow.sofia-ws.test");
  g_assert_cmpstr (tport_name (connection)->tpn_host, ==, "127.0.0.1");
  g_assert_true (sofia_ws_tport_connect (f->client, by_address, &error) == connection);
  g_assert_no_error (error);
  g_assert_cmpuint (test_resolver_started (resolver), ==, started + 1);
  request (f, "OPTIONS", uri, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  result_clear (&result);
}

/* A name that does not resolve: the request sent over the connection ends with 503, the
 * connection is closed, and the client still works. */
static void
test_name_not_resolved (Fixture *f, gconstpointer data)
{
  g_autofree char *uri = g_strdup_printf ("sip:fail.sofia-ws.test:%u;transport=ws", f->port);
  g_autofree char *good = registrar_uri (f);
  g_autoptr(GError) error = NULL;
  tport_t *connection;
  Result result;

  test_resolver_add (resolver, "fail.sofia-ws.test", 50, NULL);
  connection = sofia_ws_tport_connect (f->client, uri, &error);
  g_assert_no_error (error);
  tport_ref (connection);
  request (f, "OPTIONS", uri, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 503);
  result_clear (&result);
  g_assert_true (tport_is_closed (connection));
  tport_unref (connection);

  request (f, "OPTIONS", good, &result, TAG_END ());
  g_assert_cmpint (result.status, ==, 200);
  result_clear (&result);
}

int
main (int argc, char **argv)
{
  static const Params glib_ws = { FALSE, FALSE };
  static const Params plain_ws = { TRUE, FALSE };
  static const Params glib_wss = { FALSE, TRUE };
  static const Params plain_wss = { TRUE, TRUE };

  g_test_init (&argc, &argv, NULL);
  su_init ();
  resolver = test_resolver_install ();

#define ADD(path, params, fn) \
  g_test_add ("/tport-client/" path, Fixture, &params, fixture_setup, fn, fixture_teardown)
  ADD ("glib/options", glib_ws, test_options);
  ADD ("glib/request-back", glib_ws, test_request_back);
  ADD ("glib/refused", glib_ws, test_refused);
  ADD ("glib/silent-peer", glib_ws, test_silent_peer);
  ADD ("glib/kamailio-register", glib_ws, test_kamailio_register);
  ADD ("glib/kamailio-restart", glib_ws, test_kamailio_restart);
  ADD ("plain-root/kamailio-restart", plain_ws, test_kamailio_restart);
  ADD ("glib/wss-options", glib_wss, test_options);
  ADD ("glib/wss-wrong-ca", glib_wss, test_wrong_ca);
  ADD ("plain-root/options", plain_ws, test_options);
  ADD ("plain-root/request-back", plain_ws, test_request_back);
  ADD ("plain-root/refused", plain_ws, test_refused);
  ADD ("plain-root/wss-options", plain_wss, test_options);
  ADD ("glib/name", glib_ws, test_name);
  ADD ("plain-root/name", plain_ws, test_name);
  ADD ("glib/name-not-resolved", glib_ws, test_name_not_resolved);
  ADD ("plain-root/name-not-resolved", plain_ws, test_name_not_resolved);
#undef ADD

  {
    int status = g_test_run ();

    test_resolver_uninstall (resolver);
    su_deinit ();
    return status;
  }
}
