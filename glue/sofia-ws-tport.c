/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#define TAG_NAMESPACE WSTAG_NAMESPACE

#include "sofia-ws-tport-private.h"

#include <gmodule.h>
#include <sofia-sip/su_tag_class.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/su_uniqueid.h>

/**
 * SECTION:sofia-ws-tport
 *
 * ws and wss transports for Sofia-SIP's NTA and NUA.
 *
 * The transports live in the module `<libdir>/sofia-ws-1.0/plugins/tport-ws.so`, because they
 * rely on the private layout of libsofia-sip-ua 1.12.11. sofia_ws_tport_register() finds the
 * module (already in the process when it was linked or preloaded, else loaded from the plugin
 * directory, or from `$SOFIA_WS_PLUGIN_DIR`), checks that the libsofia-sip-ua in the process
 * is one it knows, and registers the `WS` and `WSS` transport types. The other functions
 * register on first use.
 *
 * NTA and NUA cannot bind `transport=ws` themselves (their URL parameters know udp, tcp, tls
 * and sctp only), so a listener is added to a running agent with
 * sofia_ws_tport_add_listener(), or to a NUA stack with sofia_ws_tport_add_nua_listener().
 * Requests that arrive on a WebSocket get their responses on the same connection; requests
 * towards a WebSocket client are sent over its connection with `NTATAG_TPORT (tport)`, where
 * tport is the connection the client's REGISTER arrived on (nta_incoming_transport()).
 */

/* libsofia-sip-ua 1.12.11 deletes the thread-specific key of its random numbers in a
 * destructor (sofia_su_uniqueid_destructor(), at exit or unload), even when it never made one:
 * then it deletes key 0, another library's (GLib's in a GLib program), and a thread of the
 * process still using its thread data while the process exits aborts ("GLib (gthread-posix.c):
 * Unexpected error from C library during 'pthread_setspecific': Invalid argument"). Every
 * program linking libsofia-ws links libsofia-sip-ua, and one that only uses SofiaWsWebSocket
 * never draws a Sofia random number: drawing one as the library loads makes Sofia create its
 * own key, the one its destructor then deletes. */
__attribute__((constructor)) static void
sofia_ws_own_sofia_key (void)
{
  (void) su_random ();
}

tag_typedef_t wstag_path = STRTAG_TYPEDEF (path);
tag_typedef_t wstag_path_ref = REFTAG_TYPEDEF (wstag_path);
tag_typedef_t wstag_allowed_origins = STRTAG_TYPEDEF (allowed_origins);
tag_typedef_t wstag_allowed_origins_ref = REFTAG_TYPEDEF (wstag_allowed_origins);
tag_typedef_t wstag_tls_certificate = STRTAG_TYPEDEF (tls_certificate);
tag_typedef_t wstag_tls_certificate_ref = REFTAG_TYPEDEF (wstag_tls_certificate);
tag_typedef_t wstag_tls_key = STRTAG_TYPEDEF (tls_key);
tag_typedef_t wstag_tls_key_ref = REFTAG_TYPEDEF (wstag_tls_key);
tag_typedef_t wstag_keepalive = UINTTAG_TYPEDEF (keepalive);
tag_typedef_t wstag_keepalive_ref = REFTAG_TYPEDEF (wstag_keepalive);
tag_typedef_t wstag_keepalive_timeout = UINTTAG_TYPEDEF (keepalive_timeout);
tag_typedef_t wstag_keepalive_timeout_ref = REFTAG_TYPEDEF (wstag_keepalive_timeout);
tag_typedef_t wstag_max_message_size = UINTTAG_TYPEDEF (max_message_size);
tag_typedef_t wstag_max_message_size_ref = REFTAG_TYPEDEF (wstag_max_message_size);
tag_typedef_t wstag_max_connections = UINTTAG_TYPEDEF (max_connections);
tag_typedef_t wstag_max_connections_ref = REFTAG_TYPEDEF (wstag_max_connections);
tag_typedef_t wstag_max_connections_per_address = UINTTAG_TYPEDEF (max_connections_per_address);
tag_typedef_t wstag_max_connections_per_address_ref =
  REFTAG_TYPEDEF (wstag_max_connections_per_address);
tag_typedef_t wstag_max_partial_bytes = UINTTAG_TYPEDEF (max_partial_bytes);
tag_typedef_t wstag_max_partial_bytes_ref = REFTAG_TYPEDEF (wstag_max_partial_bytes);
tag_typedef_t wstag_handshake_timeout = UINTTAG_TYPEDEF (handshake_timeout);
tag_typedef_t wstag_handshake_timeout_ref = REFTAG_TYPEDEF (wstag_handshake_timeout);
tag_typedef_t wstag_reuse_port = BOOLTAG_TYPEDEF (reuse_port);
tag_typedef_t wstag_reuse_port_ref = REFTAG_TYPEDEF (wstag_reuse_port);
tag_typedef_t wstag_tls_ca_file = STRTAG_TYPEDEF (tls_ca_file);
tag_typedef_t wstag_tls_ca_file_ref = REFTAG_TYPEDEF (wstag_tls_ca_file);
tag_typedef_t wstag_tls_verify = BOOLTAG_TYPEDEF (tls_verify);
tag_typedef_t wstag_tls_verify_ref = REFTAG_TYPEDEF (wstag_tls_verify);
tag_typedef_t wstag_origin = STRTAG_TYPEDEF (origin);
tag_typedef_t wstag_origin_ref = REFTAG_TYPEDEF (wstag_origin);
tag_typedef_t wstag_connect_timeout = UINTTAG_TYPEDEF (connect_timeout);
tag_typedef_t wstag_connect_timeout_ref = REFTAG_TYPEDEF (wstag_connect_timeout);
tag_typedef_t wstag_crlf_keepalive = UINTTAG_TYPEDEF (crlf_keepalive);
tag_typedef_t wstag_crlf_keepalive_ref = REFTAG_TYPEDEF (wstag_crlf_keepalive);
tag_typedef_t wstag_reconnect = UINTTAG_TYPEDEF (reconnect);
tag_typedef_t wstag_reconnect_ref = REFTAG_TYPEDEF (wstag_reconnect);
tag_typedef_t wstag_send_queue_bytes = UINTTAG_TYPEDEF (send_queue_bytes);
tag_typedef_t wstag_send_queue_bytes_ref = REFTAG_TYPEDEF (wstag_send_queue_bytes);
tag_typedef_t wstag_send_timeout = UINTTAG_TYPEDEF (send_timeout);
tag_typedef_t wstag_send_timeout_ref = REFTAG_TYPEDEF (wstag_send_timeout);

#ifndef SOFIA_WS_PLUGINSDIR
#error "SOFIA_WS_PLUGINSDIR must be defined by the build"
#endif

G_LOCK_DEFINE_STATIC (module);
static const SofiaWsTportModule *module;

static const SofiaWsTportModule *
load_module (GError **error)
{
  const SofiaWsTportModule *table = NULL;
  SofiaWsTportModuleInit init = NULL;
  GModule *self;
  gboolean linked;

  G_LOCK (module);
  if (module != NULL)
    {
      table = module;
      G_UNLOCK (module);
      return table;
    }

  /* Linked into the program, or preloaded: the entry point is already here. */
  self = g_module_open (NULL, 0);
  linked = self != NULL && g_module_symbol (self, SOFIA_WS_TPORT_MODULE_ENTRY, (gpointer *) &init);
  if (self != NULL)
    g_module_close (self);
  if (!linked)
    {
      const char *dir = g_getenv ("SOFIA_WS_PLUGIN_DIR");
      g_autofree char *path = NULL;
      GModule *plugin;

      if (dir == NULL || *dir == '\0')
        dir = SOFIA_WS_PLUGINSDIR;
      path = g_build_filename (dir, "tport-ws.so", NULL);
      plugin = g_module_open (path, G_MODULE_BIND_LOCAL);
      if (plugin == NULL)
        {
          g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_FAILED,
                       "Cannot load the ws tport module: %s (install sofia-ws-plugin, or set "
                       "SOFIA_WS_PLUGIN_DIR)", g_module_error ());
          G_UNLOCK (module);
          return NULL;
        }
      /* tport keeps pointers into the module for the life of the process. */
      g_module_make_resident (plugin);
      if (!g_module_symbol (plugin, SOFIA_WS_TPORT_MODULE_ENTRY, (gpointer *) &init))
        {
          g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_FAILED,
                       "%s has no %s: not a sofia-ws tport module", path,
                       SOFIA_WS_TPORT_MODULE_ENTRY);
          g_module_close (plugin);
          G_UNLOCK (module);
          return NULL;
        }
      g_module_close (plugin);    /* resident: this only drops our handle */
    }

  table = init (SOFIA_WS_TPORT_MODULE_VERSION, error);
  if (table != NULL && table->version != SOFIA_WS_TPORT_MODULE_VERSION)
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_ABI_MISMATCH,
                   "The ws tport module speaks interface %u, not %u", table->version,
                   SOFIA_WS_TPORT_MODULE_VERSION);
      table = NULL;
    }
  module = table;
  G_UNLOCK (module);
  return table;
}

/**
 * sofia_ws_tport_register:
 * @error: return location for a #GError
 *
 * Loads the tport module if needed and registers the `WS` and `WSS` transport types with
 * libsofia-sip-ua. Registering again does nothing. On a libsofia-sip-ua whose private layout
 * the module does not know (FreeSWITCH's fork, another version), nothing is registered and
 * @error (%SOFIA_WS_ERROR_ABI_MISMATCH) says why.
 *
 * Returns: %TRUE when the types are registered
 */
gboolean
sofia_ws_tport_register (GError **error)
{
  return load_module (error) != NULL;
}

/**
 * sofia_ws_tport_add_listener:
 * @agent: a running NTA agent, on any su_root (a GLib one, or Sofia's own, which then drives
 *   the module's GMainContext in its thread)
 * @url: where to listen, such as `sip:127.0.0.1:5066;transport=ws` or
 *   `sips:192.0.2.1:443;transport=wss`; port 0 picks a free port
 * @error: return location for a #GError
 * @tag: tags: WSTAG_PATH(), WSTAG_ALLOWED_ORIGINS(), WSTAG_TLS_CERTIFICATE() and WSTAG_TLS_KEY()
 *   (required for wss), WSTAG_KEEPALIVE(), WSTAG_KEEPALIVE_TIMEOUT(), WSTAG_MAX_MESSAGE_SIZE(),
 *   WSTAG_MAX_CONNECTIONS() and the other listener limits, WSTAG_REUSE_PORT(), and tport's
 *   TPTAG_IDLE() and TPTAG_TIMEOUT()
 *
 * Starts a WebSocket listener that feeds @agent. Requests arriving on it have a top Via of
 * `SIP/2.0/WS` (`WSS`, any case accepted) and are answered over the same connection, with
 * `received` and `rport` added. The listener lives until the agent is destroyed.
 *
 * Returns: (transfer none) (nullable): the listening (primary) tport; tport_name() gives the
 *   bound address and port
 */
tport_t *
sofia_ws_tport_add_listener (nta_agent_t  *agent,
                             const char   *url,
                             GError      **error,
                             tag_type_t    tag,
                             tag_value_t   value,
                             ...)
{
  const SofiaWsTportModule *table = load_module (error);
  tport_t *tport;
  ta_list ta;

  if (table == NULL)
    return NULL;
  ta_start (ta, tag, value);
  tport = table->add_listener (agent, url, ta_args (ta), error);
  ta_end (ta);
  return tport;
}

/**
 * sofia_ws_tport_add_client:
 * @agent: a running NTA agent (any su_root)
 * @protocol: "ws" or "wss"
 * @error: return location for a #GError
 * @tag: tags: WSTAG_PATH(), WSTAG_TLS_CA_FILE(), WSTAG_TLS_VERIFY(), WSTAG_ORIGIN(),
 *   WSTAG_CONNECT_TIMEOUT(), WSTAG_KEEPALIVE(), WSTAG_KEEPALIVE_TIMEOUT(),
 *   WSTAG_CRLF_KEEPALIVE(), WSTAG_RECONNECT(), WSTAG_MAX_MESSAGE_SIZE(), TPTAG_IDLE()
 *
 * Makes outgoing WebSocket connections for @agent: sofia_ws_tport_connect() gives the
 * connection to a server, which requests then take with `NTATAG_TPORT (connection)`. NTA
 * cannot choose such connections by itself: its URL routing only knows the transports it
 * binds (udp, tcp, tls, sctp). Requests the server sends back over a connection reach the
 * agent. The Via is `SIP/2.0/WS sofia-ws.invalid` (`WSS`), as browsers send it.
 *
 * Returns: (transfer none) (nullable): the client (primary) tport, for sofia_ws_tport_connect()
 */
tport_t *
sofia_ws_tport_add_client (nta_agent_t  *agent,
                           const char   *protocol,
                           GError      **error,
                           tag_type_t    tag,
                           tag_value_t   value,
                           ...)
{
  const SofiaWsTportModule *table = load_module (error);
  tport_t *tport;
  ta_list ta;

  if (table == NULL)
    return NULL;
  ta_start (ta, tag, value);
  tport = table->add_client (agent, protocol, ta_args (ta), error);
  ta_end (ta);
  return tport;
}

/**
 * sofia_ws_tport_connect:
 * @client: a client made by sofia_ws_tport_add_client()
 * @url: the server, such as `sip:192.0.2.1:8080;transport=ws` or
 *   `sip:sip.example.com;transport=wss` (a host name is resolved asynchronously, with GLib's
 *   resolver, by the connection's #SofiaWsWebSocket; with wss the certificate must match the
 *   name)
 * @error: return location for a #GError
 *
 * The connection to @url: an open one (not closing) if there is, else a new one, which
 * connects in the background (`ws://192.0.2.1:8080/` plus WSTAG_PATH()); nothing here blocks
 * on DNS. Requests sent over it before the name is resolved and the handshake completes wait
 * for it. When it cannot be made (name not resolved, refused, timeout, TLS failure) the
 * requests waiting on it fail with 503 and it is closed; requests given a closed
 * connection fail at once. Call again for a new connection after a failure or a close.
 * Call in the thread of the agent's root.
 *
 * Returns: (transfer none) (nullable): the connection; tport_ref() it to keep it
 */
tport_t *
sofia_ws_tport_connect (tport_t     *client,
                        const char  *url,
                        GError     **error)
{
  const SofiaWsTportModule *table = load_module (error);

  return table != NULL ? table->connect (client, url, error) : NULL;
}

/**
 * sofia_ws_tport_get_nua_agent:
 * @nua: a NUA stack
 * @error: return location for a #GError
 *
 * libsofia-sip-ua 1.12.11 has no accessor for a NUA stack's NTA agent; the module knows where
 * it is kept.
 *
 * Returns: (transfer none) (nullable): the agent of @nua
 */
nta_agent_t *
sofia_ws_tport_get_nua_agent (nua_t   *nua,
                              GError **error)
{
  const SofiaWsTportModule *table = load_module (error);

  return table != NULL ? table->nua_agent (nua, error) : NULL;
}

/**
 * sofia_ws_tport_add_nua_listener:
 * @nua: a NUA stack, in its own stack thread or in the application's
 * @url: as for sofia_ws_tport_add_listener()
 * @error: return location for a #GError
 * @tag: as for sofia_ws_tport_add_listener()
 *
 * sofia_ws_tport_add_listener() for the agent of a NUA stack. NUA does not learn about
 * transports added after nua_create(), so when answering a request that needs a Contact
 * (INVITE, SUBSCRIBE), give it with SIPTAG_CONTACT_STR(), as `<sip:user@HOST:PORT;transport=ws>`
 * for the listener's address.
 *
 * Returns: (transfer none) (nullable): the listening (primary) tport
 */
tport_t *
sofia_ws_tport_add_nua_listener (nua_t       *nua,
                                 const char  *url,
                                 GError     **error,
                                 tag_type_t   tag,
                                 tag_value_t  value,
                                 ...)
{
  const SofiaWsTportModule *table = load_module (error);
  nta_agent_t *agent;
  tport_t *tport;
  ta_list ta;

  if (table == NULL)
    return NULL;
  agent = table->nua_agent (nua, error);
  if (agent == NULL)
    return NULL;
  /* NUA's requests reach ws connections only through the module's routing. */
  if (!table->enable_routing (error))
    return NULL;
  ta_start (ta, tag, value);
  tport = table->add_listener (agent, url, ta_args (ta), error);
  ta_end (ta);
  return tport;
}

/**
 * sofia_ws_tport_get_transport:
 * @tport: a tport
 *
 * The WebSocket behind one WS connection of Sofia's: watch its signals (`message`,
 * `message-sent`, `disconnected`, `transport-error`...) or read its properties. Do not
 * disconnect it behind tport's back; tport_shutdown() does that.
 *
 * Returns: (transfer none) (nullable): the transport of @tport, or %NULL when @tport is not
 *   a ws/wss connection
 */
SofiaWsTransport *
sofia_ws_tport_get_transport (tport_t *tport)
{
  return module != NULL && tport != NULL ? module->get_transport (tport) : NULL;
}

/**
 * sofia_ws_tport_get_listener:
 * @tport: a ws/wss tport, the listener or one of its connections
 *
 * Returns: (transfer none) (nullable): the listener behind @tport
 */
SofiaWsListener *
sofia_ws_tport_get_listener (tport_t *tport)
{
  return module != NULL && tport != NULL ? module->get_listener (tport) : NULL;
}

/**
 * sofia_ws_tport_is_ws:
 * @tport: (nullable): a tport
 *
 * Returns: whether @tport is a ws/wss listener or connection of this module
 */
gboolean
sofia_ws_tport_is_ws (tport_t const *tport)
{
  return module != NULL && tport != NULL && module->is_ws (tport);
}

/**
 * sofia_ws_tport_enable_routing:
 * @error: return location for a #GError
 *
 * Lets NTA and NUA requests reach ws and wss peers without NTATAG_TPORT() when the module
 * is linked or loaded from the plugin directory, as when it is preloaded: a request whose
 * target (route URL, default proxy, loose first Route, request URI) names an open connection
 * a browser made to a listener (its address with `transport=ws`, a `.invalid` host it
 * presented in a Via or Contact, or a `ws-flow` token, see sofia_ws_tport_flow_uri()) goes
 * over that connection; one naming a connection that has gone fails at once with 503 (a
 * client's port is never dialled); any other `transport=ws`/`wss` target goes over the
 * agent's client connection (sofia_ws_tport_add_client(), a default one otherwise).
 *
 * The module does so by pointing the call slots (GOT) of nta_outgoing_tcreate(),
 * nta_outgoing_mcreate(), nta_leg_tcreate() and nta_leg_destroy() in the objects loaded at
 * the time (libsofia-sip-ua, whose NUA calls NTA through them, and the program) at its own
 * functions, which forward to libsofia-sip-ua's. Call it before creating NTA legs that send
 * requests with nta_outgoing_tcreate(). sofia_ws_tport_add_nua_listener() calls it; an NTA
 * program calls it itself (or gives NTATAG_TPORT()). Calling it again does nothing.
 *
 * Returns: %TRUE when requests are routed (also when the module is preloaded); %FALSE, with
 *   @error saying why, when this cannot take effect in this process
 */
gboolean
sofia_ws_tport_enable_routing (GError **error)
{
  const SofiaWsTportModule *table = load_module (error);

  return table != NULL && table->enable_routing (error);
}

/**
 * sofia_ws_tport_flow_uri:
 * @connection: a connection accepted by a ws/wss listener, such as nta_incoming_transport()
 *   of a REGISTER from a browser
 * @error: return location for a #GError
 *
 * A URI naming @connection, for an application to put where RFC 5626 puts a flow token: a
 * Path or Record-Route it adds, or the Contact it stores for a registration:
 * `sip:LISTENER-HOST:PORT;transport=ws;lr;ws-flow=TOKEN` (`transport=wss` on wss). A request
 * whose target carries `ws-flow=TOKEN`, in any SIP URI, goes over that connection; once the
 * connection has gone it fails at once with 503. The token is random (96 bits), and lives as
 * long as the connection.
 *
 * Returns: (transfer full) (nullable): the URI (g_free() it), or %NULL with @error when
 *   @connection is not an open accepted ws/wss connection
 */
char *
sofia_ws_tport_flow_uri (tport_t  *connection,
                         GError  **error)
{
  const SofiaWsTportModule *table = load_module (error);

  if (connection == NULL)
    {
      g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                           "No connection given");
      return NULL;
    }
  return table != NULL ? table->flow_uri (connection, NULL, error) : NULL;
}

/**
 * sofia_ws_tport_request_flow_uri:
 * @request: a request received over a connection accepted by a ws/wss listener, as NUA
 *   gives it to an application (`nua_i_register`...): its top Via's `received` and `rport`
 *   name the connection
 * @error: return location for a #GError
 *
 * sofia_ws_tport_flow_uri() for the connection @request came over, for NUA programs, which
 * do not see tports.
 *
 * Returns: (transfer full) (nullable): the URI (g_free() it), or %NULL with @error when that
 *   connection is not open (any more)
 */
char *
sofia_ws_tport_request_flow_uri (sip_t const  *request,
                                 GError      **error)
{
  const SofiaWsTportModule *table = load_module (error);

  if (request == NULL)
    {
      g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                           "No request given");
      return NULL;
    }
  return table != NULL ? table->flow_uri (NULL, request, error) : NULL;
}
