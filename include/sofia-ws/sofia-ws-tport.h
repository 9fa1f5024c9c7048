/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Sofia-SIP side of sofia-ws: ws and wss transports for NTA and NUA.
 *
 * This header is not part of the umbrella <sofia-ws/sofia-ws.h> and not introspected: it
 * speaks Sofia-SIP's C types (nta_agent_t, nua_t, tport_t, tags). Include it directly.
 *
 *   #include <sofia-ws/sofia-ws-tport.h>
 *
 *   tport_t *tp = sofia_ws_tport_add_listener (agent, "sip:127.0.0.1:5066;transport=ws", &error,
 *                                              WSTAG_PATH ("/sip"), TAG_END ());
 *
 * The transports themselves live in a loadable module, `<libdir>/sofia-ws-1.0/plugins/tport-ws.so`
 * (package sofia-ws-plugin), because they depend on libsofia-sip-ua's private transport layout,
 * which the module knows for sofia-sip 1.12.11 only. sofia_ws_tport_register() loads it.
 */
#pragma once

#include <sofia-ws/sofia-ws.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/nua.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/tport.h>

G_BEGIN_DECLS

/* ---- tags for ws/wss listeners (Sofia tag conventions) ---------------------------------- */

/** The tag namespace of sofia-ws: "ws". */
#define WSTAG_NAMESPACE "ws"

/* Tag lists of this header's functions also take tport's own TPTAG_IDLE() (idle time before
 * a connection is closed with a 1000 close frame; NTA's default is 30 minutes), TPTAG_TIMEOUT()
 * and TPTAG_LOG()-style settings the master already has. */

/**
 * WSTAG_PATH:
 * @x: (type utf8): the HTTP path of the WebSocket service, such as "/sip"; NULL (the default)
 *   accepts any path
 */
#define WSTAG_PATH(x) wstag_path, tag_str_v (x)
#define WSTAG_PATH_REF(x) wstag_path_ref, tag_str_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_path;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_path_ref;

/**
 * WSTAG_ALLOWED_ORIGINS:
 * @x: (type utf8): the Origin values accepted in the handshake, separated by commas or
 *   spaces, such as "https://app.example.com"; NULL (the default) accepts any Origin
 */
#define WSTAG_ALLOWED_ORIGINS(x) wstag_allowed_origins, tag_str_v (x)
#define WSTAG_ALLOWED_ORIGINS_REF(x) wstag_allowed_origins_ref, tag_str_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_allowed_origins;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_allowed_origins_ref;

/**
 * WSTAG_TLS_CERTIFICATE:
 * @x: (type filename): the PEM certificate (chain) of a wss listener; required for wss
 */
#define WSTAG_TLS_CERTIFICATE(x) wstag_tls_certificate, tag_str_v (x)
#define WSTAG_TLS_CERTIFICATE_REF(x) wstag_tls_certificate_ref, tag_str_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_tls_certificate;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_tls_certificate_ref;

/**
 * WSTAG_TLS_KEY:
 * @x: (type filename): the PEM private key of a wss listener; required for wss
 */
#define WSTAG_TLS_KEY(x) wstag_tls_key, tag_str_v (x)
#define WSTAG_TLS_KEY_REF(x) wstag_tls_key_ref, tag_str_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_tls_key;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_tls_key_ref;

/**
 * WSTAG_KEEPALIVE:
 * @x: (type guint): seconds between WebSocket pings on an idle connection; a peer that does not
 *   answer within WSTAG_KEEPALIVE_TIMEOUT() is closed. 0 (the default) sends none.
 */
#define WSTAG_KEEPALIVE(x) wstag_keepalive, tag_uint_v (x)
#define WSTAG_KEEPALIVE_REF(x) wstag_keepalive_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_keepalive;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_keepalive_ref;

/**
 * WSTAG_KEEPALIVE_TIMEOUT:
 * @x: (type guint): seconds a pinged peer has to answer (default 10)
 */
#define WSTAG_KEEPALIVE_TIMEOUT(x) wstag_keepalive_timeout, tag_uint_v (x)
#define WSTAG_KEEPALIVE_TIMEOUT_REF(x) wstag_keepalive_timeout_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_keepalive_timeout;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_keepalive_timeout_ref;

/**
 * WSTAG_MAX_MESSAGE_SIZE:
 * @x: (type guint): the largest SIP message accepted, in bytes (default 131072); a larger one
 *   closes its connection with close code 1009
 */
#define WSTAG_MAX_MESSAGE_SIZE(x) wstag_max_message_size, tag_uint_v (x)
#define WSTAG_MAX_MESSAGE_SIZE_REF(x) wstag_max_message_size_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_max_message_size;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_max_message_size_ref;

/**
 * WSTAG_MAX_CONNECTIONS:
 * @x: (type guint): connections open at once, counted from the TCP accept (handshakes
 *   included); more are closed as soon as they are accepted (default 10000; 0: no limit)
 */
#define WSTAG_MAX_CONNECTIONS(x) wstag_max_connections, tag_uint_v (x)
#define WSTAG_MAX_CONNECTIONS_REF(x) wstag_max_connections_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_max_connections;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_max_connections_ref;

/**
 * WSTAG_SEND_QUEUE_BYTES:
 * @x: (type guint): bytes that may wait to be sent on a connection (default 1048576); a
 *   message beyond fails to send (ENOBUFS), as #SofiaWsWebSocket:send-queue-bytes
 */
#define WSTAG_SEND_QUEUE_BYTES(x) wstag_send_queue_bytes, tag_uint_v (x)
#define WSTAG_SEND_QUEUE_BYTES_REF(x) wstag_send_queue_bytes_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_send_queue_bytes;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_send_queue_bytes_ref;

/**
 * WSTAG_SEND_TIMEOUT:
 * @x: (type guint): seconds a peer may read nothing of what waits for it before its connection
 *   is closed with 1008, and dropped if the close does not complete as long again (default
 *   30; 0: never), as #SofiaWsWebSocket:send-timeout
 */
#define WSTAG_SEND_TIMEOUT(x) wstag_send_timeout, tag_uint_v (x)
#define WSTAG_SEND_TIMEOUT_REF(x) wstag_send_timeout_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_send_timeout;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_send_timeout_ref;

/**
 * WSTAG_MAX_CONNECTIONS_PER_ADDRESS:
 * @x: (type guint): connections one IPv4 address or IPv6 /64 may have open at once, counted
 *   as WSTAG_MAX_CONNECTIONS() counts them; more are closed as soon as they are accepted
 *   (default 256; 0: no limit)
 */
#define WSTAG_MAX_CONNECTIONS_PER_ADDRESS(x) wstag_max_connections_per_address, tag_uint_v (x)
#define WSTAG_MAX_CONNECTIONS_PER_ADDRESS_REF(x) \
  wstag_max_connections_per_address_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_max_connections_per_address;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_max_connections_per_address_ref;

/**
 * WSTAG_MAX_PARTIAL_BYTES:
 * @x: (type guint): bytes of messages received in part (fragmented, or not all read yet) that
 *   all the listener's connections may hold together; the connection that would go beyond is
 *   closed with close code 1009 (default 67108864, 64 MiB; 0: no limit but
 *   WSTAG_MAX_MESSAGE_SIZE() per connection)
 */
#define WSTAG_MAX_PARTIAL_BYTES(x) wstag_max_partial_bytes, tag_uint_v (x)
#define WSTAG_MAX_PARTIAL_BYTES_REF(x) wstag_max_partial_bytes_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_max_partial_bytes;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_max_partial_bytes_ref;

/**
 * WSTAG_HANDSHAKE_TIMEOUT:
 * @x: (type guint): seconds a new connection has, from the TCP accept, to complete its TLS and
 *   WebSocket handshakes before it is closed (default 10; 0: no limit)
 */
#define WSTAG_HANDSHAKE_TIMEOUT(x) wstag_handshake_timeout, tag_uint_v (x)
#define WSTAG_HANDSHAKE_TIMEOUT_REF(x) wstag_handshake_timeout_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_handshake_timeout;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_handshake_timeout_ref;

/**
 * WSTAG_REUSE_PORT:
 * @x: (type gboolean): share the listener's port with other listeners that set it too
 *   (`SO_REUSEPORT`, Linux), such as the same program's listener in N worker processes, each
 *   with its own root and agent: the kernel spreads new connections over them (default FALSE;
 *   with it off a second listener on a port fails with "Address already in use")
 */
#define WSTAG_REUSE_PORT(x) wstag_reuse_port, tag_bool_v (x)
#define WSTAG_REUSE_PORT_REF(x) wstag_reuse_port_ref, tag_bool_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_reuse_port;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_reuse_port_ref;

/* ---- tags for outgoing connections (sofia_ws_tport_add_client()) ------------------------- */

/* WSTAG_PATH() is the HTTP path requested (default "/"); WSTAG_KEEPALIVE(),
 * WSTAG_KEEPALIVE_TIMEOUT(), WSTAG_MAX_MESSAGE_SIZE(), WSTAG_SEND_QUEUE_BYTES() and
 * WSTAG_SEND_TIMEOUT() apply as for listeners. */

/**
 * WSTAG_TLS_CA_FILE:
 * @x: (type filename): PEM file of the CAs trusted for wss servers; NULL (the default) trusts
 *   the system's CAs
 */
#define WSTAG_TLS_CA_FILE(x) wstag_tls_ca_file, tag_str_v (x)
#define WSTAG_TLS_CA_FILE_REF(x) wstag_tls_ca_file_ref, tag_str_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_tls_ca_file;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_tls_ca_file_ref;

/**
 * WSTAG_TLS_VERIFY:
 * @x: (type gboolean): whether a wss server's certificate must verify (default TRUE); FALSE
 *   is for tests only
 */
#define WSTAG_TLS_VERIFY(x) wstag_tls_verify, tag_bool_v (x)
#define WSTAG_TLS_VERIFY_REF(x) wstag_tls_verify_ref, tag_bool_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_tls_verify;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_tls_verify_ref;

/**
 * WSTAG_ORIGIN:
 * @x: (type utf8): the Origin header sent in the handshake (default: none)
 */
#define WSTAG_ORIGIN(x) wstag_origin, tag_str_v (x)
#define WSTAG_ORIGIN_REF(x) wstag_origin_ref, tag_str_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_origin;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_origin_ref;

/**
 * WSTAG_CONNECT_TIMEOUT:
 * @x: (type guint): seconds allowed for the lookup of a host name and the TCP, TLS and
 *   WebSocket handshakes (default 5)
 */
#define WSTAG_CONNECT_TIMEOUT(x) wstag_connect_timeout, tag_uint_v (x)
#define WSTAG_CONNECT_TIMEOUT_REF(x) wstag_connect_timeout_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_connect_timeout;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_connect_timeout_ref;

/**
 * WSTAG_CRLF_KEEPALIVE:
 * @x: (type guint): seconds between RFC 5626 CRLF keep-alives on an outgoing connection, as
 *   SIP.js sends them (default 0: none)
 */
#define WSTAG_CRLF_KEEPALIVE(x) wstag_crlf_keepalive, tag_uint_v (x)
#define WSTAG_CRLF_KEEPALIVE_REF(x) wstag_crlf_keepalive_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_crlf_keepalive;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_crlf_keepalive_ref;

/**
 * WSTAG_RECONNECT:
 * @x: (type guint): reconnection attempts when an outgoing connection drops (default 0). While
 *   they last, the connection's tport stays open: requests sent meanwhile wait for the new
 *   connection, and requests the peer had not answered fail at their timers. The first attempt
 *   is at once, then after 4 s, doubling (60 s at most), as SIP.js does.
 */
#define WSTAG_RECONNECT(x) wstag_reconnect, tag_uint_v (x)
#define WSTAG_RECONNECT_REF(x) wstag_reconnect_ref, tag_uint_vr (&(x))
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_reconnect;
SOFIA_WS_AVAILABLE_IN_1_0 tag_typedef_t wstag_reconnect_ref;

/* ---- functions -------------------------------------------------------------------------- */

SOFIA_WS_AVAILABLE_IN_1_0
gboolean          sofia_ws_tport_register          (GError        **error);

SOFIA_WS_AVAILABLE_IN_1_0
tport_t          *sofia_ws_tport_add_listener      (nta_agent_t    *agent,
                                                    const char     *url,
                                                    GError        **error,
                                                    tag_type_t      tag,
                                                    tag_value_t     value,
                                                    ...);

SOFIA_WS_AVAILABLE_IN_1_0
tport_t          *sofia_ws_tport_add_nua_listener  (nua_t          *nua,
                                                    const char     *url,
                                                    GError        **error,
                                                    tag_type_t      tag,
                                                    tag_value_t     value,
                                                    ...);

SOFIA_WS_AVAILABLE_IN_1_0
tport_t          *sofia_ws_tport_add_client        (nta_agent_t    *agent,
                                                    const char     *protocol,
                                                    GError        **error,
                                                    tag_type_t      tag,
                                                    tag_value_t     value,
                                                    ...);

SOFIA_WS_AVAILABLE_IN_1_0
tport_t          *sofia_ws_tport_connect           (tport_t        *client,
                                                    const char     *url,
                                                    GError        **error);

SOFIA_WS_AVAILABLE_IN_1_0
nta_agent_t      *sofia_ws_tport_get_nua_agent     (nua_t          *nua,
                                                    GError        **error);

SOFIA_WS_AVAILABLE_IN_1_0
SofiaWsTransport *sofia_ws_tport_get_transport     (tport_t        *tport);

SOFIA_WS_AVAILABLE_IN_1_0
SofiaWsListener  *sofia_ws_tport_get_listener      (tport_t        *tport);

SOFIA_WS_AVAILABLE_IN_1_0
gboolean          sofia_ws_tport_is_ws             (tport_t const  *tport);

SOFIA_WS_AVAILABLE_IN_1_0
gboolean          sofia_ws_tport_enable_routing    (GError        **error);

SOFIA_WS_AVAILABLE_IN_1_0
char             *sofia_ws_tport_flow_uri          (tport_t        *connection,
                                                    GError        **error);

SOFIA_WS_AVAILABLE_IN_1_0
char             *sofia_ws_tport_request_flow_uri  (sip_t const    *request,
                                                    GError        **error);

G_END_DECLS
