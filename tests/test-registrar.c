/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* examples/sofia-ws-registrar, a Sofia NTA program serving SIP over WebSocket through the tport
 * module, against the browser SIP stacks: SIP.js 0.21 and JsSIP 3 under Node
 * (tests/interop/node/sip-clients.mjs). Two user agents each connect over their own
 * WebSocket, REGISTER, send OPTIONS, exchange a MESSAGE relayed over the callee's connection,
 * unREGISTER and disconnect. The registrar is started on 127.0.0.1 port 0 by each test and
 * stopped by PID with SIGTERM; it must exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <gio/gio.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/registrar-peer.h"
#include "support/sip-socket.h"
#include "support/sip-text.h"
#include "support/ws-probe.h"

typedef struct {
  RegistrarPeer *registrar;
  TestCertificate *certificate;   /* wss */
  guint16 ws_port;
  guint16 tcp_port;
  char *node_dir;
  const char *scheme;             /* "ws" or "wss" */
} Fixture;

static gboolean
node_available (Fixture *f)
{
  return test_node_package_available ("sip.js");
}

/* @data: NULL, "wss" (a wss listener with a certificate the test makes) or "plain" (the
 * registrar on Sofia's own epoll root, which drives the module's GMainContext). */
static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autofree char *certificate_option = NULL;
  g_autofree char *key_option = NULL;
  const char *args[9] = { "--listen", "sip:127.0.0.1:0;transport=ws",
                          "--listen", "sip:127.0.0.1:0;transport=tcp", "--verbose", NULL };

  f->node_dir = g_test_build_filename (G_TEST_DIST, "interop", "node", NULL);
  f->scheme = data != NULL && g_str_equal (data, "wss") ? "wss" : "ws";
  if (g_str_equal (f->scheme, "wss"))
    {
      f->certificate = test_certificate_new ("127.0.0.1");
      certificate_option = g_strdup_printf ("--tls-certificate=%s", f->certificate->certificate);
      key_option = g_strdup_printf ("--tls-key=%s", f->certificate->key);
      args[1] = "sips:127.0.0.1:0;transport=wss";
      args[5] = certificate_option;
      args[6] = key_option;
    }
  else if (data != NULL && g_str_equal (data, "plain"))
    args[5] = "--plain-root";
  f->registrar = registrar_peer_start (args);
  f->ws_port = registrar_peer_get_port (f->registrar, f->scheme);
  f->tcp_port = registrar_peer_get_port (f->registrar, "tcp");
  g_assert_cmpuint (f->ws_port, >, 0);
  g_assert_cmpuint (f->tcp_port, >, 0);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  /* A clean stop: the agent, the ws listener and every connection destroyed, exit 0. */
  g_clear_pointer (&f->registrar, registrar_peer_stop);
  g_clear_pointer (&f->certificate, test_certificate_free);
  g_free (f->node_dir);
}

static void
run_clients (Fixture *f, const char *lib, const char *keepalive)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) clients = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *server = g_strdup_printf ("%s://127.0.0.1:%u/", f->scheme, f->ws_port);
  g_autofree char *stdout_text = NULL;
  g_autofree char *stderr_text = NULL;
  g_autofree char *line = NULL;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_cwd (launcher, f->node_dir);
  /* wss: Node trusts the test's certificate, and nothing else changes. */
  if (f->certificate != NULL)
    g_subprocess_launcher_setenv (launcher, "NODE_EXTRA_CA_CERTS", f->certificate->certificate,
                                  TRUE);
  if (keepalive != NULL)
    clients = g_subprocess_launcher_spawn (launcher, &error, "node", "sip-clients.mjs",
                                           "--lib", lib, "--server", server,
                                           "--domain", "127.0.0.1", "--keepalive", keepalive,
                                           "--timeout", "30", NULL);
  else
    clients = g_subprocess_launcher_spawn (launcher, &error, "node", "sip-clients.mjs",
                                           "--lib", lib, "--server", server,
                                           "--domain", "127.0.0.1", "--timeout", "30", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (clients, NULL, NULL, &stdout_text, &stderr_text, &error);
  g_assert_no_error (error);
  g_test_message ("%s clients:\n%s%s", lib, stdout_text, stderr_text);

  g_assert_true (g_subprocess_get_if_exited (clients));
  g_assert_cmpint (g_subprocess_get_exit_status (clients), ==, 0);
  g_assert_nonnull (strstr (stdout_text, "{\"result\":\"ok\""));
  /* Each step, as the browser libraries saw it. */
  g_assert_nonnull (strstr (stdout_text, "\"ua\":\"alice\",\"step\":\"register\",\"status\":200"));
  g_assert_nonnull (strstr (stdout_text, "\"ua\":\"bob\",\"step\":\"register\",\"status\":200"));
  g_assert_nonnull (strstr (stdout_text, "\"step\":\"message-received\""));

  /* And as the registrar saw them: the MESSAGE went over bob's own connection and bob's 200
   * came back to alice. */
  line = registrar_peer_read_line (f->registrar, "MESSAGE relayed: ", NULL, NULL);
  g_assert_cmpstr (line, ==, "MESSAGE relayed: 200 OK");
}

static void
test_sipjs (Fixture *f, gconstpointer data)
{
  if (node_available (f))
    run_clients (f, "sipjs", NULL);
}

static void
test_jssip (Fixture *f, gconstpointer data)
{
  if (node_available (f))
    run_clients (f, "jssip", NULL);
}

/* RFC 5626 CRLF keep-alives from the browsers, answered through the tport module. */
static void
test_sipjs_keepalive (Fixture *f, gconstpointer data)
{
  if (node_available (f))
    run_clients (f, "sipjs", "1");
}

static void
test_jssip_keepalive (Fixture *f, gconstpointer data)
{
  if (node_available (f))
    run_clients (f, "jssip", "1");
}

/* OPTIONS over Sofia's own TCP transport beside the ws one: the module changes nothing there. */
static void
test_tcp_beside (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autofree char *request = NULL;
  char buffer[4096];
  gssize n;
  gsize got = 0;

  connection = g_socket_client_connect_to_host (client, "127.0.0.1", f->tcp_port, NULL, &error);
  g_assert_no_error (error);
  request = g_strdup_printf ("OPTIONS sip:127.0.0.1:%u SIP/2.0\r\n"
                             "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-tcp-1\r\n"
                             "Max-Forwards: 70\r\n"
                             "To: <sip:127.0.0.1>\r\n"
                             "From: <sip:tcp@127.0.0.1>;tag=t1\r\n"
                             "Call-ID: tcp-beside-1\r\n"
                             "CSeq: 1 OPTIONS\r\n"
                             "Content-Length: 0\r\n\r\n", f->tcp_port);
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                             request, strlen (request), NULL, NULL, &error);
  g_assert_no_error (error);
  while (got < sizeof buffer - 1 && g_strstr_len (buffer, got, "\r\n\r\n") == NULL)
    {
      n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                               buffer + got, sizeof buffer - 1 - got, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (n, >, 0);
      got += n;
      buffer[got] = '\0';
    }
  g_test_message ("%s", buffer);
  g_assert_true (g_str_has_prefix (buffer, "SIP/2.0 200 "));
  g_assert_nonnull (strstr (buffer, "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-tcp-1"));
}

/* A TCP connection to @host:@port, or -1 (errno set). */
static int
tcp_connect (const char *host,
             guint16     port)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (port) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), saved;

  g_assert_cmpint (inet_pton (AF_INET, host, &sa.sin_addr), ==, 1);
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) == 0)
    return fd;
  saved = errno;
  close (fd);
  errno = saved;
  return -1;
}

/* Seconds until the registrar closes @fd (it sends nothing first), or -1 after 5 s. */
static double
seconds_to_close (int fd)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  gint64 start = g_get_monotonic_time ();
  char byte;

  if (poll (&pfd, 1, 5000) <= 0)
    return -1;
  g_assert_cmpint (recv (fd, &byte, 1, 0), <=, 0);
  return (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
}

/* Issue 12: the listener bound *:P for 127.0.0.1, and the limits are options. */
static void
test_limit_options (void)
{
  const char *args[] = { "--listen", "sip:127.0.0.1:0;transport=ws", "--handshake-timeout=1",
                         "--max-connections-per-address=1", "--max-connections=5",
                         "--max-partial-bytes=100000", NULL };
  g_autoptr(RegistrarPeer) registrar = registrar_peer_start (args);
  guint16 port = registrar_peer_get_port (registrar, "ws");
  int idle, refused;
  gint64 idle_since;
  double took;

  /* 127.0.0.2 is loopback too: only the bind keeps it out. */
  g_assert_cmpint (tcp_connect ("127.0.0.2", port), ==, -1);
  g_assert_cmpint (errno, ==, ECONNREFUSED);

  idle_since = g_get_monotonic_time ();
  idle = tcp_connect ("127.0.0.1", port);
  g_assert_cmpint (idle, >=, 0);
  /* While it waits, 127.0.0.1 has its one connection: the next is closed at once. */
  refused = tcp_connect ("127.0.0.1", port);
  g_assert_cmpint (refused, >=, 0);
  took = seconds_to_close (refused);
  close (refused);
  g_assert_cmpfloat (took, >=, 0);
  g_assert_cmpfloat (took, <, 0.9);
  /* The silent one goes at the handshake timeout. */
  g_assert_cmpfloat (seconds_to_close (idle), >=, 0);
  took = (g_get_monotonic_time () - idle_since) / (double) G_USEC_PER_SEC;
  close (idle);
  g_assert_cmpfloat (took, >=, 0.9);
  g_assert_cmpfloat (took, <, 3);
}

/* ---- issue 12: hostile requests and the server's stop ------------------------------------- */

/* REGISTER of @user over @socket with a Contact on a made-up host; its status. */
static guint
register_over (SipSocket *socket, const char *user)
{
  g_autofree char *to = g_strdup_printf ("sip:%s@127.0.0.1", user);
  g_autofree char *call_id = g_strdup_printf ("reg-%s-%08x", user, g_random_int ());
  g_autofree char *contact = g_strdup_printf ("Contact: <sip:%s@%s.invalid;transport=tcp>\r\n"
                                              "Expires: 600\r\n", user, user);
  g_autofree char *request = sip_text_over_tcp (sip_text_request ("REGISTER", "sip:127.0.0.1",
                                                                  user, to, call_id, 1, contact,
                                                                  NULL));
  g_autofree char *response = NULL;

  sip_socket_send (socket, request);
  response = sip_socket_read (socket, 20000);
  g_assert_nonnull (response);
  return sip_text_status (response);
}

/* The reason phrase of a response. */
static char *
reason_of (const char *response)
{
  const char *space = strchr (response, ' ');
  const char *end = strstr (response, "\r\n");

  g_assert_nonnull (space);
  space = strchr (space + 1, ' ');
  g_assert_nonnull (space);
  return g_strndup (space + 1, end - space - 1);
}

/* A MESSAGE from alice to bob, with @extra headers. */
static char *
message_to_bob (const char *extra)
{
  g_autofree char *call_id = g_strdup_printf ("message-%08x", g_random_int ());

  return sip_text_request ("MESSAGE", "sip:bob@127.0.0.1", "alice", "sip:bob@127.0.0.1", call_id,
                           1, extra, "hello bob");
}

static const struct {
  const char *name;
  const char *twice;
} duplicates[] = {
  { "Max-Forwards", "Max-Forwards: 69\r\n" },       /* the request has one already */
  { "Content-Type", "Content-Type: text/plain\r\nContent-Type: text/html\r\n" },
  { "Expires", "Expires: 60\r\nExpires: 61\r\n" },
  { "Subject", "Subject: one\r\nSubject: two\r\n" },
  { "Date", "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\nDate: Sat, 13 Nov 2010 23:29:01 GMT\r\n" },
};

/* One MESSAGE to a registered user with a single-instance header twice aborted the registrar
 * (msg_parser.c: serialize_one: Assertion '!msg_is_single(h)'): now 400, saying which header;
 * Max-Forwards: 0 gets 483; and the registrar still relays and exits 0. @data: "tcp" or "ws",
 * the transport of the sender (bob, the target, is on TCP). */
static void
test_duplicate_header (Fixture *f, gconstpointer data)
{
  gboolean ws = g_str_equal (data, "ws");
  g_autoptr(SipSocket) bob = sip_socket_connect (f->tcp_port);
  g_autoptr(SipSocket) alice = sip_socket_connect (f->tcp_port);
  g_autofree char *ws_url = g_strdup_printf ("ws://127.0.0.1:%u/", f->ws_port);

  if (ws && !test_ws_probe_available ())
    return;
  g_assert_cmpuint (register_over (bob, "bob"), ==, 200);

  for (guint i = 0; i < G_N_ELEMENTS (duplicates); i++)
    {
      g_autofree char *request = message_to_bob (duplicates[i].twice);
      g_autofree char *response = NULL;
      g_autofree char *reason = NULL;

      if (ws)
        {
          g_autoptr(GKeyFile) report = test_ws_probe (ws_url, "text", "--text", request, NULL);

          response = g_key_file_get_string (report, "probe", "reply", NULL);
        }
      else
        {
          /* A connection of its own: Sofia closes one after a message it could not frame
           * for sure (a second Content-Type, Expires). */
          g_autoptr(SipSocket) sender = sip_socket_connect (f->tcp_port);

          request = sip_text_over_tcp (g_steal_pointer (&request));
          sip_socket_send (sender, request);
          response = sip_socket_read (sender, 20000);
        }
      g_assert_nonnull (response);
      g_assert_cmpuint (sip_text_status (response), ==, 400);
      /* Ours ("Bad Request (duplicate Max-Forwards)"), or NTA's own for the headers it checks
       * itself ("Bad Content-Type Header"): either names the header. */
      reason = reason_of (response);
      g_test_message ("%s twice: %u %s", duplicates[i].name, sip_text_status (response), reason);
      g_assert_nonnull (strstr (reason, duplicates[i].name));
    }

  /* Max-Forwards: 0 is not relayed. */
  {
    g_autofree char *request = message_to_bob (NULL);
    g_autofree char *zero = NULL;
    g_autofree char *response = NULL;
    char *mf = strstr (request, "Max-Forwards: 70");

    g_assert_nonnull (mf);
    memcpy (mf, "Max-Forwards:  0", 16);
    zero = g_strdup (request);
    if (ws)
      {
        g_autoptr(GKeyFile) report = test_ws_probe (ws_url, "text", "--text", zero, NULL);

        response = g_key_file_get_string (report, "probe", "reply", NULL);
      }
    else
      {
        zero = sip_text_over_tcp (g_steal_pointer (&zero));
        sip_socket_send (alice, zero);
        response = sip_socket_read (alice, 20000);
      }
    g_assert_nonnull (response);
    g_assert_cmpuint (sip_text_status (response), ==, 483);
  }

  /* And a good MESSAGE still goes through, with Max-Forwards one less. */
  {
    g_autofree char *request = sip_text_over_tcp (message_to_bob (NULL));
    g_autofree char *relayed = NULL, *answer = NULL, *response = NULL, *mf = NULL;

    sip_socket_send (alice, request);
    relayed = sip_socket_read (bob, 20000);
    g_assert_nonnull (relayed);
    g_assert_true (g_str_has_prefix (relayed, "MESSAGE sip:bob@bob.invalid;transport=tcp "));
    mf = sip_text_header (relayed, "Max-Forwards");
    g_assert_cmpstr (mf, ==, "69");
    answer = sip_text_response (relayed, 200, "OK");
    sip_socket_send (bob, answer);
    response = sip_socket_read (alice, 20000);
    g_assert_nonnull (response);
    g_assert_cmpuint (sip_text_status (response), ==, 200);
  }
}

/* A request that has been through the registrar already (its Via among the request's) is a
 * loop: 482, not relayed again. */
static void
test_loop (Fixture *f, gconstpointer data)
{
  g_autoptr(SipSocket) bob = sip_socket_connect (f->tcp_port);
  g_autoptr(SipSocket) alice = sip_socket_connect (f->tcp_port);
  g_autofree char *via = g_strdup_printf ("Via: SIP/2.0/TCP 127.0.0.1:%u;branch=z9hG4bK-loop\r\n",
                                          f->tcp_port);
  g_autofree char *request = sip_text_over_tcp (message_to_bob (via));
  g_autofree char *response = NULL;

  g_assert_cmpuint (register_over (bob, "bob"), ==, 200);
  sip_socket_send (alice, request);
  response = sip_socket_read (alice, 20000);
  g_assert_nonnull (response);
  g_assert_cmpuint (sip_text_status (response), ==, 482);
}

/* A relay in flight when the registrar stops: answered 503 and freed (under valgrind, a leak
 * makes the registrar exit 99 and registrar_peer_stop() fail). */
static void
test_pending_relay_at_exit (Fixture *f, gconstpointer data)
{
  g_autoptr(SipSocket) bob = sip_socket_connect (f->tcp_port);
  g_autoptr(SipSocket) alice = sip_socket_connect (f->tcp_port);
  g_autofree char *request = sip_text_over_tcp (message_to_bob (NULL));
  g_autofree char *relayed = NULL, *response = NULL;

  g_assert_cmpuint (register_over (bob, "bob"), ==, 200);
  sip_socket_send (alice, request);
  relayed = sip_socket_read (bob, 20000);
  g_assert_nonnull (relayed);             /* and bob never answers */

  g_clear_pointer (&f->registrar, registrar_peer_stop);
  response = sip_socket_read (alice, 5000);
  g_assert_nonnull (response);
  g_assert_cmpuint (sip_text_status (response), ==, 503);
}

typedef struct {
  char *url;
  GKeyFile *report;
} ProbeRun;

static gpointer
probe_thread (gpointer data)
{
  ProbeRun *run = data;

  /* The probe iterates the global default context, which the main thread leaves alone
   * meanwhile (its reads and waits are synchronous). */
  run->report = test_ws_probe (run->url, "wait-close", NULL);
  return NULL;
}

/* SIGTERM: every WebSocket is closed with 1001 (going away) before the registrar exits. */
static void
test_sigterm_closes (Fixture *f, gconstpointer data)
{
  ProbeRun run = { NULL, NULL };
  GThread *thread;
  g_autofree char *line = NULL;
  g_autofree char *reason = NULL;

  if (!test_ws_probe_available ())
    return;
  run.url = g_strdup_printf ("%s://127.0.0.1:%u/", f->scheme, f->ws_port);
  thread = g_thread_new ("probe", probe_thread, &run);
  /* The probe's OPTIONS has been answered: its connection is open. */
  line = registrar_peer_read_line (f->registrar, "OPTIONS from ", NULL, NULL);
  g_clear_pointer (&f->registrar, registrar_peer_stop);
  g_thread_join (thread);

  g_assert_nonnull (run.report);
  g_assert_cmpint (g_key_file_get_integer (run.report, "probe", "closeCode", NULL), ==, 1001);
  reason = g_key_file_get_string (run.report, "probe", "closeReason", NULL);
  g_assert_cmpstr (reason, ==, "going away");
  g_key_file_unref (run.report);
  g_free (run.url);
}

/* An in-dialog request, by hand. */
static char *
dialog_request (const char *method, const char *uri, const char *route, const char *from,
                const char *from_tag, const char *to, const char *to_tag, const char *call_id,
                guint cseq)
{
  return g_strdup_printf ("%s %s SIP/2.0\r\n"
                          "Via: SIP/2.0/TCP %s.invalid;branch=z9hG4bK%08x%08x\r\n"
                          "Max-Forwards: 70\r\n"
                          "Route: %s\r\n"
                          "From: <sip:%s@127.0.0.1>;tag=%s\r\n"
                          "To: <sip:%s@127.0.0.1>;tag=%s\r\n"
                          "Call-ID: %s\r\n"
                          "CSeq: %u %s\r\n"
                          "Content-Length: 0\r\n\r\n",
                          method, uri, from, g_random_int (), g_random_int (), route, from,
                          from_tag, to, to_tag, call_id, cseq, method);
}

/* The value of ";tag=" in a header. */
static char *
tag_of (const char *header)
{
  const char *tag = header != NULL ? strstr (header, ";tag=") : NULL;

  g_assert_nonnull (tag);
  return g_strndup (tag + 5, strcspn (tag + 5, ";> "));
}

/* A call over raw TCP: the INVITE gets our Record-Route (a flow token), the 200 comes back,
 * the ACK and the callee's BYE follow the Route over the other party's connection; once the
 * caller's connection is gone, a request to it gets 430 Flow Failed at once. */
static void
test_flow_routing (Fixture *f, gconstpointer data)
{
  g_autoptr(SipSocket) alice = sip_socket_connect (f->tcp_port);
  g_autoptr(SipSocket) bob = sip_socket_connect (f->tcp_port);
  g_autofree char *invite = NULL, *relayed = NULL, *rr = NULL, *ok = NULL, *answer = NULL;
  g_autofree char *route = NULL, *alice_tag = NULL, *bob_tag = NULL, *ack = NULL;
  g_autofree char *bye = NULL, *bye_relayed = NULL, *bye_ok = NULL, *bye_answer = NULL;
  g_autofree char *info = NULL, *failed = NULL, *header = NULL, *from = NULL;
  const char *sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    "t=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
  GString *response;
  char *length;

  g_assert_cmpuint (register_over (alice, "alice"), ==, 200);
  g_assert_cmpuint (register_over (bob, "bob"), ==, 200);

  invite = sip_text_over_tcp (sip_text_request ("INVITE", "sip:bob@127.0.0.1", "alice",
                                                "sip:bob@127.0.0.1", "call-1", 1,
                                                "Contact: <sip:alice@alice.invalid;"
                                                "transport=tcp>\r\n"
                                                "Content-Type: application/sdp\r\n", sdp));
  sip_socket_send (alice, invite);
  relayed = sip_socket_read (bob, 20000);
  g_assert_nonnull (relayed);
  g_assert_true (g_str_has_prefix (relayed, "INVITE sip:bob@bob.invalid;transport=tcp "));
  rr = sip_text_header (relayed, "Record-Route");
  g_assert_nonnull (rr);
  g_test_message ("Record-Route: %s", rr);
  g_assert_nonnull (strstr (rr, ";lr"));
  g_assert_nonnull (strstr (relayed, "\r\n\r\nv=0"));

  /* bob: 200 with the Record-Route and his Contact. */
  answer = sip_text_response (relayed, 200, "OK");
  response = g_string_new (answer);
  g_clear_pointer (&answer, g_free);
  length = strstr (response->str, "Content-Length: 0");
  g_assert_nonnull (length);
  g_string_insert (response, length - response->str,
                   "Contact: <sip:bob@bob.invalid;transport=tcp>\r\n");
  length = strstr (response->str, "Content-Length: 0");
  header = g_strdup_printf ("Record-Route: %s\r\n", rr);
  g_string_insert (response, length - response->str, header);
  answer = g_string_free (response, FALSE);
  sip_socket_send (bob, answer);
  ok = sip_socket_read (alice, 20000);
  g_assert_nonnull (ok);
  g_assert_cmpuint (sip_text_status (ok), ==, 200);
  route = sip_text_header (ok, "Record-Route");
  g_assert_cmpstr (route, ==, rr);
  from = sip_text_header (ok, "From");
  alice_tag = tag_of (from);
  g_clear_pointer (&header, g_free);
  header = sip_text_header (ok, "To");
  bob_tag = tag_of (header);

  /* alice's ACK, statelessly on to bob. */
  ack = dialog_request ("ACK", "sip:bob@bob.invalid;transport=tcp", route, "alice", alice_tag,
                        "bob", bob_tag, "call-1", 1);
  sip_socket_send (alice, ack);
  g_clear_pointer (&relayed, g_free);
  relayed = sip_socket_read (bob, 20000);
  g_assert_nonnull (relayed);
  g_assert_true (g_str_has_prefix (relayed, "ACK sip:bob@bob.invalid;transport=tcp "));

  /* bob hangs up: over alice's connection, though her Contact is a made-up host. */
  bye = dialog_request ("BYE", "sip:alice@alice.invalid;transport=tcp", route, "bob", bob_tag,
                        "alice", alice_tag, "call-1", 1);
  sip_socket_send (bob, bye);
  bye_relayed = sip_socket_read (alice, 20000);
  g_assert_nonnull (bye_relayed);
  g_assert_true (g_str_has_prefix (bye_relayed, "BYE sip:alice@alice.invalid;transport=tcp "));
  g_assert_null (sip_text_header (bye_relayed, "Route"));
  bye_answer = sip_text_response (bye_relayed, 200, "OK");
  sip_socket_send (alice, bye_answer);
  bye_ok = sip_socket_read (bob, 20000);
  g_assert_nonnull (bye_ok);
  g_assert_cmpuint (sip_text_status (bye_ok), ==, 200);

  /* alice's connection goes: a request for her flow gets 430 at once. */
  g_clear_pointer (&alice, sip_socket_close);
  g_usleep (300 * 1000);
  info = dialog_request ("INFO", "sip:alice@alice.invalid;transport=tcp", route, "bob", bob_tag,
                         "alice", alice_tag, "call-1", 2);
  sip_socket_send (bob, info);
  failed = sip_socket_read (bob, 5000);
  g_assert_nonnull (failed);
  g_assert_cmpuint (sip_text_status (failed), ==, 430);
}

/* ---- issue 13 item 5: calls ------------------------------------------------------------- */

/* Two browser stacks under Node call each other through the registrar (sip-call.mjs): INVITE
 * answered, re-INVITE, INFO, BYE from the caller; BYE from the callee (over the caller's
 * connection, by the Record-Route's flow token); CANCEL while ringing. */
static void
run_call (Fixture *f, const char *lib)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) clients = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *server = g_strdup_printf ("%s://127.0.0.1:%u/", f->scheme, f->ws_port);
  g_autofree char *out = NULL, *err = NULL, *line = NULL;

  if (!node_available (f))
    return;
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_cwd (launcher, f->node_dir);
  clients = g_subprocess_launcher_spawn (launcher, &error, "node", "sip-call.mjs", "--lib", lib,
                                         "--server", server, "--domain", "127.0.0.1",
                                         "--timeout", "60", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (clients, NULL, NULL, &out, &err, &error);
  g_assert_no_error (error);
  g_test_message ("%s call:\n%s%s", lib, out, err);
  g_assert_true (g_subprocess_get_if_exited (clients));
  g_assert_cmpint (g_subprocess_get_exit_status (clients), ==, 0);
  g_assert_nonnull (strstr (out, "{\"result\":\"ok\""));
  g_assert_nonnull (strstr (out, "\"step\":\"call1-reinvite\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"call1-info\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"call1-bye\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"call2-bye\",\"status\":200"));
  g_assert_nonnull (strstr (out, "\"step\":\"call3-cancelled\""));

  /* As the registrar saw it: the callee's BYE went in dialog, the CANCEL was forwarded and
   * the callee's 487 came back. */
  line = registrar_peer_read_line (f->registrar, "INVITE relayed: ", NULL, NULL);
  g_assert_cmpstr (line, ==, "INVITE relayed: 200 OK");
  g_clear_pointer (&line, g_free);
  line = registrar_peer_read_line (f->registrar, "BYE relayed: ", NULL, NULL);
  g_assert_cmpstr (line, ==, "BYE relayed: 200 OK");
  g_clear_pointer (&line, g_free);
  line = registrar_peer_read_line (f->registrar, "CANCEL of INVITE: ", NULL, NULL);
  g_assert_cmpstr (line, ==, "CANCEL of INVITE: forwarded");
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

#define ADD(path, fn) \
  g_test_add ("/registrar/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("sipjs", test_sipjs);
  ADD ("jssip", test_jssip);
  ADD ("sipjs-keepalive", test_sipjs_keepalive);
  ADD ("tcp-beside", test_tcp_beside);
  ADD ("pending-relay-at-exit", test_pending_relay_at_exit);
  ADD ("loop", test_loop);
  ADD ("sigterm-closes-websockets", test_sigterm_closes);
  ADD ("flow-routing", test_flow_routing);
  ADD ("call-sipjs", test_call_sipjs);
  ADD ("call-jssip", test_call_jssip);
#undef ADD
  g_test_add ("/registrar/duplicate-header/tcp", Fixture, "tcp", fixture_setup,
              test_duplicate_header, fixture_teardown);
  g_test_add ("/registrar/duplicate-header/ws", Fixture, "ws", fixture_setup,
              test_duplicate_header, fixture_teardown);
  /* The same through a wss listener (sips: URL, TLS certificate and key from the options). */
  g_test_add ("/registrar/jssip-wss", Fixture, "wss", fixture_setup, test_jssip, fixture_teardown);
  g_test_add ("/registrar/sipjs-wss", Fixture, "wss", fixture_setup, test_sipjs, fixture_teardown);
  /* The same on a registrar whose su_root is Sofia's own (epoll), not GLib's. */
  g_test_add ("/registrar/sipjs-plain-root", Fixture, "plain", fixture_setup, test_sipjs,
              fixture_teardown);
  g_test_add ("/registrar/jssip-keepalive-plain-root", Fixture, "plain", fixture_setup,
              test_jssip_keepalive, fixture_teardown);
  g_test_add_func ("/registrar/limit-options", test_limit_options);

  return g_test_run ();
}
