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

/* A stack (transport master) uses the bridge; when the last one releases it, the bridge runs
 * the context until the work held with _hold() is _done() (closing handshakes, listeners
 * releasing their ports; 3 s at most), then leaves the root, which can then be destroyed
 * cleanly. Release in the root's thread. */
void               tport_ws_root_bridge_retain      (TportWsRootBridge *self);
void               tport_ws_root_bridge_release     (TportWsRootBridge *self);
void               tport_ws_root_bridge_hold        (TportWsRootBridge *self);
void               tport_ws_root_bridge_done        (TportWsRootBridge *self);

G_END_DECLS
