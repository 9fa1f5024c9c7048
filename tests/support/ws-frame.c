/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "ws-frame.h"

#include <string.h>

char *
ws_frame_handshake_request (const char *host_port,
                            const char *extra_headers)
{
  /* The key is not checked by a server, only hashed into its answer. */
  return g_strdup_printf ("GET / HTTP/1.1\r\n"
                          "Host: %s\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Protocol: sip\r\n"
                          "%s"
                          "\r\n",
                          host_port, extra_headers ? extra_headers : "");
}

guint
ws_frame_handshake_status (const char *data,
                           gsize       len,
                           gsize      *header_len)
{
  const char *end = len > 0 ? g_strstr_len (data, len, "\r\n\r\n") : NULL;

  if (end == NULL)
    return 0;
  *header_len = end + 4 - data;
  if (len < 12 || strncmp (data, "HTTP/1.1 ", 9) != 0)
    return 999;
  return (guint) g_ascii_strtoull (data + 9, NULL, 10);
}

void
ws_frame_append (GByteArray *out,
                 guint8      first_byte,
                 const void *payload,
                 gsize       len,
                 guint64     declared_len,
                 gboolean    mask)
{
  static const guint8 key[4] = { 0x37, 0xfa, 0x21, 0x3d };
  guint8 header[14];
  gsize n = 0;
  guint mask_bit = mask ? 0x80 : 0;

  header[n++] = first_byte;
  if (declared_len < 126)
    header[n++] = mask_bit | (guint8) declared_len;
  else if (declared_len <= G_MAXUINT16)
    {
      header[n++] = mask_bit | 126;
      header[n++] = (guint8) (declared_len >> 8);
      header[n++] = (guint8) declared_len;
    }
  else
    {
      header[n++] = mask_bit | 127;
      for (int shift = 56; shift >= 0; shift -= 8)
        header[n++] = (guint8) (declared_len >> shift);
    }
  if (mask)
    {
      memcpy (header + n, key, 4);
      n += 4;
    }
  g_byte_array_append (out, header, n);
  if (len > 0)
    {
      gsize start = out->len;

      g_byte_array_append (out, payload, len);
      if (mask)
        for (gsize i = 0; i < len; i++)
          out->data[start + i] ^= key[i % 4];
    }
}

GByteArray *
ws_frame_new (guint8      opcode,
              const void *payload,
              gsize       len)
{
  GByteArray *out = g_byte_array_sized_new (len + 14);

  ws_frame_append (out, 0x80 | opcode, payload, len, len, TRUE);
  return out;
}

gboolean
ws_frame_parse (GByteArray *in,
                WsFrame    *frame)
{
  const guint8 *p = in->data;
  gsize header = 2;
  guint64 len;
  gboolean masked;

  if (in->len < 2)
    return FALSE;
  masked = (p[1] & 0x80) != 0;
  len = p[1] & 0x7f;
  if (len == 126)
    {
      if (in->len < 4)
        return FALSE;
      len = ((guint64) p[2] << 8) | p[3];
      header = 4;
    }
  else if (len == 127)
    {
      if (in->len < 10)
        return FALSE;
      len = 0;
      for (int i = 2; i < 10; i++)
        len = (len << 8) | p[i];
      header = 10;
    }
  if (masked)
    header += 4;
  if (in->len < header || in->len - header < len)
    return FALSE;
  frame->fin = (p[0] & 0x80) != 0;
  frame->opcode = p[0] & 0x0f;
  frame->payload = g_bytes_new (p + header, len);
  if (masked)
    {
      gsize size;
      guint8 *data = g_bytes_unref_to_data (frame->payload, &size);

      for (gsize i = 0; i < size; i++)
        data[i] ^= p[header - 4 + i % 4];
      frame->payload = g_bytes_new_take (data, size);
    }
  g_byte_array_remove_range (in, 0, header + len);
  return TRUE;
}
