/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE 1                   /* accept4() */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <glib-unix.h>

#include "sofia-ws-error.h"
#include "sofia-ws-websocket-private.h"

/**
 * SofiaWsListener:
 *
 * Accepts SIP-over-WebSocket connections (RFC 7118) on an address and port, ws or wss, on
 * libwebsockets and the thread-default GMainContext at construction.
 *
 * Each accepted connection is announced by [signal@SofiaWs.Listener::accepted] as a
 * [class@SofiaWs.WebSocket] that is already CONNECTED; its
 * [method@SofiaWs.Transport.disconnect_async] closes that connection. The listener keeps
 * each connection alive until it closes.
 *
 * The handshake is refused with an HTTP status when the client does not offer the `sip`
 * subprotocol (400), asks for another [property@SofiaWs.Listener:path] (404), sends an Origin
 * outside [property@SofiaWs.Listener:allowed-origins] (403), asks for another upgrade than
 * WebSocket (such as h2c) or none (400), or comes while the listener is stopping (503). The
 * response always selects `sip`. TLS offers HTTP/1.1 only (ALPN), never HTTP/2.
 *
 * Connections are counted from the TCP accept: beyond
 * [property@SofiaWs.Listener:max-connections] or
 * [property@SofiaWs.Listener:max-connections-per-address] they are closed at once, and a
 * connection that has not completed its handshake within
 * [property@SofiaWs.Listener:handshake-timeout] is closed then.
 */

struct _SofiaWsListener
{
  GObject parent_instance;

  char *address;
  guint port;
  char *path;
  char *tls_certificate_file;
  char *tls_key_file;
  GStrv allowed_origins;
  guint max_connections;
  guint max_connections_per_address;
  guint max_partial_bytes;
  guint handshake_timeout;
  guint max_message_size;
  guint ping_interval;
  guint ping_timeout;
  gboolean trace_sip;
  gboolean reuse_port;

  GMainContext *context;
  SofiaWsLoop *loop;
  struct lws_context *lws;        /* the listener's own, until it is destroyed */
  struct lws_vhost *vhost;        /* while accepting */
  int shared_fd;                  /* reuse-port: our listening socket while accepting, or -1 */
  GSource *accept_source;         /* reuse-port: readable shared_fd */
  GSource *accept_pause;          /* reuse-port: out of descriptors, accepting again soon */
  GSource *grace_source;          /* stopped: the time left for the connections to close */
  GPtrArray *stop_waiters;        /* GTask * of stop_async, until the port is released */
  guint16 bound_port;
  GHashTable *connections;        /* SofiaWsWebSocket * (strong) -> Peer * */
  GHashTable *handshaking;        /* struct lws * -> Peer *: accepted, handshake not done */
  GQueue deadlines;               /* Peer * of handshaking, by deadline (their link) */
  GSource *deadline_source;       /* ready at the first deadline */
  GHashTable *per_address;        /* peer key -> count of its handshaking and connections */
  gsize partial_bytes;            /* of the connections' unfinished messages, in all */
};

/* One accepted TCP connection, counted from accept() to close against the limits. */
typedef struct {
  char *key;                      /* its address, as per_address counts it */
  struct lws *wsi;                /* while handshaking */
  gint64 deadline;                /* while handshaking: monotonic time it is dropped at */
  GList link;                     /* while handshaking with a deadline: in deadlines */
  gsize partial;                  /* once connected: bytes of its unfinished message */
} Peer;

/* The vhost's user data: it may outlive the listener until lws destroys the vhost. */
typedef struct {
  GWeakRef listener;
} VhostData;

G_DEFINE_FINAL_TYPE (SofiaWsListener, sofia_ws_listener, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_PATH,
  PROP_TLS_CERTIFICATE_FILE,
  PROP_TLS_KEY_FILE,
  PROP_ALLOWED_ORIGINS,
  PROP_MAX_CONNECTIONS,
  PROP_MAX_CONNECTIONS_PER_ADDRESS,
  PROP_MAX_PARTIAL_BYTES,
  PROP_HANDSHAKE_TIMEOUT,
  PROP_MAX_MESSAGE_SIZE,
  PROP_PING_INTERVAL,
  PROP_PING_TIMEOUT,
  PROP_TRACE_SIP,
  PROP_REUSE_PORT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_ACCEPTED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* ---- peers ---------------------------------------------------------------------------- */

/* The peer of @fd into @sa, a v4-mapped IPv6 address (a dual-stack socket's IPv4 peer) made
 * the IPv4 address it is. */
static gboolean
get_peer (int                      fd,
          struct sockaddr_storage *sa)
{
  socklen_t len = sizeof *sa;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) sa;

  if (getpeername (fd, (struct sockaddr *) sa, &len) != 0)
    return FALSE;
  if (sa->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED (&in6->sin6_addr))
    {
      struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = in6->sin6_port };

      memcpy (&in4.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
      memset (sa, 0, sizeof *sa);
      memcpy (sa, &in4, sizeof in4);
    }
  return TRUE;
}

char *
sofia_ws_listener_format_peer (int fd)
{
  struct sockaddr_storage sa;
  char host[INET6_ADDRSTRLEN] = "";

  if (!get_peer (fd, &sa))
    return g_strdup ("unknown");
  if (sa.ss_family == AF_INET)
    {
      struct sockaddr_in *in4 = (struct sockaddr_in *) &sa;

      inet_ntop (AF_INET, &in4->sin_addr, host, sizeof host);
      return g_strdup_printf ("%s:%u", host, g_ntohs (in4->sin_port));
    }
  if (sa.ss_family == AF_INET6)
    {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;

      inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
      return g_strdup_printf ("[%s]:%u", host, g_ntohs (in6->sin6_port));
    }
  return g_strdup ("unknown");
}

/* What connections from one address count against: the IPv4 address, or the IPv6 /64 (a
 * single host usually has a whole /64 to pick addresses from). */
static char *
peer_key (int fd)
{
  struct sockaddr_storage sa;
  char host[INET6_ADDRSTRLEN] = "";

  if (!get_peer (fd, &sa))
    return NULL;
  if (sa.ss_family == AF_INET)
    {
      inet_ntop (AF_INET, &((struct sockaddr_in *) &sa)->sin_addr, host, sizeof host);
      return g_strdup (host);
    }
  if (sa.ss_family == AF_INET6)
    {
      struct in6_addr prefix = ((struct sockaddr_in6 *) &sa)->sin6_addr;

      memset (&prefix.s6_addr[8], 0, 8);
      inet_ntop (AF_INET6, &prefix, host, sizeof host);
      return g_strdup_printf ("%s/64", host);
    }
  return NULL;
}

static guint
count_of (SofiaWsListener *self,
          const char      *key)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (self->per_address, key));
}

static Peer *
peer_new (SofiaWsListener *self,
          char            *key)
{
  Peer *peer = g_new0 (Peer, 1);

  peer->key = key;
  peer->link.data = peer;
  g_hash_table_insert (self->per_address, g_strdup (key),
                       GUINT_TO_POINTER (count_of (self, key) + 1));
  return peer;
}

static void
peer_stop_deadline (SofiaWsListener *self,
                    Peer            *peer)
{
  if (peer->deadline != 0)
    g_queue_unlink (&self->deadlines, &peer->link);
  peer->deadline = 0;
}

static void
peer_free (SofiaWsListener *self,
           Peer            *peer)
{
  guint count = count_of (self, peer->key);

  peer_stop_deadline (self, peer);
  self->partial_bytes -= peer->partial;
  if (count > 1)
    g_hash_table_insert (self->per_address, g_strdup (peer->key), GUINT_TO_POINTER (count - 1));
  else
    g_hash_table_remove (self->per_address, peer->key);
  g_free (peer->key);
  g_free (peer);
}

/* Drops the handshakes whose time is up; lws closes them on its next turn. */
static gboolean
on_deadline (gpointer user_data)
{
  SofiaWsListener *self = user_data;
  gint64 now = g_get_monotonic_time ();
  struct lws *last = NULL;
  GList *head;

  while ((head = self->deadlines.head) != NULL && ((Peer *) head->data)->deadline <= now)
    {
      Peer *peer = head->data;
      g_autofree char *name = sofia_ws_listener_format_peer (lws_get_socket_fd (peer->wsi));

      g_debug ("listener %s:%u: %s did not complete its handshake within %u s: dropped",
               self->address, self->bound_port, name, self->handshake_timeout);
      /* Counted until lws has closed it (LWS_CALLBACK_WSI_DESTROY). lws re-arms its own
       * timeouts as a handshake moves on, which may undo this one: one more term then. */
      g_queue_unlink (&self->deadlines, head);
      peer->deadline = now + self->handshake_timeout * G_USEC_PER_SEC;
      g_queue_push_tail_link (&self->deadlines, head);
      lws_set_timeout (peer->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
      last = peer->wsi;
    }
  if (last != NULL)
    sofia_ws_loop_wake (self->loop, last);
  head = self->deadlines.head;
  g_source_set_ready_time (self->deadline_source,
                           head != NULL ? ((Peer *) head->data)->deadline : -1);
  return G_SOURCE_CONTINUE;
}

static gboolean
deadline_source_dispatch (GSource     *source,
                          GSourceFunc  callback,
                          gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs deadline_source_funcs = {
  .dispatch = deadline_source_dispatch,
};

/* A new TCP connection (before TLS and HTTP): counted from now, or refused at once. */
static int
admit (SofiaWsListener *self,
       struct lws      *wsi)
{
  g_autofree char *key = peer_key (lws_get_socket_fd (wsi));
  guint open;
  Peer *peer;

  if (key == NULL || self->vhost == NULL)
    return -1;
  /* Refused by closing, before any byte is read: the cheapest answer to a flood. */
  open = g_hash_table_size (self->handshaking) + g_hash_table_size (self->connections);
  if (self->max_connections > 0 && open >= self->max_connections)
    {
      g_debug ("listener %s:%u: refused a connection from %s: %u connections open",
               self->address, self->bound_port, key, open);
      return -1;
    }
  if (self->max_connections_per_address > 0 &&
      count_of (self, key) >= self->max_connections_per_address)
    {
      g_debug ("listener %s:%u: refused a connection from %s: it has %u open",
               self->address, self->bound_port, key, count_of (self, key));
      return -1;
    }

  peer = peer_new (self, g_steal_pointer (&key));
  peer->wsi = wsi;
  g_hash_table_insert (self->handshaking, wsi, peer);
  if (self->handshake_timeout > 0)
    {
      /* Same timeout for all: the queue stays in deadline order. */
      peer->deadline = g_get_monotonic_time () + self->handshake_timeout * G_USEC_PER_SEC;
      g_queue_push_tail_link (&self->deadlines, &peer->link);
      if (g_source_get_ready_time (self->deadline_source) == -1)
        g_source_set_ready_time (self->deadline_source, peer->deadline);
    }
  return 0;
}

/* lws is freeing a wsi that never became a connection. */
static void
forget_wsi (SofiaWsListener *self,
            struct lws      *wsi)
{
  Peer *peer = g_hash_table_lookup (self->handshaking, wsi);

  if (peer != NULL)
    {
      g_hash_table_remove (self->handshaking, wsi);
      peer_free (self, peer);
    }
}

/* The handshakes of a context that is going away: its wsis go with it. */
static void
forget_handshakes (SofiaWsListener *self)
{
  GHashTableIter iter;
  gpointer peer;

  g_hash_table_iter_init (&iter, self->handshaking);
  while (g_hash_table_iter_next (&iter, NULL, &peer))
    {
      g_hash_table_iter_remove (&iter);
      peer_free (self, peer);
    }
}

/* ---- handshake ------------------------------------------------------------------------ */

static gboolean
offers_sip (struct lws *wsi)
{
  char protocols[256] = "";
  g_auto(GStrv) offered = NULL;

  if (lws_hdr_copy (wsi, protocols, sizeof protocols, WSI_TOKEN_PROTOCOL) <= 0)
    return FALSE;
  offered = g_strsplit (protocols, ",", -1);
  for (guint i = 0; offered[i] != NULL; i++)
    if (strcmp (g_strstrip (offered[i]), "sip") == 0)
      return TRUE;
  return FALSE;
}

static gboolean
origin_allowed (SofiaWsListener *self,
                struct lws      *wsi)
{
  char origin[512] = "";
  int len;

  if (self->allowed_origins == NULL || self->allowed_origins[0] == NULL)
    return TRUE;
  len = lws_hdr_copy (wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
  if (len <= 0)
    return FALSE;
  /* The header's whole length: lws keeps a NUL in a header value, and a comparison as C
   * strings would let "https://good.example\0.evil" pass as "https://good.example". */
  for (guint i = 0; self->allowed_origins[i] != NULL; i++)
    if (strlen (self->allowed_origins[i]) == (size_t) len &&
        g_ascii_strncasecmp (self->allowed_origins[i], origin, len) == 0)
      return TRUE;
  return FALSE;
}

static gboolean
path_matches (SofiaWsListener *self,
              struct lws      *wsi)
{
  char uri[1024] = "";
  char *query;
  int len;

  if (self->path == NULL)
    return TRUE;
  len = lws_hdr_copy (wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
  if (len <= 0 || strlen (uri) != (size_t) len)        /* no NUL inside either */
    return FALSE;
  query = strchr (uri, '?');
  if (query != NULL)
    *query = '\0';
  return strcmp (uri, self->path) == 0;
}

static int
refuse (SofiaWsListener *self,
        struct lws      *wsi,
        guint            status,
        const char      *why)
{
  g_autofree char *peer = sofia_ws_listener_format_peer (lws_get_socket_fd (wsi));

  g_debug ("listener %s:%u: refused a handshake from %s with %u: %s", self->address,
           self->bound_port, peer, status, why);
  lws_return_http_status (wsi, status, why);
  return -1;
}

static int
filter_handshake (SofiaWsListener *self,
                  struct lws      *wsi)
{
  if (!offers_sip (wsi))
    return refuse (self, wsi, HTTP_STATUS_BAD_REQUEST,
                   "The sip subprotocol is required (RFC 7118)");
  if (!path_matches (self, wsi))
    return refuse (self, wsi, HTTP_STATUS_NOT_FOUND, "No SIP WebSocket service at this path");
  if (!origin_allowed (self, wsi))
    return refuse (self, wsi, HTTP_STATUS_FORBIDDEN, "Origin not allowed");
  return 0;
}

static int
accept_connection (SofiaWsListener *self,
                   struct lws      *wsi)
{
  g_autoptr(SofiaWsWebSocket) connection = NULL;
  Peer *peer = g_hash_table_lookup (self->handshaking, wsi);

  if (peer != NULL)
    {
      g_hash_table_remove (self->handshaking, wsi);
      peer_stop_deadline (self, peer);
      peer->wsi = NULL;
    }
  else
    {
      /* Not seen at accept (lws's own streams, if any): counted from now. */
      char *key = peer_key (lws_get_socket_fd (wsi));

      peer = peer_new (self, key != NULL ? key : g_strdup ("unknown"));
    }
  connection = sofia_ws_websocket_new_accepted (self->loop, wsi, self, self->max_message_size,
                                                self->ping_interval, self->ping_timeout,
                                                self->trace_sip);
  g_hash_table_insert (self->connections, g_object_ref (connection), peer);
  g_debug ("listener %s:%u: accepted %s", self->address, self->bound_port,
           sofia_ws_websocket_get_remote_address (connection));
  g_signal_emit (self, signals[SIGNAL_ACCEPTED], 0, connection);
  return 0;
}

int
sofia_ws_listener_handle_callback (struct lws                *wsi,
                                   enum lws_callback_reasons  reason,
                                   void                      *in,
                                   size_t                     len)
{
  struct lws_vhost *vhost = wsi != NULL ? lws_get_vhost (wsi) : NULL;
  VhostData *data = vhost != NULL ? lws_get_vhost_user (vhost) : NULL;
  g_autoptr(SofiaWsListener) self = NULL;
  gboolean handshaking;

  /* Every callback of a wsi without a connection comes here: the handshake steps hang up
   * when there is no listener to judge them, anything else is not ours to refuse. */
  handshaking = reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION ||
                reason == LWS_CALLBACK_ESTABLISHED ||
                reason == LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED ||
                reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE ||
                reason == LWS_CALLBACK_HTTP;
  if (data == NULL)
    return handshaking ? -1 : 0;

  if (reason == LWS_CALLBACK_PROTOCOL_DESTROY)
    {
      g_weak_ref_clear (&data->listener);
      g_free (data);
      return 0;
    }

  self = g_weak_ref_get (&data->listener);
  if (self == NULL)
    return handshaking ? -1 : 0;
  if (self->vhost == NULL && reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION)
    return refuse (self, wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "The listener is stopping");

  switch (reason)
    {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
      return filter_handshake (self, wsi);
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
      return admit (self, wsi);
    case LWS_CALLBACK_WSI_DESTROY:
      forget_wsi (self, wsi);
      return 0;
    case LWS_CALLBACK_ESTABLISHED:
      return accept_connection (self, wsi);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
      /* lws would switch to HTTP/2 on "Upgrade: h2c", which has no WebSocket handshake (nor
       * its limits) and then holds the connection as long as the client likes. */
      if (in == NULL || g_ascii_strcasecmp (in, "websocket") != 0)
        return refuse (self, wsi, HTTP_STATUS_BAD_REQUEST, "Only WebSocket upgrades are served");
      return 0;
    case LWS_CALLBACK_HTTP:
      /* Plain HTTP, which lws would otherwise leave unanswered and open. */
      return refuse (self, wsi, HTTP_STATUS_BAD_REQUEST,
                     "A SIP WebSocket service: a WebSocket upgrade is required");
    default:
      return 0;
    }
}

static void
destroy_lws (SofiaWsListener *self)
{
  if (self->grace_source != NULL)
    {
      g_source_destroy (self->grace_source);
      g_clear_pointer (&self->grace_source, g_source_unref);
    }
  if (self->lws != NULL)
    {
      g_autoptr(GPtrArray) waiters = g_steal_pointer (&self->stop_waiters);

      forget_handshakes (self);
      self->stop_waiters = g_ptr_array_new_with_free_func (g_object_unref);
      sofia_ws_loop_destroy_server_context (self->loop, g_steal_pointer (&self->lws), waiters);
    }
}

static gboolean
on_grace_over (gpointer user_data)
{
  SofiaWsListener *self = user_data;

  g_clear_pointer (&self->grace_source, g_source_unref);
  destroy_lws (self);
  return G_SOURCE_REMOVE;
}

gboolean
sofia_ws_listener_hold_partial (SofiaWsListener  *self,
                                SofiaWsWebSocket *connection,
                                gsize             bytes)
{
  Peer *peer = g_hash_table_lookup (self->connections, connection);

  if (peer == NULL)
    return TRUE;
  self->partial_bytes -= peer->partial;
  peer->partial = 0;
  if (bytes > 0 && self->max_partial_bytes > 0 &&
      self->partial_bytes + bytes > self->max_partial_bytes)
    {
      g_debug ("listener %s:%u: %s would hold %" G_GSIZE_FORMAT " bytes of a message beyond "
               "the %" G_GSIZE_FORMAT " held, max-partial-bytes %u: closing it",
               self->address, self->bound_port,
               sofia_ws_websocket_get_remote_address (connection), bytes, self->partial_bytes,
               self->max_partial_bytes);
      return FALSE;
    }
  peer->partial = bytes;
  self->partial_bytes += bytes;
  return TRUE;
}

void
sofia_ws_listener_connection_closed (SofiaWsListener  *self,
                                     SofiaWsWebSocket *connection)
{
  Peer *peer = g_hash_table_lookup (self->connections, connection);

  if (peer != NULL)
    {
      g_hash_table_remove (self->connections, connection);
      peer_free (self, peer);
    }
  /* Stopped, and the last connection has said goodbye: release the port now. */
  if (self->vhost == NULL && self->lws != NULL && g_hash_table_size (self->connections) == 0)
    destroy_lws (self);
}

/* ---- public API ----------------------------------------------------------------------- */

/**
 * sofia_ws_listener_new:
 *
 * Returns: (transfer full): a new listener; set its properties, then start it
 */
SofiaWsListener *
sofia_ws_listener_new (void)
{
  return g_object_new (SOFIA_WS_TYPE_LISTENER, NULL);
}

/* ---- the bound address ----------------------------------------------------------------- */

static gboolean
ipv6_available (void)
{
  static gsize result = 0;

  if (g_once_init_enter (&result))
    {
      int fd = socket (AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

      if (fd >= 0)
        close (fd);
      g_once_init_leave (&result, fd >= 0 ? 2 : 1);
    }
  return result == 2;
}

/* What lws binds for the address property: the interface (a numeric address, or NULL for the
 * wildcard) and the options that choose the socket's family.
 *
 * lws 4.1.6 built with IPv6 (as Debian builds it) makes every listen socket AF_INET6 unless the
 * vhost has LWS_SERVER_OPTION_DISABLE_IPV6, and then writes an IPv4 iface with inet_pton()
 * into the sockaddr_in6 at sockaddr_in's offset (sin6_flowinfo), leaving sin6_addr "::": the
 * socket listens on every address, both families. So an IPv4 address gets an AF_INET socket
 * (DISABLE_IPV6), and an IPv6 one an IPV6_V6ONLY socket, which binds exactly that address.
 *
 * "*" (and an empty or NULL address) means every address of both families (one dual-stack
 * socket; IPv4 peers are still reported as IPv4 addresses); "0.0.0.0" every IPv4 address only,
 * "::" every IPv6 address only. A host name is resolved, and its first address bound. */
static gboolean
choose_bind_address (SofiaWsListener  *self,
                     const char      **iface,
                     guint64          *options,
                     GError          **error)
{
  g_autoptr(GInetAddress) address = NULL;
  const char *text = self->address;

  *iface = NULL;
  if (text == NULL || text[0] == '\0' || strcmp (text, "*") == 0)
    {
      if (ipv6_available ())
        *options |= LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY;      /* V6ONLY off: dual-stack */
      else
        *options |= LWS_SERVER_OPTION_DISABLE_IPV6;
      return TRUE;
    }

  address = g_inet_address_new_from_string (text);
  if (address == NULL)
    {
      g_autoptr(GResolver) resolver = g_resolver_get_default ();
      g_autolist(GInetAddress) found = NULL;
      g_autoptr(GError) local_error = NULL;

      found = g_resolver_lookup_by_name (resolver, text, NULL, &local_error);
      if (found == NULL)
        {
          g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                       "Cannot listen on %s: %s", text, local_error->message);
          return FALSE;
        }
      address = g_object_ref (found->data);
    }

  if (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6)
    {
      const guint8 *bytes = g_inet_address_to_bytes (address);
      static const guint8 v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

      if (memcmp (bytes, v4_mapped, sizeof v4_mapped) == 0)
        {
          GInetAddress *v4 = g_inet_address_new_from_bytes (bytes + 12, G_SOCKET_FAMILY_IPV4);

          g_object_unref (address);
          address = v4;
        }
    }

  if (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV4)
    *options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  else
    *options |= LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY | LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE;
  if (!g_inet_address_get_is_any (address))
    {
      g_autofree char *numeric = g_inet_address_to_string (address);

      /* lws keeps the pointer for the vhost's life. */
      *iface = g_intern_string (numeric);
    }
  return TRUE;
}

/* ---- a shared port (reuse-port) ------------------------------------------------------- */

/* lws 4.1 sets SO_REUSEPORT (LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE) only in contexts with
 * several service threads, which Debian's build (LWS_MAX_SMP 1) cannot have. So a listener
 * that shares its port binds and listens itself, and hands every connection it accepts to its
 * vhost (one without a listen socket of its own) with lws_adopt_socket_vhost(), lws's API for
 * sockets accepted by the application; lws then serves it as one it accepted. */

/* The listening socket lws would have made for @iface and @options (choose_bind_address()),
 * with SO_REUSEPORT; -1 with errno set when it cannot be made. */
static int
open_shared_socket (SofiaWsListener *self,
                    const char      *iface,
                    guint64          options,
                    guint16         *bound_port)
{
  struct sockaddr_storage sa = { 0 };
  struct sockaddr_in *in4 = (struct sockaddr_in *) &sa;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;
  socklen_t len;
  int on = 1, fd, saved;

  if (options & LWS_SERVER_OPTION_DISABLE_IPV6)
    {
      in4->sin_family = AF_INET;
      in4->sin_port = htons (self->port);
      in4->sin_addr.s_addr = htonl (INADDR_ANY);
      if (iface != NULL && inet_pton (AF_INET, iface, &in4->sin_addr) != 1)
        return errno = EINVAL, -1;
      len = sizeof *in4;
    }
  else
    {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons (self->port);
      in6->sin6_addr = in6addr_any;
      if (iface != NULL && inet_pton (AF_INET6, iface, &in6->sin6_addr) != 1)
        return errno = EINVAL, -1;
      len = sizeof *in6;
    }

  fd = socket (sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (sa.ss_family == AF_INET6)
    {
      int v6only = (options & LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE) != 0;

      if (setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0)
        goto fail;
    }
  if (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      setsockopt (fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
      bind (fd, (struct sockaddr *) &sa, len) != 0 ||
      listen (fd, SOMAXCONN) != 0)
    goto fail;
  len = sizeof sa;
  if (getsockname (fd, (struct sockaddr *) &sa, &len) != 0)
    goto fail;
  *bound_port = ntohs (sa.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
  return fd;

fail:
  saved = errno;
  close (fd);
  errno = saved;
  return -1;
}

/* Out of file descriptors (or kernel memory), accept() fails while the connection waits in the
 * backlog, and the socket stays readable: rather than spin on it, accepting stops for this long,
 * and the connections wait in the backlog until it starts again. */
#define ACCEPT_PAUSE_MS 250

static void watch_shared_socket (SofiaWsListener *self);

static gboolean
on_accept_pause_over (gpointer user_data)
{
  SofiaWsListener *self = user_data;

  g_clear_pointer (&self->accept_pause, g_source_unref);
  watch_shared_socket (self);
  return G_SOURCE_REMOVE;
}

/* The connections waiting on the shared socket, to lws; a few at a time, as lws accepts. */
static gboolean
on_shared_socket_readable (int          fd,
                           GIOCondition condition,
                           gpointer     user_data)
{
  SofiaWsListener *self = user_data;
  int on = 1;

  for (guint i = 0; i < 16 && self->vhost != NULL; i++)
    {
      int accepted = accept4 (fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

      if (accepted < 0)
        {
          int saved = errno;

          if (saved == EINTR || saved == ECONNABORTED)
            continue;
          if (saved == EMFILE || saved == ENFILE || saved == ENOBUFS || saved == ENOMEM)
            {
              g_message ("listener %s:%u: cannot accept a connection: %s; accepting again in "
                         "%u ms", self->address, self->bound_port, g_strerror (saved),
                         ACCEPT_PAUSE_MS);
              g_clear_pointer (&self->accept_source, g_source_unref);
              self->accept_pause = g_timeout_source_new (ACCEPT_PAUSE_MS);
              g_source_set_callback (self->accept_pause, on_accept_pause_over, self, NULL);
              g_source_set_static_name (self->accept_pause, "[sofia-ws] listener accept pause");
              g_source_attach (self->accept_pause, self->context);
              sofia_ws_loop_kick (self->loop);
              return G_SOURCE_REMOVE;
            }
          if (saved != EAGAIN && saved != EWOULDBLOCK)
            g_debug ("listener %s:%u: accept failed: %s", self->address, self->bound_port,
                     g_strerror (saved));
          break;
        }
      /* What lws sets on the sockets it accepts itself. */
      setsockopt (accepted, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      /* On failure lws has closed it. */
      if (lws_adopt_socket_vhost (self->vhost, accepted) == NULL)
        g_debug ("listener %s:%u: libwebsockets could not take a connection",
                 self->address, self->bound_port);
    }
  sofia_ws_loop_kick (self->loop);
  return G_SOURCE_CONTINUE;
}

static void
watch_shared_socket (SofiaWsListener *self)
{
  self->accept_source = g_unix_fd_source_new (self->shared_fd, G_IO_IN);
  g_source_set_callback (self->accept_source, G_SOURCE_FUNC (on_shared_socket_readable),
                         self, NULL);
  g_source_set_static_name (self->accept_source, "[sofia-ws] listener shared port");
  g_source_attach (self->accept_source, self->context);
}

/* No more connections on the shared socket: the kernel gives them to the other listeners. */
static void
close_shared_socket (SofiaWsListener *self)
{
  if (self->accept_source != NULL)
    {
      g_source_destroy (self->accept_source);
      g_clear_pointer (&self->accept_source, g_source_unref);
    }
  if (self->accept_pause != NULL)
    {
      g_source_destroy (self->accept_pause);
      g_clear_pointer (&self->accept_pause, g_source_unref);
    }
  if (self->shared_fd >= 0)
    {
      close (self->shared_fd);
      self->shared_fd = -1;
    }
}

/**
 * sofia_ws_listener_start:
 * @self: a #SofiaWsListener
 * @error: return location for a #GError
 *
 * Binds the address and port and starts accepting connections. With port 0 the system
 * chooses one: read it back with [method@SofiaWs.Listener.get_port].
 *
 * Returns: %TRUE when listening
 */
gboolean
sofia_ws_listener_start (SofiaWsListener  *self,
                         GError          **error)
{
  struct lws_context_creation_info info = { 0 };
  const char *iface = NULL;
  guint64 bind_options = 0;
  gboolean secure;
  VhostData *data;

  g_return_val_if_fail (SOFIA_WS_IS_LISTENER (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->vhost != NULL)
    return TRUE;

  secure = self->tls_certificate_file != NULL || self->tls_key_file != NULL;
  if (secure && (self->tls_certificate_file == NULL || self->tls_key_file == NULL))
    {
      g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                           "wss needs both tls-certificate-file and tls-key-file");
      return FALSE;
    }
  if (secure && (!g_file_test (self->tls_certificate_file, G_FILE_TEST_IS_REGULAR) ||
                 !g_file_test (self->tls_key_file, G_FILE_TEST_IS_REGULAR)))
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_TLS,
                   "Cannot read the TLS certificate %s or key %s", self->tls_certificate_file,
                   self->tls_key_file);
      return FALSE;
    }

  if (!choose_bind_address (self, &iface, &bind_options, error))
    return FALSE;

  if (self->loop == NULL)
    {
      self->loop = sofia_ws_loop_ref_for_context (self->context, error);
      if (self->loop == NULL)
        return FALSE;
    }

  if (self->deadline_source == NULL)
    {
      self->deadline_source = g_source_new (&deadline_source_funcs, sizeof (GSource));
      g_source_set_callback (self->deadline_source, on_deadline, self, NULL);
      g_source_set_static_name (self->deadline_source, "[sofia-ws] listener handshake deadlines");
      g_source_attach (self->deadline_source, self->context);
    }

  /* A stopped listener's connections are still closing: its context goes now. */
  destroy_lws (self);
  self->lws = sofia_ws_loop_new_server_context (self->loop, error);
  if (self->lws == NULL)
    return FALSE;

  data = g_new0 (VhostData, 1);
  g_weak_ref_init (&data->listener, self);

  /* lws keeps these pointers for the vhost's life, which may end after the listener's:
   * static or interned strings only. */
  info.vhost_name = "sofia-ws-listener";
  info.iface = iface;
  info.port = self->port;
  if (self->reuse_port)
    {
      guint16 port = 0;

      self->shared_fd = open_shared_socket (self, iface, bind_options, &port);
      if (self->shared_fd < 0)
        {
          int saved = errno;

          g_weak_ref_clear (&data->listener);
          g_free (data);
          destroy_lws (self);
          g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_FAILED,
                       "Could not listen on %s port %u (%s)", self->address, self->port,
                       g_strerror (saved));
          return FALSE;
        }
      info.iface = NULL;
      info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
      self->bound_port = port;
    }
  info.protocols = sofia_ws_loop_protocols;
  info.user = data;
  info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND | bind_options;
  info.retry_and_idle_policy =
    sofia_ws_loop_get_liveness_policy (self->loop, self->ping_interval,
                                       self->ping_interval + self->ping_timeout);
  if (secure)
    {
      /* HTTP/1.1 only: lws offers h2 by default, and browsers then carry WebSockets over
       * HTTP/2 streams (RFC 8441), many on one TCP connection, all with the same address. */
      info.alpn = "http/1.1";
      /* Without it on the vhost too, lws silently listens in plain ws. */
      info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
      info.ssl_cert_filepath = g_intern_string (self->tls_certificate_file);
      info.ssl_private_key_filepath = g_intern_string (self->tls_key_file);
    }

  errno = 0;
  self->vhost = lws_create_vhost (self->lws, &info);
  if (self->vhost == NULL)
    {
      int saved = errno;

      g_weak_ref_clear (&data->listener);
      g_free (data);
      close_shared_socket (self);
      self->bound_port = 0;
      destroy_lws (self);
      g_set_error (error, SOFIA_WS_ERROR, secure ? SOFIA_WS_ERROR_TLS : SOFIA_WS_ERROR_FAILED,
                   "Could not listen on %s port %u%s%s%s", self->address, self->port,
                   saved ? " (" : "", saved ? g_strerror (saved) : "", saved ? ")" : "");
      return FALSE;
    }

  if (self->shared_fd >= 0)
    watch_shared_socket (self);
  else
    self->bound_port = lws_get_vhost_listen_port (self->vhost);
  sofia_ws_loop_kick (self->loop);
  g_debug ("listening on %s://%s:%u%s", secure ? "wss" : "ws", self->address, self->bound_port,
           self->path ? self->path : "/");
  return TRUE;
}

/**
 * sofia_ws_listener_stop:
 * @self: a #SofiaWsListener
 *
 * Stops accepting and closes every connection with 1001 (going away). The port is released
 * once they have closed, two seconds later at the most; handshakes meanwhile get 503.
 */
void
sofia_ws_listener_stop (SofiaWsListener *self)
{
  g_autoptr(GPtrArray) open = NULL;
  GHashTableIter iter;
  gpointer connection;
  g_autoptr(GVariant) options = NULL;

  g_return_if_fail (SOFIA_WS_IS_LISTENER (self));

  if (self->vhost == NULL)
    return;

  options = g_variant_ref_sink (g_variant_new_parsed ("{'code': <@q 1001>, "
                                                      "'reason': <'going away'>}"));
  open = g_ptr_array_new_with_free_func (g_object_unref);
  g_hash_table_iter_init (&iter, self->connections);
  while (g_hash_table_iter_next (&iter, &connection, NULL))
    g_ptr_array_add (open, g_object_ref (connection));
  self->vhost = NULL;
  self->bound_port = 0;
  close_shared_socket (self);
  for (guint i = 0; i < open->len; i++)
    sofia_ws_transport_disconnect_async (open->pdata[i], options, NULL, NULL, NULL);

  if (g_hash_table_size (self->connections) == 0)
    destroy_lws (self);
  else
    {
      self->grace_source = g_timeout_source_new_seconds (2);
      g_source_set_callback (self->grace_source, on_grace_over, self, NULL);
      g_source_set_static_name (self->grace_source, "[sofia-ws] listener stop grace");
      g_source_attach (self->grace_source, self->context);
    }
}

/**
 * sofia_ws_listener_stop_async:
 * @self: a #SofiaWsListener
 * @cancellable: (nullable): a #GCancellable, or %NULL; cancelling only stops the wait
 * @callback: (scope async): called once the port is released
 * @user_data: data for @callback
 *
 * As [method@SofiaWs.Listener.stop], and completes once the connections are closed and the
 * port is released, so that it can be bound again (by this listener or another).
 */
void
sofia_ws_listener_stop_async (SofiaWsListener     *self,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (SOFIA_WS_IS_LISTENER (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, sofia_ws_listener_stop_async);
  if (self->lws == NULL)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }
  /* Waiting before stopping: the teardown may start at once and takes the waiters along. */
  g_ptr_array_add (self->stop_waiters, g_steal_pointer (&task));
  sofia_ws_listener_stop (self);
}

/**
 * sofia_ws_listener_stop_finish:
 * @self: a #SofiaWsListener
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@SofiaWs.Listener.stop_async].
 *
 * Returns: %TRUE once the port is released
 */
gboolean
sofia_ws_listener_stop_finish (SofiaWsListener  *self,
                               GAsyncResult     *result,
                               GError          **error)
{
  g_return_val_if_fail (SOFIA_WS_IS_LISTENER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == sofia_ws_listener_stop_async,
                        FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * sofia_ws_listener_get_port:
 * @self: a #SofiaWsListener
 *
 * Returns: the port the listener is bound to, or 0 when it is not listening
 */
guint16
sofia_ws_listener_get_port (SofiaWsListener *self)
{
  g_return_val_if_fail (SOFIA_WS_IS_LISTENER (self), 0);
  return self->bound_port;
}

/**
 * sofia_ws_listener_get_is_secure:
 * @self: a #SofiaWsListener
 *
 * Returns: whether the listener serves wss (a certificate and key are set)
 */
gboolean
sofia_ws_listener_get_is_secure (SofiaWsListener *self)
{
  g_return_val_if_fail (SOFIA_WS_IS_LISTENER (self), FALSE);
  return self->tls_certificate_file != NULL;
}

/**
 * sofia_ws_listener_get_n_connections:
 * @self: a #SofiaWsListener
 *
 * Returns: how many accepted connections are open
 */
guint
sofia_ws_listener_get_n_connections (SofiaWsListener *self)
{
  g_return_val_if_fail (SOFIA_WS_IS_LISTENER (self), 0);
  return g_hash_table_size (self->connections);
}

/* ---- GObject -------------------------------------------------------------------------- */

static void
sofia_ws_listener_dispose (GObject *object)
{
  SofiaWsListener *self = SOFIA_WS_LISTENER (object);

  GHashTableIter iter;
  gpointer connection, peer;

  sofia_ws_listener_stop (self);
  destroy_lws (self);
  g_hash_table_iter_init (&iter, self->connections);
  while (g_hash_table_iter_next (&iter, &connection, &peer))
    {
      sofia_ws_websocket_forget_listener (connection);
      peer_free (self, peer);
    }
  g_hash_table_remove_all (self->connections);
  forget_handshakes (self);
  if (self->deadline_source != NULL)
    {
      g_source_destroy (self->deadline_source);
      g_clear_pointer (&self->deadline_source, g_source_unref);
    }
  if (self->loop != NULL)
    g_clear_pointer (&self->loop, sofia_ws_loop_unref);

  G_OBJECT_CLASS (sofia_ws_listener_parent_class)->dispose (object);
}

static void
sofia_ws_listener_finalize (GObject *object)
{
  SofiaWsListener *self = SOFIA_WS_LISTENER (object);

  g_hash_table_unref (self->connections);
  g_hash_table_unref (self->handshaking);
  g_hash_table_unref (self->per_address);
  g_ptr_array_unref (self->stop_waiters);
  g_free (self->address);
  g_free (self->path);
  g_free (self->tls_certificate_file);
  g_free (self->tls_key_file);
  g_strfreev (self->allowed_origins);
  g_main_context_unref (self->context);

  G_OBJECT_CLASS (sofia_ws_listener_parent_class)->finalize (object);
}

static void
sofia_ws_listener_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  SofiaWsListener *self = SOFIA_WS_LISTENER (object);

  switch (prop_id)
    {
    case PROP_ADDRESS: g_value_set_string (value, self->address); break;
    case PROP_PORT: g_value_set_uint (value, self->bound_port ? self->bound_port : self->port); break;
    case PROP_PATH: g_value_set_string (value, self->path); break;
    case PROP_TLS_CERTIFICATE_FILE: g_value_set_string (value, self->tls_certificate_file); break;
    case PROP_TLS_KEY_FILE: g_value_set_string (value, self->tls_key_file); break;
    case PROP_ALLOWED_ORIGINS: g_value_set_boxed (value, self->allowed_origins); break;
    case PROP_MAX_CONNECTIONS: g_value_set_uint (value, self->max_connections); break;
    case PROP_MAX_CONNECTIONS_PER_ADDRESS:
      g_value_set_uint (value, self->max_connections_per_address);
      break;
    case PROP_MAX_PARTIAL_BYTES: g_value_set_uint (value, self->max_partial_bytes); break;
    case PROP_HANDSHAKE_TIMEOUT: g_value_set_uint (value, self->handshake_timeout); break;
    case PROP_MAX_MESSAGE_SIZE: g_value_set_uint (value, self->max_message_size); break;
    case PROP_PING_INTERVAL: g_value_set_uint (value, self->ping_interval); break;
    case PROP_PING_TIMEOUT: g_value_set_uint (value, self->ping_timeout); break;
    case PROP_TRACE_SIP: g_value_set_boolean (value, self->trace_sip); break;
    case PROP_REUSE_PORT: g_value_set_boolean (value, self->reuse_port); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
sofia_ws_listener_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  SofiaWsListener *self = SOFIA_WS_LISTENER (object);

  switch (prop_id)
    {
    case PROP_ADDRESS:
      g_free (self->address);
      self->address = g_value_dup_string (value);
      break;
    case PROP_PORT: self->port = g_value_get_uint (value); break;
    case PROP_PATH:
      g_free (self->path);
      self->path = g_value_dup_string (value);
      break;
    case PROP_TLS_CERTIFICATE_FILE:
      g_free (self->tls_certificate_file);
      self->tls_certificate_file = g_value_dup_string (value);
      break;
    case PROP_TLS_KEY_FILE:
      g_free (self->tls_key_file);
      self->tls_key_file = g_value_dup_string (value);
      break;
    case PROP_ALLOWED_ORIGINS:
      g_strfreev (self->allowed_origins);
      self->allowed_origins = g_value_dup_boxed (value);
      break;
    case PROP_MAX_CONNECTIONS: self->max_connections = g_value_get_uint (value); break;
    case PROP_MAX_CONNECTIONS_PER_ADDRESS:
      self->max_connections_per_address = g_value_get_uint (value);
      break;
    case PROP_MAX_PARTIAL_BYTES: self->max_partial_bytes = g_value_get_uint (value); break;
    case PROP_HANDSHAKE_TIMEOUT:
      /* Construct-time or before start: the deadline queue relies on one timeout. */
      if (self->deadlines.length == 0)
        self->handshake_timeout = g_value_get_uint (value);
      else
        g_warning ("SofiaWsListener:handshake-timeout cannot change while handshakes wait");
      break;
    case PROP_MAX_MESSAGE_SIZE: self->max_message_size = g_value_get_uint (value); break;
    case PROP_PING_INTERVAL: self->ping_interval = g_value_get_uint (value); break;
    case PROP_PING_TIMEOUT: self->ping_timeout = g_value_get_uint (value); break;
    case PROP_TRACE_SIP: self->trace_sip = g_value_get_boolean (value); break;
    case PROP_REUSE_PORT: self->reuse_port = g_value_get_boolean (value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
sofia_ws_listener_class_init (SofiaWsListenerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS;

  object_class->dispose = sofia_ws_listener_dispose;
  object_class->finalize = sofia_ws_listener_finalize;
  object_class->get_property = sofia_ws_listener_get_property;
  object_class->set_property = sofia_ws_listener_set_property;

  /**
   * SofiaWsListener:address:
   *
   * The address to listen on: an IPv4 or IPv6 address, which is bound exactly (an IPv4
   * address gets an IPv4 socket, an IPv6 address an IPv6-only one), or a host name, whose
   * first resolved address is bound. "0.0.0.0" listens on every IPv4 address, "::" on every
   * IPv6 address, and "*" (or %NULL) on every address of both families; there, IPv4 peers
   * are still reported with their IPv4 addresses.
   */
  properties[PROP_ADDRESS] = g_param_spec_string ("address", NULL, NULL, "127.0.0.1", rw);

  /**
   * SofiaWsListener:port:
   *
   * The TCP port; 0 lets the system choose. Once started, the bound port.
   */
  properties[PROP_PORT] = g_param_spec_uint ("port", NULL, NULL, 0, 65535, 0, rw);

  /**
   * SofiaWsListener:path:
   *
   * The HTTP path clients must ask for, such as "/ws"; %NULL accepts any.
   */
  properties[PROP_PATH] = g_param_spec_string ("path", NULL, NULL, NULL, rw);

  /**
   * SofiaWsListener:tls-certificate-file:
   *
   * A PEM certificate (chain): with [property@SofiaWs.Listener:tls-key-file], the listener
   * serves wss.
   */
  properties[PROP_TLS_CERTIFICATE_FILE] =
    g_param_spec_string ("tls-certificate-file", NULL, NULL, NULL, rw);

  /**
   * SofiaWsListener:tls-key-file:
   *
   * The PEM private key of [property@SofiaWs.Listener:tls-certificate-file].
   */
  properties[PROP_TLS_KEY_FILE] = g_param_spec_string ("tls-key-file", NULL, NULL, NULL, rw);

  /**
   * SofiaWsListener:allowed-origins:
   *
   * The Origin values accepted in the handshake, such as "https://app.example.com"; empty or
   * %NULL accepts any, and handshakes without an Origin (non-browser clients).
   */
  properties[PROP_ALLOWED_ORIGINS] =
    g_param_spec_boxed ("allowed-origins", NULL, NULL, G_TYPE_STRV, rw);

  /* The defaults are for a server on the internet, where the limits are what stands between
   * a few abusive clients and everybody else: a registrar's connections are each a registered
   * browser tab, 10,000 of them use ~100 MiB (lws, Sofia and the connection each) and stay
   * below the usual hard limit of open files; 256 from one address leave room for an office
   * behind one NAT but not for one host to take them all; 64 MiB of partial messages is 512
   * clients each halfway through a 128 KiB message, far more than SIP ever sends at once
   * (fragmented SIP is rare, and messages of kilobytes); and a WebSocket handshake takes a
   * few round trips, so 10 s covers TLS over slow mobile links. */

  /**
   * SofiaWsListener:max-connections:
   *
   * How many connections may be open at once, counted from the TCP accept (handshakes
   * included); more are closed as soon as they are accepted. 0 for no limit.
   */
  properties[PROP_MAX_CONNECTIONS] =
    g_param_spec_uint ("max-connections", NULL, NULL, 0, G_MAXUINT, 10000, rw);

  /**
   * SofiaWsListener:max-connections-per-address:
   *
   * How many connections one peer may have open at once, counted from the TCP accept, per
   * IPv4 address or IPv6 /64 prefix; more are closed as soon as they are accepted. 0 for no
   * limit.
   */
  properties[PROP_MAX_CONNECTIONS_PER_ADDRESS] =
    g_param_spec_uint ("max-connections-per-address", NULL, NULL, 0, G_MAXUINT, 256, rw);

  /**
   * SofiaWsListener:max-partial-bytes:
   *
   * How many bytes of messages received only in part (fragmented, or larger than one read)
   * all connections may hold together. The connection whose data would go beyond it is
   * closed with 1009 and its part dropped. 0 for no limit (each connection is still bound
   * by [property@SofiaWs.Listener:max-message-size]).
   */
  properties[PROP_MAX_PARTIAL_BYTES] =
    g_param_spec_uint ("max-partial-bytes", NULL, NULL, 0, G_MAXUINT, 64 * 1024 * 1024, rw);

  /**
   * SofiaWsListener:handshake-timeout:
   *
   * Seconds a new connection has to complete its TLS and WebSocket handshakes, from the TCP
   * accept; then it is closed. 0 for no limit. Set it before starting the listener.
   */
  properties[PROP_HANDSHAKE_TIMEOUT] =
    g_param_spec_uint ("handshake-timeout", NULL, NULL, 0, G_MAXUINT16, 10, rw);

  /**
   * SofiaWsListener:max-message-size:
   *
   * The largest message accepted on a connection, in bytes (see
   * [property@SofiaWs.WebSocket:max-message-size]).
   */
  properties[PROP_MAX_MESSAGE_SIZE] =
    g_param_spec_uint ("max-message-size", NULL, NULL, 1, G_MAXINT, 128 * 1024, rw);

  /**
   * SofiaWsListener:ping-interval:
   *
   * Seconds without a PONG after which each connection is sent a WebSocket PING (JsSIP
   * sends no keepalives of its own); 0, the default, sends none.
   */
  properties[PROP_PING_INTERVAL] =
    g_param_spec_uint ("ping-interval", NULL, NULL, 0, G_MAXUINT16, 0, rw);

  /**
   * SofiaWsListener:ping-timeout:
   *
   * Seconds after a PING without its PONG before a connection is dropped as dead.
   */
  properties[PROP_PING_TIMEOUT] =
    g_param_spec_uint ("ping-timeout", NULL, NULL, 1, G_MAXUINT16, 10, rw);

  /**
   * SofiaWsListener:trace-sip:
   *
   * Log every message of every connection with g_debug().
   */
  properties[PROP_TRACE_SIP] = g_param_spec_boolean ("trace-sip", NULL, NULL, FALSE, rw);

  /**
   * SofiaWsListener:reuse-port:
   *
   * Share the port with other listeners that set it too (`SO_REUSEPORT`): several
   * listeners, each in its own process or thread with its own main context, bind the same
   * address and port, and the kernel spreads the new connections over them. This is how a
   * server uses more than one core. Every socket on the port must set it (one that does not
   * makes the others fail with "Address already in use"), and all must belong to the same
   * user. With port 0, start one listener, read its port with
   * [method@SofiaWs.Listener.get_port], and give that port to the others. Set it before
   * starting the listener; Linux only.
   */
  properties[PROP_REUSE_PORT] = g_param_spec_boolean ("reuse-port", NULL, NULL, FALSE, rw);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * SofiaWsListener::accepted:
   * @self: the listener
   * @connection: the server side of the new connection, already CONNECTED
   *
   * Emitted for every connection accepted.
   */
  signals[SIGNAL_ACCEPTED] =
    g_signal_new ("accepted", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, SOFIA_WS_TYPE_WEBSOCKET);
}

static void
sofia_ws_listener_init (SofiaWsListener *self)
{
  self->context = g_main_context_ref_thread_default ();
  self->shared_fd = -1;
  self->connections = g_hash_table_new_full (NULL, NULL, g_object_unref, NULL);
  self->handshaking = g_hash_table_new (NULL, NULL);
  self->per_address = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->stop_waiters = g_ptr_array_new_with_free_func (g_object_unref);
}
