/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Issue 14, more than one core: `sofia-ws-registrar --workers 2`, two worker processes each
 * with its own root, agent and ws listener on the same port (SO_REUSEPORT). Many WebSocket
 * clients are spread over both workers (each names its pid on the line of every request it
 * answers), SIGTERM stops the supervisor and both workers cleanly, a worker that dies is
 * reported and replaced, and a supervisor that is killed takes its workers along. Under the
 * valgrind setup the supervisor and its forked workers all run under memcheck; a worker with
 * an error or a leak makes the supervisor exit non-zero. */
#include <sofia-ws/sofia-ws.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "support/registrar-peer.h"
#include "support/sip-text.h"

#define N_CLIENTS 40

typedef struct {
  guint answered;                 /* 200s to the clients' OPTIONS */
  guint connected;
} Clients;

static void
on_client_message (SofiaWsTransport *transport, const char *message, Clients *clients)
{
  if (sip_text_status (message) == 200)
    clients->answered++;
}

static void
on_client_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Clients *clients = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *request = NULL;
  g_autofree char *call_id = g_strdup_printf ("workers-%p", (void *) source);

  g_assert_true (sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result, &error));
  g_assert_no_error (error);
  clients->connected++;
  request = sip_text_request ("OPTIONS", "sip:127.0.0.1", "probe", "sip:127.0.0.1", call_id, 1,
                              NULL, NULL);
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (source), request, NULL, NULL, NULL, NULL);
}

static void
iterate (gpointer data)
{
  g_main_context_iteration (NULL, FALSE);
  g_usleep (1000);
}

/* @n WebSocket clients on their own connections to @port, each sending one OPTIONS and
 * waiting for its 200; they stay connected (returned) until the caller frees them. */
static GPtrArray *
serve_clients (guint16 port,
               guint   n)
{
  GPtrArray *sockets = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/", port);
  Clients *clients = g_new0 (Clients, 1);
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  for (guint i = 0; i < n; i++)
    {
      SofiaWsWebSocket *ws = sofia_ws_websocket_new (url);

      g_signal_connect (ws, "message", G_CALLBACK (on_client_message), clients);
      sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (ws), NULL, NULL, on_client_connected,
                                        clients);
      g_ptr_array_add (sockets, ws);
    }
  while (clients->answered < n)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_cmpuint (clients->connected, ==, n);
  for (guint i = 0; i < sockets->len; i++)
    g_signal_handlers_disconnect_by_data (sockets->pdata[i], clients);
  g_free (clients);
  return sockets;
}

/* The pid of "worker @number pid P" (the next such line of the registrar). */
static pid_t
read_worker_pid (RegistrarPeer *registrar,
                 guint          number)
{
  g_autofree char *prefix = g_strdup_printf ("worker %u pid ", number);
  g_autofree char *line = registrar_peer_read_line (registrar, prefix, iterate, NULL);
  char *end = NULL;
  gint64 pid = g_ascii_strtoll (line + strlen (prefix), &end, 10);

  g_assert_cmpint (pid, >, 0);
  g_assert_cmpstr (end, ==, "");
  return (pid_t) pid;
}

/* The parent pid and state letter of @pid from /proc; FALSE when there is no such process. */
static gboolean
process_status (pid_t  pid,
                pid_t *parent,
                char  *state)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *text = NULL;
  const char *after_name;
  int ppid = 0;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return FALSE;
  /* "PID (COMM) STATE PPID ...": the name may hold spaces and parentheses. */
  after_name = strrchr (text, ')');
  g_assert_nonnull (after_name);
  g_assert_cmpint (sscanf (after_name + 1, " %c %d", state, &ppid), ==, 2);
  *parent = ppid;
  return TRUE;
}

/* Gone: no such process, or a zombie waiting for an init that does not reap. */
static gboolean
process_gone (pid_t pid)
{
  pid_t parent;
  char state;

  return !process_status (pid, &parent, &state) || state == 'Z' || state == 'X';
}

static void
assert_worker_of (pid_t worker,
                  pid_t supervisor)
{
  pid_t parent = 0;
  char state = 0;

  g_assert_true (process_status (worker, &parent, &state));
  g_assert_cmpint (parent, ==, supervisor);
}

static const char *const two_workers[] = {
  "--listen", "sip:127.0.0.1:0;transport=ws", "--workers", "2", NULL
};

/* The clients' requests counted per worker pid, from the registrar's "worker N pid P:
 * OPTIONS from WS ...: 200" lines, until @n of them. */
static GHashTable *
count_answers (RegistrarPeer *registrar,
               guint          n)
{
  GHashTable *per_pid = g_hash_table_new (NULL, NULL);
  guint seen = 0;

  while (seen < n)
    {
      g_autofree char *line = registrar_peer_read_line (registrar, "worker ", iterate, NULL);
      const char *pid_at = strstr (line, " pid ");
      gint64 pid;

      if (strstr (line, ": OPTIONS from WS 127.0.0.1:") == NULL)
        continue;
      g_assert_true (g_str_has_suffix (line, ": 200"));
      g_assert_nonnull (pid_at);
      pid = g_ascii_strtoll (pid_at + 5, NULL, 10);
      g_hash_table_insert (per_pid, GINT_TO_POINTER ((int) pid),
                           GUINT_TO_POINTER (GPOINTER_TO_UINT (
                             g_hash_table_lookup (per_pid, GINT_TO_POINTER ((int) pid))) + 1));
      seen++;
    }
  return per_pid;
}

static guint
answers_of (GHashTable *per_pid,
            pid_t       pid)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (per_pid, GINT_TO_POINTER ((int) pid)));
}

/* 40 connections, each accepted by one worker or the other (all 40 by one: a chance of
 * 2^-39), every request answered; SIGTERM: exit 0, both workers gone. */
static void
test_spread (void)
{
  RegistrarPeer *registrar = registrar_peer_start (two_workers);
  pid_t supervisor = registrar_peer_get_pid (registrar);
  pid_t first = read_worker_pid (registrar, 1), second = read_worker_pid (registrar, 2);
  g_autoptr(GPtrArray) clients = NULL;
  g_autoptr(GHashTable) per_pid = NULL;

  assert_worker_of (first, supervisor);
  assert_worker_of (second, supervisor);
  g_assert_cmpint (first, !=, second);

  clients = serve_clients (registrar_peer_get_port (registrar, "ws"), N_CLIENTS);
  per_pid = count_answers (registrar, N_CLIENTS);
  g_test_message ("worker 1 (pid %d) answered %u, worker 2 (pid %d) %u", (int) first,
                  answers_of (per_pid, first), (int) second, answers_of (per_pid, second));
  g_assert_cmpuint (answers_of (per_pid, first) + answers_of (per_pid, second), ==, N_CLIENTS);
  g_assert_cmpuint (answers_of (per_pid, first), >, 0);
  g_assert_cmpuint (answers_of (per_pid, second), >, 0);

  /* The clients still connected: each worker closes its own with 1001 and exits 0. */
  registrar_peer_stop (registrar);
  g_assert_true (process_gone (first));
  g_assert_true (process_gone (second));
}

/* A worker killed is reported, a new one takes its place on the same port, and the
 * supervisor's exit status says a worker died. */
static void
test_worker_dies (void)
{
  RegistrarPeer *registrar = registrar_peer_start (two_workers);
  pid_t supervisor = registrar_peer_get_pid (registrar);
  pid_t first = read_worker_pid (registrar, 1), second = read_worker_pid (registrar, 2);
  g_autofree char *died_prefix = g_strdup_printf ("worker 2 pid %d died (", (int) second);
  g_autofree char *died = NULL;
  g_autoptr(GPtrArray) clients = NULL;
  g_autoptr(GHashTable) per_pid = NULL;
  pid_t replacement;

  g_assert_cmpint (kill (second, SIGKILL), ==, 0);
  died = registrar_peer_read_line (registrar, died_prefix, iterate, NULL);
  g_assert_nonnull (strstr (died, "killed by signal 9"));
  replacement = read_worker_pid (registrar, 2);
  g_assert_cmpint (replacement, !=, second);
  assert_worker_of (replacement, supervisor);

  clients = serve_clients (registrar_peer_get_port (registrar, "ws"), N_CLIENTS);
  per_pid = count_answers (registrar, N_CLIENTS);
  g_assert_cmpuint (answers_of (per_pid, first) + answers_of (per_pid, replacement), ==,
                    N_CLIENTS);
  g_assert_cmpuint (answers_of (per_pid, replacement), >, 0);

  g_assert_cmpint (registrar_peer_terminate (registrar), ==, 1);
  g_assert_true (process_gone (first));
  g_assert_true (process_gone (replacement));
}

/* A supervisor killed (no chance to stop its workers) takes them along: each gets SIGTERM. */
static void
test_supervisor_killed (void)
{
  RegistrarPeer *registrar = registrar_peer_start (two_workers);
  pid_t first = read_worker_pid (registrar, 1), second = read_worker_pid (registrar, 2);
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  g_assert_cmpint (kill (registrar_peer_get_pid (registrar), SIGKILL), ==, 0);
  while (!process_gone (first) || !process_gone (second))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (10000);
    }
  g_assert_cmpint (registrar_peer_terminate (registrar), ==, -SIGKILL);
}

/* tcp cannot be shared (Sofia binds it without SO_REUSEPORT): refused with a reason. */
static void
test_tcp_refused (void)
{
  const char *binary = g_getenv ("SOFIA_WS_REGISTRAR");
  const char *argv[] = { binary, "--listen", "sip:127.0.0.1:0;transport=ws", "--listen",
                         "sip:127.0.0.1:0;transport=tcp", "--workers", "2", NULL };
  const char *bad_count[] = { binary, "--listen", "sip:127.0.0.1:0;transport=ws", "--workers",
                              "0", NULL };
  g_autofree char *err = NULL, *err_count = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;

  g_assert_nonnull (binary);
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err,
                &status, &error);
  g_assert_no_error (error);
  g_test_message ("%s", err);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 2);
  g_assert_nonnull (strstr (err, "transport=tcp cannot be shared by the workers"));

  g_spawn_sync (NULL, (char **) bad_count, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                &err_count, &status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 2);
  g_assert_nonnull (strstr (err_count, "--workers takes a number"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/workers/spread", test_spread);
  g_test_add_func ("/workers/worker-dies", test_worker_dies);
  g_test_add_func ("/workers/supervisor-killed", test_supervisor_killed);
  g_test_add_func ("/workers/tcp-refused", test_tcp_refused);
  return g_test_run ();
}
