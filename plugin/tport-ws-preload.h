/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/tport.h>

G_BEGIN_DECLS

/* From tport-ws.c: whether @tport is a ws/wss listener or connection of this module. */
gboolean tport_ws_is_ws              (tport_t const *tport);

/* Registers the module on first use; FALSE (after one message on stderr) when it refuses the
 * libsofia-sip-ua of this process. */
gboolean tport_ws_preload_ready      (void);

/* The connection of @agent's ws (@secure: wss) client to @url, or NULL. */
tport_t *tport_ws_preload_connection (nta_agent_t *agent,
                                      const char  *url,
                                      gboolean     secure);

/* libsofia-sip-ua's functions the interposed ones forward to, when the module hooks the calls
 * instead of being preloaded (tport-ws-hook.c). */
void     tport_ws_preload_set_next   (gpointer incoming_mreply,
                                      gpointer by_name,
                                      gpointer leg_tcreate,
                                      gpointer leg_destroy,
                                      gpointer outgoing_tcreate,
                                      gpointer outgoing_mcreate);

/* The module's own interposed functions (hidden aliases). */
extern __typeof (nta_incoming_mreply) tport_ws_hooked_incoming_mreply;
extern __typeof (tport_by_name) tport_ws_hooked_by_name;
extern __typeof (nta_leg_tcreate) tport_ws_hooked_leg_tcreate;
extern __typeof (nta_leg_destroy) tport_ws_hooked_leg_destroy;
extern __typeof (nta_outgoing_tcreate) tport_ws_hooked_outgoing_tcreate;
extern __typeof (nta_outgoing_mcreate) tport_ws_hooked_outgoing_mcreate;

G_END_DECLS
