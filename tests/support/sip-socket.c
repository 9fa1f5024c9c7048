/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sip-socket.h"
#include "sip-text.h"

#include <string.h>

struct _SipSocket {
  GSocket *socket;
  GString *buffer;
  char *local;
};

SipSocket *
sip_socket_connect (guint16 port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, port);
  g_autoptr(GSocketAddress) local = NULL;
  SipSocket *self = g_new0 (SipSocket, 1);

  self->socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                               G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_connect (self->socket, address, NULL, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (self->socket, FALSE);
  local = g_socket_get_local_address (self->socket, &error);
  g_assert_no_error (error);
  self->local = g_strdup_printf ("127.0.0.1:%u",
                                 g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local)));
  self->buffer = g_string_new (NULL);
  return self;
}

void
sip_socket_send (SipSocket  *self,
                 const char *text)
{
  gsize sent = 0, length = strlen (text);
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (sent < length)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_send (self->socket, text + sent, length - sent, NULL, &error);

      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_assert_cmpint (g_get_monotonic_time (), <, deadline);
          g_main_context_iteration (NULL, FALSE);
          g_usleep (1000);
          continue;
        }
      g_assert_no_error (error);
      sent += n;
    }
}

/* A whole message at the start of the buffer, taken out of it. */
static char *
take_message (GString *buffer)
{
  const char *end;
  g_autofree char *head = NULL, *length_text = NULL;
  gsize length = 0, total;

  while (buffer->len > 0 && (buffer->str[0] == '\r' || buffer->str[0] == '\n'))
    g_string_erase (buffer, 0, 1);
  end = g_strstr_len (buffer->str, buffer->len, "\r\n\r\n");
  if (end == NULL)
    return NULL;
  head = g_strndup (buffer->str, end + 2 - buffer->str);
  length_text = sip_text_header (head, "Content-Length");
  if (length_text == NULL)
    length_text = sip_text_header (head, "l");
  if (length_text != NULL)
    length = g_ascii_strtoull (length_text, NULL, 10);
  total = end + 4 - buffer->str + length;
  if (buffer->len < total)
    return NULL;
  {
    char *message = g_strndup (buffer->str, total);

    g_string_erase (buffer, 0, total);
    return message;
  }
}

static gboolean
on_timeout (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
on_readable (GSocket *socket, GIOCondition condition, gpointer data)
{
  return G_SOURCE_CONTINUE;
}

char *
sip_socket_read (SipSocket *self,
                 guint      timeout_ms)
{
  gboolean timed_out = FALSE;
  GSource *timeout = g_timeout_source_new (timeout_ms);
  GSource *readable = g_socket_create_source (self->socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  char *message = NULL;

  g_source_set_callback (timeout, on_timeout, &timed_out, NULL);
  g_source_attach (timeout, g_main_context_get_thread_default ());
  g_source_set_callback (readable, G_SOURCE_FUNC (on_readable), NULL, NULL);
  g_source_attach (readable, g_main_context_get_thread_default ());
  while ((message = take_message (self->buffer)) == NULL && !timed_out)
    {
      g_autoptr(GError) error = NULL;
      char chunk[16384];
      gssize n = g_socket_receive (self->socket, chunk, sizeof chunk, NULL, &error);

      if (n > 0)
        g_string_append_len (self->buffer, chunk, n);
      else if (n == 0)
        break;
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        g_main_context_iteration (g_main_context_get_thread_default (), TRUE);
      else
        break;                    /* reset */
    }
  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_source_destroy (readable);
  g_source_unref (readable);
  return message;
}

const char *
sip_socket_local (SipSocket *self)
{
  return self->local;
}

void
sip_socket_close (SipSocket *self)
{
  if (self == NULL)
    return;
  g_socket_close (self->socket, NULL);
  g_object_unref (self->socket);
  g_string_free (self->buffer, TRUE);
  g_free (self->local);
  g_free (self);
}

char *
sip_text_over_tcp (char *text)
{
  char *via = strstr (text, "SIP/2.0/WS ");
  GString *out;

  if (via == NULL)
    return text;
  out = g_string_new_len (text, via - text);
  g_string_append (out, "SIP/2.0/TCP ");
  g_string_append (out, via + strlen ("SIP/2.0/WS "));
  g_free (text);
  return g_string_free (out, FALSE);
}
