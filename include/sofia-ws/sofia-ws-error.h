/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(SOFIA_WS_INSIDE) && !defined(SOFIA_WS_COMPILATION)
#error "Only <sofia-ws/sofia-ws.h> can be included directly."
#endif

#include <glib.h>
#include <sofia-ws/sofia-ws-version.h>

G_BEGIN_DECLS

/**
 * SOFIA_WS_ERROR:
 *
 * The error domain of sofia-ws. Errors in it carry a [enum@SofiaWs.Error] code.
 */
#define SOFIA_WS_ERROR (sofia_ws_error_quark ())

/**
 * SofiaWsError:
 * @SOFIA_WS_ERROR_FAILED: a failure no other code describes
 * @SOFIA_WS_ERROR_NOT_CONNECTED: the transport is not connected (a send while disconnected)
 * @SOFIA_WS_ERROR_CLOSED: the connection closed, or a disconnect was requested, before the
 *   operation could complete
 * @SOFIA_WS_ERROR_CONNECT_TIMEOUT: the connection was not established within the connection timeout
 * @SOFIA_WS_ERROR_CONNECTION_REFUSED: the peer refused the TCP connection
 * @SOFIA_WS_ERROR_RESOLVE: the server's host name could not be resolved
 * @SOFIA_WS_ERROR_TLS: the TLS handshake failed or the peer's certificate was not trusted
 * @SOFIA_WS_ERROR_HANDSHAKE_REFUSED: the peer refused the WebSocket handshake (an HTTP status
 *   other than 101, a refused Origin)
 * @SOFIA_WS_ERROR_PROTOCOL: the peer broke the WebSocket or RFC 7118 rules (no `sip`
 *   subprotocol, a bad frame)
 * @SOFIA_WS_ERROR_MESSAGE_TOO_LARGE: a message is larger than the configured maximum
 * @SOFIA_WS_ERROR_INVALID_MESSAGE: a message cannot be carried: empty, or not valid UTF-8 in a
 *   text frame
 * @SOFIA_WS_ERROR_QUEUE_FULL: the send queue of the connection is full (back-pressure)
 * @SOFIA_WS_ERROR_PEER_TIMEOUT: the peer stopped answering keepalives and was declared dead,
 *   or read nothing of what was sent to it within the send timeout
 * @SOFIA_WS_ERROR_INVALID_ARGUMENT: a URL, option or setting is not acceptable
 * @SOFIA_WS_ERROR_ABI_MISMATCH: the loaded Sofia-SIP library has a private layout the tport
 *   module does not know, so the module refuses to register
 *
 * Error codes of the %SOFIA_WS_ERROR domain.
 */
typedef enum {
  SOFIA_WS_ERROR_FAILED,
  SOFIA_WS_ERROR_NOT_CONNECTED,
  SOFIA_WS_ERROR_CLOSED,
  SOFIA_WS_ERROR_CONNECT_TIMEOUT,
  SOFIA_WS_ERROR_CONNECTION_REFUSED,
  SOFIA_WS_ERROR_RESOLVE,
  SOFIA_WS_ERROR_TLS,
  SOFIA_WS_ERROR_HANDSHAKE_REFUSED,
  SOFIA_WS_ERROR_PROTOCOL,
  SOFIA_WS_ERROR_MESSAGE_TOO_LARGE,
  SOFIA_WS_ERROR_INVALID_MESSAGE,
  SOFIA_WS_ERROR_QUEUE_FULL,
  SOFIA_WS_ERROR_PEER_TIMEOUT,
  SOFIA_WS_ERROR_INVALID_ARGUMENT,
  SOFIA_WS_ERROR_ABI_MISMATCH,
} SofiaWsError;

SOFIA_WS_AVAILABLE_IN_1_0
GQuark sofia_ws_error_quark (void);

G_END_DECLS
