/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a real Kamailio as a SIP-over-WebSocket server on a loopback port for the tests.
 * See kamailio-peer.h. */
#include "kamailio-peer.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#define PEER_START_TIMEOUT_US   (10 * G_USEC_PER_SEC)
#define PEER_TERM_TIMEOUT_MS    5000
#define PEER_KILL_TIMEOUT_MS    5000
#define PEER_POLL_MS            100
#define PEER_LOG_TAIL_LINES     30
#define PEER_LOG_TAIL_MAX       4096

struct _KamailioPeer {
  char *dir;          /* the temporary directory, removed on stop */
  char *run_dir;      /* <dir>/run: -Y, -w and the pid file */
  char *cfg_path;
  char *pid_path;
  char *log_path;     /* the log of the current or last run */
  char *binary;
  char *ws_url;
  guint16 port;
  guint16 tls_port;   /* 0: no tls listener */
  char *tls_certificate, *tls_key;
  gboolean sip;       /* plain SIP too (kamailio_peer_start_sip()) */
  guint runs;
  GSubprocess *process;
  GPid pid;
};

G_DEFINE_QUARK (kamailio-peer-error-quark, kamailio_peer_error)

/* ---- locating kamailio ------------------------------------------------------------------ */

static char *
find_binary (void)
{
  static const char *const fallbacks[] = { "/usr/sbin/kamailio", "/usr/local/sbin/kamailio" };
  const char *env = g_getenv ("KAMAILIO");
  char *path;

  if (env != NULL && *env != '\0')
    return g_find_program_in_path (env);

  path = g_find_program_in_path ("kamailio");
  if (path != NULL)
    return path;

  for (gsize i = 0; i < G_N_ELEMENTS (fallbacks); i++)
    if (g_file_test (fallbacks[i], G_FILE_TEST_IS_EXECUTABLE))
      return g_strdup (fallbacks[i]);

  return NULL;
}

static gboolean
is_module_dir (const char *dir)
{
  g_autofree char *ws = g_build_filename (dir, "websocket.so", NULL);

  return strchr (dir, '"') == NULL && g_file_test (ws, G_FILE_TEST_IS_REGULAR);
}

static char *
find_modules_dir (void)
{
  static const char *const fixed[] = {
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
  };
  const char *env = g_getenv ("KAMAILIO_MODULES_DIR");
  GDir *lib;
  const char *name;
  char *found = NULL;

  if (env != NULL && *env != '\0')
    return is_module_dir (env) ? g_strdup (env) : NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (fixed); i++)
    if (is_module_dir (fixed[i]))
      return g_strdup (fixed[i]);

  /* Any other multiarch triplet: /usr/lib/<triplet>/kamailio/modules */
  lib = g_dir_open ("/usr/lib", 0, NULL);
  if (lib == NULL)
    return NULL;
  while (found == NULL && (name = g_dir_read_name (lib)) != NULL)
    {
      char *candidate = g_build_filename ("/usr/lib", name, "kamailio", "modules", NULL);

      if (is_module_dir (candidate))
        found = candidate;
      else
        g_free (candidate);
    }
  g_dir_close (lib);

  return found;
}

gboolean
kamailio_peer_is_available (char **reason)
{
  g_autofree char *binary = find_binary ();
  g_autofree char *modules = NULL;

  if (binary == NULL)
    {
      if (reason != NULL)
        *reason = g_strdup ("kamailio binary not found (set KAMAILIO)");
      return FALSE;
    }

  modules = find_modules_dir ();
  if (modules == NULL)
    {
      if (reason != NULL)
        *reason = g_strdup ("kamailio module directory with websocket.so not found "
                            "(install kamailio-websocket-modules or set KAMAILIO_MODULES_DIR)");
      return FALSE;
    }

  return TRUE;
}

/* ---- the configuration ------------------------------------------------------------------ */

/* PEER_PORT and mpath are written in front of this. */
static const char config_body[] =
  "\n"
  "debug=2\n"
  "log_stderror=yes\n"
  "memdbg=5\n"
  "memlog=5\n"
  "\n"
  "children=2\n"
  "tcp_children=2\n"
  "auto_aliases=no\n"
  "dns=no\n"
  "rev_dns=no\n"
  "use_dns_cache=no\n"
  "dns_try_ipv6=no\n"
  "enable_sctp=no\n"
  "tcp_accept_no_cl=yes\n"
  "tcp_connection_lifetime=3605\n"
  "\n"
  "listen=tcp:127.0.0.1:PEER_PORT\n"
  "#!ifdef PEER_SIP\n"
  "listen=udp:127.0.0.1:PEER_PORT\n"
  "#!endif\n"
  "# Port 5060 (no port in a URI) and ours, not every port: a SIP peer on 127.0.0.1 (behind\n"
  "# sofia-ws-edge) is not us.\n"
  "alias=127.0.0.1:5060\n"
  "alias=localhost:5060\n"
  "alias=127.0.0.1:PEER_PORT\n"
  "alias=localhost:PEER_PORT\n"
  "\n"
  "loadmodule \"kex.so\"\n"
  "loadmodule \"tm.so\"\n"
  "loadmodule \"sl.so\"\n"
  "loadmodule \"rr.so\"\n"
  "loadmodule \"pv.so\"\n"
  "loadmodule \"maxfwd.so\"\n"
  "loadmodule \"textops.so\"\n"
  "loadmodule \"siputils.so\"\n"
  "loadmodule \"xlog.so\"\n"
  "loadmodule \"sanity.so\"\n"
  "loadmodule \"usrloc.so\"\n"
  "loadmodule \"registrar.so\"\n"
  "loadmodule \"nathelper.so\"\n"
  "loadmodule \"xhttp.so\"\n"
  "loadmodule \"websocket.so\"\n"
  "\n"
  "modparam(\"usrloc\", \"db_mode\", 0)\n"
  "modparam(\"usrloc\", \"handle_lost_tcp\", 1)\n"
  "modparam(\"registrar\", \"max_expires\", 3600)\n"
  "# Short registrations are kept short (default: raised to 60 s): a client that refreshes every\n"
  "# few seconds re-registers within seconds after a restart.\n"
  "modparam(\"registrar\", \"min_expires\", 1)\n"
  "modparam(\"registrar\", \"received_avp\", \"$avp(peer_received)\")\n"
  "modparam(\"nathelper\", \"received_avp\", \"$avp(peer_received)\")\n"
  "modparam(\"nathelper\", \"natping_interval\", 0)\n"
  "modparam(\"websocket\", \"keepalive_mechanism\", 1)\n"
  "modparam(\"websocket\", \"keepalive_timeout\", 30)\n"
  "modparam(\"websocket\", \"sub_protocols\", 1)\n"
  "modparam(\"websocket\", \"cors_mode\", 2)\n"
  "# Behind a proxy that adds Path (sofia-ws-edge): requests for its users go through it.\n"
  "modparam(\"registrar\", \"use_path\", 1)\n"
  "modparam(\"registrar\", \"path_mode\", 0)\n"
  "\n"
  "request_route {\n"
  "#!ifdef PEER_SIP\n"
  "\txlog(\"L_INFO\", \"kamailio-peer: $rm $ru over $proto, $ml bytes\\n\");\n"
  "#!endif\n"
  "#!ifndef PEER_SIP\n"
  "\tif (proto != WS && proto != WSS) {\n"
  "\t\tsl_send_reply(\"403\", \"WebSocket Only\");\n"
  "\t\texit;\n"
  "\t}\n"
  "#!endif\n"
  "\tif (!mf_process_maxfwd_header(\"10\")) {\n"
  "\t\tsl_send_reply(\"483\", \"Too Many Hops\");\n"
  "\t\texit;\n"
  "\t}\n"
  "\tif (!sanity_check()) {\n"
  "\t\texit;\n"
  "\t}\n"
  "\n"
  "\t# OPTIONS for the server itself (no user part)\n"
  "\tif (is_method(\"OPTIONS\") && uri == myself && $rU == $null) {\n"
  "\t\toptions_reply();\n"
  "\t\texit;\n"
  "\t}\n"
  "\n"
  "\t# WS clients cannot be reached by their Via/Contact (.invalid): pin the connection\n"
  "\t# (an ACK or BYE need not have a Contact). A proxy in front (a REGISTER with its Path,\n"
  "\t# a request it record-routes) is reached by its own Path and Record-Route: no fixing.\n"
  "\tif (nat_uac_test(\"64\") && !is_present_hf(\"Path\") && !is_present_hf(\"Record-Route\")) {\n"
  "\t\tforce_rport();\n"
  "\t\tif (is_method(\"REGISTER\")) {\n"
  "\t\t\tfix_nated_register();\n"
  "\t\t} else if (is_present_hf(\"Contact\") && !add_contact_alias()) {\n"
  "\t\t\tsl_send_reply(\"400\", \"Bad Contact\");\n"
  "\t\t\texit;\n"
  "\t\t}\n"
  "\t}\n"
  "\n"
  "\tif (has_totag()) {\n"
  "\t\tif (loose_route()) {\n"
  "\t\t\thandle_ruri_alias();\n"
  "\t\t\troute(PEER_RELAY);\n"
  "\t\t} else if (!is_method(\"ACK\")) {\n"
  "\t\t\tsl_send_reply(\"404\", \"Not Here\");\n"
  "\t\t}\n"
  "\t\texit;\n"
  "\t}\n"
  "\n"
  "\tif (is_method(\"CANCEL\")) {\n"
  "\t\tif (t_check_trans()) {\n"
  "\t\t\troute(PEER_RELAY);\n"
  "\t\t}\n"
  "\t\texit;\n"
  "\t}\n"
  "\tt_check_trans();\n"
  "\n"
  "\tif (is_method(\"REGISTER\")) {\n"
  "\t\tif (!save(\"location\")) {\n"
  "\t\t\tsl_reply_error();\n"
  "\t\t}\n"
  "\t\texit;\n"
  "\t}\n"
  "\n"
  "\tif ($rU == $null) {\n"
  "\t\tsl_send_reply(\"484\", \"Address Incomplete\");\n"
  "\t\texit;\n"
  "\t}\n"
  "\tif (is_method(\"INVITE|SUBSCRIBE\")) {\n"
  "\t\trecord_route();\n"
  "\t}\n"
  "\tif (!lookup(\"location\")) {\n"
  "\t\tsl_send_reply(\"404\", \"Not Found\");\n"
  "\t\texit;\n"
  "\t}\n"
  "\troute(PEER_RELAY);\n"
  "}\n"
  "\n"
  "route[PEER_RELAY] {\n"
  "\tt_on_reply(\"PEER_REPLY\");\n"
  "\tif (!t_relay()) {\n"
  "\t\tsl_reply_error();\n"
  "\t}\n"
  "\texit;\n"
  "}\n"
  "\n"
  "onreply_route[PEER_REPLY] {\n"
  "\tif (nat_uac_test(\"64\")) {\n"
  "\t\tadd_contact_alias();\n"
  "\t}\n"
  "}\n"
  "\n"
  "# HTTP on the SIP port: only a proper WebSocket upgrade for one of our names is accepted;\n"
  "# ws_handle_handshake() answers 400 unless the client offers the \"sip\" subprotocol.\n"
  "event_route[xhttp:request] {\n"
  "\tset_reply_close();\n"
  "\tset_reply_no_connect();\n"
  "\tif ($Rp != PEER_PORT) {\n"
  "\t\txhttp_reply(\"403\", \"Forbidden\", \"\", \"\");\n"
  "\t\texit;\n"
  "\t}\n"
  "\tif ($rm =~ \"^GET$\" && $hdr(Upgrade) =~ \"websocket\" && $hdr(Connection) =~ \"upgrade\") {\n"
  "\t\tif ($hdr(Host) == $null || !is_myself(\"sip:\" + $hdr(Host))) {\n"
  "\t\t\txlog(\"L_WARN\", \"kamailio-peer: handshake refused for Host $hdr(Host)\\n\");\n"
  "\t\t\txhttp_reply(\"403\", \"Forbidden\", \"\", \"\");\n"
  "\t\t\texit;\n"
  "\t\t}\n"
  "\t\tif (ws_handle_handshake()) {\n"
  "\t\t\texit;\n"
  "\t\t}\n"
  "\t}\n"
  "\txhttp_reply(\"404\", \"Not Found\", \"\", \"\");\n"
  "}\n";

static gboolean
write_config (KamailioPeer *self,
              const char   *modules_dir,
              GError      **error)
{
  g_autoptr(GString) cfg = g_string_new (NULL);

  g_string_append (cfg, "#!KAMAILIO\n");
  g_string_append (cfg, "# SPDX-License-Identifier: LGPL-2.1-or-later\n");
  g_string_append (cfg, "# Generated by sofia-ws tests/support/kamailio-peer.c: SIP over WebSocket\n");
  g_string_append (cfg, "# only, on one loopback port; registrar + location relay.\n");
  g_string_append_printf (cfg, "#!define PEER_PORT %u\n", (guint) self->port);
  if (self->sip)
    g_string_append (cfg, "#!define PEER_SIP\n");
  g_string_append_printf (cfg, "mpath=\"%s/\"\n", modules_dir);
  if (self->tls_port != 0)
    {
      g_autofree char *tls_cfg = g_build_filename (self->dir, "tls.cfg", NULL);
      g_autofree char *tls_text = NULL;

      /* A server with the given certificate; as a client (to a Path over tls) it verifies
       * nothing: the tests are about the edge's checks, not Kamailio's. */
      tls_text = g_strdup_printf ("[server:default]\nmethod = TLSv1.2+\n"
                                  "verify_certificate = no\nrequire_certificate = no\n"
                                  "certificate = %s\nprivate_key = %s\n\n"
                                  "[client:default]\nmethod = TLSv1.2+\n"
                                  "verify_certificate = no\nrequire_certificate = no\n",
                                  self->tls_certificate, self->tls_key);
      if (!g_file_set_contents (tls_cfg, tls_text, -1, error))
        return FALSE;
      g_string_append_printf (cfg, "enable_tls=yes\nlisten=tls:127.0.0.1:%u\n"
                              "loadmodule \"tls.so\"\nmodparam(\"tls\", \"config\", \"%s\")\n",
                              (guint) self->tls_port, tls_cfg);
    }
  g_string_append (cfg, config_body);

  return g_file_set_contents (self->cfg_path, cfg->str, (gssize) cfg->len, error);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static guint16
pick_free_port (GError **error)
{
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  guint16 port;

  sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (sock == NULL)
    return 0;
  if (!g_socket_bind (sock, any, FALSE, error))
    return 0;
  bound = g_socket_get_local_address (sock, error);
  if (bound == NULL)
    return 0;
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (sock, NULL);

  return port;
}

/* The last lines of the current log, for error messages. */
static char *
log_tail (KamailioPeer *self)
{
  g_autofree char *contents = NULL;
  gsize len = 0;
  const char *start;
  guint lines = 0;

  if (self->log_path == NULL || !g_file_get_contents (self->log_path, &contents, &len, NULL))
    return g_strdup ("(no kamailio output)");
  if (len == 0)
    return g_strdup ("(no kamailio output)");

  start = contents + len;
  if (start > contents && start[-1] == '\n')
    start--;
  while (start > contents && (gsize) (contents + len - start) < PEER_LOG_TAIL_MAX)
    {
      if (start[-1] == '\n' && ++lines == PEER_LOG_TAIL_LINES)
        break;
      start--;
    }

  return g_utf8_make_valid (start, (gssize) (contents + len - start));
}

static void
on_wait_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  int *state = user_data;

  *state = g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL) ? 1 : 2;
}

static gboolean
on_wait_timeout (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* TRUE once the process has exited and been reaped, waiting at most @timeout_ms. Uses a private
 * main context, so it works whether or not the caller runs a main loop. */
static gboolean
wait_for_exit (GSubprocess *process,
               guint        timeout_ms)
{
  GMainContext *context = g_main_context_new ();
  GCancellable *cancellable = g_cancellable_new ();
  GSource *timer = g_timeout_source_new (timeout_ms);
  gboolean timed_out = FALSE;
  int state = 0; /* 0 pending, 1 exited, 2 cancelled */

  g_main_context_push_thread_default (context);

  g_subprocess_wait_async (process, cancellable, on_wait_done, &state);
  g_source_set_callback (timer, on_wait_timeout, &timed_out, NULL);
  g_source_attach (timer, context);

  while (state == 0 && !timed_out)
    g_main_context_iteration (context, TRUE);

  if (state == 0)
    {
      g_cancellable_cancel (cancellable);
      while (state == 0)
        g_main_context_iteration (context, TRUE);
    }

  g_source_destroy (timer);
  g_source_unref (timer);
  g_main_context_pop_thread_default (context);
  g_object_unref (cancellable);
  g_main_context_unref (context);

  return state == 1 || g_subprocess_get_identifier (process) == NULL;
}

/* Connects to the port and sends a plain HTTP request: TRUE once Kamailio's xhttp answers it
 * (its reply names the server), which proves the listener and the worker processes are up. */
static gboolean
probe (guint16 port)
{
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) addr = g_inet_socket_address_new (loopback, port);
  g_autofree char *request = NULL;
  char buf[2048];
  gsize have = 0, sent = 0, len;
  gboolean ok = FALSE;

  sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  if (sock == NULL)
    return FALSE;
  g_socket_set_timeout (sock, 1);
  if (!g_socket_connect (sock, addr, NULL, NULL))
    return FALSE;

  request = g_strdup_printf ("GET /kamailio-peer-probe HTTP/1.1\r\n"
                             "Host: 127.0.0.1:%u\r\n"
                             "Content-Length: 0\r\n"
                             "\r\n", (guint) port);
  len = strlen (request);
  while (sent < len)
    {
      gssize n = g_socket_send (sock, request + sent, len - sent, NULL, NULL);
      if (n <= 0)
        goto out;
      sent += (gsize) n;
    }

  while (have < sizeof buf - 1)
    {
      gssize n = g_socket_receive (sock, buf + have, sizeof buf - 1 - have, NULL, NULL);
      if (n <= 0)
        break;
      have += (gsize) n;
      buf[have] = '\0';
      if (strstr (buf, "\r\n\r\n") != NULL)
        break;
    }
  buf[have] = '\0';
  ok = g_str_has_prefix (buf, "HTTP/1.") && g_strstr_len (buf, -1, "kamailio") != NULL;

out:
  g_socket_close (sock, NULL);
  return ok;
}

static void
child_setup (gpointer user_data)
{
  /* Own process group: Kamailio signals its children and may signal its whole group; that must
   * never reach the test runner. It also lets stop() kill every Kamailio process at once. */
  setpgid (0, 0);
}

/* Terminates the running Kamailio (if any) and reaps it. */
static void
stop_process (KamailioPeer *self)
{
  if (self->process == NULL)
    return;

  if (g_subprocess_get_identifier (self->process) != NULL)
    kill (self->pid, SIGTERM);

  if (!wait_for_exit (self->process, PEER_TERM_TIMEOUT_MS))
    {
      g_printerr ("# kamailio-peer: pid %d ignored SIGTERM, sending SIGKILL\n", (int) self->pid);
      kill (-self->pid, SIGKILL);
      if (!wait_for_exit (self->process, PEER_KILL_TIMEOUT_MS))
        {
          g_subprocess_force_exit (self->process);
          g_subprocess_wait (self->process, NULL, NULL);
        }
    }

  /* Children normally exit before the main process; sweep any that outlived it and give init
   * a moment to reap them (bounded: zombies of an exotic init may linger). */
  if (kill (-self->pid, 0) == 0)
    {
      gint64 deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;

      kill (-self->pid, SIGKILL);
      while (kill (-self->pid, 0) == 0 && g_get_monotonic_time () < deadline)
        g_usleep (20 * 1000);
    }

  g_clear_object (&self->process);
  self->pid = 0;
}

/* Starts Kamailio on self->port and waits until it answers. */
static gboolean
spawn_and_wait (KamailioPeer *self,
                GError      **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autofree char *log_name = NULL;
  const char *argv[] = {
    self->binary, "-DD", "-E",
    "-f", self->cfg_path,
    "-Y", self->run_dir,
    "-P", self->pid_path,
    "-w", self->run_dir,
    "-m", "64", "-M", "8",
    NULL
  };
  gint64 deadline;

  g_assert (self->process == NULL);

  self->runs++;
  log_name = g_strdup_printf ("kamailio-%u.log", self->runs);
  g_free (self->log_path);
  self->log_path = g_build_filename (self->dir, log_name, NULL);
  g_unlink (self->pid_path);

  /* stdin is /dev/null; stdout and stderr go to the log file */
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_stdout_file_path (launcher, self->log_path);
  g_subprocess_launcher_set_cwd (launcher, self->run_dir);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);

  self->process = g_subprocess_launcher_spawnv (launcher, argv, error);
  if (self->process == NULL)
    {
      g_prefix_error (error, "kamailio-peer: cannot run %s: ", self->binary);
      return FALSE;
    }
  self->pid = (GPid) g_ascii_strtoll (g_subprocess_get_identifier (self->process), NULL, 10);

  deadline = g_get_monotonic_time () + PEER_START_TIMEOUT_US;
  for (;;)
    {
      if (probe (self->port))
        return TRUE;

      if (wait_for_exit (self->process, PEER_POLL_MS))
        {
          g_autofree char *tail = log_tail (self);
          int status = g_subprocess_get_status (self->process);

          g_set_error (error, KAMAILIO_PEER_ERROR, KAMAILIO_PEER_ERROR_FAILED,
                       "kamailio-peer: kamailio exited (%s %d) before answering on "
                       "127.0.0.1:%u; config %s; last output:\n%s",
                       g_subprocess_get_if_signaled (self->process) ? "signal" : "status",
                       g_subprocess_get_if_signaled (self->process)
                         ? g_subprocess_get_term_sig (self->process)
                         : (WIFEXITED (status) ? WEXITSTATUS (status) : status),
                       (guint) self->port, self->cfg_path, tail);
          g_clear_object (&self->process);
          self->pid = 0;
          return FALSE;
        }

      if (g_get_monotonic_time () >= deadline)
        {
          g_autofree char *tail = NULL;

          stop_process (self);
          tail = log_tail (self);
          g_set_error (error, KAMAILIO_PEER_ERROR, KAMAILIO_PEER_ERROR_TIMEOUT,
                       "kamailio-peer: kamailio did not answer on 127.0.0.1:%u within %d s; "
                       "config %s; last output:\n%s",
                       (guint) self->port, (int) (PEER_START_TIMEOUT_US / G_USEC_PER_SEC),
                       self->cfg_path, tail);
          return FALSE;
        }
    }
}

static void
remove_tree (const char *path)
{
  GDir *dir;
  const char *name;

  if (!g_file_test (path, G_FILE_TEST_IS_SYMLINK) && g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      dir = g_dir_open (path, 0, NULL);
      if (dir != NULL)
        {
          while ((name = g_dir_read_name (dir)) != NULL)
            {
              g_autofree char *child = g_build_filename (path, name, NULL);
              remove_tree (child);
            }
          g_dir_close (dir);
        }
      g_rmdir (path);
    }
  else
    {
      g_unlink (path);
    }
}

static void
peer_free (KamailioPeer *self)
{
  g_free (self->dir);
  g_free (self->run_dir);
  g_free (self->cfg_path);
  g_free (self->pid_path);
  g_free (self->log_path);
  g_free (self->binary);
  g_free (self->ws_url);
  g_free (self->tls_certificate);
  g_free (self->tls_key);
  g_free (self);
}

/* ---- public API ------------------------------------------------------------------------- */

static KamailioPeer *
peer_start (gboolean     sip,
            const char  *tls_certificate,
            const char  *tls_key,
            GError     **error)
{
  KamailioPeer *self;
  g_autofree char *modules_dir = NULL;
  g_autofree char *binary = find_binary ();

  if (binary == NULL)
    {
      g_set_error_literal (error, KAMAILIO_PEER_ERROR, KAMAILIO_PEER_ERROR_NOT_FOUND,
                           "kamailio-peer: kamailio binary not found (set KAMAILIO)");
      return NULL;
    }
  modules_dir = find_modules_dir ();
  if (modules_dir == NULL)
    {
      g_set_error_literal (error, KAMAILIO_PEER_ERROR, KAMAILIO_PEER_ERROR_NOT_FOUND,
                           "kamailio-peer: no kamailio module directory with websocket.so "
                           "(install kamailio-websocket-modules or set KAMAILIO_MODULES_DIR)");
      return NULL;
    }

  self = g_new0 (KamailioPeer, 1);
  self->binary = g_steal_pointer (&binary);
  self->sip = sip;

  self->dir = g_dir_make_tmp ("kamailio-peer-XXXXXX", error);
  if (self->dir == NULL)
    {
      peer_free (self);
      return NULL;
    }
  self->run_dir = g_build_filename (self->dir, "run", NULL);
  self->cfg_path = g_build_filename (self->dir, "kamailio.cfg", NULL);
  self->pid_path = g_build_filename (self->run_dir, "kamailio.pid", NULL);

  if (g_mkdir (self->run_dir, 0700) != 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "kamailio-peer: cannot create %s: %s", self->run_dir, g_strerror (saved));
      kamailio_peer_stop (self);
      return NULL;
    }

  self->port = pick_free_port (error);
  if (self->port == 0)
    {
      g_prefix_error (error, "kamailio-peer: no free port: ");
      kamailio_peer_stop (self);
      return NULL;
    }
  self->ws_url = g_strdup_printf ("ws://127.0.0.1:%u/", (guint) self->port);
  if (tls_certificate != NULL)
    {
      g_autofree char *tls_so = g_build_filename (modules_dir, "tls.so", NULL);

      if (!g_file_test (tls_so, G_FILE_TEST_IS_REGULAR))
        {
          g_set_error (error, KAMAILIO_PEER_ERROR, KAMAILIO_PEER_ERROR_NOT_FOUND,
                       "kamailio-peer: no %s (install kamailio-tls-modules)", tls_so);
          kamailio_peer_stop (self);
          return NULL;
        }
      self->tls_certificate = g_strdup (tls_certificate);
      self->tls_key = g_strdup (tls_key);
      self->tls_port = pick_free_port (error);
      if (self->tls_port == 0)
        {
          g_prefix_error (error, "kamailio-peer: no free port: ");
          kamailio_peer_stop (self);
          return NULL;
        }
    }

  if (!write_config (self, modules_dir, error) || !spawn_and_wait (self, error))
    {
      kamailio_peer_stop (self);
      return NULL;
    }

  return self;
}

KamailioPeer *
kamailio_peer_start (GError **error)
{
  return peer_start (FALSE, NULL, NULL, error);
}

KamailioPeer *
kamailio_peer_start_sip (GError **error)
{
  return peer_start (TRUE, NULL, NULL, error);
}

KamailioPeer *
kamailio_peer_start_sip_tls (const char  *certificate,
                             const char  *key,
                             GError     **error)
{
  g_return_val_if_fail (certificate != NULL && key != NULL, NULL);
  return peer_start (TRUE, certificate, key, error);
}

/* A started peer (ws, or plain SIP when @sip), or NULL with the test skipped, saying why, where
 * Kamailio is not installed. */
static KamailioPeer *
start_or_skip (gboolean    sip,
               const char *tls_certificate,
               const char *tls_key)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *reason = NULL;
  KamailioPeer *peer;

  if (!kamailio_peer_is_available (&reason))
    {
      g_test_skip (reason);
      return NULL;
    }
  peer = peer_start (sip, tls_certificate, tls_key, &error);
  if (g_error_matches (error, KAMAILIO_PEER_ERROR, KAMAILIO_PEER_ERROR_NOT_FOUND))
    {
      g_test_skip (error->message);
      return NULL;
    }
  g_assert_no_error (error);
  g_assert_nonnull (peer);
  return peer;
}

KamailioPeer *
kamailio_peer_start_or_skip (void)
{
  return start_or_skip (FALSE, NULL, NULL);
}

KamailioPeer *
kamailio_peer_start_sip_or_skip (void)
{
  return start_or_skip (TRUE, NULL, NULL);
}

KamailioPeer *
kamailio_peer_start_sip_tls_or_skip (const char *certificate,
                                     const char *key)
{
  return start_or_skip (TRUE, certificate, key);
}

gboolean
kamailio_peer_restart (KamailioPeer *self,
                       GError      **error)
{
  g_return_val_if_fail (self != NULL, FALSE);

  stop_process (self);
  return spawn_and_wait (self, error);
}

guint16
kamailio_peer_get_port (KamailioPeer *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->port;
}

guint16
kamailio_peer_get_tls_port (KamailioPeer *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->tls_port;
}

const char *
kamailio_peer_get_ws_url (KamailioPeer *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->ws_url;
}

GPid
kamailio_peer_get_pid (KamailioPeer *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->process != NULL ? self->pid : 0;
}

const char *
kamailio_peer_get_dir (KamailioPeer *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->dir;
}

char *
kamailio_peer_get_log (KamailioPeer *self)
{
  char *contents = NULL;

  g_return_val_if_fail (self != NULL, NULL);

  if (self->log_path == NULL || !g_file_get_contents (self->log_path, &contents, NULL, NULL))
    return g_strdup ("");
  return contents;
}

void
kamailio_peer_stop (KamailioPeer *self)
{
  const char *keep;

  if (self == NULL)
    return;

  stop_process (self);

  keep = g_getenv ("KAMAILIO_PEER_KEEP");
  if (self->dir != NULL)
    {
      if (keep != NULL && *keep != '\0' && g_strcmp0 (keep, "0") != 0)
        g_printerr ("# kamailio-peer: kept %s\n", self->dir);
      else
        remove_tree (self->dir);
    }

  peer_free (self);
}
