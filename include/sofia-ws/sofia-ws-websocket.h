/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(SOFIA_WS_INSIDE) && !defined(SOFIA_WS_COMPILATION)
#error "Only <sofia-ws/sofia-ws.h> can be included directly."
#endif

#include <sofia-ws/sofia-ws-transport.h>

G_BEGIN_DECLS

#define SOFIA_WS_TYPE_WEBSOCKET (sofia_ws_websocket_get_type ())

SOFIA_WS_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (SofiaWsWebSocket, sofia_ws_websocket, SOFIA_WS, WEBSOCKET, SofiaWsTransport)

SOFIA_WS_AVAILABLE_IN_1_0
SofiaWsWebSocket *sofia_ws_websocket_new                (const char       *server);
SOFIA_WS_AVAILABLE_IN_1_0
const char       *sofia_ws_websocket_get_server         (SofiaWsWebSocket *self);
SOFIA_WS_AVAILABLE_IN_1_0
const char       *sofia_ws_websocket_get_remote_address (SofiaWsWebSocket *self);
SOFIA_WS_AVAILABLE_IN_1_0
const char       *sofia_ws_websocket_get_local_address  (SofiaWsWebSocket *self);
SOFIA_WS_AVAILABLE_IN_1_0
guint16           sofia_ws_websocket_get_close_code     (SofiaWsWebSocket *self);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean          sofia_ws_websocket_get_is_secure      (SofiaWsWebSocket *self);
SOFIA_WS_AVAILABLE_IN_1_0
gsize             sofia_ws_websocket_get_buffered_amount (SofiaWsWebSocket *self);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean          sofia_ws_websocket_send_vectors       (SofiaWsWebSocket     *self,
                                                         const GOutputVector  *vectors,
                                                         gsize                 n_vectors,
                                                         GError              **error);

G_END_DECLS
