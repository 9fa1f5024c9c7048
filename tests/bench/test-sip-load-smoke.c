/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Smoke test of the load generator tests/bench/sip-load.c, for CI (a few seconds):
 *  - over WebSocket against a real Kamailio (tests/support/kamailio-peer), 4 x 8 for 2 s;
 *  - against a port where nothing listens: a non-zero exit with a clear message, quickly;
 *  - over TCP against a tiny answerer in this process (a GSocketService replying 200 to every
 *    request, sometimes after a 100, its responses coalesced and split across writes);
 *  - over WebSocket against tests/bench/lws-echo (--echo --size 500), for 1 s;
 *  - the stateful relay (--method MESSAGE --callees 2) through examples/sofia-ws-registrar, over
 *    WebSocket and over TCP, for 1 s each, where the registrar is built.
 * Under `meson test --setup valgrind`, lws-echo and the registrar run under memcheck too. */
#include "support/kamailio-peer.h"
#include "support/registrar-peer.h"
#include "support/sip-text.h"

#include <signal.h>
#include <string.h>

#ifndef SIP_LOAD_PATH
#error "SIP_LOAD_PATH must name the sip-load binary"
#endif
#ifndef LWS_ECHO_PATH
#error "LWS_ECHO_PATH must name the lws-echo binary"
#endif

#define RUN_TIMEOUT_S 30          /* sip-load bounds itself to duration + 5 s */
#define SETTLE_TIMEOUT_S 5
#define STOP_TIMEOUT_S 60         /* a server under memcheck checks for leaks as it exits */

/* ---- running sip-load ------------------------------------------------------------------- */

typedef struct {
  int status;                     /* exit status, or -1 when it did not exit normally */
  char *out;
  char *err;
  double seconds;
  GHashTable *result;             /* the RESULT line's key -> value, or NULL */
} Run;

static void
run_clear (Run *run)
{
  g_free (run->out);
  g_free (run->err);
  g_clear_pointer (&run->result, g_hash_table_unref);
}

typedef struct {
  gboolean done;
  gboolean timed_out;
  char *out;
  char *err;
  GError *error;
} Wait;

static void
on_communicated (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Wait *wait = user_data;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &wait->out, &wait->err,
                                        &wait->error);
  wait->done = TRUE;
  g_main_context_wakeup (NULL);
}

static gboolean
on_run_timeout (gpointer user_data)
{
  GSubprocess *process = user_data;

  g_subprocess_force_exit (process);
  return G_SOURCE_REMOVE;
}

static GHashTable *
parse_result (const char *out)
{
  g_auto(GStrv) lines = g_strsplit (out, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "RESULT "))
      {
        GHashTable *table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
        g_auto(GStrv) fields = g_strsplit (lines[i] + strlen ("RESULT "), " ", -1);

        for (guint f = 0; fields[f] != NULL; f++)
          {
            const char *eq = strchr (fields[f], '=');

            if (eq != NULL)
              g_hash_table_insert (table, g_strndup (fields[f], (gsize) (eq - fields[f])),
                                   g_strdup (eq + 1));
          }
        return table;
      }
  return NULL;
}

/* Runs sip-load with the NULL-terminated arguments, the main context turning meanwhile. */
static void
run_sip_load (Run        *run,
              const char *first,
              ...) G_GNUC_NULL_TERMINATED;

static void
run_sip_load (Run        *run,
              const char *first,
              ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GSource) timeout = NULL;
  Wait wait = { 0 };
  gint64 start;
  va_list args;

  g_ptr_array_add (argv, (gpointer) SIP_LOAD_PATH);
  va_start (args, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  {
    g_autofree char *command = g_strjoinv (" ", (char **) argv->pdata);

    g_test_message ("running %s", command);
  }

  start = g_get_monotonic_time ();
  process = g_subprocess_newv ((const char *const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               &error);
  g_assert_no_error (error);

  timeout = g_timeout_source_new_seconds (RUN_TIMEOUT_S);
  g_source_set_callback (timeout, on_run_timeout, process, NULL);
  g_source_attach (timeout, NULL);

  g_subprocess_communicate_utf8_async (process, NULL, NULL, on_communicated, &wait);
  while (!wait.done)
    g_main_context_iteration (NULL, TRUE);
  g_source_destroy (timeout);
  g_assert_no_error (wait.error);

  run->seconds = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  run->out = wait.out != NULL ? wait.out : g_strdup ("");
  run->err = wait.err != NULL ? wait.err : g_strdup ("");
  run->status = g_subprocess_get_if_exited (process) ? g_subprocess_get_exit_status (process) : -1;
  run->result = parse_result (run->out);

  g_test_message ("sip-load exited with %d after %.2f s; stdout:\n%s\nstderr:\n%s",
                  run->status, run->seconds, run->out, run->err);
}

static guint64
result_u64 (Run        *run,
            const char *key)
{
  const char *value;

  g_assert_nonnull (run->result);
  value = g_hash_table_lookup (run->result, key);
  g_assert_nonnull (value);
  return g_ascii_strtoull (value, NULL, 10);
}

static double
result_double (Run        *run,
               const char *key)
{
  const char *value;

  g_assert_nonnull (run->result);
  value = g_hash_table_lookup (run->result, key);
  g_assert_nonnull (value);
  return g_ascii_strtod (value, NULL);
}

/* The checks every healthy run passes. */
static void
assert_healthy (Run    *run,
                double  duration)
{
  g_assert_cmpint (run->status, ==, 0);
  g_assert_nonnull (run->result);
  g_assert_cmpuint (result_u64 (run, "lost"), ==, 0);
  g_assert_cmpuint (result_u64 (run, "answered"), >, 0);
  g_assert_cmpuint (result_u64 (run, "answered"), ==, result_u64 (run, "requests"));
  g_assert_cmpuint (result_u64 (run, "non2xx"), ==, 0);
  g_assert_cmpuint (result_u64 (run, "unmatched"), ==, 0);
  g_assert_cmpfloat (result_double (run, "rps"), >, 0);
  g_assert_cmpuint (result_u64 (run, "p50_us"), >, 0);
  g_assert_cmpuint (result_u64 (run, "p50_us"), <=, result_u64 (run, "p99_us"));
  g_assert_cmpuint (result_u64 (run, "p99_us"), <=, result_u64 (run, "max_us"));
  g_assert_cmpfloat (run->seconds, <, duration + 5.5);
}

/* ---- over WebSocket, against Kamailio --------------------------------------------------- */

static void
test_ws_kamailio (void)
{
  g_autoptr(KamailioPeer) peer = NULL;
  Run run = { 0 };

  peer = kamailio_peer_start_or_skip ();
  if (peer == NULL)
    return;

  run_sip_load (&run, "--url", kamailio_peer_get_ws_url (peer), "--connections", "4",
                "--window", "8", "--duration", "2", "--method", "OPTIONS",
                "--request-uri", "sip:127.0.0.1", NULL);
  assert_healthy (&run, 2);
  g_assert_cmpuint (result_u64 (&run, "connections"), ==, 4);
  g_assert_cmpuint (result_u64 (&run, "window"), ==, 8);
  run_clear (&run);
}

/* ---- nothing listening ------------------------------------------------------------------ */

static guint16
unused_port (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  guint16 port;

  sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_bind (sock, any, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (sock, &error);
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (sock, NULL);
  return port;
}

static void
test_refused (gconstpointer data)
{
  gboolean tcp = GPOINTER_TO_INT (data);
  guint16 port = unused_port ();
  g_autofree char *target = tcp ? g_strdup_printf ("127.0.0.1:%u", port)
                                : g_strdup_printf ("ws://127.0.0.1:%u/", port);
  Run run = { 0 };

  run_sip_load (&run, tcp ? "--tcp" : "--url", target, "--connections", "4", "--window", "8",
                "--duration", "2", NULL);
  g_assert_cmpint (run.status, ==, 1);
  g_assert_null (run.result);
  g_assert_nonnull (strstr (run.err, "FAILED"));
  g_assert_nonnull (strstr (run.err, "connection"));
  g_assert_nonnull (strstr (run.err, target));
  g_assert_cmpfloat (run.seconds, <, 3);     /* it does not wait out the duration */
  run_clear (&run);
}

/* ---- over TCP, against an answerer in this process ------------------------------------- */

typedef struct {
  GSocketService *service;
  GCancellable *cancellable;
  guint16 port;
  guint open;                     /* connections not yet closed */
  guint64 requests;
  guint64 provisionals;
  guint64 bad;                    /* requests it could not frame */
} Answerer;

typedef struct {
  Answerer *answerer;
  GSocketConnection *connection;
  GByteArray *in;
  guint8 buffer[4096];
} AnswererConn;

static void answerer_read (AnswererConn *ac);

static void
answerer_conn_free (AnswererConn *ac)
{
  ac->answerer->open--;
  g_io_stream_close (G_IO_STREAM (ac->connection), NULL, NULL);
  g_object_unref (ac->connection);
  g_byte_array_unref (ac->in);
  g_free (ac);
}

static gsize
find_head_end (const guint8 *data,
               gsize         len)
{
  for (gsize i = 0; i + 3 < len; i++)
    if (memcmp (data + i, "\r\n\r\n", 4) == 0)
      return i + 4;
  return 0;
}

/* Answers every complete request in ac->in; the responses of one read go out together. */
static gboolean
answerer_answer (AnswererConn *ac)
{
  g_autoptr(GString) responses = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (ac->connection));

  for (;;)
    {
      gsize head = find_head_end (ac->in->data, ac->in->len);
      g_autofree char *head_text = NULL;
      g_autofree char *length = NULL;
      g_autofree char *request = NULL;
      g_autofree char *response = NULL;
      gsize total;

      if (head == 0)
        break;
      head_text = g_strndup ((const char *) ac->in->data, head);
      length = sip_text_header (head_text, "Content-Length");
      if (length == NULL)
        {
          ac->answerer->bad++;
          return FALSE;
        }
      total = head + (gsize) g_ascii_strtoull (length, NULL, 10);
      if (ac->in->len < total)
        break;

      request = g_strndup ((const char *) ac->in->data, total);
      g_byte_array_remove_range (ac->in, 0, (guint) total);
      ac->answerer->requests++;
      if (ac->answerer->requests % 4 == 0)
        {
          g_autofree char *trying = sip_text_response (request, 100, "Trying");

          g_string_append (responses, trying);
          ac->answerer->provisionals++;
        }
      response = sip_text_response (request, 200, "OK");
      g_string_append (responses, response);
    }

  if (responses->len > 0)
    {
      /* Two writes, cut inside a message. */
      gsize cut = responses->len / 2 + 1;

      if (!g_output_stream_write_all (out, responses->str, cut, NULL, NULL, &error) ||
          !g_output_stream_write_all (out, responses->str + cut, responses->len - cut, NULL,
                                      NULL, &error))
        return FALSE;
    }
  return TRUE;
}

static void
on_answerer_read (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  AnswererConn *ac = user_data;
  g_autoptr(GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (n <= 0)
    {
      answerer_conn_free (ac);
      return;
    }
  g_byte_array_append (ac->in, ac->buffer, (guint) n);
  if (!answerer_answer (ac))
    {
      answerer_conn_free (ac);
      return;
    }
  answerer_read (ac);
}

static void
answerer_read (AnswererConn *ac)
{
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (ac->connection)),
                             ac->buffer, sizeof ac->buffer, G_PRIORITY_DEFAULT,
                             ac->answerer->cancellable, on_answerer_read, ac);
}

static gboolean
on_incoming (GSocketService    *service,
             GSocketConnection *connection,
             GObject           *source_object,
             gpointer           user_data)
{
  Answerer *answerer = user_data;
  AnswererConn *ac = g_new0 (AnswererConn, 1);

  ac->answerer = answerer;
  ac->connection = g_object_ref (connection);
  ac->in = g_byte_array_new ();
  answerer->open++;
  answerer_read (ac);
  return TRUE;
}

static void
answerer_start (Answerer *answerer)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) effective = NULL;

  answerer->service = g_socket_service_new ();
  answerer->cancellable = g_cancellable_new ();
  g_socket_listener_add_address (G_SOCKET_LISTENER (answerer->service), address,
                                 G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL, &effective,
                                 &error);
  g_assert_no_error (error);
  answerer->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective));
  g_signal_connect (answerer->service, "incoming", G_CALLBACK (on_incoming), answerer);
  g_socket_service_start (answerer->service);
}

static gboolean
on_settle_timeout (gpointer user_data)
{
  gboolean *expired = user_data;

  *expired = TRUE;
  return G_SOURCE_REMOVE;
}

/* Waits (a bounded time) for the client to close; then cancels whatever remains. */
static void
answerer_stop (Answerer *answerer)
{
  gboolean expired = FALSE;
  guint timeout = g_timeout_add_seconds (SETTLE_TIMEOUT_S, on_settle_timeout, &expired);

  while (answerer->open > 0 && !expired)
    g_main_context_iteration (NULL, TRUE);
  if (!expired)
    g_source_remove (timeout);
  g_cancellable_cancel (answerer->cancellable);
  while (answerer->open > 0)
    g_main_context_iteration (NULL, TRUE);

  g_socket_service_stop (answerer->service);
  g_socket_listener_close (G_SOCKET_LISTENER (answerer->service));
  g_clear_object (&answerer->service);
  g_clear_object (&answerer->cancellable);
}

static void
test_tcp_answerer (gconstpointer data)
{
  const char *method = data;
  Answerer answerer = { 0 };
  g_autofree char *target = NULL;
  Run run = { 0 };

  answerer_start (&answerer);
  target = g_strdup_printf ("127.0.0.1:%u", answerer.port);

  run_sip_load (&run, "--tcp", target, "--connections", "4", "--window", "8",
                "--duration", "2", "--method", method, "--request-uri", "sip:127.0.0.1", NULL);
  answerer_stop (&answerer);

  g_test_message ("the answerer got %" G_GUINT64_FORMAT " requests (%" G_GUINT64_FORMAT
                  " answered with a 100 first)", answerer.requests, answerer.provisionals);
  assert_healthy (&run, 2);
  g_assert_cmpuint (answerer.bad, ==, 0);
  g_assert_cmpuint (result_u64 (&run, "requests"), ==, answerer.requests);
  g_assert_cmpuint (answerer.provisionals, >, 0);
  run_clear (&run);
}

/* ---- servers in child processes: lws-echo and the registrar ---------------------------- */

/* A server that prints "listening ..." lines once it is ready; the rest of its output (the
 * registrar prints a line per request) is read into memory as it comes, so that it never
 * blocks on a full pipe, and is returned by server_stop(). */
typedef struct {
  GSubprocess *process;
  GOutputStream *rest;
  gboolean spliced;
} Server;

static void
on_spliced (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Server *server = user_data;
  g_autoptr(GError) error = NULL;

  g_output_stream_splice_finish (G_OUTPUT_STREAM (source), result, &error);
  g_assert_no_error (error);
  server->spliced = TRUE;
  g_main_context_wakeup (NULL);
}

/* Starts @args (NULL-terminated) and returns its first @n_listening "listening " lines, each
 * without that prefix, in @listening. */
static Server *
server_start (const char *const *args,
              guint              n_listening,
              GPtrArray         *listening)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  Server *server = g_new0 (Server, 1);

  test_wrap_in_valgrind (argv);
  for (const char *const *arg = args; *arg != NULL; arg++)
    g_ptr_array_add (argv, g_strdup (*arg));
  g_ptr_array_add (argv, NULL);

  server->process = g_subprocess_newv ((const char *const *) argv->pdata,
                                       G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server->process));
  while (listening->len < n_listening)
    {
      g_autofree char *line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);

      g_assert_no_error (error);
      g_assert_nonnull (line);
      g_test_message ("%s: %s", args[0], line);
      if (g_str_has_prefix (line, "listening "))
        g_ptr_array_add (listening, g_strdup (line + strlen ("listening ")));
    }

  server->rest = g_memory_output_stream_new_resizable ();
  g_output_stream_splice_async (server->rest, G_INPUT_STREAM (out),
                                G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE |
                                G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                G_PRIORITY_DEFAULT, NULL, on_spliced, server);
  return server;
}

/* SIGTERM; the server must exit 0 (under memcheck: without memory errors or definite leaks).
 * Returns what it printed after its "listening" lines. */
static char *
server_stop (Server *server)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSource) timeout = g_timeout_source_new_seconds (STOP_TIMEOUT_S);
  gsize size;
  char *rest;

  g_subprocess_send_signal (server->process, SIGTERM);
  g_source_set_callback (timeout, on_run_timeout, server->process, NULL);
  g_source_attach (timeout, NULL);
  while (!server->spliced)
    g_main_context_iteration (NULL, TRUE);
  g_source_destroy (timeout);
  g_subprocess_wait (server->process, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (server->process));
  g_assert_cmpint (g_subprocess_get_exit_status (server->process), ==, 0);

  size = g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (server->rest));
  rest = size > 0 ? g_strndup (g_memory_output_stream_get_data (G_MEMORY_OUTPUT_STREAM
                                                                (server->rest)), size)
                  : g_strdup ("");
  g_object_unref (server->rest);
  g_object_unref (server->process);
  g_free (server);
  return rest;
}

static guint
count_lines_with_prefix (const char *text,
                         const char *prefix)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  guint count = 0;

  for (guint i = 0; lines[i] != NULL; i++)
    count += g_str_has_prefix (lines[i], prefix);
  return count;
}

/* ---- over WebSocket, against the raw libwebsockets echo server ------------------------- */

static void
test_ws_echo (void)
{
  const char *const args[] = { LWS_ECHO_PATH, NULL };
  g_autoptr(GPtrArray) listening = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *rest = NULL;
  Server *server;
  Run run = { 0 };

  server = server_start (args, 1, listening);
  g_assert_true (g_str_has_prefix (g_ptr_array_index (listening, 0), "ws://127.0.0.1:"));

  run_sip_load (&run, "--url", g_ptr_array_index (listening, 0), "--connections", "4",
                "--window", "8", "--duration", "1", "--echo", "--size", "500", NULL);
  rest = server_stop (server);

  assert_healthy (&run, 1);
  g_assert_nonnull (strstr (run.out, "requests padded to         500 bytes"));
  g_assert_cmpstr (rest, ==, "");
  run_clear (&run);
}

#ifdef HAVE_SOFIA_WS_REGISTRAR
/* ---- the stateful relay: MESSAGE through the registrar to registered callees ------------ */

static void
test_relay (gconstpointer data)
{
  const char *transport = data;
  const char *const args[] = { g_getenv ("SOFIA_WS_REGISTRAR"),
                               "--listen", "sip:127.0.0.1:0;transport=ws",
                               "--listen", "sip:127.0.0.1:0;transport=tcp", NULL };
  g_autoptr(GPtrArray) listening = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *suffix = g_strdup_printf (";transport=%s", transport);
  g_autofree char *target = NULL;
  g_autofree char *rest = NULL;
  Server *server;
  Run run = { 0 };

  g_assert_nonnull (args[0]);
  server = server_start (args, 2, listening);
  /* "sip:127.0.0.1:PORT;transport=T" */
  for (guint i = 0; i < listening->len; i++)
    {
      const char *line = g_ptr_array_index (listening, i);

      if (g_str_has_suffix (line, suffix))
        {
          g_autofree char *host_port = g_strndup (line + strlen ("sip:"),
                                                  strlen (line) - strlen ("sip:") -
                                                  strlen (suffix));

          target = g_str_equal (transport, "ws") ? g_strdup_printf ("ws://%s/", host_port)
                                                 : g_steal_pointer (&host_port);
        }
    }
  g_assert_nonnull (target);

  run_sip_load (&run, g_str_equal (transport, "ws") ? "--url" : "--tcp", target,
                "--connections", "4", "--window", "4", "--duration", "1",
                "--method", "MESSAGE", "--callees", "2", NULL);
  rest = server_stop (server);

  assert_healthy (&run, 1);
  g_assert_cmpuint (result_u64 (&run, "callees"), ==, 2);
  g_assert_cmpuint (result_u64 (&run, "relayed"), ==, result_u64 (&run, "answered"));
  /* The registrar's own account: two bindings, and every MESSAGE relayed and answered. */
  g_assert_cmpuint (count_lines_with_prefix (rest, "REGISTER callee-"), ==, 2);
  g_assert_cmpuint (count_lines_with_prefix (rest, "MESSAGE relayed: 200 "), ==,
                    result_u64 (&run, "answered"));
  run_clear (&run);
}
#endif

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/sip-load/ws/kamailio", test_ws_kamailio);
  g_test_add_data_func ("/sip-load/ws/refused", GINT_TO_POINTER (FALSE), test_refused);
  g_test_add_data_func ("/sip-load/tcp/refused", GINT_TO_POINTER (TRUE), test_refused);
  g_test_add_data_func ("/sip-load/tcp/options", "OPTIONS", test_tcp_answerer);
  g_test_add_data_func ("/sip-load/tcp/message", "MESSAGE", test_tcp_answerer);
  g_test_add_func ("/sip-load/ws/echo", test_ws_echo);
#ifdef HAVE_SOFIA_WS_REGISTRAR
  g_test_add_data_func ("/sip-load/ws/relay", "ws", test_relay);
  g_test_add_data_func ("/sip-load/tcp/relay", "tcp", test_relay);
#endif

  return g_test_run ();
}
