/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unmodified Sofia programs gain ws and wss with `LD_PRELOAD=.../tport-ws.so`.
 *
 * NTA routes requests only through the transports it binds (udp, tcp, tls, sctp), so a request
 * to `sip:192.0.2.1:8080;transport=ws` has no way out. Preloaded, the module interposes the
 * two exported functions that create client transactions (programs and NUA call them through
 * the PLT): when the target (route URL, first Route, default proxy, else request URI) says
 * transport=ws or wss and the
 * caller gave no NTATAG_TPORT(), the request gets the module's connection to that target.
 * Everything else goes to libsofia-sip-ua's functions untouched. nta_leg_tcreate() and
 * nta_leg_destroy() are interposed only to know the agent of a leg.
 *
 * Loaded any other way (GModule with local binding, as libsofia-ws does), these definitions
 * interpose nothing. */
#define _GNU_SOURCE 1

#include "tport-ws-abi.h"
#include "tport-ws-flows.h"
#include "tport-ws-preload.h"

#include <dlfcn.h>
#include <string.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/url.h>

#define INTERPOSED __attribute__ ((visibility ("default")))

typedef nta_leg_t *(*LegCreate) (nta_agent_t *, nta_request_f *, nta_leg_magic_t *,
                                 tag_type_t, tag_value_t, ...);
typedef void (*LegDestroy) (nta_leg_t *);
typedef nta_outgoing_t *(*OutgoingTcreate) (nta_leg_t *, nta_response_f *,
                                            nta_outgoing_magic_t *, url_string_t const *,
                                            sip_method_t, char const *, url_string_t const *,
                                            tag_type_t, tag_value_t, ...);
typedef nta_outgoing_t *(*OutgoingMcreate) (nta_agent_t *, nta_response_f *,
                                            nta_outgoing_magic_t *, url_string_t const *,
                                            msg_t *, tag_type_t, tag_value_t, ...);

/* libsofia-sip-ua's own functions: found after the preloaded module, or given by
 * tport_ws_preload_set_next() when the module is loaded with GModule and hooks the calls
 * (tport-ws-hook.c). */
typedef tport_t *(*ByName) (tport_t const *, tp_name_t const *);
typedef int (*IncomingMreply) (nta_incoming_t *, msg_t *);

static ByName real_by_name;
static IncomingMreply real_incoming_mreply;
static LegCreate real_leg_tcreate;
static LegDestroy real_leg_destroy;
static OutgoingTcreate real_outgoing_tcreate;
static OutgoingMcreate real_outgoing_mcreate;

void
tport_ws_preload_set_next (gpointer incoming_mreply,
                           gpointer by_name,
                           gpointer leg_tcreate,
                           gpointer leg_destroy,
                           gpointer outgoing_tcreate,
                           gpointer outgoing_mcreate)
{
  real_incoming_mreply = (IncomingMreply) incoming_mreply;
  real_by_name = (ByName) by_name;
  real_leg_tcreate = (LegCreate) leg_tcreate;
  real_leg_destroy = (LegDestroy) leg_destroy;
  real_outgoing_tcreate = (OutgoingTcreate) outgoing_tcreate;
  real_outgoing_mcreate = (OutgoingMcreate) outgoing_mcreate;
}

static gpointer
next_symbol (const char *name)
{
  gpointer symbol = dlsym (RTLD_NEXT, name);

  if (symbol == NULL)
    g_error ("sofia-ws: %s not found after the preloaded module: %s", name, dlerror ());
  return symbol;
}

/* NTA sends its own ACKs to non-2xx responses and its CANCELs by the tport name of their
 * INVITE (WS/address:port), which it looks up among the primaries it knows: ws primaries are
 * not among them, so the name of an open inbound connection is looked up here. */
INTERPOSED tport_t *
tport_by_name (tport_t const   *self,
               tp_name_t const *tpn)
{
  ByName real = real_by_name;
  tport_t *tport;

  if (real == NULL)
    real = real_by_name = (ByName) next_symbol ("tport_by_name");
  tport = real (self, tpn);
  if (tport == NULL)
    tport = tport_ws_flows_by_name (self, tpn);
  return tport;
}

G_LOCK_DEFINE_STATIC (legs);
static GHashTable *legs;          /* nta_leg_t * -> nta_agent_t * */

INTERPOSED nta_leg_t *
nta_leg_tcreate (nta_agent_t     *agent,
                 nta_request_f   *callback,
                 nta_leg_magic_t *magic,
                 tag_type_t       tag,
                 tag_value_t      value,
                 ...)
{
  LegCreate real = real_leg_tcreate;
  nta_leg_t *leg;
  ta_list ta;

  if (real == NULL)
    real = real_leg_tcreate = (LegCreate) next_symbol ("nta_leg_tcreate");
  ta_start (ta, tag, value);
  leg = real (agent, callback, magic, ta_tags (ta));
  ta_end (ta);
  if (leg != NULL)
    {
      G_LOCK (legs);
      if (legs == NULL)
        legs = g_hash_table_new (NULL, NULL);
      g_hash_table_insert (legs, leg, agent);
      G_UNLOCK (legs);
    }
  return leg;
}

INTERPOSED void
nta_leg_destroy (nta_leg_t *leg)
{
  LegDestroy real = real_leg_destroy;

  if (real == NULL)
    real = real_leg_destroy = (LegDestroy) next_symbol ("nta_leg_destroy");
  G_LOCK (legs);
  if (legs != NULL)
    g_hash_table_remove (legs, leg);
  G_UNLOCK (legs);
  real (leg);
}

/* Where NTA fails a request at once ("503 No transport"): no transport has this protocol. */
#define GONE_ROUTE "sip:0.0.0.0:9;transport=x-ws-flow-gone"

/* The connection for @target, when the caller did not choose a tport itself: an open inbound
 * connection the target names (tport-ws-flows.c), else for a ws/wss target the agent's client
 * connection. *@gone is set when the target names a connection that has gone: the request
 * must fail, never dial a client's port. */
static tport_t *
connection_for (nta_agent_t        *agent,
                url_string_t const *target,
                tagi_t const       *tags,
                gboolean           *gone)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  char transport[8] = "";
  url_t *url;
  tport_t *connection = NULL;
  tagi_t const *chosen = tl_find (tags, ntatag_tport);

  *gone = FALSE;
  /* NUA passes NTATAG_TPORT(NULL) when it has no transport of its own in mind. */
  if (target == NULL || (chosen != NULL && chosen->t_value != 0) || !tport_ws_preload_ready ())
    return NULL;
  url = url_hdup (home, target->us_url);
  switch (url != NULL ? tport_ws_flows_route (agent, url, &connection) : TPORT_WS_ROUTE_NONE)
    {
    case TPORT_WS_ROUTE_FLOW:
      su_home_deinit (home);
      return connection;
    case TPORT_WS_ROUTE_GONE:
      *gone = TRUE;
      su_home_deinit (home);
      return NULL;
    case TPORT_WS_ROUTE_NONE:
    default:
      break;
    }
  if (agent != NULL && url != NULL && url->url_params != NULL &&
      url_param (url->url_params, "transport", transport, sizeof transport) > 0 &&
      (g_ascii_strcasecmp (transport, "ws") == 0 || g_ascii_strcasecmp (transport, "wss") == 0))
    {
      char *text = url_as_string (home, url);

      connection = tport_ws_preload_connection (agent, text,
                                                g_ascii_strcasecmp (transport, "wss") == 0);
    }
  su_home_deinit (home);
  return connection;
}

/* NUA writes the agent's own Contact (sip:HOST:PORT;transport=tcp, from NUTAG_URL) in its
 * requests and in its 18x/2xx: over a ws connection, that Contact becomes the ws one, the
 * listener's address (sip:user@LISTENER:PORT;transport=ws) on a connection a browser opened,
 * sip:user@sofia-ws.invalid;transport=ws on an outgoing one, as browsers write it. A Contact
 * that is not the agent's (another host, or already ws/wss or .invalid) is left as it is. */
static void
ws_contact (msg_t   *msg,
            tport_t *connection)
{
  sip_t *sip = sip_object (msg);
  su_home_t *home = msg_home (msg);
  nta_agent_t *agent;
  sip_contact_t const *own;
  sip_contact_t *old, *m;
  tport_t const *primary;
  char transport[8] = "";
  gboolean secure, accepted;
  char const *params;

  if (sip == NULL || (old = sip->sip_contact) == NULL || old->m_next != NULL ||
      connection == NULL || connection->tp_master == NULL)
    return;
  agent = (nta_agent_t *) connection->tp_master->mr_stack;
  own = agent != NULL ? nta_agent_contact (agent) : NULL;
  if (own == NULL || old->m_url->url_host == NULL ||
      !su_casematch (old->m_url->url_host, own->m_url->url_host) ||
      (old->m_url->url_params != NULL &&
       url_param (old->m_url->url_params, "transport", transport, sizeof transport) > 0 &&
       (su_casematch (transport, "ws") || su_casematch (transport, "wss"))))
    return;

  primary = connection->tp_pri->pri_primary;
  secure = su_casematch (connection->tp_name->tpn_proto, "WSS");
  accepted = connection->tp_accepted;
  m = sip_contact_dup (home, old);
  if (m == NULL)
    return;
  if (accepted)
    {
      m->m_url->url_host = su_strdup (home, primary->tp_name->tpn_host);
      m->m_url->url_port = su_strdup (home, primary->tp_name->tpn_port);
    }
  else
    {
      m->m_url->url_host = "sofia-ws.invalid";
      m->m_url->url_port = NULL;
    }
  params = m->m_url->url_params != NULL
    ? url_strip_param_string (su_strdup (home, m->m_url->url_params), "transport") : NULL;
  m->m_url->url_params = su_sprintf (home, "%s%stransport=%s", params && *params ? params : "",
                                     params && *params ? ";" : "", secure ? "wss" : "ws");
  if (m->m_url->url_type == url_sips)
    m->m_url->url_type = url_sip, m->m_url->url_scheme = "sip";
  msg_header_replace (msg, (msg_pub_t *) sip, (msg_header_t *) old, (msg_header_t *) m);
}

/* The caller's tags with every NTATAG_TPORT() (NUA puts a NULL one first) set to
 * @connection: NTA takes the last one it sees. Allocated in @home. */
static tagi_t *
with_connection (su_home_t    *home,
                 tagi_t const *tags,
                 tport_t      *connection)
{
  tagi_t *list = tl_adup (home, tags);

  for (tagi_t *t = list; t != NULL; t = (tagi_t *) tl_next (t))
    if (t->t_tag == ntatag_tport)
      t->t_value = (tag_value_t) connection;
  return list;
}

/* The caller's tags with every NTATAG_DEFAULT_PROXY() pointing at GONE_ROUTE. */
static tagi_t *
with_gone_route (su_home_t    *home,
                 tagi_t const *tags)
{
  tagi_t *list = tl_adup (home, tags);

  for (tagi_t *t = list; t != NULL; t = (tagi_t *) tl_next (t))
    if (t->t_tag == ntatag_default_proxy)
      t->t_value = (tag_value_t) URL_STRING_MAKE (GONE_ROUTE);
  return list;
}

/* The default proxy NTA would use: the caller's NTATAG_DEFAULT_PROXY() (NUA's per-handle
 * NUTAG_PROXY), else the agent's (NUA's global NUTAG_PROXY). */
static url_string_t const *
default_proxy (nta_agent_t  *agent,
               tagi_t const *tags)
{
  tagi_t const *proxy = NULL;
  url_string_t const *agent_proxy = NULL;

  for (tagi_t const *t = tags; t != NULL; t = tl_next (t))
    if (t->t_tag == ntatag_default_proxy)
      proxy = t;                  /* NTA takes the last one */
  if (proxy != NULL)
    return (url_string_t const *) proxy->t_value;
  if (agent != NULL &&
      nta_agent_get_params (agent, NTATAG_DEFAULT_PROXY_REF (agent_proxy), TAG_END ()) > 0)
    return agent_proxy;
  return NULL;
}

INTERPOSED nta_outgoing_t *
nta_outgoing_tcreate (nta_leg_t            *leg,
                      nta_response_f       *callback,
                      nta_outgoing_magic_t *magic,
                      url_string_t const   *route_url,
                      sip_method_t          method,
                      char const           *name,
                      url_string_t const   *request_uri,
                      tag_type_t            tag,
                      tag_value_t           value,
                      ...)
{
  OutgoingTcreate real = real_outgoing_tcreate;
  nta_agent_t *agent = NULL;
  url_string_t const *target = route_url;
  nta_outgoing_t *orq;
  tport_t *connection;
  gboolean gone;
  ta_list ta;

  if (real == NULL)
    real = real_outgoing_tcreate = (OutgoingTcreate) next_symbol ("nta_outgoing_tcreate");
  G_LOCK (legs);
  if (legs != NULL)
    agent = g_hash_table_lookup (legs, leg);
  G_UNLOCK (legs);

  ta_start (ta, tag, value);
  if (target == NULL)
    target = default_proxy (agent, ta_args (ta));
  if (target == NULL)
    target = request_uri;
  connection = connection_for (agent, target, ta_args (ta), &gone);
  if (connection != NULL)
    {
      su_home_t home[1] = { SU_HOME_INIT (home) };

      orq = real (leg, callback, magic, route_url, method, name, request_uri,
                  NTATAG_TPORT (connection),
                  TAG_NEXT (with_connection (home, ta_args (ta), connection)));
      su_home_deinit (home);
    }
  else if (gone)
    {
      su_home_t home[1] = { SU_HOME_INIT (home) };

      orq = real (leg, callback, magic, URL_STRING_MAKE (GONE_ROUTE), method, name,
                  request_uri, TAG_NEXT (with_gone_route (home, ta_args (ta))));
      su_home_deinit (home);
    }
  else
    orq = real (leg, callback, magic, route_url, method, name, request_uri, ta_tags (ta));
  ta_end (ta);
  return orq;
}

INTERPOSED nta_outgoing_t *
nta_outgoing_mcreate (nta_agent_t          *agent,
                      nta_response_f       *callback,
                      nta_outgoing_magic_t *magic,
                      url_string_t const   *route_url,
                      msg_t                *msg,
                      tag_type_t            tag,
                      tag_value_t           value,
                      ...)
{
  OutgoingMcreate real = real_outgoing_mcreate;
  sip_t const *sip = sip_object (msg);
  url_string_t const *target = route_url;
  nta_outgoing_t *orq;
  tport_t *connection;
  gboolean gone;
  ta_list ta;

  if (real == NULL)
    real = real_outgoing_mcreate = (OutgoingMcreate) next_symbol ("nta_outgoing_mcreate");

  ta_start (ta, tag, value);
  /* Where NTA sends it (nta.c, outgoing_create): the route URL, the default proxy, a loose
   * first Route, the request URI. */
  if (target == NULL)
    target = default_proxy (agent, ta_args (ta));
  if (target == NULL && sip != NULL && sip->sip_route != NULL &&
      sip->sip_route->r_url->url_params != NULL &&
      url_param (sip->sip_route->r_url->url_params, "lr", NULL, 0))
    target = (url_string_t const *) sip->sip_route->r_url;
  if (target == NULL && sip != NULL && sip->sip_request != NULL)
    target = (url_string_t const *) sip->sip_request->rq_url;

  connection = connection_for (agent, target, ta_args (ta), &gone);
  if (connection != NULL)
    {
      su_home_t home[1] = { SU_HOME_INIT (home) };

      ws_contact (msg, connection);
      orq = real (agent, callback, magic, route_url, msg, NTATAG_TPORT (connection),
                  TAG_NEXT (with_connection (home, ta_args (ta), connection)));
      su_home_deinit (home);
    }
  else if (gone)
    {
      su_home_t home[1] = { SU_HOME_INIT (home) };

      orq = real (agent, callback, magic, URL_STRING_MAKE (GONE_ROUTE), msg,
                  TAG_NEXT (with_gone_route (home, ta_args (ta))));
      su_home_deinit (home);
    }
  else
    orq = real (agent, callback, magic, route_url, msg, ta_tags (ta));
  ta_end (ta);
  return orq;
}

/* NUA's responses (nua_respond()): the Contact of one going over a ws connection is the ws
 * one (ws_contact()). */
INTERPOSED int
nta_incoming_mreply (nta_incoming_t *irq,
                     msg_t          *msg)
{
  IncomingMreply real = real_incoming_mreply;
  tport_t *connection;

  if (real == NULL)
    real = real_incoming_mreply = (IncomingMreply) next_symbol ("nta_incoming_mreply");
  connection = irq != NULL && msg != NULL ? nta_incoming_transport (NULL, irq, NULL) : NULL;
  if (connection != NULL)
    {
      if (tport_ws_is_ws (connection) && !tport_ws_abi_is_primary (connection))
        ws_contact (msg, connection);
      tport_unref (connection);
    }
  return real (irq, msg);
}

/* The module's own functions, for tport-ws-hook.c: inside the module the names above resolve
 * to libsofia-sip-ua's definitions unless the module was preloaded. */
extern __typeof (nta_incoming_mreply) tport_ws_hooked_incoming_mreply
  __attribute__ ((alias ("nta_incoming_mreply"), visibility ("hidden")));
extern __typeof (tport_by_name) tport_ws_hooked_by_name
  __attribute__ ((alias ("tport_by_name"), visibility ("hidden")));
extern __typeof (nta_leg_tcreate) tport_ws_hooked_leg_tcreate
  __attribute__ ((alias ("nta_leg_tcreate"), visibility ("hidden")));
extern __typeof (nta_leg_destroy) tport_ws_hooked_leg_destroy
  __attribute__ ((alias ("nta_leg_destroy"), visibility ("hidden")));
extern __typeof (nta_outgoing_tcreate) tport_ws_hooked_outgoing_tcreate
  __attribute__ ((alias ("nta_outgoing_tcreate"), visibility ("hidden")));
extern __typeof (nta_outgoing_mcreate) tport_ws_hooked_outgoing_mcreate
  __attribute__ ((alias ("nta_outgoing_mcreate"), visibility ("hidden")));
