/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sip-load: the SIP load generator of the benchmarks (issue 6).
 *
 *   sip-load (--url ws://HOST:PORT/PATH | --tcp HOST:PORT)
 *            [--connections N] [--window W] [--duration S] [--warmup S]
 *            [--method OPTIONS|MESSAGE] [--request-uri URI] [--size BYTES]
 *            [--echo | --callees K] [--force] [--verbose]
 *
 * Opens N connections, either WebSocket (RFC 7118: subprotocol "sip", and the 101 must carry
 * it) or plain TCP (SIP framed by Content-Length), then keeps W requests outstanding on each
 * for S seconds: every final response is answered by a new request on the same connection.
 * Every request has its own Call-ID and Via branch; responses are matched to requests by
 * Call-ID, provisional (1xx) ones are ignored. When the time is up it stops sending, waits at
 * most 2 s for the outstanding requests, closes the connections and prints a table and one
 * machine-readable line:
 *
 *   RESULT requests=.. answered=.. lost=.. rps=.. p50_us=.. p99_us=.. max_us=.. non2xx=.. ...
 *
 * The counters (requests, answered, lost, non2xx) cover the whole run; requests/s and the
 * latencies only the part after the warm-up (the first --warmup seconds of --duration).
 * Latency runs from the lws_write() of a request to the reception of its final response.
 *
 * --size BYTES pads every request to BYTES (when it is shorter) with an "X-Pad: xxx..." header,
 * its body and Content-Length unchanged, to compare servers on messages of one size.
 *
 * --echo is for an echo server (tests/bench/lws-echo): a received message whose Call-ID is that
 * of an outstanding request is that request's final answer (a 2xx), whatever its start line.
 *
 * --callees K (with --method MESSAGE) measures a stateful relay such as the sofia-ws registrar:
 * before the load starts, K more connections (the callees, not counted in --connections) each
 * REGISTER sip:callee-<k>@HOST (k = 0..K-1; Contact with their own transport, Expires 600)
 * and wait for its 2xx; load connection i (1-based) then sends its MESSAGEs to
 * sip:callee-<(i-1) mod K>@HOST (Request-URI and To), and the callees answer every request
 * relayed to them with 200 OK (Via, From, To with a tag, Call-ID and CSeq copied). Any
 * non-2xx final response to a MESSAGE (404: the callee is not registered, 480: its connection
 * is gone) fails the run.
 *
 * Exit status: 0 when every connection connected and stayed up and every request got a final
 * response (lost == 0) (with --callees: and was relayed, non2xx == 0); 1 otherwise, with the
 * reason on stderr; 2 for bad usage. The whole run is bounded: at most --duration + 5 s (connect,
 * and the callees' REGISTER, <= 2.5 s; drain <= 2 s; close <= 0.3 s; and a timer that ends the
 * process if all else fails).
 *
 * One libwebsockets context on its own poll() loop, no GLib main loop: the hot path is
 * lws callbacks only. Writes happen in WRITEABLE, one lws_write() per callback (for TCP, the
 * queued requests are written together in that one call). */
#include "bench-util.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#define MAX_CONNECTIONS 2000
#define MAX_WINDOW 256
#define MAX_DURATION_S 3600.0
#define CONNECT_PHASE_US (2500 * G_TIME_SPAN_MILLISECOND)
#define DRAIN_PHASE_US (2 * G_TIME_SPAN_SECOND)
#define CLOSE_PHASE_US (300 * G_TIME_SPAN_MILLISECOND)
#define HARD_LIMIT_SLACK_S 5.0
#define TICK_US 5000
#define MAX_MESSAGE_SIZE (64 * 1024)
#define TCP_WRITE_CHUNK (64 * 1024)
#define FD_MARGIN 64
#define CALL_ID_MAX 128
#define MAX_SIZE (60 * 1024)
#define PAD_NAME "X-Pad: "
#define PAD_OVERHEAD (sizeof PAD_NAME - 1 + 2)    /* the name and the CRLF */
#define CALLEE_EXPIRES 600
#define NO_BODY "Content-Length: 0\r\n\r\n"

#define SIP_LOAD_ERROR (g_quark_from_static_string ("sip-load-error"))

typedef enum {
  MODE_WS,
  MODE_TCP,
} Mode;

typedef enum {
  PHASE_CONNECTING,
  PHASE_REGISTERING,  /* --callees: connected, waiting for the callees' REGISTER to succeed */
  PHASE_RUNNING,
  PHASE_DRAINING,
  PHASE_CLOSING,
  PHASE_DONE,
} Phase;

typedef enum {
  CONN_IDLE,          /* not started */
  CONN_CONNECTING,
  CONN_OPEN,
  CONN_CLOSED,        /* closed at the end of the run, as asked */
  CONN_FAILED,        /* the connect failed, or the connection was lost */
} ConnState;

typedef struct _Load Load;
typedef struct _Pending Pending;

typedef struct {
  Load *load;
  guint number;               /* 1-based, for messages */
  gboolean is_callee;
  guint callee;               /* callees: k in sip:callee-<k>@HOST */
  struct lws *wsi;
  ConnState state;
  gboolean close_requested;
  gboolean close_started;
  char *local;                /* "x.invalid" or "ip:port": our side, for Via and Contact */
  char *via;                  /* "SIP/2.0/WS x.invalid" or "SIP/2.0/TCP ip:port;rport" */
  char *request_uri;          /* --callees: this connection's callee; NULL: load->request_uri */
  char *register_call_id;     /* callees: of their REGISTER */
  gboolean registered;        /* callees: their REGISTER got a 2xx */
  char *from_tag;
  guint32 cseq;
  GQueue tx;                  /* OutMessage *, oldest first */
  GByteArray *rx;             /* WS: the message being reassembled; TCP: unparsed bytes */
  GByteArray *scratch;        /* TCP: LWS_PRE + the requests written in one go */
} Conn;

typedef struct {
  Pending *pending;           /* owned by Load.pending; alive until its final response; NULL
                                 for what is not a measured request (callees' messages) */
  gsize len;
  guint8 data[];              /* LWS_PRE bytes of headroom, then len bytes */
} OutMessage;

struct _Pending {
  char call_id[CALL_ID_MAX];
  Conn *conn;
  gint64 sent_at;             /* 0 until written */
  gboolean measured;
};

struct _Load {
  /* options */
  Mode mode;
  char *target;               /* as given, for messages */
  char *host;
  int port;
  char *path;
  char *host_header;
  guint connections;
  guint window;
  double duration_s;
  double warmup_s;
  char *method;
  char *domain;               /* HOST, or [HOST] for IPv6: the host part of SIP URIs */
  char *request_uri;
  gboolean is_message;
  gsize size;                 /* pad requests to this (0: no padding) */
  gboolean echo;
  guint callees;

  struct lws_context *context;
  lws_sorted_usec_list_t tick;
  Phase phase;
  char run_id[9];
  Conn *conns;
  guint n_connecting;
  guint n_open;
  guint n_failed;
  guint n_registered;         /* callees */
  char *failure;              /* the first reason for a failed run */

  gint64 started_at;
  gint64 connect_deadline;
  gint64 connected_at;
  gint64 registered_at;       /* --callees */
  gint64 load_start;
  gint64 warm_end;
  gint64 stop_at;
  gint64 stopped_at;          /* when sending stopped: stop_at, or earlier after a failure */
  gint64 drain_deadline;
  gint64 close_deadline;
  gboolean load_ran;

  GHashTable *pending;        /* Call-ID -> Pending * (owned) */
  guint64 seq;

  /* counters, whole run */
  guint64 requests;
  guint64 answered;
  guint64 non2xx;
  guint64 provisional;
  guint64 unmatched;
  guint64 ignored;            /* requests from the server, keep-alives, junk */
  guint64 relayed;            /* requests the callees answered */
  guint first_non2xx;         /* the status of the first non-2xx final response, or 0 */
  guint dropped;
  /* measured part */
  guint64 answered_in_window;
  GArray *latencies;          /* gint64 us, of measured requests */
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void
load_fail (Load       *load,
           const char *format,
           ...) G_GNUC_PRINTF (2, 3);

static void
load_fail (Load       *load,
           const char *format,
           ...)
{
  va_list args;

  if (load->failure != NULL)
    return;
  va_start (args, format);
  load->failure = g_strdup_vprintf (format, args);
  va_end (args);
}

static const char *
mode_name (Load *load)
{
  return load->mode == MODE_WS ? "ws" : "tcp";
}

/* The load connections first, then the callees. */
static guint
conn_count (Load *load)
{
  return load->connections + load->callees;
}

/* "connection 3 of 50" or "callee connection 1 of 10", for messages. */
static char *
conn_describe (Conn *c)
{
  if (c->is_callee)
    return g_strdup_printf ("callee connection %u of %u", c->callee + 1, c->load->callees);
  return g_strdup_printf ("connection %u of %u", c->number, c->load->connections);
}

/* Whether data[0..len) starts with a status line; its code in @status. */
static gboolean
parse_status (const char *text,
              gsize       len,
              guint      *status)
{
  if (len < 12 || memcmp (text, "SIP/2.0 ", 8) != 0 ||
      !g_ascii_isdigit (text[8]) || !g_ascii_isdigit (text[9]) || !g_ascii_isdigit (text[10]))
    return FALSE;
  *status = (guint) ((text[8] - '0') * 100 + (text[9] - '0') * 10 + (text[10] - '0'));
  return TRUE;
}

static void
out_message_free (gpointer data)
{
  g_free (data);
}

static void
conn_clear_queues (Conn *c)
{
  g_queue_clear_full (&c->tx, out_message_free);
  if (c->rx != NULL)
    g_byte_array_set_size (c->rx, 0);
}

/* ---- requests --------------------------------------------------------------------------- */

/* Queues @head, then (--size) an X-Pad line that brings the whole to load->size bytes when
 * it is shorter, then @tail; @tail holds Content-Length and the body, so padding does not
 * change them. */
static void
queue_message (Conn       *c,
               Pending    *p,
               const char *head,
               gsize       head_len,
               const char *tail,
               gsize       tail_len,
               gboolean    pad)
{
  Load *load = c->load;
  gsize pad_len = 0;
  gsize len;
  OutMessage *m;
  guint8 *at;

  if (pad && load->size > head_len + tail_len + PAD_OVERHEAD)
    pad_len = load->size - head_len - tail_len - PAD_OVERHEAD;
  len = head_len + (pad_len > 0 ? PAD_OVERHEAD + pad_len : 0) + tail_len;

  m = g_malloc (sizeof *m + LWS_PRE + len);
  m->pending = p;
  m->len = len;
  at = m->data + LWS_PRE;
  memcpy (at, head, head_len);
  at += head_len;
  if (pad_len > 0)
    {
      memcpy (at, PAD_NAME, sizeof PAD_NAME - 1);
      at += sizeof PAD_NAME - 1;
      memset (at, 'x', pad_len);
      at += pad_len;
      memcpy (at, "\r\n", 2);
      at += 2;
    }
  memcpy (at, tail, tail_len);

  g_queue_push_tail (&c->tx, m);
  lws_callback_on_writable (c->wsi);
}

static void
send_request (Conn *c)
{
  Load *load = c->load;
  const char *request_uri = c->request_uri != NULL ? c->request_uri : load->request_uri;
  char buffer[2048];
  char tail[160];
  char body[96] = "";
  char content_type[64] = "";
  Pending *p;
  guint64 n = ++load->seq;
  int len, tail_len;

  p = g_new0 (Pending, 1);
  p->conn = c;
  g_snprintf (p->call_id, sizeof p->call_id, "%s-%u-%" G_GUINT64_FORMAT "@sip-load.invalid",
              load->run_id, c->number, n);
  c->cseq++;

  if (load->is_message)
    {
      g_snprintf (body, sizeof body, "sip-load message %" G_GUINT64_FORMAT " on connection %u",
                  n, c->number);
      g_strlcpy (content_type, "Content-Type: text/plain\r\n", sizeof content_type);
    }

  len = g_snprintf (buffer, sizeof buffer,
                    "%s %s SIP/2.0\r\n"
                    "Via: %s;branch=z9hG4bK%s.%u.%" G_GUINT64_FORMAT "\r\n"
                    "Max-Forwards: 70\r\n"
                    "To: <%s>\r\n"
                    "From: <sip:load%u@sip-load.invalid>;tag=%s\r\n"
                    "Call-ID: %s\r\n"
                    "CSeq: %u %s\r\n"
                    "User-Agent: sip-load\r\n"
                    "%s",
                    load->method, request_uri,
                    c->via, load->run_id, c->number, n,
                    request_uri,
                    c->number, c->from_tag,
                    p->call_id,
                    (guint) c->cseq, load->method,
                    content_type);
  g_assert (len > 0 && (gsize) len < sizeof buffer);
  tail_len = g_snprintf (tail, sizeof tail, "Content-Length: %zu\r\n\r\n%s", strlen (body), body);
  g_assert (tail_len > 0 && (gsize) tail_len < sizeof tail);

  g_hash_table_insert (load->pending, p->call_id, p);
  load->requests++;
  queue_message (c, p, buffer, (gsize) len, tail, (gsize) tail_len, TRUE);
}

/* ---- callees ---------------------------------------------------------------------------- */

static void
callee_register (Conn *c)
{
  Load *load = c->load;
  char buffer[1024];
  int len;

  c->register_call_id = g_strdup_printf ("%s-callee-%u@sip-load.invalid", load->run_id,
                                         c->callee);
  len = g_snprintf (buffer, sizeof buffer,
                    "REGISTER sip:%s SIP/2.0\r\n"
                    "Via: %s;branch=z9hG4bK%s.callee.%u\r\n"
                    "Max-Forwards: 70\r\n"
                    "To: <sip:callee-%u@%s>\r\n"
                    "From: <sip:callee-%u@%s>;tag=%s\r\n"
                    "Call-ID: %s\r\n"
                    "CSeq: 1 REGISTER\r\n"
                    "Contact: <sip:callee-%u@%s;transport=%s>\r\n"
                    "Expires: %d\r\n"
                    "User-Agent: sip-load\r\n",
                    load->domain,
                    c->via, load->run_id, c->callee,
                    c->callee, load->domain,
                    c->callee, load->domain, c->from_tag,
                    c->register_call_id,
                    c->callee, c->local, mode_name (load),
                    CALLEE_EXPIRES);
  g_assert (len > 0 && (gsize) len < sizeof buffer);
  queue_message (c, NULL, buffer, (gsize) len, NO_BODY, sizeof NO_BODY - 1, FALSE);
}

static void load_advance (Load *load);

static void
callee_on_response (Conn       *c,
                    const char *text,
                    gsize       head,
                    guint       status)
{
  Load *load = c->load;
  const char *value;
  gsize value_len;

  value = bench_sip_find_header (text, head, "Call-ID", "i", &value_len);
  if (value == NULL || c->register_call_id == NULL ||
      value_len != strlen (c->register_call_id) ||
      memcmp (value, c->register_call_id, value_len) != 0)
    {
      load->unmatched++;
      return;
    }
  if (status < 200 || c->registered)
    return;
  if (status >= 300)
    {
      load_fail (load, "the REGISTER of sip:callee-%u@%s to %s got %u", c->callee, load->domain,
                 load->target, status);
      load_advance (load);
      return;
    }
  c->registered = TRUE;
  load->n_registered++;
  load_advance (load);
}

/* Whether the header value value[0..len) has a tag parameter. */
static gboolean
has_tag (const char *value,
         gsize       len)
{
  for (gsize i = 0; i + 5 <= len; i++)
    if (g_ascii_strncasecmp (value + i, ";tag=", 5) == 0)
      return TRUE;
  return FALSE;
}

/* Whether the header name name[0..len) is @full or its compact form @compact. */
static gboolean
header_is (const char *name,
           gsize       len,
           const char *full,
           const char *compact)
{
  return (len == strlen (full) && g_ascii_strncasecmp (name, full, len) == 0) ||
         (compact != NULL && len == strlen (compact) &&
          g_ascii_strncasecmp (name, compact, len) == 0);
}

/* A relayed request (the head text[0..head)): 200 OK, with its Vias, From, To (tagged),
 * Call-ID and CSeq, as RFC 3261 8.2.6.2 wants them. */
static void
callee_answer (Conn       *c,
               const char *text,
               gsize       head)
{
  g_autoptr(GString) response = g_string_sized_new (head + 64);
  const char *end = text + head;
  const char *line = memchr (text, '\n', head);

  g_string_append (response, "SIP/2.0 200 OK\r\n");
  for (line = line != NULL ? line + 1 : end; line < end; )
    {
      const char *eol = memchr (line, '\n', (gsize) (end - line));
      const char *line_end;
      const char *colon;
      const char *name_end;
      gsize name_len;

      if (eol == NULL)
        eol = end;
      line_end = eol > line && eol[-1] == '\r' ? eol - 1 : eol;
      colon = memchr (line, ':', (gsize) (line_end - line));
      if (colon != NULL)
        {
          name_end = colon;
          while (name_end > line && (name_end[-1] == ' ' || name_end[-1] == '\t'))
            name_end--;
          name_len = (gsize) (name_end - line);
          if (header_is (line, name_len, "To", "t"))
            {
              g_string_append_len (response, line, line_end - line);
              if (!has_tag (colon, (gsize) (line_end - colon)))
                g_string_append_printf (response, ";tag=%s", c->from_tag);
              g_string_append (response, "\r\n");
            }
          else if (header_is (line, name_len, "Via", "v") ||
                   header_is (line, name_len, "From", "f") ||
                   header_is (line, name_len, "Call-ID", "i") ||
                   header_is (line, name_len, "CSeq", NULL))
            {
              g_string_append_len (response, line, line_end - line);
              g_string_append (response, "\r\n");
            }
        }
      line = eol + 1;
    }
  g_string_append (response, NO_BODY);

  c->load->relayed++;
  queue_message (c, NULL, response->str, response->len, "", 0, FALSE);
}

static void
callee_handle_message (Conn       *c,
                       const char *text,
                       gsize       head,
                       gsize       len)
{
  guint status;

  if (parse_status (text, len, &status))
    callee_on_response (c, text, head, status);
  else if (len < 4 || !g_ascii_isalpha (text[0]) || memcmp (text, "ACK ", 4) == 0)
    c->load->ignored++;         /* a CRLF keep-alive; an ACK needs no answer */
  else
    callee_answer (c, text, head);
}

static void
mark_sent (Load    *load,
           Pending *p,
           gint64   now)
{
  p->sent_at = now;
  p->measured = now >= load->warm_end && now < load->stop_at;
}

/* ---- responses -------------------------------------------------------------------------- */

static void
handle_message (Conn         *c,
                const guint8 *data,
                gsize         len)
{
  Load *load = c->load;
  const char *text = (const char *) data;
  gsize head = bench_sip_head_length (data, len);
  const char *value;
  gsize value_len;
  char call_id[CALL_ID_MAX];
  Pending *p;
  Conn *owner;
  guint status;
  gint64 now;

  if (head == 0)
    head = len;
  if (c->is_callee)
    {
      callee_handle_message (c, text, head, len);
      return;
    }
  if (load->echo)
    status = 200;               /* our own request back: its answer, whatever it says */
  else if (!parse_status (text, len, &status))
    {
      load->ignored++;          /* a request from the server, or a CRLF keep-alive */
      return;
    }
  if (status < 200)
    {
      load->provisional++;
      return;
    }

  value = bench_sip_find_header (text, head, "Call-ID", "i", &value_len);
  if (value == NULL || value_len == 0 || value_len >= sizeof call_id)
    {
      load->unmatched++;
      return;
    }
  memcpy (call_id, value, value_len);
  call_id[value_len] = '\0';
  p = g_hash_table_lookup (load->pending, call_id);
  if (p == NULL || p->sent_at == 0)
    {
      load->unmatched++;
      return;
    }

  now = g_get_monotonic_time ();
  load->answered++;
  if (status >= 300)
    {
      load->non2xx++;
      if (load->first_non2xx == 0)
        load->first_non2xx = status;
    }
  if (now >= load->warm_end && now < load->stop_at)
    load->answered_in_window++;
  if (p->measured)
    {
      gint64 latency = now - p->sent_at;

      g_array_append_val (load->latencies, latency);
    }
  owner = p->conn;
  g_hash_table_remove (load->pending, call_id);

  if (load->phase == PHASE_RUNNING && now < load->stop_at && owner->state == CONN_OPEN)
    send_request (owner);
}

/* TCP: the stream holds whole and partial messages, framed by Content-Length. */
static gboolean
tcp_consume (Conn *c)
{
  GByteArray *rx = c->rx;
  gsize offset = 0;

  for (;;)
    {
      const guint8 *start;
      gsize avail, head, body_len;
      const char *value;
      gsize value_len;
      char digits[16];
      char *digits_end;
      guint64 parsed;

      /* CRLF keep-alives between messages (RFC 5626) */
      while (offset < rx->len && (rx->data[offset] == '\r' || rx->data[offset] == '\n'))
        offset++;
      if (offset == rx->len)
        break;

      start = rx->data + offset;
      avail = rx->len - offset;
      head = bench_sip_head_length (start, avail);
      if (head == 0)
        {
          if (avail > MAX_MESSAGE_SIZE)
            {
              load_fail (c->load, "connection %u: no end of headers within %d bytes",
                         c->number, MAX_MESSAGE_SIZE);
              return FALSE;
            }
          break;
        }

      value = bench_sip_find_header ((const char *) start, head, "Content-Length", "l", &value_len);
      if (value == NULL || value_len == 0 || value_len >= sizeof digits)
        {
          load_fail (c->load, "connection %u: a message without a valid Content-Length "
                     "(required over TCP)", c->number);
          return FALSE;
        }
      memcpy (digits, value, value_len);
      digits[value_len] = '\0';
      errno = 0;
      parsed = g_ascii_strtoull (digits, &digits_end, 10);
      if (errno != 0 || *digits_end != '\0' || parsed > MAX_MESSAGE_SIZE)
        {
          load_fail (c->load, "connection %u: bad Content-Length \"%s\"", c->number, digits);
          return FALSE;
        }
      body_len = (gsize) parsed;
      if (avail < head + body_len)
        break;

      handle_message (c, start, head + body_len);
      offset += head + body_len;
    }

  if (offset > 0)
    g_byte_array_remove_range (rx, 0, (guint) offset);
  return TRUE;
}

/* ---- connections ------------------------------------------------------------------------ */

static void
conn_opened (Conn       *c,
             struct lws *wsi)
{
  Load *load = c->load;

  c->state = CONN_OPEN;
  load->n_connecting--;
  load->n_open++;

  if (load->mode == MODE_TCP)
    {
      struct sockaddr_storage ss;
      socklen_t ss_len = sizeof ss;
      char ip[INET6_ADDRSTRLEN] = "127.0.0.1";
      guint port = 0;

      if (getsockname (lws_get_socket_fd (wsi), (struct sockaddr *) &ss, &ss_len) == 0)
        {
          if (ss.ss_family == AF_INET)
            {
              struct sockaddr_in *sin = (struct sockaddr_in *) &ss;

              inet_ntop (AF_INET, &sin->sin_addr, ip, sizeof ip);
              port = ntohs (sin->sin_port);
            }
          else if (ss.ss_family == AF_INET6)
            {
              struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

              inet_ntop (AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
              port = ntohs (sin6->sin6_port);
            }
        }
      g_free (c->local);
      g_free (c->via);
      c->local = strchr (ip, ':') != NULL ? g_strdup_printf ("[%s]:%u", ip, port)
                                          : g_strdup_printf ("%s:%u", ip, port);
      c->via = g_strdup_printf ("SIP/2.0/TCP %s;rport", c->local);
    }

  if (load->phase != PHASE_CONNECTING)
    {
      /* Too late (the run was abandoned): close it again. */
      c->close_requested = TRUE;
      lws_callback_on_writable (wsi);
      return;
    }
  load_advance (load);
}

/* The connection is gone (or never came): @reason is NULL for a close we asked for. */
static void
conn_gone (Conn       *c,
           struct lws *wsi,
           const char *reason)
{
  Load *load = c->load;
  ConnState was = c->state;
  g_autofree char *what = NULL;

  lws_set_opaque_user_data (wsi, NULL);
  c->wsi = NULL;
  conn_clear_queues (c);

  if (was == CONN_CONNECTING)
    load->n_connecting--;
  else if (was == CONN_OPEN)
    load->n_open--;
  else
    return;

  if (c->close_requested || load->phase >= PHASE_CLOSING)
    {
      c->state = CONN_CLOSED;
      load_advance (load);
      return;
    }

  c->state = CONN_FAILED;
  load->n_failed++;
  what = conn_describe (c);
  if (was == CONN_CONNECTING)
    load_fail (load, "%s to %s failed: %s", what, load->target,
               reason != NULL ? reason : "unknown error");
  else
    {
      load->dropped++;
      load_fail (load, "%s to %s was lost during the run: %s", what, load->target,
                 reason != NULL ? reason : "closed");
    }
  load_advance (load);
}

static int
on_writeable (Conn       *c,
              struct lws *wsi)
{
  Load *load = c->load;
  gint64 now;

  if (c->close_started)
    return 0;
  if (c->close_requested)
    {
      c->close_started = TRUE;
      if (load->mode == MODE_WS)
        lws_close_reason (wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *) "done", 4);
      return -1;
    }
  if (g_queue_is_empty (&c->tx))
    return 0;

  now = g_get_monotonic_time ();
  if (load->mode == MODE_WS)
    {
      OutMessage *m = g_queue_pop_head (&c->tx);
      int written;

      if (m->pending != NULL)
        mark_sent (load, m->pending, now);
      /* lws masks the payload in place: after this, m->data is no longer the text */
      written = lws_write (wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
      g_free (m);
      if (written < 0)
        {
          c->close_started = TRUE;
          conn_gone (c, wsi, "write failed");
          return -1;
        }
    }
  else
    {
      /* A byte stream: write what is queued (up to a chunk) in one go. */
      gsize total = 0;
      int written;

      g_byte_array_set_size (c->scratch, LWS_PRE);
      while (!g_queue_is_empty (&c->tx))
        {
          OutMessage *m = g_queue_peek_head (&c->tx);

          if (total > 0 && total + m->len > TCP_WRITE_CHUNK)
            break;
          g_queue_pop_head (&c->tx);
          if (m->pending != NULL)
            mark_sent (load, m->pending, now);
          g_byte_array_append (c->scratch, m->data + LWS_PRE, (guint) m->len);
          total += m->len;
          g_free (m);
        }
      written = lws_write (wsi, c->scratch->data + LWS_PRE, total, LWS_WRITE_RAW);
      if (written < (int) total)
        {
          c->close_started = TRUE;
          conn_gone (c, wsi, "write failed");
          return -1;
        }
    }

  if (!g_queue_is_empty (&c->tx))
    lws_callback_on_writable (wsi);
  return 0;
}

static int
on_receive (Conn        *c,
            struct lws  *wsi,
            const void  *in,
            gsize        len)
{
  if (c->state != CONN_OPEN)
    return 0;
  if (c->rx->len + len > MAX_MESSAGE_SIZE + (c->load->mode == MODE_TCP ? 4096 : 0))
    {
      load_fail (c->load, "connection %u: a message larger than %d bytes",
                 c->number, MAX_MESSAGE_SIZE);
      c->close_started = TRUE;
      conn_gone (c, wsi, "message too large");
      return -1;
    }
  g_byte_array_append (c->rx, in, (guint) len);

  if (c->load->mode == MODE_TCP)
    {
      if (!tcp_consume (c))
        {
          c->close_started = TRUE;
          conn_gone (c, wsi, "unparsable stream");
          return -1;
        }
      return 0;
    }

  /* WebSocket: reassemble the frames of one message */
  if (!lws_is_final_fragment (wsi) || lws_remaining_packet_payload (wsi) > 0)
    return 0;
  handle_message (c, c->rx->data, c->rx->len);
  g_byte_array_set_size (c->rx, 0);
  return 0;
}

static int
callback_sip_load (struct lws                *wsi,
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
            seen[0] != '\0'
            ? g_strdup_printf ("the server did not accept the \"sip\" subprotocol "
                               "(its 101 selected \"%s\")", seen)
            : g_strdup ("the server did not accept the \"sip\" subprotocol "
                        "(its 101 had no Sec-WebSocket-Protocol)");

          conn_gone (c, wsi, why);
          return -1;
        }
      return 0;

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
    case LWS_CALLBACK_RAW_CONNECTED:
      conn_opened (c, wsi);
      return 0;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      conn_gone (c, wsi, in != NULL ? (const char *) in : "connection error");
      return 0;

    case LWS_CALLBACK_CLIENT_RECEIVE:
    case LWS_CALLBACK_RAW_RX:
      return on_receive (c, wsi, in, len);

    case LWS_CALLBACK_CLIENT_WRITEABLE:
    case LWS_CALLBACK_RAW_WRITEABLE:
      return on_writeable (c, wsi);

    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_RAW_CLOSE:
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
  { .name = "sip-load", .callback = callback_sip_load },
  { 0 }
};

static void
conn_start (Conn *c)
{
  Load *load = c->load;
  struct lws_client_connect_info info;
  struct lws *wsi;
  g_autofree char *what = NULL;

  memset (&info, 0, sizeof info);
  info.context = load->context;
  info.address = load->host;
  info.port = load->port;
  info.opaque_user_data = c;
  info.pwsi = &c->wsi;
  info.local_protocol_name = "sip-load";
  if (load->mode == MODE_WS)
    {
      info.path = load->path;
      info.host = load->host_header;
      info.protocol = "sip";
    }
  else
    {
      info.method = "RAW";
    }

  c->state = CONN_CONNECTING;
  load->n_connecting++;
  wsi = lws_client_connect_via_info (&info);
  if (wsi == NULL && c->state == CONN_CONNECTING)
    {
      /* failed synchronously without a callback */
      c->state = CONN_FAILED;
      load->n_connecting--;
      load->n_failed++;
      c->wsi = NULL;
      what = conn_describe (c);
      load_fail (load, "%s to %s could not be started", what, load->target);
    }
}

/* ---- phases ----------------------------------------------------------------------------- */

static void
begin_closing (Load  *load,
               gint64 now)
{
  load->phase = PHASE_CLOSING;
  load->close_deadline = now + CLOSE_PHASE_US;
  for (guint i = 0; i < conn_count (load); i++)
    {
      Conn *c = &load->conns[i];

      if (c->state == CONN_OPEN && !c->close_requested)
        {
          c->close_requested = TRUE;
          lws_callback_on_writable (c->wsi);
        }
    }
}

/* --callees: every connection is up; the callees REGISTER before any MESSAGE goes out. */
static void
start_registering (Load  *load,
                   gint64 now)
{
  load->phase = PHASE_REGISTERING;
  load->connected_at = now;
  for (guint i = load->connections; i < conn_count (load); i++)
    callee_register (&load->conns[i]);
}

static void
start_load (Load  *load,
            gint64 now)
{
  load->phase = PHASE_RUNNING;
  load->load_ran = TRUE;
  if (load->connected_at == 0)
    load->connected_at = now;
  load->registered_at = now;
  load->load_start = now;
  load->warm_end = now + (gint64) (load->warmup_s * G_USEC_PER_SEC);
  load->stop_at = now + (gint64) (load->duration_s * G_USEC_PER_SEC);
  for (guint i = 0; i < load->connections; i++)
    for (guint w = 0; w < load->window; w++)
      send_request (&load->conns[i]);
}

static void
load_advance (Load *load)
{
  gint64 now = g_get_monotonic_time ();

  if (load->phase == PHASE_CONNECTING)
    {
      if (load->failure != NULL)
        begin_closing (load, now);
      else if (load->n_open == conn_count (load))
        {
          if (load->callees > 0)
            start_registering (load, now);
          else
            start_load (load, now);
        }
      else if (now >= load->connect_deadline)
        {
          load_fail (load, "only %u of %u connections to %s were established within %.1f s",
                     load->n_open, conn_count (load), load->target,
                     CONNECT_PHASE_US / (double) G_USEC_PER_SEC);
          begin_closing (load, now);
        }
    }

  /* Within the same deadline as the connections, so that the run keeps its bound. */
  if (load->phase == PHASE_REGISTERING)
    {
      if (load->failure != NULL)
        begin_closing (load, now);
      else if (load->n_registered == load->callees)
        start_load (load, now);
      else if (now >= load->connect_deadline)
        {
          load_fail (load, "only %u of %u callees were registered at %s within %.1f s",
                     load->n_registered, load->callees, load->target,
                     CONNECT_PHASE_US / (double) G_USEC_PER_SEC);
          begin_closing (load, now);
        }
    }

  if (load->phase == PHASE_RUNNING && (now >= load->stop_at || load->failure != NULL))
    {
      load->phase = PHASE_DRAINING;
      load->stopped_at = MIN (now, load->stop_at);
      load->drain_deadline = now + DRAIN_PHASE_US;
    }

  if (load->phase == PHASE_DRAINING &&
      (g_hash_table_size (load->pending) == 0 || now >= load->drain_deadline ||
       load->n_open == 0))
    begin_closing (load, now);

  if (load->phase == PHASE_CLOSING && (load->n_open == 0 || now >= load->close_deadline))
    {
      load->phase = PHASE_DONE;
      lws_cancel_service (load->context);
    }
}

static void
on_tick (lws_sorted_usec_list_t *sul)
{
  Load *load = lws_container_of (sul, Load, tick);

  load_advance (load);
  if (load->phase != PHASE_DONE)
    lws_sul_schedule (load->context, 0, &load->tick, on_tick, TICK_US);
}

/* ---- the hard limit --------------------------------------------------------------------- */

/* ---- options ---------------------------------------------------------------------------- */

static gboolean
parse_ws_url (Load       *load,
              const char *url,
              GError    **error)
{
  BenchWsUrl parsed = { 0 };

  if (!bench_ws_url_parse (url, &parsed, error))
    return FALSE;
  load->host = parsed.host;
  load->port = parsed.port;
  load->path = parsed.path;
  load->host_header = parsed.host_header;
  return TRUE;
}

static gboolean
parse_tcp_target (Load       *load,
                  const char *target,
                  GError    **error)
{
  const char *colon = strrchr (target, ':');
  char *end;
  guint64 port;

  if (colon == NULL || colon == target || colon[1] == '\0')
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--tcp wants HOST:PORT, not \"%s\"", target);
      return FALSE;
    }
  port = g_ascii_strtoull (colon + 1, &end, 10);
  if (*end != '\0' || port == 0 || port > 65535)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "bad port in \"%s\"", target);
      return FALSE;
    }
  if (target[0] == '[' && colon[-1] == ']')
    load->host = g_strndup (target + 1, (gsize) (colon - target) - 2);
  else
    load->host = g_strndup (target, (gsize) (colon - target));
  load->port = (int) port;
  return TRUE;
}

static gboolean
raise_fd_limit (guint    connections,
                GError **error)
{
  rlim_t needed = (rlim_t) connections + FD_MARGIN;
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
    return TRUE;
  if (rl.rlim_cur >= needed)
    return TRUE;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < needed)
    {
      g_set_error (error, SIP_LOAD_ERROR, 0,
                   "%u connections need about %lu file descriptors; the hard limit is %lu",
                   connections, (unsigned long) needed, (unsigned long) rl.rlim_max);
      return FALSE;
    }
  rl.rlim_cur = needed;
  if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
    {
      g_set_error (error, SIP_LOAD_ERROR, 0, "setrlimit(RLIMIT_NOFILE, %lu): %s",
                   (unsigned long) needed, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* ---- report ----------------------------------------------------------------------------- */

static void
report (Load *load)
{
  /* The measured window: from the end of the warm-up to the end of sending (earlier than
   * planned when the run failed). */
  double window_s = MAX (0, load->stopped_at - load->warm_end) / (double) G_USEC_PER_SEC;
  guint64 lost = g_hash_table_size (load->pending);
  double rps = window_s > 0 ? load->answered_in_window / window_s : 0;
  gint64 p50, p99, max;

  bench_latencies_sort (load->latencies);
  p50 = bench_percentile (load->latencies, 50);
  p99 = bench_percentile (load->latencies, 99);
  max = load->latencies->len > 0 ? g_array_index (load->latencies, gint64,
                                                  load->latencies->len - 1) : 0;

  printf ("sip-load  %s (%s)  %s %s%s\n", load->target, mode_name (load), load->method,
          load->callees > 0 ? "sip:callee-<k>@" : load->request_uri,
          load->callees > 0 ? load->domain : load->echo ? "  (echo)" : "");
  printf ("  %-26s %u x %u  (all connected in %.1f ms)\n", "connections x window",
          load->connections, load->window,
          (load->connected_at - load->started_at) / 1000.0);
  if (load->callees > 0)
    printf ("  %-26s %u  (registered in %.1f ms; %" G_GUINT64_FORMAT " relayed requests "
            "answered)\n", "callees", load->callees,
            (load->registered_at - load->connected_at) / 1000.0, load->relayed);
  if (load->size > 0)
    printf ("  %-26s %zu bytes (X-Pad)\n", "requests padded to", load->size);
  printf ("  %-26s %.1f s  (warm-up %.1f s, measured %.1f s)\n", "duration",
          load->duration_s, load->warmup_s, window_s);
  printf ("  %-26s %" G_GUINT64_FORMAT "\n", "requests", load->requests);
  printf ("  %-26s %" G_GUINT64_FORMAT "  (non-2xx %" G_GUINT64_FORMAT
          ", 1xx seen %" G_GUINT64_FORMAT ", unmatched %" G_GUINT64_FORMAT ")\n",
          "final responses", load->answered, load->non2xx, load->provisional, load->unmatched);
  printf ("  %-26s %" G_GUINT64_FORMAT "\n", "lost (no final response)", lost);
  printf ("  %-26s %.1f\n", "requests/s", rps);
  printf ("  %-26s %" G_GINT64_FORMAT " us\n", "latency p50", p50);
  printf ("  %-26s %" G_GINT64_FORMAT " us\n", "latency p99", p99);
  printf ("  %-26s %" G_GINT64_FORMAT " us\n", "latency max", max);
  printf ("RESULT requests=%" G_GUINT64_FORMAT " answered=%" G_GUINT64_FORMAT
          " lost=%" G_GUINT64_FORMAT " rps=%.1f p50_us=%" G_GINT64_FORMAT
          " p99_us=%" G_GINT64_FORMAT " max_us=%" G_GINT64_FORMAT " non2xx=%" G_GUINT64_FORMAT
          " unmatched=%" G_GUINT64_FORMAT " connections=%u window=%u mode=%s",
          load->requests, load->answered, lost, rps, p50, p99, max, load->non2xx,
          load->unmatched, load->connections, load->window, mode_name (load));
  if (load->callees > 0)
    printf (" callees=%u relayed=%" G_GUINT64_FORMAT, load->callees, load->relayed);
  printf ("\n");
  fflush (stdout);
}

/* ---- main ------------------------------------------------------------------------------- */

static void
load_clear (Load *load)
{
  if (load->conns != NULL)
    for (guint i = 0; i < conn_count (load); i++)
      {
        Conn *c = &load->conns[i];

        g_queue_clear_full (&c->tx, out_message_free);
        if (c->rx != NULL)
          g_byte_array_unref (c->rx);
        if (c->scratch != NULL)
          g_byte_array_unref (c->scratch);
        g_free (c->local);
        g_free (c->via);
        g_free (c->request_uri);
        g_free (c->register_call_id);
        g_free (c->from_tag);
      }
  g_free (load->conns);
  g_clear_pointer (&load->pending, g_hash_table_unref);
  g_clear_pointer (&load->latencies, g_array_unref);
  g_free (load->failure);
  g_free (load->target);
  g_free (load->host);
  g_free (load->path);
  g_free (load->host_header);
  g_free (load->method);
  g_free (load->domain);
  g_free (load->request_uri);
}

static int
usage_error (GOptionContext *context,
             const char     *message)
{
  g_printerr ("sip-load: %s\n\n", message);
  g_autofree char *help = g_option_context_get_help (context, TRUE, NULL);
  g_printerr ("%s", help);
  return 2;
}

int
main (int    argc,
      char **argv)
{
  Load load = { 0 };
  g_autofree char *url = NULL;
  g_autofree char *tcp = NULL;
  g_autofree char *method = NULL;
  g_autofree char *request_uri = NULL;
  int connections = 1;
  int window = 1;
  double duration = 10;
  double warmup = 0;
  int size = 0;
  int callees = 0;
  gboolean echo = FALSE;
  gboolean force = FALSE;
  gboolean verbose = FALSE;
  const GOptionEntry entries[] = {
    { "url", 0, 0, G_OPTION_ARG_STRING, &url, "WebSocket server", "ws://HOST:PORT/PATH" },
    { "tcp", 0, 0, G_OPTION_ARG_STRING, &tcp, "SIP over TCP server", "HOST:PORT" },
    { "connections", 'c', 0, G_OPTION_ARG_INT, &connections, "Connections (1)", "N" },
    { "window", 'w', 0, G_OPTION_ARG_INT, &window,
      "Requests outstanding per connection (1)", "W" },
    { "duration", 'd', 0, G_OPTION_ARG_DOUBLE, &duration, "Seconds of load (10)", "S" },
    { "warmup", 0, 0, G_OPTION_ARG_DOUBLE, &warmup,
      "Seconds at the start of the duration left out of requests/s and latencies (0)", "S" },
    { "method", 'm', 0, G_OPTION_ARG_STRING, &method, "OPTIONS (default) or MESSAGE", "M" },
    { "request-uri", 'r', 0, G_OPTION_ARG_STRING, &request_uri,
      "Request-URI and To (sip:HOST)", "URI" },
    { "size", 's', 0, G_OPTION_ARG_INT, &size,
      "Pad every request to BYTES with an X-Pad header (no padding)", "BYTES" },
    { "echo", 0, 0, G_OPTION_ARG_NONE, &echo,
      "For an echo server: a message with the Call-ID of a request answers it", NULL },
    { "callees", 'k', 0, G_OPTION_ARG_INT, &callees,
      "With MESSAGE: K more connections REGISTER sip:callee-<k>@HOST and answer the "
      "MESSAGEs relayed to them; connection i sends to callee (i-1) mod K (0: none)", "K" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      "Allow more than 2000 connections or a window above 256", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "libwebsockets warnings too", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- SIP load generator (WS or TCP)");
  g_autoptr(GError) error = NULL;
  struct lws_context_creation_info info;
  gboolean ok;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage_error (context, error->message);
  if ((url == NULL) == (tcp == NULL))
    return usage_error (context, "give exactly one of --url and --tcp");
  if (connections < 1 || window < 1)
    return usage_error (context, "--connections and --window must be at least 1");
  if (!force && connections > MAX_CONNECTIONS)
    return usage_error (context, "more than 2000 connections needs --force");
  if (!force && window > MAX_WINDOW)
    return usage_error (context, "a window above 256 needs --force");
  if (!(duration > 0 && duration <= MAX_DURATION_S))
    return usage_error (context, "--duration must be above 0 and at most 3600 seconds");
  if (!(warmup >= 0 && warmup < duration))
    return usage_error (context, "--warmup must be at least 0 and below --duration");
  if (method == NULL)
    method = g_strdup ("OPTIONS");
  if (strcmp (method, "OPTIONS") != 0 && strcmp (method, "MESSAGE") != 0)
    return usage_error (context, "--method must be OPTIONS or MESSAGE");
  if (size < 0 || size > MAX_SIZE)
    return usage_error (context, "--size must be between 0 and 61440 bytes");
  if (callees < 0 || (!force && callees > MAX_CONNECTIONS))
    return usage_error (context, "--callees must be at least 0 (more than 2000 needs --force)");
  if (callees > 0 && strcmp (method, "MESSAGE") != 0)
    return usage_error (context, "--callees needs --method MESSAGE");
  if (callees > 0 && (echo || request_uri != NULL))
    return usage_error (context, "--callees chooses the Request-URI: not with --echo or "
                        "--request-uri");

  load.mode = url != NULL ? MODE_WS : MODE_TCP;
  load.target = g_strdup (url != NULL ? url : tcp);
  ok = load.mode == MODE_WS ? parse_ws_url (&load, url, &error)
                            : parse_tcp_target (&load, tcp, &error);
  if (!ok)
    {
      int status = usage_error (context, error->message);

      load_clear (&load);
      return status;
    }
  load.connections = (guint) connections;
  load.window = (guint) window;
  load.duration_s = duration;
  load.warmup_s = warmup;
  load.method = g_steal_pointer (&method);
  load.is_message = strcmp (load.method, "MESSAGE") == 0;
  load.size = (gsize) size;
  load.echo = echo;
  load.callees = (guint) callees;
  load.domain = strchr (load.host, ':') != NULL ? g_strdup_printf ("[%s]", load.host)
                                                : g_strdup (load.host);
  load.request_uri = request_uri != NULL ? g_steal_pointer (&request_uri)
                                         : g_strdup_printf ("sip:%s", load.domain);
  g_snprintf (load.run_id, sizeof load.run_id, "%08x", g_random_int ());
  load.pending = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  load.latencies = g_array_sized_new (FALSE, FALSE, sizeof (gint64), 1 << 16);
  load.conns = g_new0 (Conn, conn_count (&load));
  for (guint i = 0; i < conn_count (&load); i++)
    {
      Conn *c = &load.conns[i];

      c->load = &load;
      c->number = i + 1;
      c->is_callee = i >= load.connections;
      c->callee = c->is_callee ? i - load.connections : 0;
      if (!c->is_callee && load.callees > 0)
        c->request_uri = g_strdup_printf ("sip:callee-%u@%s", i % load.callees, load.domain);
      c->rx = g_byte_array_new ();
      c->scratch = g_byte_array_new ();
      c->from_tag = g_strdup_printf ("%08x", g_random_int ());
      c->local = g_strdup_printf ("%08x.invalid", g_random_int ());
      c->via = g_strdup_printf ("SIP/2.0/WS %s", c->local);
      g_queue_init (&c->tx);
    }

  if (!raise_fd_limit (conn_count (&load), &error) ||
      !bench_arm_hard_limit (duration + HARD_LIMIT_SLACK_S,
                             "sip-load: FAILED: hard time limit (duration + 5 s) reached, "
                             "giving up\n", &error))
    {
      g_printerr ("sip-load: FAILED: %s\n", error->message);
      load_clear (&load);
      return 1;
    }

  lws_set_log_level (verbose ? LLL_ERR | LLL_WARN : LLL_ERR, NULL);
  memset (&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.user = &load;
  info.timeout_secs = 3;
  info.connect_timeout_secs = 3;
  info.fd_limit_per_thread = conn_count (&load) + FD_MARGIN;
  load.context = lws_create_context (&info);
  if (load.context == NULL)
    {
      g_printerr ("sip-load: FAILED: lws_create_context failed\n");
      load_clear (&load);
      return 1;
    }

  load.started_at = g_get_monotonic_time ();
  load.connect_deadline = load.started_at + CONNECT_PHASE_US;
  /* Until the load starts, nothing is measured. */
  load.warm_end = G_MAXINT64;
  load.stop_at = G_MAXINT64;
  load.phase = PHASE_CONNECTING;
  for (guint i = 0; i < conn_count (&load) && load.failure == NULL; i++)
    conn_start (&load.conns[i]);
  lws_sul_schedule (load.context, 0, &load.tick, on_tick, TICK_US);
  load_advance (&load);

  while (load.phase != PHASE_DONE)
    if (lws_service (load.context, 0) < 0)
      {
        load_fail (&load, "lws_service failed");
        break;
      }

  lws_sul_cancel (&load.tick);
  lws_context_destroy (load.context);
  load.context = NULL;

  if (load.load_ran)
    report (&load);

  ok = TRUE;
  if (load.failure != NULL)
    {
      g_printerr ("sip-load: FAILED: %s\n", load.failure);
      if (load.n_failed > 1)
        g_printerr ("sip-load: %u of %u connections failed or were lost\n", load.n_failed,
                    conn_count (&load));
      ok = FALSE;
    }
  if (load.load_ran && g_hash_table_size (load.pending) > 0)
    {
      g_printerr ("sip-load: FAILED: %u requests got no final response within 2 s of the "
                  "end (lost)\n", g_hash_table_size (load.pending));
      ok = FALSE;
    }
  if (load.load_ran && load.callees > 0 && load.non2xx > 0)
    {
      g_printerr ("sip-load: FAILED: %" G_GUINT64_FORMAT " MESSAGEs were not relayed to their "
                  "callee (the first got %u%s)\n", load.non2xx, load.first_non2xx,
                  load.first_non2xx == 404 ? ": the callee was not registered"
                  : load.first_non2xx == 480 ? ": its connection was gone" : "");
      ok = FALSE;
    }

  load_clear (&load);
  return ok ? 0 : 1;
}
