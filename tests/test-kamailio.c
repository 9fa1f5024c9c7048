/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SofiaWsWebSocket as a SIP client of a real Kamailio (websocket module) over loopback:
 * REGISTER and OPTIONS get 200, CRLF keepalives are answered, a MESSAGE is relayed between
 * two registered clients, and a client reconnects when Kamailio restarts. */
#include <sofia-ws/sofia-ws.h>

#include <string.h>

#include "support/drain.h"
#include "support/kamailio-peer.h"
#include "support/sip-text.h"

typedef struct {
  KamailioPeer *kamailio;
} Fixture;

/* One user agent: a websocket and what it received. */
typedef struct {
  const char *user;
  SofiaWsWebSocket *ws;
  GPtrArray *received;
  guint keepalives_answered;
  guint keepalives_unanswered;
  guint connected;
} Ua;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->kamailio = kamailio_peer_start_or_skip ();   /* NULL: skipped */
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  test_drain_main_context ();
  g_clear_pointer (&f->kamailio, kamailio_peer_stop);
}

static gboolean
wait_cond (gboolean (*cond) (gpointer), gpointer data, guint seconds)
{
  gint64 deadline = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;

  while (!cond (data))
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  return TRUE;
}

static void
on_message (SofiaWsTransport *t, const char *message, Ua *ua)
{
  g_autofree char *method = sip_text_method (message);

  g_ptr_array_add (ua->received, g_strdup (message));
  /* Answer what Kamailio relays, as a user agent must. */
  if (method != NULL)
    {
      g_autofree char *response = sip_text_response (message, 200, "OK");

      sofia_ws_transport_send_async (t, response, NULL, NULL, NULL, NULL);
    }
}

static void
on_keepalive (SofiaWsWebSocket *ws, gboolean answered, Ua *ua)
{
  if (answered)
    ua->keepalives_answered++;
  else
    ua->keepalives_unanswered++;
}

static void
on_connected (SofiaWsTransport *t, Ua *ua)
{
  ua->connected++;
}

static void
ua_init (Ua *ua, const char *user, Fixture *f)
{
  ua->user = user;
  ua->received = g_ptr_array_new_with_free_func (g_free);
  ua->ws = sofia_ws_websocket_new (kamailio_peer_get_ws_url (f->kamailio));
  g_signal_connect (ua->ws, "message", G_CALLBACK (on_message), ua);
  g_signal_connect (ua->ws, "keepalive", G_CALLBACK (on_keepalive), ua);
  g_signal_connect (ua->ws, "connected", G_CALLBACK (on_connected), ua);
}

static void
ua_clear (Ua *ua)
{
  g_signal_handlers_disconnect_by_data (ua->ws, ua);
  g_assert_finalize_object (ua->ws);
  g_ptr_array_unref (ua->received);
}

static void
on_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GError **error = user_data;
  gboolean ok;

  if (g_task_get_source_tag (G_TASK (result)) == (gpointer) sofia_ws_transport_connect_async)
    ok = sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result, error);
  else if (g_task_get_source_tag (G_TASK (result)) == (gpointer) sofia_ws_transport_send_async)
    ok = sofia_ws_transport_send_finish (SOFIA_WS_TRANSPORT (source), result, error);
  else
    ok = sofia_ws_transport_disconnect_finish (SOFIA_WS_TRANSPORT (source), result, error);
  if (ok)
    *error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_EXISTS, "ok");
}

static gboolean
pointer_set (gpointer data)
{
  return *(GError **) data != NULL;
}

/* Runs an async call to its end; fails the test on error. */
static void
expect_ok (void (*start) (Ua *ua, GError **slot), Ua *ua)
{
  GError *slot = NULL;

  start (ua, &slot);
  g_assert_true (wait_cond (pointer_set, &slot, 10));
  g_assert_error (slot, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&slot);
}

static void
start_connect (Ua *ua, GError **slot)
{
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (ua->ws), NULL, NULL, on_done, slot);
}

static void
start_disconnect (Ua *ua, GError **slot)
{
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (ua->ws), NULL, NULL, on_done, slot);
}

typedef struct {
  Ua *ua;
  const char *call_id;
  const char *method;             /* NULL: a response for call_id; else a request */
  char *found;
} Wanted;

static gboolean
find_message (gpointer data)
{
  Wanted *w = data;

  for (guint i = 0; i < w->ua->received->len; i++)
    {
      const char *m = w->ua->received->pdata[i];
      g_autofree char *call_id = sip_text_header (m, "Call-ID");
      g_autofree char *method = sip_text_method (m);

      if (g_strcmp0 (call_id, w->call_id) != 0)
        continue;
      if ((w->method == NULL && method == NULL && sip_text_status (m) >= 200) ||
          (w->method != NULL && g_strcmp0 (method, w->method) == 0))
        {
          w->found = g_strdup (m);
          return TRUE;
        }
    }
  return FALSE;
}

/* Sends @request and returns the final response to it (or the request @method that shows up
 * at @at instead, when @method is given). */
static char *
send_and_wait (Ua *from, const char *request, Ua *at, const char *method)
{
  g_autofree char *call_id = sip_text_header (request, "Call-ID");
  GError *slot = NULL;
  Wanted w = { at ? at : from, call_id, method, NULL };

  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (from->ws), request, NULL, NULL, on_done,
                                 &slot);
  g_assert_true (wait_cond (pointer_set, &slot, 10));
  g_assert_error (slot, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&slot);
  if (!wait_cond (find_message, &w, 10))
    g_error ("no %s for %s", method ? method : "final response", call_id);
  return w.found;
}

static char *
register_ua (Ua *ua, guint expires)
{
  g_autofree char *aor = g_strdup_printf ("sip:%s@127.0.0.1", ua->user);
  g_autofree char *call_id = g_strdup_printf ("reg-%s-%08x", ua->user, g_random_int ());
  g_autofree char *headers = g_strdup_printf ("Contact: <sip:%s@%s.invalid;transport=ws>;"
                                              "expires=%u\r\nExpires: %u\r\n",
                                              ua->user, ua->user, expires, expires);
  g_autofree char *request = sip_text_request ("REGISTER", "sip:127.0.0.1", ua->user, aor,
                                               call_id, 1, headers, NULL);

  return send_and_wait (ua, request, NULL, NULL);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void
test_register_and_options (Fixture *f, gconstpointer data)
{
  Ua alice = { 0 };
  g_autofree char *registered = NULL;
  g_autofree char *options_response = NULL;
  g_autofree char *request = NULL;
  g_autofree char *contact = NULL;

  if (f->kamailio == NULL)
    return;
  ua_init (&alice, "alice", f);
  expect_ok (start_connect, &alice);

  registered = register_ua (&alice, 300);
  g_assert_cmpuint (sip_text_status (registered), ==, 200);
  contact = sip_text_header (registered, "Contact");
  g_assert_nonnull (contact);
  g_assert_nonnull (strstr (contact, "alice@alice.invalid"));

  request = sip_text_request ("OPTIONS", "sip:127.0.0.1", "alice", "sip:127.0.0.1",
                              "options-1", 1, NULL, NULL);
  options_response = send_and_wait (&alice, request, NULL, NULL);
  g_assert_cmpuint (sip_text_status (options_response), ==, 200);

  expect_ok (start_disconnect, &alice);
  ua_clear (&alice);
}

static gboolean
answered_twice (gpointer data)
{
  return ((Ua *) data)->keepalives_answered >= 2;
}

static void
test_crlf_keepalive (Fixture *f, gconstpointer data)
{
  Ua alice = { 0 };

  if (f->kamailio == NULL)
    return;
  ua_init (&alice, "alice", f);
  g_object_set (alice.ws, "keepalive-interval", 1, "keepalive-debounce", 2, NULL);
  expect_ok (start_connect, &alice);
  g_assert_true (wait_cond (answered_twice, &alice, 10));
  g_assert_cmpuint (alice.keepalives_unanswered, ==, 0);
  /* The CRLF replies are not SIP messages. */
  g_assert_cmpuint (alice.received->len, ==, 0);
  expect_ok (start_disconnect, &alice);
  ua_clear (&alice);
}

static void
test_message_relayed (Fixture *f, gconstpointer data)
{
  Ua alice = { 0 }, bob = { 0 };
  g_autofree char *r1 = NULL, *r2 = NULL, *request = NULL, *at_bob = NULL;
  g_autofree char *body = NULL, *reply = NULL;
  Wanted w = { &alice, "message-1", NULL, NULL };

  if (f->kamailio == NULL)
    return;
  ua_init (&alice, "alice", f);
  ua_init (&bob, "bob", f);
  expect_ok (start_connect, &alice);
  expect_ok (start_connect, &bob);
  r1 = register_ua (&alice, 300);
  r2 = register_ua (&bob, 300);
  g_assert_cmpuint (sip_text_status (r1), ==, 200);
  g_assert_cmpuint (sip_text_status (r2), ==, 200);

  request = sip_text_request ("MESSAGE", "sip:bob@127.0.0.1", "alice", "sip:bob@127.0.0.1",
                              "message-1", 1, "Content-Type: text/plain\r\n",
                              "Hello Bob, \xc3\xa9t\xc3\xa9 \xe2\x82\xac");
  at_bob = send_and_wait (&alice, request, &bob, "MESSAGE");
  body = g_strdup (strstr (at_bob, "\r\n\r\n") + 4);
  g_assert_cmpstr (body, ==, "Hello Bob, \xc3\xa9t\xc3\xa9 \xe2\x82\xac");

  /* bob answered 200 (on_message); Kamailio relays it back to alice. */
  g_assert_true (wait_cond (find_message, &w, 10));
  reply = w.found;
  g_assert_cmpuint (sip_text_status (reply), ==, 200);

  expect_ok (start_disconnect, &alice);
  expect_ok (start_disconnect, &bob);
  ua_clear (&alice);
  ua_clear (&bob);
}

static gboolean
connected_twice (gpointer data)
{
  return ((Ua *) data)->connected >= 2;
}

static void
test_reconnect_after_restart (Fixture *f, gconstpointer data)
{
  Ua alice = { 0 };
  g_autoptr(GError) error = NULL;
  g_autofree char *registered = NULL;

  if (f->kamailio == NULL)
    return;
  ua_init (&alice, "alice", f);
  g_object_set (alice.ws, "reconnection-attempts", 10, "reconnection-delay", 1, NULL);
  expect_ok (start_connect, &alice);

  g_assert_true (kamailio_peer_restart (f->kamailio, &error));
  g_assert_no_error (error);
  g_assert_true (wait_cond (connected_twice, &alice, 20));
  g_assert_true (sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (alice.ws)));

  registered = register_ua (&alice, 300);
  g_assert_cmpuint (sip_text_status (registered), ==, 200);
  expect_ok (start_disconnect, &alice);
  ua_clear (&alice);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) \
  g_test_add ("/kamailio/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

  ADD ("register-and-options", test_register_and_options);
  ADD ("crlf-keepalive", test_crlf_keepalive);
  ADD ("message-relayed", test_message_relayed);
  ADD ("reconnect-after-restart", test_reconnect_after_restart);

#undef ADD

  return g_test_run ();
}
