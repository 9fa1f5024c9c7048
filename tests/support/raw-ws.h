/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* A WebSocket client written by hand on a non-blocking socket, for peers that misbehave in
 * ways a real client library will not: one that never reads (with a small receive buffer),
 * one that sends a close frame without a status code. Everything it waits for iterates the
 * thread-default main context, so that a server in the same thread runs meanwhile. */
typedef struct _RawWs RawWs;

/* Connects to 127.0.0.1:@port with SO_RCVBUF set to @rcvbuf bytes first (0: the system's)
 * and does the handshake for the `sip` subprotocol on @path. Fails the test on any error. */
RawWs    *raw_ws_connect     (guint16     port,
                              const char *path,
                              int         rcvbuf);

/* Whether the socket would take more now (the server reads). */
gboolean  raw_ws_can_send    (RawWs       *ws);

/* Sends one masked frame (FIN set) of @opcode (1 text, 2 binary, 8 close) with @len bytes of
 * @payload. Returns FALSE, without failing the test, when the connection is gone (the server
 * closed it); waits at most 10 s for room in the socket. */
gboolean  raw_ws_send_frame  (RawWs       *ws,
                              guint8       opcode,
                              const void  *payload,
                              gsize        len);

/* Reads and discards what has arrived, without blocking; returns FALSE once the server has
 * closed the connection (end of stream or reset). */
gboolean  raw_ws_drain       (RawWs       *ws);

/* Whether the peer's first frame since the handshake, once read, was a close frame with
 * @code: reads (iterating the main context) up to 5 s. */
gboolean  raw_ws_read_close  (RawWs       *ws,
                              guint16     *code);

void      raw_ws_free        (RawWs       *ws);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RawWs, raw_ws_free)

G_END_DECLS
