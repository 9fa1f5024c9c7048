/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(SOFIA_WS_INSIDE) && !defined(SOFIA_WS_COMPILATION)
#error "Only <sofia-ws/sofia-ws.h> can be included directly."
#endif

#include <gio/gio.h>
#include <sofia-ws/sofia-ws-version.h>

G_BEGIN_DECLS

#define SOFIA_WS_TYPE_LISTENER (sofia_ws_listener_get_type ())

SOFIA_WS_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (SofiaWsListener, sofia_ws_listener, SOFIA_WS, LISTENER, GObject)

SOFIA_WS_AVAILABLE_IN_1_0
SofiaWsListener *sofia_ws_listener_new                 (void);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean         sofia_ws_listener_start               (SofiaWsListener  *self,
                                                        GError          **error);
SOFIA_WS_AVAILABLE_IN_1_0
void             sofia_ws_listener_stop                (SofiaWsListener  *self);
SOFIA_WS_AVAILABLE_IN_1_0
void             sofia_ws_listener_stop_async          (SofiaWsListener     *self,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean         sofia_ws_listener_stop_finish         (SofiaWsListener     *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
SOFIA_WS_AVAILABLE_IN_1_0
guint16          sofia_ws_listener_get_port            (SofiaWsListener  *self);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean         sofia_ws_listener_get_is_secure       (SofiaWsListener  *self);
SOFIA_WS_AVAILABLE_IN_1_0
guint            sofia_ws_listener_get_n_connections   (SofiaWsListener  *self);

G_END_DECLS
