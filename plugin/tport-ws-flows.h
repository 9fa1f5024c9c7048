/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inbound WebSocket flows: which accepted connection a request towards a browser takes. */
#pragma once

#include <glib.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/url.h>

G_BEGIN_DECLS

/* The URI parameter carrying a flow token: sip:HOST:PORT;transport=ws;lr;ws-flow=TOKEN. */
#define TPORT_WS_FLOW_PARAM "ws-flow"

typedef enum {
  TPORT_WS_ROUTE_NONE,            /* not a flow of ours: leave the request to others */
  TPORT_WS_ROUTE_FLOW,            /* an open inbound connection */
  TPORT_WS_ROUTE_GONE,            /* a flow that has gone (or never was): fail, never dial */
} TportWsRoute;

/* From tport-ws.c: a connection was accepted, delivered a message, or is closing. */
void         tport_ws_flows_accepted (tport_t       *tport);
void         tport_ws_flows_received (tport_t       *tport,
                                      sip_t const   *sip);
void         tport_ws_flows_closed   (tport_t       *tport);

/* Where a request to @url goes; @flow gets the connection with TPORT_WS_ROUTE_FLOW. @agent
 * (may be NULL) limits the search to its connections. */
TportWsRoute tport_ws_flows_route    (nta_agent_t   *agent,
                                      url_t const   *url,
                                      tport_t      **flow);

/* The open inbound connection named by @tpn (WS/address:port) in @self's master, or NULL. */
tport_t     *tport_ws_flows_by_name  (tport_t const   *self,
                                      tp_name_t const *tpn);

/* sip:HOST:PORT;transport=ws;lr;ws-flow=TOKEN for an accepted connection, or for the one
 * @request (its Via received/rport) came over when @tport is NULL (g_free). */
char        *tport_ws_flows_uri      (tport_t       *tport,
                                      sip_t const   *request,
                                      GError       **error);

G_END_DECLS
