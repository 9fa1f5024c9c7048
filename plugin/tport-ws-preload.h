/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/tport.h>

G_BEGIN_DECLS

/* Registers the module on first use; FALSE (after one message on stderr) when it refuses the
 * libsofia-sip-ua of this process. */
gboolean tport_ws_preload_ready      (void);

/* The connection of @agent's ws (@secure: wss) client to @url, or NULL. */
tport_t *tport_ws_preload_connection (nta_agent_t *agent,
                                      const char  *url,
                                      gboolean     secure);

G_END_DECLS
