/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The interface between libsofia-ws (glue/sofia-ws-tport.c) and the tport module
 * (plugin/tport-ws.c). The module exports one symbol, SOFIA_WS_TPORT_MODULE_ENTRY, which checks
 * the private layout of the libsofia-sip-ua in the process, registers the ws/wss transport
 * types once, and returns this table. Bump the version when a member changes. */
#pragma once

#include <sofia-ws/sofia-ws-tport.h>

G_BEGIN_DECLS

#define SOFIA_WS_TPORT_MODULE_ENTRY "sofia_ws_tport_module_init"
#define SOFIA_WS_TPORT_MODULE_VERSION 2u

typedef struct {
  guint version;
  tport_t          *(*add_listener)  (nta_agent_t   *agent,
                                      const char    *url,
                                      tagi_t const  *tags,
                                      GError       **error);
  tport_t          *(*add_client)    (nta_agent_t   *agent,
                                      const char    *protocol,
                                      tagi_t const  *tags,
                                      GError       **error);
  tport_t          *(*connect)       (tport_t       *client,
                                      const char    *url,
                                      GError       **error);
  nta_agent_t      *(*nua_agent)     (nua_t         *nua,
                                      GError       **error);
  SofiaWsTransport *(*get_transport) (tport_t       *tport);
  SofiaWsListener  *(*get_listener)  (tport_t       *tport);
  gboolean          (*is_ws)         (tport_t const *tport);
  gboolean          (*enable_routing) (GError      **error);
  char             *(*flow_uri)      (tport_t       *tport,
                                      sip_t const   *request,
                                      GError       **error);
} SofiaWsTportModule;

/* Returns NULL and sets @error when the module cannot work in this process. */
typedef const SofiaWsTportModule *(*SofiaWsTportModuleInit) (guint    version,
                                                             GError **error);

G_END_DECLS
