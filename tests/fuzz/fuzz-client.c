/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-client.h"

#include <errno.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/sip-text.h"
#include "support/ws-frame.h"

/* A tcp connection to 127.0.0.1:@port. */
int
fuzz_connect_loopback (guint16 port)
{
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons (port),
                                 .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  int one = 1;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert (fd >= 0);
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* Loopback: connect() completes in the kernel's accept queue, before the server runs. */
  if (connect (fd, (struct sockaddr *) &address, sizeof address) < 0)
    g_error ("connect to port %u: %s", port, g_strerror (errno));
  return fd;
}

/* Writes all of @data on @fd, running the loop while the kernel's buffer is full (the reader
 * runs in this thread); FALSE when the peer has gone. */
gboolean
fuzz_send_all (int fd, const void *data, gsize len)
{
  const guint8 *p = data;
  gint64 deadline = g_get_monotonic_time () + FUZZ_DEADLINE_US;

  while (len > 0)
    {
      ssize_t n = send (fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

      if (n > 0)
        {
          p += n;
          len -= n;
        }
      else if (n < 0 && (errno == EAGAIN || errno == EINTR))
        {
          if (g_get_monotonic_time () > deadline)
            g_error ("the server reads nothing for 10 s");
          g_main_context_iteration (NULL, TRUE);
        }
      else
        return FALSE;
    }
  return TRUE;
}

void
fuzz_client_close (FuzzClient *c)
{
  if (c->watch != 0)
    g_source_remove (c->watch);
  c->watch = 0;
  if (c->fd >= 0)
    close (c->fd);
  c->fd = -1;
  c->closed = TRUE;
  c->upgraded = FALSE;
  g_byte_array_set_size (c->in, 0);
}

void
fuzz_client_send_message (FuzzClient *c, guint8 opcode, const void *data, gsize len)
{
  g_autoptr(GByteArray) frame = ws_frame_new (opcode, data, len);

  if (!c->closed && !fuzz_send_all (c->fd, frame->data, frame->len))
    fuzz_client_close (c);
}

static void
on_sip (FuzzClient *c, const char *text)
{
  guint status = sip_text_status (text);

  if (status == 0)
    {
      g_autofree char *method = sip_text_method (text);

      /* Whatever the server relays is answered, as a browser would. */
      if (method != NULL && g_strcmp0 (method, "ACK") != 0)
        {
          g_autofree char *response = sip_text_response (text, 200, "OK");

          /* Text when it is UTF-8 (RFC 7118), else binary: the request's own bytes come back
           * in its headers. */
          fuzz_client_send_message (c, g_utf8_validate (response, -1, NULL) ? 0x1 : 0x2,
                                    response, strlen (response));
        }
      return;
    }
  if (status >= 200 && c->awaited_call_id != NULL)
    {
      g_autofree char *call_id = sip_text_header (text, "Call-ID");

      if (g_strcmp0 (call_id, c->awaited_call_id) == 0)
        {
          c->awaited_status = status;
          g_clear_pointer (&c->awaited_call_id, g_free);
        }
    }
}

static gboolean
on_readable (int fd, GIOCondition condition, gpointer data)
{
  FuzzClient *c = data;
  guint8 buffer[16384];
  ssize_t n = recv (fd, buffer, sizeof buffer, MSG_DONTWAIT);
  WsFrame frame;

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (n <= 0)
    {
      c->watch = 0;
      fuzz_client_close (c);
      return G_SOURCE_REMOVE;
    }
  g_byte_array_append (c->in, buffer, n);
  if (!c->upgraded)
    {
      gsize head = 0;
      guint status = ws_frame_handshake_status ((const char *) c->in->data, c->in->len, &head);

      if (status == 0)
        return G_SOURCE_CONTINUE;
      if (status != 101)
        g_error ("%s: handshake answered %u", c->name, status);
      g_byte_array_remove_range (c->in, 0, head);
      c->upgraded = TRUE;
    }
  while (!c->closed && ws_frame_parse (c->in, &frame))
    {
      gsize size;
      const char *payload = g_bytes_get_data (frame.payload, &size);

      if (frame.opcode == 0x1 || frame.opcode == 0x2)
        {
          g_autofree char *text = g_strndup (payload, size);

          on_sip (c, text);
        }
      else if (frame.opcode == 0x8)
        {
          /* The server closes: answer its close, then let it go. */
          fuzz_client_send_message (c, 0x8, payload, MIN (size, 2));
          g_bytes_unref (frame.payload);
          c->watch = 0;
          fuzz_client_close (c);
          return G_SOURCE_REMOVE;
        }
      else if (frame.opcode == 0x9)
        fuzz_client_send_message (c, 0xa, payload, size);
      g_bytes_unref (frame.payload);
    }
  return G_SOURCE_CONTINUE;
}

/* Connects @c to the ws listener on 127.0.0.1:@port, handshake done. */
void
fuzz_client_connect (FuzzClient *c, guint16 port)
{
  g_autofree char *host = g_strdup_printf ("127.0.0.1:%u", port);
  g_autofree char *request = ws_frame_handshake_request (host, NULL);

  c->fd = fuzz_connect_loopback (port);
  c->closed = FALSE;
  c->upgraded = FALSE;
  c->watch = g_unix_fd_add (c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
  if (!fuzz_send_all (c->fd, request, strlen (request)))
    fuzz_client_close (c);
  while (!c->upgraded && !c->closed)
    g_main_context_iteration (NULL, TRUE);
  if (c->closed)
    g_error ("%s: the server closed the handshake", c->name);
}

/* Sends @text as a request on @c and runs the loop until the final response with Call-ID
 * @call_id came back (its status), or @c was closed (0). The targets' deadline source
 * aborts a wait that never ends. */
guint
fuzz_client_request (FuzzClient *c, const char *text, const char *call_id)
{
  g_free (c->awaited_call_id);
  c->awaited_call_id = g_strdup (call_id);
  c->awaited_status = 0;
  fuzz_client_send_message (c, 0x1, text, strlen (text));
  while (c->awaited_call_id != NULL && !c->closed)
    g_main_context_iteration (NULL, TRUE);
  g_clear_pointer (&c->awaited_call_id, g_free);
  return c->awaited_status;
}
