/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ws tport module (plugin/tport-ws.c) under Sofia-SIP's own NTA and NUA, in process, on a
 * su_glib root, with real WebSocket clients over loopback: what a SIP-over-WebSocket server
 * built on sofia-ws must do (RFC 7118 framing, Via received/rport, 400 without losing the
 * connection, keepalives, idle close with 1000, requests to a client over its connection),
 * that no request of any kind reaches NTA's DNS assert while WS listeners exist (and that the
 * test would see it if one did), and that a thousand connections leave no fds or memory. */
#include "tport-ws-abi.h"

#include <sofia-ws/sofia-ws-tport.h>

#include <gio/gio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "support/valgrind-compat.h"

#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport_tag.h>

#include "support/drain.h"
#include "support/outcome.h"
#include "support/raw-ws.h"
#include "support/registrar-peer.h"
#include "support/sip-text.h"
#include "support/ws-probe.h"

/* What the application saw of a request. */
typedef struct {
  char *method;
  char *body;                     /* NULL without a payload; NUL-terminated beyond body_len */
  gsize body_len;
  char *via_protocol;             /* the top Via's protocol, as NTA was given it */
  gboolean is_ws;                 /* sofia_ws_tport_is_ws() of its tport */
  SofiaWsTransport *transport;    /* sofia_ws_tport_get_transport() of its tport (no ref) */
} Seen;

typedef struct {
  su_root_t *root;
  nta_agent_t *agent;             /* NTA fixtures: ours; NUA fixtures: the stack's */
  nta_leg_t *leg;
  nua_t *nua;
  GPtrArray *nua_handles;         /* nua_handle_t * given to us with incoming requests */
  int nua_shutdown_status;
  int nua_message_status;
  tport_t *ws;                    /* the ws listener (a primary) */
  char *url;                      /* ws://127.0.0.1:PORT/ */
  guint wakeup;                   /* a timeout that keeps g_main_context_iteration () lively */

  /* server side */
  gboolean cycling;               /* the 1,000-connection test: keep nothing per connection */
  GPtrArray *accepted;            /* SofiaWsWebSocket * (refs), the server sides */
  guint server_messages;          /* "message" signals of those */
  GString *server_events;         /* "message;" and "message-sent;" of those, in order */
  GPtrArray *seen;                /* Seen * */
  guint n_requests;
  gboolean keep_tport;
  tport_t *last_tport;            /* a reference to the tport of the last request, if keep_tport */

  /* the client */
  SofiaWsWebSocket *client;
  GPtrArray *client_received;     /* char * */
  guint client_disconnected;
  gboolean client_answers;        /* answer requests with 200 */
  guint client_keepalive;         /* the next client's keepalive-interval, in seconds */
  guint keepalives_answered;
  guint keepalives_missed;
} Fixture;

static void
seen_free (Seen *seen)
{
  g_free (seen->method);
  g_free (seen->body);
  g_free (seen->via_protocol);
  g_free (seen);
}

static gboolean
on_wakeup (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Iterates the main context (which runs the su_root, the listener and the clients) until
 * @cond, failing the test after @seconds. */
#define WAIT_FOR(cond, seconds, what)                                           \
  G_STMT_START {                                                                \
    gint64 wait_deadline_ = g_get_monotonic_time () + (seconds) * G_USEC_PER_SEC; \
    while (!(cond))                                                             \
      {                                                                         \
        if (g_get_monotonic_time () > wait_deadline_)                           \
          g_error ("timed out waiting for %s", what);                           \
        g_main_context_iteration (NULL, TRUE);                                  \
      }                                                                         \
  } G_STMT_END

/* ---- the application: NTA ---------------------------------------------------------------- */

static void
record_request (Fixture *f, sip_t const *sip, tport_t *tport)
{
  Seen *seen;

  f->n_requests++;
  if (f->keep_tport && tport != NULL)
    {
      if (f->last_tport != NULL)
        tport_unref (f->last_tport);
      f->last_tport = tport_ref (tport);
    }
  if (f->cycling)
    return;
  seen = g_new0 (Seen, 1);
  seen->method = g_strdup (sip->sip_request->rq_method_name);
  if (sip->sip_payload != NULL)
    {
      /* Whole, NUL bytes included. */
      seen->body_len = sip->sip_payload->pl_len;
      seen->body = g_malloc0 (seen->body_len + 1);
      memcpy (seen->body, sip->sip_payload->pl_data, seen->body_len);
    }
  if (sip->sip_via != NULL && sip->sip_via->v_protocol != NULL)
    seen->via_protocol = g_strdup (sip->sip_via->v_protocol);
  seen->is_ws = sofia_ws_tport_is_ws (tport);
  seen->transport = sofia_ws_tport_get_transport (tport);
  g_ptr_array_add (f->seen, seen);
}

static int
on_request (nta_leg_magic_t *magic,
            nta_leg_t       *leg,
            nta_incoming_t  *irq,
            sip_t const     *sip)
{
  Fixture *f = (Fixture *) magic;
  tport_t *tport = nta_incoming_transport (f->agent, irq, NULL);

  record_request (f, sip, tport);
  if (sip->sip_request->rq_method != sip_method_ack)
    nta_incoming_treply (irq, SIP_200_OK,
                         TAG_IF (sip->sip_request->rq_method == sip_method_register,
                                 SIPTAG_CONTACT (sip->sip_contact)),
                         TAG_END ());
  nta_incoming_destroy (irq);
  if (tport != NULL)
    tport_unref (tport);
  return 0;
}

/* ---- the application: NUA ---------------------------------------------------------------- */

static void
on_nua_event (nua_event_t   event,
              int           status,
              char const   *phrase,
              nua_t        *nua,
              nua_magic_t  *magic,
              nua_handle_t *nh,
              nua_hmagic_t *hmagic,
              sip_t const  *sip,
              tagi_t        tags[])
{
  Fixture *f = (Fixture *) magic;

  switch (event)
    {
    case nua_i_register:
      record_request (f, sip, NULL);
      nua_respond (nh, SIP_200_OK, SIPTAG_CONTACT (sip->sip_contact), NUTAG_WITH_THIS (nua),
                   TAG_END ());
      g_ptr_array_add (f->nua_handles, nh);
      break;
    case nua_r_message:
      if (status >= 200)
        f->nua_message_status = status;
      break;
    case nua_r_shutdown:
      if (status >= 200)
        f->nua_shutdown_status = status;
      break;
    default:
      break;
    }
}

/* ---- the server sides of the connections -------------------------------------------------- */

static void
on_server_message (SofiaWsTransport *t, const char *message, Fixture *f)
{
  f->server_messages++;
  g_string_append (f->server_events, "message;");
}

static void
on_server_message_sent (SofiaWsTransport *t, const char *message, Fixture *f)
{
  g_string_append (f->server_events, "message-sent;");
}

static void
on_accepted (SofiaWsListener *listener, SofiaWsWebSocket *connection, Fixture *f)
{
  if (f->cycling)
    return;
  g_ptr_array_add (f->accepted, g_object_ref (connection));
  g_signal_connect (connection, "message", G_CALLBACK (on_server_message), f);
  g_signal_connect (connection, "message-sent", G_CALLBACK (on_server_message_sent), f);
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static void
fixture_init (Fixture *f)
{
  f->accepted = g_ptr_array_new_with_free_func (g_object_unref);
  f->server_events = g_string_new (NULL);
  f->seen = g_ptr_array_new_with_free_func ((GDestroyNotify) seen_free);
  f->client_received = g_ptr_array_new_with_free_func (g_free);
  f->nua_handles = g_ptr_array_new ();
  f->root = su_glib_root_create (f);
  g_assert_nonnull (f->root);
  g_source_attach (su_glib_root_gsource (f->root), NULL);
  f->wakeup = g_timeout_add (50, on_wakeup, NULL);
}

static void
listener_ready (Fixture *f)
{
  g_assert_nonnull (f->ws);
  g_assert_true (sofia_ws_tport_is_ws (f->ws));
  g_assert_null (sofia_ws_tport_get_transport (f->ws));
  g_assert_nonnull (sofia_ws_tport_get_listener (f->ws));
  g_signal_connect (sofia_ws_tport_get_listener (f->ws), "accepted", G_CALLBACK (on_accepted),
                    f);
  f->url = g_strdup_printf ("ws://127.0.0.1:%s/", tport_name (f->ws)->tpn_port);
  g_assert_cmpuint (sofia_ws_listener_get_port (sofia_ws_tport_get_listener (f->ws)), ==,
                    (guint) atoi (tport_name (f->ws)->tpn_port));
}

/* @idle: the listener's TPTAG_IDLE() in ms, or 0 for NTA's default; @send_queue_bytes and
 * @send_timeout: its WSTAG_SEND_QUEUE_BYTES() and WSTAG_SEND_TIMEOUT(), or 0 for the default. */
static void
fixture_setup_with (Fixture *f,
                    guint    idle,
                    guint    send_queue_bytes,
                    guint    send_timeout)
{
  g_autoptr(GError) error = NULL;

  fixture_init (f);
  f->agent = nta_agent_create (f->root, (url_string_t *) -1 /* NONE */, NULL, NULL,
                               NTATAG_UA (0), NTATAG_SERVER_RPORT (1), TAG_END ());
  g_assert_nonnull (f->agent);
  f->leg = nta_leg_tcreate (f->agent, on_request, (nta_leg_magic_t *) f, NTATAG_NO_DIALOG (1),
                            TAG_END ());
  g_assert_nonnull (f->leg);
  /* An ordinary transport beside: the one NTA's resolver may pick. */
  g_assert_cmpint (nta_agent_add_tport (f->agent,
                                        URL_STRING_MAKE ("sip:127.0.0.1:0;transport=tcp"),
                                        TAG_END ()), ==, 0);
  f->ws = sofia_ws_tport_add_listener (f->agent, "sip:127.0.0.1:0;transport=ws", &error,
                                       TAG_IF (idle > 0, TPTAG_IDLE (idle)),
                                       TAG_IF (send_queue_bytes > 0,
                                               WSTAG_SEND_QUEUE_BYTES (send_queue_bytes)),
                                       TAG_IF (send_timeout > 0, WSTAG_SEND_TIMEOUT (send_timeout)),
                                       TAG_END ());
  g_assert_no_error (error);
  listener_ready (f);
}

/* @data: the listener's TPTAG_IDLE() in ms, or 0 for NTA's default. */
static void
fixture_setup (Fixture *f, gconstpointer data)
{
  fixture_setup_with (f, GPOINTER_TO_UINT (data), 0, 0);
}

#define BOUNDED_QUEUE_BYTES 16384
#define BOUNDED_SEND_TIMEOUT 2

/* A listener with a small send queue (16 KiB) and a short send timeout (2 s). */
static void
fixture_bounded_setup (Fixture *f, gconstpointer data)
{
  fixture_setup_with (f, 0, BOUNDED_QUEUE_BYTES, BOUNDED_SEND_TIMEOUT);
}

static void
fixture_nua_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture_init (f);
  su_root_threading (f->root, 0);
  f->nua = nua_create (f->root, on_nua_event, (nua_magic_t *) f,
                       NUTAG_URL ("sip:127.0.0.1:0;transport=tcp"),
                       NUTAG_APPL_METHOD ("REGISTER"),
                       NUTAG_ALLOW ("REGISTER"),
                       TAG_END ());
  g_assert_nonnull (f->nua);
  f->ws = sofia_ws_tport_add_nua_listener (f->nua, "sip:127.0.0.1:0;transport=ws", &error,
                                           TAG_END ());
  g_assert_no_error (error);
  f->agent = sofia_ws_tport_get_nua_agent (f->nua, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->agent);
  listener_ready (f);
}

/* NUA in its own stack thread (su_root threading on, as by default): the ws listener lives on
 * the stack thread's own (epoll) root, which drives the module's GMainContext; the test's
 * client and NUA's events stay on this thread. */
static void
fixture_nua_thread_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture_init (f);
  /* The listener's "accepted" runs in the stack thread: keep the fixture's bookkeeping out. */
  f->cycling = TRUE;
  f->nua = nua_create (f->root, on_nua_event, (nua_magic_t *) f,
                       NUTAG_URL ("sip:127.0.0.1:0;transport=tcp"),
                       NUTAG_APPL_METHOD ("REGISTER"),
                       NUTAG_ALLOW ("REGISTER"),
                       TAG_END ());
  g_assert_nonnull (f->nua);
  f->ws = sofia_ws_tport_add_nua_listener (f->nua, "sip:127.0.0.1:0;transport=ws", &error,
                                           TAG_END ());
  g_assert_no_error (error);
  listener_ready (f);
}

static void
on_client_message (SofiaWsTransport *t, const char *message, Fixture *f)
{
  g_ptr_array_add (f->client_received, g_strdup (message));
  if (f->client_answers && sip_text_status (message) == 0)
    {
      g_autofree char *response = sip_text_response (message, 200, "OK");

      sofia_ws_transport_send_async (t, response, NULL, NULL, NULL, NULL);
    }
}

static void
on_client_disconnected (SofiaWsTransport *t, Fixture *f)
{
  f->client_disconnected++;
}

static void
on_client_keepalive (SofiaWsWebSocket *ws, gboolean answered, Fixture *f)
{
  if (answered)
    f->keepalives_answered++;
  else
    f->keepalives_missed++;
}

static void
client_disconnect (Fixture *f)
{
  Outcome o = { 0 };

  if (f->client == NULL)
    return;
  if (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->client)))
    {
      sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->client), NULL, NULL,
                                           on_disconnect_done, &o);
      WAIT_FOR (o.done, 10, "the client's disconnect");
      g_clear_error (&o.error);
    }
  g_signal_handlers_disconnect_by_data (f->client, f);
  g_clear_object (&f->client);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_source_remove (f->wakeup);
  client_disconnect (f);
  for (guint i = 0; i < f->accepted->len; i++)
    g_signal_handlers_disconnect_by_data (f->accepted->pdata[i], f);
  g_ptr_array_unref (f->accepted);
  g_string_free (f->server_events, TRUE);
  if (f->last_tport != NULL)
    tport_unref (f->last_tport);

  if (f->nua != NULL)
    {
      for (guint i = 0; i < f->nua_handles->len; i++)
        nua_handle_destroy (f->nua_handles->pdata[i]);
      nua_shutdown (f->nua);
      WAIT_FOR (f->nua_shutdown_status >= 200, 30, "nua_r_shutdown");
      nua_destroy (f->nua);
    }
  else
    {
      nta_leg_destroy (f->leg);
      nta_agent_destroy (f->agent);
    }
  /* The listener stops with the agent; let libwebsockets finish closing. */
  test_drain_main_context ();
  su_root_destroy (f->root);
  test_drain_main_context ();

  g_ptr_array_unref (f->nua_handles);
  g_ptr_array_unref (f->seen);
  g_ptr_array_unref (f->client_received);
  g_free (f->url);
}

/* A new client, connected; its server side is f->accepted's last. */
static void
client_connect (Fixture *f)
{
  Outcome o = { 0 };
  guint accepted = f->accepted->len;

  g_assert_null (f->client);
  f->client = sofia_ws_websocket_new (f->url);
  g_object_set (f->client, "keepalive-interval", f->client_keepalive, NULL);
  g_signal_connect (f->client, "message", G_CALLBACK (on_client_message), f);
  g_signal_connect (f->client, "disconnected", G_CALLBACK (on_client_disconnected), f);
  g_signal_connect (f->client, "keepalive", G_CALLBACK (on_client_keepalive), f);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->client), NULL, NULL, on_connect_done,
                                    &o);
  WAIT_FOR (o.done, 10, "connect");
  g_assert_no_error (o.error);
  g_assert_true (o.ok);
  if (!f->cycling)
    WAIT_FOR (f->accepted->len > accepted, 10, "the server side of the connection");
}

static void
client_send (Fixture *f, const char *text)
{
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (f->client), text, NULL, NULL, NULL, NULL);
}

/* Sends @text and returns the next message the client gets (owned by f->client_received). */
static const char *
client_exchange (Fixture *f, const char *text)
{
  guint n = f->client_received->len;

  client_send (f, text);
  WAIT_FOR (f->client_received->len > n, 10, "an answer");
  return f->client_received->pdata[n];
}

/* The client's own port, as the server side saw it. */
static guint
client_port (Fixture *f)
{
  const char *remote;
  const char *colon;

  g_assert_cmpuint (f->accepted->len, >, 0);
  remote = sofia_ws_websocket_get_remote_address (g_ptr_array_index (f->accepted,
                                                                     f->accepted->len - 1));
  g_assert_nonnull (remote);
  colon = strrchr (remote, ':');
  g_assert_nonnull (colon);
  return (guint) atoi (colon + 1);
}

/* A request as a browser sends it: Via SIP/2.0/@via_protocol with rport, from a made-up
 * .invalid host; without a Content-Length header when !@content_length. */
static char *
make_request (const char *method,
              const char *via_protocol,
              const char *extra_headers,
              const char *body,
              gboolean    content_length)
{
  g_autofree char *length = NULL;

  if (content_length)
    length = g_strdup_printf ("Content-Length: %zu\r\n", body ? strlen (body) : 0);
  return g_strdup_printf ("%s sip:127.0.0.1 SIP/2.0\r\n"
                          "Via: SIP/2.0/%s df7jal23ls0d.invalid;rport;branch=z9hG4bK%08x%08x\r\n"
                          "Max-Forwards: 70\r\n"
                          "To: <sip:alice@127.0.0.1>\r\n"
                          "From: <sip:alice@127.0.0.1>;tag=%08x\r\n"
                          "Call-ID: %08x%08x@test-tport\r\n"
                          "CSeq: 1 %s\r\n"
                          "%s%s"
                          "\r\n"
                          "%s",
                          method, via_protocol, g_random_int (), g_random_int (),
                          g_random_int (), g_random_int (), g_random_int (), method,
                          extra_headers ? extra_headers : "", length ? length : "",
                          body ? body : "");
}

static const Seen *
last_seen (Fixture *f)
{
  g_assert_cmpuint (f->seen->len, >, 0);
  return f->seen->pdata[f->seen->len - 1];
}

/* The response's top Via is ours, stamped with where the request really came from. */
static void
assert_via_received (Fixture *f, const char *response)
{
  g_autofree char *via = sip_text_header (response, "Via");
  g_autofree char *rport = g_strdup_printf (";rport=%u", client_port (f));

  g_assert_nonnull (via);
  g_assert_true (g_str_has_prefix (via, "SIP/2.0/WS "));
  g_assert_nonnull (strstr (via, ";received=127.0.0.1"));
  g_assert_nonnull (strstr (via, rport));
}

/* ---- 1-8: requests from a WebSocket client ------------------------------------------------ */

static void
test_options (Fixture *f, gconstpointer data)
{
  g_autofree char *request = make_request ("OPTIONS", "WS", NULL, NULL, TRUE);
  const char *response;
  const Seen *seen;

  client_connect (f);
  response = client_exchange (f, request);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  assert_via_received (f, response);

  g_assert_cmpuint (f->seen->len, ==, 1);
  seen = last_seen (f);
  g_assert_cmpstr (seen->method, ==, "OPTIONS");
  g_assert_true (seen->is_ws);
  /* The request came through the server side of this very connection. */
  g_assert_true (seen->transport == f->accepted->pdata[0]);
  g_assert_true (SOFIA_WS_IS_WEBSOCKET (seen->transport));
  g_assert_cmpuint (f->server_messages, ==, 1);
  /* NTA answers inside the delivery: the signals still tell the request, then its answer. */
  g_assert_cmpstr (f->server_events->str, ==, "message;message-sent;");
  /* tcp is not ws */
  g_assert_false (sofia_ws_tport_is_ws (tport_primaries (nta_agent_tports (f->agent))));
}

/* tport's statistics count the WebSocket traffic as they count tcp's: messages and bytes each
 * way, and a malformed message as a receive error. */
static void
test_statistics (Fixture *f, gconstpointer data)
{
  g_autofree char *request = make_request ("OPTIONS", "WS", NULL, NULL, TRUE);
  g_autofree char *bad = make_request ("OPTIONS", "WS", "Expires: soon\r\n", NULL, TRUE);
  g_autofree char *response_text = NULL;
  const char *response;

  f->keep_tport = TRUE;
  client_connect (f);
  response = client_exchange (f, request);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  response_text = g_strdup (response);
  g_assert_nonnull (f->last_tport);
  g_assert_cmpuint (f->last_tport->tp_stats.recv_msgs, ==, 1);
  g_assert_cmpuint (f->last_tport->tp_stats.recv_bytes, ==, strlen (request));
  g_assert_cmpuint (f->last_tport->tp_stats.recv_errors, ==, 0);
  g_assert_cmpuint (f->last_tport->tp_stats.sent_msgs, ==, 1);
  g_assert_cmpuint (f->last_tport->tp_stats.sent_bytes, ==, strlen (response_text));

  response = client_exchange (f, bad);
  g_assert_cmpuint (sip_text_status (response), ==, 400);
  g_assert_cmpuint (f->last_tport->tp_stats.recv_msgs, ==, 2);
  g_assert_cmpuint (f->last_tport->tp_stats.recv_errors, ==, 1);
  g_assert_cmpuint (f->last_tport->tp_stats.sent_msgs, ==, 2);
}

static void
test_no_content_length (Fixture *f, gconstpointer data)
{
  const char *body = "Hello over WebSocket,\r\nwith no length header:\r\n\r\nthe rest is body.";
  g_autofree char *request = make_request ("MESSAGE", "WS",
                                           "Content-Type: text/plain\r\n", body, FALSE);
  const char *response;

  g_assert_null (strstr (request, "Content-Length"));
  client_connect (f);
  response = client_exchange (f, request);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  g_assert_cmpuint (f->seen->len, ==, 1);
  g_assert_cmpstr (last_seen (f)->method, ==, "MESSAGE");
  g_assert_cmpstr (last_seen (f)->body, ==, body);
}

static void
test_lowercase_via (Fixture *f, gconstpointer data)
{
  g_autofree char *request = make_request ("OPTIONS", "ws", NULL, NULL, TRUE);
  const char *response;

  client_connect (f);
  response = client_exchange (f, request);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  g_assert_cmpuint (f->seen->len, ==, 1);
  g_assert_cmpstr (last_seen (f)->method, ==, "OPTIONS");
  /* NTA got the Via with its own protocol name */
  g_assert_cmpstr (last_seen (f)->via_protocol, ==, "SIP/2.0/WS");
}

static void
test_malformed (Fixture *f, gconstpointer data)
{
  const char *bad_headers[] = { "Expires: soon\r\n", "Contact: <<sip:bad\r\n" };
  g_autofree char *good = make_request ("OPTIONS", "WS", NULL, NULL, TRUE);
  const char *response;

  client_connect (f);
  for (guint i = 0; i < G_N_ELEMENTS (bad_headers); i++)
    {
      g_autofree char *bad = make_request ("OPTIONS", "WS", bad_headers[i], NULL, TRUE);

      response = client_exchange (f, bad);
      g_assert_cmpuint (sip_text_status (response), ==, 400);
      g_assert_cmpuint (f->seen->len, ==, 0);   /* never given to the application */
    }

  /* The same connection serves on. */
  response = client_exchange (f, good);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  g_assert_cmpuint (f->seen->len, ==, 1);
  g_assert_cmpuint (f->client_disconnected, ==, 0);
  g_assert_cmpuint (f->accepted->len, ==, 1);
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->client)));
}

static void
test_fragmented (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reply = NULL;

  if (!test_ws_probe_available ())
    return;
  report = test_ws_probe (f->url, "fragmented", NULL);

  reply = g_key_file_get_string (report, "probe", "reply", NULL);
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 "));
  g_assert_nonnull (strstr (reply, "Call-ID: probe-1\r\n"));
  /* Three frames, one message, one request. */
  g_assert_cmpuint (f->server_messages, ==, 1);
  g_assert_cmpuint (f->seen->len, ==, 1);
  g_assert_cmpstr (last_seen (f)->method, ==, "OPTIONS");
}

static void
test_keepalive (Fixture *f, gconstpointer data)
{
  g_autofree char *request = make_request ("OPTIONS", "WS", NULL, NULL, TRUE);
  const char *response;

  /* RFC 5626 double-CRLF pings every second, each to be answered with a CRLF. */
  f->client_keepalive = 1;
  client_connect (f);
  WAIT_FOR (f->keepalives_answered >= 2, 10, "two keepalives answered");
  g_assert_cmpuint (f->keepalives_missed, ==, 0);
  /* Pings are no SIP messages: the application saw nothing, and the connection stays. */
  g_assert_cmpuint (f->seen->len, ==, 0);
  g_assert_cmpuint (f->server_messages, ==, 0);
  g_assert_cmpuint (f->client_disconnected, ==, 0);
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (f->client)));
  g_assert_cmpuint (sofia_ws_listener_get_n_connections (sofia_ws_tport_get_listener (f->ws)),
                    ==, 1);
  response = client_exchange (f, request);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
}

static void
test_idle_close (Fixture *f, gconstpointer data)
{
  g_autofree char *request = make_request ("OPTIONS", "WS", NULL, NULL, TRUE);
  const char *response;
  gint64 answered, closed;

  client_connect (f);
  response = client_exchange (f, request);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  answered = g_get_monotonic_time ();
  WAIT_FOR (f->client_disconnected > 0, 10, "the idle connection to be closed");
  closed = g_get_monotonic_time ();
  g_test_message ("closed %" G_GINT64_FORMAT " ms after the answer",
                  (closed - answered) / 1000);
  g_assert_cmpint (closed - answered, <, 5 * G_USEC_PER_SEC);
  /* A close frame from the server, not a dropped TCP connection. */
  g_assert_cmpuint (sofia_ws_websocket_get_close_code (f->client), ==, 1000);
  WAIT_FOR (sofia_ws_listener_get_n_connections (sofia_ws_tport_get_listener (f->ws)) == 0, 5,
            "the listener to forget the connection");
}

typedef struct {
  int status;                     /* the final one */
  int n_final;
} Outgoing;

static int
on_outgoing_response (nta_outgoing_magic_t *magic,
                      nta_outgoing_t       *orq,
                      sip_t const          *sip)
{
  Outgoing *o = (Outgoing *) magic;
  int status = nta_outgoing_status (orq);

  if (status >= 200)
    {
      o->status = status;
      o->n_final++;
    }
  return 0;
}

static void
test_server_request (Fixture *f, gconstpointer data)
{
  g_autofree char *request = make_request ("OPTIONS", "WS", NULL, NULL, TRUE);
  g_autofree char *via = NULL;
  g_autofree char *method = NULL;
  g_autofree char *expected_via = NULL;
  const char *response, *incoming;
  nta_outgoing_t *orq;
  Outgoing o = { 0 };
  guint n;

  f->keep_tport = TRUE;
  f->client_answers = TRUE;
  client_connect (f);
  response = client_exchange (f, request);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  g_assert_nonnull (f->last_tport);
  g_assert_true (sofia_ws_tport_is_ws (f->last_tport));

  n = f->client_received->len;
  orq = nta_outgoing_tcreate (f->leg, on_outgoing_response, (nta_outgoing_magic_t *) &o, NULL,
                              SIP_METHOD_MESSAGE,
                              URL_STRING_MAKE ("sip:alice@df7jal23ls0d.invalid;transport=ws"),
                              SIPTAG_TO_STR ("<sip:alice@127.0.0.1>"),
                              SIPTAG_FROM_STR ("<sip:server@127.0.0.1>;tag=server"),
                              SIPTAG_CONTENT_TYPE_STR ("text/plain"),
                              SIPTAG_PAYLOAD_STR ("hello, client"),
                              NTATAG_TPORT (f->last_tport),
                              TAG_END ());
  g_assert_nonnull (orq);
  WAIT_FOR (f->client_received->len > n, 10, "the request at the client");
  incoming = f->client_received->pdata[n];
  method = sip_text_method (incoming);
  g_assert_cmpstr (method, ==, "MESSAGE");
  g_assert_true (g_str_has_suffix (incoming, "\r\n\r\nhello, client"));
  via = sip_text_header (incoming, "Via");
  expected_via = g_strdup_printf ("SIP/2.0/WS 127.0.0.1:%s", tport_name (f->ws)->tpn_port);
  g_assert_true (g_str_has_prefix (via, expected_via));

  WAIT_FOR (o.n_final > 0, 10, "the client's 200 at NTA");
  g_assert_cmpint (o.status, ==, 200);
  g_assert_cmpint (o.n_final, ==, 1);
  nta_outgoing_destroy (orq);
}


/* ---- issue 12: hardening ------------------------------------------------------------------- */

/* CRLF keepalives are activity, as on Sofia's tcp: a connection that only sends them, more
 * often than TPTAG_IDLE(), stays open past the idle time. */
static void
test_keepalives_are_activity (Fixture *f, gconstpointer data)
{
  gint64 until;

  f->client_keepalive = 1;        /* every 0.8 to 1 s; the idle time is 1.5 s */
  client_connect (f);
  until = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  WAIT_FOR (g_get_monotonic_time () > until || f->client_disconnected > 0, 10, "5 s");
  g_test_message ("%u keepalives answered in 5 s", f->keepalives_answered);
  g_assert_cmpuint (f->client_disconnected, ==, 0);
  g_assert_cmpuint (f->keepalives_answered, >=, 3);
  g_assert_cmpuint (sofia_ws_listener_get_n_connections (sofia_ws_tport_get_listener (f->ws)),
                    ==, 1);

  /* Without them, it is closed at the idle time. */
  g_object_set (f->client, "keepalive-interval", 0, NULL);
  WAIT_FOR (f->client_disconnected > 0, 10, "the idle close without keepalives");
  g_assert_cmpuint (sofia_ws_websocket_get_close_code (f->client), ==, 1000);
}

/* A MESSAGE whose body holds NUL bytes (binary, RFC 7118 allows binary frames) reaches NTA
 * whole, with its Content-Length. */
static void
test_binary_body (Fixture *f, gconstpointer data)
{
  const char body[] = "bi\0na\0ry";
  gsize body_len = sizeof body - 1;
  g_autofree char *length = g_strdup_printf ("Content-Type: application/octet-stream\r\n"
                                             "Content-Length: %zu\r\n", body_len);
  g_autofree char *head = make_request ("MESSAGE", "WS", length, NULL, FALSE);
  g_autoptr(GByteArray) request = g_byte_array_new ();
  g_autoptr(RawWs) raw = NULL;

  g_byte_array_append (request, (const guint8 *) head, strlen (head));
  g_byte_array_append (request, (const guint8 *) body, body_len);
  raw = raw_ws_connect ((guint16) atoi (tport_name (f->ws)->tpn_port), "/", 0);
  g_assert_true (raw_ws_send_frame (raw, 2, request->data, request->len));
  WAIT_FOR (f->seen->len > 0, 10, "the MESSAGE at NTA");
  g_assert_cmpstr (last_seen (f)->method, ==, "MESSAGE");
  g_assert_cmpuint (last_seen (f)->body_len, ==, body_len);
  g_assert_cmpmem (last_seen (f)->body, last_seen (f)->body_len, body, body_len);
}

/* Over wss, a request whose Via says WS (as JsSIP may send) is answered like one that says
 * WSS (as SIP.js sends), rather than dropped by NTA's Via check. */
static void
test_wss_accepts_ws_via (Fixture *f, gconstpointer data)
{
  g_autoptr(TestCertificate) certificate = test_certificate_new ("127.0.0.1");
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;
  const char *protocols[] = { "WSS", "WS", "ws", "wss" };
  Outcome o = { 0 };
  tport_t *wss;

  wss = sofia_ws_tport_add_listener (f->agent, "sips:127.0.0.1:0;transport=wss", &error,
                                     WSTAG_TLS_CERTIFICATE (certificate->certificate),
                                     WSTAG_TLS_KEY (certificate->key), TAG_END ());
  g_assert_no_error (error);
  g_assert_nonnull (wss);
  url = g_strdup_printf ("wss://127.0.0.1:%s/", tport_name (wss)->tpn_port);
  f->client = sofia_ws_websocket_new (url);
  g_object_set (f->client, "tls-ca-file", certificate->certificate, NULL);
  g_signal_connect (f->client, "message", G_CALLBACK (on_client_message), f);
  g_signal_connect (f->client, "disconnected", G_CALLBACK (on_client_disconnected), f);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (f->client), NULL, NULL, on_connect_done,
                                    &o);
  WAIT_FOR (o.done, 10, "connect");
  g_assert_no_error (o.error);

  for (guint i = 0; i < G_N_ELEMENTS (protocols); i++)
    {
      g_autofree char *request = make_request ("OPTIONS", protocols[i], NULL, NULL, TRUE);
      g_autofree char *via = NULL;
      const char *response = client_exchange (f, request);

      g_test_message ("Via SIP/2.0/%s over wss: %d", protocols[i], sip_text_status (response));
      g_assert_cmpuint (sip_text_status (response), ==, 200);
      g_assert_cmpuint (f->seen->len, ==, i + 1);
      g_assert_cmpstr (last_seen (f)->via_protocol, ==, "SIP/2.0/WSS");
      via = sip_text_header (response, "Via");
      g_assert_nonnull (strstr (via, "df7jal23ls0d.invalid"));
    }
}

static guint count_tree (tport_t *tp);
static guint count_list (tport_t *tp);

/* A peer that sends requests and reads none of the responses, through a small receive buffer:
 * the server's queue stays within WSTAG_SEND_QUEUE_BYTES(); the send that does not fit fails
 * (ENOBUFS), so tport closes the connection; the close cannot be written either, so at the
 * send timeout the connection goes, and the closed tport is freed with all it held. */
static void
test_unread_responses_bounded (Fixture *f, gconstpointer data)
{
  SofiaWsListener *listener = sofia_ws_tport_get_listener (f->ws);
  g_autoptr(GString) vias = g_string_new (NULL);
  g_autoptr(RawWs) raw = NULL;
  SofiaWsWebSocket *server;
  gint64 start, deadline;
  gsize max_buffered = 0;
  guint requests = 0;

  /* Vias below the top one, which the responses copy: 3 KiB each fill the socket's buffers
   * (several MiB on loopback) in a few hundred responses, under valgrind too. */
  for (guint i = 0; i < 30; i++)
    g_string_append_printf (vias, "Via: SIP/2.0/WS proxy%02u.invalid;branch=z9hG4bK-%02u-%s\r\n",
                            i, i, "padding-padding-padding-padding-padding-padding-padding-pad");

  raw = raw_ws_connect ((guint16) atoi (tport_name (f->ws)->tpn_port), "/", 4096);
  WAIT_FOR (f->accepted->len > 0, 10, "the server side");
  server = f->accepted->pdata[0];
  start = g_get_monotonic_time ();
  deadline = start + (3 * BOUNDED_SEND_TIMEOUT + (RUNNING_ON_VALGRIND ? 90 : 20)) *
                     G_USEC_PER_SEC;
  while (sofia_ws_listener_get_n_connections (listener) > 0)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("still connected after %u requests; %" G_GSIZE_FORMAT " bytes queued",
                 requests, sofia_ws_websocket_get_buffered_amount (server));
      for (guint i = 0; i < 20 && raw_ws_can_send (raw); i++)
        {
          g_autofree char *request = make_request ("OPTIONS", "WS", vias->str, NULL, TRUE);

          if (raw_ws_send_frame (raw, 1, request, strlen (request)))
            requests++;
        }
      g_main_context_iteration (NULL, FALSE);
      max_buffered = MAX (max_buffered, sofia_ws_websocket_get_buffered_amount (server));
      if (!raw_ws_can_send (raw))
        g_main_context_iteration (NULL, TRUE);
    }
  g_test_message ("%u requests sent, %u reached NTA; at most %" G_GSIZE_FORMAT " bytes queued; "
                  "closed after %" G_GINT64_FORMAT " ms", requests, f->n_requests, max_buffered,
                  (g_get_monotonic_time () - start) / 1000);
  g_assert_cmpuint (f->n_requests, >, 0);
  g_assert_cmpuint (max_buffered, >, 0);
  g_assert_cmpuint (max_buffered, <=, BOUNDED_QUEUE_BYTES);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, BOUNDED_SEND_TIMEOUT * G_USEC_PER_SEC);
  g_assert_cmpuint (sofia_ws_websocket_get_buffered_amount (server), ==, 0);
  g_assert_false (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (server)));
  /* The closed tport is reaped, and nothing of the connection is left. */
  WAIT_FOR (count_list (f->ws->tp_pri->pri_closed) == 0 &&
            count_tree (f->ws->tp_pri->pri_open) == 0, 10, "the closed connection freed");
}

/* ---- 9: no request reaches nta.c's DNS assert ------------------------------------------- */

static guint16
closed_port (void)
{
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;

  g_socket_bind (socket, any, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

/* Sends an OPTIONS to @uri (made by nta_outgoing_mcreate() when @whole_message, else by
 * nta_outgoing_tcreate()) and returns its final status. */
static int
request_final_status (Fixture    *f,
                      const char *uri,
                      gboolean    whole_message)
{
  Outgoing o = { 0 };
  nta_outgoing_t *orq;
  gint64 start = g_get_monotonic_time ();

  if (whole_message)
    {
      msg_t *msg = nta_msg_create (f->agent, 0);
      g_autofree char *request_line = g_strdup_printf ("OPTIONS %s SIP/2.0", uri);
      g_autofree char *call_id = g_strdup_printf ("%08x@test-tport", g_random_int ());

      g_assert_nonnull (msg);
      g_assert_cmpint (sip_add_tl (msg, sip_object (msg),
                                   SIPTAG_REQUEST_STR (request_line),
                                   SIPTAG_TO_STR (uri),
                                   SIPTAG_FROM_STR ("<sip:test@127.0.0.1>;tag=mcreate"),
                                   SIPTAG_CALL_ID_STR (call_id),
                                   SIPTAG_CSEQ_STR ("1 OPTIONS"),
                                   TAG_END ()), >=, 0);
      orq = nta_outgoing_mcreate (f->agent, on_outgoing_response, (nta_outgoing_magic_t *) &o,
                                  NULL, msg, TAG_END ());
      if (orq == NULL)
        msg_destroy (msg);
    }
  else
    orq = nta_outgoing_tcreate (f->leg, on_outgoing_response, (nta_outgoing_magic_t *) &o,
                                NULL, SIP_METHOD_OPTIONS, URL_STRING_MAKE (uri),
                                SIPTAG_TO_STR (uri),
                                SIPTAG_FROM_STR ("<sip:test@127.0.0.1>;tag=tcreate"),
                                TAG_END ());
  g_assert_nonnull (orq);
  WAIT_FOR (o.n_final > 0, 60, uri);
  g_assert_cmpint (o.n_final, ==, 1);
  g_test_message ("%s %s: %d after %" G_GINT64_FORMAT " ms",
                  whole_message ? "mcreate" : "tcreate", uri, o.status,
                  (g_get_monotonic_time () - start) / 1000);
  nta_outgoing_destroy (orq);
  return o.status;
}

static gboolean
ws_primary_is_listed (tport_t *ws)
{
  tport_master_t *mr = ws->tp_master;

  for (tport_primary_t *pri = mr->mr_primaries; pri != NULL; pri = pri->pri_next)
    if (pri == ws->tp_pri)
      return TRUE;
  return FALSE;
}

static void
test_no_abort_nta (Fixture *f, gconstpointer data)
{
  g_autofree char *closed = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", closed_port ());
  const char *uris[] = {
    "sip:nobody@example.invalid",
    "sip:localhost:5999;transport=ws",
    "sip:x.invalid;transport=ws",
    closed,
    "sip:nobody@tcp-host.invalid;transport=tcp",
    "sip:nobody@example.invalid;transport=wss",
    "sips:nobody@example.invalid",
    "sip:nobody@localhost",
  };

  g_assert_false (ws_primary_is_listed (f->ws));
  for (guint i = 0; i < G_N_ELEMENTS (uris); i++)
    for (int whole = 0; whole <= 1; whole++)
      g_assert_cmpint (request_final_status (f, uris[i], whole), >=, 300);
  /* The listener is unharmed. */
  g_assert_false (ws_primary_is_listed (f->ws));
  {
    g_autofree char *request = make_request ("OPTIONS", "WS", NULL, NULL, TRUE);

    client_connect (f);
    g_assert_cmpuint (sip_text_status (client_exchange (f, request)), ==, 200);
  }
}

/* The bug the tests above guard against: a ws primary in mr_primaries. Each must abort. */
static void
test_no_abort_would_catch (gconstpointer data)
{
  const char *uri = data;

  if (g_test_subprocess ())
    {
      Fixture fixture = { 0 }, *f = &fixture;
      tport_primary_t **tail;

      fixture_setup (f, NULL);
      for (tail = &f->ws->tp_master->mr_primaries; *tail != NULL; tail = &(*tail)->pri_next)
        ;
      *tail = f->ws->tp_pri;
      g_assert_true (ws_primary_is_listed (f->ws));
      request_final_status (f, uri, FALSE);
      /* Not reached when the bug is there; undo, so that teardown works if it is not. */
      *tail = NULL;
      fixture_teardown (f, NULL);
      return;
    }
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*outgoing_resolve*SIPDNS_TRANSPORTS*");
}

static void
test_no_abort_nua (Fixture *f, gconstpointer data)
{
  nua_handle_t *nh = nua_handle (f->nua, NULL, SIPTAG_TO_STR ("<sip:bob@host.invalid>"),
                                 TAG_END ());

  g_assert_nonnull (nh);
  nua_message (nh, SIPTAG_CONTENT_TYPE_STR ("text/plain"), SIPTAG_PAYLOAD_STR ("hello, bob"),
               TAG_END ());
  WAIT_FOR (f->nua_message_status >= 200, 60, "nua_r_message");
  g_test_message ("MESSAGE to sip:bob@host.invalid: %d", f->nua_message_status);
  g_assert_cmpint (f->nua_message_status, >=, 300);
  nua_handle_destroy (nh);
}

/* ---- 10: NUA ------------------------------------------------------------------------------- */

static void
test_nua_register (Fixture *f, gconstpointer data)
{
  g_autofree char *request =
    make_request ("REGISTER", "WS",
                  "Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n",
                  NULL, TRUE);
  g_autofree char *contact = NULL;
  const char *response;

  client_connect (f);
  response = client_exchange (f, request);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  g_assert_cmpuint (f->seen->len, ==, 1);
  g_assert_cmpstr (last_seen (f)->method, ==, "REGISTER");
  contact = sip_text_header (response, "Contact");
  g_assert_nonnull (contact);
  g_assert_nonnull (strstr (contact, "<sip:alice@df7jal23ls0d.invalid;transport=ws>"));
  assert_via_received (f, response);
}

static void
test_nua_stack_thread (Fixture *f, gconstpointer data)
{
  g_autofree char *request =
    make_request ("REGISTER", "WS",
                  "Contact: <sip:carol@k3jd8slq0x.invalid;transport=ws>;expires=600\r\n",
                  NULL, TRUE);
  g_autofree char *options = make_request ("OPTIONS", "WS", NULL, NULL, TRUE);
  g_autofree char *contact = NULL;
  g_autofree char *via = NULL;
  const char *response;

  client_connect (f);
  response = client_exchange (f, request);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  g_assert_cmpuint (f->n_requests, ==, 1);     /* nua_i_register, on this thread */
  contact = sip_text_header (response, "Contact");
  g_assert_nonnull (contact);
  g_assert_nonnull (strstr (contact, "<sip:carol@k3jd8slq0x.invalid;transport=ws>"));
  via = sip_text_header (response, "Via");
  g_assert_true (g_str_has_prefix (via, "SIP/2.0/WS "));
  g_assert_nonnull (strstr (via, ";received=127.0.0.1"));

  /* NUA answers OPTIONS itself, in its thread. */
  response = client_exchange (f, options);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
}

/* ---- 11: a thousand connections ------------------------------------------------------------ */

static guint
count_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n - 1;                   /* the GDir's own */
}

static gsize
rss_bytes (void)
{
  g_autofree char *statm = NULL;
  unsigned long size = 0, resident = 0;

  g_assert_true (g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL));
  g_assert_cmpint (sscanf (statm, "%lu %lu", &size, &resident), ==, 2);
  return (gsize) resident * (gsize) sysconf (_SC_PAGESIZE);
}

/* pri_open is a red-black tree; pri_closed a list linked through tp_right. */
static guint
count_tree (tport_t *tp)
{
  return tp == NULL ? 0 : 1 + count_tree (tp->tp_left) + count_tree (tp->tp_right);
}

static guint
count_list (tport_t *tp)
{
  guint n = 0;

  for (; tp != NULL; tp = tp->tp_right)
    n++;
  return n;
}

static void
cycle (Fixture *f, guint i)
{
  g_autofree char *contact = g_strdup_printf ("Contact: <sip:u%u@df7jal23ls0d.invalid;"
                                              "transport=ws>\r\n", i);
  g_autofree char *request = make_request ("REGISTER", "WS", contact, NULL, TRUE);
  guint disconnected;
  const char *response;

  client_connect (f);
  response = client_exchange (f, request);
  if (sip_text_status (response) != 200)
    g_error ("cycle %u: %s", i, response);
  disconnected = f->client_disconnected;
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (f->client), NULL, NULL, NULL, NULL);
  WAIT_FOR (f->client_disconnected > disconnected, 10, "the client's close");
  g_signal_handlers_disconnect_by_data (f->client, f);
  g_clear_object (&f->client);
  g_ptr_array_set_size (f->client_received, 0);
}

static guint
fds_settled (guint baseline)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  guint n;

  while ((n = count_fds ()) > baseline && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  return n;
}

static guint
uint_property (SofiaWsListener *listener,
               const char      *name)
{
  guint value = 0;

  g_object_get (listener, name, &value, NULL);
  return value;
}

/* Issue 12: the listener's limits as tags, with the listener's defaults when left out. */
static void
test_limit_tags (Fixture *f, gconstpointer data)
{
  SofiaWsListener *plain = sofia_ws_tport_get_listener (f->ws);
  SofiaWsListener *limited;
  struct sockaddr_in sa = { .sin_family = AF_INET };
  g_autoptr(GError) error = NULL;
  tport_t *tp;
  gint64 start, closed_at = 0;
  int fd;

  g_assert_cmpuint (uint_property (plain, "max-connections"), ==, 10000);
  g_assert_cmpuint (uint_property (plain, "max-connections-per-address"), ==, 256);
  g_assert_cmpuint (uint_property (plain, "max-partial-bytes"), ==, 64 * 1024 * 1024);
  g_assert_cmpuint (uint_property (plain, "handshake-timeout"), ==, 10);

  tp = sofia_ws_tport_add_listener (f->agent, "sip:127.0.0.1:0;transport=ws", &error,
                                    WSTAG_MAX_CONNECTIONS (7),
                                    WSTAG_MAX_CONNECTIONS_PER_ADDRESS (3),
                                    WSTAG_MAX_PARTIAL_BYTES (12345),
                                    WSTAG_HANDSHAKE_TIMEOUT (1),
                                    TAG_END ());
  g_assert_no_error (error);
  limited = sofia_ws_tport_get_listener (tp);
  g_assert_cmpuint (uint_property (limited, "max-connections"), ==, 7);
  g_assert_cmpuint (uint_property (limited, "max-connections-per-address"), ==, 3);
  g_assert_cmpuint (uint_property (limited, "max-partial-bytes"), ==, 12345);
  g_assert_cmpuint (uint_property (limited, "handshake-timeout"), ==, 1);

  /* And the listener applies them: a silent connection goes after 1 s. */
  sa.sin_port = htons (sofia_ws_listener_get_port (limited));
  inet_pton (AF_INET, "127.0.0.1", &sa.sin_addr);
  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &sa, sizeof sa), ==, 0);
  start = g_get_monotonic_time ();
  while (closed_at == 0)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      char byte;

      g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
      if (poll (&pfd, 1, 0) > 0 && recv (fd, &byte, 1, 0) <= 0)
        closed_at = g_get_monotonic_time ();
      else if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  close (fd);
  g_assert_cmpint (closed_at - start, >=, G_USEC_PER_SEC * 9 / 10);
  g_assert_cmpint (closed_at - start, <, 3 * G_USEC_PER_SEC);
}

static void
test_cycles (Fixture *f, gconstpointer data)
{
  const char *env = g_getenv ("SOFIA_WS_TPORT_CYCLES");
  guint cycles = RUNNING_ON_VALGRIND ? 50 : 1000;
  guint warmup = RUNNING_ON_VALGRIND ? 10 : 100;
  SofiaWsListener *listener = sofia_ws_tport_get_listener (f->ws);
  guint fds_before, fds_baseline, fds_after;
  gsize rss_baseline, rss_after;
  gint64 start, elapsed;

  if (env != NULL)
    cycles = (guint) g_ascii_strtoull (env, NULL, 10);
  f->cycling = TRUE;
  fds_before = count_fds ();
  for (guint i = 0; i < warmup; i++)
    cycle (f, i);
  WAIT_FOR (sofia_ws_listener_get_n_connections (listener) == 0, 5, "no connections");
  test_drain_main_context ();
  fds_baseline = count_fds ();
  rss_baseline = rss_bytes ();

  start = g_get_monotonic_time ();
  for (guint i = 0; i < cycles; i++)
    cycle (f, warmup + i);
  elapsed = g_get_monotonic_time () - start;

  WAIT_FOR (sofia_ws_listener_get_n_connections (listener) == 0, 5, "no connections");
  /* tport frees closed connections with a reaper on the primary's timer. */
  WAIT_FOR (count_list (f->ws->tp_pri->pri_closed) == 0, 5, "the closed connections reaped");
  fds_after = fds_settled (fds_baseline);
  test_drain_main_context ();
  rss_after = rss_bytes ();
  g_test_message ("secondaries: %u open, %u closed", count_tree (f->ws->tp_pri->pri_open),
                  count_list (f->ws->tp_pri->pri_closed));
  g_test_message ("%u cycles in %" G_GINT64_FORMAT " ms; fds %u before the warm-up, %u after it, "
                  "%u at the end; RSS %zu KiB after the warm-up, %zu KiB at the end",
                  cycles, elapsed / 1000, fds_before, fds_baseline, fds_after,
                  rss_baseline / 1024, rss_after / 1024);

  g_assert_cmpuint (f->n_requests, ==, warmup + cycles);
  g_assert_cmpuint (sofia_ws_listener_get_n_connections (listener), ==, 0);
  g_assert_cmpuint (count_tree (f->ws->tp_pri->pri_open), ==, 0);
  g_assert_cmpuint (fds_after, <=, fds_baseline);
  if (test_is_sanitized ())
    g_test_message ("RSS not compared: ASan's quarantine keeps freed memory resident");
  if (!RUNNING_ON_VALGRIND)
    {
      g_assert_cmpint (elapsed, <, 60 * G_USEC_PER_SEC);
      /* Under 2 MiB for a thousand connections: no per-connection leak of even 2 KiB. */
      if (!test_is_sanitized ())
        g_assert_cmpint ((gssize) rss_after - (gssize) rss_baseline, <, 2 * 1024 * 1024);
    }
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  su_init ();

#define ADD(path, idle, func) \
  g_test_add ("/tport/" path, Fixture, GUINT_TO_POINTER (idle), fixture_setup, func, \
              fixture_teardown)
  ADD ("options", 0, test_options);
  ADD ("statistics", 0, test_statistics);
  ADD ("no-content-length", 0, test_no_content_length);
  ADD ("lowercase-via", 0, test_lowercase_via);
  ADD ("malformed", 0, test_malformed);
  ADD ("fragmented", 0, test_fragmented);
  ADD ("keepalive", 0, test_keepalive);
  ADD ("idle-close", 500, test_idle_close);
  ADD ("server-request", 0, test_server_request);
  ADD ("no-abort/nta", 0, test_no_abort_nta);
  g_test_add_data_func ("/tport/no-abort/would-catch/no-transport", "sip:nobody@example.invalid",
                        test_no_abort_would_catch);
  g_test_add_data_func ("/tport/no-abort/would-catch/port", "sip:localhost:5999",
                        test_no_abort_would_catch);
  g_test_add_data_func ("/tport/no-abort/would-catch/ws", "sip:x.invalid;transport=ws",
                        test_no_abort_would_catch);
  g_test_add ("/tport/no-abort/nua", Fixture, NULL, fixture_nua_setup, test_no_abort_nua,
              fixture_teardown);
  g_test_add ("/tport/nua-stack-thread", Fixture, NULL, fixture_nua_thread_setup,
              test_nua_stack_thread, fixture_teardown);
  g_test_add ("/tport/nua-register", Fixture, NULL, fixture_nua_setup, test_nua_register,
              fixture_teardown);
  ADD ("limit-tags", 0, test_limit_tags);
  ADD ("cycles", 0, test_cycles);
  ADD ("keepalives-are-activity", 1500, test_keepalives_are_activity);
  ADD ("binary-body", 0, test_binary_body);
  ADD ("wss-accepts-ws-via", 0, test_wss_accepts_ws_via);
  g_test_add ("/tport/unread-responses-bounded", Fixture, NULL, fixture_bounded_setup,
              test_unread_responses_bounded, fixture_teardown);
#undef ADD

  status = g_test_run ();
  su_deinit ();
  return status;
}
