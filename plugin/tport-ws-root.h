/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <sofia-sip/su_wait.h>

G_BEGIN_DECLS

/* A private GMainContext driven by a non-GLib su_root, in the root's thread. */
typedef struct _TportWsRootBridge TportWsRootBridge;

TportWsRootBridge *tport_ws_root_bridge_get         (su_root_t         *root);
GMainContext      *tport_ws_root_bridge_get_context (TportWsRootBridge *self);
/* Call in the root's thread after creating objects on the context. */
void               tport_ws_root_bridge_start       (TportWsRootBridge *self);

G_END_DECLS
