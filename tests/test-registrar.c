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
  g_autofree char *modules = g_build_filename (f->node_dir, "node_modules", "sip.js", NULL);

  if (!g_file_test (modules, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("tests/interop/node has no node_modules: run `npm ci` there (./run test does)");
      return FALSE;
    }
  return TRUE;
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
#undef ADD
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
