/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sofia-ws-registrar: a SIP registrar and stateful relay on Sofia-SIP's NTA, serving SIP over
 * WebSocket (RFC 7118) through sofia-ws, and SIP over TCP or UDP beside it.
 *
 *   sofia-ws-registrar --listen 'sip:127.0.0.1:5066;transport=ws' \
 *                      --listen 'sip:127.0.0.1:5060;transport=tcp' [--verbose]
 *
 * Prints "listening <url>" for each listener once it is ready (port 0 becomes the port the
 * system chose), then serves until SIGTERM or SIGINT (then closes the WebSockets with 1001):
 *   REGISTER  stores the Contacts of the To user (Expires or ;expires=, 0 removes them) with the
 *             connection the request came on, and answers 200 with the bindings;
 *   OPTIONS   without a user: 200, with Allow, Accept and Supported;
 *   any request to a registered user: relayed statefully over that user's own connection
 *             (NTATAG_TPORT), with a Record-Route carrying flow tokens for in-dialog requests;
 *             see registrar-core.c.
 * Each request prints one line (--quiet: none, for benchmarks); --verbose also prints every
 * WebSocket transport event.
 * --workers N runs N worker processes, each with its own root, agent, registrar and ws/wss
 * listeners on the same ports (SO_REUSEPORT: the kernel spreads the connections over them), to
 * use N cores. Each worker has its own bindings: a request reaches a user registered through
 * another worker only by chance (see run_workers()).
 * Sofia's own dumps work as usual: TPORT_LOG=1 prints every SIP message, TPORT_WS_DEBUG=5 the
 * ws module's log.
 *
 * Built with -DSOFIA_WS_EDGE it is sofia-ws-edge, the same core in edge mode (registrar-core.c):
 *
 *   sofia-ws-edge --listen 'sip:127.0.0.1:5066;transport=ws' \
 *                 --upstream 'sip:127.0.0.1:5060;transport=tcp' [--config /etc/sofia-ws/edge.conf]
 *
 * WebSocket clients' requests go to the upstream SIP server (Path and Record-Route carry their
 * flow tokens) and the server's requests come back over the clients' connections; requests
 * to transport=ws/wss targets go over the edge's own connections to them. Without a listener
 * of the upstream's transport, one is added on the host of the first --listen (port 0), and
 * its "listening" line comes last.
 */
#define _GNU_SOURCE 1                   /* pipe2() */
#include "registrar-core.h"

#include <sofia-ws/sofia-ws-tport.h>

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

/* The program: its loop, root, agent and the registrar on them. */
typedef struct {
  su_root_t *root;
  GMainLoop *loop;
  nta_agent_t *agent;
  Registrar *registrar;
  GPtrArray *listeners;           /* SofiaWsListener of the ws and wss transports */
  guint stopping;                 /* listeners whose connections are still closing */
  gint64 stop_deadline;           /* monotonic microseconds */
} Program;

/* Bounds the wait for the close handshakes on SIGTERM (the listener's own grace is 2 s). */
#define STOP_WAIT_US (3 * G_USEC_PER_SEC)

static gboolean quiet;            /* --quiet: no line per request */

#ifdef SOFIA_WS_EDGE
#define PROGRAM "sofia-ws-edge"
#define CONFIG_GROUP "edge"
#else
#define PROGRAM "sofia-ws-registrar"
#endif
/* In a worker of --workers: where its "listening" lines go (the supervisor reads them), and
 * what starts each of its lines; -1 and "" otherwise. */
static int ready_fd = -1;
static char *line_prefix;

/* ---- transport events (--verbose) ---------------------------------------------------------- */

static void
print_event (SofiaWsTransport *transport,
             const char       *event,
             const char       *detail)
{
  g_print ("%sws %s: %s%s%s\n", line_prefix,
           sofia_ws_websocket_get_remote_address (SOFIA_WS_WEBSOCKET (transport)), event,
           detail ? " " : "", detail ? detail : "");
}

static void
on_ws_message (SofiaWsTransport *transport, const char *message, gpointer data)
{
  g_autofree char *first = g_strndup (message, strcspn (message, "\r\n"));

  print_event (transport, "message", first);
}

static void
on_ws_message_sent (SofiaWsTransport *transport, const char *message, gpointer data)
{
  g_autofree char *first = g_strndup (message, strcspn (message, "\r\n"));

  print_event (transport, "message-sent", first);
}

static void
on_ws_event (SofiaWsTransport *transport, gpointer event)
{
  print_event (transport, event, NULL);
}

static void
on_ws_error (SofiaWsTransport *transport, const GError *error, gpointer data)
{
  print_event (transport, "transport-error", error->message);
}

static void
on_accepted (SofiaWsListener *listener, SofiaWsWebSocket *websocket, gpointer data)
{
  print_event (SOFIA_WS_TRANSPORT (websocket), "connected", "(accepted)");
  g_signal_connect (websocket, "message", G_CALLBACK (on_ws_message), NULL);
  g_signal_connect (websocket, "message-sent", G_CALLBACK (on_ws_message_sent), NULL);
  g_signal_connect (websocket, "disconnecting", G_CALLBACK (on_ws_event), "disconnecting");
  g_signal_connect (websocket, "disconnected", G_CALLBACK (on_ws_event), "disconnected");
  g_signal_connect (websocket, "transport-error", G_CALLBACK (on_ws_error), NULL);
}

/* ---- main ---------------------------------------------------------------------------------- */

/* --plain-root: Sofia's own poll/epoll loop instead of GLib's; SIGTERM is noticed by a timer. */
static volatile sig_atomic_t stop_requested;

static void
on_stop_signal (int signal_number)
{
  stop_requested = 1;
}

static void
on_stop_check (su_root_magic_t *magic, su_timer_t *timer, su_timer_arg_t *arg)
{
  if (stop_requested)
    su_root_break ((su_root_t *) arg);
}

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_CONTINUE;
}

/* ---- stopping: every WebSocket closed with 1001, then exit ---------------------------------- */

static void
on_listener_stopped (GObject *source, GAsyncResult *result, gpointer data)
{
  Program *self = data;

  sofia_ws_listener_stop_finish (SOFIA_WS_LISTENER (source), result, NULL);
  self->stopping--;
  if (self->stopping == 0 && self->loop != NULL)
    g_main_loop_quit (self->loop);
}

static gboolean
on_stop_timeout (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static void
on_stop_wait (su_root_magic_t *magic, su_timer_t *timer, su_timer_arg_t *arg)
{
  Program *self = (Program *) arg;

  if (self->stopping == 0 || g_get_monotonic_time () >= self->stop_deadline)
    su_root_break (self->root);
}

/* Stops the ws listeners, which close their connections with 1001 (going away), and runs the
 * loop until they are closed or STOP_WAIT_US has passed. */
static void
stop_listeners (Program  *self,
                gboolean  plain_root)
{
  if (self->listeners->len == 0)
    return;
  self->stopping = self->listeners->len;
  self->stop_deadline = g_get_monotonic_time () + STOP_WAIT_US;
  for (guint i = 0; i < self->listeners->len; i++)
    sofia_ws_listener_stop_async (self->listeners->pdata[i], NULL, on_listener_stopped, self);
  if (plain_root)
    {
      su_timer_t *wait = su_timer_create (su_root_task (self->root), 20);

      su_timer_set_for_ever (wait, on_stop_wait, (su_timer_arg_t *) self);
      if (self->stopping > 0)
        su_root_run (self->root);
      su_timer_destroy (wait);
    }
  else if (self->stopping > 0)
    {
      GSource *timeout = g_timeout_source_new (STOP_WAIT_US / 1000);

      g_source_set_callback (timeout, on_stop_timeout, self->loop, NULL);
      g_source_attach (timeout, NULL);
      g_main_loop_run (self->loop);
      g_source_destroy (timeout);
      g_source_unref (timeout);
    }
}

static gboolean
is_ws_url (const char *text)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  url_t *url = url_make (home, text);
  char transport[16] = "";
  gboolean ws = FALSE;

  if (url != NULL && url->url_params != NULL &&
      url_param (url->url_params, "transport", transport, sizeof transport) > 0)
    ws = g_ascii_strcasecmp (transport, "ws") == 0 || g_ascii_strcasecmp (transport, "wss") == 0;
  su_home_deinit (home);
  return ws;
}

#ifdef SOFIA_WS_EDGE
/* Options the command line left unset, from the [edge] group of a GKeyFile:
 *   [edge]
 *   listen=sip:0.0.0.0:443;transport=wss;sip:127.0.0.1:5080;transport=tcp
 * (a list: entries separated by ';' would split URLs, so the separator is ','); unknown keys
 * are errors, so that a misspelt one is not silently ignored. */
typedef struct {
  const char *key;
  GOptionArg type;
  gpointer value;
} ConfigKey;

static gboolean
load_config (const char      *file,
             const ConfigKey *keys,
             guint            n_keys,
             GError         **error)
{
  g_autoptr(GKeyFile) config = g_key_file_new ();
  g_auto(GStrv) names = NULL;

  g_key_file_set_list_separator (config, ',');
  if (!g_key_file_load_from_file (config, file, G_KEY_FILE_NONE, error))
    return FALSE;
  names = g_key_file_get_keys (config, CONFIG_GROUP, NULL, error);
  if (names == NULL)
    return FALSE;
  for (char **name = names; *name != NULL; name++)
    {
      const ConfigKey *key = NULL;
      g_autoptr(GError) local = NULL;

      for (guint i = 0; i < n_keys && key == NULL; i++)
        if (g_str_equal (keys[i].key, *name))
          key = &keys[i];
      if (key == NULL)
        {
          g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                       "%s: unknown key \"%s\" in [%s]", file, *name, CONFIG_GROUP);
          return FALSE;
        }
      switch (key->type)
        {
        case G_OPTION_ARG_STRING_ARRAY:
          if (*(char ***) key->value == NULL)
            *(char ***) key->value = g_key_file_get_string_list (config, CONFIG_GROUP, *name,
                                                                  NULL, &local);
          break;
        case G_OPTION_ARG_STRING:
        case G_OPTION_ARG_FILENAME:
          if (*(char **) key->value == NULL)
            *(char **) key->value = g_key_file_get_string (config, CONFIG_GROUP, *name, &local);
          break;
        case G_OPTION_ARG_INT:
          if (*(gint *) key->value == -1)
            *(gint *) key->value = g_key_file_get_integer (config, CONFIG_GROUP, *name, &local);
          break;
        case G_OPTION_ARG_NONE:
          if (!*(gboolean *) key->value)
            *(gboolean *) key->value = g_key_file_get_boolean (config, CONFIG_GROUP, *name,
                                                               &local);
          break;
        default:
          g_assert_not_reached ();
        }
      if (local != NULL)
        {
          g_propagate_prefixed_error (error, g_steal_pointer (&local), "%s: ", file);
          return FALSE;
        }
    }
  return TRUE;
}

/* Sofia's own tls transport (the tls upstream, a tls --listen) takes its key, certificate and
 * CAs from one directory: agent.pem (key and certificate), cafile.pem (the CAs). Outgoing
 * connections are verified: the chain, the dates, and the name (the upstream's host must be
 * among the certificate's names); a connection that fails any of them is closed before a
 * request goes over it. Sofia closes it without reporting an error to the requests waiting
 * for it unless told to (TPTAG_SDWN_ERROR): they then fail at once (503) instead of at the end
 * of their transactions (timer F, 32 s). */
#define SIP_TLS_TAGS(dir) \
  TAG_IF ((dir) != NULL, TPTAG_CERTIFICATE (dir)), \
  TAG_IF ((dir) != NULL, TPTAG_TLS_VERIFY_POLICY (TPTLS_VERIFY_SUBJECTS_OUT)), \
  TAG_IF ((dir) != NULL, TPTAG_SDWN_ERROR (1))

/* A tls upstream needs Sofia's directory, with the CAs that verify it. */
static gboolean
check_sip_tls_dir (const char  *upstream,
                   const char  *dir,
                   GError     **error)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  url_t *up = url_make (home, upstream);
  char proto[8] = "";
  gboolean tls;
  g_autofree char *agent = NULL, *cafile = NULL;

  tls = up != NULL && (up->url_type == url_sips ||
                       (up->url_params != NULL &&
                        url_param (up->url_params, "transport", proto, sizeof proto) > 0 &&
                        g_ascii_strcasecmp (proto, "tls") == 0));
  su_home_deinit (home);
  if (!tls)
    return TRUE;
  if (dir == NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "the tls upstream %s needs --sip-tls-dir (agent.pem, cafile.pem)", upstream);
      return FALSE;
    }
  agent = g_build_filename (dir, "agent.pem", NULL);
  cafile = g_build_filename (dir, "cafile.pem", NULL);
  if (!g_file_test (agent, G_FILE_TEST_IS_REGULAR) || !g_file_test (cafile, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "--sip-tls-dir %s: needs agent.pem (the edge's key and certificate) and "
                   "cafile.pem (the CAs of the upstream's certificate)", dir);
      return FALSE;
    }
  return TRUE;
}

/* The edge's address in Path and Record-Route is its listener of the upstream's transport:
 * without one among --listen, one on the host of the first --listen, port 0. */
static tport_t *
add_upstream_listener (nta_agent_t  *agent,
                       const char   *upstream,
                       const char   *first_listen,
                       gint          idle,
                       const char   *sip_tls_dir,
                       gboolean     *added)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  url_t *up = url_make (home, upstream);
  url_t *first = url_make (home, first_listen);
  char proto[8] = "";
  tport_t *found = NULL;
  char *url;

  *added = FALSE;
  if (up == NULL || up->url_host == NULL || first == NULL || first->url_host == NULL)
    goto out;
  if (up->url_params == NULL || url_param (up->url_params, "transport", proto, sizeof proto) == 0)
    g_strlcpy (proto, up->url_type == url_sips ? "tls" : "udp", sizeof proto);
  for (tport_t *tp = tport_primaries (nta_agent_tports (agent)); tp && !found; tp = tport_next (tp))
    if (g_ascii_strcasecmp (tport_name (tp)->tpn_proto, proto) == 0)
      found = tp;
  if (found != NULL)
    goto out;
  /* (NTA binds tls for a sips: URL only.) */
  url = su_sprintf (home, "%s:%s:0;transport=%s",
                    g_ascii_strcasecmp (proto, "tls") == 0 ? "sips" : "sip", first->url_host, proto);
  if (nta_agent_add_tport (agent, URL_STRING_MAKE (url),
                           TAG_IF (idle >= 0, TPTAG_IDLE ((unsigned) idle)),
                           SIP_TLS_TAGS (sip_tls_dir), TAG_END ()) < 0)
    goto out;
  for (tport_t *tp = tport_primaries (nta_agent_tports (agent)); tp && !found; tp = tport_next (tp))
    if (g_ascii_strcasecmp (tport_name (tp)->tpn_proto, proto) == 0)
      found = tp;
  *added = found != NULL;
out:
  su_home_deinit (home);
  return found;
}
#endif
/* A "listening <url>" line: on stdout, or in a worker to the supervisor. */
static void announce (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
announce (const char *format,
          ...)
{
  va_list args;
  g_autofree char *line = NULL;

  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);
  if (ready_fd >= 0)
    {
      gsize done = 0, length = strlen (line);

      while (done < length)
        {
          ssize_t n = write (ready_fd, line + done, length - done);

          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            break;
          done += (gsize) n;
        }
    }
  else
    g_print ("%s", line);
}

/* ---- --workers N: N processes on the same ports --------------------------------------------- */

/* The supervisor forks the workers before anything else (no GLib loop, thread, Sofia root or
 * socket exists yet in it), so each worker starts as a fresh registrar with its own su_root,
 * NTA agent, registrar tables and ws/wss listeners, which share their ports with
 * WSTAG_REUSE_PORT (SO_REUSEPORT). The kernel spreads new connections over the workers by
 * their addresses; a connection stays with its worker. The first worker starts alone, so
 * that port 0 becomes a port the others then bind too.
 *
 * What a worker knows is its own: a REGISTER is answered by the worker that got its
 * connection and its binding lives there, and a request for that user reaching another worker
 * gets 404 (or 480). So N workers suit what needs no shared state (OPTIONS, REGISTER,
 * keep-alives, relays between users that happen to share a worker); a deployment relaying
 * between users needs one registrar, or shared bindings, which this example does not have.
 *
 * tcp and udp are refused: Sofia binds them itself, without SO_REUSEPORT. */

#define MAX_WORKERS 64
#define WORKERS_STOP_WAIT_S 30

static char *
describe_wait_status (int status)
{
  if (WIFEXITED (status))
    return g_strdup_printf ("exit status %d", WEXITSTATUS (status));
  if (WIFSIGNALED (status))
    return g_strdup_printf ("killed by signal %d (%s)", WTERMSIG (status),
                            g_strsignal (WTERMSIG (status)));
  return g_strdup_printf ("wait status %d", status);
}

/* @url_text with the port of @listening, a worker's "listening sip:HOST:PORT;transport=T". */
static char *
with_port_of (const char *url_text,
              const char *listening)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  const char *end = strstr (listening, ";transport=");
  const char *colon = end != NULL ? g_strrstr_len (listening, end - listening, ":") : NULL;
  url_t *url = url_hdup (home, url_make (home, url_text));
  char *result = NULL;

  if (url != NULL && colon != NULL)
    {
      url->url_port = su_strndup (home, colon + 1, end - colon - 1);
      result = g_strdup (url_as_string (home, url));
    }
  su_home_deinit (home);
  return result;
}

/* Forks worker @number to listen on @urls. Returns 0 in the worker (which goes on as a
 * registrar), and in the supervisor the worker's pid once it listens, its "listening" lines in
 * @lines (if not NULL), or -1 once it has exited without listening. */
static pid_t
start_worker (guint           number,
              char          **urls,
              const sigset_t *worker_mask,
              GPtrArray      *lines)
{
  g_autoptr(GString) text = g_string_new (NULL);
  g_auto(GStrv) split = NULL;
  pid_t pid, supervisor = getpid ();
  guint listening = 0;
  char buffer[512];
  int fds[2], status;
  ssize_t n;

  if (pipe2 (fds, O_CLOEXEC) != 0)
    {
      g_printerr (PROGRAM ": cannot start worker %u: %s\n", number, g_strerror (errno));
      return -1;
    }
  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  if (pid < 0)
    {
      g_printerr (PROGRAM ": cannot start worker %u: %s\n", number, g_strerror (errno));
      close (fds[0]);
      close (fds[1]);
      return -1;
    }
  if (pid == 0)
    {
      close (fds[0]);
      /* A supervisor that goes, even killed, takes its workers along (each stops as on
       * SIGTERM). */
      if (prctl (PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid () != supervisor)
        _exit (1);
      sigprocmask (SIG_SETMASK, worker_mask, NULL);
      ready_fd = fds[1];
      line_prefix = g_strdup_printf ("worker %u pid %d: ", number, (int) getpid ());
      return 0;
    }

  close (fds[1]);
  while ((n = read (fds[0], buffer, sizeof buffer)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        break;
      g_string_append_len (text, buffer, n);
    }
  close (fds[0]);
  split = g_strsplit (text->str, "\n", -1);
  for (char **line = split; *line != NULL; line++)
    if (g_str_has_prefix (*line, "listening "))
      {
        listening++;
        if (lines != NULL)
          g_ptr_array_add (lines, g_strdup (*line));
      }
  if (listening == g_strv_length (urls))
    return pid;

  /* It closed the pipe before listening on everything: it has failed, and says why. */
  kill (pid, SIGTERM);
  if (waitpid (pid, &status, 0) == pid)
    {
      g_autofree char *how = describe_wait_status (status);

      g_printerr (PROGRAM ": worker %u (pid %d) did not start: %s\n", number,
                  (int) pid, how);
    }
  return -1;
}

static void
stop_workers (const pid_t *workers,
              guint        n_workers)
{
  for (guint i = 0; i < n_workers; i++)
    if (workers[i] > 0)
      kill (workers[i], SIGTERM);
}

/* --workers N: the supervisor. In a worker it returns TRUE with the URLs to listen on in @urls;
 * in the supervisor, once every worker has gone, FALSE with the exit status in @status: 0 when
 * every worker stopped cleanly on SIGTERM (or SIGINT) and none died before. A worker that dies
 * is reported on stdout ("worker I pid P died (...)") and replaced, and makes the status 1. */
static gboolean
run_workers (guint    n_workers,
             char   **listen,
             char  ***urls,
             int     *status)
{
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  g_auto(GStrv) shared = NULL;    /* @listen with the ports the first worker bound */
  pid_t workers[MAX_WORKERS] = { 0 };
  guint alive = 0;
  gboolean stopping = FALSE, failed = FALSE;
  sigset_t handled, previous;

  sigemptyset (&handled);
  sigaddset (&handled, SIGTERM);
  sigaddset (&handled, SIGINT);
  sigaddset (&handled, SIGCHLD);
  sigprocmask (SIG_BLOCK, &handled, &previous);

  for (guint i = 0; i < n_workers && !failed; i++)
    {
      pid_t pid = start_worker (i + 1, i == 0 ? listen : shared, &previous,
                                i == 0 ? lines : NULL);

      if (pid == 0)
        {
          *urls = g_strdupv (i == 0 ? listen : shared);
          return TRUE;
        }
      if (pid < 0)
        {
          failed = TRUE;
          stopping = TRUE;
          stop_workers (workers, n_workers);
          break;
        }
      workers[i] = pid;
      alive++;
      if (i == 0)
        {
          for (guint u = 0; listen[u] != NULL; u++)
            {
              g_autofree char *url = with_port_of (listen[u], lines->pdata[u]);

              g_strv_builder_add (builder, url != NULL ? url : listen[u]);
            }
          shared = g_strv_builder_end (builder);
        }
    }
  if (!failed)
    {
      for (guint i = 0; i < lines->len; i++)
        g_print ("%s\n", (char *) lines->pdata[i]);
      for (guint i = 0; i < n_workers; i++)
        g_print ("worker %u pid %d\n", i + 1, (int) workers[i]);
    }

  while (alive > 0)
    {
      struct timespec timeout = { WORKERS_STOP_WAIT_S, 0 };
      siginfo_t info;
      int signal_number, wait_status;
      pid_t pid;

      signal_number = stopping ? sigtimedwait (&handled, &info, &timeout)
                               : sigwaitinfo (&handled, &info);
      if (signal_number < 0)
        {
          if (errno == EAGAIN)
            {
              g_printerr (PROGRAM ": workers still running %d s after SIGTERM: "
                          "killed\n", WORKERS_STOP_WAIT_S);
              for (guint i = 0; i < n_workers; i++)
                if (workers[i] > 0)
                  kill (workers[i], SIGKILL);
              failed = TRUE;
            }
          continue;
        }
      if (signal_number != SIGCHLD)
        {
          if (!stopping)
            {
              g_print ("stopping\n");
              stopping = TRUE;
              stop_workers (workers, n_workers);
            }
          continue;
        }
      while ((pid = waitpid (-1, &wait_status, WNOHANG)) > 0)
        {
          g_autofree char *how = describe_wait_status (wait_status);
          guint i;

          for (i = 0; i < n_workers && workers[i] != pid; i++)
            ;
          if (i == n_workers)
            continue;
          workers[i] = 0;
          alive--;
          if (stopping)
            {
              if (!WIFEXITED (wait_status) || WEXITSTATUS (wait_status) != 0)
                {
                  g_printerr (PROGRAM ": worker %u (pid %d) stopped with %s\n",
                              i + 1, (int) pid, how);
                  failed = TRUE;
                }
              continue;
            }
          failed = TRUE;
          g_print ("worker %u pid %d died (%s): starting another\n", i + 1, (int) pid, how);
          pid = start_worker (i + 1, shared, &previous, NULL);
          if (pid == 0)
            {
              *urls = g_strdupv (shared);
              return TRUE;
            }
          if (pid < 0)
            {
              g_print ("stopping: worker %u could not start again\n", i + 1);
              stopping = TRUE;
              stop_workers (workers, n_workers);
              continue;
            }
          workers[i] = pid;
          alive++;
          g_print ("worker %u pid %d\n", i + 1, (int) pid);
        }
    }
  *status = failed ? 1 : 0;
  return FALSE;
}

int
main (int argc, char **argv)
{
  g_auto(GStrv) listen = NULL;
  g_autofree char *path = NULL, *certificate = NULL, *key = NULL, *origins = NULL;
  gint idle = -1;
  gint max_connections = -1, per_address = -1, partial_bytes = -1, handshake_timeout = -1;
  gboolean verbose = FALSE;
  gboolean plain_root = FALSE;
  gint max_users = REGISTRAR_DEFAULT_MAX_USERS;
  gint max_bindings = REGISTRAR_DEFAULT_MAX_BINDINGS;
  gint max_contacts = REGISTRAR_DEFAULT_MAX_CONTACTS;
#ifdef SOFIA_WS_EDGE
  g_autofree char *upstream = NULL, *config = NULL, *ca_file = NULL, *sip_tls_dir = NULL;
  gint crlf_keepalive = -1;
  gint max_targets = -1, target_idle = -1;
  gboolean added = FALSE;
  tport_t *network = NULL;
  GOptionEntry edge_entries[] = {
    { "upstream", 'u', 0, G_OPTION_ARG_STRING, &upstream,
      "The SIP server every WebSocket client's request goes to, such as "
      "'sip:127.0.0.1:5060;transport=tcp' (udp, tcp or tls)", "URL" },
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
      "Read unset options from the [edge] group of this key file (keys: the long option names)",
      "FILE" },
    { "tls-ca-file", 0, 0, G_OPTION_ARG_FILENAME, &ca_file,
      "PEM file of the CAs trusted for wss targets (default: the system's)", "FILE" },
    { "sip-tls-dir", 0, 0, G_OPTION_ARG_FILENAME, &sip_tls_dir,
      "Sofia's TLS directory for a tls upstream and tls listeners: agent.pem (the edge's key "
      "and certificate), cafile.pem (the CAs the upstream's certificate must chain to)", "DIR" },
    { "crlf-keepalive", 0, 0, G_OPTION_ARG_INT, &crlf_keepalive,
      "Seconds between CRLF keep-alives on connections to ws/wss targets (default 30, 0: none)",
      "S" },
    { "max-targets", 0, 0, G_OPTION_ARG_INT, &max_targets,
      "Connections to ws/wss targets open (or opening) at once; a request for another target "
      "gets 503 (default 64)", "N" },
    { "target-idle", 0, 0, G_OPTION_ARG_INT, &target_idle,
      "Close a connection to a ws/wss target after S seconds without a message or a "
      "registration through it (default 120)", "S" },
    { NULL }
  };
#endif
  gint n_workers = 1;
  g_auto(GStrv) worker_urls = NULL;
  GOptionEntry entries[] = {
    { "listen", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &listen,
      "Listen on URL, such as 'sip:127.0.0.1:5066;transport=ws' (repeatable; tcp, udp, ws, "
      "wss)", "URL" },
    { "path", 0, 0, G_OPTION_ARG_STRING, &path, "HTTP path of the WebSocket service", "PATH" },
    { "allowed-origins", 0, 0, G_OPTION_ARG_STRING, &origins,
      "Origins accepted in WebSocket handshakes (comma-separated)", "LIST" },
    { "tls-certificate", 0, 0, G_OPTION_ARG_FILENAME, &certificate, "PEM certificate for wss",
      "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &key, "PEM private key for wss", "FILE" },
    { "idle", 0, 0, G_OPTION_ARG_INT, &idle,
      "Close connections idle for MS milliseconds (default: Sofia's 30 minutes)", "MS" },
    { "max-connections", 0, 0, G_OPTION_ARG_INT, &max_connections,
      "Connections open at once on each ws/wss listener, 0 for no limit (default 10000)", "N" },
    { "max-connections-per-address", 0, 0, G_OPTION_ARG_INT, &per_address,
      "Connections open at once from one IPv4 address or IPv6 /64, 0 for no limit "
      "(default 256)", "N" },
    { "max-partial-bytes", 0, 0, G_OPTION_ARG_INT, &partial_bytes,
      "Bytes of partly received WebSocket messages all connections of a listener may hold, "
      "0 for no limit (default 64 MiB)", "BYTES" },
    { "handshake-timeout", 0, 0, G_OPTION_ARG_INT, &handshake_timeout,
      "Seconds a new connection has for its TLS and WebSocket handshakes, 0 for no limit "
      "(default 10)", "S" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print every WebSocket transport event",
      NULL },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet,
      "Print no line per request (for benchmarks)", NULL },
    { "plain-root", 0, 0, G_OPTION_ARG_NONE, &plain_root,
      "Run on Sofia's own event loop (su_root_create) instead of GLib's", NULL },
    { "max-users", 0, 0, G_OPTION_ARG_INT, &max_users,
      "Registered users at most (default 100000; past it REGISTER gets 503)", "N" },
    { "max-bindings", 0, 0, G_OPTION_ARG_INT, &max_bindings,
      "Contacts of one user at most (default 10; past it REGISTER gets 403)", "N" },
    { "max-contacts", 0, 0, G_OPTION_ARG_INT, &max_contacts,
      "Contacts in one REGISTER at most (default 10; past it 400)", "N" },
    { "workers", 0, 0, G_OPTION_ARG_INT, &n_workers,
      "Serve with N processes sharing the ws/wss ports (SO_REUSEPORT), to use N cores; each "
      "has its own bindings (default 1)", "N" },
    { NULL }
  };
#ifdef SOFIA_WS_EDGE
  g_autoptr(GOptionContext) options =
    g_option_context_new ("- SIP over WebSocket in front of and behind SIP servers");
#else
  g_autoptr(GOptionContext) options = g_option_context_new ("- SIP registrar over WebSocket");
#endif
  g_autoptr(GError) error = NULL;
  Program self = { 0 };
  RegistrarOptions registrar_options = { 0 };
  GSource *source;
  int status = 0;

  setvbuf (stdout, NULL, _IOLBF, 0);     /* one line at a time for whoever reads us */
#ifdef SOFIA_WS_EDGE
  /* The registrar's tables: the edge keeps none. */
  for (GOptionEntry *entry = entries; entry->long_name != NULL; entry++)
    if (g_str_has_prefix (entry->long_name, "max-users") ||
        g_str_equal (entry->long_name, "workers") ||
        g_str_has_prefix (entry->long_name, "max-bindings") ||
        g_str_has_prefix (entry->long_name, "max-contacts"))
      entry->flags |= G_OPTION_FLAG_HIDDEN;
#endif
  g_option_context_add_main_entries (options, entries, NULL);
#ifdef SOFIA_WS_EDGE
  g_option_context_add_main_entries (options, edge_entries, NULL);
#endif
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr (PROGRAM ": %s\n", error->message);
      return 2;
    }
#ifdef SOFIA_WS_EDGE
  if (config != NULL)
    {
      const ConfigKey keys[] = {
        { "listen", G_OPTION_ARG_STRING_ARRAY, &listen },
        { "upstream", G_OPTION_ARG_STRING, &upstream },
        { "path", G_OPTION_ARG_STRING, &path },
        { "allowed-origins", G_OPTION_ARG_STRING, &origins },
        { "tls-certificate", G_OPTION_ARG_FILENAME, &certificate },
        { "tls-key", G_OPTION_ARG_FILENAME, &key },
        { "tls-ca-file", G_OPTION_ARG_FILENAME, &ca_file },
        { "sip-tls-dir", G_OPTION_ARG_FILENAME, &sip_tls_dir },
        { "idle", G_OPTION_ARG_INT, &idle },
        { "crlf-keepalive", G_OPTION_ARG_INT, &crlf_keepalive },
        { "max-targets", G_OPTION_ARG_INT, &max_targets },
        { "target-idle", G_OPTION_ARG_INT, &target_idle },
        { "max-connections", G_OPTION_ARG_INT, &max_connections },
        { "max-connections-per-address", G_OPTION_ARG_INT, &per_address },
        { "max-partial-bytes", G_OPTION_ARG_INT, &partial_bytes },
        { "handshake-timeout", G_OPTION_ARG_INT, &handshake_timeout },
        { "quiet", G_OPTION_ARG_NONE, &quiet },
        { "verbose", G_OPTION_ARG_NONE, &verbose },
      };

      if (!load_config (config, keys, G_N_ELEMENTS (keys), &error))
        {
          g_printerr (PROGRAM ": %s\n", error->message);
          return 2;
        }
    }
  if (upstream == NULL)
    {
      g_printerr (PROGRAM ": give the --upstream SIP server\n");
      return 2;
    }
  if (!check_sip_tls_dir (upstream, sip_tls_dir, &error))
    {
      g_printerr (PROGRAM ": %s\n", error->message);
      return 2;
    }
  if (crlf_keepalive < -1)
    {
      g_printerr (PROGRAM ": --crlf-keepalive is 0 (none) or more\n");
      return 2;
    }
  if (max_targets == -1)
    max_targets = REGISTRAR_DEFAULT_MAX_TARGETS;
  if (target_idle == -1)
    target_idle = REGISTRAR_DEFAULT_TARGET_IDLE;
  if (max_targets < 1 || target_idle < 1)
    {
      g_printerr (PROGRAM ": --max-targets and --target-idle take a number from 1\n");
      return 2;
    }
#endif
  if (max_connections < -1 || per_address < -1 || partial_bytes < -1 || handshake_timeout < -1)
    {
      g_printerr (PROGRAM ": the limits are 0 (none) or more\n");
      return 2;
    }
  if (max_users < 1 || max_bindings < 1 || max_contacts < 1 || max_contacts > 1000)
    {
      g_printerr (PROGRAM ": --max-users, --max-bindings and --max-contacts take a "
                  "number from 1 (--max-contacts: to 1000)\n");
      return 2;
    }
  if (listen == NULL || listen[0] == NULL)
    {
      g_printerr (PROGRAM ": give at least one --listen URL\n");
      return 2;
    }
  if (n_workers < 1 || n_workers > MAX_WORKERS)
    {
      g_printerr (PROGRAM ": --workers takes a number from 1 to %d\n", MAX_WORKERS);
      return 2;
    }
#ifdef SOFIA_WS_EDGE
  /* A browser's flow token is known to the process holding its connection only, and the
   * edge's network side is tcp or udp, which Sofia binds without SO_REUSEPORT. */
  if (n_workers != 1)
    {
      g_printerr (PROGRAM ": --workers is for sofia-ws-registrar only\n");
      return 2;
    }
#endif
  line_prefix = g_strdup ("");
  if (n_workers > 1)
    {
      for (char **url = listen; *url != NULL; url++)
        if (!is_ws_url (*url))
          {
            g_printerr (PROGRAM ": --workers: %s cannot be shared by the workers (Sofia "
                        "binds tcp and udp without SO_REUSEPORT): listen on ws or wss only\n",
                        *url);
            return 2;
          }
      g_free (line_prefix);
      line_prefix = NULL;
      if (!run_workers ((guint) n_workers, listen, &worker_urls, &status))
        return status;
      /* A worker: line_prefix and ready_fd are set. */
      g_strfreev (listen);
      listen = g_steal_pointer (&worker_urls);
    }

  su_init ();
  self.loop = g_main_loop_new (NULL, FALSE);
  self.listeners = g_ptr_array_new_with_free_func (g_object_unref);
  if (plain_root)
    self.root = su_root_create (&self);
  else
    {
      /* Sofia's GLib glue announces its port at its default log level ("su_source_port_create()
       * returns 0x..."): silenced, unless SOFIA_DEBUG asks for Sofia's logs. */
      gboolean quiet_glue = g_getenv ("SOFIA_DEBUG") == NULL;

      if (quiet_glue)
        su_log_set_level (su_log_default, 0);
      self.root = su_glib_root_create (&self);
      if (quiet_glue)
        su_log_set_level (su_log_default, 3);   /* Sofia's default (su_default_log.c) */
      source = su_glib_root_gsource (self.root);
      g_source_attach (source, NULL);
    }

  /* Before any "listening" line: whoever reads them may send SIGTERM at once. A worker stops
   * on the supervisor's SIGTERM only: a Ctrl-C reaches the whole process group, and a second
   * signal would cut its wait for the close handshakes short. */
  if (n_workers > 1)
    signal (SIGINT, SIG_IGN);
  if (plain_root)
    {
      signal (SIGTERM, on_stop_signal);
      if (n_workers == 1)
        signal (SIGINT, on_stop_signal);
    }
  else
    {
      g_unix_signal_add (SIGTERM, on_signal, self.loop);
      if (n_workers == 1)
        g_unix_signal_add (SIGINT, on_signal, self.loop);
    }

  self.agent = nta_agent_create (self.root, (url_string_t *) -1 /* NONE: no transport yet */, NULL, NULL,
                                 NTATAG_UA (0), NTATAG_SERVER_RPORT (1),
#ifdef SOFIA_WS_EDGE
                                 /* A udp upstream (or udp target) gets udp, large requests
                                  * too: NTA would send those over 1300 bytes by tcp (RFC 3261
                                  * 18.1.1), to a server that may listen on udp only. For tcp,
                                  * name the upstream with transport=tcp. */
                                 NTATAG_UDP_MTU (65535),
#endif
                                 TAG_END ());
  if (self.agent == NULL)
    {
      g_printerr (PROGRAM ": cannot create the NTA agent\n");
      return 1;
    }
  registrar_options.quiet = quiet;
  registrar_options.line_prefix = line_prefix;
  registrar_options.max_users = (guint) max_users;
  registrar_options.max_bindings = (guint) max_bindings;
  registrar_options.max_contacts = (guint) max_contacts;
#ifdef SOFIA_WS_EDGE
  registrar_options.upstream = upstream;
  registrar_options.tls_ca_file = ca_file;
  registrar_options.crlf_keepalive = crlf_keepalive >= 0 ? (guint) crlf_keepalive : 30;
  registrar_options.max_targets = (guint) max_targets;
  registrar_options.target_idle = (guint) target_idle;
#endif
  self.registrar = registrar_new (self.root, self.agent, &registrar_options);
  if (self.registrar == NULL)
    {
      g_printerr (PROGRAM ": cannot create the registrar's leg\n");
      return 1;
    }

  /* Sofia's own transports first, so that their "listening" lines come out in order too. */
  for (char **url = listen; *url != NULL; url++)
    {
      if (is_ws_url (*url))
        continue;
      if (nta_agent_add_tport (self.agent, URL_STRING_MAKE (*url),
                               TAG_IF (idle >= 0, TPTAG_IDLE ((unsigned) idle)),
#ifdef SOFIA_WS_EDGE
                               SIP_TLS_TAGS (sip_tls_dir),
#endif
                               TAG_END ()) < 0)
        {
          g_printerr (PROGRAM ": cannot listen on %s: %s\n", *url, g_strerror (errno));
          status = 1;
          goto out;
        }
    }
  for (tport_t *tp = tport_primaries (nta_agent_tports (self.agent)); tp; tp = tport_next (tp))
    {
      tp_name_t const *name = tport_name (tp);

      announce ("listening sip:%s:%s;transport=%s\n", name->tpn_host, name->tpn_port,
                name->tpn_proto);
    }

  for (char **url = listen; *url != NULL; url++)
    {
      tport_t *tp;
      tp_name_t const *name;
      g_autofree char *proto = NULL;

      if (!is_ws_url (*url))
        continue;
      tp = sofia_ws_tport_add_listener (self.agent, *url, &error,
                                        TAG_IF (path, WSTAG_PATH (path)),
                                        TAG_IF (origins, WSTAG_ALLOWED_ORIGINS (origins)),
                                        TAG_IF (certificate, WSTAG_TLS_CERTIFICATE (certificate)),
                                        TAG_IF (key, WSTAG_TLS_KEY (key)),
                                        TAG_IF (idle >= 0, TPTAG_IDLE ((unsigned) idle)),
                                        TAG_IF (max_connections >= 0,
                                                WSTAG_MAX_CONNECTIONS (max_connections)),
                                        TAG_IF (per_address >= 0,
                                                WSTAG_MAX_CONNECTIONS_PER_ADDRESS (per_address)),
                                        TAG_IF (partial_bytes >= 0,
                                                WSTAG_MAX_PARTIAL_BYTES (partial_bytes)),
                                        TAG_IF (handshake_timeout >= 0,
                                                WSTAG_HANDSHAKE_TIMEOUT (handshake_timeout)),
                                        TAG_IF (n_workers > 1, WSTAG_REUSE_PORT (1)),
                                        TAG_END ());
      if (tp == NULL)
        {
          g_printerr (PROGRAM ": cannot listen on %s: %s\n", *url, error->message);
          status = 1;
          goto out;
        }
      if (verbose)
        g_signal_connect (sofia_ws_tport_get_listener (tp), "accepted", G_CALLBACK (on_accepted),
                          NULL);
      g_ptr_array_add (self.listeners, g_object_ref (sofia_ws_tport_get_listener (tp)));
      name = tport_name (tp);
      proto = g_ascii_strdown (name->tpn_proto, -1);
      announce ("listening sip:%s%s%s:%s;transport=%s\n",
                strchr (name->tpn_host, ':') ? "[" : "", name->tpn_host,
                strchr (name->tpn_host, ':') ? "]" : "", name->tpn_port, proto);
    }
  if (ready_fd >= 0)
    {
      close (ready_fd);
      ready_fd = -1;
    }
#ifdef SOFIA_WS_EDGE
  network = add_upstream_listener (self.agent, upstream, listen[0], idle, sip_tls_dir, &added);
  if (network == NULL)
    {
      g_printerr (PROGRAM ": no listener for the upstream %s\n", upstream);
      status = 1;
      goto out;
    }
  if (added)
    announce ("listening sip:%s%s%s:%s;transport=%s\n",
             strchr (tport_name (network)->tpn_host, ':') ? "[" : "",
             tport_name (network)->tpn_host,
             strchr (tport_name (network)->tpn_host, ':') ? "]" : "",
             tport_name (network)->tpn_port, tport_name (network)->tpn_proto);
#endif

  if (plain_root)
    {
      su_timer_t *check = su_timer_create (su_root_task (self.root), 100);

      su_timer_set_for_ever (check, on_stop_check, (su_timer_arg_t *) self.root);
      su_root_run (self.root);
      su_timer_destroy (check);
    }
  else
    g_main_loop_run (self.loop);
  g_print ("%sstopping\n", line_prefix);
  stop_listeners (&self, plain_root);

out:
  /* Bindings hold references on tports: drop them before the agent goes. */
  registrar_free (self.registrar);
  g_ptr_array_unref (self.listeners);
  nta_agent_destroy (self.agent);
  su_root_destroy (self.root);
  g_main_loop_unref (self.loop);
  su_deinit ();
  g_free (line_prefix);
  return status;
}
