/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* examples/sofia-ws-registrar, a Sofia NTA program serving SIP over WebSocket through the tport
 * module, against the browser SIP stacks: SIP.js 0.21 and JsSIP 3 under Node
 * (tests/interop/node/sip-clients.mjs). Two user agents each connect over their own
 * WebSocket, REGISTER, send OPTIONS, exchange a MESSAGE relayed over the callee's connection,
 * unREGISTER and disconnect. The registrar is started on 127.0.0.1 port 0 by each test and
 * stopped by PID with SIGTERM; it must exit 0. */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <valgrind/valgrind.h>

typedef struct {
  GSubprocess *registrar;
  GDataInputStream *out;
  guint16 ws_port;
  guint16 tcp_port;
  char *node_dir;
  char *pki_dir;                  /* wss: a self-signed certificate for 127.0.0.1 */
  char *certificate;
  const char *scheme;             /* "ws" or "wss" */
} Fixture;

static void
make_certificate (Fixture *f)
{
  g_autofree char *command = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;

  f->pki_dir = g_dir_make_tmp ("sofia-ws-registrar-XXXXXX", NULL);
  g_assert_nonnull (f->pki_dir);
  command = g_strdup_printf ("sh -c \"cd '%s' && openssl req -x509 -newkey ec "
                             "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key "
                             "-out server.pem -days 2 -subj /CN=127.0.0.1 "
                             "-addext subjectAltName=IP:127.0.0.1\"", f->pki_dir);
  g_spawn_command_line_sync (command, NULL, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("openssl failed: %s", err);
  f->certificate = g_build_filename (f->pki_dir, "server.pem", NULL);
}

static void
remove_certificate (Fixture *f)
{
  const char *files[] = { "server.pem", "server.key" };

  if (f->pki_dir == NULL)
    return;
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (f->pki_dir, files[i], NULL);
      g_unlink (path);
    }
  g_rmdir (f->pki_dir);
  g_clear_pointer (&f->pki_dir, g_free);
  g_clear_pointer (&f->certificate, g_free);
}

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

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  const char *binary = g_getenv ("SOFIA_WS_REGISTRAR");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  const char *suppressions = g_getenv ("SOFIA_WS_VALGRIND_SUPPRESSIONS");
  g_auto(GStrv) supp = suppressions ? g_strsplit (suppressions, ":", -1) : NULL;
  g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *key = NULL;
  g_autofree char *certificate_option = NULL;
  g_autofree char *key_option = NULL;

  f->node_dir = g_test_build_filename (G_TEST_DIST, "interop", "node", NULL);
  f->scheme = data != NULL && g_str_equal (data, "wss") ? "wss" : "ws";
  g_assert_nonnull (binary);
  /* Under `meson test --setup valgrind`, the registrar (the module's code) runs under
   * memcheck too, and any error or definite leak makes it exit non-zero. */
  if (RUNNING_ON_VALGRIND)
    {
      g_ptr_array_add (argv, "valgrind");
      g_ptr_array_add (argv, "--error-exitcode=99");
      g_ptr_array_add (argv, "--leak-check=full");
      g_ptr_array_add (argv, "--errors-for-leak-kinds=definite");
      g_ptr_array_add (argv, "--show-leak-kinds=definite");
      for (char **s = supp; s != NULL && *s != NULL; s++)
        {
          char *option = g_strdup_printf ("--suppressions=%s", *s);

          g_ptr_array_add (owned, option);
          g_ptr_array_add (argv, option);
        }
    }
  g_ptr_array_add (argv, (char *) binary);
  g_ptr_array_add (argv, "--listen");
  if (g_str_equal (f->scheme, "wss"))
    {
      make_certificate (f);
      key = g_build_filename (f->pki_dir, "server.key", NULL);
      certificate_option = g_strdup_printf ("--tls-certificate=%s", f->certificate);
      key_option = g_strdup_printf ("--tls-key=%s", key);
      g_ptr_array_add (argv, "sips:127.0.0.1:0;transport=wss");
      g_ptr_array_add (argv, certificate_option);
      g_ptr_array_add (argv, key_option);
    }
  else
    g_ptr_array_add (argv, "sip:127.0.0.1:0;transport=ws");
  g_ptr_array_add (argv, "--listen");
  g_ptr_array_add (argv, "sip:127.0.0.1:0;transport=tcp");
  g_ptr_array_add (argv, "--verbose");
  /* Sofia's own epoll root: the module drives its GMainContext from it. */
  if (data != NULL && g_str_equal (data, "plain"))
    g_ptr_array_add (argv, "--plain-root");
  g_ptr_array_add (argv, NULL);
  f->registrar = g_subprocess_newv ((const char *const *) argv->pdata,
                                    G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_assert_no_error (error);
  f->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (f->registrar));

  /* One "listening" line per listener, Sofia's own transports first. */
  while (f->ws_port == 0 || f->tcp_port == 0)
    {
      g_autofree char *line = g_data_input_stream_read_line_utf8 (f->out, NULL, NULL, &error);
      const char *colon;

      g_assert_no_error (error);
      g_assert_nonnull (line);
      g_test_message ("registrar: %s", line);
      g_assert_true (g_str_has_prefix (line, "listening sip:127.0.0.1:"));
      colon = line + strlen ("listening sip:127.0.0.1:");
      if (g_str_has_suffix (line, ";transport=ws") || g_str_has_suffix (line, ";transport=wss"))
        f->ws_port = (guint16) g_ascii_strtoull (colon, NULL, 10);
      else if (g_str_has_suffix (line, ";transport=tcp"))
        f->tcp_port = (guint16) g_ascii_strtoull (colon, NULL, 10);
    }
  g_assert_cmpuint (f->ws_port, >, 0);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_send_signal (f->registrar, SIGTERM);
  g_subprocess_wait (f->registrar, NULL, &error);
  g_assert_no_error (error);
  /* A clean stop: the agent, the ws listener and every connection destroyed, exit 0. */
  g_assert_true (g_subprocess_get_if_exited (f->registrar));
  g_assert_cmpint (g_subprocess_get_exit_status (f->registrar), ==, 0);
  g_clear_object (&f->out);
  g_clear_object (&f->registrar);
  g_free (f->node_dir);
  remove_certificate (f);
}

/* Reads the registrar's output until a line starts with @prefix (or it ends). */
static char *
registrar_wait_line (Fixture *f, const char *prefix)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      char *line = g_data_input_stream_read_line_utf8 (f->out, NULL, NULL, &error);

      g_assert_no_error (error);
      if (line == NULL)
        return NULL;
      g_test_message ("registrar: %s", line);
      if (g_str_has_prefix (line, prefix))
        return line;
      g_free (line);
    }
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
  gboolean relayed = FALSE;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_cwd (launcher, f->node_dir);
  /* wss: Node trusts the test's certificate, and nothing else changes. */
  if (f->certificate != NULL)
    g_subprocess_launcher_setenv (launcher, "NODE_EXTRA_CA_CERTS", f->certificate, TRUE);
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
  while ((line = registrar_wait_line (f, "MESSAGE relayed: ")) != NULL)
    {
      relayed = g_str_equal (line, "MESSAGE relayed: 200 OK");
      break;
    }
  g_assert_true (relayed);
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

  return g_test_run ();
}
