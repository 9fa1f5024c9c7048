/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* RFC 6455 framing by hand, for test clients that must control every byte they send (hostile
 * clients, the fuzzer's clients): the opening handshake request, frames with any header bits,
 * length and mask, and the parsing of what a server sends back. */

/* The GET request of a WebSocket handshake for the "sip" subprotocol; @extra_headers (each
 * ending in CRLF) may be NULL. */
char       *ws_frame_handshake_request (const char *host_port,
                                        const char *extra_headers);

/* The status code of the HTTP response at the start of @data (up to the blank line), or 0 when
 * it is not complete yet; *@header_len gets the length of the response's head. */
guint       ws_frame_handshake_status  (const char *data,
                                        gsize       len,
                                        gsize      *header_len);

/* One frame: @first_byte is FIN, RSV1-3 and the opcode as sent (e.g. 0x81 for a final text
 * frame); @declared_len is the payload length written in the header (normally @len; another
 * value forges the header), @mask whether to set the MASK bit and mask the payload with a
 * fixed key. Appended to @out. */
void        ws_frame_append            (GByteArray *out,
                                        guint8      first_byte,
                                        const void *payload,
                                        gsize       len,
                                        guint64     declared_len,
                                        gboolean    mask);

/* A final masked frame of @opcode carrying @len bytes, as a browser sends it. */
GByteArray *ws_frame_new               (guint8      opcode,
                                        const void *payload,
                                        gsize       len);

typedef struct {
  guint8 opcode;
  gboolean fin;
  GBytes *payload;
} WsFrame;

/* Takes the first whole frame (of a server: unmasked) from the start of @in; FALSE when @in
 * holds no whole frame yet. @frame->payload is a new GBytes. */
gboolean    ws_frame_parse             (GByteArray *in,
                                        WsFrame    *frame);

G_END_DECLS
