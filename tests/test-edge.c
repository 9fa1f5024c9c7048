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
 * Request-URI) register at Kamailio over the edge's ws connection; fs2's MESSAGE reaches fs1,
 * Kamailio sending it back over that connection; fs2 calls fs1: INVITE, 200, ACK, and fs1
 * hangs up (a BYE routed by the Record-Routes of the edge and Kamailio). */
static void
run_outbound (Fixture *f)
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
}

static void
test_outbound (Fixture *f, gconstpointer data)
{
  if (f->kamailio != NULL)
    run_outbound (f);
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

  if (f->kamailio == NULL)
    return;
  run_outbound (f);
  g_assert_true (kamailio_peer_restart (f->kamailio, &error));
  g_assert_no_error (error);
  run_outbound (f);
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
