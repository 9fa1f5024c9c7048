/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Kamailio test peer (kamailio-peer.h) against raw sockets: the WebSocket handshake with and
 * without the "sip" subprotocol, CRLF keep-alive and OPTIONS over WS, stop and restart. */
#include "support/kamailio-peer.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define IO_TIMEOUT_S 5

/* ---- a minimal client side ---------------------------------------------------------------- */

typedef struct {
  GSocketConnection *conn;
  GByteArray *in;     /* received, not yet consumed */
} Client;

static Client *
client_connect (guint16  port,
                GError **error)
{
  g_autoptr(GSocketClient) sc = g_socket_client_new ();
  GSocketConnection *conn;
  Client *c;

  g_socket_client_set_family (sc, G_SOCKET_FAMILY_IPV4);
  g_socket_client_set_timeout (sc, IO_TIMEOUT_S);
  conn = g_socket_client_connect_to_host (sc, "127.0.0.1", port, NULL, error);
  if (conn == NULL)
    return NULL;
  /* Blocking reads and writes give up after IO_TIMEOUT_S. */
  g_socket_set_timeout (g_socket_connection_get_socket (conn), IO_TIMEOUT_S);

  c = g_new0 (Client, 1);
  c->conn = conn;
  c->in = g_byte_array_new ();
  return c;
}

static void
client_free (Client *c)
{
  if (c == NULL)
    return;
  g_io_stream_close (G_IO_STREAM (c->conn), NULL, NULL);
  g_object_unref (c->conn);
  g_byte_array_unref (c->in);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, client_free)

static void
client_write (Client     *c,
              const void *data,
              gsize       len)
{
  g_autoptr(GError) error = NULL;
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (c->conn));

  g_output_stream_write_all (out, data, len, NULL, NULL, &error);
  g_assert_no_error (error);
}

/* Reads more bytes into c->in; FALSE on EOF. */
static gboolean
client_read_more (Client *c)
{
  g_autoptr(GError) error = NULL;
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (c->conn));
  guint8 buf[4096];
  gssize n;

  n = g_input_stream_read (in, buf, sizeof buf, NULL, &error);
  g_assert_no_error (error);
  if (n == 0)
    return FALSE;
  g_byte_array_append (c->in, buf, (guint) n);
  return TRUE;
}

/* Sends an HTTP upgrade and returns the response head (status line + headers). */
static char *
client_upgrade (Client     *c,
                const char *host,
                const char *protocol,
                const char *key)
{
  g_autoptr(GString) req = g_string_new (NULL);
  const guint8 *end;
  char *head;
  gsize head_len;

  g_string_append (req, "GET / HTTP/1.1\r\n");
  g_string_append_printf (req, "Host: %s\r\n", host);
  g_string_append (req, "Upgrade: websocket\r\n");
  g_string_append (req, "Connection: Upgrade\r\n");
  g_string_append_printf (req, "Sec-WebSocket-Key: %s\r\n", key);
  g_string_append (req, "Sec-WebSocket-Version: 13\r\n");
  if (protocol != NULL)
    g_string_append_printf (req, "Sec-WebSocket-Protocol: %s\r\n", protocol);
  g_string_append (req, "\r\n");
  client_write (c, req->str, req->len);

  for (;;)
    {
      end = c->in->len >= 4
        ? (const guint8 *) g_strstr_len ((const char *) c->in->data, c->in->len, "\r\n\r\n")
        : NULL;
      if (end != NULL)
        break;
      if (!client_read_more (c))
        g_error ("connection closed before the HTTP response head was complete");
    }

  head_len = (gsize) (end - c->in->data) + 2; /* keep the last header's CRLF */
  head = g_strndup ((const char *) c->in->data, head_len);
  g_byte_array_remove_range (c->in, 0, (guint) (head_len + 2));
  return head;
}

static guint
head_status (const char *head)
{
  g_assert_true (g_str_has_prefix (head, "HTTP/1.1 "));
  return (guint) g_ascii_strtoull (head + 9, NULL, 10);
}

/* The value of a header (case-insensitive name), or NULL. */
static char *
head_header (const char *head,
             const char *name)
{
  g_auto(GStrv) lines = g_strsplit (head, "\r\n", -1);
  gsize name_len = strlen (name);

  for (guint i = 1; lines[i] != NULL; i++)
    if (g_ascii_strncasecmp (lines[i], name, name_len) == 0 && lines[i][name_len] == ':')
      return g_strstrip (g_strdup (lines[i] + name_len + 1));
  return NULL;
}

static char *
expected_accept (const char *key)
{
  g_autofree char *concat = g_strconcat (key, WS_GUID, NULL);
  GChecksum *sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  guint8 digest[20];
  gsize digest_len = sizeof digest;

  g_checksum_update (sha1, (const guchar *) concat, -1);
  g_checksum_get_digest (sha1, digest, &digest_len);
  g_checksum_free (sha1);
  return g_base64_encode (digest, digest_len);
}

static char *
random_key (void)
{
  guint8 raw[16];

  for (gsize i = 0; i < sizeof raw; i++)
    raw[i] = (guint8) g_random_int_range (0, 256);
  return g_base64_encode (raw, sizeof raw);
}

/* One masked client frame (FIN set). */
static void
ws_send (Client     *c,
         guint8      opcode,
         const char *payload)
{
  g_autoptr(GByteArray) frame = g_byte_array_new ();
  gsize len = strlen (payload);
  guint8 b[4];
  guint8 mask[4];

  b[0] = 0x80 | opcode;
  g_byte_array_append (frame, b, 1);
  if (len < 126)
    {
      b[0] = 0x80 | (guint8) len;
      g_byte_array_append (frame, b, 1);
    }
  else
    {
      g_assert_cmpuint (len, <=, 0xffff);
      b[0] = 0x80 | 126;
      b[1] = (guint8) (len >> 8);
      b[2] = (guint8) (len & 0xff);
      g_byte_array_append (frame, b, 3);
    }
  for (gsize i = 0; i < 4; i++)
    mask[i] = (guint8) g_random_int_range (0, 256);
  g_byte_array_append (frame, mask, 4);
  for (gsize i = 0; i < len; i++)
    {
      guint8 x = (guint8) payload[i] ^ mask[i % 4];
      g_byte_array_append (frame, &x, 1);
    }
  client_write (c, frame->data, frame->len);
}

/* The next text or binary message from the server (control frames are skipped). */
static char *
ws_receive (Client *c)
{
  for (;;)
    {
      guint8 opcode;
      guint64 len;
      gsize hdr = 2;
      char *payload;

      while (c->in->len < 2)
        g_assert_true (client_read_more (c));
      opcode = c->in->data[0] & 0x0f;
      g_assert_cmpuint (c->in->data[1] & 0x80, ==, 0); /* server frames are not masked */
      len = c->in->data[1] & 0x7f;
      if (len == 126)
        {
          while (c->in->len < 4)
            g_assert_true (client_read_more (c));
          len = ((guint64) c->in->data[2] << 8) | c->in->data[3];
          hdr = 4;
        }
      else if (len == 127)
        {
          while (c->in->len < 10)
            g_assert_true (client_read_more (c));
          len = 0;
          for (gsize i = 2; i < 10; i++)
            len = (len << 8) | c->in->data[i];
          hdr = 10;
        }
      g_assert_cmpuint (len, <, 1 << 20);
      while (c->in->len < hdr + len)
        g_assert_true (client_read_more (c));

      payload = g_strndup ((const char *) c->in->data + hdr, (gsize) len);
      g_byte_array_remove_range (c->in, 0, (guint) (hdr + len));
      g_assert_cmpuint (opcode, !=, 0x8); /* close */
      if (opcode == 0x1 || opcode == 0x2)
        return payload;
      g_free (payload); /* ping / pong */
    }
}

/* Upgrades a new connection with the "sip" subprotocol, asserting the 101. */
static Client *
ws_open (guint16 port)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *host = g_strdup_printf ("127.0.0.1:%u", (guint) port);
  g_autofree char *key = random_key ();
  g_autofree char *accept = expected_accept (key);
  g_autofree char *head = NULL;
  g_autofree char *proto = NULL;
  g_autofree char *got_accept = NULL;
  Client *c;

  c = client_connect (port, &error);
  g_assert_no_error (error);
  head = client_upgrade (c, host, "sip", key);
  g_test_message ("101 head:\n%s", head);
  g_assert_cmpuint (head_status (head), ==, 101);
  proto = head_header (head, "Sec-WebSocket-Protocol");
  g_assert_cmpstr (proto, ==, "sip");
  got_accept = head_header (head, "Sec-WebSocket-Accept");
  g_assert_cmpstr (got_accept, ==, accept);
  return c;
}

static gboolean
port_is_closed (guint16 port)
{
  g_autoptr(GError) error = NULL;
  Client *c = client_connect (port, &error);

  if (c != NULL)
    {
      client_free (c);
      return FALSE;
    }
  g_test_message ("connect after stop: %s", error->message);
  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
}

static gboolean
pid_is_gone (GPid pid)
{
  return kill (pid, 0) == -1 && errno == ESRCH;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void
test_handshake (void)
{
  g_autoptr(KamailioPeer) peer = kamailio_peer_start_or_skip ();
  g_autoptr(Client) c = NULL;
  g_autofree char *url = NULL;
  g_autofree char *crlf = NULL;

  if (peer == NULL)
    return;

  g_assert_cmpuint (kamailio_peer_get_port (peer), !=, 0);
  url = g_strdup_printf ("ws://127.0.0.1:%u/", (guint) kamailio_peer_get_port (peer));
  g_assert_cmpstr (kamailio_peer_get_ws_url (peer), ==, url);
  g_assert_cmpint (kamailio_peer_get_pid (peer), >, 0);

  c = ws_open (kamailio_peer_get_port (peer));

  /* RFC 5626 CRLF keep-alive, answered with a single CRLF */
  ws_send (c, 0x1, "\r\n\r\n");
  crlf = ws_receive (c);
  g_assert_cmpstr (crlf, ==, "\r\n");
}

static void
test_options (void)
{
  g_autoptr(KamailioPeer) peer = kamailio_peer_start_or_skip ();
  g_autoptr(Client) c = NULL;
  g_autofree char *request = NULL;
  g_autofree char *response = NULL;
  g_autofree char *branch = NULL;

  if (peer == NULL)
    return;

  c = ws_open (kamailio_peer_get_port (peer));
  branch = g_strdup_printf ("z9hG4bK%08x", g_random_int ());
  request = g_strdup_printf ("OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
                             "Via: SIP/2.0/WS peertest.invalid;branch=%s\r\n"
                             "Max-Forwards: 70\r\n"
                             "From: <sip:probe@127.0.0.1>;tag=%08x\r\n"
                             "To: <sip:127.0.0.1>\r\n"
                             "Call-ID: %08x@peertest.invalid\r\n"
                             "CSeq: 1 OPTIONS\r\n"
                             "Content-Length: 0\r\n"
                             "\r\n", branch, g_random_int (), g_random_int ());
  ws_send (c, 0x1, request);
  response = ws_receive (c);
  g_test_message ("OPTIONS response:\n%s", response);
  g_assert_true (g_str_has_prefix (response, "SIP/2.0 200 "));
  g_assert_nonnull (strstr (response, branch));
}

static void
test_no_subprotocol (void)
{
  g_autoptr(KamailioPeer) peer = kamailio_peer_start_or_skip ();
  g_autoptr(Client) c = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *host = NULL;
  g_autofree char *key = random_key ();
  g_autofree char *head = NULL;
  g_autofree char *head_foo = NULL;
  g_autoptr(Client) c2 = NULL;
  g_autoptr(Client) ok = NULL;

  if (peer == NULL)
    return;

  /* A good connection first, so the 400 below is not a server that refuses everything. */
  ok = ws_open (kamailio_peer_get_port (peer));

  host = g_strdup_printf ("127.0.0.1:%u", (guint) kamailio_peer_get_port (peer));
  c = client_connect (kamailio_peer_get_port (peer), &error);
  g_assert_no_error (error);
  head = client_upgrade (c, host, NULL, key);
  g_test_message ("no subprotocol:\n%s", head);
  g_assert_cmpuint (head_status (head), ==, 400);

  c2 = client_connect (kamailio_peer_get_port (peer), &error);
  g_assert_no_error (error);
  head_foo = client_upgrade (c2, host, "foo", key);
  g_assert_cmpuint (head_status (head_foo), ==, 400);
}

static void
test_foreign_host (void)
{
  g_autoptr(KamailioPeer) peer = kamailio_peer_start_or_skip ();
  g_autoptr(Client) c = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *key = random_key ();
  g_autofree char *head = NULL;

  if (peer == NULL)
    return;

  c = client_connect (kamailio_peer_get_port (peer), &error);
  g_assert_no_error (error);
  head = client_upgrade (c, "example.com", "sip", key);
  g_assert_cmpuint (head_status (head), ==, 403);
}

static void
test_stop (void)
{
  KamailioPeer *peer = kamailio_peer_start_or_skip ();
  g_autofree char *dir = NULL;
  guint16 port;
  GPid pid;

  if (peer == NULL)
    return;

  port = kamailio_peer_get_port (peer);
  pid = kamailio_peer_get_pid (peer);
  dir = g_strdup (kamailio_peer_get_dir (peer));
  g_assert_false (pid_is_gone (pid));
  g_assert_true (g_file_test (dir, G_FILE_TEST_IS_DIR));
  client_free (ws_open (port));

  kamailio_peer_stop (peer);

  g_assert_true (pid_is_gone (pid));
  g_assert_true (pid_is_gone (-pid)); /* its whole process group */
  g_assert_true (port_is_closed (port));
  if (g_getenv ("KAMAILIO_PEER_KEEP") == NULL)
    g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
}

static void
test_restart (void)
{
  g_autoptr(KamailioPeer) peer = kamailio_peer_start_or_skip ();
  g_autoptr(GError) error = NULL;
  g_autoptr(Client) before = NULL;
  g_autoptr(Client) after = NULL;
  g_autofree char *url = NULL;
  g_autofree char *crlf = NULL;
  guint16 port;
  GPid pid;

  if (peer == NULL)
    return;

  port = kamailio_peer_get_port (peer);
  pid = kamailio_peer_get_pid (peer);
  url = g_strdup (kamailio_peer_get_ws_url (peer));

  /* An open WebSocket across the restart: its server side goes away with the old process. */
  before = ws_open (port);

  g_assert_true (kamailio_peer_restart (peer, &error));
  g_assert_no_error (error);

  g_assert_true (pid_is_gone (pid));
  g_assert_cmpint (kamailio_peer_get_pid (peer), >, 0);
  g_assert_cmpint (kamailio_peer_get_pid (peer), !=, pid);
  g_assert_cmpuint (kamailio_peer_get_port (peer), ==, port);
  g_assert_cmpstr (kamailio_peer_get_ws_url (peer), ==, url);
  g_assert_false (client_read_more (before)); /* EOF */

  after = ws_open (port);
  ws_send (after, 0x1, "\r\n\r\n");
  crlf = ws_receive (after);
  g_assert_cmpstr (crlf, ==, "\r\n");

  /* and once more */
  g_assert_true (kamailio_peer_restart (peer, &error));
  g_assert_no_error (error);
  client_free (ws_open (port));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/kamailio-peer/handshake", test_handshake);
  g_test_add_func ("/kamailio-peer/options", test_options);
  g_test_add_func ("/kamailio-peer/no-subprotocol", test_no_subprotocol);
  g_test_add_func ("/kamailio-peer/foreign-host", test_foreign_host);
  g_test_add_func ("/kamailio-peer/stop", test_stop);
  g_test_add_func ("/kamailio-peer/restart", test_restart);

  return g_test_run ();
}
