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
 *  upstreams the same clients and calls to Kamailio over udp (a 2 kB INVITE too, which must
 *            arrive over udp) and over tls (kamailio-tls-modules, a test certificate the edge
 *            trusts through --sip-tls-dir);
 *  hostile   Max-Forwards 0 (483), a request forwarded back to the edge (482), a request for a
 *            client whose connection has gone (430 at once), a tls upstream whose certificate
 *            does not verify, or names another host (503 at once; the edge keeps running);
 *  restarts  Kamailio, then the edge, restarted under the clients: registering again works.
 *
 * The edge is started and stopped (SIGTERM, exit 0) by PID through registrar-peer.c, so that
 * it runs under memcheck in the valgrind setup. */
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "support/kamailio-peer.h"
#include "support/registrar-peer.h"
#include "support/sip-socket.h"
#include "support/sip-text.h"
#include "support/ws-probe.h"

#include <sofia-ws/sofia-ws.h>

typedef struct {
  KamailioPeer *kamailio;
  RegistrarPeer *edge;
  guint16 ws_port;
  guint16 tcp_port;
  char *node_dir;
  const char *upstream_proto;     /* the edge's upstream: "tcp", "udp" or "tls" */
  TestCertificate *certificate;   /* tls: Kamailio's, and the CA the edge trusts */
  TestCertificate *other;         /* tls, untrusted: the one Kamailio serves instead */
  char *sip_tls_dir;              /* tls: the edge's --sip-tls-dir */
  char *edge_stderr;              /* tls: the edge's stderr (Sofia's log), in sip_tls_dir */
} Fixture;

static gboolean
node_available (Fixture *f)
{
  return test_node_package_available ("sip.js");
}

/* Kamailio's address for the edge, over the fixture's transport. */
static char *
upstream_url (Fixture *f)
{
  if (g_str_equal (f->upstream_proto, "tls"))
    return g_strdup_printf ("sips:127.0.0.1:%u;transport=tls",
                            kamailio_peer_get_tls_port (f->kamailio));
  return g_strdup_printf ("sip:127.0.0.1:%u;transport=%s", kamailio_peer_get_port (f->kamailio),
                          f->upstream_proto);
}

/* The edge's --sip-tls-dir: agent.pem its own key and certificate (for its tls listener, where
 * Kamailio sends requests by the Path), cafile.pem the certificate it trusts for the upstream. */
static void
make_sip_tls_dir (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key = NULL, *certificate = NULL, *agent = NULL, *agent_path = NULL;
  g_autofree char *cafile_path = NULL;

  f->sip_tls_dir = g_dir_make_tmp ("sofia-ws-edge-tls-XXXXXX", &error);
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (f->certificate->key, &key, NULL, &error));
  g_assert_true (g_file_get_contents (f->certificate->certificate, &certificate, NULL, &error));
  agent = g_strconcat (key, certificate, NULL);
  agent_path = g_build_filename (f->sip_tls_dir, "agent.pem", NULL);
  cafile_path = g_build_filename (f->sip_tls_dir, "cafile.pem", NULL);
  g_assert_true (g_file_set_contents (agent_path, agent, -1, &error));
  g_assert_true (g_file_set_contents (cafile_path, certificate, -1, &error));
  f->edge_stderr = g_build_filename (f->sip_tls_dir, "edge.log", NULL);
}

static void
remove_sip_tls_dir (char *dir)
{
  g_autofree char *agent = g_build_filename (dir, "agent.pem", NULL);
  g_autofree char *cafile = g_build_filename (dir, "cafile.pem", NULL);
  g_autofree char *log = g_build_filename (dir, "edge.log", NULL);

  g_unlink (agent);
  g_unlink (cafile);
  g_unlink (log);
  g_rmdir (dir);
  g_free (dir);
}

/* The edge on @ws_port and @tcp_port (0: any), in front of Kamailio. */
static void
start_edge (Fixture *f,
            guint16  ws_port,
            guint16  tcp_port)
{
  g_autofree char *ws = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", ws_port);
  g_autofree char *tcp = g_strdup_printf ("sip:127.0.0.1:%u;transport=tcp", tcp_port);
  g_autofree char *upstream = upstream_url (f);
  /* (NTA binds tls for a sips: URL only.) */
  g_autofree char *network = g_strdup_printf ("%s:127.0.0.1:0;transport=%s",
                                              g_str_equal (f->upstream_proto, "tls") ? "sips"
                                                                                     : "sip",
                                              f->upstream_proto);
  g_autofree char *tls_dir = g_strdup_printf ("--sip-tls-dir=%s", f->sip_tls_dir);
  const char *args[] = { "--listen", ws, "--listen", tcp, "--upstream", upstream,
                         /* the listener of the upstream's transport, where tcp is not it */
                         "--listen", network, f->sip_tls_dir != NULL ? tls_dir : NULL, NULL };

  if (g_str_equal (f->upstream_proto, "tcp"))
    args[6] = NULL;

  f->edge = f->edge_stderr != NULL ? registrar_peer_start_edge_logging (args, f->edge_stderr)
                                    : registrar_peer_start_edge (args);
  f->ws_port = registrar_peer_get_port (f->edge, "ws");
  f->tcp_port = registrar_peer_get_port (f->edge, "tcp");
  g_assert_cmpuint (f->ws_port, >, 0);
  g_assert_cmpuint (f->tcp_port, >, 0);
}

/* @data: "sip" (Kamailio as a plain SIP registrar behind the edge, over tcp), "sip-udp",
 * "sip-tls" (the same over udp, over tls), "sip-tls-untrusted" (over tls, Kamailio serving a
 * certificate the edge does not trust), "sip-tls-wrong-name" (a trusted certificate for
 * another host) or "ws" (Kamailio serving WebSocket only, the edge's target). */
static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->node_dir = g_test_build_filename (G_TEST_DIST, "interop", "node", NULL);
  f->upstream_proto = g_str_has_prefix (data, "sip-tls") ? "tls" :
                      g_str_equal (data, "sip-udp") ? "udp" : "tcp";
  if (g_str_equal (f->upstream_proto, "tls"))
    {
      /* wrong-name: trusted (it is its own CA), but for another host than 127.0.0.1. */
      f->certificate = g_str_equal (data, "sip-tls-wrong-name")
        ? test_certificate_new_with_san ("wrong-name.invalid", "DNS:wrong-name.invalid")
        : test_certificate_new ("127.0.0.1");
      if (g_str_equal (data, "sip-tls-untrusted"))
        f->other = test_certificate_new ("127.0.0.1");
      make_sip_tls_dir (f);
      f->kamailio = f->other != NULL
        ? kamailio_peer_start_sip_tls_or_skip (f->other->certificate, f->other->key)
        : kamailio_peer_start_sip_tls_or_skip (f->certificate->certificate, f->certificate->key);
    }
  else
    f->kamailio = g_str_has_prefix (data, "sip") ? kamailio_peer_start_sip_or_skip ()
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
  g_clear_pointer (&f->sip_tls_dir, remove_sip_tls_dir);
  g_clear_pointer (&f->edge_stderr, g_free);
  g_clear_pointer (&f->certificate, test_certificate_free);
  g_clear_pointer (&f->other, test_certificate_free);
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
  g_autofree char *from = NULL;

  if (f->kamailio == NULL || !node_available (f))
    return;
  from = g_strdup_printf ("MESSAGE from %s ", f->upstream_proto);
  out = run_node (f, "sip-clients.mjs", lib);
  g_assert_nonnull (strstr (out, "\"ua\":\"alice\",\"step\":\"register\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"ua\":\"bob\",\"step\":\"register\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"message-received\""));
  /* As the edge saw it: the MESSAGE came back from Kamailio with bob's flow token. */
  line = registrar_peer_read_line (f->edge, from, NULL, NULL);
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

/* ---- hostile requests ------------------------------------------------------------------- */

/* The response @socket gets to @request (over TCP; "": the one it waits for), skipping
 * provisional ones. */
static char *
final_response (SipSocket *socket, const char *request, guint timeout_ms)
{
  g_autofree char *text = *request != '\0' ? sip_text_over_tcp (g_strdup (request)) : NULL;

  if (text != NULL)
    sip_socket_send (socket, text);
  for (;;)
    {
      char *response = sip_socket_read (socket, timeout_ms);

      if (response == NULL || sip_text_status (response) >= 200)
        return response;
      g_free (response);
    }
}

/* Max-Forwards: 0 from a client gets 483 from the edge; a request the edge would forward to
 * itself comes back with its own Via and branch and gets 482. */
static void
test_hops_and_loop (Fixture *f, gconstpointer data)
{
  g_autofree char *ws_url = NULL, *request = NULL, *reply = NULL, *uri = NULL;
  g_autofree char *response = NULL, *line = NULL;
  g_autoptr(GKeyFile) report = NULL;
  g_autoptr(SipSocket) peer = NULL;
  char *mf;

  if (f->kamailio == NULL || !test_ws_probe_available ())
    return;
  ws_url = g_strdup_printf ("ws://127.0.0.1:%u/", f->ws_port);
  request = sip_text_request ("MESSAGE", "sip:bob@127.0.0.1", "alice", "sip:bob@127.0.0.1",
                              "edge-hops-1", 1, NULL, "hello");
  mf = strstr (request, "Max-Forwards: 70");
  g_assert_nonnull (mf);
  memcpy (mf, "Max-Forwards:  0", 16);
  report = test_ws_probe (ws_url, "text", "--text", request, NULL);
  reply = g_key_file_get_string (report, "probe", "reply", NULL);
  g_assert_nonnull (reply);
  g_assert_cmpuint (sip_text_status (reply), ==, 483);

  peer = sip_socket_connect (f->tcp_port);
  uri = g_strdup_printf ("sip:loop@127.0.0.1:%u;transport=tcp", f->tcp_port);
  g_clear_pointer (&request, g_free);
  request = sip_text_request ("MESSAGE", uri, "peer", uri, "edge-loop-1", 1, NULL, "round");
  response = final_response (peer, request, 10000);
  g_assert_nonnull (response);
  g_assert_cmpuint (sip_text_status (response), ==, 482);
  line = registrar_peer_read_line (f->edge, "MESSAGE: 482", NULL, NULL);
}

/* A client registers (over a connection that then closes): a request Kamailio sends it by
 * its Path gets 430 from the edge at once (its port is never dialled), and Kamailio passes
 * the 430 on. */
static void
test_gone_client (Fixture *f, gconstpointer data)
{
  g_autofree char *ws_url = NULL, *request = NULL, *reply = NULL, *response = NULL;
  g_autofree char *line = NULL;
  g_autoptr(GKeyFile) report = NULL;
  g_autoptr(SipSocket) peer = NULL;

  if (f->kamailio == NULL || !test_ws_probe_available ())
    return;
  ws_url = g_strdup_printf ("ws://127.0.0.1:%u/", f->ws_port);
  request = sip_text_request ("REGISTER", "sip:127.0.0.1", "ghost", "sip:ghost@127.0.0.1",
                              "edge-ghost-1", 1,
                              "Contact: <sip:ghost@ghost.invalid;transport=ws>\r\n"
                              "Supported: path, outbound\r\nExpires: 600\r\n", NULL);
  report = test_ws_probe (ws_url, "text", "--text", request, NULL);
  reply = g_key_file_get_string (report, "probe", "reply", NULL);
  g_assert_nonnull (reply);
  g_assert_cmpuint (sip_text_status (reply), ==, 200);

  /* A MESSAGE to ghost, sent to Kamailio directly. */
  peer = sip_socket_connect (kamailio_peer_get_port (f->kamailio));
  g_clear_pointer (&request, g_free);
  request = sip_text_request ("MESSAGE", "sip:ghost@127.0.0.1", "peer", "sip:ghost@127.0.0.1",
                              "edge-ghost-2", 1, NULL, "anyone?");
  response = final_response (peer, request, 5000);
  g_assert_nonnull (response);
  g_assert_cmpuint (sip_text_status (response), ==, 430);
  line = registrar_peer_read_line (f->edge, "MESSAGE from tcp ", NULL, NULL);
  g_assert_nonnull (strstr (line, ": 430"));
}

/* Kamailio over tls serves a certificate the edge's CAs did not issue, or (wrong-name) one
 * they did issue for another host than the upstream's: Sofia closes the connection after the
 * handshake, and each client request gets 503 at once, not at the end of its transaction
 * (timer F, 32 s); Sofia's log on the edge's stderr names the cause ("self-signed
 * certificate", "Peer Subject Mismatch"); the edge keeps running (and exits 0 at teardown). */
static void
test_tls_untrusted (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ws_url = NULL, *log = NULL;

  if (f->kamailio == NULL || !test_ws_probe_available ())
    return;
  ws_url = g_strdup_printf ("ws://127.0.0.1:%u/", f->ws_port);
  for (guint i = 1; i <= 2; i++)
    {
      g_autofree char *call_id = g_strdup_printf ("edge-untrusted-%u", i);
      g_autofree char *request = NULL, *reply = NULL, *line = NULL;
      g_autoptr(GKeyFile) report = NULL;
      gint64 start = g_get_monotonic_time ();
      double took;

      request = sip_text_request ("REGISTER", "sip:127.0.0.1", "alice", "sip:alice@127.0.0.1",
                                  call_id, 1,
                                  "Contact: <sip:alice@alice.invalid;transport=ws>\r\n"
                                  "Supported: path, outbound\r\nExpires: 600\r\n", NULL);
      report = test_ws_probe (ws_url, "text", "--text", request, NULL);
      reply = g_key_file_get_string (report, "probe", "reply", NULL);
      took = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
      /* (The probe waits 8 s for a reply: well short of timer F.) */
      g_assert_nonnull (reply);
      g_test_message ("REGISTER %u got, after %.1f s: %s", i, took, reply);
      g_assert_cmpuint (sip_text_status (reply), ==, 503);
      line = registrar_peer_read_line (f->edge, "REGISTER relayed: ", NULL, NULL);
      g_assert_true (g_str_has_prefix (line, "REGISTER relayed: 503"));
    }
  /* The edge's stderr (Sofia's tport log) names the cause. */
  g_assert_true (g_file_get_contents (f->edge_stderr, &log, NULL, &error));
  g_assert_no_error (error);
  g_test_message ("the edge's stderr:\n%s", log);
  g_assert_nonnull (strstr (log, g_str_equal (data, "sip-tls-wrong-name")
                                   ? "Peer Subject Mismatch (127.0.0.1)"
                                   : "self-signed certificate"));
}

/* A tls upstream without --sip-tls-dir, or with a directory that lacks Sofia's files, is a
 * usage error (exit 2, saying what is missing), not an edge that fails every request. */
static void
test_tls_dir_required (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *empty = g_dir_make_tmp ("sofia-ws-edge-empty-XXXXXX", &error);
  g_autofree char *dir_option = g_strdup_printf ("--sip-tls-dir=%s", empty);
  const char *cases[][2] = { { NULL, "needs --sip-tls-dir" },
                             { dir_option, "needs agent.pem" } };

  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *argv[] = { g_getenv ("SOFIA_WS_EDGE"), "--listen", "sip:127.0.0.1:0;transport=ws",
                             "--upstream", "sips:127.0.0.1:5061", cases[i][0], NULL };
      g_autoptr(GSubprocess) edge = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDERR_PIPE,
                                                       &error);
      g_autofree char *err = NULL;

      g_assert_no_error (error);
      g_subprocess_communicate_utf8 (edge, NULL, NULL, NULL, &err, &error);
      g_assert_no_error (error);
      g_test_message ("%s", err);
      g_assert_cmpint (g_subprocess_get_exit_status (edge), ==, 2);
      g_assert_nonnull (strstr (err, cases[i][1]));
    }
  g_rmdir (empty);
}

/* An INVITE of more than 1300 bytes (a big SDP offer) to a udp upstream goes over udp, as the
 * upstream's URL says (NTA would switch to tcp, RFC 3261 18.1.1, to a server that may not
 * listen there): Kamailio's own line for it says over which transport it came. */
static void
test_udp_large (Fixture *f, gconstpointer data)
{
  g_autofree char *ws_url = NULL, *request = NULL, *reply = NULL;
  g_autoptr(GKeyFile) report = NULL;
  g_autoptr(GString) sdp = g_string_new ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
                                         "c=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                                         "m=audio 9 RTP/AVP 0 8 101\r\n");
  gint64 until;

  if (f->kamailio == NULL || !test_ws_probe_available ())
    return;
  for (guint i = 0; sdp->len < 1600; i++)
    g_string_append_printf (sdp, "a=candidate:%u 1 udp 2122260223 127.0.0.1 %u typ host "
                            "generation 0 network-id 1\r\n", i, 40000 + i);
  ws_url = g_strdup_printf ("ws://127.0.0.1:%u/", f->ws_port);
  request = sip_text_request ("INVITE", "sip:nobody@127.0.0.1", "alice", "sip:nobody@127.0.0.1",
                              "edge-udp-large-1", 1,
                              "Contact: <sip:alice@alice.invalid;transport=ws>\r\n"
                              "Content-Type: application/sdp\r\n", sdp->str);
  g_assert_cmpuint (strlen (request), >, 1300);
  report = test_ws_probe (ws_url, "text", "--text", request, NULL);
  reply = g_key_file_get_string (report, "probe", "reply", NULL);
  g_assert_nonnull (reply);

  until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  for (;;)
    {
      g_autofree char *log = kamailio_peer_get_log (f->kamailio);
      const char *line = strstr (log, "kamailio-peer: INVITE sip:nobody@127.0.0.1 over ");

      if (line != NULL)
        {
          g_autofree char *text = g_strndup (line, strcspn (line, "\n"));

          g_test_message ("%s", text);
          g_assert_nonnull (strstr (text, " over udp, "));
          break;
        }
      g_assert_cmpint (g_get_monotonic_time (), <, until);
      g_usleep (100 * 1000);
    }
}

/* ---- outbound: SIP peers over TCP to Kamailio's ws listener ------------------------------ */

/* Every value of header @name, in order, as one comma-separated list (NULL if none). */
static char *
header_list (const char *message, const char *name)
{
  g_auto(GStrv) lines = g_strsplit (message, "\r\n", -1);
  GString *list = NULL;
  gsize n = strlen (name);

  for (guint i = 1; lines[i] != NULL && lines[i][0] != '\0'; i++)
    if (g_ascii_strncasecmp (lines[i], name, n) == 0 && lines[i][n] == ':')
      {
        if (list == NULL)
          list = g_string_new (NULL);
        else
          g_string_append (list, ", ");
        g_string_append (list, g_strstrip (lines[i] + n + 1));
      }
  return list != NULL ? g_string_free (list, FALSE) : NULL;
}

/* The entries <...> of a Record-Route list, reversed when @reverse (a caller's route set). */
static char *
route_set (const char *record_route, gboolean reverse)
{
  g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func (g_free);
  GString *set = g_string_new (NULL);

  for (const char *p = record_route; p != NULL && (p = strchr (p, '<')) != NULL; p++)
    {
      const char *end = strchr (p, '>');

      g_assert_nonnull (end);
      g_ptr_array_add (entries, g_strndup (p, end - p + 1));
      p = end;
    }
  for (guint i = 0; i < entries->len; i++)
    {
      if (i > 0)
        g_string_append (set, ", ");
      g_string_append (set, entries->pdata[reverse ? entries->len - 1 - i : i]);
    }
  return g_string_free (set, FALSE);
}

/* The URI inside the <> of a Contact. */
static char *
contact_uri (const char *contact)
{
  const char *start = strchr (contact, '<');

  g_assert_nonnull (start);
  return g_strndup (start + 1, strcspn (start + 1, ">"));
}

/* The value of ";tag=" in a header. */
static char *
tag_of (const char *header)
{
  const char *tag = header != NULL ? strstr (header, ";tag=") : NULL;

  g_assert_nonnull (tag);
  return g_strndup (tag + 5, strcspn (tag + 5, ";> "));
}

/* A request received by @socket, provisional responses skipped. */
static char *
next_request (SipSocket *socket)
{
  for (;;)
    {
      char *message = sip_socket_read (socket, 10000);

      g_assert_nonnull (message);
      if (sip_text_status (message) == 0)
        return message;
      g_free (message);
    }
}

/* As the edge saw it: @method from Kamailio (the line after those from the gateways' sockets)
 * reached it over the edge's own ws connection, with the edge's Path or Record-Route on top
 * ("by our Route"), not over its tcp listener. */
static void
assert_from_server (Fixture *f, const char *method, SipSocket *fs1, SipSocket *fs2)
{
  g_autofree char *prefix = g_strdup_printf ("%s from ", method);
  g_autofree char *mine1 = g_strdup_printf ("%s from tcp %s", method, sip_socket_local (fs1));
  g_autofree char *mine2 = g_strdup_printf ("%s from tcp %s", method, sip_socket_local (fs2));

  for (;;)
    {
      g_autofree char *line = registrar_peer_read_line (f->edge, prefix, NULL, NULL);
      g_autofree char *ws = g_strdup_printf ("%s from ws ", method);

      if (g_str_has_prefix (line, mine1) || g_str_has_prefix (line, mine2))
        continue;
      g_assert_cmpint (g_ascii_strncasecmp (line, ws, strlen (ws)), ==, 0);
      g_assert_nonnull (strstr (line, " by our Route: "));
      return;
    }
}

/* @user registers at Kamailio's ws listener over @socket, through the edge: the Request-URI
 * names the ws target, the Contact the socket's own address (which the edge reaches over the
 * same connection). */
static void
register_through_edge (Fixture *f, SipSocket *socket, const char *user)
{
  g_autofree char *target = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws",
                                             kamailio_peer_get_port (f->kamailio));
  g_autofree char *aor = g_strdup_printf ("sip:%s@127.0.0.1", user);
  g_autofree char *call_id = g_strdup_printf ("edge-out-reg-%s-%08x", user, g_random_int ());
  g_autofree char *contact = g_strdup_printf ("Contact: <sip:%s@%s;transport=tcp>\r\n"
                                              "Expires: 600\r\n", user,
                                              sip_socket_local (socket));
  g_autofree char *request = sip_text_request ("REGISTER", target, user, aor, call_id, 1,
                                               contact, NULL);
  g_autofree char *response = final_response (socket, request, 10000);

  g_assert_nonnull (response);
  g_test_message ("%s registered: %s", user, response);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
}

/* fs1 and fs2 (standing in for two FreeSWITCH gateways: TCP to the edge, the ws target in the
 * Request-URI) register at Kamailio over the edge's ws connection (the edge adds a Path naming
 * it); fs2's MESSAGE reaches fs1, Kamailio sending it back over that connection by fs1's Path;
 * fs2 calls fs1: INVITE, 200, ACK, fs1 re-INVITEs and hangs up, Kamailio sending each to fs2 by
 * the edge's double Record-Route (its ws side, then its tcp side). Every request Kamailio
 * sends to a gateway reaches the edge over its own ws connection, never its tcp listener. */
static void
run_outbound (Fixture *f, char **stale)
{
  g_autoptr(SipSocket) fs1 = sip_socket_connect (f->tcp_port);
  g_autoptr(SipSocket) fs2 = sip_socket_connect (f->tcp_port);
  g_autofree char *uri = g_strdup_printf ("sip:fs1@127.0.0.1:%u;transport=ws",
                                          kamailio_peer_get_port (f->kamailio));
  g_autofree char *message = NULL, *response = NULL, *got = NULL, *answer = NULL;
  g_autofree char *invite = NULL, *ok = NULL, *rr = NULL, *caller_routes = NULL;
  g_autofree char *callee_routes = NULL, *to = NULL, *from = NULL, *from_tag = NULL;
  g_autofree char *to_tag = NULL, *callee_contact = NULL, *caller_contact = NULL;
  g_autofree char *ack = NULL, *bye = NULL, *bye_ok = NULL, *header = NULL;
  g_autofree char *reinvite = NULL;
  g_autofree char *contact = g_strdup_printf ("Contact: <sip:fs2@%s;transport=tcp>\r\n"
                                              "Content-Type: application/sdp\r\n",
                                              sip_socket_local (fs2));
  const char *sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    "t=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
  /* Fresh for each run: Kamailio's branches are hashes of the request, and the edge keeps an
   * answered INVITE's transactions a while (they would take a new INVITE for a retransmission). */
  g_autofree char *message_id = g_strdup_printf ("edge-out-msg-%08x", g_random_int ());
  g_autofree char *call_id = g_strdup_printf ("edge-out-call-%08x", g_random_int ());
  GString *text;

  register_through_edge (f, fs1, "fs1");
  register_through_edge (f, fs2, "fs2");

  /* A MESSAGE, there and back over the edge's ws connection. */
  message = sip_text_request ("MESSAGE", uri, "fs2", "sip:fs1@127.0.0.1", message_id, 1,
                              "Content-Type: text/plain\r\n", "hello fs1");
  message = sip_text_over_tcp (message);
  sip_socket_send (fs2, message);
  got = next_request (fs1);
  g_assert_true (g_str_has_prefix (got, "MESSAGE sip:fs1@"));
  g_assert_nonnull (strstr (got, "\r\n\r\nhello fs1"));
  answer = sip_text_response (got, 200, "OK");
  sip_socket_send (fs1, answer);
  response = sip_socket_read (fs2, 10000);
  g_assert_nonnull (response);
  g_assert_cmpuint (sip_text_status (response), ==, 200);
  /* Kamailio sent it by fs1's Path: the edge's ws connection. */
  assert_from_server (f, "MESSAGE", fs1, fs2);

  /* A call from fs2 to fs1. */
  invite = sip_text_over_tcp (sip_text_request ("INVITE", uri, "fs2", "sip:fs1@127.0.0.1",
                                                call_id, 1, contact, sdp));
  sip_socket_send (fs2, invite);
  g_clear_pointer (&got, g_free);
  got = next_request (fs1);
  g_assert_true (g_str_has_prefix (got, "INVITE sip:fs1@"));
  rr = header_list (got, "Record-Route");
  g_assert_nonnull (rr);
  g_test_message ("fs1 got the INVITE with Record-Route: %s", rr);
  assert_from_server (f, "INVITE", fs1, fs2);
  g_clear_pointer (&header, g_free);
  header = sip_text_header (got, "Contact");
  caller_contact = contact_uri (header);

  text = g_string_new (NULL);
  g_clear_pointer (&answer, g_free);
  answer = sip_text_response (got, 200, "OK");
  g_string_append_len (text, answer, strstr (answer, "Content-Length: 0") - answer);
  g_string_append_printf (text, "Record-Route: %s\r\nContact: <sip:fs1@%s;transport=tcp>\r\n"
                          "Content-Type: application/sdp\r\nContent-Length: %zu\r\n\r\n%s", rr,
                          sip_socket_local (fs1), strlen (sdp), sdp);
  g_clear_pointer (&answer, g_free);
  answer = g_string_free (text, FALSE);
  to = sip_text_header (answer, "To");
  to_tag = tag_of (to);
  sip_socket_send (fs1, answer);
  ok = final_response (fs2, "", 10000);
  g_assert_nonnull (ok);
  g_assert_cmpuint (sip_text_status (ok), ==, 200);
  g_clear_pointer (&header, g_free);
  header = header_list (ok, "Record-Route");
  caller_routes = route_set (header, TRUE);
  callee_routes = route_set (rr, FALSE);
  g_clear_pointer (&header, g_free);
  header = sip_text_header (ok, "Contact");
  callee_contact = contact_uri (header);
  from = sip_text_header (ok, "From");
  from_tag = tag_of (from);

  /* fs2's ACK, by its route set. */
  ack = g_strdup_printf ("ACK %s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK%08x\r\n"
                         "Max-Forwards: 70\r\nRoute: %s\r\nFrom: <sip:fs2@127.0.0.1>;tag=%s\r\n"
                         "To: <sip:fs1@127.0.0.1>;tag=%s\r\nCall-ID: %s\r\n"
                         "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n", callee_contact,
                         sip_socket_local (fs2), g_random_int (), caller_routes, from_tag,
                         to_tag, call_id);
  sip_socket_send (fs2, ack);
  g_clear_pointer (&got, g_free);
  got = next_request (fs1);
  g_assert_true (g_str_has_prefix (got, "ACK "));

  /* fs1 (the callee) sends a re-INVITE by its route set: Kamailio sends it on to fs2 by the
   * edge's Record-Route on its side, over the edge's ws connection. */
  reinvite = g_strdup_printf ("INVITE %s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK%08x\r\n"
                              "Max-Forwards: 70\r\nRoute: %s\r\n"
                              "From: <sip:fs1@127.0.0.1>;tag=%s\r\n"
                              "To: <sip:fs2@127.0.0.1>;tag=%s\r\nCall-ID: %s\r\n"
                              "CSeq: 2 INVITE\r\nContact: <sip:fs1@%s;transport=tcp>\r\n"
                              "Content-Type: application/sdp\r\nContent-Length: %zu\r\n\r\n%s",
                              caller_contact, sip_socket_local (fs1), g_random_int (),
                              callee_routes, to_tag, from_tag, call_id, sip_socket_local (fs1),
                              strlen (sdp), sdp);
  sip_socket_send (fs1, reinvite);
  g_clear_pointer (&got, g_free);
  got = next_request (fs2);
  g_assert_true (g_str_has_prefix (got, "INVITE "));
  assert_from_server (f, "INVITE", fs1, fs2);
  g_clear_pointer (&answer, g_free);
  answer = sip_text_response (got, 200, "OK");
  sip_socket_send (fs2, answer);
  g_clear_pointer (&ok, g_free);
  ok = final_response (fs1, "", 10000);
  g_assert_nonnull (ok);
  g_assert_cmpuint (sip_text_status (ok), ==, 200);
  g_clear_pointer (&ack, g_free);
  ack = g_strdup_printf ("ACK %s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK%08x\r\n"
                         "Max-Forwards: 70\r\nRoute: %s\r\nFrom: <sip:fs1@127.0.0.1>;tag=%s\r\n"
                         "To: <sip:fs2@127.0.0.1>;tag=%s\r\nCall-ID: %s\r\n"
                         "CSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n", caller_contact,
                         sip_socket_local (fs1), g_random_int (), callee_routes, to_tag,
                         from_tag, call_id);
  sip_socket_send (fs1, ack);
  g_clear_pointer (&got, g_free);
  got = next_request (fs2);
  g_assert_true (g_str_has_prefix (got, "ACK "));

  /* fs1 hangs up. */
  bye = g_strdup_printf ("BYE %s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK%08x\r\n"
                         "Max-Forwards: 70\r\nRoute: %s\r\nFrom: <sip:fs1@127.0.0.1>;tag=%s\r\n"
                         "To: <sip:fs2@127.0.0.1>;tag=%s\r\nCall-ID: %s\r\n"
                         "CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n", caller_contact,
                         sip_socket_local (fs1), g_random_int (), callee_routes, to_tag,
                         from_tag, call_id);
  sip_socket_send (fs1, bye);
  g_clear_pointer (&got, g_free);
  got = next_request (fs2);
  g_assert_true (g_str_has_prefix (got, "BYE "));
  g_clear_pointer (&answer, g_free);
  answer = sip_text_response (got, 200, "OK");
  sip_socket_send (fs2, answer);
  bye_ok = sip_socket_read (fs1, 10000);
  g_assert_nonnull (bye_ok);
  g_assert_cmpuint (sip_text_status (bye_ok), ==, 200);
  assert_from_server (f, "BYE", fs1, fs2);

  /* For the caller: a BYE by its route set, whose first entries are the edge's (its tcp side,
   * then its ws side, with the token of its connection to Kamailio). */
  if (stale != NULL)
    *stale = g_strdup_printf ("BYE %s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK%08x\r\n"
                              "Max-Forwards: 70\r\nRoute: %s\r\n"
                              "From: <sip:fs2@127.0.0.1>;tag=%s\r\n"
                              "To: <sip:fs1@127.0.0.1>;tag=%s\r\nCall-ID: %s\r\n"
                              "CSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n", callee_contact,
                              sip_socket_local (fs2), g_random_int (), caller_routes, from_tag,
                              to_tag, call_id);
}

/* @request, by a route set naming the edge's connection to Kamailio, once that connection
 * has gone (Kamailio or the edge restarted): 430 from the edge at once, no new connection. */
static void
assert_stale_flow (Fixture *f, const char *request)
{
  g_autoptr(SipSocket) peer = sip_socket_connect (f->tcp_port);
  g_autofree char *response = NULL, *line = NULL;

  g_assert_true (g_str_has_prefix (request, "BYE "));
  response = final_response (peer, request, 5000);
  g_assert_nonnull (response);
  g_assert_cmpuint (sip_text_status (response), ==, 430);
  line = registrar_peer_read_line (f->edge, "BYE from tcp ", NULL, NULL);
  g_assert_nonnull (strstr (line, ": 430, "));
}

static void
test_outbound (Fixture *f, gconstpointer data)
{
  if (f->kamailio != NULL)
    run_outbound (f, NULL);
}

/* ---- restarts and the configuration file ------------------------------------------------- */

/* Kamailio restarts under the edge (its registrations are gone, the edge's connection to it
 * breaks): the clients register again through the edge, and messages and calls work again. */
static void
test_restart_kamailio (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  if (f->kamailio == NULL || !node_available (f))
    return;
  run_clients (f, "sipjs");
  g_assert_true (kamailio_peer_restart (f->kamailio, &error));
  g_assert_no_error (error);
  run_clients (f, "jssip");
  out = run_node (f, "sip-call.mjs", "sipjs");
  g_assert_nonnull (strstr (out, "\"step\":\"call2-bye\",\"status\":200"));
}

/* The edge restarts (on the same ports) under Kamailio: the old flow tokens are unknown to the
 * new edge (430), and clients registering again through it are reached again. */
static void
test_restart_edge (Fixture *f, gconstpointer data)
{
  guint16 ws_port = f->ws_port, tcp_port = f->tcp_port;
  g_autofree char *out = NULL;

  if (f->kamailio == NULL || !node_available (f))
    return;
  run_clients (f, "sipjs");
  g_clear_pointer (&f->edge, registrar_peer_stop);
  start_edge (f, ws_port, tcp_port);
  g_assert_cmpuint (f->ws_port, ==, ws_port);
  g_assert_cmpuint (f->tcp_port, ==, tcp_port);
  run_clients (f, "sipjs");
  out = run_node (f, "sip-call.mjs", "jssip");
  g_assert_nonnull (strstr (out, "\"step\":\"call1-bye\",\"status\":200"));
}

/* The outbound direction across a Kamailio restart: the edge's ws connection to it breaks,
 * and the gateways' next REGISTER gets a new one. */
static void
test_restart_kamailio_outbound (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *stale = NULL;

  if (f->kamailio == NULL)
    return;
  run_outbound (f, &stale);
  g_assert_true (kamailio_peer_restart (f->kamailio, &error));
  g_assert_no_error (error);
  /* The connection's token names a connection that has gone: 430. */
  assert_stale_flow (f, stale);
  run_outbound (f, NULL);
}

/* The edge restarts (same ports) under registered gateways: its old tokens are unknown to the
 * new edge (430), and the gateways registering again are reached again over its new
 * connection. */
static void
test_restart_edge_outbound (Fixture *f, gconstpointer data)
{
  guint16 ws_port = f->ws_port, tcp_port = f->tcp_port;
  g_autofree char *stale = NULL;

  if (f->kamailio == NULL)
    return;
  run_outbound (f, &stale);
  g_clear_pointer (&f->edge, registrar_peer_stop);
  start_edge (f, ws_port, tcp_port);
  g_assert_cmpuint (f->tcp_port, ==, tcp_port);
  assert_stale_flow (f, stale);
  run_outbound (f, NULL);
}

/* Every option from the [edge] group of a --config file, the listeners included. */
static void
test_config_file (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL, *file = NULL, *text = NULL, *bad = NULL;
  const char *args[] = { "--config", NULL, NULL };

  if (f->kamailio == NULL || !node_available (f))
    return;
  g_clear_pointer (&f->edge, registrar_peer_stop);
  dir = g_dir_make_tmp ("sofia-ws-edge-XXXXXX", &error);
  g_assert_no_error (error);
  file = g_build_filename (dir, "edge.conf", NULL);
  text = g_strdup_printf ("[edge]\n"
                          "# the listeners, separated by commas\n"
                          "listen=sip:127.0.0.1:0;transport=ws,sip:127.0.0.1:0;transport=tcp\n"
                          "upstream=sip:127.0.0.1:%u;transport=tcp\n"
                          "crlf-keepalive=20\n"
                          "max-targets=8\n"
                          "target-idle=60\n"
                          "max-connections=100\n",
                          kamailio_peer_get_port (f->kamailio));
  g_assert_true (g_file_set_contents (file, text, -1, &error));
  args[1] = file;
  f->edge = registrar_peer_start_edge_listening (args, 2);
  f->ws_port = registrar_peer_get_port (f->edge, "ws");
  f->tcp_port = registrar_peer_get_port (f->edge, "tcp");
  g_assert_cmpuint (f->ws_port, >, 0);
  g_assert_cmpuint (f->tcp_port, >, 0);
  run_clients (f, "sipjs");

  /* A misspelt key is an error, with the file's name: the edge does not start. */
  bad = g_build_filename (dir, "bad.conf", NULL);
  g_assert_true (g_file_set_contents (bad, "[edge]\nupstraem=sip:127.0.0.1\n", -1, &error));
  {
    const char *argv[] = { g_getenv ("SOFIA_WS_EDGE"), "--config", bad, NULL };
    g_autoptr(GSubprocess) edge = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDERR_PIPE,
                                                     &error);
    g_autofree char *err = NULL;

    g_assert_no_error (error);
    g_subprocess_communicate_utf8 (edge, NULL, NULL, NULL, &err, &error);
    g_assert_no_error (error);
    g_test_message ("%s", err);
    g_assert_cmpint (g_subprocess_get_exit_status (edge), ==, 2);
    g_assert_nonnull (strstr (err, "unknown key \"upstraem\""));
  }
  g_unlink (bad);
  g_unlink (file);
  g_rmdir (dir);
}

/* ---- hostile: a bound on the edge's ws targets ------------------------------------------- */

/* The file descriptors @pid has open. */
static guint
count_fds (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/fd", (int) pid);
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

/* A TCP port on 127.0.0.1 that accepts connections (the kernel completes them) and never
 * answers a WebSocket handshake: a target that holds a connection until the edge gives up. */
static GSocket *
silent_listener (guint16 *port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  GSocket *socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                  G_SOCKET_PROTOCOL_TCP, &error);

  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, any, FALSE, &error));
  g_assert_no_error (error);
  g_assert_true (g_socket_listen (socket, &error));
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return socket;
}

/* A MESSAGE from the network to sip:x@127.0.0.1:@port;transport=ws. */
static char *
message_to_target (guint16 port, guint n)
{
  g_autofree char *uri = g_strdup_printf ("sip:x@127.0.0.1:%u;transport=ws", port);
  g_autofree char *call_id = g_strdup_printf ("edge-targets-%u-%08x", n, g_random_int ());

  return sip_text_request ("MESSAGE", uri, "peer", "sip:x@127.0.0.1", call_id, 1,
                           "Content-Type: text/plain\r\n", "who is there?");
}

/* The final response to @request (taken), sent over @socket. */
static char *
ask (SipSocket *socket, char *request, guint timeout_ms)
{
  g_autofree char *text = request;

  sip_socket_send (socket, text);
  return final_response (socket, "", timeout_ms);
}

/* A network-side peer names more ws targets than --max-targets: past the cap the edge answers
 * 503 at once (and says so), without a connection; targets that never complete the handshake
 * hold their slot only until the connect timeout, refused ones not at all, an idle
 * connection is closed after --target-idle; the edge goes on serving, and its file descriptors
 * come back to where they were (no tport, socket or lws connection left behind). */
static void
test_target_cap (Fixture *f, gconstpointer data)
{
  g_autofree char *upstream = NULL, *response = NULL, *line = NULL, *prefix = NULL;
  g_autoptr(SipSocket) peer = NULL, slow = NULL;
  guint16 kamailio_port, silent_port[4];
  GSocket *silent[4];
  guint fds_before, fds_peak, fds_after = 0;
  GPid pid;

  if (f->kamailio == NULL)
    return;
  kamailio_port = kamailio_peer_get_port (f->kamailio);
  g_clear_pointer (&f->edge, registrar_peer_stop);
  upstream = g_strdup_printf ("sip:127.0.0.1:%u;transport=tcp", kamailio_port);
  {
    const char *args[] = { "--listen", "sip:127.0.0.1:0;transport=tcp", "--upstream", upstream,
                           "--max-targets", "2", "--target-idle", "8", NULL };

    f->edge = registrar_peer_start_edge (args);
  }
  f->tcp_port = registrar_peer_get_port (f->edge, "tcp");
  pid = registrar_peer_get_pid (f->edge);
  for (guint i = 0; i < G_N_ELEMENTS (silent); i++)
    silent[i] = silent_listener (&silent_port[i]);
  peer = sip_socket_connect (f->tcp_port);
  slow = sip_socket_connect (f->tcp_port);

  /* One real target: Kamailio answers (404, nobody registered), its connection stays. */
  response = ask (peer, sip_text_over_tcp (message_to_target (kamailio_port, 0)), 10000);
  g_assert_nonnull (response);
  g_assert_cmpuint (sip_text_status (response), ==, 404);
  fds_before = count_fds (pid);

  /* A silent one takes the second slot... */
  {
    g_autofree char *text = sip_text_over_tcp (message_to_target (silent_port[0], 1));

    sip_socket_send (slow, text);
    /* (The edge has taken it, before the others come on another connection.) */
    prefix = g_strdup_printf ("MESSAGE from tcp %s: to 127.0.0.1:%u", sip_socket_local (slow),
                              silent_port[0]);
    line = registrar_peer_read_line (f->edge, prefix, NULL, NULL);
  }
  /* ...the others get 503 at once, and the edge says why. */
  for (guint i = 1; i < G_N_ELEMENTS (silent); i++)
    {
      g_clear_pointer (&response, g_free);
      response = ask (peer, sip_text_over_tcp (message_to_target (silent_port[i], i + 1)),
                      10000);
      g_assert_nonnull (response);
      g_assert_cmpuint (sip_text_status (response), ==, 503);
      g_assert_nonnull (strstr (response, "too many ws targets"));
      g_clear_pointer (&prefix, g_free);
      g_clear_pointer (&line, g_free);
      prefix = g_strdup_printf ("ws 127.0.0.1:%u: 503, 2 ws/wss targets open", silent_port[i]);
      line = registrar_peer_read_line (f->edge, prefix, NULL, NULL);
    }
  fds_peak = count_fds (pid);
  g_test_message ("edge fds: %u with Kamailio's connection, %u with a silent one too",
                  fds_before, fds_peak);
  g_assert_cmpuint (fds_peak, <=, fds_before + 1);

  /* The silent target's handshake times out: its request fails (503), its slot is free. */
  g_clear_pointer (&response, g_free);
  response = final_response (slow, "", 15000);
  g_assert_nonnull (response);
  g_assert_cmpuint (sip_text_status (response), ==, 503);
  /* Kamailio's connection, idle, is closed. */
  g_clear_pointer (&prefix, g_free);
  g_clear_pointer (&line, g_free);
  prefix = g_strdup_printf ("ws 127.0.0.1:%u: idle for 8 s, closed", kamailio_port);
  line = registrar_peer_read_line (f->edge, prefix, NULL, NULL);

  /* Refused targets (ports nobody listens on any more) take no slot for long, and leave
   * nothing behind. */
  for (guint i = 1; i < G_N_ELEMENTS (silent); i++)
    g_clear_object (&silent[i]);
  for (guint round = 0; round < 3; round++)
    for (guint i = 1; i < G_N_ELEMENTS (silent); i++)
      {
        g_clear_pointer (&response, g_free);
        response = ask (peer, sip_text_over_tcp (message_to_target (silent_port[i], 10 + i)),
                        10000);
        g_assert_nonnull (response);
        g_assert_cmpuint (sip_text_status (response), ==, 503);
        g_assert_null (strstr (response, "too many ws targets"));
      }

  /* The edge still serves: Kamailio again, over a new connection. */
  g_clear_pointer (&response, g_free);
  response = ask (peer, sip_text_over_tcp (message_to_target (kamailio_port, 20)), 10000);
  g_assert_nonnull (response);
  g_assert_cmpuint (sip_text_status (response), ==, 404);
  /* Where it was with Kamailio's connection open: nothing of the failed ones is left. */
  for (guint i = 0; i < 50 && (fds_after = count_fds (pid)) > fds_before; i++)
    g_usleep (100000);
  g_test_message ("edge fds at the end: %u", fds_after);
  g_assert_cmpuint (fds_after, <=, fds_before);
  g_clear_object (&silent[0]);
}

/* ---- the ACK of a non-2xx answer, to a browser ------------------------------------------ */

/* A browser in this process: a WebSocket client of the edge's listener (libsofia-ws's own),
 * its messages kept in order of arrival. */
typedef struct {
  SofiaWsWebSocket *ws;
  GQueue received;                /* char * */
  gboolean done;
} Browser;

static void
on_browser_message (SofiaWsTransport *transport, const char *message, Browser *browser)
{
  g_queue_push_tail (&browser->received, g_strdup (message));
}

static void
on_browser_done (GObject *source, GAsyncResult *result, gpointer data)
{
  Browser *browser = data;
  g_autoptr(GError) error = NULL;

  if (g_task_get_source_tag (G_TASK (result)) == (gpointer) sofia_ws_transport_connect_async)
    g_assert_true (sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result,
                                                      &error));
  else
    g_assert_true (sofia_ws_transport_send_finish (SOFIA_WS_TRANSPORT (source), result,
                                                   &error));
  g_assert_no_error (error);
  browser->done = TRUE;
}

static void
browser_wait_done (Browser *browser)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (!browser->done)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  browser->done = FALSE;
}

static void
browser_send (Browser *browser, const char *text)
{
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (browser->ws), text, NULL, NULL,
                                 on_browser_done, browser);
  browser_wait_done (browser);
}

/* The next message starting with @start, the ones before it dropped; NULL after @seconds. */
static char *
browser_wait (Browser *browser, const char *start, guint seconds)
{
  gint64 deadline = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;

  for (;;)
    {
      char *message;

      while ((message = g_queue_pop_head (&browser->received)) != NULL)
        {
          if (g_str_has_prefix (message, start))
            return message;
          g_test_message ("browser: skipped %.40s", message);
          g_free (message);
        }
      if (g_get_monotonic_time () >= deadline)
        return NULL;
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

/* A call to a browser behind the edge, cancelled while it rings: the browser answers the
 * CANCEL (200) and the INVITE (487), and must get the edge's hop-by-hop ACK of that 487 over
 * its own connection (RFC 3261 17.1.1.3), with the INVITE's branch. NTA's own would look the
 * ws connection up by name and find none. */
static void
test_cancel_ack (Fixture *f, gconstpointer data)
{
  g_autofree char *url = NULL, *reg = NULL, *reply = NULL, *invite = NULL, *got = NULL;
  g_autofree char *ringing = NULL, *cancel = NULL, *terminated = NULL, *ack = NULL;
  g_autofree char *via = NULL, *from = NULL, *contact = NULL, *response = NULL;
  g_autofree char *browser_via = NULL, *ack_via = NULL, *ack_to = NULL, *to = NULL;
  g_autofree char *caller_ack = NULL;
  g_autofree char *call_id = g_strdup_printf ("edge-cancel-%08x", g_random_int ());
  g_autoptr(SipSocket) caller = NULL;
  Browser browser = { 0 };
  char *message;

  if (f->kamailio == NULL)
    return;
  url = g_strdup_printf ("ws://127.0.0.1:%u/", f->ws_port);
  browser.ws = sofia_ws_websocket_new (url);
  g_queue_init (&browser.received);
  g_signal_connect (browser.ws, "message", G_CALLBACK (on_browser_message), &browser);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (browser.ws), NULL, NULL,
                                    on_browser_done, &browser);
  browser_wait_done (&browser);

  reg = sip_text_request ("REGISTER", "sip:127.0.0.1", "carol", "sip:carol@127.0.0.1",
                          "edge-cancel-reg", 1,
                          "Contact: <sip:carol@carol.invalid;transport=ws>\r\n"
                          "Supported: path, outbound\r\nExpires: 600\r\n", NULL);
  browser_send (&browser, reg);
  reply = browser_wait (&browser, "SIP/2.0 ", 10);
  g_assert_nonnull (reply);
  g_assert_cmpuint (sip_text_status (reply), ==, 200);

  /* dave calls carol at Kamailio, which sends the INVITE to the edge by carol's Path. */
  caller = sip_socket_connect (kamailio_peer_get_port (f->kamailio));
  contact = g_strdup_printf ("Contact: <sip:dave@%s;transport=tcp>\r\n",
                             sip_socket_local (caller));
  invite = sip_text_over_tcp (sip_text_request ("INVITE", "sip:carol@127.0.0.1", "dave",
                                                "sip:carol@127.0.0.1", call_id, 1, contact,
                                                NULL));
  sip_socket_send (caller, invite);
  got = browser_wait (&browser, "INVITE ", 10);
  g_assert_nonnull (got);
  ringing = sip_text_response (got, 180, "Ringing");
  browser_send (&browser, ringing);
  do
    {
      g_clear_pointer (&response, g_free);
      response = sip_socket_read (caller, 10000);
      g_assert_nonnull (response);
    }
  while (sip_text_status (response) == 100);
  g_assert_cmpuint (sip_text_status (response), ==, 180);

  /* dave cancels. */
  via = sip_text_header (invite, "Via");
  from = sip_text_header (invite, "From");
  cancel = g_strdup_printf ("CANCEL sip:carol@127.0.0.1 SIP/2.0\r\nVia: %s\r\n"
                            "Max-Forwards: 70\r\nFrom: %s\r\nTo: <sip:carol@127.0.0.1>\r\n"
                            "Call-ID: %s\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
                            via, from, call_id);
  sip_socket_send (caller, cancel);
  message = browser_wait (&browser, "CANCEL ", 10);
  g_assert_nonnull (message);
  g_clear_pointer (&reply, g_free);
  reply = sip_text_response (message, 200, "OK");
  g_free (message);
  browser_send (&browser, reply);
  /* The 487, in the early dialog of the 180 (same To tag). */
  terminated = g_strconcat ("SIP/2.0 487 Request Terminated",
                            ringing + strlen ("SIP/2.0 180 Ringing"), NULL);
  browser_send (&browser, terminated);

  /* The edge's ACK, over carol's connection. */
  ack = browser_wait (&browser, "ACK ", 10);
  g_assert_nonnull (ack);
  g_test_message ("browser got: %s", ack);
  g_assert_nonnull (strstr (ack, "\r\nCSeq: 1 ACK\r\n"));
  browser_via = sip_text_header (got, "Via");
  ack_via = sip_text_header (ack, "Via");
  g_assert_cmpstr (strstr (ack_via, ";branch="), ==, strstr (browser_via, ";branch="));
  ack_to = sip_text_header (ack, "To");
  to = sip_text_header (ringing, "To");
  g_assert_cmpstr (ack_to, ==, to);

  /* dave gets the 487 (and ACKs it to Kamailio). */
  do
    {
      g_clear_pointer (&response, g_free);
      response = sip_socket_read (caller, 10000);
      g_assert_nonnull (response);
    }
  while (sip_text_status (response) != 487);
  g_clear_pointer (&to, g_free);
  to = sip_text_header (response, "To");
  caller_ack = g_strdup_printf ("ACK sip:carol@127.0.0.1 SIP/2.0\r\nVia: %s\r\n"
                                "Max-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"
                                "Call-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                                via, from, to, call_id);
  sip_socket_send (caller, caller_ack);

  g_signal_handlers_disconnect_by_data (browser.ws, &browser);
  g_queue_clear_full (&browser.received, g_free);
  g_object_unref (browser.ws);
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
  ADD ("outbound/register-message-call", "ws", test_outbound);
  ADD ("hostile/hops-and-loop", "sip", test_hops_and_loop);
  ADD ("hostile/gone-client", "sip", test_gone_client);
  ADD ("restart/kamailio", "sip", test_restart_kamailio);
  ADD ("restart/kamailio-outbound", "ws", test_restart_kamailio_outbound);
  ADD ("restart/edge", "sip", test_restart_edge);
  ADD ("restart/edge-outbound", "ws", test_restart_edge_outbound);
  ADD ("hostile/target-cap", "ws", test_target_cap);
  ADD ("inbound/cancel-ack", "sip", test_cancel_ack);
  ADD ("config-file", "sip", test_config_file);
  /* The same clients through the edge to a udp and a tls upstream. */
  ADD ("inbound/udp/sipjs", "sip-udp", test_sipjs);
  ADD ("inbound/udp/call-jssip", "sip-udp", test_call_jssip);
  ADD ("inbound/tls/jssip", "sip-tls", test_jssip);
  ADD ("inbound/tls/call-sipjs", "sip-tls", test_call_sipjs);
  ADD ("hostile/tls-untrusted", "sip-tls-untrusted", test_tls_untrusted);
  ADD ("hostile/tls-wrong-name", "sip-tls-wrong-name", test_tls_untrusted);
  ADD ("inbound/udp/large-invite", "sip-udp", test_udp_large);
  g_test_add_func ("/edge/config-tls-dir", test_tls_dir_required);
#undef ADD

  return g_test_run ();
}
