/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sofia-ws-edge's outbound side with a NUA program standing in for FreeSWITCH: Kamailio serves
 * SIP over WebSocket only (kamailio-peer.c), and tests/support/nua-gateway.c (NUA, configured
 * as the README's "FreeSWITCH behind sofia-ws-edge" tells a FreeSWITCH gateway: the edge's tcp
 * listener as outbound proxy, the ws server with transport=ws as registrar, its own tcp
 * listener) registers there through the edge, receives calls and places them:
 *
 *  calls      fs1 and fs2 register (200 each); fs2 calls fs1 (INVITE, 180, 200 with SDP both
 *             ways, ACK) and fs1 hangs up; fs1 calls fs2 and hangs up itself; a call to a user
 *             not registered gets Kamailio's 404 through the edge;
 *  browser    a SIP.js client (tests/interop/node/browser.mjs) registered at Kamailio directly
 *             over ws calls a gateway, and the gateway calls it;
 *  restarts   Kamailio, the edge, a gateway restarted under registered gateways: they register
 *             again (NUA's own refresh of a short registration, and the gateway's retry after a
 *             failed one) and a call works again.
 *
 * Every program runs on 127.0.0.1 ports it chose and is stopped by PID (or by its `quit`); the
 * gateways and the edge run under memcheck in the valgrind setup. Each wait is bounded. */
#include <string.h>
#include <sys/prctl.h>
#include <signal.h>

#include <gio/gio.h>

#include "support/kamailio-peer.h"
#include "support/registrar-peer.h"
#include "support/valgrind-compat.h"
#include "support/ws-probe.h"

/* Seconds a step may take: generous under valgrind, where the gateways and the edge run under
 * memcheck too. */
#define STEP_SECONDS (RUNNING_ON_VALGRIND ? 60 : 15)

/* The gateways' expiry in the restart tests: NUA refreshes between 2 and 7 s (a quarter and
 * three quarters of it, plus a bit), before Kamailio lets the binding lapse. */
#define SHORT_EXPIRES 8

static gboolean
on_timeout (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* A program the test talks to by lines: a gateway or the SIP.js client. */
typedef struct {
  char *name;                     /* in messages */
  GSubprocess *process;
  GDataInputStream *out;
  GQueue lines;
  gboolean reading;
  gboolean eof;
  guint16 port;                   /* a gateway's tcp listener */
} Peer;

static void peer_read (Peer *peer);

static void
on_peer_line (GObject *source, GAsyncResult *result, gpointer data)
{
  Peer *peer = data;
  char *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result,
                                                          NULL, NULL);

  peer->reading = FALSE;
  if (line == NULL)
    {
      peer->eof = TRUE;
      return;
    }
  g_test_message ("%s: %s", peer->name, line);
  g_queue_push_tail (&peer->lines, line);
  peer_read (peer);
}

static void
peer_read (Peer *peer)
{
  peer->reading = TRUE;
  g_data_input_stream_read_line_async (peer->out, G_PRIORITY_DEFAULT, NULL, on_peer_line, peer);
}

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* Starts @argv (owned strings, not NULL-terminated yet) in @cwd (or here). */
static void
peer_spawn (Peer *peer, const char *name, GPtrArray *argv, const char *cwd)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDIN_PIPE);
  /* A test that dies takes its peers along: an orphan would keep meson waiting. */
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  if (cwd != NULL)
    g_subprocess_launcher_set_cwd (launcher, cwd);
  g_free (peer->name);
  peer->name = g_strdup (name);
  peer->eof = FALSE;
  g_ptr_array_add (argv, NULL);
  peer->process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata,
                                                &error);
  g_assert_no_error (error);
  peer->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (peer->process));
  peer_read (peer);
}

static void
peer_say (Peer *peer, const char *command)
{
  g_autofree char *line = g_strconcat (command, "\n", NULL);
  g_autoptr(GError) error = NULL;

  g_test_message ("%s <- %s", peer->name, command);
  g_output_stream_write_all (g_subprocess_get_stdin_pipe (peer->process), line, strlen (line),
                             NULL, NULL, &error);
  g_assert_no_error (error);
}

/* Waits (STEP_SECONDS at most) for a line of @peer that starts with @prefix, and takes it (the
 * first one; the other lines stay). */
static char *
peer_expect (Peer *peer, const char *prefix)
{
  gboolean expired = FALSE;
  guint timer = g_timeout_add_seconds (STEP_SECONDS, on_timeout, &expired);

  for (;;)
    {
      for (GList *l = peer->lines.head; l != NULL; l = l->next)
        if (g_str_has_prefix (l->data, prefix))
          {
            char *found = l->data;

            g_queue_delete_link (&peer->lines, l);
            g_source_remove (timer);
            return found;
          }
      if (expired || peer->eof)
        {
          for (GList *l = peer->lines.head; l != NULL; l = l->next)
            g_printerr ("# %s, not taken: %s\n", peer->name, (char *) l->data);
          g_error ("%s: no \"%s...\" within %u s%s", peer->name, prefix, STEP_SECONDS,
                   peer->eof ? " (it exited)" : "");
        }
      g_main_context_iteration (NULL, TRUE);
    }
}

/* peer_expect(), and the line must be @expected exactly. */
static void
peer_expect_line (Peer *peer, const char *prefix, const char *expected)
{
  g_autofree char *line = peer_expect (peer, prefix);

  g_assert_cmpstr (line, ==, expected);
}

/* Forgets the lines read so far, and those already written to the pipe. */
static void
peer_forget (Peer *peer)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_queue_clear_full (&peer->lines, g_free);
}

/* `quit`: the program ends by itself (a gateway shuts NUA down, unregistering) and exits 0. */
static void
peer_stop (Peer *peer)
{
  g_autoptr(GError) error = NULL;
  gboolean expired = FALSE;
  guint timer;

  if (peer->process == NULL)
    return;
  peer_say (peer, "quit");
  timer = g_timeout_add_seconds (STEP_SECONDS, on_timeout, &expired);
  while ((!peer->eof || peer->reading) && !expired)
    g_main_context_iteration (NULL, TRUE);
  if (expired)
    {
      g_subprocess_force_exit (peer->process);
      g_error ("%s did not exit within %u s of quit", peer->name, STEP_SECONDS);
    }
  g_source_remove (timer);
  g_subprocess_wait_check (peer->process, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&peer->out);
  g_clear_object (&peer->process);
  g_queue_clear_full (&peer->lines, g_free);
}

/* ---- the fixture --------------------------------------------------------------------------- */

typedef struct {
  KamailioPeer *kamailio;
  RegistrarPeer *edge;
  guint16 tcp_port;               /* the edge's */
  guint16 ws_port;
  Peer fs1, fs2;                  /* the gateways */
  Peer browser;                   /* SIP.js, at Kamailio directly */
  guint expires;
} Fixture;

static void
start_edge (Fixture *f, guint16 ws_port, guint16 tcp_port)
{
  g_autofree char *ws = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", ws_port);
  g_autofree char *tcp = g_strdup_printf ("sip:127.0.0.1:%u;transport=tcp", tcp_port);
  g_autofree char *upstream = g_strdup_printf ("sip:127.0.0.1:%u;transport=tcp",
                                               kamailio_peer_get_port (f->kamailio));
  const char *args[] = { "--listen", ws, "--listen", tcp, "--upstream", upstream, NULL };

  f->edge = registrar_peer_start_edge (args);
  f->ws_port = registrar_peer_get_port (f->edge, "ws");
  f->tcp_port = registrar_peer_get_port (f->edge, "tcp");
  g_assert_cmpuint (f->tcp_port, >, 0);
}

/* A gateway @user (on its tcp @port, 0: any) with the README's settings: outbound proxy the
 * edge's tcp listener, registrar Kamailio's ws listener; audio port @media in its SDP. */
static void
gateway_start (Fixture *f, Peer *gw, const char *user, guint16 port, guint media)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *line = NULL;
  const char *binary = g_getenv ("NUA_GATEWAY");
  const char *colon;

  g_assert_nonnull (binary);
  test_wrap_in_valgrind (argv);
  g_ptr_array_add (argv, g_strdup (binary));
  g_ptr_array_add (argv, g_strdup_printf ("--user=%s", user));
  g_ptr_array_add (argv, g_strdup_printf ("--proxy=sip:127.0.0.1:%u;transport=tcp",
                                          f->tcp_port));
  g_ptr_array_add (argv, g_strdup_printf ("--registrar=sip:127.0.0.1:%u;transport=ws",
                                          kamailio_peer_get_port (f->kamailio)));
  g_ptr_array_add (argv, g_strdup_printf ("--listen=sip:127.0.0.1:%u;transport=tcp", port));
  g_ptr_array_add (argv, g_strdup_printf ("--expires=%u", f->expires));
  g_ptr_array_add (argv, g_strdup ("--retry-seconds=1"));
  g_ptr_array_add (argv, g_strdup_printf ("--media-port=%u", media));
  peer_spawn (gw, user, argv, NULL);

  line = peer_expect (gw, "listening ");
  g_assert_true (g_str_has_prefix (line, "listening sip:127.0.0.1:"));
  g_assert_true (g_str_has_suffix (line, ";transport=tcp"));
  colon = line + strlen ("listening sip:127.0.0.1:");
  gw->port = (guint16) g_ascii_strtoull (colon, NULL, 10);
  g_assert_cmpuint (gw->port, >, 0);
  if (port != 0)
    g_assert_cmpuint (gw->port, ==, port);
}

static void
gateway_register (Peer *gw)
{
  peer_say (gw, "register");
  peer_expect_line (gw, "registered ", "registered 200 OK");
}

/* fs1 (audio port 40001) and fs2 (40002), registered, with expiry @data (seconds). */
static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->expires = GPOINTER_TO_UINT (data);
  f->kamailio = kamailio_peer_start_or_skip ();
  if (f->kamailio == NULL)
    return;
  start_edge (f, 0, 0);
  gateway_start (f, &f->fs1, "fs1", 0, 40001);
  gateway_start (f, &f->fs2, "fs2", 0, 40002);
  gateway_register (&f->fs1);
  gateway_register (&f->fs2);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  /* The clients first, while the edge and Kamailio answer their un-REGISTERs. */
  peer_stop (&f->browser);
  peer_stop (&f->fs1);
  peer_stop (&f->fs2);
  g_clear_pointer (&f->edge, registrar_peer_stop);
  g_clear_pointer (&f->kamailio, kamailio_peer_stop);
  g_free (f->fs1.name);
  g_free (f->fs2.name);
  g_free (f->browser.name);
}

/* "sip:USER@127.0.0.1:KAMAILIO;transport=ws": a gateway's Request-URI for a user of the ws
 * server (the README: the gateway's proxy names the ws server). */
static char *
ws_uri (Fixture *f, const char *user)
{
  return g_strdup_printf ("sip:%s@127.0.0.1:%u;transport=ws", user,
                          kamailio_peer_get_port (f->kamailio));
}

/* @caller calls @callee (both gateways; audio ports @caller_media and @callee_media), and the
 * call is up: INVITE, 180, 200 with the callee's SDP, ACK, each side seeing the other's media
 * line. Then @hangup (one of the two) sends BYE. */
static void
gateway_call (Fixture *f, Peer *caller, guint caller_media, Peer *callee, guint callee_media,
              Peer *hangup)
{
  g_autofree char *uri = ws_uri (f, callee->name);
  g_autofree char *command = g_strdup_printf ("call %s", uri);
  g_autofree char *incoming = g_strdup_printf ("incoming INVITE from sip:%s@127.0.0.1",
                                               caller->name);
  g_autofree char *caller_sdp = g_strdup_printf ("remote sdp m=audio %u RTP/AVP 0",
                                                 caller_media);
  g_autofree char *callee_sdp = g_strdup_printf ("remote sdp m=audio %u RTP/AVP 0",
                                                 callee_media);
  Peer *other = hangup == caller ? callee : caller;

  peer_say (caller, command);
  peer_expect_line (callee, "incoming INVITE", incoming);
  peer_expect_line (callee, "remote sdp", caller_sdp);
  peer_expect_line (caller, "call 180", "call 180 Ringing");
  peer_expect_line (caller, "call 200", "call 200 OK");
  peer_expect_line (caller, "remote sdp", callee_sdp);
  peer_expect_line (callee, "ack", "ack");

  peer_say (hangup, "bye");
  peer_expect_line (other, "bye received", "bye received");
  peer_expect_line (hangup, "bye ", "bye 200 OK");
  peer_expect_line (hangup, "terminated", "terminated");
  peer_expect_line (other, "terminated", "terminated");
}

/* ---- calls between gateways ---------------------------------------------------------------- */

static void
test_calls (Fixture *f, gconstpointer data)
{
  g_autofree char *nobody = NULL, *command = NULL;

  if (f->kamailio == NULL)
    return;
  /* fs2 calls fs1, the callee hangs up; fs1 calls fs2, the caller hangs up. */
  gateway_call (f, &f->fs2, 40002, &f->fs1, 40001, &f->fs1);
  gateway_call (f, &f->fs1, 40001, &f->fs2, 40002, &f->fs1);

  /* A user with no registration: Kamailio's 404, through the edge. */
  nobody = ws_uri (f, "nobody");
  command = g_strdup_printf ("call %s", nobody);
  peer_say (&f->fs1, command);
  peer_expect_line (&f->fs1, "call ", "call 404 Not Found");
  peer_expect_line (&f->fs1, "terminated", "terminated");
}

/* ---- a browser-style client on the far side ------------------------------------------------ */

/* SIP.js (browser.mjs) registered at Kamailio's ws listener as carol; NULL when Node or SIP.js
 * is missing (the test is then skipped). */
static gboolean
browser_start (Fixture *f)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *node_dir = NULL;

  if (!test_node_package_available ("sip.js"))
    {
      g_test_skip ("tests/interop/node has no sip.js (npm ci there)");
      return FALSE;
    }
  node_dir = g_test_build_filename (G_TEST_DIST, "interop", "node", NULL);
  g_ptr_array_add (argv, g_strdup ("node"));
  g_ptr_array_add (argv, g_strdup ("browser.mjs"));
  g_ptr_array_add (argv, g_strdup ("--server"));
  g_ptr_array_add (argv, g_strdup (kamailio_peer_get_ws_url (f->kamailio)));
  g_ptr_array_add (argv, g_strdup ("--user"));
  g_ptr_array_add (argv, g_strdup ("carol"));
  g_ptr_array_add (argv, g_strdup ("--domain"));
  g_ptr_array_add (argv, g_strdup ("127.0.0.1"));
  g_ptr_array_add (argv, g_strdup ("--timeout"));
  g_ptr_array_add (argv, g_strdup (RUNNING_ON_VALGRIND ? "280" : "120"));
  peer_spawn (&f->browser, "carol", argv, node_dir);
  g_free (peer_expect (&f->browser, "{\"event\":\"registered\",\"status\":200"));
  return TRUE;
}

/* A gateway calls carol (SIP.js at Kamailio), carol hangs up; carol calls the gateway, the
 * gateway hangs up. */
static void
test_browser (Fixture *f, gconstpointer data)
{
  g_autofree char *carol = NULL, *command = NULL;

  if (f->kamailio == NULL || !browser_start (f))
    return;

  carol = ws_uri (f, "carol");
  command = g_strdup_printf ("call %s", carol);
  peer_say (&f->fs1, command);
  g_free (peer_expect (&f->browser, "{\"event\":\"invite\",\"from\":\"sip:fs1@127.0.0.1\""));
  peer_expect_line (&f->fs1, "call 200", "call 200 OK");
  peer_expect_line (&f->fs1, "remote sdp", "remote sdp m=audio 9 RTP/AVP 0");
  g_free (peer_expect (&f->browser, "{\"event\":\"session\",\"state\":\"Established\"}"));
  peer_say (&f->browser, "bye");
  peer_expect_line (&f->fs1, "bye received", "bye received");
  peer_expect_line (&f->fs1, "terminated", "terminated");
  g_free (peer_expect (&f->browser, "{\"event\":\"session\",\"state\":\"Terminated\"}"));

  /* carol calls fs2 by its address of record at Kamailio. */
  peer_say (&f->browser, "call sip:fs2@127.0.0.1");
  peer_expect_line (&f->fs2, "incoming INVITE", "incoming INVITE from sip:carol@127.0.0.1");
  peer_expect_line (&f->fs2, "remote sdp", "remote sdp m=audio 9 RTP/AVP 0");
  g_free (peer_expect (&f->browser, "{\"event\":\"call\",\"status\":200"));
  peer_expect_line (&f->fs2, "ack", "ack");
  peer_say (&f->fs2, "bye");
  peer_expect_line (&f->fs2, "bye ", "bye 200 OK");
  g_free (peer_expect (&f->browser, "{\"event\":\"session\",\"state\":\"Terminated\"}"));
  peer_expect_line (&f->fs2, "terminated", "terminated");
}

/* ---- restarts under registered gateways ---------------------------------------------------- */

/* Both gateways have registered again since now (a refresh of their short registration, or a
 * retry after a failed one), and a call works both ways. */
static void
registered_again_and_call (Fixture *f)
{
  peer_forget (&f->fs1);
  peer_forget (&f->fs2);
  peer_expect_line (&f->fs1, "registered 200", "registered 200 OK");
  peer_expect_line (&f->fs2, "registered 200", "registered 200 OK");
  gateway_call (f, &f->fs2, 40002, &f->fs1, 40001, &f->fs2);
  gateway_call (f, &f->fs1, 40001, &f->fs2, 40002, &f->fs2);
}

/* Kamailio restarts (its registrations are gone, the edge's ws connection to it breaks). */
static void
test_restart_kamailio (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  if (f->kamailio == NULL)
    return;
  gateway_call (f, &f->fs2, 40002, &f->fs1, 40001, &f->fs1);
  g_assert_true (kamailio_peer_restart (f->kamailio, &error));
  g_assert_no_error (error);
  registered_again_and_call (f);
}

/* The edge restarts on the same ports (the gateways' connections to it break, Kamailio drops
 * the bindings of its ws connection). */
static void
test_restart_edge (Fixture *f, gconstpointer data)
{
  guint16 ws_port = f->ws_port, tcp_port = f->tcp_port;

  if (f->kamailio == NULL)
    return;
  gateway_call (f, &f->fs2, 40002, &f->fs1, 40001, &f->fs1);
  g_clear_pointer (&f->edge, registrar_peer_stop);
  start_edge (f, ws_port, tcp_port);
  g_assert_cmpuint (f->tcp_port, ==, tcp_port);
  registered_again_and_call (f);
}

/* fs1 restarts on its port: it unregisters as it stops, registers as it starts, and calls
 * reach it again. */
static void
test_restart_gateway (Fixture *f, gconstpointer data)
{
  guint16 port = f->fs1.port;
  g_autofree char *fs1 = NULL, *command = NULL;

  if (f->kamailio == NULL)
    return;
  gateway_call (f, &f->fs2, 40002, &f->fs1, 40001, &f->fs1);
  peer_stop (&f->fs1);

  /* No fs1 at Kamailio now. */
  fs1 = ws_uri (f, "fs1");
  command = g_strdup_printf ("call %s", fs1);
  peer_say (&f->fs2, command);
  peer_expect_line (&f->fs2, "call ", "call 404 Not Found");
  peer_expect_line (&f->fs2, "terminated", "terminated");

  gateway_start (f, &f->fs1, "fs1", port, 40001);
  gateway_register (&f->fs1);
  gateway_call (f, &f->fs2, 40002, &f->fs1, 40001, &f->fs1);
  gateway_call (f, &f->fs1, 40001, &f->fs2, 40002, &f->fs2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, expires, fn) \
  g_test_add ("/edge-nua/" path, Fixture, GUINT_TO_POINTER (expires), fixture_setup, fn, \
              fixture_teardown)
  ADD ("calls", 300, test_calls);
  ADD ("browser", 300, test_browser);
  ADD ("restart/kamailio", SHORT_EXPIRES, test_restart_kamailio);
  ADD ("restart/edge", SHORT_EXPIRES, test_restart_edge);
  ADD ("restart/gateway", 300, test_restart_gateway);
#undef ADD

  return g_test_run ();
}
