/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE 1

#include "raw-ws.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

struct _RawWs {
  GSocket *socket;
  GByteArray *in;                 /* what arrived after the handshake, not yet parsed */
};

static gboolean
iterate_until (gint64 deadline)
{
  g_main_context_iteration (NULL, FALSE);
  if (g_get_monotonic_time () > deadline)
    return FALSE;
  g_usleep (500);
  return TRUE;
}

/* Appends what the socket has now; FALSE at the end of the stream or on an error. */
static gboolean
receive_some (RawWs *ws)
{
  guint8 buffer[16384];
  g_autoptr(GError) error = NULL;
  gssize n = g_socket_receive (ws->socket, (char *) buffer, sizeof buffer, NULL, &error);

  if (n > 0)
    {
      g_byte_array_append (ws->in, buffer, n);
      return TRUE;
    }
  return n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
}

RawWs *
raw_ws_connect (guint16     port,
                const char *path,
                int         rcvbuf)
{
  RawWs *ws = g_new0 (RawWs, 1);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, port);
  g_autoptr(GError) error = NULL;
  g_autofree char *request = NULL;
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  gsize sent = 0;
  guint8 *end = NULL;

  ws->in = g_byte_array_new ();
  ws->socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                             &error);
  g_assert_no_error (error);
  /* Before the connect, so that the window offered to the server is small from the start. */
  if (rcvbuf > 0)
    g_assert_true (g_socket_set_option (ws->socket, SOL_SOCKET, SO_RCVBUF, rcvbuf, &error));
  g_assert_no_error (error);
  g_socket_set_blocking (ws->socket, FALSE);
  if (!g_socket_connect (ws->socket, address, NULL, &error))
    {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PENDING);
      g_clear_error (&error);
      while (g_socket_condition_check (ws->socket, G_IO_OUT) == 0)
        g_assert_true (iterate_until (deadline));
      g_assert_true (g_socket_check_connect_result (ws->socket, &error));
      g_assert_no_error (error);
    }

  request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
                             path, port);
  while (sent < strlen (request))
    {
      gssize n = g_socket_send (ws->socket, request + sent, strlen (request) - sent, NULL, NULL);

      if (n > 0)
        sent += n;
      else
        g_assert_true (iterate_until (deadline));
    }
  while (end == NULL)
    {
      g_assert_true (receive_some (ws));
      if (ws->in->len >= 4)
        end = memmem (ws->in->data, ws->in->len, "\r\n\r\n", 4);
      if (end == NULL)
        g_assert_true (iterate_until (deadline));
    }
  if (strncmp ((const char *) ws->in->data, "HTTP/1.1 101", 12) != 0)
    g_error ("handshake refused: %.*s", (int) ws->in->len, ws->in->data);
  g_byte_array_remove_range (ws->in, 0, end + 4 - ws->in->data);
  return ws;
}

gboolean
raw_ws_send_frame (RawWs      *ws,
                   guint8      opcode,
                   const void *payload,
                   gsize       len)
{
  g_autoptr(GByteArray) frame = g_byte_array_sized_new (len + 14);
  const guint8 mask[4] = { 0x12, 0x34, 0x56, 0x78 };
  guint8 header[10];
  gsize header_len = 2;
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  gsize sent = 0;

  header[0] = 0x80 | opcode;
  if (len < 126)
    header[1] = 0x80 | len;
  else
    {
      g_assert_cmpuint (len, <=, G_MAXUINT16);
      header[1] = 0x80 | 126;
      header[2] = len >> 8;
      header[3] = len & 0xff;
      header_len = 4;
    }
  g_byte_array_append (frame, header, header_len);
  g_byte_array_append (frame, mask, 4);
  for (gsize i = 0; i < len; i++)
    {
      guint8 b = ((const guint8 *) payload)[i] ^ mask[i % 4];

      g_byte_array_append (frame, &b, 1);
    }

  while (sent < frame->len)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_send_with_blocking (ws->socket, (const char *) frame->data + sent,
                                              frame->len - sent, FALSE, NULL, &error);

      if (n > 0)
        sent += n;
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          if (!iterate_until (deadline))
            return FALSE;
        }
      else
        return FALSE;             /* reset or closed by the server */
    }
  return TRUE;
}

gboolean
raw_ws_can_send (RawWs *ws)
{
  return g_socket_condition_check (ws->socket, G_IO_OUT) != 0;
}

gboolean
raw_ws_drain (RawWs *ws)
{
  gboolean alive = TRUE;

  while (alive && g_socket_condition_check (ws->socket, G_IO_IN | G_IO_HUP | G_IO_ERR) != 0)
    {
      guint before = ws->in->len;

      alive = receive_some (ws);
      if (alive && ws->in->len == before)
        break;
      /* Only what the close check needs is kept. */
      if (ws->in->len > 65536)
        g_byte_array_set_size (ws->in, 0);
    }
  return alive;
}

gboolean
raw_ws_read_close (RawWs   *ws,
                   guint16 *code)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  for (;;)
    {
      /* Server frames are unmasked: FIN/opcode, length (7, 16 or 64 bits), payload. */
      while (ws->in->len >= 2)
        {
          guint8 opcode = ws->in->data[0] & 0x0f;
          guint64 len = ws->in->data[1] & 0x7f;
          gsize offset = 2;

          if (len == 126)
            {
              if (ws->in->len < 4)
                break;
              len = (guint64) ws->in->data[2] << 8 | ws->in->data[3];
              offset = 4;
            }
          else if (len == 127)
            {
              if (ws->in->len < 10)
                break;
              len = 0;
              for (guint i = 0; i < 8; i++)
                len = len << 8 | ws->in->data[2 + i];
              offset = 10;
            }
          if (ws->in->len < offset + len)
            break;
          if (opcode == 8)
            {
              *code = len >= 2 ? (guint16) (ws->in->data[offset] << 8 |
                                            ws->in->data[offset + 1]) : 0;
              return TRUE;
            }
          g_byte_array_remove_range (ws->in, 0, offset + len);
        }
      if (!receive_some (ws) || !iterate_until (deadline))
        return FALSE;
    }
}

void
raw_ws_free (RawWs *ws)
{
  g_socket_close (ws->socket, NULL);
  g_object_unref (ws->socket);
  g_byte_array_unref (ws->in);
  g_free (ws);
}
