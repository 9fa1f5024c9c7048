/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SofiaWsListener against a real third-party client, Node's `ws` package
 * (tests/interop/node/ws-probe.mjs): handshake rules, RFC 7118 framing, every bad input
 * with its close code, and the listener serving on afterwards. */
#include <sofia-ws/sofia-ws.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/drain.h"
#include "support/registrar-peer.h"
#include "support/sip-text.h"
#include "support/ws-probe.h"

typedef enum {
  ANSWER,                         /* answer requests with 200 */
  CLOSE_4000,                     /* disconnect with 4000 on the first message */
  STOP_LISTENER,                  /* stop the listener on the first message */
  QUIET,                          /* keep the messages, answer nothing */
} Behaviour;

typedef struct {
  SofiaWsListener *listener;
  Behaviour behaviour;
  GPtrArray *connections;         /* SofiaWsWebSocket * accepted */
  GPtrArray *messages;            /* char * received by the server */
  GPtrArray *errors;              /* GError * from the server side's transport-error */
  guint disconnected;
  char probe_url[128];
} Fixture;

static void
on_server_message (SofiaWsTransport *t, const char *message, Fixture *f)
{
  g_ptr_array_add (f->messages, g_strdup (message));
  switch (f->behaviour)
    {
    case CLOSE_4000:
      sofia_ws_transport_disconnect_async (t, g_variant_new_parsed ("{'code': <@q 4000>, "
                                                                    "'reason': <'bye'>}"),
                                           NULL, NULL, NULL);
      break;
    case STOP_LISTENER:
      sofia_ws_listener_stop (f->listener);
      break;
    case QUIET:
      break;
    case ANSWER:
    default:
      if (sip_text_status (message) == 0)
        {
          g_autofree char *response = sip_text_response (message, 200, "OK");

          sofia_ws_transport_send_async (t, response, NULL, NULL, NULL, NULL);
        }
    }
}

static void
on_server_error (SofiaWsTransport *t, const GError *error, Fixture *f)
{
  g_ptr_array_add (f->errors, g_error_copy (error));
}

static void
on_server_disconnected (SofiaWsTransport *t, Fixture *f)
{
  f->disconnected++;
}

static void
on_accepted (SofiaWsListener *l, SofiaWsWebSocket *connection, Fixture *f)
{
  g_ptr_array_add (f->connections, g_object_ref (connection));
  g_signal_connect (connection, "message", G_CALLBACK (on_server_message), f);
  g_signal_connect (connection, "transport-error", G_CALLBACK (on_server_error), f);
  g_signal_connect (connection, "disconnected", G_CALLBACK (on_server_disconnected), f);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->connections = g_ptr_array_new_with_free_func (g_object_unref);
  f->messages = g_ptr_array_new_with_free_func (g_free);
  f->errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  f->listener = sofia_ws_listener_new ();
  g_signal_connect (f->listener, "accepted", G_CALLBACK (on_accepted), f);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  for (guint i = 0; i < f->connections->len; i++)
    g_signal_handlers_disconnect_by_data (f->connections->pdata[i], f);
  g_ptr_array_unref (f->connections);
  g_signal_handlers_disconnect_by_data (f->listener, f);
  g_assert_finalize_object (f->listener);
  test_drain_main_context ();
  g_ptr_array_unref (f->messages);
  g_ptr_array_unref (f->errors);
}

static gboolean
start_listener (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  if (!test_ws_probe_available ())
    return FALSE;
  g_assert_true (sofia_ws_listener_start (f->listener, &error));
  g_assert_no_error (error);
  return TRUE;
}

/* The probe (tests/support/ws-probe.c) against this listener at @path. */
static const char *
probe_url (Fixture *f, const char *path)
{
  g_snprintf (f->probe_url, sizeof f->probe_url, "ws://127.0.0.1:%u%s",
              sofia_ws_listener_get_port (f->listener), path);
  return f->probe_url;
}

#define probe(f, path, ...) test_ws_probe (probe_url ((f), (path)), __VA_ARGS__)

static char *
report_string (GKeyFile *report, const char *key)
{
  return g_key_file_get_string (report, "probe", key, NULL);
}

static gint
report_int (GKeyFile *report, const char *key)
{
  return g_key_file_get_integer (report, "probe", key, NULL);
}

static gboolean
report_bool (GKeyFile *report, const char *key)
{
  return g_key_file_get_boolean (report, "probe", key, NULL);
}

static const GError *
first_error (Fixture *f)
{
  g_assert_cmpuint (f->errors->len, >, 0);
  return f->errors->pdata[0];
}

static void
wait_disconnected (Fixture *f, guint n)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (f->disconnected < n)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
}

/* The listener still serves: a normal exchange works. */
static void
assert_still_serving (Fixture *f)
{
  g_autoptr(GKeyFile) report = probe (f, "/", "options", NULL);
  g_autofree char *reply = report_string (report, "reply");

  g_assert_true (report_bool (report, "opened"));
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
}


/* ---- a raw TCP client, for what the probe cannot send ------------------------------------ */

static gboolean
fill_sockaddr (const char              *host,
               guint16                  port,
               struct sockaddr_storage *sa,
               socklen_t               *len)
{
  struct sockaddr_in *in4 = (struct sockaddr_in *) sa;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) sa;

  memset (sa, 0, sizeof *sa);
  if (inet_pton (AF_INET, host, &in4->sin_addr) == 1)
    {
      in4->sin_family = AF_INET;
      in4->sin_port = htons (port);
      *len = sizeof *in4;
      return TRUE;
    }
  if (inet_pton (AF_INET6, host, &in6->sin6_addr) == 1)
    {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons (port);
      *len = sizeof *in6;
      return TRUE;
    }
  return FALSE;
}

/* A connected socket from @source (NULL: any) to @host:@port, or -1 with errno set. */
static int
raw_connect (const char *host,
             guint16     port,
             const char *source)
{
  struct sockaddr_storage sa;
  socklen_t len;
  int fd, saved;

  g_assert_true (fill_sockaddr (host, port, &sa, &len));
  fd = socket (sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (fd, >=, 0);
  if (source != NULL)
    {
      struct sockaddr_storage from;
      socklen_t from_len;

      g_assert_true (fill_sockaddr (source, 0, &from, &from_len));
      g_assert_cmpint (bind (fd, (struct sockaddr *) &from, from_len), ==, 0);
    }
  if (connect (fd, (struct sockaddr *) &sa, len) == 0)
    return fd;
  saved = errno;
  close (fd);
  errno = saved;
  return -1;
}

static void
raw_send (int         fd,
          const void *data,
          gsize       len)
{
  g_assert_cmpint (send (fd, data, len, MSG_NOSIGNAL), ==, (gssize) len);
}

/* Reads what @fd has (into @out when not NULL), iterating the main context meanwhile, until
 * the server closes it or @seconds pass. Returns the seconds it took to close, or -1. */
static double
raw_wait_closed (int      fd,
                 double   seconds,
                 GString *out)
{
  gint64 start = g_get_monotonic_time ();
  gint64 deadline = start + (gint64) (seconds * G_USEC_PER_SEC);

  while (g_get_monotonic_time () < deadline)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      char buffer[4096];

      if (poll (&pfd, 1, 0) > 0)
        {
          gssize n = recv (fd, buffer, sizeof buffer, 0);

          if (n <= 0)
            return (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
          if (out != NULL)
            g_string_append_len (out, buffer, n);
          continue;
        }
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  return -1;
}

/* Reads until @out holds the end of the HTTP response head (or the server closed, or 10 s). */
static void
raw_read_head (int      fd,
               GString *out)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (strstr (out->str, "\r\n\r\n") == NULL)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      char buffer[4096];

      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      if (poll (&pfd, 1, 0) > 0)
        {
          gssize n = recv (fd, buffer, sizeof buffer, 0);

          if (n <= 0)
            return;
          g_string_append_len (out, buffer, n);
          continue;
        }
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
}

/* A WebSocket handshake request for the sip subprotocol, with @extra_len bytes of @extra
 * header lines (which may hold a NUL). */
static GString *
raw_request (const char *extra,
             gsize       extra_len)
{
  GString *request = g_string_new ("GET / HTTP/1.1\r\n"
                                   "Host: 127.0.0.1\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                   "Sec-WebSocket-Version: 13\r\n"
                                   "Sec-WebSocket-Protocol: sip\r\n");

  g_string_append_len (request, extra, extra_len);
  g_string_append (request, "\r\n");
  return request;
}

/* The status of an HTTP response head (lws answers refusals in HTTP/1.0), or 0. */
static int
http_status (GString *response)
{
  int status = 0;

  if (g_str_has_prefix (response->str, "HTTP/1.") && response->len > 12)
    status = atoi (response->str + 9);
  return status;
}

/* Sends @request on @fd and returns the response head the server answers with. */
static GString *
raw_exchange (int      fd,
              GString *request)
{
  GString *response = g_string_new ("");

  raw_send (fd, request->str, request->len);
  raw_read_head (fd, response);
  return response;
}

/* An open WebSocket connection from @source (NULL: any) to @host:@port. */
static int
raw_open (const char *host,
          guint16     port,
          const char *source)
{
  g_autoptr(GString) request = raw_request ("", 0);
  g_autoptr(GString) response = NULL;
  int fd = raw_connect (host, port, source);

  g_assert_cmpint (fd, >=, 0);
  response = raw_exchange (fd, request);
  g_assert_cmpint (http_status (response), ==, 101);
  return fd;
}

/* One masked client frame. */
static void
raw_send_frame (int           fd,
                guint8        opcode,
                gboolean      fin,
                const guint8 *payload,
                gsize         len)
{
  static const guint8 mask[4] = { 0x12, 0x34, 0x56, 0x78 };
  g_autoptr(GByteArray) frame = g_byte_array_new ();
  guint8 head[2] = { (fin ? 0x80 : 0) | opcode, 0x80 };

  if (len < 126)
    {
      head[1] |= len;
      g_byte_array_append (frame, head, 2);
    }
  else
    {
      guint8 ext[8];

      head[1] |= 127;
      g_byte_array_append (frame, head, 2);
      for (int i = 0; i < 8; i++)
        ext[i] = (guint64) len >> (56 - 8 * i);
      g_byte_array_append (frame, ext, 8);
    }
  g_byte_array_append (frame, mask, 4);
  for (gsize i = 0; i < len; i++)
    {
      guint8 b = payload[i] ^ mask[i % 4];

      g_byte_array_append (frame, &b, 1);
    }
  raw_send (fd, frame->data, frame->len);
}

/* The first frame with @opcode in @data (server frames are unmasked): its payload's offset
 * and length, or FALSE. */
static gboolean
find_frame (GString *data,
            guint8   opcode,
            gsize   *offset,
            gsize   *len)
{
  const guint8 *start = (const guint8 *) data->str, *p = start, *end = p + data->len;

  while (end - p >= 2)
    {
      guint64 n = p[1] & 0x7f;
      const guint8 *payload = p + 2;

      if (n == 126)
        {
          if (end - p < 4)
            return FALSE;
          n = (guint64) p[2] << 8 | p[3];
          payload = p + 4;
        }
      else if (n == 127)
        return FALSE;
      if ((guint64) (end - payload) < n)
        return FALSE;
      if ((p[0] & 0x0f) == opcode)
        {
          *offset = payload - start;
          *len = n;
          return TRUE;
        }
      p = payload + n;
    }
  return FALSE;
}

/* The close code of the first close frame in @data, or -1. */
static gint
close_code_of (GString *data)
{
  gsize offset, len;

  if (!find_frame (data, 0x8, &offset, &len) || len < 2)
    return -1;
  return (guint8) data->str[offset] << 8 | (guint8) data->str[offset + 1];
}

/* Sends a PING and waits for its PONG: the server has read all that came before. FALSE if the
 * server closed the connection instead (what it sent is then in @out, if not NULL). */
static gboolean
raw_sync (int      fd,
          GString *out)
{
  g_autoptr(GString) received = g_string_new ("");
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  gsize offset, len;

  raw_send_frame (fd, 0x9, TRUE, (const guint8 *) "sync", 4);
  while (!find_frame (received, 0xA, &offset, &len))
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      char buffer[4096];

      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      if (poll (&pfd, 1, 0) > 0)
        {
          gssize n = recv (fd, buffer, sizeof buffer, 0);

          if (n <= 0)
            {
              if (out != NULL)
                g_string_append_len (out, received->str, received->len);
              return FALSE;
            }
          g_string_append_len (received, buffer, n);
          continue;
        }
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  return TRUE;
}

/* ---- what this process listens on, from /proc ------------------------------------------- */

static void
add_inode_of_fd (GHashTable *inodes,
                 const char *name)
{
  g_autofree char *link = g_strdup_printf ("/proc/self/fd/%s", name);
  g_autofree char *target = g_file_read_link (link, NULL);
  guint64 inode;

  if (target != NULL && sscanf (target, "socket:[%" G_GUINT64_FORMAT "]", &inode) == 1)
    g_hash_table_add (inodes, g_strdup_printf ("%" G_GUINT64_FORMAT, inode));
}

static void
add_listening (GPtrArray  *found,
               const char *table,
               gboolean    v6,
               guint16     port,
               GHashTable *inodes)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  g_assert_true (g_file_get_contents (table, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      g_auto(GStrv) fields = g_strsplit_set (g_strstrip (lines[i]), " ", -1);
      g_autoptr(GPtrArray) cols = g_ptr_array_new ();
      char address[INET6_ADDRSTRLEN];
      guint8 bytes[16];
      const char *local, *colon;

      for (guint j = 0; fields[j] != NULL; j++)
        if (fields[j][0] != '\0')
          g_ptr_array_add (cols, fields[j]);
      if (cols->len < 10 || strcmp (cols->pdata[3], "0A") != 0 ||
          !g_hash_table_contains (inodes, cols->pdata[9]))
        continue;
      local = cols->pdata[1];
      colon = strchr (local, ':');
      if (colon == NULL || strtoul (colon + 1, NULL, 16) != port)
        continue;
      /* The address as 32-bit words in host order, in hex. */
      for (guint w = 0; w < (v6 ? 4u : 1u); w++)
        {
          g_autofree char *word = g_strndup (local + 8 * w, 8);
          guint32 value = strtoul (word, NULL, 16);

          memcpy (bytes + 4 * w, &value, 4);
        }
      inet_ntop (v6 ? AF_INET6 : AF_INET, bytes, address, sizeof address);
      g_ptr_array_add (found, g_strdup (address));
    }
}

/* The local addresses of this process's TCP sockets listening on @port, sorted. */
static char *
listening_on (guint16 port)
{
  g_autoptr(GHashTable) inodes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    add_inode_of_fd (inodes, name);
  add_listening (found, "/proc/net/tcp", FALSE, port, inodes);
  if (g_file_test ("/proc/net/tcp6", G_FILE_TEST_EXISTS))
    add_listening (found, "/proc/net/tcp6", TRUE, port, inodes);
  g_ptr_array_sort (found, (GCompareFunc) g_strcmp0);
  g_ptr_array_add (found, NULL);
  return g_strjoinv (" ", (char **) found->pdata);
}

static gboolean
have_ipv6_loopback (void)
{
  struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
  int fd = socket (AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  gboolean ok = fd >= 0 && bind (fd, (struct sockaddr *) &sa, sizeof sa) == 0;

  if (fd >= 0)
    close (fd);
  return ok;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void
test_options (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *protocol = NULL, *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "options", NULL);
  g_assert_true (report_bool (report, "opened"));
  protocol = report_string (report, "protocol");
  g_assert_cmpstr (protocol, ==, "sip");
  reply = report_string (report, "reply");
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
  g_assert_nonnull (strstr (reply, "Call-ID: probe-1\r\n"));
  g_assert_false (report_bool (report, "replyBinary"));
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1000);
  wait_disconnected (f, 1);
  g_assert_cmpuint (f->errors->len, ==, 1);      /* the peer's close, reported as CLOSED */
  g_assert_error (first_error (f), SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
  g_assert_cmpuint (sofia_ws_listener_get_n_connections (f->listener), ==, 0);
}

static void
test_fragmented (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "fragmented", NULL);
  reply = report_string (report, "reply");
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
  g_assert_cmpuint (f->messages->len, ==, 1);
  g_assert_true (g_str_has_prefix (f->messages->pdata[0], "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"));
  g_assert_true (g_str_has_suffix (f->messages->pdata[0], "Content-Length: 0\r\n\r\n"));
}

static void
test_binary (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "binary", NULL);
  reply = report_string (report, "reply");
  /* Accepted as binary, answered in text. */
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
  g_assert_false (report_bool (report, "replyBinary"));
}

static void
test_crlf_keepalive (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "crlf", NULL);
  reply = report_string (report, "reply");
  g_assert_cmpstr (reply, ==, "\r\n");
  g_assert_cmpuint (f->messages->len, ==, 0);
}

static void
test_invalid_utf8 (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "invalid-utf8", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1007);
  wait_disconnected (f, 1);
  g_assert_cmpuint (f->messages->len, ==, 0);
  g_assert_error (first_error (f), SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_MESSAGE);
  assert_still_serving (f);
}

static void
test_nul_delivered (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reply = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "nul", NULL);
  /* U+0000 is valid in a text frame (a binary SIP body may hold NUL): the message is delivered,
   * as a string with U+FFFD for the NUL, and the connection carries on with the next. */
  reply = report_string (report, "reply");
  g_assert_true (g_str_has_prefix (reply, "SIP/2.0 200 OK\r\n"));
  g_assert_cmpuint (f->messages->len, ==, 2);
  g_assert_cmpstr (f->messages->pdata[0], ==, "OPTIONS\xef\xbf\xbdsip:127.0.0.1 SIP/2.0\r\n\r\n");
  /* The only error, if any, is the probe's going away. */
  for (guint i = 0; i < f->errors->len; i++)
    g_assert_error ((GError *) f->errors->pdata[i], SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
}

static void
test_oversize (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;

  g_object_set (f->listener, "max-message-size", 1024, NULL);
  if (!start_listener (f))
    return;
  report = probe (f, "/", "oversize", "--size", "1025", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1009);
  wait_disconnected (f, 1);
  g_assert_error (first_error (f), SOFIA_WS_ERROR, SOFIA_WS_ERROR_MESSAGE_TOO_LARGE);
  g_assert_cmpuint (f->messages->len, ==, 0);
  assert_still_serving (f);

  /* At the limit exactly, the message is delivered. */
  g_clear_pointer (&report, g_key_file_unref);
  report = probe (f, "/", "oversize", "--size", "1024", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1000);
  g_assert_cmpuint (strlen (f->messages->pdata[f->messages->len - 1]), ==, 1024);
}

static void
test_no_subprotocol_refused (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autoptr(GKeyFile) other = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "handshake", "--no-protocol", NULL);
  g_assert_false (report_bool (report, "opened"));
  g_assert_cmpint (report_int (report, "status"), ==, 400);
  /* lws itself refuses a subprotocol it does not serve, before any filter: no HTTP status. */
  other = probe (f, "/", "handshake", "--protocol", "foo", NULL);
  g_assert_false (report_bool (other, "opened"));
  g_assert_cmpuint (f->connections->len, ==, 0);
  assert_still_serving (f);
}

static void
test_origin_allowlist (Fixture *f, gconstpointer data)
{
  const char *allowed[] = { "https://app.example.com", NULL };
  g_autoptr(GKeyFile) bad = NULL, good = NULL, none = NULL;

  g_object_set (f->listener, "allowed-origins", allowed, NULL);
  if (!start_listener (f))
    return;
  bad = probe (f, "/", "handshake", "--origin", "https://evil.example.net", NULL);
  g_assert_false (report_bool (bad, "opened"));
  g_assert_cmpint (report_int (bad, "status"), ==, 403);
  none = probe (f, "/", "handshake", NULL);
  g_assert_false (report_bool (none, "opened"));
  g_assert_cmpint (report_int (none, "status"), ==, 403);
  good = probe (f, "/", "handshake", "--origin", "https://app.example.com", NULL);
  g_assert_true (report_bool (good, "opened"));
  g_assert_cmpuint (f->connections->len, ==, 1);
}

static void
test_path (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) wrong = NULL, right = NULL;

  g_object_set (f->listener, "path", "/ws", NULL);
  if (!start_listener (f))
    return;
  wrong = probe (f, "/other", "handshake", NULL);
  g_assert_false (report_bool (wrong, "opened"));
  g_assert_cmpint (report_int (wrong, "status"), ==, 404);
  right = probe (f, "/ws?x=1", "handshake", NULL);
  g_assert_true (report_bool (right, "opened"));
}

static void
on_client_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  gboolean *connected = user_data;
  g_autoptr(GError) error = NULL;

  *connected = sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result, &error);
  g_assert_no_error (error);
}

static void
test_connection_limit (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) refused = NULL, again = NULL;
  g_autoptr(SofiaWsWebSocket) holder = NULL;
  g_autofree char *url = NULL;
  gboolean connected = FALSE;

  g_object_set (f->listener, "max-connections", 1, NULL);
  if (!start_listener (f))
    return;
  url = g_strdup_printf ("ws://127.0.0.1:%u/", sofia_ws_listener_get_port (f->listener));
  holder = sofia_ws_websocket_new (url);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (holder), NULL, NULL,
                                    on_client_connected, &connected);
  while (!connected || f->connections->len == 0)
    g_main_context_iteration (NULL, TRUE);

  /* Closed at accept, before any HTTP. */
  refused = probe (f, "/", "handshake", NULL);
  g_assert_false (report_bool (refused, "opened"));
  g_assert_cmpint (report_int (refused, "status"), ==, 0);

  /* Once the first one has gone, there is room again. */
  g_clear_object (&holder);
  wait_disconnected (f, 1);
  again = probe (f, "/", "handshake", NULL);
  g_assert_true (report_bool (again, "opened"));
}

static void
test_peer_vanishes (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *message = NULL;

  if (!start_listener (f))
    return;
  report = probe (f, "/", "terminate", NULL);
  g_assert_true (report_bool (report, "opened"));
  wait_disconnected (f, 1);
  g_assert_error (first_error (f), SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED);
  message = g_strdup (first_error (f)->message);
  g_assert_nonnull (strstr (message, "1006"));
  g_assert_cmpuint (sofia_ws_listener_get_n_connections (f->listener), ==, 0);
  assert_still_serving (f);
}

static void
test_server_close_code (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;
  g_autofree char *reason = NULL;

  f->behaviour = CLOSE_4000;
  if (!start_listener (f))
    return;
  report = probe (f, "/", "wait-close", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 4000);
  reason = report_string (report, "closeReason");
  g_assert_cmpstr (reason, ==, "bye");
  wait_disconnected (f, 1);
  /* A requested disconnect is not an error. */
  g_assert_cmpuint (f->errors->len, ==, 0);
}

static void
test_listener_stop_going_away (Fixture *f, gconstpointer data)
{
  g_autoptr(GKeyFile) report = NULL;

  f->behaviour = STOP_LISTENER;
  if (!start_listener (f))
    return;
  report = probe (f, "/", "wait-close", NULL);
  g_assert_cmpint (report_int (report, "closeCode"), ==, 1001);
  g_assert_cmpuint (sofia_ws_listener_get_port (f->listener), ==, 0);
}

static gboolean
start_on (Fixture    *f,
          const char *address)
{
  g_autoptr(GError) error = NULL;

  g_object_set (f->listener, "address", address, NULL);
  g_assert_true (sofia_ws_listener_start (f->listener, &error));
  g_assert_no_error (error);
  return TRUE;
}

/* Accepts one handshake from @source to @host and returns the server side's remote address. */
static const char *
accepted_from (Fixture    *f,
               const char *host,
               const char *source)
{
  guint before = f->connections->len;
  int fd = raw_open (host, sofia_ws_listener_get_port (f->listener), source);
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (f->connections->len == before)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  close (fd);
  return sofia_ws_websocket_get_remote_address (f->connections->pdata[before]);
}

static void
assert_refused (const char *host,
                guint16     port)
{
  int fd = raw_connect (host, port, NULL);

  if (fd >= 0)
    close (fd);
  g_assert_cmpint (fd, ==, -1);
  g_assert_cmpint (errno, ==, ECONNREFUSED);
}

/* Issue 12: an IPv4 address was bound as "::" (every address of both families). Each case:
 * the listener's address, the address its socket is bound to, an address it must refuse,
 * and a connection (to, from) it accepts, whose remote address it reports with a prefix. */
typedef struct {
  const char *address;
  const char *bound;              /* NULL: "::" with IPv6 loopback, else "0.0.0.0" */
  const char *refused;            /* or NULL */
  const char *connect_to;
  const char *source;             /* or NULL: the kernel's choice */
  const char *remote_prefix;
  gboolean needs_ipv6;
} BindCase;

static const BindCase bind_ipv4 = { "127.0.0.1", "127.0.0.1",
                                    /* 127.0.0.2 is loopback too on Linux: only the bind
                                     * keeps it out. */
                                    "127.0.0.2", "127.0.0.1", NULL, "127.0.0.1:", FALSE };
static const BindCase bind_other_loopback = { "127.0.0.2", "127.0.0.2", "127.0.0.1",
                                              "127.0.0.2", "127.0.0.2", "127.0.0.2:", FALSE };
static const BindCase bind_ipv6 = { "::1", "::1", "127.0.0.1", "::1", NULL, "[::1]:", TRUE };
/* "*": every address of both families, IPv4 peers reported as IPv4. */
static const BindCase bind_all = { "*", NULL, NULL, "127.0.0.2", "127.0.0.2", "127.0.0.2:",
                                   FALSE };
static const BindCase bind_all_ipv4 = { "0.0.0.0", "0.0.0.0", NULL, "127.0.0.1", NULL,
                                        "127.0.0.1:", FALSE };

static void
test_bind (Fixture *f, gconstpointer data)
{
  const BindCase *c = data;
  g_autofree char *bound = NULL;
  const char *remote;
  guint16 port;

  if (c->needs_ipv6 && !have_ipv6_loopback ())
    {
      g_test_skip ("no IPv6 loopback (::1) on this machine");
      return;
    }
  start_on (f, c->address);
  port = sofia_ws_listener_get_port (f->listener);
  bound = listening_on (port);
  g_assert_cmpstr (bound, ==, c->bound != NULL ? c->bound
                                               : have_ipv6_loopback () ? "::" : "0.0.0.0");
  if (c->refused != NULL)
    assert_refused (c->refused, port);
  remote = accepted_from (f, c->connect_to, c->source);
  g_assert_true (g_str_has_prefix (remote, c->remote_prefix));
}

static void
test_bind_host_name (Fixture *f, gconstpointer data)
{
  g_autofree char *bound = NULL;
  const char *remote;

  start_on (f, "localhost");
  bound = listening_on (sofia_ws_listener_get_port (f->listener));
  /* Its first address, whichever the resolver puts first. */
  if (strcmp (bound, "::1") == 0)
    remote = accepted_from (f, "::1", NULL);
  else
    {
      g_assert_cmpstr (bound, ==, "127.0.0.1");
      remote = accepted_from (f, "127.0.0.1", NULL);
    }
  g_assert_nonnull (remote);
}

/* Issue 14: a second listener on the port, with "reuse-port" as set by @first and @second;
 * NULL and the error when it cannot bind. */
static SofiaWsListener *
second_listener_on (Fixture   *f,
                    gboolean   first,
                    gboolean   second,
                    GError   **error)
{
  g_autoptr(SofiaWsListener) other = NULL;

  g_object_set (f->listener, "reuse-port", first, NULL);
  start_on (f, "127.0.0.1");
  other = g_object_new (SOFIA_WS_TYPE_LISTENER, "address", "127.0.0.1",
                        "port", sofia_ws_listener_get_port (f->listener),
                        "reuse-port", second, NULL);
  if (!sofia_ws_listener_start (other, error))
    return NULL;
  return g_steal_pointer (&other);
}

static void
count_accepted (SofiaWsListener *listener, SofiaWsWebSocket *connection, guint *accepted)
{
  (*accepted)++;
}

/* Issue 14: N processes (or threads) serve one port, each with a listener that sets
 * "reuse-port"; the kernel spreads the connections over them. Here two listeners of one
 * process: 40 handshakes, every one accepted by one of them, and each accepting some (all
 * 40 on one side has a chance of 2^-39). */
static void
test_reuse_port (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SofiaWsListener) other = second_listener_on (f, TRUE, TRUE, &error);
  guint other_accepted = 0;
  int fds[40];

  g_assert_no_error (error);
  g_assert_nonnull (other);
  g_assert_cmpuint (sofia_ws_listener_get_port (other), ==,
                    sofia_ws_listener_get_port (f->listener));
  g_signal_connect (other, "accepted", G_CALLBACK (count_accepted), &other_accepted);
  for (guint i = 0; i < G_N_ELEMENTS (fds); i++)
    fds[i] = raw_open ("127.0.0.1", sofia_ws_listener_get_port (f->listener), NULL);
  /* raw_open() returns on the 101; the listener has announced the connection by then. */
  g_test_message ("first listener: %u connections, second: %u", f->connections->len,
                  other_accepted);
  g_assert_cmpuint (f->connections->len + other_accepted, ==, G_N_ELEMENTS (fds));
  g_assert_cmpuint (f->connections->len, >, 0);
  g_assert_cmpuint (other_accepted, >, 0);
  g_assert_cmpuint (sofia_ws_listener_get_n_connections (other), ==, other_accepted);
  for (guint i = 0; i < G_N_ELEMENTS (fds); i++)
    close (fds[i]);
  sofia_ws_listener_stop (other);
  g_signal_handlers_disconnect_by_data (other, &other_accepted);
  g_assert_finalize_object (g_steal_pointer (&other));
}

/* Issue 14: without "reuse-port" on both, the second bind fails, and says why. */
static void
test_reuse_port_needed (Fixture *f, gconstpointer data)
{
  const gboolean *sides = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SofiaWsListener) other = second_listener_on (f, sides[0], sides[1], &error);

  g_assert_null (other);
  g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_FAILED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "Address already in use"));
  /* The first one serves on. */
  close (raw_open ("127.0.0.1", sofia_ws_listener_get_port (f->listener), NULL));
  g_assert_cmpuint (f->connections->len, ==, 1);
}

static void
count_accept_pauses (const char     *domain,
                     GLogLevelFlags  level,
                     const char     *message,
                     gpointer        user_data)
{
  if (strstr (message, "cannot accept a connection") != NULL)
    (*(guint *) user_data)++;
}

/* Out of file descriptors, a listener sharing its port does not spin on its readable socket
 * (accept() fails while the connection stays in the backlog): it says why and pauses; once
 * descriptors are free again it accepts the connections that waited, and new ones. In a
 * subprocess: the descriptor limit is the whole process's. */
static void
test_reuse_port_out_of_descriptors (Fixture *f, gconstpointer data)
{
  struct rlimit saved, low;
  guint pauses = 0;
  gint64 until;
  int waiting[4], spare;

  if (!g_test_subprocess ())
    {
      g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_passed ();
      return;
    }
  g_object_set (f->listener, "reuse-port", TRUE, NULL);
  start_on (f, "127.0.0.1");
  /* Connected by the kernel, waiting in the backlog for accept(). */
  for (guint i = 0; i < G_N_ELEMENTS (waiting); i++)
    {
      waiting[i] = raw_connect ("127.0.0.1", sofia_ws_listener_get_port (f->listener), NULL);
      g_assert_cmpint (waiting[i], >=, 0);
    }
  /* No descriptor free: the limit is the lowest free one. */
  spare = dup (0);
  g_assert_cmpint (spare, >=, 0);
  close (spare);
  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &saved), ==, 0);
  low = saved;
  low.rlim_cur = (rlim_t) spare;
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &low), ==, 0);

  g_log_set_handler ("SofiaWs", G_LOG_LEVEL_MESSAGE, count_accept_pauses, &pauses);
  until = g_get_monotonic_time () + G_USEC_PER_SEC;
  while (g_get_monotonic_time () < until)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &saved), ==, 0);
  g_test_message ("accept paused %u times in 1 s", pauses);
  /* It said why, and paused (250 ms each) rather than retrying at once. */
  g_assert_cmpuint (pauses, >=, 1);
  g_assert_cmpuint (pauses, <=, 6);
  g_assert_cmpuint (sofia_ws_listener_get_n_connections (f->listener), ==, 0);

  /* Descriptors again: a new connection is served, and those that waited were accepted (the
   * handshake of one of them completes). */
  close (raw_open ("127.0.0.1", sofia_ws_listener_get_port (f->listener), NULL));
  {
    g_autoptr(GString) request = raw_request ("", 0);
    g_autoptr(GString) response = raw_exchange (waiting[0], request);

    g_assert_cmpint (http_status (response), ==, 101);
  }
  for (guint i = 0; i < G_N_ELEMENTS (waiting); i++)
    close (waiting[i]);
}

/* Issue 14: a listener sharing its port accepts the connections itself and hands them to
 * libwebsockets (lws 4.1 cannot set SO_REUSEPORT): TLS is done there too. */
static void
test_reuse_port_wss (Fixture *f, gconstpointer data)
{
  g_autoptr(TestCertificate) certificate = test_certificate_new ("127.0.0.1");
  g_autoptr(SofiaWsWebSocket) client = NULL;
  g_autofree char *url = NULL;
  gboolean connected = FALSE;

  g_object_set (f->listener, "reuse-port", TRUE, "tls-certificate-file",
                certificate->certificate, "tls-key-file", certificate->key, NULL);
  start_on (f, "127.0.0.1");
  g_assert_true (sofia_ws_listener_get_is_secure (f->listener));
  url = g_strdup_printf ("wss://127.0.0.1:%u/", sofia_ws_listener_get_port (f->listener));
  client = sofia_ws_websocket_new (url);
  g_object_set (client, "tls-ca-file", certificate->certificate, NULL);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL,
                                    on_client_connected, &connected);
  while (!connected || f->connections->len == 0)
    g_main_context_iteration (NULL, TRUE);
  g_clear_object (&client);
  wait_disconnected (f, 1);
}

/* Issue 14: the bind cases again on a socket of the listener's own (reuse-port). */
static void
test_bind_shared (Fixture *f, gconstpointer data)
{
  g_object_set (f->listener, "reuse-port", TRUE, NULL);
  test_bind (f, data);
}

static const gboolean reuse_neither[] = { FALSE, FALSE };
static const gboolean reuse_second_only[] = { FALSE, TRUE };
static const gboolean reuse_first_only[] = { TRUE, FALSE };

/* Issue 12: "https://good.example\0.evil" passed the allowlist as "https://good.example". */
static void
test_origin_with_nul (Fixture *f, gconstpointer data)
{
  static const char with_nul[] = "Origin: https://app.example.com\0.evil.example\r\n";
  static const char exact[] = "Origin: https://app.example.com\r\n";
  const char *allowed[] = { "https://app.example.com", NULL };
  g_autoptr(GString) bad_request = raw_request (with_nul, sizeof with_nul - 1);
  g_autoptr(GString) good_request = raw_request (exact, sizeof exact - 1);
  g_autoptr(GString) bad = NULL, good = NULL;
  guint16 port;
  int fd;

  g_object_set (f->listener, "allowed-origins", allowed, NULL);
  start_on (f, "127.0.0.1");
  port = sofia_ws_listener_get_port (f->listener);

  fd = raw_connect ("127.0.0.1", port, NULL);
  bad = raw_exchange (fd, bad_request);
  close (fd);
  g_assert_cmpint (http_status (bad), ==, 403);

  fd = raw_connect ("127.0.0.1", port, NULL);
  good = raw_exchange (fd, good_request);
  close (fd);
  g_assert_cmpint (http_status (good), ==, 101);
  g_assert_cmpuint (f->connections->len, ==, 1);
}

static void
on_subprocess_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  char **output = user_data;
  g_autoptr(GError) error = NULL;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, output, NULL, &error);
  g_assert_no_error (error);
  if (*output == NULL)
    *output = g_strdup ("");
}

/* Issue 12: the wss listener offered h2, and browsers multiplexed WebSockets over it. */
static void
test_alpn_http11_only (Fixture *f, gconstpointer data)
{
  g_autoptr(TestCertificate) certificate = NULL;
  g_autoptr(GSubprocess) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *target = NULL, *output = NULL;
  g_autofree char *openssl = g_find_program_in_path ("openssl");
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  if (openssl == NULL)
    {
      g_test_skip ("openssl(1) is not installed");
      return;
    }
  certificate = test_certificate_new ("127.0.0.1");
  g_object_set (f->listener, "tls-certificate-file", certificate->certificate,
                "tls-key-file", certificate->key, NULL);
  start_on (f, "127.0.0.1");
  target = g_strdup_printf ("127.0.0.1:%u", sofia_ws_listener_get_port (f->listener));
  /* stdin at its end: s_client reports the handshake and leaves. */
  client = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                             G_SUBPROCESS_FLAGS_STDERR_MERGE, &error,
                             "openssl", "s_client", "-connect", target, "-alpn", "h2,http/1.1",
                             NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (client, "", NULL, on_subprocess_done, &output);
  while (output == NULL)
    {
      if (g_get_monotonic_time () > deadline)
        {
          g_subprocess_force_exit (client);
          g_assert_not_reached ();
        }
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_nonnull (strstr (output, "ALPN protocol: http/1.1"));
}

/* Issue 12: "Upgrade: h2c" switched to HTTP/2 and was held, out of every limit. */
static void
test_h2c_refused (Fixture *f, gconstpointer data)
{
  static const char h2c[] = "GET / HTTP/1.1\r\n"
                            "Host: 127.0.0.1\r\n"
                            "Connection: Upgrade, HTTP2-Settings\r\n"
                            "Upgrade: h2c\r\n"
                            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
                            "\r\n";
  g_autoptr(GString) response = g_string_new ("");
  int fd;

  /* Far from the handshake timeout: the refusal is what closes. */
  g_object_set (f->listener, "handshake-timeout", 30, NULL);
  start_on (f, "127.0.0.1");
  fd = raw_connect ("127.0.0.1", sofia_ws_listener_get_port (f->listener), NULL);
  raw_send (fd, h2c, sizeof h2c - 1);
  g_assert_cmpfloat (raw_wait_closed (fd, 5, response), >=, 0);
  close (fd);
  g_assert_cmpint (http_status (response), ==, 400);
  assert_still_serving (f);
}

/* Plain HTTP got no answer and stayed open. */
static void
test_plain_http_refused (Fixture *f, gconstpointer data)
{
  static const char get[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  g_autoptr(GString) response = g_string_new ("");
  int fd;

  g_object_set (f->listener, "handshake-timeout", 30, NULL);
  start_on (f, "127.0.0.1");
  fd = raw_connect ("127.0.0.1", sofia_ws_listener_get_port (f->listener), NULL);
  raw_send (fd, get, sizeof get - 1);
  g_assert_cmpfloat (raw_wait_closed (fd, 5, response), >=, 0);
  close (fd);
  g_assert_cmpint (http_status (response), ==, 400);
}

/* Runs the main context until the listener has @n connections. */
static void
wait_n_connections (Fixture *f,
                    guint    n)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (sofia_ws_listener_get_n_connections (f->listener) != n)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
}

/* Issue 12: no limit per address; handshakes in progress count too. */
static void
test_per_address_limit (Fixture *f, gconstpointer data)
{
  g_autoptr(GString) nothing = g_string_new ("");
  int open_fd, handshaking_fd, refused_fd, other_fd, again_fd;
  guint16 port;

  g_object_set (f->listener, "max-connections-per-address", 2, NULL);
  start_on (f, "127.0.0.1");
  port = sofia_ws_listener_get_port (f->listener);

  open_fd = raw_open ("127.0.0.1", port, NULL);
  handshaking_fd = raw_connect ("127.0.0.1", port, NULL);
  g_assert_cmpint (handshaking_fd, >=, 0);
  /* The third from 127.0.0.1 is closed unanswered. */
  refused_fd = raw_connect ("127.0.0.1", port, NULL);
  g_assert_cmpint (refused_fd, >=, 0);
  g_assert_cmpfloat (raw_wait_closed (refused_fd, 5, nothing), >=, 0);
  g_assert_cmpuint (nothing->len, ==, 0);
  close (refused_fd);
  /* Another address has its own count. */
  other_fd = raw_open ("127.0.0.1", port, "127.0.0.2");
  wait_n_connections (f, 2);

  /* Once one has gone, there is room again. */
  close (open_fd);
  wait_n_connections (f, 1);
  again_fd = raw_open ("127.0.0.1", port, NULL);
  close (again_fd);
  close (other_fd);
  close (handshaking_fd);
}

/* A connection that sends nothing is dropped at the handshake timeout, and no longer counts. */
static void
test_handshake_timeout (Fixture *f, gconstpointer data)
{
  double took;
  int fd, again_fd;
  guint16 port;

  g_object_set (f->listener, "handshake-timeout", 1, "max-connections-per-address", 1, NULL);
  start_on (f, "127.0.0.1");
  port = sofia_ws_listener_get_port (f->listener);
  fd = raw_connect ("127.0.0.1", port, NULL);
  took = raw_wait_closed (fd, 5, NULL);
  close (fd);
  g_assert_cmpfloat (took, >=, 0.9);
  g_assert_cmpfloat (took, <, 3);
  again_fd = raw_open ("127.0.0.1", port, NULL);
  close (again_fd);
}

/* The same on wss: a client that never starts TLS is dropped too. */
static void
test_handshake_timeout_wss (Fixture *f, gconstpointer data)
{
  g_autoptr(TestCertificate) certificate = test_certificate_new ("127.0.0.1");
  double took;
  int fd;

  g_object_set (f->listener, "handshake-timeout", 1, "tls-certificate-file",
                certificate->certificate, "tls-key-file", certificate->key, NULL);
  start_on (f, "127.0.0.1");
  fd = raw_connect ("127.0.0.1", sofia_ws_listener_get_port (f->listener), NULL);
  took = raw_wait_closed (fd, 5, NULL);
  close (fd);
  g_assert_cmpfloat (took, >=, 0.9);
  g_assert_cmpfloat (took, <, 3);
}

/* Slowloris: the request one byte at a time keeps no connection past the handshake timeout. */
static void
test_slowloris (Fixture *f, gconstpointer data)
{
  g_autoptr(GString) request = raw_request ("", 0);
  gint64 start, closed_at = 0;
  int fd, again_fd;
  guint16 port;

  g_object_set (f->listener, "handshake-timeout", 1, "max-connections-per-address", 1, NULL);
  start_on (f, "127.0.0.1");
  port = sofia_ws_listener_get_port (f->listener);
  fd = raw_connect ("127.0.0.1", port, NULL);
  start = g_get_monotonic_time ();
  /* One byte every 100 ms: the request would take over 20 s. */
  for (gsize i = 0; i < request->len && closed_at == 0; i++)
    {
      gint64 next = g_get_monotonic_time () + G_USEC_PER_SEC / 10;
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      char byte;

      if (send (fd, request->str + i, 1, MSG_NOSIGNAL) != 1 ||
          (poll (&pfd, 1, 0) > 0 && recv (fd, &byte, 1, MSG_DONTWAIT) <= 0))
        closed_at = g_get_monotonic_time ();
      while (closed_at == 0 && g_get_monotonic_time () < next)
        if (!g_main_context_iteration (NULL, FALSE))
          g_usleep (1000);
      g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
    }
  close (fd);
  g_assert_cmpint (closed_at, !=, 0);
  g_assert_cmpint (closed_at - start, <, 3 * G_USEC_PER_SEC);
  /* Not counted any more against the address's one connection. */
  again_fd = raw_open ("127.0.0.1", port, NULL);
  close (again_fd);
}

/* Issue 12: thousands of connections each holding a fragmented message near max-message-size
 * took the registrar to 706 MiB; the listener bounds them together. */
static void
test_partial_budget (Fixture *f, gconstpointer data)
{
  g_autoptr(GString) b_got = g_string_new ("");
  g_autofree guint8 *part = g_malloc (60000);
  int a, b, c;
  guint16 port;

  memset (part, 'a', 60000);
  f->behaviour = QUIET;
  g_object_set (f->listener, "max-partial-bytes", 100000, NULL);
  start_on (f, "127.0.0.1");
  port = sofia_ws_listener_get_port (f->listener);

  /* A holds 60,000 bytes of a message... */
  a = raw_open ("127.0.0.1", port, NULL);
  raw_send_frame (a, 0x1, FALSE, part, 60000);
  g_assert_true (raw_sync (a, NULL));
  /* ... so B's 60,000 do not fit: B is closed with 1009, and A goes on. */
  b = raw_open ("127.0.0.1", port, NULL);
  raw_send_frame (b, 0x1, FALSE, part, 60000);
  g_assert_false (raw_sync (b, b_got));
  g_assert_cmpint (close_code_of (b_got), ==, 1009);
  close (b);
  raw_send_frame (a, 0x0, TRUE, part, 1000);
  g_assert_true (raw_sync (a, NULL));
  g_assert_cmpuint (f->messages->len, ==, 1);
  g_assert_cmpuint (strlen (f->messages->pdata[0]), ==, 61000);

  /* A's message delivered and B's dropped, their bytes are free again: C's 60,000 fit. */
  c = raw_open ("127.0.0.1", port, NULL);
  raw_send_frame (c, 0x1, FALSE, part, 60000);
  g_assert_true (raw_sync (c, NULL));
  raw_send_frame (c, 0x0, TRUE, part, 10);
  g_assert_true (raw_sync (c, NULL));
  g_assert_cmpuint (f->messages->len, ==, 2);
  g_assert_cmpuint (strlen (f->messages->pdata[1]), ==, 60010);
  close (a);
  close (c);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) \
  g_test_add ("/listener/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

  ADD ("options", test_options);
  ADD ("fragmented", test_fragmented);
  ADD ("binary", test_binary);
  ADD ("crlf-keepalive", test_crlf_keepalive);
  ADD ("invalid-utf8", test_invalid_utf8);
  ADD ("nul-delivered", test_nul_delivered);
  ADD ("oversize", test_oversize);
  ADD ("no-subprotocol-refused", test_no_subprotocol_refused);
  ADD ("origin-allowlist", test_origin_allowlist);
  ADD ("path", test_path);
  ADD ("connection-limit", test_connection_limit);
  ADD ("peer-vanishes", test_peer_vanishes);
  ADD ("server-close-code", test_server_close_code);
  ADD ("listener-stop-going-away", test_listener_stop_going_away);
  ADD ("origin-with-nul", test_origin_with_nul);
  ADD ("alpn-http11-only", test_alpn_http11_only);
  ADD ("h2c-refused", test_h2c_refused);
  ADD ("plain-http-refused", test_plain_http_refused);
  ADD ("per-address-limit", test_per_address_limit);
  ADD ("handshake-timeout", test_handshake_timeout);
  ADD ("handshake-timeout-wss", test_handshake_timeout_wss);
  ADD ("slowloris", test_slowloris);
  ADD ("partial-budget", test_partial_budget);
#define ADD_BIND(path, c) \
  g_test_add ("/listener/bind/" path, Fixture, &c, fixture_setup, test_bind, fixture_teardown)
  ADD_BIND ("ipv4", bind_ipv4);
  ADD_BIND ("other-loopback", bind_other_loopback);
  ADD_BIND ("ipv6", bind_ipv6);
  ADD ("bind/host-name", test_bind_host_name);
  ADD_BIND ("all", bind_all);
  ADD_BIND ("all-ipv4", bind_all_ipv4);
#undef ADD_BIND
  ADD ("reuse-port", test_reuse_port);
#define ADD_REUSE(path, sides) \
  g_test_add ("/listener/reuse-port/" path, Fixture, sides, fixture_setup, \
              test_reuse_port_needed, fixture_teardown)
  ADD_REUSE ("neither", reuse_neither);
  ADD_REUSE ("second-only", reuse_second_only);
  ADD_REUSE ("first-only", reuse_first_only);
#undef ADD_REUSE
  ADD ("reuse-port/wss", test_reuse_port_wss);
  ADD ("reuse-port/out-of-descriptors", test_reuse_port_out_of_descriptors);
#define ADD_BIND(path, c) \
  g_test_add ("/listener/reuse-port/bind/" path, Fixture, &c, fixture_setup, test_bind_shared, \
              fixture_teardown)
  ADD_BIND ("ipv4", bind_ipv4);
  ADD_BIND ("other-loopback", bind_other_loopback);
  ADD_BIND ("ipv6", bind_ipv6);
  ADD_BIND ("all", bind_all);
  ADD_BIND ("all-ipv4", bind_all_ipv4);
#undef ADD_BIND

#undef ADD

  return g_test_run ();
}
