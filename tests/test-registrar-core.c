/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registrar's core (examples/registrar-core.c) in this process, on an NTA agent with a TCP
 * listener on 127.0.0.1 and a GLib su_root, spoken to over raw TCP connections; its tables are
 * read with registrar_get_stats(). Issue 12: no REGISTER may leave an entry behind once its
 * bindings expire or its connection closes, and every table has a bound. */
#include <string.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/tport.h>

#include "registrar-core.h"
#include "support/sip-socket.h"
#include "support/sip-text.h"

typedef struct {
  su_root_t *root;
  nta_agent_t *agent;
  Registrar *registrar;
  guint16 port;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  const RegistrarOptions *options = data;
  RegistrarOptions defaults = { .quiet = TRUE, .sweep_interval_ms = 100 };
  tport_t *primary;

  su_init ();
  f->root = su_glib_root_create (NULL);
  g_assert_nonnull (f->root);
  g_source_attach (su_glib_root_gsource (f->root), NULL);
  f->agent = nta_agent_create (f->root, URL_STRING_MAKE ("sip:127.0.0.1:0;transport=tcp"),
                               NULL, NULL, NTATAG_UA (0), NTATAG_SERVER_RPORT (1), TAG_END ());
  g_assert_nonnull (f->agent);
  primary = tport_primaries (nta_agent_tports (f->agent));
  g_assert_nonnull (primary);
  f->port = (guint16) g_ascii_strtoull (tport_name (primary)->tpn_port, NULL, 10);
  f->registrar = registrar_new (f->root, f->agent, options != NULL ? options : &defaults);
  g_assert_nonnull (f->registrar);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->registrar, registrar_free);
  nta_agent_destroy (f->agent);
  /* The GSource goes with the root. */
  su_root_destroy (f->root);
  su_deinit ();
}

static RegistrarStats
stats (Fixture *f)
{
  RegistrarStats s;

  registrar_get_stats (f->registrar, &s);
  return s;
}

/* Iterates until @done says so or @seconds have passed; returns what @done says. */
static gboolean
wait_for (Fixture *f, gboolean (*done) (Fixture *f), guint seconds)
{
  gint64 deadline = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;

  while (!done (f) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  return done (f);
}

/* REGISTER of @user with @contacts (a "Contact: ..." line each, or NULL) and @expires (or
 * -1: no Expires), over @socket; the status of the answer. */
static guint
do_register (SipSocket  *socket,
             const char *user,
             const char *contacts,
             int         expires,
             char      **response)
{
  static guint cseq;
  g_autofree char *to = g_strdup_printf ("sip:%s@127.0.0.1", user);
  g_autofree char *call_id = g_strdup_printf ("reg-%s", user);
  g_autofree char *extra = g_strdup_printf ("%s%s", contacts ? contacts : "",
                                            expires >= 0 ? "Expires: " : "");
  g_autofree char *headers = expires >= 0 ? g_strdup_printf ("%s%d\r\n", extra, expires)
                                          : g_strdup (extra);
  g_autofree char *request = sip_text_over_tcp (sip_text_request ("REGISTER", "sip:127.0.0.1",
                                                                  user, to, call_id, ++cseq,
                                                                  headers, NULL));
  char *answer;
  guint status;

  sip_socket_send (socket, request);
  answer = sip_socket_read (socket, 10000);
  g_assert_nonnull (answer);
  status = sip_text_status (answer);
  if (response != NULL)
    *response = answer;
  else
    g_free (answer);
  return status;
}

static char *
contact_line (const char *user, guint i)
{
  return g_strdup_printf ("Contact: <sip:%s-%u@%s.invalid;transport=tcp>\r\n", user, i, user);
}

static gboolean
no_users (Fixture *f)
{
  RegistrarStats s = stats (f);

  return s.users == 0 && s.bindings == 0;
}

static gboolean
no_flows (Fixture *f)
{
  return stats (f).flows == 0;
}

/* Many users register, some with Expires: 0 only; once the bindings expire no entry is left.
 * The expiry leaves room for the registrations to finish first under valgrind on a loaded
 * machine (500 REGISTERs took more than 4 s there). */
static void
test_expiry (Fixture *f, gconstpointer data)
{
  g_autoptr(SipSocket) socket = sip_socket_connect (f->port);
  const guint users = 200, ghosts = 50, expires = 15;

  for (guint i = 0; i < users; i++)
    {
      g_autofree char *user = g_strdup_printf ("user%u", i);
      g_autofree char *contact = contact_line (user, 0);

      g_assert_cmpuint (do_register (socket, user, contact, expires, NULL), ==, 200);
    }
  /* Expires: 0 for a user never registered creates nothing. */
  for (guint i = 0; i < ghosts; i++)
    {
      g_autofree char *user = g_strdup_printf ("ghost%u", i);
      g_autofree char *contact = contact_line (user, 0);

      g_assert_cmpuint (do_register (socket, user, contact, 0, NULL), ==, 200);
    }
  g_assert_cmpuint (stats (f).users, ==, users);
  g_assert_cmpuint (stats (f).bindings, ==, users);
  g_assert_cmpuint (stats (f).flows, ==, 1);

  g_assert_true (wait_for (f, no_users, 2 * expires));
  /* The connection is still open: its flow stays, bindings or not. */
  g_assert_cmpuint (stats (f).flows, ==, 1);
  g_clear_pointer (&socket, sip_socket_close);
  g_assert_true (wait_for (f, no_flows, 5));
}

static gboolean
one_user (Fixture *f)
{
  RegistrarStats s = stats (f);

  return s.users == 1 && s.bindings == 1 && s.flows == 1;
}

/* A closed connection takes its bindings (and the tport references they hold) along. */
static void
test_connection_close (Fixture *f, gconstpointer data)
{
  g_autoptr(SipSocket) first = sip_socket_connect (f->port);
  g_autoptr(SipSocket) second = sip_socket_connect (f->port);
  g_autofree char *alice = contact_line ("alice", 0);
  g_autofree char *bob = contact_line ("bob", 0);
  g_autofree char *carol = contact_line ("carol", 0);

  g_assert_cmpuint (do_register (first, "alice", alice, 600, NULL), ==, 200);
  g_assert_cmpuint (do_register (second, "bob", bob, 600, NULL), ==, 200);
  g_assert_cmpuint (do_register (second, "carol", carol, 600, NULL), ==, 200);
  g_assert_cmpuint (stats (f).users, ==, 3);
  g_assert_cmpuint (stats (f).flows, ==, 2);

  g_clear_pointer (&second, sip_socket_close);
  g_assert_true (wait_for (f, one_user, 5));

  /* And alice is still reachable: an unREGISTER of her only binding leaves nothing. */
  g_assert_cmpuint (do_register (first, "alice", alice, 0, NULL), ==, 200);
  g_assert_cmpuint (stats (f).users, ==, 0);
  g_assert_cmpuint (stats (f).bindings, ==, 0);
}

static const RegistrarOptions small = {
  .quiet = TRUE, .sweep_interval_ms = 100, .max_users = 5, .max_bindings = 3, .max_contacts = 4,
};

/* Past each bound: 403 (bindings of a user), 503 (users), 400 (Contacts in one REGISTER);
 * nothing of a refused REGISTER is applied. */
static void
test_limits (Fixture *f, gconstpointer data)
{
  g_autoptr(SipSocket) socket = sip_socket_connect (f->port);
  g_autofree char *three = NULL, *fourth = contact_line ("alice", 3);
  g_autofree char *response = NULL;
  GString *many = g_string_new (NULL);
  gint64 start;

  {
    g_autofree char *c0 = contact_line ("alice", 0), *c1 = contact_line ("alice", 1);
    g_autofree char *c2 = contact_line ("alice", 2);

    three = g_strconcat (c0, c1, c2, NULL);
  }
  g_assert_cmpuint (do_register (socket, "alice", three, 600, &response), ==, 200);
  g_assert_nonnull (strstr (response, "alice-2@"));
  g_assert_cmpuint (do_register (socket, "alice", fourth, 600, NULL), ==, 403);
  g_assert_cmpuint (stats (f).bindings, ==, 3);
  /* A refresh of a binding she has is no new one. */
  g_assert_cmpuint (do_register (socket, "alice", three, 600, NULL), ==, 200);
  g_assert_cmpuint (stats (f).bindings, ==, 3);

  /* Five Contacts in one REGISTER: refused whole. */
  for (guint i = 0; i < 5; i++)
    g_string_append_printf (many, "Contact: <sip:dave-%u@dave.invalid;transport=tcp>\r\n", i);
  g_assert_cmpuint (do_register (socket, "dave", many->str, 600, NULL), ==, 400);
  g_assert_cmpuint (stats (f).users, ==, 1);

  /* A REGISTER with 2000 Contacts is refused at once, not matched against anything. */
  g_string_truncate (many, 0);
  for (guint i = 0; i < 2000; i++)
    g_string_append_printf (many, "Contact: <sip:eve-%u@eve.invalid;transport=tcp>\r\n", i);
  start = g_get_monotonic_time ();
  g_assert_cmpuint (do_register (socket, "eve", many->str, 600, NULL), ==, 400);
  g_test_message ("2000 Contacts refused in %" G_GINT64_FORMAT " us",
                  g_get_monotonic_time () - start);
  g_string_free (many, TRUE);

  /* Users: five at most. */
  for (guint i = 1; i < 5; i++)
    {
      g_autofree char *user = g_strdup_printf ("user%u", i);
      g_autofree char *contact = contact_line (user, 0);

      g_assert_cmpuint (do_register (socket, user, contact, 600, NULL), ==, 200);
    }
  {
    g_autofree char *contact = contact_line ("user5", 0);

    g_assert_cmpuint (do_register (socket, "user5", contact, 600, NULL), ==, 503);
    g_assert_cmpuint (stats (f).users, ==, 5);
    /* Once alice is gone (Contact: *), there is room again. */
    g_assert_cmpuint (do_register (socket, "alice", "Contact: *\r\n", 0, NULL), ==, 200);
    g_assert_cmpuint (stats (f).users, ==, 4);
    g_assert_cmpuint (do_register (socket, "user5", contact, 600, NULL), ==, 200);
  }
}

/* The next final response on @socket (provisional ones skipped), or NULL. */
static char *
read_final (SipSocket *socket)
{
  for (;;)
    {
      char *message = sip_socket_read (socket, 10000);

      if (message == NULL || sip_text_status (message) >= 200)
        return message;
      g_free (message);
    }
}

/* A relayed INVITE answered 486: the caller's retransmission of the INVITE gets the same 486
 * again, retransmitted by NTA from the relayed copy. That copy must own its text: the callee's
 * response it was made from is freed with the relay (a use after free found by fuzz-edge). */
static void
test_retransmitted_final (Fixture *f, gconstpointer data)
{
  g_autoptr(SipSocket) caller = sip_socket_connect (f->port);
  g_autoptr(SipSocket) callee = sip_socket_connect (f->port);
  g_autofree char *contact = contact_line ("bob", 0);
  g_autofree char *invite = sip_text_over_tcp (sip_text_request ("INVITE", "sip:bob@127.0.0.1",
                                                                 "alice", "sip:bob@127.0.0.1",
                                                                 "retransmitted-final", 1,
                                                                 NULL, NULL));
  g_autofree char *relayed = NULL, *method = NULL, *busy = NULL, *first = NULL, *again = NULL;

  g_assert_cmpuint (do_register (callee, "bob", contact, 600, NULL), ==, 200);
  sip_socket_send (caller, invite);
  relayed = sip_socket_read (callee, 10000);
  g_assert_nonnull (relayed);
  method = sip_text_method (relayed);
  g_assert_cmpstr (method, ==, "INVITE");
  busy = sip_text_response (relayed, 486, "Busy Here");
  sip_socket_send (callee, busy);
  first = read_final (caller);
  g_assert_nonnull (first);
  g_assert_cmpuint (sip_text_status (first), ==, 486);

  sip_socket_send (caller, invite);
  again = read_final (caller);
  g_assert_nonnull (again);
  g_assert_cmpstr (again, ==, first);
}

/* A request whose empty line before the body is a bare CR (Sofia takes it) goes on with CRLF:
 * as it came, the callee would not find where it ends over tcp (found by fuzz-edge: the
 * edge's upstream read the next request as its body). */
static void
test_separator (Fixture *f, gconstpointer data)
{
  g_autoptr(SipSocket) caller = sip_socket_connect (f->port);
  g_autoptr(SipSocket) callee = sip_socket_connect (f->port);
  g_autofree char *contact = contact_line ("bob", 0);
  g_autofree char *message = sip_text_over_tcp (sip_text_request ("MESSAGE",
                                                                  "sip:bob@127.0.0.1", "alice",
                                                                  "sip:bob@127.0.0.1",
                                                                  "separator", 1, NULL,
                                                                  "hello"));
  char *separator = strstr (message, "\r\n\r\nhello");
  g_autofree char *relayed = NULL, *method = NULL;

  g_assert_cmpuint (do_register (callee, "bob", contact, 600, NULL), ==, 200);
  g_assert_nonnull (separator);
  memmove (separator + 3, separator + 4, strlen (separator + 4) + 1);   /* "\r\n\r" */
  sip_socket_send (caller, message);
  relayed = sip_socket_read (callee, 10000);
  g_assert_nonnull (relayed);
  method = sip_text_method (relayed);
  g_assert_cmpstr (method, ==, "MESSAGE");
  g_assert_true (g_str_has_suffix (relayed, "\r\n\r\nhello"));
}

static const RegistrarOptions edge = {
  .quiet = TRUE, .sweep_interval_ms = 100, .upstream = "sip:127.0.0.1:9;transport=tcp",
};

/* The edge: a request from the network for a URI NTA makes no transaction for (a scheme it
 * does not know) gets 500, and its copy is not left behind (a leak found by fuzz-edge, seen
 * under valgrind and ASan). */
static void
test_edge_cannot_relay (Fixture *f, gconstpointer data)
{
  g_autoptr(SipSocket) peer = sip_socket_connect (f->port);
  g_autofree char *uri = g_strdup_printf ("sizp:bob@127.0.0.1:%u;transport=tcp", f->port);
  g_autofree char *options = sip_text_over_tcp (sip_text_request ("OPTIONS", uri, "alice",
                                                                  "sip:bob@127.0.0.1",
                                                                  "cannot-relay", 1, NULL,
                                                                  NULL));
  g_autofree char *answer = NULL;

  sip_socket_send (peer, options);
  answer = read_final (peer);
  g_assert_nonnull (answer);
  g_assert_cmpuint (sip_text_status (answer), ==, 500);
  g_assert_cmpuint (stats (f).relays, ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/registrar-core/expiry", Fixture, NULL, fixture_setup, test_expiry,
              fixture_teardown);
  g_test_add ("/registrar-core/connection-close", Fixture, NULL, fixture_setup,
              test_connection_close, fixture_teardown);
  g_test_add ("/registrar-core/limits", Fixture, &small, fixture_setup, test_limits,
              fixture_teardown);
  g_test_add ("/registrar-core/retransmitted-final", Fixture, NULL, fixture_setup,
              test_retransmitted_final, fixture_teardown);
  g_test_add ("/registrar-core/separator", Fixture, NULL, fixture_setup, test_separator,
              fixture_teardown);
  g_test_add ("/registrar-core/edge-cannot-relay", Fixture, &edge, fixture_setup,
              test_edge_cannot_relay, fixture_teardown);

  return g_test_run ();
}
