/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Between libsofia-ws and its own tport module (plugin/tport-ws.c) only: not installed, not
 * introspected, no stability promise; exported with a leading underscore for the module. */
#pragma once

#include <sofia-ws/sofia-ws.h>

G_BEGIN_DECLS

/* Receives each message of @websocket as its bytes (not NUL-terminated), before and instead
 * of the `message` signal's copy as a string; the signal is still emitted when somebody
 * connected to it. What the sink asks of the transport (a disconnect) runs once it returns,
 * as from a signal handler. */
typedef void (*SofiaWsMessageSink) (SofiaWsWebSocket *websocket,
                                    const char       *data,
                                    gsize             len,
                                    gpointer          user_data);

/* Sets (or, with NULL, removes) the sink of @self. For a server handling many messages, such
 * as Sofia-SIP's transport: it spares a GObject signal emission and a copy per message. */
_SOFIA_WS_EXPORT
void _sofia_ws_websocket_set_message_sink (SofiaWsWebSocket   *self,
                                           SofiaWsMessageSink  sink,
                                           gpointer            user_data);

/* Told of each RFC 5626 CRLF keepalive the peer sends (which is no message): activity, for an
 * idle timer. Runs inside the receive path; it must not close the connection. */
typedef void (*SofiaWsActivitySink) (SofiaWsWebSocket *websocket,
                                     gpointer          user_data);

_SOFIA_WS_EXPORT
void _sofia_ws_websocket_set_activity_sink (SofiaWsWebSocket    *self,
                                            SofiaWsActivitySink  sink,
                                            gpointer             user_data);

G_END_DECLS
