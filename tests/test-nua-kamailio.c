/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A Sofia NUA user agent as a WebSocket client of Kamailio (websocket module), beside a SIP.js
 * browser client (examples/demo/alice.mjs on Node). NUA 1.12.11 passes no transport tag of an
 * application's to NTA, so its requests reach a ws target through the preloaded module
 * (LD_PRELOAD=tport-ws.so, which routes requests whose target says transport=ws), configured
 * by the application's own sofia_ws_tport_add_client() (CRLF keep-alives, reconnection).
 *
 * The test runs itself as that NUA program (--nua-child, preloaded) and drives it: NUA
 * registers through NUTAG_PROXY ws://Kamailio with keep-alives answered; SIP.js sends it a
 * MESSAGE and NUA answers with a MESSAGE of its own; Kamailio restarts, the connection comes
 * back, NUA registers again and the exchange works again. */
#include <sofia-ws/sofia-ws-tport.h>

#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/su_tag.h>

#include "support/drain.h"
#include "support/kamailio-peer.h"
#include "support/registrar-peer.h"

/* ---- the NUA program (the child) ----------------------------------------------------------- */

typedef struct {
  su_root_t *root;
  GMainLoop *loop;
  nua_t *nua;
  nua_handle_t *registration;
  GPtrArray *handles;
  tport_t *connection;
  guint keepalives;
  gboolean dropped;
  gboolean shutting_down;
} Child;

static void
child_register (Child *c)
{
  nua_register (c->registration,
                SIPTAG_CONTACT_STR ("<sip:sofia@sofia-ws.invalid;transport=ws>"),
                SIPTAG_EXPIRES_STR ("600"), TAG_END ());
}

static void
child_event (nua_event_t event, int status, char const *phrase, nua_t *nua, nua_magic_t *magic,
             nua_handle_t *nh, nua_hmagic_t *hmagic, sip_t const *sip, tagi_t tags[])
{
  Child *c = (Child *) magic;

  switch (event)
    {
    case nua_r_register:
      if (status >= 200)
        printf ("register %d\n", status);
      break;
    case nua_i_message:
      {
        /* NUA has answered it 200 itself; sofia answers with a MESSAGE of its own. */
        g_autofree char *body = sip && sip->sip_payload
          ? g_strndup (sip->sip_payload->pl_data, sip->sip_payload->pl_len) : g_strdup ("");
        g_autofree char *text = g_strdup_printf ("hello alice, from Sofia NUA (%s)", body);
        nua_handle_t *reply = nua_handle (nua, NULL, SIPTAG_TO_STR ("<sip:alice@127.0.0.1>"),
                                          SIPTAG_FROM_STR ("<sip:sofia@127.0.0.1>"),
                                          TAG_END ());

        printf ("message %s\n", body);
        g_ptr_array_add (c->handles, nh);
        g_ptr_array_add (c->handles, reply);
        nua_message (reply, SIPTAG_CONTENT_TYPE_STR ("text/plain"),
                     SIPTAG_PAYLOAD_STR (text), TAG_END ());
      }
      break;
    case nua_r_message:
      if (status >= 200)
        printf ("message-sent %d\n", status);
      break;
    case nua_r_shutdown:
      if (status >= 200)
        g_main_loop_quit (c->loop);
      break;
    default:
      break;
    }
}

static void
child_keepalive (SofiaWsWebSocket *websocket, gboolean answered, Child *c)
{
  if (answered && c->keepalives++ == 0)
    printf ("keepalive answered\n");
}

static void
child_disconnected (SofiaWsTransport *transport, Child *c)
{
  c->dropped = TRUE;
}

/* The connection came back after Kamailio restarted: register again over it. */
static void
child_connected (SofiaWsTransport *transport, Child *c)
{
  if (!c->dropped)
    return;
  c->dropped = FALSE;
  printf ("reconnected\n");
  child_register (c);
}

static gboolean
child_stop (gpointer data)
{
  Child *c = data;

  if (!c->shutting_down)
    {
      c->shutting_down = TRUE;
      g_signal_handlers_disconnect_by_data (sofia_ws_tport_get_transport (c->connection), c);
      tport_unref (c->connection);
      for (guint i = 0; i < c->handles->len; i++)
        nua_handle_destroy (c->handles->pdata[i]);
      nua_shutdown (c->nua);
    }
  return G_SOURCE_CONTINUE;
}

/* The test went away (its end of our stdin closed): stop too. */
static gboolean
child_on_stdin (GIOChannel *channel, GIOCondition condition, gpointer data)
{
  char buffer[64];

  if ((condition & G_IO_IN) && read (0, buffer, sizeof buffer) > 0)
    return G_SOURCE_CONTINUE;
  child_stop (data);
  return G_SOURCE_REMOVE;
}

static int
child_main (const char *proxy)
{
  GIOChannel *stdin_channel;
  g_autoptr(GError) error = NULL;
  Child c = { 0 };
  nta_agent_t *agent;
  tport_t *client;

  /* One line at a time, in UTF-8 whatever the locale (g_print would convert). */
  setvbuf (stdout, NULL, _IOLBF, 0);
  su_init ();
  c.handles = g_ptr_array_new ();
  c.loop = g_main_loop_new (NULL, FALSE);
  c.root = su_glib_root_create (&c);
  g_source_attach (su_glib_root_gsource (c.root), NULL);
  su_root_threading (c.root, 0);
  c.nua = nua_create (c.root, child_event, (nua_magic_t *) &c,
                      NUTAG_URL ("sip:127.0.0.1:0;transport=tcp"),
                      NUTAG_PROXY (proxy),
                      NUTAG_OUTBOUND ("no-natify no-options-keepalive no-validate"),
                      TAG_END ());
  g_assert_nonnull (c.nua);

  /* The ws client the preloaded module routes this agent's ws requests through. */
  agent = sofia_ws_tport_get_nua_agent (c.nua, &error);
  g_assert_no_error (error);
  client = sofia_ws_tport_add_client (agent, "ws", &error, WSTAG_CRLF_KEEPALIVE (1),
                                      WSTAG_RECONNECT (5), TAG_END ());
  g_assert_no_error (error);
  c.connection = tport_ref (sofia_ws_tport_connect (client, proxy, &error));
  g_assert_no_error (error);
  g_signal_connect (sofia_ws_tport_get_transport (c.connection), "keepalive",
                    G_CALLBACK (child_keepalive), &c);
  g_signal_connect (sofia_ws_tport_get_transport (c.connection), "connected",
                    G_CALLBACK (child_connected), &c);
  g_signal_connect (sofia_ws_tport_get_transport (c.connection), "disconnected",
                    G_CALLBACK (child_disconnected), &c);

  c.registration = nua_handle (c.nua, NULL, SIPTAG_TO_STR ("<sip:sofia@127.0.0.1>"), TAG_END ());
  g_ptr_array_add (c.handles, c.registration);
  child_register (&c);

  g_unix_signal_add (SIGTERM, child_stop, &c);
  stdin_channel = g_io_channel_unix_new (0);
  g_io_add_watch (stdin_channel, G_IO_IN | G_IO_HUP | G_IO_ERR, child_on_stdin, &c);
  g_io_channel_unref (stdin_channel);
  g_main_loop_run (c.loop);
  nua_destroy (c.nua);
  su_root_destroy (c.root);
  g_main_loop_unref (c.loop);
  g_ptr_array_unref (c.handles);
  su_deinit ();
  printf ("stopped\n");
  return 0;
}

/* ---- the test (the parent) ------------------------------------------------------------------ */

typedef struct {
  KamailioPeer *kamailio;
  GSubprocess *child;
  GDataInputStream *out;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->kamailio = kamailio_peer_start_or_skip ();   /* NULL: skipped */
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  if (f->child != NULL)
    {
      g_autoptr(GError) error = NULL;

      g_subprocess_send_signal (f->child, SIGTERM);
      g_subprocess_wait (f->child, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (g_subprocess_get_exit_status (f->child), ==, 0);
    }
  g_clear_object (&f->out);
  g_clear_object (&f->child);
  g_clear_pointer (&f->kamailio, kamailio_peer_stop);
}

/* The child's next line (within 20 s), which must be @expected. */
static void
expect_line (Fixture *f, const char *expected)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *line = g_data_input_stream_read_line_utf8 (f->out, NULL, NULL, &error);

  g_assert_no_error (error);
  g_test_message ("nua: %s", line ? line : "(end)");
  g_assert_cmpstr (line, ==, expected);
}

/* SIP.js alice registers at Kamailio, sends sofia a MESSAGE and waits for sofia's. */
static void
run_alice (Fixture *f, const char *body)
{
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "..", "examples", "demo",
                                                   "alice.mjs", NULL);
  g_autofree char *node_dir = g_test_build_filename (G_TEST_DIST, "interop", "node", NULL);
  g_autofree char *server = g_strdup_printf ("ws://127.0.0.1:%u/",
                                             kamailio_peer_get_port (f->kamailio));
  g_autofree char *expected = g_strdup_printf ("MESSAGE from sip:sofia@127.0.0.1: "
                                               "hello alice, from Sofia NUA (%s)", body);
  g_autofree char *got = g_strdup_printf ("message %s", body);
  g_autofree char *out = NULL;
  g_autoptr(GSubprocess) alice = NULL;
  g_autoptr(GError) error = NULL;

  alice = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, "node", script,
                            "--server", server, "--node-dir", node_dir,
                            "--to", "sip:sofia@127.0.0.1", "--body", body,
                            "--expect-reply", "--timeout", "20", NULL);
  g_assert_no_error (error);
  /* NUA got alice's MESSAGE over the WebSocket, and its own went out with 200... */
  expect_line (f, got);
  expect_line (f, "message-sent 200");
  /* ...to alice, through Kamailio. */
  g_subprocess_communicate_utf8 (alice, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("alice:\n%s", out);
  g_assert_cmpint (g_subprocess_get_exit_status (alice), ==, 0);
  g_assert_nonnull (strstr (out, expected));
}

static void
test_register_message_restart (Fixture *f, gconstpointer data)
{
  g_autofree char *modules = g_test_build_filename (G_TEST_DIST, "interop", "node",
                                                    "node_modules", "sip.js", NULL);
  g_autofree char *preload_value = NULL;
  g_autofree char *module = g_build_filename (g_getenv ("SOFIA_WS_PLUGIN_DIR"), "tport-ws.so",
                                              NULL);
  g_autofree char *proxy = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GPtrArray) argv = NULL;
  g_autoptr(GError) error = NULL;

  if (f->kamailio == NULL)
    return;
  if (!g_file_test (modules, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("tests/interop/node has no node_modules: run `npm ci` there (./run test does)");
      return;
    }

  proxy = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", kamailio_peer_get_port (f->kamailio));
  /* stdin: a pipe the child watches, so that it stops if this test dies. */
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDIN_PIPE);
  preload_value = test_preload_value (module);
  g_subprocess_launcher_setenv (launcher, "LD_PRELOAD", preload_value, TRUE);
  argv = g_ptr_array_new_with_free_func (g_free);
  /* Under `meson test --setup valgrind`, the NUA program (the module's client path) runs under
   * memcheck too. */
  test_wrap_in_valgrind (argv);
  g_ptr_array_add (argv, g_test_build_filename (G_TEST_BUILT, "test-nua-kamailio", NULL));
  g_ptr_array_add (argv, g_strdup ("--nua-child"));
  g_ptr_array_add (argv, g_strdup (proxy));
  g_ptr_array_add (argv, NULL);
  f->child = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  f->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (f->child));

  expect_line (f, "register 200");
  /* RFC 5626 CRLF keep-alives on the connection, answered by Kamailio. */
  expect_line (f, "keepalive answered");
  run_alice (f, "hello sofia, from SIP.js (é)");

  /* Kamailio restarts and forgets the registration: the connection comes back by itself and
   * NUA registers again over it. */
  kamailio_peer_restart (f->kamailio, &error);
  g_assert_no_error (error);
  expect_line (f, "reconnected");
  expect_line (f, "register 200");
  run_alice (f, "hello again, after the restart");
}

int
main (int argc, char **argv)
{
  if (argc == 3 && g_str_equal (argv[1], "--nua-child"))
    return child_main (argv[2]);

  g_test_init (&argc, &argv, NULL);
  su_init ();
  g_test_add ("/nua-kamailio/register-message-restart", Fixture, NULL, fixture_setup,
              test_register_message_restart, fixture_teardown);
  {
    int status = g_test_run ();

    su_deinit ();
    return status;
  }
}
