/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "sofia-ws-listener.h"
#include "sofia-ws-loop-private.h"
#include "sofia-ws-websocket.h"

G_BEGIN_DECLS

/* The server side of a connection the listener accepted: already CONNECTED. */
SofiaWsWebSocket *sofia_ws_websocket_new_accepted (SofiaWsLoop     *loop,
                                                   struct lws      *wsi,
                                                   SofiaWsListener *listener,
                                                   guint            max_message_size,
                                                   guint            ping_interval,
                                                   guint            ping_timeout,
                                                   gboolean         trace_sip);

/* The listener no longer holds the connection, or is going: no more closed notices to it.
 * A plain pointer rather than a GWeakRef, whose removal walks a list as long as the
 * listener's connections: O(N) per close. */
void sofia_ws_websocket_forget_listener (SofiaWsWebSocket *self);

/* lws callbacks for a wsi bound to a connection (its opaque user data). */
int sofia_ws_websocket_handle_callback (SofiaWsWebSocket          *self,
                                        struct lws                *wsi,
                                        enum lws_callback_reasons  reason,
                                        void                      *in,
                                        size_t                     len);

/* lws callbacks of the handshake on a listener's vhost, before a connection exists. */
int sofia_ws_listener_handle_callback (struct lws                *wsi,
                                       enum lws_callback_reasons  reason,
                                       void                      *in,
                                       size_t                     len);

/* The peer of an accepted socket as "1.2.3.4:5" or "[::1]:5", a dual-stack socket's IPv4
 * peers (v4-mapped) as IPv4. */
char *sofia_ws_listener_format_peer (int fd);

/* An accepted connection now holds @bytes of a message received in part (0: none). FALSE,
 * with nothing held, when that would take the listener beyond its max-partial-bytes: the
 * connection drops the part and closes. What a connection holds is released when it closes. */
gboolean sofia_ws_listener_hold_partial (SofiaWsListener  *self,
                                         SofiaWsWebSocket *connection,
                                         gsize             bytes);

void sofia_ws_listener_connection_closed (SofiaWsListener  *self,
                                          SofiaWsWebSocket *connection);

G_END_DECLS
