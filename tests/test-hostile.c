/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hostile clients against examples/sofia-ws-registrar (ws, wss and tcp listeners on 127.0.0.1),
 * written with plain sockets (and OpenSSL for wss) so that every byte is the test's: slowloris
 * handshakes, hundreds of unfinished fragmented messages, keep-alive floods and a registered
 * callee that never read, h2c and h2, framing garbage, and a request with a single header twice.
 *
 * Each case starts its own registrar, warms it up and takes a baseline of its open fds
 * (/proc/PID/fd) and resident memory (/proc/PID/status VmRSS). While an attack runs, memory may
 * grow by at most ATTACK_RSS_SLACK; after it, checked by assert_recovered():
 *   - the registrar is still running;
 *   - a legitimate client (a new ws connection, handshake and OPTIONS) has its 200 within
 *     LEGIT_MS: 1 s (10 s under valgrind);
 *   - once the attackers have gone, within 10 s: the fds are back to the baseline plus
 *     FD_SLACK (2), and VmRSS to the baseline plus RECOVERED_RSS_SLACK (8 MiB: what glibc may
 *     keep of freed memory, far below what any attack here leaves behind when it is kept).
 * Memory is not compared under valgrind or ASan (their own heaps and quarantines), which the
 * test says in its output; the counts are smaller under valgrind. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "support/valgrind-compat.h"

#include "support/registrar-peer.h"
#include "support/sip-text.h"
#include "support/ws-frame.h"

#define FD_SLACK 2
#define RECOVERED_RSS_SLACK (8 * 1024 * 1024)
#define ATTACK_RSS_SLACK (24 * 1024 * 1024)
#define MAX_MESSAGE_SIZE (128 * 1024)     /* the listener's default max-message-size */
#define LEGIT_ADDRESS "127.0.0.2"         /* loopback too, for the legitimate clients */

static gboolean under_valgrind;
static guint legit_ms;
static guint serial;

/* ---- the registrar's process --------------------------------------------------------------- */

static gboolean
process_alive (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", pid);
  g_autofree char *stat = NULL;
  const char *state;

  if (pid == 0 || !g_file_get_contents (path, &stat, NULL, NULL))
    return FALSE;
  state = strrchr (stat, ')');
  return state != NULL && state[1] == ' ' && state[2] != 'Z' && state[2] != 'X';
}

static guint
process_fds (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/fd", pid);
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (dir != NULL && g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

static gsize
process_rss (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", pid);
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents (path, &status, NULL, NULL))
    {
      g_test_fail_printf ("no %s: the registrar is gone", path);
      return 0;
    }
  line = strstr (status, "\nVmRSS:");
  g_assert_nonnull (line);
  if (line == NULL)
    return 0;
  return (gsize) g_ascii_strtoull (line + strlen ("\nVmRSS:"), NULL, 10) * 1024;
}

static gboolean
memory_comparable (void)
{
  return !under_valgrind && !test_is_sanitized ();
}

/* ---- a raw client -------------------------------------------------------------------------- */

typedef struct {
  int fd;
  SSL *ssl;
  guint16 port;
  GByteArray *in;
  gboolean eof;
  gint close_code;                /* of the server's close frame; -1 none, 1005 without code */
} Peer;

static SSL_CTX *
client_tls (void)
{
  static SSL_CTX *ctx;

  if (ctx == NULL)
    {
      ctx = SSL_CTX_new (TLS_client_method ());
      g_assert_nonnull (ctx);
      SSL_CTX_set_verify (ctx, SSL_VERIFY_NONE, NULL);
    }
  return ctx;
}

static void
peer_free (Peer *p)
{
  if (p == NULL)
    return;
  if (p->ssl != NULL)
    SSL_free (p->ssl);
  if (p->fd >= 0)
    close (p->fd);
  g_byte_array_unref (p->in);
  g_free (p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Peer, peer_free)

/* A TCP connection to 127.0.0.1:@port; @rcvbuf > 0 sets a small receive buffer first (for
 * clients that never read); @tls makes it a TLS client offering @alpn (NULL: none). */
static Peer *
peer_connect_from (const char *source, guint16 port, gboolean tls, int rcvbuf,
                   const char *alpn)
{
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons (port),
                                 .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  struct timeval timeout = { .tv_sec = 5 };
  Peer *p = g_new0 (Peer, 1);
  int one = 1;

  p->port = port;
  p->in = g_byte_array_new ();
  p->close_code = -1;
  p->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (p->fd, >=, 0);
  if (rcvbuf > 0)
    g_assert_cmpint (setsockopt (p->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), ==, 0);
  setsockopt (p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt (p->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  setsockopt (p->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (source != NULL)
    {
      struct sockaddr_in local = { .sin_family = AF_INET };

      g_assert_cmpint (inet_pton (AF_INET, source, &local.sin_addr), ==, 1);
      g_assert_cmpint (bind (p->fd, (struct sockaddr *) &local, sizeof local), ==, 0);
    }
  if (connect (p->fd, (struct sockaddr *) &address, sizeof address) != 0)
    {
      /* The registrar is gone: the callers' checks fail, the other cases still run. */
      g_test_message ("connect to 127.0.0.1:%u: %s", port, g_strerror (errno));
      p->eof = TRUE;
      return p;
    }
  if (tls)
    {
      p->ssl = SSL_new (client_tls ());
      SSL_set_fd (p->ssl, p->fd);
      if (alpn != NULL)
        {
          guint8 list[64];
          gsize n = strlen (alpn);

          list[0] = (guint8) n;
          memcpy (list + 1, alpn, n);
          g_assert_cmpint (SSL_set_alpn_protos (p->ssl, list, n + 1), ==, 0);
        }
      if (SSL_connect (p->ssl) != 1)
        {
          g_test_message ("TLS handshake with 127.0.0.1:%u failed", port);
          ERR_clear_error ();
          p->eof = TRUE;
        }
    }
  return p;
}

static Peer *
peer_connect_full (guint16 port, gboolean tls, int rcvbuf, const char *alpn)
{
  return peer_connect_from (NULL, port, tls, rcvbuf, alpn);
}

static Peer *
peer_connect (guint16 port, gboolean tls)
{
  return peer_connect_full (port, tls, 0, NULL);
}

/* Writes all of @data (blocking, 5 s at most per call); FALSE when the server is gone. */
static gboolean
peer_write (Peer *p, const void *data, gsize len)
{
  const guint8 *bytes = data;

  while (len > 0)
    {
      gssize n;

      if (p->ssl != NULL)
        n = SSL_write (p->ssl, bytes, (int) MIN (len, G_MAXINT));
      else
        n = send (p->fd, bytes, len, MSG_NOSIGNAL);
      if (n <= 0)
        {
          if (n < 0 && p->ssl == NULL && errno == EINTR)
            continue;
          return FALSE;
        }
      bytes += n;
      len -= n;
    }
  return TRUE;
}

/* Writes what the socket takes now of @data; the count, 0 when it takes nothing, -1 when the
 * server is gone. Plain sockets only. */
static gssize
peer_write_some (Peer *p, const void *data, gsize len)
{
  gssize n = send (p->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

  if (n < 0)
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
  return n;
}

static gboolean
peer_write_frame (Peer *p, guint8 opcode, const void *data, gsize len)
{
  g_autoptr(GByteArray) frame = ws_frame_new (opcode, data, len);

  return peer_write (p, frame->data, frame->len);
}

/* Waits up to @timeout_ms for bytes and appends them to p->in: TRUE if some came; FALSE on
 * timeout, or at the end of the connection (p->eof). */
static gboolean
peer_read_some (Peer *p, int timeout_ms)
{
  struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
  guint8 buffer[16384];
  gssize n;

  if (p->eof)
    return FALSE;
  if (p->ssl == NULL || SSL_pending (p->ssl) == 0)
    if (poll (&pfd, 1, MAX (timeout_ms, 0)) <= 0)
      return FALSE;
  if (p->ssl != NULL)
    {
      n = SSL_read (p->ssl, buffer, sizeof buffer);
      if (n <= 0)
        {
          int error = SSL_get_error (p->ssl, (int) n);

          if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE)
            return FALSE;
          ERR_clear_error ();
          p->eof = TRUE;
          return FALSE;
        }
    }
  else
    {
      n = recv (p->fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return FALSE;
      if (n <= 0)
        {
          p->eof = TRUE;
          return FALSE;
        }
    }
  g_byte_array_append (p->in, buffer, n);
  return TRUE;
}

static gint64
ms_left (gint64 deadline)
{
  return MAX ((deadline - g_get_monotonic_time ()) / 1000, 0);
}

/* Sends a handshake (with @extra headers) and reads the response's head: its status, 0 when
 * none came within @timeout_ms or the server closed. */
static guint
peer_handshake (Peer *p, const char *extra, int timeout_ms)
{
  g_autofree char *host = g_strdup_printf ("127.0.0.1:%u", p->port);
  g_autofree char *request = ws_frame_handshake_request (host, extra);
  gint64 deadline = g_get_monotonic_time () + timeout_ms * 1000;

  if (!peer_write (p, request, strlen (request)))
    return 0;
  for (;;)
    {
      gsize head = 0;
      guint status = ws_frame_handshake_status ((const char *) p->in->data, p->in->len, &head);

      if (status != 0)
        {
          g_byte_array_remove_range (p->in, 0, head);
          return status;
        }
      if (!peer_read_some (p, ms_left (deadline)) && (p->eof || ms_left (deadline) == 0))
        return 0;
    }
}

/* Handles the frames in p->in: the first text or binary message is returned; a close frame
 * is answered and ends the connection (p->close_code); pings are answered. */
static char *
peer_take_message (Peer *p)
{
  WsFrame frame;

  while (!p->eof && ws_frame_parse (p->in, &frame))
    {
      gsize size;
      const guint8 *data = g_bytes_get_data (frame.payload, &size);
      g_autoptr(GBytes) payload = frame.payload;

      switch (frame.opcode)
        {
        case 0x1:
        case 0x2:
          return g_strndup ((const char *) data, size);
        case 0x8:
          p->close_code = size >= 2 ? (data[0] << 8 | data[1]) : 1005;
          peer_write_frame (p, 0x8, data, MIN (size, 2));
          p->eof = TRUE;
          break;
        case 0x9:
          peer_write_frame (p, 0xa, data, size);
          break;
        default:
          break;
        }
    }
  return NULL;
}

/* The next SIP message from the server within @timeout_ms, or NULL. */
static char *
peer_read_message (Peer *p, int timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * 1000;

  for (;;)
    {
      char *message = peer_take_message (p);

      if (message != NULL)
        return message;
      if (p->eof)
        return NULL;
      if (!peer_read_some (p, ms_left (deadline)) && (p->eof || ms_left (deadline) == 0))
        {
          message = peer_take_message (p);
          return message;
        }
    }
}

/* Reads (and discards) until the server ends the connection: TRUE if it did within
 * @timeout_ms. */
static gboolean
peer_wait_closed (Peer *p, int timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * 1000;

  while (!p->eof && ms_left (deadline) > 0)
    {
      g_free (peer_take_message (p));
      if (!p->eof)
        peer_read_some (p, MIN (ms_left (deadline), 100));
    }
  g_free (peer_take_message (p));
  return p->eof;
}

/* An upgraded ws (or wss) connection, or a failed test. */
static Peer *
peer_open_ws (guint16 port, gboolean tls, int rcvbuf)
{
  Peer *p = peer_connect_full (port, tls, rcvbuf, NULL);

  g_assert_cmpuint (peer_handshake (p, NULL, 10000), ==, 101);
  return p;
}

/* Sends the request @text and reads until the final response of its Call-ID @call_id (its
 * status; 0 if none came within @timeout_ms). Requests that come meanwhile (relayed to this
 * client) are answered 200. */
static guint
peer_request (Peer *p, const char *text, const char *call_id, int timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * 1000;

  if (!peer_write_frame (p, 0x1, text, strlen (text)))
    return 0;
  while (ms_left (deadline) > 0)
    {
      g_autofree char *message = peer_read_message (p, ms_left (deadline));
      g_autofree char *id = NULL;
      guint status;

      if (message == NULL)
        return 0;
      status = sip_text_status (message);
      id = sip_text_header (message, "Call-ID");
      if (status == 0)
        {
          g_autofree char *response = sip_text_response (message, 200, "OK");

          peer_write_frame (p, 0x1, response, strlen (response));
        }
      else if (status >= 200 && g_strcmp0 (id, call_id) == 0)
        return status;
    }
  return 0;
}

/* @text with its first @from replaced by @to. */
static char *
replace_first (const char *text, const char *from, const char *to)
{
  const char *at = strstr (text, from);

  g_assert_nonnull (at);
  return g_strdup_printf ("%.*s%s%s", (int) (at - text), text, to, at + strlen (from));
}

static char *
new_call_id (const char *what)
{
  return g_strdup_printf ("hostile-%s-%u-%u", what, (guint) getpid (), ++serial);
}

/* ---- the fixture --------------------------------------------------------------------------- */

typedef struct {
  TestCertificate *certificate;
  RegistrarPeer *registrar;
  GPid pid;
  guint16 ws_port;
  guint16 wss_port;
  guint16 tcp_port;
  guint baseline_fds;
  gsize baseline_rss;
} Fixture;

/* A legitimate client: a new ws connection, its handshake and an OPTIONS, answered 200
 * within LEGIT_MS of the connect. */
static void
assert_served (Fixture *f, const char *when)
{
  gint64 start = g_get_monotonic_time ();
  /* From another address than the attackers' (127.0.0.1), which may be at the listener's
   * per-address limit. */
  g_autoptr(Peer) p = peer_connect_from (LEGIT_ADDRESS, f->ws_port, FALSE, 0, NULL);
  g_autofree char *call_id = new_call_id ("legit");
  g_autofree char *request = sip_text_request ("OPTIONS", "sip:127.0.0.1", "legit",
                                               "sip:127.0.0.1", call_id, 1, NULL, NULL);
  guint handshake = peer_handshake (p, NULL, legit_ms);
  guint status = handshake == 101 ? peer_request (p, request, call_id, legit_ms) : 0;
  gint64 elapsed = (g_get_monotonic_time () - start) / 1000;

  g_test_message ("%s: a legitimate client: handshake %u, OPTIONS %u, in %" G_GINT64_FORMAT
                  " ms", when, handshake, status, elapsed);
  g_assert_cmpuint (handshake, ==, 101);
  g_assert_cmpuint (status, ==, 200);
  g_assert_cmpint (elapsed, <, legit_ms);
}

static void
assert_alive (Fixture *f)
{
  g_assert_true (process_alive (f->pid));
}

/* Whether the registrar has --max-partial-bytes (the listener's bound on what all its
 * connections hold of partly received messages); the registrar of main before issue 12 has
 * none, and is then attacked with its defaults. */
static gboolean
registrar_has_partial_budget (void)
{
  static int has = -1;

  if (has < 0)
    {
      const char *argv[] = { g_getenv ("SOFIA_WS_REGISTRAR"), "--help", NULL };
      g_autofree char *out = NULL;

      g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                                   NULL, &out, NULL, NULL, NULL));
      has = out != NULL && strstr (out, "--max-partial-bytes") != NULL;
    }
  return has;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autofree char *certificate_option = NULL;
  g_autofree char *key_option = NULL;

  f->certificate = test_certificate_new ("127.0.0.1");
  certificate_option = g_strdup_printf ("--tls-certificate=%s", f->certificate->certificate);
  key_option = g_strdup_printf ("--tls-key=%s", f->certificate->key);
  {
    const char *args[] = { "--listen", "sip:127.0.0.1:0;transport=ws",
                           "--listen", "sips:127.0.0.1:0;transport=wss",
                           "--listen", "sip:127.0.0.1:0;transport=tcp",
                           certificate_option, key_option,
                           /* nobody reads its stdout after the "listening" lines */
                           "--quiet",
                           /* 8 MiB of partly received messages for all connections of a
                            * listener (PARTIAL_BUDGET), as a deployment would set it */
                           registrar_has_partial_budget () ? "--max-partial-bytes=8388608" : NULL,
                           NULL };

    f->registrar = registrar_peer_start (args);
  }
  f->pid = registrar_peer_get_pid (f->registrar);
  f->ws_port = registrar_peer_get_port (f->registrar, "ws");
  f->wss_port = registrar_peer_get_port (f->registrar, "wss");
  f->tcp_port = registrar_peer_get_port (f->registrar, "tcp");
  g_assert_cmpuint (f->ws_port, !=, 0);
  g_assert_cmpuint (f->wss_port, !=, 0);
  g_assert_cmpuint (f->tcp_port, !=, 0);

  /* Warm-up: what the first connections allocate once is in the baseline. */
  for (int i = 0; i < 3; i++)
    assert_served (f, "warm-up");
  {
    g_autoptr(Peer) p = peer_open_ws (f->wss_port, TRUE, 0);
    g_autofree char *call_id = new_call_id ("warm-up");
    g_autofree char *ws_request = sip_text_request ("OPTIONS", "sip:127.0.0.1", "warmup",
                                                    "sip:127.0.0.1", call_id, 1, NULL, NULL);
    /* Via SIP/2.0/WSS over wss, as browsers send it. */
    g_autofree char *request = replace_first (ws_request, "SIP/2.0/WS ", "SIP/2.0/WSS ");

    g_assert_cmpuint (peer_request (p, request, call_id, 10000), ==, 200);
  }
  g_usleep (200 * 1000);
  f->baseline_fds = process_fds (f->pid);
  f->baseline_rss = process_rss (f->pid);
  g_test_message ("baseline: %u fds, VmRSS %zu KiB", f->baseline_fds, f->baseline_rss / 1024);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  /* SIGTERM, and it must exit 0 (a crashed registrar fails here too). */
  if (f->registrar != NULL)
    registrar_peer_stop (f->registrar);
  test_certificate_free (f->certificate);
}

/* Memory while an attack holds its connections: at most ATTACK_RSS_SLACK above the baseline. */
static void
assert_attack_bounded (Fixture *f, const char *attack)
{
  gsize rss = process_rss (f->pid);

  g_test_message ("%s: %u fds, VmRSS %zu KiB (baseline %zu KiB)", attack, process_fds (f->pid),
                  rss / 1024, f->baseline_rss / 1024);
  if (memory_comparable ())
    g_assert_cmpuint (rss, <=, f->baseline_rss + ATTACK_RSS_SLACK);
  else
    g_test_message ("memory not compared under valgrind or ASan");
}

/* After the attackers have gone: still running, serving, and back near the baseline. */
static void
assert_recovered (Fixture *f)
{
  gint64 deadline = g_get_monotonic_time () + (under_valgrind ? 30 : 10) * G_USEC_PER_SEC;
  guint fds;
  gsize rss;

  assert_alive (f);
  assert_served (f, "after the attack");
  while ((fds = process_fds (f->pid)) > f->baseline_fds + FD_SLACK &&
         g_get_monotonic_time () < deadline)
    g_usleep (100 * 1000);
  while ((rss = process_rss (f->pid)) > f->baseline_rss + RECOVERED_RSS_SLACK &&
         memory_comparable () && g_get_monotonic_time () < deadline)
    g_usleep (100 * 1000);
  g_test_message ("after the attack: %u fds (baseline %u), VmRSS %zu KiB (baseline %zu KiB)",
                  fds, f->baseline_fds, rss / 1024, f->baseline_rss / 1024);
  assert_alive (f);
  g_assert_cmpuint (fds, <=, f->baseline_fds + FD_SLACK);
  if (memory_comparable ())
    g_assert_cmpuint (rss, <=, f->baseline_rss + RECOVERED_RSS_SLACK);
  else
    g_test_message ("memory not compared under valgrind or ASan");
}

/* ---- slowloris ----------------------------------------------------------------------------- */

/* Handshakes sent one byte a second, on ws and wss at once: the server must drop them (lws's
 * handshake timeout) and serve others meanwhile. */
static void
test_slowloris (Fixture *f, gconstpointer data)
{
  guint n = under_valgrind ? 3 : 20;
  g_autoptr(GPtrArray) peers = g_ptr_array_new_with_free_func ((GDestroyNotify) peer_free);
  g_autofree char *ws_request = ws_frame_handshake_request ("127.0.0.1", NULL);
  gint64 start = g_get_monotonic_time ();
  guint open = 0;
  gsize sent = 0;

  for (guint i = 0; i < 2 * n; i++)
    g_ptr_array_add (peers, peer_connect (i < n ? f->ws_port : f->wss_port, i >= n));
  /* One byte a second until every attacker is dropped, 40 s at the most; the whole request is
   * never sent. */
  for (guint second = 0; second < 40; second++)
    {
      open = 0;
      for (guint i = 0; i < peers->len; i++)
        {
          Peer *p = g_ptr_array_index (peers, i);

          if (p->eof)
            continue;
          peer_read_some (p, 0);
          if (!p->eof && sent + 1 < strlen (ws_request) && !peer_write (p, ws_request + sent, 1))
            p->eof = TRUE;
          open += !p->eof;
        }
      sent++;
      if (second == 2)
        {
          assert_attack_bounded (f, "slowloris");
          assert_served (f, "during slowloris");
        }
      if (open == 0)
        break;
      g_usleep (G_USEC_PER_SEC);
    }
  g_test_message ("slowloris: %u of %u connections still open after %" G_GINT64_FORMAT " s",
                  open, peers->len, (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
  g_assert_cmpuint (open, ==, 0);
  g_ptr_array_set_size (peers, 0);
  assert_recovered (f);
}

/* ---- unfinished fragmented messages -------------------------------------------------------- */

/* Hundreds of connections each holding a fragmented message that never ends, close to
 * max-message-size: what the server buffers for them must stay bounded. */
static void
test_fragments (Fixture *f, gconstpointer data)
{
  guint n = under_valgrind ? 10 : 300;
  gsize chunk = 16 * 1024;
  gsize total = MAX_MESSAGE_SIZE - 2048;
  g_autofree guint8 *payload = g_malloc (chunk);
  g_autoptr(GPtrArray) peers = g_ptr_array_new_with_free_func ((GDestroyNotify) peer_free);
  guint closed = 0;

  memset (payload, 'a', chunk);
  for (guint i = 0; i < n; i++)
    {
      Peer *p = peer_connect (f->ws_port, FALSE);

      g_ptr_array_add (peers, p);
      if (peer_handshake (p, NULL, 10000) != 101)
        {
          closed++;
          continue;
        }
      for (gsize sent = 0; sent < total && !p->eof; sent += chunk)
        {
          g_autoptr(GByteArray) frame = g_byte_array_new ();

          /* A first text frame without FIN, then continuations without FIN. */
          ws_frame_append (frame, sent == 0 ? 0x01 : 0x00, payload, chunk, chunk, TRUE);
          if (!peer_write (p, frame->data, frame->len))
            p->eof = TRUE;
        }
    }
  g_usleep (500 * 1000);
  for (guint i = 0; i < peers->len; i++)
    {
      Peer *p = g_ptr_array_index (peers, i);

      peer_wait_closed (p, 0);
      closed += p->eof;
    }
  g_test_message ("fragments: %u connections with %zu KiB each, %u closed by the server", n,
                  total / 1024, closed);
  assert_attack_bounded (f, "unfinished fragmented messages");
  assert_served (f, "during unfinished fragmented messages");
  g_ptr_array_set_size (peers, 0);
  assert_recovered (f);
}

/* ---- keep-alive flood ---------------------------------------------------------------------- */

/* Connections that send RFC 5626 keep-alives (CRLFCRLF) as fast as they can and never read
 * the answers (a small receive buffer): the answers must not pile up without a bound. */
static void
test_keepalive_flood (Fixture *f, gconstpointer data)
{
  guint n = under_valgrind ? 2 : 10;
  gint64 flood_us = (under_valgrind ? 2 : 4) * G_USEC_PER_SEC;
  g_autoptr(GPtrArray) peers = g_ptr_array_new_with_free_func ((GDestroyNotify) peer_free);
  g_autoptr(GByteArray) burst = g_byte_array_new ();
  gint64 end;
  guint64 frames = 0;

  for (guint i = 0; i < 256; i++)
    ws_frame_append (burst, 0x81, "\r\n\r\n", 4, 4, TRUE);
  for (guint i = 0; i < n; i++)
    {
      Peer *p = peer_open_ws (f->ws_port, FALSE, 2048);

      g_assert_cmpint (fcntl (p->fd, F_SETFL, O_NONBLOCK), ==, 0);
      g_ptr_array_add (peers, p);
    }
  end = g_get_monotonic_time () + flood_us;
  while (g_get_monotonic_time () < end)
    {
      guint writable = 0;

      for (guint i = 0; i < peers->len; i++)
        {
          Peer *p = g_ptr_array_index (peers, i);
          gssize w;

          if (p->eof)
            continue;
          /* Whole frames only: a partial write is finished before the next burst. */
          w = peer_write_some (p, burst->data, burst->len);
          if (w < 0)
            p->eof = TRUE;
          else if (w > 0)
            {
              if ((gsize) w < burst->len &&
                  !(fcntl (p->fd, F_SETFL, 0) == 0 && peer_write (p, burst->data + w, burst->len - w)))
                p->eof = TRUE;
              fcntl (p->fd, F_SETFL, O_NONBLOCK);
              frames += 256;
              writable++;
            }
        }
      if (writable == 0)
        g_usleep (1000);
    }
  g_test_message ("keep-alive flood: %" G_GUINT64_FORMAT " keep-alives on %u connections", frames,
                  n);
  assert_alive (f);
  assert_attack_bounded (f, "keep-alive flood");
  assert_served (f, "during the keep-alive flood");
  g_ptr_array_set_size (peers, 0);
  assert_recovered (f);
}

/* ---- a callee that never reads ------------------------------------------------------------- */

static char *
register_request (const char *user, const char *call_id)
{
  g_autofree char *to = g_strdup_printf ("sip:%s@127.0.0.1", user);
  g_autofree char *contact = g_strdup_printf ("Contact: <sip:%s@%s.invalid;transport=ws>"
                                              ";expires=600\r\n", user, user);

  return sip_text_request ("REGISTER", "sip:127.0.0.1", user, to, call_id, 1, contact, NULL);
}

static void
register_user (Peer *p, const char *user)
{
  g_autofree char *call_id = new_call_id ("register");
  g_autofree char *request = register_request (user, call_id);

  g_assert_cmpuint (peer_request (p, request, call_id, 10000), ==, 200);
}

/* MESSAGEs relayed to a registered callee that never reads: what waits for it must stay
 * bounded, and the sender keeps being served. */
static void
test_stuck_callee (Fixture *f, gconstpointer data)
{
  guint n = under_valgrind ? 20 : 600;
  gsize body_size = 60 * 1024;
  g_autofree char *body = g_malloc (body_size + 1);
  g_autoptr(Peer) callee = peer_open_ws (f->ws_port, FALSE, 2048);
  g_autoptr(Peer) sender = peer_open_ws (f->ws_port, FALSE, 0);
  guint finals = 0;

  memset (body, 'm', body_size);
  body[body_size] = '\0';
  register_user (callee, "stuck");
  /* From here on the callee reads nothing. */
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *call_id = new_call_id ("stuck");
      g_autofree char *request = sip_text_request ("MESSAGE", "sip:stuck@127.0.0.1", "sender",
                                                   "sip:stuck@127.0.0.1", call_id, 1,
                                                   "Content-Type: text/plain\r\n", body);
      char *response;

      if (!peer_write_frame (sender, 0x1, request, strlen (request)))
        break;
      /* The sender reads what comes back, so that it is not the one stuck. */
      while ((response = peer_read_message (sender, 0)) != NULL)
        {
          finals += sip_text_status (response) >= 200;
          g_free (response);
        }
    }
  g_usleep (500 * 1000);
  g_test_message ("stuck callee: %u MESSAGEs of %zu bytes sent, %u final responses so far", n,
                  body_size, finals);
  assert_alive (f);
  assert_attack_bounded (f, "a callee that never reads");
  assert_served (f, "while a callee never reads");
  g_clear_pointer (&callee, peer_free);
  g_clear_pointer (&sender, peer_free);
  assert_recovered (f);
}

/* ---- h2c and h2 ---------------------------------------------------------------------------- */

/* An HTTP/1.1 upgrade to h2c, and HTTP/2 with prior knowledge: neither may be taken up. */
static void
test_h2c (Fixture *f, gconstpointer data)
{
  {
    g_autoptr(Peer) p = peer_connect (f->ws_port, FALSE);
    const char *request = "GET / HTTP/1.1\r\n"
                          "Host: 127.0.0.1\r\n"
                          "Connection: Upgrade, HTTP2-Settings\r\n"
                          "Upgrade: h2c\r\n"
                          "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
                          "\r\n";
    gsize head = 0;
    guint status = 0;
    gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

    g_assert_true (peer_write (p, request, strlen (request)));
    while (status == 0 && peer_read_some (p, ms_left (deadline)))
      status = ws_frame_handshake_status ((const char *) p->in->data, p->in->len, &head);
    {
      g_autofree char *answer = g_strndup ((const char *) p->in->data, p->in->len);

      answer[strcspn (answer, "\r\n")] = '\0';
      g_test_message ("Upgrade: h2c answered \"%s\" (%s)", answer, p->eof ? "closed" : "open");
    }
    g_assert_cmpuint (status, !=, 101);
    g_assert_true (peer_wait_closed (p, 5000));
  }
  {
    g_autoptr(Peer) p = peer_connect (f->ws_port, FALSE);
    const char *preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    /* An empty SETTINGS frame. */
    static const guint8 settings[9] = { 0, 0, 0, 0x4, 0, 0, 0, 0, 0 };

    g_assert_true (peer_write (p, preface, strlen (preface)));
    peer_write (p, settings, sizeof settings);
    g_assert_true (peer_wait_closed (p, 5000));
    g_test_message ("HTTP/2 prior knowledge: closed, %u bytes answered", p->in->len);
  }
  assert_recovered (f);
}

/* wss with ALPN h2 only: the server must not choose h2 (WebSockets over HTTP/2, RFC 8441, is not
 * served); it then speaks HTTP/1.1 or refuses, and a WebSocket handshake still works without
 * ALPN. */
static void
test_h2_alpn (Fixture *f, gconstpointer data)
{
  g_autoptr(Peer) p = peer_connect_full (f->wss_port, TRUE, 0, "h2");
  const guint8 *chosen = NULL;
  unsigned int len = 0;

  SSL_get0_alpn_selected (p->ssl, &chosen, &len);
  g_test_message ("ALPN offered h2, chosen: %.*s", (int) len, len ? (const char *) chosen : "-");
  g_assert_false (len == 2 && memcmp (chosen, "h2", 2) == 0);
  g_clear_pointer (&p, peer_free);
  {
    g_autoptr(Peer) wss = peer_open_ws (f->wss_port, TRUE, 0);
  }
  assert_recovered (f);
}

/* ---- framing garbage ----------------------------------------------------------------------- */

typedef struct {
  const char *name;
  guint8 first_byte;
  const char *payload;
  gsize len;
  guint64 declared;
  gboolean mask;
  guint expected_code;            /* of the server's close frame, when it sends one */
} Garbage;

static const Garbage garbage[] = {
  { "bad-opcode", 0x83, "x", 1, 1, TRUE, 1002 },
  { "reserved-bits", 0xf1, "x", 1, 1, TRUE, 1002 },
  { "unmasked", 0x81, "OPTIONS", 7, 7, FALSE, 1002 },
  { "oversize-length", 0x81, "x", 1, G_GUINT64_CONSTANT (0x7fffffffffffffff), TRUE, 1009 },
  { "over-max-message-size", 0x81, "x", 1, MAX_MESSAGE_SIZE + 1, TRUE, 1009 },
  { "long-control-frame", 0x89, NULL, 200, 200, TRUE, 1002 },
  { "invalid-utf8", 0x81, "OPTIONS \xc3\x28 \xff", 11, 11, TRUE, 1007 },
};

static void
test_garbage (Fixture *f, gconstpointer data)
{
  const Garbage *g = data;
  g_autoptr(Peer) p = peer_open_ws (f->ws_port, FALSE, 0);
  g_autoptr(GByteArray) frame = g_byte_array_new ();
  g_autofree char *filler = g_strnfill (g->len, 'p');

  ws_frame_append (frame, g->first_byte, g->payload ? g->payload : filler, g->len, g->declared,
                   g->mask);
  g_assert_true (peer_write (p, frame->data, frame->len));
  if (!g->mask)
    {
      /* A known gap, reported as TODO (not as a pass): lws 4.1.6 keeps whether a frame was
       * masked to itself and does not enforce RFC 6455 5.1 on servers. The frame is then an
       * ordinary message; the server must at least stay unharmed. */
      g_clear_pointer (&p, peer_free);
      assert_recovered (f);
      g_test_incomplete ("libwebsockets 4.1.6 accepts an unmasked client frame instead of "
                         "closing with 1002 (RFC 6455 5.1), and gives no way to see the mask");
      return;
    }
  g_assert_true (peer_wait_closed (p, under_valgrind ? 10000 : 5000));
  g_test_message ("%s: closed by the server, close code %d", g->name, p->close_code);
  if (p->close_code >= 0)
    g_assert_cmpint (p->close_code, ==, g->expected_code);
  g_clear_pointer (&p, peer_free);
  assert_recovered (f);
}

/* ---- a single header twice ----------------------------------------------------------------- */

static const char *duplicated =
  "Max-Forwards: 69\r\n"
  "Content-Type: text/plain\r\n";

/* A MESSAGE to a registered user with Max-Forwards twice (over ws or tcp): answered, and the
 * registrar still up. The callee answers whatever reaches it. */
static void
test_duplicate_header (Fixture *f, gconstpointer data)
{
  gboolean tcp = g_str_equal (data, "tcp");
  g_autoptr(Peer) callee = peer_open_ws (f->ws_port, FALSE, 0);
  g_autofree char *call_id = new_call_id ("duplicate");
  g_autofree char *request = sip_text_request ("MESSAGE", "sip:callee@127.0.0.1", "sender",
                                               "sip:callee@127.0.0.1", call_id, 1, duplicated,
                                               "hello");
  g_autoptr(Peer) sender = NULL;
  gint64 deadline;
  guint status = 0;

  register_user (callee, "callee");
  if (tcp)
    {
      g_autofree char *tcp_request = replace_first (request, "SIP/2.0/WS ", "SIP/2.0/TCP ");

      sender = peer_connect (f->tcp_port, FALSE);
      g_assert_true (peer_write (sender, tcp_request, strlen (tcp_request)));
    }
  else
    {
      sender = peer_open_ws (f->ws_port, FALSE, 0);
      g_assert_true (peer_write_frame (sender, 0x1, request, strlen (request)));
    }

  deadline = g_get_monotonic_time () + (under_valgrind ? 20 : 5) * G_USEC_PER_SEC;
  while (status == 0 && ms_left (deadline) > 0 && !sender->eof)
    {
      g_autofree char *relayed = peer_read_message (callee, 50);

      if (relayed != NULL && sip_text_status (relayed) == 0)
        {
          g_autofree char *response = sip_text_response (relayed, 200, "OK");

          peer_write_frame (callee, 0x1, response, strlen (response));
        }
      if (tcp)
        {
          const char *end;

          peer_read_some (sender, 50);
          end = sender->in->len == 0 ? NULL : g_strstr_len ((const char *) sender->in->data, sender->in->len, "\r\n\r\n");
          if (end != NULL)
            {
              g_autofree char *head = g_strndup ((const char *) sender->in->data,
                                                 end - (const char *) sender->in->data + 2);

              status = sip_text_status (head);
              g_byte_array_set_size (sender->in, 0);
            }
        }
      else
        {
          g_autofree char *response = peer_read_message (sender, 50);

          if (response != NULL)
            status = sip_text_status (response);
        }
      if (status > 0 && status < 200)
        status = 0;
    }
  g_test_message ("MESSAGE with Max-Forwards twice over %s: %u", tcp ? "tcp" : "ws", status);
  assert_alive (f);
  g_assert_cmpuint (status, >=, 200);
  g_clear_pointer (&sender, peer_free);
  g_clear_pointer (&callee, peer_free);
  assert_recovered (f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* A failed check fails its case, and the other attacks still run. */
  g_test_set_nonfatal_assertions ();
  under_valgrind = RUNNING_ON_VALGRIND;
  /* For the registrars started here: blocks of 16 KiB and more in mappings of their own, and
   * the heap's free top given back, so that VmRSS follows what the registrar holds rather than
   * what glibc keeps of freed memory (which the slack could not tell from a leak). */
  g_setenv ("MALLOC_MMAP_THRESHOLD_", "16384", TRUE);
  g_setenv ("MALLOC_TRIM_THRESHOLD_", "131072", TRUE);
  legit_ms = under_valgrind ? 10000 : 1000;

#define ADD(path, fn, data) \
  g_test_add ("/hostile/" path, Fixture, data, fixture_setup, fn, fixture_teardown)
  ADD ("slowloris", test_slowloris, NULL);
  ADD ("fragments", test_fragments, NULL);
  ADD ("keepalive-flood", test_keepalive_flood, NULL);
  ADD ("stuck-callee", test_stuck_callee, NULL);
  ADD ("h2c", test_h2c, NULL);
  ADD ("h2-alpn", test_h2_alpn, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (garbage); i++)
    {
      g_autofree char *path = g_strdup_printf ("/hostile/framing/%s", garbage[i].name);

      g_test_add (path, Fixture, &garbage[i], fixture_setup, test_garbage, fixture_teardown);
    }
  ADD ("duplicate-header/ws", test_duplicate_header, "ws");
  ADD ("duplicate-header/tcp", test_duplicate_header, "tcp");
#undef ADD
  return g_test_run ();
}
