/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* examples/sofia-ws-edge between real peers, all on 127.0.0.1 ports they chose:
 *
 *  inbound   SIP.js and JsSIP (tests/interop/node) connect to the edge over ws and register,
 *            through it, at Kamailio as a plain SIP registrar and proxy over TCP (Path support,
 *            kamailio_peer_start_sip()); they exchange MESSAGEs and call each other (INVITE,
 *            re-INVITE, INFO, BYE both ways, CANCEL), Kamailio reaching each over the edge by
 *            the flow token of its Path and of the edge's Record-Route;
 *  outbound  two SIP user agents over TCP (raw sockets in this process, standing in for
 *            FreeSWITCH gateways) send through the edge to Kamailio's ws-only listener (the
 *            Request-URI or Route says transport=ws): they register there, exchange a MESSAGE
 *            and call each other;
 *  hostile   Max-Forwards 0 (483), a request forwarded back to the edge (482), a request for a
 *            client whose connection has gone (430 at once);
 *  restarts  Kamailio, then the edge, restarted under the clients: registering again works.
 *
 * The edge is started and stopped (SIGTERM, exit 0) by PID through registrar-peer.c, so that
 * it runs under memcheck in the valgrind setup. */
#include <string.h>

#include <gio/gio.h>

#include "support/kamailio-peer.h"
#include "support/registrar-peer.h"
#include "support/sip-socket.h"
#include "support/sip-text.h"
#include "support/ws-probe.h"

typedef struct {
  KamailioPeer *kamailio;
  RegistrarPeer *edge;
  guint16 ws_port;
  guint16 tcp_port;
  char *node_dir;
} Fixture;

static gboolean
node_available (Fixture *f)
{
  g_autofree char *modules = g_build_filename (f->node_dir, "node_modules", "sip.js", NULL);

  if (!g_file_test (modules, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("tests/interop/node has no node_modules: run `npm ci` there (./run test does)");
      return FALSE;
    }
  return TRUE;
}

/* The edge on @ws_port and @tcp_port (0: any), in front of Kamailio. */
static void
start_edge (Fixture *f,
            guint16  ws_port,
            guint16  tcp_port)
{
  g_autofree char *ws = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", ws_port);
  g_autofree char *tcp = g_strdup_printf ("sip:127.0.0.1:%u;transport=tcp", tcp_port);
  g_autofree char *upstream = g_strdup_printf ("sip:127.0.0.1:%u;transport=tcp",
                                               kamailio_peer_get_port (f->kamailio));
  const char *args[] = { "--listen", ws, "--listen", tcp, "--upstream", upstream, NULL };

  f->edge = registrar_peer_start_edge (args);
  f->ws_port = registrar_peer_get_port (f->edge, "ws");
  f->tcp_port = registrar_peer_get_port (f->edge, "tcp");
  g_assert_cmpuint (f->ws_port, >, 0);
  g_assert_cmpuint (f->tcp_port, >, 0);
}

/* @data: "sip" (Kamailio as a plain SIP registrar behind the edge) or "ws" (Kamailio serving
 * WebSocket only, the edge's target). */
static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->node_dir = g_test_build_filename (G_TEST_DIST, "interop", "node", NULL);
  f->kamailio = g_str_equal (data, "sip") ? kamailio_peer_start_sip_or_skip ()
                                          : kamailio_peer_start_or_skip ();
  if (f->kamailio == NULL)
    return;
  start_edge (f, 0, 0);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->edge, registrar_peer_stop);
  g_clear_pointer (&f->kamailio, kamailio_peer_stop);
  g_free (f->node_dir);
}

/* Runs a Node script of tests/interop/node against the edge's ws port; its stdout. */
static char *
run_node (Fixture *f, const char *script, const char *lib)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) clients = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *server = g_strdup_printf ("ws://127.0.0.1:%u/", f->ws_port);
  g_autofree char *err = NULL;
  char *out = NULL;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_cwd (launcher, f->node_dir);
  clients = g_subprocess_launcher_spawn (launcher, &error, "node", script, "--lib", lib,
                                         "--server", server, "--domain", "127.0.0.1",
                                         "--timeout", "60", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (clients, NULL, NULL, &out, &err, &error);
  g_assert_no_error (error);
  g_test_message ("%s %s:\n%s%s", script, lib, out, err);
  g_assert_true (g_subprocess_get_if_exited (clients));
  g_assert_cmpint (g_subprocess_get_exit_status (clients), ==, 0);
  g_assert_nonnull (strstr (out, "{\"result\":\"ok\""));
  return out;
}

/* Both register through the edge, alice's OPTIONS is answered by Kamailio, her MESSAGE
 * reaches bob over his own connection: Kamailio sent it to the edge by bob's Path. */
static void
run_clients (Fixture *f, const char *lib)
{
  g_autofree char *out = NULL, *line = NULL;

  if (f->kamailio == NULL || !node_available (f))
    return;
  out = run_node (f, "sip-clients.mjs", lib);
  g_assert_nonnull (strstr (out, "\"ua\":\"alice\",\"step\":\"register\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"ua\":\"bob\",\"step\":\"register\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"message-received\""));
  /* As the edge saw it: the MESSAGE came back from Kamailio with bob's flow token. */
  line = registrar_peer_read_line (f->edge, "MESSAGE from tcp ", NULL, NULL);
  g_assert_cmpstr (strstr (line, ": "), ==, ": in dialog, relaying");
}

static void
test_sipjs (Fixture *f, gconstpointer data)
{
  run_clients (f, "sipjs");
}

static void
test_jssip (Fixture *f, gconstpointer data)
{
  run_clients (f, "jssip");
}

/* Calls through the edge and Kamailio: answered, re-INVITE, INFO, BYE from the caller; BYE
 * from the callee (over the caller's connection, by the Record-Route's flow token); CANCEL. */
static void
run_call (Fixture *f, const char *lib)
{
  g_autofree char *out = NULL;

  if (f->kamailio == NULL || !node_available (f))
    return;
  out = run_node (f, "sip-call.mjs", lib);
  g_assert_nonnull (strstr (out, "\"step\":\"call1-reinvite\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"call1-info\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"call1-bye\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"call2-bye\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"call3-cancelled\""));
}

static void
test_call_sipjs (Fixture *f, gconstpointer data)
{
  run_call (f, "sipjs");
}

static void
test_call_jssip (Fixture *f, gconstpointer data)
{
  run_call (f, "jssip");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, mode, fn) \
  g_test_add ("/edge/" path, Fixture, mode, fixture_setup, fn, fixture_teardown)
  ADD ("inbound/sipjs", "sip", test_sipjs);
  ADD ("inbound/jssip", "sip", test_jssip);
  ADD ("inbound/call-sipjs", "sip", test_call_sipjs);
  ADD ("inbound/call-jssip", "sip", test_call_jssip);
#undef ADD

  return g_test_run ();
}
