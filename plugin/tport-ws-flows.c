/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inbound WebSocket flows: which accepted connection a request towards a browser takes.
 *
 * A browser connects to us and cannot be connected to: its port is ephemeral, its Contact
 * host is a made-up "xyz.invalid". So a request towards it must take the connection it
 * opened, found by one of three names:
 *  - the connection's remote address, in a URI saying transport=ws or wss
 *    (sip:192.0.2.7:53211;transport=ws, what a registrar sees as received/rport);
 *  - a ".invalid" host the browser put in the Via sent-by or the Contact of a message it sent
 *    on that connection (SIP.js and JsSIP do so);
 *  - a flow token, the URI parameter ws-flow=TOKEN, which an application puts where RFC 5626
 *    would put a flow token (Path, Record-Route, a registered Contact): tport_ws_flows_uri()
 *    gives sip:LISTENER;transport=ws;lr;ws-flow=TOKEN.
 * When the connection goes, its names are remembered as gone (a bounded number of them), so a
 * request to it fails at once instead of dialling the browser's old port. */
#define _GNU_SOURCE 1

#include "tport-ws-abi.h"
#include "tport-ws-flows.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/random.h>

#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_string.h>

#include <sofia-ws/sofia-ws.h>

extern su_log_t tport_ws_log[];
#define SU_LOG tport_ws_log
#include <sofia-sip/su_debug.h>

#define MAX_HOSTS_PER_FLOW 8      /* .invalid hosts learnt per connection */
#define MAX_GONE 1024             /* names of closed connections remembered */

typedef struct {
  tport_t *tport;
  char *token;
  GPtrArray *keys;                /* owned; each one maps to this flow in `live` */
  guint hosts;
} Flow;

G_LOCK_DEFINE_STATIC (flows);
static GHashTable *flows;         /* tport_t * -> Flow * */
static GHashTable *live;          /* key (borrowed from its Flow) -> Flow * */
static GHashTable *gone;          /* key -> gint64 monotonic time it went (owned) */
static GQueue gone_order;         /* keys (owned copies), oldest first */

static void
ensure_tables (void)
{
  if (flows != NULL)
    return;
  flows = g_hash_table_new (NULL, NULL);
  live = g_hash_table_new (g_str_hash, g_str_equal);
  gone = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

/* A numeric host (v4, v6 with or without brackets, v4-mapped) in one text form. */
static gboolean
canonical_ip (const char *host,
              char        out[INET6_ADDRSTRLEN])
{
  char buf[INET6_ADDRSTRLEN + 2];
  struct in6_addr a6;
  struct in_addr a4;
  gsize len;

  if (host == NULL)
    return FALSE;
  len = strlen (host);
  if (host[0] == '[' && len > 2 && host[len - 1] == ']')
    {
      host++;
      len -= 2;
    }
  if (len >= sizeof buf)
    return FALSE;
  memcpy (buf, host, len);
  buf[len] = '\0';
  if (inet_pton (AF_INET, buf, &a4) == 1)
    return inet_ntop (AF_INET, &a4, out, INET6_ADDRSTRLEN) != NULL;
  if (inet_pton (AF_INET6, buf, &a6) != 1)
    return FALSE;
  if (IN6_IS_ADDR_V4MAPPED (&a6))
    {
      memcpy (&a4, &a6.s6_addr[12], 4);
      return inet_ntop (AF_INET, &a4, out, INET6_ADDRSTRLEN) != NULL;
    }
  return inet_ntop (AF_INET6, &a6, out, INET6_ADDRSTRLEN) != NULL;
}

static char *
address_key (const char *host,
             const char *port)
{
  char ip[INET6_ADDRSTRLEN];
  guint64 n;

  if (!canonical_ip (host, ip) || port == NULL ||
      !g_ascii_string_to_unsigned (port, 10, 1, 65535, &n, NULL))
    return NULL;
  return g_strdup_printf ("a:%s:%u", ip, (guint) n);
}

static gboolean
is_invalid_host (const char *host)
{
  gsize len = host != NULL ? strlen (host) : 0;

  return len > 8 && len < 256 && g_ascii_strcasecmp (host + len - 8, ".invalid") == 0;
}

static char *
host_key (const char *host)
{
  g_autofree char *lower = g_ascii_strdown (host, -1);

  return g_strconcat ("h:", lower, NULL);
}

/* Called with the lock held: @key (taken) now names @flow. */
static void
bind_key (Flow *flow,
          char *key)
{
  Flow *other = g_hash_table_lookup (live, key);

  if (other == flow)
    {
      g_free (key);
      return;
    }
  if (other != NULL)
    {
      /* Another open connection has that name: it keeps it, or a client could take the
       * requests meant for another by writing its .invalid host in a Via. (A browser that
       * reconnects gets its name back once its old connection has closed.) */
      SU_DEBUG_5 (("tport_ws(%p): %s already names " TPN_FORMAT ", which keeps it\n",
                   (void *) flow->tport, key + 2, TPN_ARGS (other->tport->tp_name)));
      g_free (key);
      return;
    }
  g_hash_table_remove (gone, key);
  g_ptr_array_add (flow->keys, key);
  g_hash_table_insert (live, key, flow);
}

static void
remember_gone (const char *key)
{
  g_hash_table_replace (gone, g_strdup (key), g_memdup2 (&(gint64) { g_get_monotonic_time () },
                                                       sizeof (gint64)));
  g_queue_push_tail (&gone_order, g_strdup (key));
  while (gone_order.length > MAX_GONE)
    {
      char *old = g_queue_pop_head (&gone_order);

      g_hash_table_remove (gone, old);
      g_free (old);
    }
}

static char *
new_token (void)
{
  guint8 bytes[12];
  GString *token = g_string_sized_new (2 * sizeof bytes);

  if (getrandom (bytes, sizeof bytes, 0) != (ssize_t) sizeof bytes)
    for (gsize i = 0; i < sizeof bytes; i++)
      bytes[i] = (guint8) g_random_int ();
  for (gsize i = 0; i < sizeof bytes; i++)
    g_string_append_printf (token, "%02x", bytes[i]);
  return g_string_free (token, FALSE);
}

void
tport_ws_flows_accepted (tport_t *tport)
{
  Flow *flow;
  char *key;

  G_LOCK (flows);
  ensure_tables ();
  flow = g_new0 (Flow, 1);
  flow->tport = tport;
  flow->token = new_token ();
  flow->keys = g_ptr_array_new_with_free_func (g_free);
  g_hash_table_insert (flows, tport, flow);
  bind_key (flow, g_strconcat ("t:", flow->token, NULL));
  key = address_key (tport->tp_name->tpn_host, tport->tp_name->tpn_port);
  if (key != NULL)
    bind_key (flow, key);
  G_UNLOCK (flows);
}

/* Whether @host is already one of @flow's names: what every message after the first one of a
 * connection says, checked without building its key. */
static gboolean
flow_has_host (Flow       *flow,
               const char *host)
{
  for (guint i = 0; i < flow->keys->len; i++)
    {
      const char *key = g_ptr_array_index (flow->keys, i);

      if (key[0] == 'h' && key[1] == ':' && g_ascii_strcasecmp (key + 2, host) == 0)
        return TRUE;
    }
  return FALSE;
}

static void
learn_host (Flow       *flow,
            const char *host)
{
  char *key;

  if (!is_invalid_host (host) || flow_has_host (flow, host))
    return;
  key = host_key (host);
  if (g_hash_table_lookup (live, key) == flow)
    {
      g_free (key);
      return;
    }
  if (flow->hosts >= MAX_HOSTS_PER_FLOW)
    {
      SU_DEBUG_5 (("tport_ws(%p): not learning host %s: %u already\n", (void *) flow->tport,
                   host, flow->hosts));
      g_free (key);
      return;
    }
  flow->hosts++;
  SU_DEBUG_7 (("tport_ws(%p): " TPN_FORMAT " presents itself as %s\n", (void *) flow->tport,
               TPN_ARGS (flow->tport->tp_name), host));
  bind_key (flow, key);
}

void
tport_ws_flows_received (tport_t     *tport,
                         sip_t const *sip)
{
  Flow *flow;

  if (sip == NULL)
    return;
  G_LOCK (flows);
  flow = flows != NULL ? g_hash_table_lookup (flows, tport) : NULL;
  if (flow != NULL)
    {
      if (sip->sip_request != NULL && sip->sip_via != NULL)
        learn_host (flow, sip->sip_via->v_host);
      if (sip->sip_contact != NULL)
        learn_host (flow, sip->sip_contact->m_url->url_host);
    }
  G_UNLOCK (flows);
}

void
tport_ws_flows_closed (tport_t *tport)
{
  Flow *flow;

  G_LOCK (flows);
  flow = flows != NULL ? g_hash_table_lookup (flows, tport) : NULL;
  if (flow != NULL)
    {
      g_hash_table_remove (flows, tport);
      for (guint i = 0; i < flow->keys->len; i++)
        {
          const char *key = g_ptr_array_index (flow->keys, i);

          g_hash_table_remove (live, key);
          remember_gone (key);
        }
      SU_DEBUG_7 (("tport_ws(%p): flow %s gone\n", (void *) tport, flow->token));
      g_ptr_array_unref (flow->keys);
      g_free (flow->token);
      g_free (flow);
    }
  if (flows != NULL && g_hash_table_size (flows) == 0 && g_hash_table_size (gone) == 0)
    {
      g_clear_pointer (&flows, g_hash_table_unref);
      g_clear_pointer (&live, g_hash_table_unref);
      g_clear_pointer (&gone, g_hash_table_unref);
    }
  G_UNLOCK (flows);
}

/* Called with the lock held. */
static TportWsRoute
route_key (nta_agent_t *agent,
           const char  *key,
           const char  *what,
           gboolean     unknown_is_gone,
           tport_t    **out)
{
  Flow *flow = live != NULL ? g_hash_table_lookup (live, key) : NULL;
  gint64 *when;

  if (flow != NULL)
    {
      if (agent != NULL && (tport_t *) flow->tport->tp_master != nta_agent_tports (agent))
        return TPORT_WS_ROUTE_NONE;
      if (!tport_is_closed (flow->tport))
        {
          *out = flow->tport;
          SU_DEBUG_7 (("tport_ws(%p): request to %s over " TPN_FORMAT "\n",
                       (void *) flow->tport, what, TPN_ARGS (flow->tport->tp_name)));
          return TPORT_WS_ROUTE_FLOW;
        }
      SU_DEBUG_3 (("tport_ws: request to %s fails: its connection " TPN_FORMAT " is closing; "
                   "a client's port is never dialled\n", what, TPN_ARGS (flow->tport->tp_name)));
      return TPORT_WS_ROUTE_GONE;
    }
  when = gone != NULL ? g_hash_table_lookup (gone, key) : NULL;
  if (when != NULL)
    {
      SU_DEBUG_3 (("tport_ws: request to %s fails: the WebSocket connection it names closed "
                   "%.1f s ago; a client's port is never dialled\n", what,
                   (g_get_monotonic_time () - *when) / 1e6));
      return TPORT_WS_ROUTE_GONE;
    }
  if (unknown_is_gone)
    {
      SU_DEBUG_3 (("tport_ws: request to %s fails: no open WebSocket connection has that "
                   "name\n", what));
      return TPORT_WS_ROUTE_GONE;
    }
  return TPORT_WS_ROUTE_NONE;
}

/* NTA's own requests (ACK to a non-2xx, CANCEL) go by the tport name of their INVITE. */
tport_t *
tport_ws_flows_by_name (tport_t const   *self,
                        tp_name_t const *tpn)
{
  g_autofree char *key = NULL;
  tport_t *found = NULL;
  Flow *flow;

  if (self == NULL || tpn == NULL || tpn->tpn_proto == NULL ||
      (!su_casematch (tpn->tpn_proto, "ws") && !su_casematch (tpn->tpn_proto, "wss")))
    return NULL;
  key = address_key (tpn->tpn_host, tpn->tpn_port);
  G_LOCK (flows);
  flow = key != NULL && live != NULL ? g_hash_table_lookup (live, key) : NULL;
  if (flow != NULL && flow->tport->tp_master == self->tp_master &&
      !tport_is_closed (flow->tport))
    found = flow->tport;
  G_UNLOCK (flows);
  return found;
}

TportWsRoute
tport_ws_flows_route (nta_agent_t  *agent,
                      url_t const  *url,
                      tport_t     **out)
{
  char value[128] = "";
  char transport[8] = "";
  TportWsRoute route = TPORT_WS_ROUTE_NONE;
  g_autofree char *key = NULL;
  g_autofree char *what = NULL;

  *out = NULL;
  if (url == NULL || (url->url_type != url_sip && url->url_type != url_sips))
    return TPORT_WS_ROUTE_NONE;

  G_LOCK (flows);
  if (url->url_params != NULL &&
      url_param (url->url_params, TPORT_WS_FLOW_PARAM, value, sizeof value) > 0)
    {
      key = g_strconcat ("t:", value, NULL);
      what = g_strdup_printf ("flow token %s", value);
      route = route_key (agent, key, what, TRUE, out);
    }
  else if (is_invalid_host (url->url_host))
    {
      key = host_key (url->url_host);
      what = g_strdup_printf ("host %s", url->url_host);
      route = route_key (agent, key, what, TRUE, out);
    }
  else if (url->url_params != NULL &&
           url_param (url->url_params, "transport", transport, sizeof transport) > 0 &&
           (g_ascii_strcasecmp (transport, "ws") == 0 ||
            g_ascii_strcasecmp (transport, "wss") == 0) &&
           (key = address_key (url->url_host, url->url_port)) != NULL)
    {
      what = g_strdup_printf ("%s:%s", url->url_host, url->url_port);
      route = route_key (agent, key, what, FALSE, out);
    }
  G_UNLOCK (flows);
  return route;
}

char *
tport_ws_flows_uri (tport_t     *tport,
                    sip_t const *request,
                    GError     **error)
{
  tp_name_t const *listener;
  Flow *flow = NULL;
  char *uri = NULL;

  G_LOCK (flows);
  if (flows != NULL && tport != NULL)
    flow = g_hash_table_lookup (flows, tport);
  /* A request that came over a connection: its top Via's received and rport. */
  else if (live != NULL && request != NULL && request->sip_via != NULL)
    {
      sip_via_t const *via = request->sip_via;
      g_autofree char *key = address_key (via->v_received ? via->v_received : via->v_host,
                                          via->v_rport ? via->v_rport : via->v_port);

      flow = key != NULL ? g_hash_table_lookup (live, key) : NULL;
      tport = flow != NULL ? flow->tport : NULL;
    }
  if (flow != NULL)
    {
      listener = tport->tp_pri->pri_primary->tp_name;
      gboolean v6 = strchr (listener->tpn_host, ':') != NULL && listener->tpn_host[0] != '[';

      uri = g_strdup_printf ("sip:%s%s%s:%s;transport=%s;lr;" TPORT_WS_FLOW_PARAM "=%s",
                             v6 ? "[" : "", listener->tpn_host, v6 ? "]" : "",
                             listener->tpn_port,
                             su_casematch (tport->tp_name->tpn_proto, "WSS") ? "wss" : "ws",
                             flow->token);
    }
  G_UNLOCK (flows);
  if (uri == NULL)
    g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                         "Not an open WebSocket connection accepted by a ws/wss listener, nor "
                         "a request that came over one");
  return uri;
}
