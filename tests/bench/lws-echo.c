/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lws-echo: a raw libwebsockets WebSocket echo server, the ceiling of the benchmarks (issue 6).
 *
 *   lws-echo [--port PORT] [--verbose]
 *
 * Listens on 127.0.0.1:PORT (default 0: a port the system chose), prints
 * "listening ws://127.0.0.1:PORT/" once it accepts connections, then sends every message it
 * receives back unchanged on the same connection (text as text, binary as binary) until SIGTERM
 * or SIGINT, and exits 0. It selects the "sip" subprotocol when the client offers it (RFC 7118),
 * so that `sip-load --echo` drives it exactly as it drives a SIP server over WebSocket.
 *
 * What it measures is what libwebsockets itself costs per message on its default poll() loop:
 * no GLib main loop, no libuv, no SIP parsing, no transaction state. The sofia-ws registrar
 * answering OPTIONS pays all of that on top, so its requests/s divided by these is the share of
 * the ceiling that sofia-ws and Sofia leave (sofia-bench.py --scenarios ceiling).
 *
 * Messages are reassembled from their frames, queued on their connection and written in
 * WRITEABLE, one lws_write() per callback. A message above 64 KiB closes its connection with
 * 1009 (message too big); a connection whose echoes pile up (a client that does not read) is
 * no longer read until they are written. */
#include <libwebsockets.h>
#include <glib.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_MESSAGE_SIZE (64 * 1024)
#define TX_HIGH_WATER (1024 * 1024)
#define TX_LOW_WATER (256 * 1024)
#define STOP_CHECK_US (100 * LWS_US_PER_MS)
/* lws sizes its fd tables by this; far more connections than a benchmark opens */
#define MAX_FDS 65536

typedef struct {
  gsize len;
  gboolean binary;
  guint8 data[];              /* LWS_PRE bytes of headroom, then len bytes */
} Echo;

/* lws's per-session data of a WebSocket connection: zeroed by lws, set up in ESTABLISHED. */
typedef struct {
  GByteArray *rx;             /* the message being reassembled */
  gboolean rx_binary;
  GQueue tx;                  /* Echo *, oldest first */
  gsize tx_bytes;
  gboolean rx_paused;
  gboolean too_big;           /* a message above 64 KiB came: close with 1009 */
} EchoConn;

typedef struct {
  struct lws_context *context;
  lws_sorted_usec_list_t stop_check;
} Server;

static volatile sig_atomic_t stop_requested;

static void
echo_conn_clear (EchoConn *conn)
{
  g_queue_clear_full (&conn->tx, g_free);
  conn->tx_bytes = 0;
  g_clear_pointer (&conn->rx, g_byte_array_unref);
}

static int
on_receive (EchoConn   *conn,
            struct lws *wsi,
            const void *in,
            gsize       len)
{
  Echo *echo;

  if (conn->too_big)
    return 0;
  if (conn->rx->len == 0)
    conn->rx_binary = lws_frame_is_binary (wsi);
  if (conn->rx->len + len > MAX_MESSAGE_SIZE)
    {
      /* Closed from WRITEABLE: from here, in the middle of a fragmented message, lws 4.1 drops
       * the connection without the close frame. */
      conn->too_big = TRUE;
      g_byte_array_set_size (conn->rx, 0);
      lws_callback_on_writable (wsi);
      return 0;
    }
  g_byte_array_append (conn->rx, in, (guint) len);
  if (!lws_is_final_fragment (wsi) || lws_remaining_packet_payload (wsi) > 0)
    return 0;

  echo = g_malloc (sizeof *echo + LWS_PRE + conn->rx->len);
  echo->len = conn->rx->len;
  echo->binary = conn->rx_binary;
  memcpy (echo->data + LWS_PRE, conn->rx->data, conn->rx->len);
  g_byte_array_set_size (conn->rx, 0);
  g_queue_push_tail (&conn->tx, echo);
  conn->tx_bytes += echo->len;
  lws_callback_on_writable (wsi);

  if (conn->tx_bytes > TX_HIGH_WATER && !conn->rx_paused)
    {
      conn->rx_paused = TRUE;
      lws_rx_flow_control (wsi, 0);
    }
  return 0;
}

static int
on_writeable (EchoConn   *conn,
              struct lws *wsi)
{
  Echo *echo;
  int written;

  if (conn->too_big)
    {
      static const char why[] = "message above 64 KiB";

      lws_close_reason (wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *) why,
                        sizeof why - 1);
      return -1;
    }
  echo = g_queue_pop_head (&conn->tx);
  if (echo == NULL)
    return 0;
  conn->tx_bytes -= echo->len;
  written = lws_write (wsi, echo->data + LWS_PRE, echo->len,
                       echo->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
  g_free (echo);
  if (written < 0)
    return -1;

  if (conn->rx_paused && conn->tx_bytes <= TX_LOW_WATER)
    {
      conn->rx_paused = FALSE;
      lws_rx_flow_control (wsi, 1);
    }
  if (!g_queue_is_empty (&conn->tx))
    lws_callback_on_writable (wsi);
  return 0;
}

static int
callback_echo (struct lws                *wsi,
               enum lws_callback_reasons  reason,
               void                      *user,
               void                      *in,
               size_t                     len)
{
  EchoConn *conn = user;

  switch (reason)
    {
    case LWS_CALLBACK_ESTABLISHED:
      conn->rx = g_byte_array_sized_new (1024);
      g_queue_init (&conn->tx);
      return 0;

    case LWS_CALLBACK_RECEIVE:
      return on_receive (conn, wsi, in, len);

    case LWS_CALLBACK_SERVER_WRITEABLE:
      return on_writeable (conn, wsi);

    case LWS_CALLBACK_CLOSED:
      echo_conn_clear (conn);
      return 0;

    default:
      /* plain HTTP requests, and the rest of the handshake */
      return lws_callback_http_dummy (wsi, reason, user, in, len);
    }
}

/* First, so that a client offering no subprotocol gets the echo too. */
static const struct lws_protocols protocols[] = {
  { .name = "sip", .callback = callback_echo, .per_session_data_size = sizeof (EchoConn) },
  { 0 }
};

/* ---- stopping --------------------------------------------------------------------------- */

static void
on_stop_signal (int signum)
{
  stop_requested = 1;
}

/* The signal handler only sets a flag; lws_service() returns on the poll() it interrupts, and
 * this timer covers a signal that lands just before poll() is entered. */
static void
on_stop_check (lws_sorted_usec_list_t *sul)
{
  Server *server = lws_container_of (sul, Server, stop_check);

  if (stop_requested)
    lws_cancel_service (server->context);
  else
    lws_sul_schedule (server->context, 0, &server->stop_check, on_stop_check, STOP_CHECK_US);
}

static void
catch_stop_signals (void)
{
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
}

/* As many connections as the hard limit allows, without asking the caller for ulimit -n. */
static void
raise_fd_limit (void)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max)
    return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
    g_printerr ("lws-echo: setrlimit(RLIMIT_NOFILE): %s\n", g_strerror (errno));
}

/* ---- main ------------------------------------------------------------------------------- */

int
main (int    argc,
      char **argv)
{
  int port = 0;
  gboolean verbose = FALSE;
  const GOptionEntry entries[] = {
    { "port", 'p', 0, G_OPTION_ARG_INT, &port, "Port on 127.0.0.1 (0: any free one)", "PORT" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "libwebsockets warnings too", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- raw libwebsockets echo server");
  g_autoptr(GError) error = NULL;
  struct lws_context_creation_info info;
  struct lws_vhost *vhost;
  struct rlimit rl;
  Server server = { 0 };
  int status = 0;

  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("lws-echo: %s\n", error->message);
      return 2;
    }
  if (port < 0 || port > 65535)
    {
      g_printerr ("lws-echo: --port must be between 0 and 65535\n");
      return 2;
    }

  raise_fd_limit ();
  /* Before the "listening" line: whoever reads it may send SIGTERM at once. */
  catch_stop_signals ();
  lws_set_log_level (verbose ? LLL_ERR | LLL_WARN : LLL_ERR, NULL);

  memset (&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0)
    info.fd_limit_per_thread = (unsigned int) MIN (rl.rlim_cur, (rlim_t) MAX_FDS);
  server.context = lws_create_context (&info);
  if (server.context == NULL)
    {
      g_printerr ("lws-echo: lws_create_context failed\n");
      return 1;
    }

  info.port = port;
  info.iface = "127.0.0.1";
  info.protocols = protocols;
  info.vhost_name = "lws-echo";
  vhost = lws_create_vhost (server.context, &info);
  if (vhost == NULL)
    {
      g_printerr ("lws-echo: cannot listen on 127.0.0.1:%d\n", port);
      lws_context_destroy (server.context);
      return 1;
    }
  printf ("listening ws://127.0.0.1:%d/\n", lws_get_vhost_listen_port (vhost));
  fflush (stdout);

  lws_sul_schedule (server.context, 0, &server.stop_check, on_stop_check, STOP_CHECK_US);
  while (!stop_requested)
    if (lws_service (server.context, 0) < 0)
      {
        g_printerr ("lws-echo: lws_service failed\n");
        status = 1;
        break;
      }

  lws_sul_cancel (&server.stop_check);
  lws_context_destroy (server.context);
  return status;
}
