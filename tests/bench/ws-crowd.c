/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ws-crowd: many idle SIP-over-WebSocket connections, for the connection-scale benchmark
 * (issue 6; driven by tests/bench/scale-bench.py).
 *
 *   ws-crowd --url ws://HOST:PORT/PATH [--connections N] [--parallel P]
 *            [--connect-timeout S] [--burst-timeout S] [--max-time S] [--verbose]
 *
 * Opens N WebSocket connections (RFC 7118: subprotocol "sip", and the 101 must select it),
 * with at most P handshakes in flight, and once every one has connected or failed prints
 *
 *   CONNECTED n=.. failed=.. seconds=.. handshakes_per_s=..
 *
 * (seconds: from the first connect to the last 101; handshakes/s: n / seconds). Then it holds
 * the connections idle, sending nothing, and obeys commands read from stdin, one per line
 * (stdin rather than signals: a driver just writes to the pipe, and it can never lose one):
 *
 *   burst   every open connection sends ONE OPTIONS request (its own Call-ID and Via branch),
 *           all of them written in the same pass of the loop; once all are answered (a final
 *           response with the same Call-ID on the same connection), or --burst-timeout after
 *           the command, it prints
 *             BURST sent=.. answered=.. lost=.. dropped=.. p50_us=.. p99_us=.. max_us=..
 *                   seconds=..
 *           (one line; lost: no final response in time; latency from the lws_write() of a
 *           request to its final response; seconds: from the command to the last answer).
 *   close   or the end of stdin: closes every connection with a close frame (1000), at most
 *           P closing handshakes at a time, waits for the server's close frames (5 s + 1 ms per
 *           connection at most), prints
 *             CLOSED closed=.. dropped=.. seconds=..
 *           and exits.
 *
 * Every line on stdout is flushed at once. A connection the server closes or that breaks
 * while it is held is a failure ("dropped", with the first reason on stderr).
 *
 * Exit status: 0 when every connection connected, none was dropped and no burst lost a
 * request; 1 otherwise, with the reason on stderr; 2 for bad usage. Everything is bounded:
 * the connect phase by --connect-timeout, a burst by --burst-timeout, the close as above, and
 * the whole process by --max-time (a SIGALRM that ends it, exit status 1).
 *
 * RLIMIT_NOFILE is set to twice what N connections need, capped at the hard limit (see
 * raise_fd_limit). One libwebsockets context on its own poll() loop, as in sip-load; the
 * connections have no lws liveness policy (see no_liveness), so that the crowd's own cost per
 * connection does not grow with the size of the crowd. */
#include "bench-util.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/time.h>

#define MAX_CONNECTIONS 100000
#define FD_MARGIN 64
/* While connecting or in a burst the tick starts handshakes, reads stdin and checks
 * deadlines; while the crowd is held it only reads stdin, and slowly, so that a poll() over
 * thousands of descriptors does not take CPU from the server being measured. */
#define TICK_BUSY_US (5 * G_TIME_SPAN_MILLISECOND)
#define TICK_IDLE_US (100 * G_TIME_SPAN_MILLISECOND)
#define CLOSE_PHASE_US (5 * G_TIME_SPAN_SECOND)
#define CLOSE_PER_CONNECTION_US 1000
#define MAX_MESSAGE_SIZE (64 * 1024)
#define REQUEST_MAX 1024
#define CALL_ID_MAX 96
#define STDIN_LINE_MAX 256
#define MAX_REPORTED_DROPS 5

#define WS_CROWD_ERROR (g_quark_from_static_string ("ws-crowd-error"))

typedef enum {
  PHASE_CONNECTING,
  PHASE_HOLDING,
  PHASE_CLOSING,
  PHASE_DONE,
} Phase;

typedef enum {
  CONN_IDLE,          /* not started */
  CONN_CONNECTING,
  CONN_OPEN,
  CONN_CLOSED,        /* closed at the end, as asked */
  CONN_FAILED,        /* the connect failed or was abandoned, or the connection was dropped */
} ConnState;

typedef struct _Crowd Crowd;

/* Kept small: there are tens of thousands of these. */
typedef struct {
  Crowd *crowd;
  guint number;               /* 1-based, for messages and Call-IDs */
  struct lws *wsi;
  ConnState state;
  guint close_requested : 1;
  guint close_started : 1;
  guint request_due : 1;      /* the burst's request waits for WRITEABLE */
  guint awaiting : 1;         /* its request is written and has no final response yet */
  guint32 cseq;
  gint64 sent_at;
  GByteArray *rx;             /* only while a message arrives in several fragments */
} Conn;

struct _Crowd {
  /* options */
  char *url;
  char *host;
  int port;
  char *path;
  char *host_header;
  char *request_uri;
  guint connections;
  guint parallel;
  double connect_timeout_s;
  double burst_timeout_s;

  struct lws_context *context;
  lws_sorted_usec_list_t tick;
  Phase phase;
  char run_id[9];
  char from_tag[9];
  Conn *conns;
  guint next_to_start;
  guint n_connecting;
  guint n_open;
  guint n_failed;             /* connects that failed or were abandoned */
  guint n_dropped;            /* open connections lost while held */
  guint n_closed;
  guint next_to_close;
  guint n_closing;            /* close frames sent, the server's not yet received */
  char *failure;              /* the first reason for a failed run */

  gint64 started_at;
  gint64 connect_deadline;
  gint64 last_established_at;

  /* the current burst */
  gboolean burst_active;
  guint burst_number;
  guint burst_sent;
  guint burst_answered;
  guint burst_dropped;
  gint64 burst_started_at;
  gint64 burst_deadline;
  gint64 burst_last_answer_at;
  GArray *latencies;          /* gint64 us */
  guint64 unmatched;
  gboolean any_lost;

  gint64 close_started_at;
  gint64 close_deadline;

  char stdin_line[STDIN_LINE_MAX];
  gsize stdin_len;
  gboolean stdin_done;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void
crowd_fail (Crowd      *crowd,
            const char *format,
            ...) G_GNUC_PRINTF (2, 3);

static void
crowd_fail (Crowd      *crowd,
            const char *format,
            ...)
{
  va_list args;

  if (crowd->failure != NULL)
    return;
  va_start (args, format);
  crowd->failure = g_strdup_vprintf (format, args);
  va_end (args);
}

/* The Call-ID of the current burst's request on @c: derived, not stored, to keep Conn small. */
static void
format_call_id (Conn *c,
                char *buffer,
                gsize size)
{
  g_snprintf (buffer, size, "%s-%u-%u@ws-crowd.invalid", c->crowd->run_id,
              c->crowd->burst_number, c->number);
}

static void schedule_tick (Crowd *crowd);
static void burst_finish (Crowd *crowd);

/* ---- the burst -------------------------------------------------------------------------- */

static void
burst_start (Crowd  *crowd,
             gint64  now)
{
  if (crowd->burst_active)
    {
      g_printerr ("ws-crowd: a burst is already running; \"burst\" ignored\n");
      return;
    }
  crowd->burst_active = TRUE;
  crowd->burst_number++;
  crowd->burst_sent = 0;
  crowd->burst_answered = 0;
  crowd->burst_dropped = 0;
  crowd->burst_started_at = now;
  crowd->burst_last_answer_at = now;
  crowd->burst_deadline = now + (gint64) (crowd->burst_timeout_s * G_USEC_PER_SEC);
  g_array_set_size (crowd->latencies, 0);

  /* Every connection asks to write now; lws then calls WRITEABLE for all of them in its next
   * pass, so that the requests reach the server together. */
  for (guint i = 0; i < crowd->connections; i++)
    {
      Conn *c = &crowd->conns[i];

      c->awaiting = FALSE;
      if (c->state != CONN_OPEN || c->close_requested)
        continue;
      c->request_due = TRUE;
      crowd->burst_sent++;
      lws_callback_on_writable (c->wsi);
    }
  if (crowd->burst_sent == 0)
    burst_finish (crowd);
  schedule_tick (crowd);
}

static void
burst_finish (Crowd *crowd)
{
  guint lost = crowd->burst_sent - crowd->burst_answered;
  gint64 p50, p99, max;

  bench_latencies_sort (crowd->latencies);
  p50 = bench_percentile (crowd->latencies, 50);
  p99 = bench_percentile (crowd->latencies, 99);
  max = crowd->latencies->len > 0
        ? g_array_index (crowd->latencies, gint64, crowd->latencies->len - 1) : 0;

  printf ("BURST sent=%u answered=%u lost=%u dropped=%u p50_us=%" G_GINT64_FORMAT
          " p99_us=%" G_GINT64_FORMAT " max_us=%" G_GINT64_FORMAT " seconds=%.3f\n",
          crowd->burst_sent, crowd->burst_answered, lost, crowd->burst_dropped, p50, p99, max,
          (MAX (crowd->burst_last_answer_at, crowd->burst_started_at) -
           crowd->burst_started_at) / (double) G_USEC_PER_SEC);
  fflush (stdout);

  if (lost > 0)
    {
      crowd->any_lost = TRUE;
      crowd_fail (crowd, "burst %u: %u of %u requests got no final response within %.1f s",
                  crowd->burst_number, lost, crowd->burst_sent, crowd->burst_timeout_s);
    }
  /* Late answers to this burst are ignored from now on. */
  for (guint i = 0; i < crowd->connections; i++)
    {
      crowd->conns[i].awaiting = FALSE;
      crowd->conns[i].request_due = FALSE;
    }
  crowd->burst_active = FALSE;
}

static int
write_request (Conn       *c,
               struct lws *wsi)
{
  Crowd *crowd = c->crowd;
  guint8 buffer[LWS_PRE + REQUEST_MAX];
  char *text = (char *) buffer + LWS_PRE;
  char call_id[CALL_ID_MAX];
  int len;

  format_call_id (c, call_id, sizeof call_id);
  c->cseq++;
  len = g_snprintf (text, REQUEST_MAX,
                    "OPTIONS %s SIP/2.0\r\n"
                    "Via: SIP/2.0/WS %s.invalid;branch=z9hG4bK%s.%u.%u\r\n"
                    "Max-Forwards: 70\r\n"
                    "To: <%s>\r\n"
                    "From: <sip:crowd%u@ws-crowd.invalid>;tag=%s\r\n"
                    "Call-ID: %s\r\n"
                    "CSeq: %u OPTIONS\r\n"
                    "User-Agent: ws-crowd\r\n"
                    "Content-Length: 0\r\n"
                    "\r\n",
                    crowd->request_uri,
                    crowd->run_id, crowd->run_id, crowd->burst_number, c->number,
                    crowd->request_uri,
                    c->number, crowd->from_tag,
                    call_id,
                    (guint) c->cseq);
  g_assert (len > 0 && len < REQUEST_MAX);

  c->request_due = FALSE;
  c->awaiting = TRUE;
  c->sent_at = g_get_monotonic_time ();
  return lws_write (wsi, buffer + LWS_PRE, (size_t) len, LWS_WRITE_TEXT) < 0 ? -1 : 0;
}

static void
handle_message (Conn         *c,
                const guint8 *data,
                gsize         len)
{
  Crowd *crowd = c->crowd;
  const char *text = (const char *) data;
  gsize head = bench_sip_head_length (data, len);
  const char *value;
  gsize value_len;
  char call_id[CALL_ID_MAX];
  gint64 now, latency;

  if (head == 0)
    head = len;
  /* Requests from the server, CRLF keep-alives and provisional responses are not answers. */
  if (len < 12 || memcmp (text, "SIP/2.0 ", 8) != 0 || text[8] < '2' || text[8] > '6')
    return;
  value = bench_sip_find_header (text, head, "Call-ID", "i", &value_len);
  format_call_id (c, call_id, sizeof call_id);
  if (!c->awaiting || value == NULL || value_len != strlen (call_id) ||
      memcmp (value, call_id, value_len) != 0)
    {
      crowd->unmatched++;
      return;
    }

  now = g_get_monotonic_time ();
  latency = now - c->sent_at;
  c->awaiting = FALSE;
  g_array_append_val (crowd->latencies, latency);
  crowd->burst_answered++;
  crowd->burst_last_answer_at = now;
  if (crowd->burst_answered == crowd->burst_sent)
    burst_finish (crowd);
}

/* ---- connections ------------------------------------------------------------------------ */

static void crowd_advance (Crowd *crowd);
static void conn_request_close (Conn *c);

static void
conn_opened (Conn *c)
{
  Crowd *crowd = c->crowd;

  if (c->state != CONN_CONNECTING)
    {
      /* Abandoned at the connect deadline, and came anyway: not one of the crowd. */
      c->close_requested = TRUE;
      lws_callback_on_writable (c->wsi);
      return;
    }
  c->state = CONN_OPEN;
  crowd->n_connecting--;
  crowd->n_open++;
  crowd->last_established_at = g_get_monotonic_time ();
  if (crowd->phase == PHASE_CLOSING)
    conn_request_close (c);
  crowd_advance (crowd);
}

/* The connection is gone (or never came): @reason says why. */
static void
conn_gone (Conn       *c,
           struct lws *wsi,
           const char *reason)
{
  Crowd *crowd = c->crowd;
  ConnState was = c->state;

  lws_set_opaque_user_data (wsi, NULL);
  c->wsi = NULL;
  g_clear_pointer (&c->rx, g_byte_array_unref);

  if (was == CONN_CONNECTING)
    {
      crowd->n_connecting--;
      c->state = CONN_FAILED;
      crowd->n_failed++;
      crowd_fail (crowd, "connection %u of %u to %s failed: %s", c->number, crowd->connections,
                  crowd->url, reason);
    }
  else if (was == CONN_OPEN)
    {
      crowd->n_open--;
      if (c->close_requested)
        {
          c->state = CONN_CLOSED;
          crowd->n_closed++;
          crowd->n_closing--;
        }
      else
        {
          c->state = CONN_FAILED;
          crowd->n_dropped++;
          if (crowd->burst_active && (c->awaiting || c->request_due))
            crowd->burst_dropped++;
          if (crowd->n_dropped <= MAX_REPORTED_DROPS)
            g_printerr ("ws-crowd: connection %u was dropped while held: %s\n", c->number,
                        reason);
          crowd_fail (crowd, "connection %u of %u to %s was dropped while held: %s", c->number,
                      crowd->connections, crowd->url, reason);
        }
    }
  c->awaiting = FALSE;
  c->request_due = FALSE;
  crowd_advance (crowd);
}

static int
on_writeable (Conn       *c,
              struct lws *wsi)
{
  if (c->close_started)
    return 0;
  if (c->close_requested)
    {
      c->close_started = TRUE;
      /* lws sends the close frame and waits for the server's before it closes the socket. */
      lws_close_reason (wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *) "bye", 3);
      return -1;
    }
  if (c->request_due && write_request (c, wsi) < 0)
    {
      c->close_started = TRUE;
      conn_gone (c, wsi, "write failed");
      return -1;
    }
  return 0;
}

static int
on_receive (Conn        *c,
            struct lws  *wsi,
            const void  *in,
            gsize        len)
{
  gboolean complete = lws_is_final_fragment (wsi) && lws_remaining_packet_payload (wsi) == 0;

  if (c->state != CONN_OPEN)
    return 0;
  /* The usual case, a whole message in one callback, needs no buffer of its own. */
  if (complete && c->rx == NULL)
    {
      handle_message (c, in, len);
      return 0;
    }
  if (c->rx == NULL)
    c->rx = g_byte_array_new ();
  if (c->rx->len + len > MAX_MESSAGE_SIZE)
    {
      c->close_started = TRUE;
      conn_gone (c, wsi, "a message larger than 64 KiB");
      return -1;
    }
  g_byte_array_append (c->rx, in, (guint) len);
  if (complete)
    {
      handle_message (c, c->rx->data, c->rx->len);
      g_clear_pointer (&c->rx, g_byte_array_unref);
    }
  return 0;
}

static int
callback_ws_crowd (struct lws                *wsi,
                   enum lws_callback_reasons  reason,
                   void                      *user,
                   void                      *in,
                   size_t                     len)
{
  Conn *c = wsi != NULL ? lws_get_opaque_user_data (wsi) : NULL;
  char seen[64];

  if (c == NULL)
    return lws_callback_http_dummy (wsi, reason, user, in, len);

  switch (reason)
    {
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
      /* RFC 7118 4.1: the 101 must select the sip subprotocol. */
      if (!bench_ws_selected_sip (wsi, seen, sizeof seen))
        {
          g_autofree char *why =
            g_strdup_printf ("the server did not accept the \"sip\" subprotocol (its 101 "
                             "selected \"%s\")", seen);

          conn_gone (c, wsi, why);
          return -1;
        }
      return 0;

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      conn_opened (c);
      return 0;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      conn_gone (c, wsi, in != NULL ? (const char *) in : "connection error");
      return 0;

    case LWS_CALLBACK_CLIENT_RECEIVE:
      return on_receive (c, wsi, in, len);

    case LWS_CALLBACK_CLIENT_WRITEABLE:
      return on_writeable (c, wsi);

    case LWS_CALLBACK_CLIENT_CLOSED:
      conn_gone (c, wsi, "closed by the server");
      return 0;

    case LWS_CALLBACK_WSI_DESTROY:
      conn_gone (c, wsi, "connection destroyed");
      return 0;

    default:
      return 0;
    }
}

static const struct lws_protocols protocols[] = {
  { .name = "ws-crowd", .callback = callback_ws_crowd },
  { 0 }
};

/* No liveness checks: without a policy lws 4.1 gives every client connection its default one
 * (a PING after 300 s idle, a hang-up 10 s later), and arms it for each connection by an
 * insertion into one sorted list of timers, which walks the whole list: with thousands of
 * connections, the crowd would spend its time there instead of in handshakes. The server's
 * PINGs are still answered (lws does that by itself). */
static const lws_retry_bo_t no_liveness = { 0 };

static void
conn_start (Conn *c)
{
  Crowd *crowd = c->crowd;
  struct lws_client_connect_info info;
  struct lws *wsi;

  memset (&info, 0, sizeof info);
  info.context = crowd->context;
  info.address = crowd->host;
  info.port = crowd->port;
  info.path = crowd->path;
  info.host = crowd->host_header;
  info.protocol = "sip";
  info.local_protocol_name = "ws-crowd";
  info.opaque_user_data = c;
  info.pwsi = &c->wsi;
  info.retry_and_idle_policy = &no_liveness;

  c->state = CONN_CONNECTING;
  crowd->n_connecting++;
  wsi = lws_client_connect_via_info (&info);
  if (wsi == NULL && c->state == CONN_CONNECTING)
    {
      /* failed synchronously without a callback */
      c->state = CONN_FAILED;
      c->wsi = NULL;
      crowd->n_connecting--;
      crowd->n_failed++;
      crowd_fail (crowd, "connection %u of %u to %s could not be started", c->number,
                  crowd->connections, crowd->url);
    }
}

/* ---- phases ----------------------------------------------------------------------------- */

static void
report_connected (Crowd *crowd)
{
  double seconds = (MAX (crowd->last_established_at, crowd->started_at) - crowd->started_at)
                   / (double) G_USEC_PER_SEC;

  printf ("CONNECTED n=%u failed=%u seconds=%.3f handshakes_per_s=%.1f\n", crowd->n_open,
          crowd->connections - crowd->n_open, seconds,
          seconds > 0 ? crowd->n_open / seconds : 0.0);
  fflush (stdout);
  crowd->phase = PHASE_HOLDING;
}

static void
conn_request_close (Conn *c)
{
  c->close_requested = TRUE;
  c->crowd->n_closing++;
  lws_callback_on_writable (c->wsi);
}

/* At most --parallel closing handshakes at a time, as for the opening ones: lws arms a
 * close-ack timeout for each by an insertion into its sorted list of timers, which walks the
 * whole list, so closing thousands at once would cost the square of their number. */
static void
close_more (Crowd *crowd)
{
  while (crowd->next_to_close < crowd->connections && crowd->n_closing < crowd->parallel)
    {
      Conn *c = &crowd->conns[crowd->next_to_close++];

      if (c->state == CONN_OPEN && !c->close_requested)
        conn_request_close (c);
    }
}

static void
begin_closing (Crowd  *crowd,
               gint64  now)
{
  if (crowd->burst_active)
    burst_finish (crowd);
  crowd->phase = PHASE_CLOSING;
  crowd->close_started_at = now;
  crowd->close_deadline = now + CLOSE_PHASE_US + crowd->connections * CLOSE_PER_CONNECTION_US;
  close_more (crowd);
  schedule_tick (crowd);
}

static void
handle_command (Crowd      *crowd,
                const char *line,
                gint64      now)
{
  if (strcmp (line, "burst") == 0)
    {
      if (crowd->phase == PHASE_HOLDING)
        burst_start (crowd, now);
      else
        g_printerr ("ws-crowd: \"burst\" ignored: the connections are not held yet\n");
    }
  else if (strcmp (line, "close") == 0)
    {
      crowd->stdin_done = TRUE;
      if (crowd->phase < PHASE_CLOSING)
        begin_closing (crowd, now);
    }
  else if (line[0] != '\0')
    g_printerr ("ws-crowd: unknown command \"%s\" ignored (burst, close)\n", line);
}

/* Reads what stdin has without blocking: whole lines are commands. */
static void
read_stdin (Crowd  *crowd,
            gint64  now)
{
  struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
  char chunk[STDIN_LINE_MAX];
  ssize_t got;

  if (crowd->stdin_done || poll (&pfd, 1, 0) <= 0)
    return;
  got = read (STDIN_FILENO, chunk, sizeof chunk);
  if (got < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (got <= 0)
    {
      /* The driver went away or closed the pipe: same as "close". */
      crowd->stdin_done = TRUE;
      if (crowd->phase < PHASE_CLOSING)
        begin_closing (crowd, now);
      return;
    }
  for (ssize_t i = 0; i < got && !crowd->stdin_done; i++)
    {
      if (chunk[i] == '\n')
        {
          crowd->stdin_line[crowd->stdin_len] = '\0';
          g_strstrip (crowd->stdin_line);
          handle_command (crowd, crowd->stdin_line, now);
          crowd->stdin_len = 0;
        }
      else if (crowd->stdin_len + 1 < sizeof crowd->stdin_line)
        crowd->stdin_line[crowd->stdin_len++] = chunk[i];
    }
}

static void
crowd_advance (Crowd *crowd)
{
  gint64 now = g_get_monotonic_time ();

  if (crowd->phase == PHASE_CONNECTING)
    {
      if (now >= crowd->connect_deadline)
        {
          /* Whatever is still connecting is given up: failed. Those still in lws end by its
           * own connect timeout, or are closed as soon as they come. */
          guint abandoned = 0;

          for (guint i = 0; i < crowd->connections; i++)
            {
              Conn *c = &crowd->conns[i];

              if (c->state == CONN_CONNECTING || c->state == CONN_IDLE)
                {
                  if (c->state == CONN_CONNECTING)
                    crowd->n_connecting--;
                  c->state = CONN_FAILED;
                  crowd->n_failed++;
                  abandoned++;
                }
            }
          crowd_fail (crowd, "%u of %u connections to %s were not established within %.1f s",
                      abandoned, crowd->connections, crowd->url, crowd->connect_timeout_s);
          crowd->next_to_start = crowd->connections;
        }
      /* Keep --parallel handshakes in flight. */
      while (crowd->next_to_start < crowd->connections &&
             crowd->n_connecting < crowd->parallel)
        conn_start (&crowd->conns[crowd->next_to_start++]);
      if (crowd->next_to_start == crowd->connections && crowd->n_connecting == 0)
        report_connected (crowd);
    }

  if (crowd->burst_active && now >= crowd->burst_deadline)
    burst_finish (crowd);

  if (crowd->phase == PHASE_CLOSING)
    close_more (crowd);
  if (crowd->phase == PHASE_CLOSING &&
      ((crowd->n_open == 0 && crowd->n_connecting == 0) || now >= crowd->close_deadline))
    {
      crowd->phase = PHASE_DONE;
      lws_cancel_service (crowd->context);
    }
}

static void
on_tick (lws_sorted_usec_list_t *sul)
{
  Crowd *crowd = lws_container_of (sul, Crowd, tick);

  read_stdin (crowd, g_get_monotonic_time ());
  crowd_advance (crowd);
  schedule_tick (crowd);
}

static void
schedule_tick (Crowd *crowd)
{
  gboolean busy = crowd->phase != PHASE_HOLDING || crowd->burst_active;

  if (crowd->phase == PHASE_DONE || crowd->context == NULL)
    return;
  lws_sul_schedule (crowd->context, 0, &crowd->tick, on_tick,
                    busy ? TICK_BUSY_US : TICK_IDLE_US);
}

/* ---- the hard limit --------------------------------------------------------------------- */

/* ---- options ---------------------------------------------------------------------------- */

static gboolean
parse_ws_url (Crowd      *crowd,
              const char *url,
              GError    **error)
{
  BenchWsUrl parsed = { 0 };

  if (!bench_ws_url_parse (url, &parsed, error))
    return FALSE;
  crowd->request_uri = strchr (parsed.host, ':') != NULL
                       ? g_strdup_printf ("sip:[%s]", parsed.host)
                       : g_strdup_printf ("sip:%s", parsed.host);
  crowd->host = parsed.host;
  crowd->port = parsed.port;
  crowd->path = parsed.path;
  crowd->host_header = parsed.host_header;
  return TRUE;
}

/* Up to what the connections need with room to spare, capped at the hard limit: lws sizes
 * its fd lookup table from this limit, and the Debian build of lws 4.1 scans that whole table
 * on every close (sanity_assert_no_sockfd_traces), so a limit far above the need (a hard
 * limit of 1M is common) would make each close cost megabytes of memory reads. A smaller
 * fd_limit_per_thread instead would make lws look every descriptor up linearly. */
static gboolean
raise_fd_limit (guint    connections,
                GError **error)
{
  rlim_t needed = (rlim_t) connections + FD_MARGIN;
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
    {
      g_set_error (error, WS_CROWD_ERROR, 0, "getrlimit: %s", g_strerror (errno));
      return FALSE;
    }
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < needed)
    {
      g_set_error (error, WS_CROWD_ERROR, 0,
                   "%u connections need about %lu file descriptors; the hard limit is %lu",
                   connections, (unsigned long) needed, (unsigned long) rl.rlim_max);
      return FALSE;
    }
  rl.rlim_cur = needed * 2;
  if (rl.rlim_max != RLIM_INFINITY)
    rl.rlim_cur = MIN (rl.rlim_cur, rl.rlim_max);
  if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
    {
      g_set_error (error, WS_CROWD_ERROR, 0, "setrlimit(RLIMIT_NOFILE, %lu): %s",
                   (unsigned long) rl.rlim_cur, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* ---- main ------------------------------------------------------------------------------- */

static void
crowd_clear (Crowd *crowd)
{
  if (crowd->conns != NULL)
    for (guint i = 0; i < crowd->connections; i++)
      g_clear_pointer (&crowd->conns[i].rx, g_byte_array_unref);
  g_free (crowd->conns);
  g_clear_pointer (&crowd->latencies, g_array_unref);
  g_free (crowd->failure);
  g_free (crowd->url);
  g_free (crowd->host);
  g_free (crowd->path);
  g_free (crowd->host_header);
  g_free (crowd->request_uri);
}

static int
usage_error (GOptionContext *context,
             const char     *message)
{
  g_printerr ("ws-crowd: %s\n\n", message);
  g_autofree char *help = g_option_context_get_help (context, TRUE, NULL);
  g_printerr ("%s", help);
  return 2;
}

int
main (int    argc,
      char **argv)
{
  Crowd crowd = { 0 };
  g_autofree char *url = NULL;
  int connections = 1000;
  int parallel = 200;
  double connect_timeout = 60;
  double burst_timeout = 10;
  double max_time = 600;
  gboolean verbose = FALSE;
  const GOptionEntry entries[] = {
    { "url", 0, 0, G_OPTION_ARG_STRING, &url, "WebSocket server", "ws://HOST:PORT/PATH" },
    { "connections", 'c', 0, G_OPTION_ARG_INT, &connections, "Connections (1000)", "N" },
    { "parallel", 'p', 0, G_OPTION_ARG_INT, &parallel,
      "Handshakes in flight at most (200)", "P" },
    { "connect-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &connect_timeout,
      "Seconds for all the connections to be established (60)", "S" },
    { "burst-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &burst_timeout,
      "Seconds for the answers to a burst (10)", "S" },
    { "max-time", 0, 0, G_OPTION_ARG_DOUBLE, &max_time,
      "Seconds after which the process ends whatever happens (600)", "S" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "libwebsockets warnings too", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context =
    g_option_context_new ("- many idle SIP-over-WebSocket connections; commands on stdin: "
                          "burst, close");
  g_autoptr(GError) error = NULL;
  struct lws_context_creation_info info;
  gboolean ok;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage_error (context, error->message);
  if (url == NULL)
    return usage_error (context, "--url is required");
  if (connections < 1 || connections > MAX_CONNECTIONS)
    return usage_error (context, "--connections must be from 1 to 100000");
  if (parallel < 1)
    return usage_error (context, "--parallel must be at least 1");
  if (!(connect_timeout > 0 && burst_timeout > 0 && max_time > 0))
    return usage_error (context, "the timeouts must be above 0");
  if (!parse_ws_url (&crowd, url, &error))
    {
      int status = usage_error (context, error->message);

      crowd_clear (&crowd);
      return status;
    }
  crowd.url = g_steal_pointer (&url);
  crowd.connections = (guint) connections;
  crowd.parallel = (guint) parallel;
  crowd.connect_timeout_s = connect_timeout;
  crowd.burst_timeout_s = burst_timeout;
  g_snprintf (crowd.run_id, sizeof crowd.run_id, "%08x", g_random_int ());
  g_snprintf (crowd.from_tag, sizeof crowd.from_tag, "%08x", g_random_int ());
  crowd.latencies = g_array_sized_new (FALSE, FALSE, sizeof (gint64), crowd.connections);
  crowd.conns = g_new0 (Conn, crowd.connections);
  for (guint i = 0; i < crowd.connections; i++)
    {
      crowd.conns[i].crowd = &crowd;
      crowd.conns[i].number = i + 1;
    }

  /* A driver that stops reading must not kill us in the middle of a line. */
  signal (SIGPIPE, SIG_IGN);
  if (!raise_fd_limit (crowd.connections, &error) || !bench_arm_hard_limit (max_time, "ws-crowd: FAILED: --max-time reached, giving up\n",
                             &error))
    {
      g_printerr ("ws-crowd: FAILED: %s\n", error->message);
      crowd_clear (&crowd);
      return 1;
    }

  lws_set_log_level (verbose ? LLL_ERR | LLL_WARN : LLL_ERR, NULL);
  memset (&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.user = &crowd;
  /* Per handshake; the phase as a whole is bounded by --connect-timeout. */
  info.timeout_secs = (unsigned int) MIN (MAX (connect_timeout, 5), 60);
  info.connect_timeout_secs = info.timeout_secs;
  crowd.context = lws_create_context (&info);
  if (crowd.context == NULL)
    {
      g_printerr ("ws-crowd: FAILED: lws_create_context failed\n");
      crowd_clear (&crowd);
      return 1;
    }

  crowd.started_at = g_get_monotonic_time ();
  crowd.connect_deadline = crowd.started_at + (gint64) (connect_timeout * G_USEC_PER_SEC);
  crowd.phase = PHASE_CONNECTING;
  crowd_advance (&crowd);
  schedule_tick (&crowd);

  while (crowd.phase != PHASE_DONE)
    if (lws_service (crowd.context, 0) < 0)
      {
        crowd_fail (&crowd, "lws_service failed");
        break;
      }

  printf ("CLOSED closed=%u dropped=%u seconds=%.3f\n", crowd.n_closed, crowd.n_dropped,
          (g_get_monotonic_time () - crowd.close_started_at) / (double) G_USEC_PER_SEC);
  fflush (stdout);
  if (crowd.n_open > 0)
    g_printerr ("ws-crowd: %u connections did not finish their close handshake in time\n",
                crowd.n_open);

  lws_sul_cancel (&crowd.tick);
  lws_context_destroy (crowd.context);
  crowd.context = NULL;

  ok = TRUE;
  if (crowd.failure != NULL)
    {
      g_printerr ("ws-crowd: FAILED: %s\n", crowd.failure);
      if (crowd.n_failed > 1 || crowd.n_dropped > 1)
        g_printerr ("ws-crowd: %u of %u connections failed to connect, %u were dropped\n",
                    crowd.n_failed, crowd.connections, crowd.n_dropped);
      ok = FALSE;
    }

  crowd_clear (&crowd);
  return ok ? 0 : 1;
}
