/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tport-ws.so: the ws and wss transports of Sofia-SIP's tport, on sofia-ws's WebSocket backend.
 *
 * Each WS primary is a SofiaWsListener; each connection it accepts is a tport secondary that
 * wraps the SofiaWsWebSocket of that connection. libwebsockets owns every file descriptor, so
 * the tports carry INVALID_SOCKET and tp_index -1 (see ../shared/notes/sofia-tport-internals.md):
 * tport never registers, shuts down or closes a socket of ours, yet thinks the secondaries are
 * registered and clear to send, so responses and requests reuse the connection a client came in
 * on. Receiving, a whole WebSocket message is one SIP message (msg_recv_commit with eos=1, so a
 * missing Content-Length means "the rest is the body", RFC 7118 section 5); sending, the
 * iovecs of one SIP message become one WebSocket message.
 *
 * Why the primaries are not in the master's list of primaries: NTA resolves host names by
 * walking that list and asserts that every primary's protocol is one its DNS table knows (udp,
 * tcp, tls, sctp): a ws primary there aborts the process on the first request to a host name
 * (nta.c, outgoing_resolve). Kept out of the list, a WS primary cannot be reached by any
 * resolution, so no request can abort. NTA still handles everything that arrives on a WS
 * connection: the primary's tp_magic is its own Via ("SIP/2.0/WS host:port"), which NTA uses
 * to check incoming Vias and to stamp requests sent over the connection, and responses go back
 * over the transaction's tport, the connection itself. Requests towards a WS client go over its
 * connection with NTATAG_TPORT(). Because the master does not know these primaries, the module
 * destroys them itself, from a destructor on the master's memory home, which tport_destroy()
 * (nta_agent_destroy()) runs before it frees anything.
 */
#define _GNU_SOURCE 1

#include "tport-ws-abi.h"
#include "sofia-ws-sink-private.h"
#include "sofia-ws-tport-private.h"
#include "tport-ws-root.h"
#include "tport-ws-flows.h"
#include "tport-ws-hook.h"
#include "tport-ws-preload.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <sofia-sip/hostdomain.h>
#include <sofia-sip/msg.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/rbtree.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

/* The module's own log, with Sofia's levels (0-9), set with TPORT_WS_DEBUG like TPORT_DEBUG. */
su_log_t tport_ws_log[] = { SU_LOG_INIT ("tport_ws", "TPORT_WS_DEBUG", 3) };
#define SU_LOG tport_ws_log
#include <sofia-sip/su_debug.h>

/* NTA's log (exported by libsofia-sip-ua, declared in no header). */
extern su_log_t nta_log[];

typedef struct _WsPrimary WsPrimary;
typedef struct _WsLink WsLink;

struct _WsPrimary {
  tport_primary_t base;           /* first: tport allocates and reads it as a tport_primary_t */
  gboolean secure;
  SofiaWsListener *listener;
  GMainContext *context;
  TportWsRootBridge *bridge;      /* when the root is not GLib-based */
  sip_via_t *via;                 /* tp_magic: what NTA stamps and checks on this transport */

  /* A client primary (sofia_ws_tport_add_client()): how it connects. */
  gboolean client;
  char *path;
  char *ca_file;
  gboolean tls_verify;
  char *origin;
  guint connect_timeout;
  guint keepalive;
  guint keepalive_timeout;
  guint crlf_keepalive;
  guint reconnect;
  guint max_message_size;

  /* Both: the send queue's bounds (WSTAG_SEND_QUEUE_BYTES(), WSTAG_SEND_TIMEOUT()). */
  guint send_queue_bytes;
  guint send_timeout;
};

/* Outlives the secondary when callbacks are still pending: a send completing after the tport
 * was destroyed finds tport == NULL. */
struct _WsLink {
  tport_t *tport;
};

typedef struct {
  tport_t base;                   /* first: tport allocates and reads it as a tport_t */
  SofiaWsWebSocket *websocket;
  WsLink *link;
  const char *rx;                 /* the message being handed to vtp_recv, during on_message */
  gsize rx_len;
  gboolean closing;
  GQueue pending;                 /* outgoing: messages sent before the handshake completed */
  guint drops;                    /* outgoing: disconnections since it was last connected */
  gboolean by_name;               /* outgoing to a host name: the WebSocket resolves it, and
                                   * the address is known once connected (take_address()) */
} WsSecondary;

/* Messages a connecting client connection holds before it refuses more (ENOBUFS). */
#define MAX_PENDING 64

G_STATIC_ASSERT (offsetof (WsPrimary, base) == 0);
G_STATIC_ASSERT (offsetof (WsSecondary, base) == 0);

/* ---- the red-black tree of open secondaries, ordered as tport.c orders it --------------- */

#define WS_LEFT(tp) ((tp)->tp_left)
#define WS_RIGHT(tp) ((tp)->tp_right)
#define WS_PARENT(tp) ((tp)->tp_dad)
#define WS_SET_RED(tp) ((tp)->tp_black = 0)
#define WS_SET_BLACK(tp) ((tp)->tp_black = 1)
#define WS_IS_RED(tp) ((tp) && (tp)->tp_black == 0)
#define WS_IS_BLACK(tp) (!(tp) || (tp)->tp_black == 1)
#define WS_COPY_COLOR(dst, src) ((dst)->tp_black = (src)->tp_black)
#define WS_INSERT(tp) ((void) 0)
#define WS_REMOVE(tp) ((tp)->tp_left = (tp)->tp_right = (tp)->tp_dad = NULL)

/* The same order as libsofia-sip-ua's: address length, then the address bytes. */
static inline int
ws_tport_cmp (tport_t const *a,
              tport_t const *b)
{
  if (a == b)
    return 0;
  if (a->tp_addrinfo->ai_addrlen != b->tp_addrinfo->ai_addrlen)
    return (int) (a->tp_addrinfo->ai_addrlen - b->tp_addrinfo->ai_addrlen);
  return memcmp (a->tp_addr, b->tp_addr, a->tp_addrinfo->ai_addrlen);
}

RBTREE_PROTOS (static inline G_GNUC_UNUSED, ws_tprb, tport_t);
RBTREE_BODIES (static inline G_GNUC_UNUSED, ws_tprb, tport_t,
               WS_LEFT, WS_RIGHT, WS_PARENT,
               WS_IS_RED, WS_SET_RED, WS_IS_BLACK, WS_SET_BLACK, WS_COPY_COLOR,
               ws_tport_cmp, WS_INSERT, WS_REMOVE);

/* ---- the vtables ------------------------------------------------------------------------ */

static int ws_init_primary (tport_primary_t *pri, tp_name_t tpn[1], su_addrinfo_t *ai,
                            tagi_t const *tags, char const **return_culprit);
static void ws_deinit_primary (tport_primary_t *pri);
static tport_t *ws_connect (tport_primary_t *pri, su_addrinfo_t *ai, tp_name_t const *tpn);
static int ws_init_secondary (tport_t *self, int socket, int accepted, char const **return_reason);
static void ws_deinit_secondary (tport_t *self);
static void ws_shutdown (tport_t *self, int how);
static int ws_set_events (tport_t const *self);
static int ws_recv (tport_t *self);
static ssize_t ws_send (tport_t const *self, msg_t *msg, msg_iovec_t iov[], size_t iovused);
static void ws_deliver (tport_t *self, msg_t *msg, su_time_t now);

#define WS_VTABLE(name)                                 \
  {                                                     \
    .vtp_name = name,                                   \
    .vtp_public = tport_type_local,                     \
    .vtp_pri_size = sizeof (WsPrimary),                 \
    .vtp_init_primary = ws_init_primary,                \
    .vtp_deinit_primary = ws_deinit_primary,            \
    .vtp_connect = ws_connect,                          \
    .vtp_secondary_size = sizeof (WsSecondary),         \
    .vtp_init_secondary = ws_init_secondary,            \
    .vtp_deinit_secondary = ws_deinit_secondary,        \
    .vtp_shutdown = ws_shutdown,                        \
    .vtp_set_events = ws_set_events,                    \
    .vtp_recv = ws_recv,                                \
    .vtp_send = ws_send,                                \
    .vtp_deliver = ws_deliver,                          \
  }

/* Never unloaded (-z nodelete) and never unregistered: tport keeps pointers to these. */
static const tport_vtable_t ws_vtable = WS_VTABLE ("WS");
static const tport_vtable_t wss_vtable = WS_VTABLE ("WSS");

static gboolean
is_ws_primary (tport_primary_t const *pri)
{
  return pri != NULL && (pri->pri_vtable == &ws_vtable || pri->pri_vtable == &wss_vtable);
}

/* Whether @tport is a listener or connection of this module (tport-ws-preload.h). */
gboolean
tport_ws_is_ws (tport_t const *tport)
{
  return tport != NULL && tport->tp_pri != NULL && is_ws_primary (tport->tp_pri);
}

/* ---- errors ------------------------------------------------------------------------------ */

static tport_t *
fail (GError    **error,
      int         code,
      const char *format,
      ...) G_GNUC_PRINTF (3, 4);

static tport_t *
fail (GError    **error,
      int         code,
      const char *format,
      ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  SU_DEBUG_3 (("tport_ws: %s\n", message));
  g_set_error_literal (error, SOFIA_WS_ERROR, code, message);
  return NULL;
}

/* ---- secondaries: one per WebSocket connection ------------------------------------------- */

/* Asynchronous work that a bridged root waits for before it lets the bridge go. */
static void
on_bridged_work_done (GObject      *source,
                      GAsyncResult *result,
                      gpointer      bridge)
{
  if (SOFIA_WS_IS_LISTENER (source))
    sofia_ws_listener_stop_finish (SOFIA_WS_LISTENER (source), result, NULL);
  else
    sofia_ws_transport_disconnect_finish (SOFIA_WS_TRANSPORT (source), result, NULL);
  tport_ws_root_bridge_done (bridge);
}

static void
link_unref (WsLink *link)
{
  g_rc_box_release (link);
}

static int
ws_init_secondary (tport_t    *self,
                   int         socket,
                   int         accepted,
                   char const **return_reason)
{
  WsSecondary *sec = (WsSecondary *) self;

  self->tp_has_connection = 1;
  self->tp_conn_orient = 1;
  self->tp_index = -1;            /* "registered": clear to send; su_root never sees it */
  self->tp_events = SU_WAIT_IN;
  sec->link = g_rc_box_new0 (WsLink);
  sec->link->tport = self;
  return 0;
}

static void
ws_deinit_secondary (tport_t *self)
{
  WsSecondary *sec = (WsSecondary *) self;

  SU_DEBUG_7 (("tport_ws(%p): connection freed\n", (void *) self));
  tport_ws_flows_closed (self);
  g_queue_clear_full (&sec->pending, g_free);
  if (sec->link != NULL)
    {
      sec->link->tport = NULL;
      g_clear_pointer (&sec->link, link_unref);
    }
  if (sec->websocket != NULL)
    {
      TportWsRootBridge *bridge = ((WsPrimary *) self->tp_pri)->bridge;
      SofiaWsTransportState state =
        sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (sec->websocket));

      g_signal_handlers_disconnect_by_data (sec->websocket, sec);
      _sofia_ws_websocket_set_message_sink (SOFIA_WS_WEBSOCKET (sec->websocket), NULL, NULL);
      _sofia_ws_websocket_set_activity_sink (SOFIA_WS_WEBSOCKET (sec->websocket), NULL, NULL);
      if (state == SOFIA_WS_TRANSPORT_STATE_CONNECTED ||
          state == SOFIA_WS_TRANSPORT_STATE_CONNECTING)
        {
          GMainContext *context = ((WsPrimary *) self->tp_pri)->context;

          if (bridge != NULL)
            tport_ws_root_bridge_hold (bridge);
          g_main_context_push_thread_default (context);
          sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (sec->websocket), NULL,
                                               NULL, bridge ? on_bridged_work_done : NULL,
                                               bridge);
          g_main_context_pop_thread_default (context);
        }
      g_clear_object (&sec->websocket);
    }
}

/* tport closes a connection (idle timer, NTA's close-after, agent shutdown): the WebSocket
 * gets a close frame with code 1000, never a bare TCP close. */
static void
ws_shutdown (tport_t *self,
             int      how)
{
  WsSecondary *sec = (WsSecondary *) self;

  if (how < 1 || sec->closing || sec->websocket == NULL || tport_ws_abi_is_primary (self))
    return;
  tport_ws_flows_closed (self);
  sec->closing = TRUE;
  if (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (sec->websocket)) ==
      SOFIA_WS_TRANSPORT_STATE_CONNECTED)
    {
      GMainContext *context = ((WsPrimary *) self->tp_pri)->context;

      SU_DEBUG_5 (("tport_ws(%p): closing " TPN_FORMAT "\n", (void *) self,
                   TPN_ARGS (self->tp_name)));
      g_main_context_push_thread_default (context);
      sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (sec->websocket), NULL, NULL,
                                           NULL, NULL);
      g_main_context_pop_thread_default (context);
    }
}

static int
ws_set_events (tport_t const *self)
{
  return 0;
}

static int
ws_recv (tport_t *self)
{
  WsSecondary *sec = (WsSecondary *) self;
  msg_iovec_t iovec[msg_n_fragments] = { { 0 } };
  const char *data = sec->rx;
  gsize len = sec->rx_len;
  ssize_t veclen;
  gsize offset = 0;
  msg_t *msg;

  sec->rx = NULL;
  if (data == NULL || len == 0)
    return 1;

  /* Every WebSocket message stands alone: nothing half-parsed carries over. */
  if (self->tp_msg != NULL)
    {
      msg_destroy (self->tp_msg);
      self->tp_msg = NULL;
    }

  veclen = tport_recv_iovec (self, &self->tp_msg, iovec, len, 1);
  if (veclen < 0)
    return -1;
  msg = self->tp_msg;
  msg_set_address (msg, self->tp_addr, (socklen_t) self->tp_addrinfo->ai_addrlen);

  for (ssize_t i = 0; i < veclen && offset < len; i++)
    {
      gsize n = MIN ((gsize) iovec[i].mv_len, len - offset);

      memcpy (iovec[i].mv_base, data + offset, n);
      offset += n;
    }

  if (self->tp_master->mr_dump_file != NULL)
    tport_dump_iovec (self, msg, len, (su_iovec_t const *) iovec, veclen, "recv", "from");
  tport_recv_bytes (self, len, len);
  /* eos = 1: the message ends here, whatever Content-Length says or does not say. */
  msg_recv_commit (msg, len, 1);
  return 1;                       /* 0 would mean end of stream */
}

typedef struct {
  WsLink *link;
  char *text;                     /* kept for an outgoing connection that may reconnect */
} Sending;

static void
on_send_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Sending *sending = user_data;
  WsLink *link = sending->link;
  g_autoptr(GError) error = NULL;

  if (!sofia_ws_transport_send_finish (SOFIA_WS_TRANSPORT (source), result, &error) &&
      link->tport != NULL)
    {
      tport_t *self = link->tport;
      WsSecondary *sec = (WsSecondary *) self;

      if (sending->text != NULL && sec->drops > 0 && !tport_is_closed (self) &&
          g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED))
        {
          /* Cut off by the drop: it goes out again on the next connection. */
          g_queue_push_tail (&sec->pending, g_steal_pointer (&sending->text));
        }
      else
        {
          SU_DEBUG_3 (("tport_ws(%p): send to " TPN_FORMAT " failed: %s\n", (void *) self,
                       TPN_ARGS (self->tp_name), error->message));
          self->tp_stats.sent_errors++;
          tport_error_report (self, g_error_matches (error, SOFIA_WS_ERROR,
                                                     SOFIA_WS_ERROR_QUEUE_FULL) ? ENOBUFS : EPIPE,
                              NULL);
        }
    }
  link_unref (link);
  g_free (sending->text);
  g_free (sending);
}

/* Sends @text over @sec's WebSocket; completion on the context the connection lives on. */
static void
send_text (WsSecondary *sec,
           const char  *text)
{
  tport_t *self = (tport_t *) sec;
  WsPrimary *pri = (WsPrimary *) self->tp_pri;
  Sending *sending = g_new0 (Sending, 1);

  sending->link = g_rc_box_acquire (sec->link);
  if (pri->client && pri->reconnect > 0)
    sending->text = g_strdup (text);
  g_main_context_push_thread_default (pri->context);
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (sec->websocket), text, NULL, NULL,
                                 on_send_done, sending);
  g_main_context_pop_thread_default (pri->context);
}

static ssize_t
ws_send (tport_t const *self,
         msg_t         *msg,
         msg_iovec_t    iov[],
         size_t         iovused)
{
  WsSecondary *sec = (WsSecondary *) self;
  SofiaWsTransportState state;
  size_t total = 0;

  state = sec->websocket != NULL ? sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (sec->websocket))
                                 : SOFIA_WS_TRANSPORT_STATE_DISCONNECTED;
  /* An outgoing connection between reconnection attempts: as good as connecting. */
  if (sec->drops > 0 && state == SOFIA_WS_TRANSPORT_STATE_DISCONNECTED)
    state = SOFIA_WS_TRANSPORT_STATE_CONNECTING;
  if (sec->closing || (state != SOFIA_WS_TRANSPORT_STATE_CONNECTED &&
                       state != SOFIA_WS_TRANSPORT_STATE_CONNECTING))
    {
      su_seterrno (EPIPE);
      return -1;
    }

  for (size_t i = 0; i < iovused; i++)
    total += iov[i].mv_len;

  if (state == SOFIA_WS_TRANSPORT_STATE_CONNECTING ||
      (((WsPrimary *) self->tp_pri)->client && ((WsPrimary *) self->tp_pri)->reconnect > 0))
    {
      g_autoptr(GString) text = g_string_sized_new (total);

      /* These wait as strings, which a NUL byte would cut short. A binary message goes out
       * (as a binary frame) on the direct path below only. */
      for (size_t i = 0; i < iovused; i++)
        if (memchr (iov[i].mv_base, '\0', iov[i].mv_len) != NULL)
          {
            SU_DEBUG_3 (("tport_ws(%p): cannot queue a message with a NUL byte for "
                         TPN_FORMAT " while it connects\n", (void *) self,
                         TPN_ARGS (self->tp_name)));
            su_seterrno (EINVAL);
            return -1;
          }

      for (size_t i = 0; i < iovused; i++)
        g_string_append_len (text, iov[i].mv_base, iov[i].mv_len);

      if (state == SOFIA_WS_TRANSPORT_STATE_CONNECTING)
        {
          /* An outgoing connection still in its handshake: sent once it is up. */
          if (g_queue_get_length (&sec->pending) >= MAX_PENDING)
            {
              su_seterrno (ENOBUFS);
              return -1;
            }
          g_queue_push_tail (&sec->pending, g_string_free (g_steal_pointer (&text), FALSE));
          return (ssize_t) total;
        }
      /* A connection that reconnects: its send completes later, and a message cut off by a
       * drop goes out again on the next connection. */
      send_text (sec, text->str);
      return (ssize_t) total;
    }
  else
    {
      /* Everything else is written now or queued behind what is, in one copy, with no
       * completion to wait for: a failure later is the connection's end, reported by it. */
      g_autoptr(GError) error = NULL;
      g_autofree GOutputVector *heap = NULL;
      GOutputVector on_stack[16];
      GOutputVector *vectors = on_stack;

      if (iovused > G_N_ELEMENTS (on_stack))
        vectors = heap = g_new (GOutputVector, iovused);
      for (size_t i = 0; i < iovused; i++)
        {
          vectors[i].buffer = iov[i].mv_base;
          vectors[i].size = iov[i].mv_len;
        }
      if (!sofia_ws_websocket_send_vectors (SOFIA_WS_WEBSOCKET (sec->websocket), vectors,
                                            iovused, &error))
        {
          SU_DEBUG_3 (("tport_ws(%p): send to " TPN_FORMAT " failed: %s\n", (void *) self,
                       TPN_ARGS (self->tp_name), error->message));
          su_seterrno (g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_QUEUE_FULL)
                       ? ENOBUFS : EPIPE);
          return -1;
        }
      return (ssize_t) total;     /* taken whole: tport's own queue stays empty */
    }
}

/* NTA drops a request whose top Via protocol is not, to the byte, its transport's ("Via check:
 * invalid transport", nta.c). Browsers write "SIP/2.0/WS" in any case, and over wss some
 * (JsSIP) write WS where SIP.js writes WSS: a WS or WSS Via, in any case, is taken as ours
 * before NTA sees it (the response's Via then carries ours). Any other is logged here. */
static void
ws_deliver (tport_t  *self,
            msg_t    *msg,
            su_time_t now)
{
  WsPrimary *pri = (WsPrimary *) self->tp_pri;
  sip_t *sip = sip_object (msg);
  const char *protocol;

  if (sip != NULL && sip->sip_via != NULL &&
      (protocol = sip->sip_via->v_protocol) != NULL && pri->via != NULL &&
      strcmp (protocol, pri->via->v_protocol) != 0)
    {
      if (su_casematch (protocol, "SIP/2.0/WS") || su_casematch (protocol, "SIP/2.0/WSS"))
        {
          if (!su_casematch (protocol, pri->via->v_protocol))
            SU_DEBUG_5 (("tport_ws(%p): %s message from " TPN_FORMAT " with a %s Via: taken "
                         "as %s\n", (void *) self, pri->via->v_protocol + 8,
                         TPN_ARGS (self->tp_name), protocol, pri->via->v_protocol));
          sip->sip_via->v_protocol = pri->via->v_protocol;
        }
      else if (sip->sip_request != NULL)
        SU_DEBUG_3 (("tport_ws(%p): request from " TPN_FORMAT " with a %s Via over %s: NTA "
                     "drops it (Via check)\n", (void *) self, TPN_ARGS (self->tp_name), protocol,
                     pri->via->v_protocol + 8));
    }
  if (self->tp_accepted)
    tport_ws_flows_received (self, sip);
  /* A message NTA will answer 400 (it did not parse, or a header did not) is an error. */
  tport_recv_message (self, msg, sip == NULL || msg_has_error (msg) || sip->sip_error != NULL);
  tport_base_deliver (self, msg, now);
}

static void connect_signals (WsSecondary *sec);

static int
errno_of (const GError *error)
{
  if (g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECTION_REFUSED))
    return ECONNREFUSED;
  if (g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECT_TIMEOUT))
    return ETIMEDOUT;
  if (g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_RESOLVE))
    return EHOSTUNREACH;
  if (g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_TLS))
    return EPROTO;
  return ECONNRESET;
}

/* A connection made by name, once connected: its address becomes the one the name resolved
 * to (in place of the unspecified one), re-keyed in the primary's tree of open connections,
 * so that lookups by address (tport_by_name() with a numeric host, NTA's own) find it too and
 * received messages carry the peer's address. */
static void
take_address (WsSecondary *sec)
{
  tport_t *self = (tport_t *) sec;
  const char *remote = sofia_ws_websocket_get_remote_address (sec->websocket);
  su_sockaddr_t su[1] = { { 0 } };
  su_addrinfo_t ai = { 0 };
  guint16 port = ((su_sockaddr_t *) self->tp_addr)->su_port;

  if (!sec->by_name || remote == NULL || tport_is_closed (self))
    return;
  if (inet_pton (AF_INET, remote, &su->su_sin.sin_addr) == 1)
    {
      su->su_family = AF_INET;
      ai.ai_addrlen = sizeof su->su_sin;
    }
  else if (inet_pton (AF_INET6, remote, &su->su_sin6.sin6_addr) == 1)
    {
      su->su_family = AF_INET6;
      ai.ai_addrlen = sizeof su->su_sin6;
    }
  else
    return;
  su->su_port = port;
  ai.ai_family = su->su_family;
  ai.ai_socktype = SOCK_STREAM;
  ai.ai_protocol = IPPROTO_TCP;
  ai.ai_addr = (void *) su;

  ws_tprb_remove (&self->tp_pri->pri_open, self);
  if (tport_setname (self, self->tp_pri->pri_vtable->vtp_name, &ai, self->tp_name->tpn_canon)
      < 0)
    SU_DEBUG_3 (("tport_ws(%p): cannot name the connection %s\n", (void *) self, remote));
  self->tp_addrinfo->ai_socktype = SOCK_SEQPACKET;
  ws_tprb_append (&self->tp_pri->pri_open, self);
}

static void
on_client_connected (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  WsLink *link = user_data;
  g_autoptr(GError) error = NULL;
  gboolean ok = sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result, &error);
  tport_t *self = link->tport;
  WsSecondary *sec = (WsSecondary *) self;

  if (self == NULL)
    {
      link_unref (link);
      return;
    }

  if (ok)
    {
      char *message;

      take_address (sec);
      SU_DEBUG_5 (("tport_ws(%p): connected to " TPN_FORMAT "\n", (void *) self,
                   TPN_ARGS (self->tp_name)));
      self->tp_is_connected = 1;
      while ((message = g_queue_pop_head (&sec->pending)) != NULL)
        {
          send_text (sec, message);
          g_free (message);
        }
    }
  else
    {
      SU_DEBUG_3 (("tport_ws(%p): cannot connect to " TPN_FORMAT ": %s\n", (void *) self,
                   TPN_ARGS (self->tp_name), error->message));
      g_queue_clear_full (&sec->pending, g_free);
      sec->closing = TRUE;
      tport_ref (self);
      /* NTA fails the requests waiting on this connection (503), then it is closed. */
      tport_error_report (self, errno_of (error), NULL);
      if (!tport_is_closed (self))
        tport_close (self);
      tport_unref (self);
    }
  link_unref (link);
}

/* A new outgoing connection to @ai for @tpn. With @by_name, @ai holds only the port (the
 * unspecified address stands in until connected) and the WebSocket's URL names
 * tpn->tpn_canon, which it resolves itself, asynchronously. */
static tport_t *
ws_connect_full (tport_primary_t    *base,
                 su_addrinfo_t      *ai,
                 tp_name_t const    *tpn,
                 gboolean            by_name)
{
  WsPrimary *pri = (WsPrimary *) base;
  char const *why = "";
  char host[INET6_ADDRSTRLEN] = "";
  su_sockaddr_t const *su = (su_sockaddr_t const *) ai->ai_addr;
  g_autofree char *url = NULL;
  const char *name_host;
  gboolean numeric_canon;
  WsSecondary *sec;
  tport_t *self;
  guint port;

  if (!pri->client)
    {
      /* A listener cannot dial its clients back: their ports are ephemeral. */
      SU_DEBUG_5 (("tport_ws: no connection to " TPN_FORMAT " (ws listeners do not dial out; "
                   "use sofia_ws_tport_add_client())\n", TPN_ARGS (tpn)));
      su_seterrno (ENOTCONN);
      return NULL;
    }

  if (su->su_family == AF_INET)
    inet_ntop (AF_INET, &su->su_sin.sin_addr, host, sizeof host);
  else if (su->su_family == AF_INET6)
    inet_ntop (AF_INET6, &su->su_sin6.sin6_addr, host, sizeof host);
  else
    {
      su_seterrno (EAFNOSUPPORT);
      return NULL;
    }
  port = ntohs (su->su_port);

  self = tport_alloc_secondary (base, INVALID_SOCKET, 0, &why);
  if (self == NULL)
    {
      SU_DEBUG_1 (("tport_ws: cannot make a connection to " TPN_FORMAT ": %s\n",
                   TPN_ARGS (tpn), why));
      su_seterrno (ENOMEM);
      return NULL;
    }
  sec = (WsSecondary *) self;
  if (tport_setname (self, base->pri_vtable->vtp_name, ai, tpn->tpn_canon) < 0)
    {
      tport_zap_secondary (self);
      su_seterrno (EINVAL);
      return NULL;
    }
  self->tp_addrinfo->ai_socktype = SOCK_SEQPACKET;
  sec->by_name = by_name;
  if (by_name)
    /* Named, not addressed, until connected: the placeholder address is nobody's. */
    self->tp_name->tpn_host = su_strdup (self->tp_home, tpn->tpn_canon);

  /* TLS checks the certificate against the name asked for: the canonical name when the
   * request named a host, else the address. A connection by name always has the name. */
  numeric_canon = tpn->tpn_canon == NULL || host_is_ip_address (tpn->tpn_canon);
  name_host = (pri->secure || by_name) && !numeric_canon ? tpn->tpn_canon : host;
  url = g_strdup_printf ("%s://%s%s%s:%u%s", pri->secure ? "wss" : "ws",
                         strchr (name_host, ':') ? "[" : "", name_host,
                         strchr (name_host, ':') ? "]" : "", port,
                         pri->path != NULL ? pri->path : "/");

  g_main_context_push_thread_default (pri->context);
  sec->websocket = g_object_new (SOFIA_WS_TYPE_WEBSOCKET,
                                 "server", url,
                                 "tls-ca-file", pri->ca_file,
                                 "tls-verify", pri->tls_verify,
                                 "origin", pri->origin,
                                 "connection-timeout", MAX (pri->connect_timeout, 1u),
                                 "ping-interval", pri->keepalive,
                                 "ping-timeout", MAX (pri->keepalive_timeout, 1u),
                                 "keepalive-interval", pri->crlf_keepalive,
                                 "reconnection-attempts", pri->reconnect,
                                 "max-message-size", MAX (pri->max_message_size, 1u),
                                 "send-queue-bytes", pri->send_queue_bytes,
                                 "send-timeout", pri->send_timeout,
                                 NULL);
  connect_signals (sec);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (sec->websocket), NULL, NULL,
                                    on_client_connected, g_rc_box_acquire (sec->link));
  g_main_context_pop_thread_default (pri->context);
  if (pri->bridge != NULL)
    tport_ws_root_bridge_start (pri->bridge);

  ws_tprb_append (&base->pri_open, self);
  tport_set_secondary_timer (self);
  SU_DEBUG_5 (("tport_ws(%p): connecting to %s for " TPN_FORMAT "\n", (void *) self, url,
               TPN_ARGS (tpn)));
  return self;
}

/* tport_tsend() found no open connection to the destination on a client primary: dial it
 * (NTA resolved the destination already). */
static tport_t *
ws_connect (tport_primary_t    *base,
            su_addrinfo_t      *ai,
            tp_name_t const    *tpn)
{
  return ws_connect_full (base, ai, tpn, FALSE);
}

/* ---- the WebSocket side of a secondary ---------------------------------------------------- */

/* The connection's message sink: each message's bytes, straight from the backend. */
static void
on_message (SofiaWsWebSocket *websocket,
            const char       *data,
            gsize             len,
            gpointer          user_data)
{
  WsSecondary *sec = user_data;
  tport_t *self = (tport_t *) sec;

  if (tport_is_closed (self))
    return;
  tport_ref (self);
  sec->rx = data;
  sec->rx_len = len;
  tport_recv_event (self);
  sec->rx = NULL;
  tport_unref (self);
}

/* A CRLF keepalive from the peer: activity, as tport's tcp counts it, so that TPTAG_IDLE()
 * closes only connections that are really idle. */
static void
on_activity (SofiaWsWebSocket *websocket,
             gpointer          user_data)
{
  tport_t *self = user_data;

  if (tport_is_closed (self))
    return;
  su_time (&self->tp_rtime);
  tport_set_secondary_timer (self);
}

static void
on_disconnected (SofiaWsTransport *websocket,
                 WsSecondary      *sec)
{
  tport_t *self = (tport_t *) sec;

  gboolean ours = sec->closing;

  SU_DEBUG_5 (("tport_ws(%p): " TPN_FORMAT " disconnected (close code %u)\n", (void *) self,
               TPN_ARGS (self->tp_name),
               sofia_ws_websocket_get_close_code (SOFIA_WS_WEBSOCKET (websocket))));
  /* An outgoing connection that never opened: on_client_connected() reports why. */
  if (!self->tp_accepted && !self->tp_is_connected && sec->drops == 0)
    return;
  /* An outgoing connection the peer dropped, with reconnection attempts left: the tport
   * stays open for the new connection. */
  if (!self->tp_accepted && !ours && !tport_is_closed (self) &&
      ++sec->drops <= ((WsPrimary *) self->tp_pri)->reconnect)
    {
      SU_DEBUG_3 (("tport_ws(%p): lost " TPN_FORMAT ", reconnecting (%u of %u)\n",
                   (void *) self, TPN_ARGS (self->tp_name), sec->drops,
                   ((WsPrimary *) self->tp_pri)->reconnect));
      self->tp_is_connected = 0;
      return;
    }
  sec->closing = TRUE;
  tport_ws_flows_closed (self);
  if (!tport_is_closed (self))
    {
      tport_ref (self);
      /* The peer went away with requests still waiting for their responses over this
       * connection: they fail now (NTA answers them 503) rather than at their timeout. */
      if (!ours && self->tp_pused > 0)
        tport_error_report (self, ECONNRESET, NULL);
      if (!tport_is_closed (self))
        tport_close (self);
      tport_unref (self);
    }
}

static void
on_transport_error (SofiaWsTransport *websocket,
                    const GError     *error,
                    WsSecondary      *sec)
{
  tport_t *self = (tport_t *) sec;

  /* A failed outgoing handshake: on_client_connected() says why. */
  if (!self->tp_accepted && !self->tp_is_connected)
    return;
  if (g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED))
    SU_DEBUG_5 (("tport_ws(%p): " TPN_FORMAT ": %s\n", (void *) self, TPN_ARGS (self->tp_name),
                 error->message));
  else
    SU_DEBUG_3 (("tport_ws(%p): " TPN_FORMAT ": %s\n", (void *) self, TPN_ARGS (self->tp_name),
                 error->message));
  if (g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_MESSAGE))
    self->tp_stats.recv_errors++;
}

/* An outgoing connection back after a drop: what waited goes out. */
static void
on_connected (SofiaWsTransport *websocket,
              WsSecondary      *sec)
{
  tport_t *self = (tport_t *) sec;
  char *message;

  if (self->tp_accepted || sec->drops == 0 || tport_is_closed (self))
    return;
  take_address (sec);             /* a name may resolve to another address this time */
  SU_DEBUG_3 (("tport_ws(%p): reconnected to " TPN_FORMAT "\n", (void *) self,
               TPN_ARGS (self->tp_name)));
  sec->drops = 0;
  self->tp_is_connected = 1;
  while ((message = g_queue_pop_head (&sec->pending)) != NULL)
    {
      send_text (sec, message);
      g_free (message);
    }
}

static void
connect_signals (WsSecondary *sec)
{
  g_signal_connect (sec->websocket, "connected", G_CALLBACK (on_connected), sec);
  /* Not the message signal: a sink takes the bytes with no emission and no copy. */
  _sofia_ws_websocket_set_message_sink (SOFIA_WS_WEBSOCKET (sec->websocket), on_message, sec);
  _sofia_ws_websocket_set_activity_sink (SOFIA_WS_WEBSOCKET (sec->websocket), on_activity, sec);
  g_signal_connect (sec->websocket, "disconnected", G_CALLBACK (on_disconnected), sec);
  g_signal_connect (sec->websocket, "transport-error", G_CALLBACK (on_transport_error), sec);
}

/* "1.2.3.4:5", "[::1]:5" or "[::ffff:1.2.3.4]:5" into a socket address, v4-mapped as v4. */
static gboolean
parse_remote_address (const char     *text,
                      su_sockaddr_t  *su,
                      socklen_t      *len)
{
  g_autofree char *host = NULL;
  const char *colon;
  guint64 port;

  if (text == NULL || (colon = strrchr (text, ':')) == NULL)
    return FALSE;
  if (!g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL))
    return FALSE;
  if (text[0] == '[' && colon > text && colon[-1] == ']')
    host = g_strndup (text + 1, colon - text - 2);
  else
    host = g_strndup (text, colon - text);
  if (g_str_has_prefix (host, "::ffff:") && strchr (host + 7, '.') != NULL)
    memmove (host, host + 7, strlen (host + 7) + 1);

  memset (su, 0, sizeof *su);
  if (inet_pton (AF_INET, host, &su->su_sin.sin_addr) == 1)
    {
      su->su_sin.sin_family = AF_INET;
      su->su_sin.sin_port = htons ((guint16) port);
      *len = sizeof su->su_sin;
      return TRUE;
    }
  if (inet_pton (AF_INET6, host, &su->su_sin6.sin6_addr) == 1)
    {
      su->su_sin6.sin6_family = AF_INET6;
      su->su_sin6.sin6_port = htons ((guint16) port);
      *len = sizeof su->su_sin6;
      return TRUE;
    }
  return FALSE;
}

static void
on_accepted (SofiaWsListener  *listener,
             SofiaWsWebSocket *websocket,
             WsPrimary        *pri)
{
  tport_primary_t *base = &pri->base;
  char const *why = "";
  su_sockaddr_t su;
  socklen_t sulen = 0;
  su_addrinfo_t ai = { 0 };
  WsSecondary *sec;
  tport_t *self;

  if (!parse_remote_address (sofia_ws_websocket_get_remote_address (websocket), &su, &sulen))
    {
      SU_DEBUG_3 (("tport_ws: refusing a connection from an unreadable address \"%s\"\n",
                   sofia_ws_websocket_get_remote_address (websocket)));
      sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (websocket), NULL, NULL, NULL,
                                           NULL);
      return;
    }

  self = tport_alloc_secondary (base, INVALID_SOCKET, 1, &why);
  if (self == NULL)
    {
      SU_DEBUG_1 (("tport_ws: cannot take a connection from %s: %s\n",
                   sofia_ws_websocket_get_remote_address (websocket), why));
      sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (websocket),
                                           g_variant_new_parsed ("{'code': <@q 1011>}"),
                                           NULL, NULL, NULL);
      return;
    }
  sec = (WsSecondary *) self;

  ai.ai_family = su.su_family;
  ai.ai_socktype = SOCK_STREAM;
  ai.ai_protocol = IPPROTO_TCP;
  ai.ai_addr = &su.su_sa;
  ai.ai_addrlen = sulen;
  if (tport_setname (self, base->pri_vtable->vtp_name, &ai, NULL) < 0)
    {
      SU_DEBUG_1 (("tport_ws: cannot name the connection from %s\n",
                   sofia_ws_websocket_get_remote_address (websocket)));
      tport_zap_secondary (self);
      sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (websocket), NULL, NULL, NULL,
                                           NULL);
      return;
    }
  /* Reliable, but framed: a malformed message gets a 400 and the connection stays up. */
  self->tp_addrinfo->ai_socktype = SOCK_SEQPACKET;
  self->tp_is_connected = 1;
  self->tp_verified = pri->secure;

  sec->websocket = g_object_ref (websocket);
  g_object_set (websocket, "send-queue-bytes", pri->send_queue_bytes,
                "send-timeout", pri->send_timeout, NULL);
  connect_signals (sec);

  ws_tprb_append (&base->pri_open, self);
  tport_set_secondary_timer (self);
  tport_ws_flows_accepted (self);

  SU_DEBUG_5 (("tport_ws(%p): accepted " TPN_FORMAT " on %s:%s\n", (void *) self,
               TPN_ARGS (self->tp_name), base->pri_primary->tp_name->tpn_host,
               base->pri_primary->tp_name->tpn_port));
}

/* ---- primaries: one per listener ---------------------------------------------------------- */

static int
ws_init_primary (tport_primary_t *pri,
                 tp_name_t        tpn[1],
                 su_addrinfo_t   *ai,
                 tagi_t const    *tags,
                 char const     **return_culprit)
{
  /* Primaries are made by ws_add_listener(), never through tport_tbind(): nothing to do. */
  *return_culprit = "ws primaries are added with sofia_ws_tport_add_listener()";
  return -1;
}

static void
ws_deinit_primary (tport_primary_t *base)
{
  WsPrimary *pri = (WsPrimary *) base;

  if (pri->listener != NULL)
    {
      g_signal_handlers_disconnect_by_data (pri->listener, pri);
      if (pri->bridge != NULL)
        {
          /* The bridge keeps running the context until the port is released. */
          tport_ws_root_bridge_hold (pri->bridge);
          g_main_context_push_thread_default (pri->context);
          sofia_ws_listener_stop_async (pri->listener, NULL, on_bridged_work_done, pri->bridge);
          g_main_context_pop_thread_default (pri->context);
        }
      else
        sofia_ws_listener_stop (pri->listener);
      g_clear_object (&pri->listener);
    }
  g_clear_pointer (&pri->context, g_main_context_unref);
  g_clear_pointer (&pri->path, g_free);
  g_clear_pointer (&pri->ca_file, g_free);
  g_clear_pointer (&pri->origin, g_free);
}

/* Destroys a primary the master does not know about, as tport_zap_primary() would. */
static void
ws_zap_primary (WsPrimary *pri)
{
  tport_primary_t *base = &pri->base;

  SU_DEBUG_5 (("tport_ws(%p): destroying the %s listener on %s:%s\n", (void *) pri,
               base->pri_vtable->vtp_name, base->pri_primary->tp_name->tpn_host,
               base->pri_primary->tp_name->tpn_port));
  /* Connections first: their goodbyes run on the primary's context. */
  while (base->pri_open != NULL)
    tport_zap_secondary (base->pri_open);
  while (base->pri_closed != NULL)
    tport_zap_secondary (base->pri_closed);
  ws_deinit_primary (base);
  /* Not a secondary, so this only stops the timer and drops the memory. */
  tport_zap_secondary (base->pri_primary);
}

/* Masters with WS primaries, and their primaries: touched only from the masters' threads,
 * but a process may run several stacks in several threads. */
G_LOCK_DEFINE_STATIC (masters);
static GHashTable *masters;       /* tport_master_t * -> GPtrArray of WsPrimary * */

static void
on_master_destroyed (void *home)
{
  GPtrArray *primaries = NULL;
  TportWsRootBridge *bridge;

  G_LOCK (masters);
  if (masters != NULL)
    g_hash_table_steal_extended (masters, home, NULL, (gpointer *) &primaries);
  G_UNLOCK (masters);

  if (primaries == NULL)
    return;
  bridge = primaries->len > 0 ? ((WsPrimary *) g_ptr_array_index (primaries, 0))->bridge : NULL;
  for (guint i = 0; i < primaries->len; i++)
    ws_zap_primary (g_ptr_array_index (primaries, i));
  g_ptr_array_unref (primaries);
  /* The last stack on a bridged root: finish the goodbyes, then leave the root. */
  if (bridge != NULL)
    tport_ws_root_bridge_release (bridge);
}

static gboolean
track_primary (tport_master_t *mr,
               WsPrimary      *pri,
               GError        **error)
{
  GPtrArray *primaries;
  gboolean ok = TRUE;

  G_LOCK (masters);
  if (masters == NULL)
    masters = g_hash_table_new (NULL, NULL);
  primaries = g_hash_table_lookup (masters, mr);
  if (primaries == NULL)
    {
      if (su_home_destructor (mr->mr_master->tp_home, on_master_destroyed) < 0)
        ok = FALSE;
      else
        {
          g_hash_table_insert (masters, mr, primaries = g_ptr_array_new ());
          if (pri->bridge != NULL)
            tport_ws_root_bridge_retain (pri->bridge);
        }
    }
  if (ok)
    g_ptr_array_add (primaries, pri);
  G_UNLOCK (masters);

  if (!ok)
    g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_ABI_MISMATCH,
                         "The transport master of this agent already has a memory destructor, "
                         "so the ws transports could not be destroyed with it");
  return ok;
}

typedef struct {
  char *host;                     /* as written in the URL, without brackets */
  guint port;
  gboolean secure;
} ListenUrl;

static gboolean
parse_listen_url (const char *text,
                  ListenUrl  *out,
                  GError    **error)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  url_t *url;
  char transport[16] = "";
  gboolean ok = FALSE;

  url = url_make (home, text);
  if (url == NULL || (url->url_type != url_sip && url->url_type != url_sips) ||
      url->url_host == NULL)
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT,
            "\"%s\" is not a SIP URL such as sip:127.0.0.1:5066;transport=ws", text);
      goto out;
    }
  if (url->url_params == NULL ||
      url_param (url->url_params, "transport", transport, sizeof transport) == 0)
    g_strlcpy (transport, url->url_type == url_sips ? "wss" : "", sizeof transport);

  if (g_ascii_strcasecmp (transport, "ws") == 0)
    out->secure = FALSE;
  else if (g_ascii_strcasecmp (transport, "wss") == 0)
    out->secure = TRUE;
  else
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT,
            "\"%s\" does not name a WebSocket transport: add ;transport=ws or ;transport=wss",
            text);
      goto out;
    }
  if (url->url_type == url_sips && !out->secure)
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT,
            "\"%s\": a sips: URL needs transport=wss", text);
      goto out;
    }

  if (url->url_port == NULL || url->url_port[0] == '\0')
    out->port = out->secure ? 443 : 80;
  else
    {
      guint64 port;

      if (!g_ascii_string_to_unsigned (url->url_port, 10, 0, 65535, &port, NULL))
        {
          fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT, "\"%s\": bad port \"%s\"", text,
                url->url_port);
          goto out;
        }
      out->port = (guint) port;
    }

  if (url->url_host[0] == '[')
    out->host = g_strndup (url->url_host + 1, strlen (url->url_host) - 2);
  else
    out->host = g_strdup (url->url_host);
  ok = TRUE;

out:
  su_home_deinit (home);
  return ok;
}

/* The GMainContext that runs @root: the one its GSource is attached to, or for any other kind
 * of root a private context the root drives (tport-ws-root.c). */
static GMainContext *
context_of_root (su_root_t          *root,
                 TportWsRootBridge **bridge)
{
  GSource *source = su_root_gsource (root);
  GMainContext *context;

  *bridge = NULL;
  if (source == NULL)
    {
      *bridge = tport_ws_root_bridge_get (root);
      return g_main_context_ref (tport_ws_root_bridge_get_context (*bridge));
    }
  context = g_source_get_context (source);
  return context != NULL ? g_main_context_ref (context) : g_main_context_ref_thread_default ();
}

#define CLIENT_VIA_HOST "sofia-ws.invalid"

/* The listener's own default for a limit its tag leaves out: one place sets them. */
static unsigned
listener_default (const char *property)
{
  GObjectClass *klass = g_type_class_ref (SOFIA_WS_TYPE_LISTENER);
  GParamSpec *pspec = g_object_class_find_property (klass, property);
  unsigned value = G_PARAM_SPEC_UINT (pspec)->default_value;

  g_type_class_unref (klass);
  return value;
}

/* A listener for @url_text, or with @client_protocol ("ws", "wss") a client primary. */
static tport_t *
ws_add_listener_here (nta_agent_t  *agent,
                      const char   *url_text,
                      const char   *client_protocol,
                      tagi_t const *tags,
                      GError      **error)
{
  TportWsRootBridge *bridge = NULL;
  ListenUrl url = { 0 };
  tport_t *master;
  tport_master_t *mr;
  WsPrimary *pri = NULL;
  tport_primary_t *base;
  tport_t *tp;
  g_autoptr(SofiaWsListener) listener = NULL;
  g_autoptr(GMainContext) context = NULL;
  g_auto(GStrv) origins = NULL;
  char const *path = NULL, *origin_list = NULL, *certificate = NULL, *key = NULL;
  char const *ca_file = NULL, *origin = NULL;
  unsigned keepalive = 0, keepalive_timeout = 10, max_message_size = 128 * 1024;
  unsigned max_connections = listener_default ("max-connections");
  unsigned max_connections_per_address = listener_default ("max-connections-per-address");
  unsigned max_partial_bytes = listener_default ("max-partial-bytes");
  unsigned handshake_timeout = listener_default ("handshake-timeout");
  unsigned connect_timeout = 5, crlf_keepalive = 0, reconnect = 0;
  unsigned send_queue_bytes = 1024 * 1024, send_timeout = 30;
  int tls_verify = 1, reuse_port = 0;
  gboolean client = client_protocol != NULL;
  su_sockaddr_t su;
  su_addrinfo_t ai = { 0 };
  g_autofree char *canon = NULL;
  g_autofree char *via = NULL;
  guint16 port;

  if (agent == NULL || (url_text == NULL && !client))
    return fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT, "An agent and a URL are required");
  if (client)
    {
      if (g_ascii_strcasecmp (client_protocol, "ws") != 0 &&
          g_ascii_strcasecmp (client_protocol, "wss") != 0)
        return fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                     "\"%s\" is not a WebSocket transport: \"ws\" or \"wss\"", client_protocol);
      url.secure = g_ascii_strcasecmp (client_protocol, "wss") == 0;
      url.host = g_strdup ("0.0.0.0");
      url_text = url.secure ? "wss client" : "ws client";
    }
  else if (!parse_listen_url (url_text, &url, error))
    return NULL;

  master = nta_agent_tports (agent);
  if (master == NULL)
    {
      /* An agent created with NONE has no transport master yet. NTA makes one on the first
       * nta_agent_add_tport(), before finding that it cannot bind "ws" itself. */
      int saved = errno;
      unsigned level;

      /* ... and logs its refusal at level 3: expected here, so not shown. */
      su_log_init (nta_log);
      level = nta_log->log_level;
      su_log_set_level (nta_log, 0);
      nta_agent_add_tport (agent, URL_STRING_MAKE ("sip:127.0.0.1:0;transport=ws"),
                           TAG_NEXT (tags));
      su_log_set_level (nta_log, level);
      errno = saved;
      master = nta_agent_tports (agent);
    }
  if (master == NULL)
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT,
            "The agent has no transports yet: create it with a udp or tcp URL (or NONE and "
            "nta_agent_add_tport()) before adding ws listeners");
      goto error;
    }
  mr = (tport_master_t *) master;
  if (mr->mr_master != master || (void *) mr->mr_stack != (void *) agent)
    {
      fail (error, SOFIA_WS_ERROR_ABI_MISMATCH,
            "The agent's transport master does not look like libsofia-sip-ua 1.12.11's");
      goto error;
    }

  context = context_of_root (mr->mr_root, &bridge);

  tl_gets (tags,
           WSTAG_PATH_REF (path),
           WSTAG_ALLOWED_ORIGINS_REF (origin_list),
           WSTAG_TLS_CERTIFICATE_REF (certificate),
           WSTAG_TLS_KEY_REF (key),
           WSTAG_KEEPALIVE_REF (keepalive),
           WSTAG_KEEPALIVE_TIMEOUT_REF (keepalive_timeout),
           WSTAG_MAX_MESSAGE_SIZE_REF (max_message_size),
           WSTAG_MAX_CONNECTIONS_REF (max_connections),
           WSTAG_MAX_CONNECTIONS_PER_ADDRESS_REF (max_connections_per_address),
           WSTAG_MAX_PARTIAL_BYTES_REF (max_partial_bytes),
           WSTAG_HANDSHAKE_TIMEOUT_REF (handshake_timeout),
           WSTAG_REUSE_PORT_REF (reuse_port),
           WSTAG_TLS_CA_FILE_REF (ca_file),
           WSTAG_TLS_VERIFY_REF (tls_verify),
           WSTAG_ORIGIN_REF (origin),
           WSTAG_CONNECT_TIMEOUT_REF (connect_timeout),
           WSTAG_CRLF_KEEPALIVE_REF (crlf_keepalive),
           WSTAG_RECONNECT_REF (reconnect),
           WSTAG_SEND_QUEUE_BYTES_REF (send_queue_bytes),
           WSTAG_SEND_TIMEOUT_REF (send_timeout),
           TAG_END ());

  if (!client && url.secure && (certificate == NULL || key == NULL))
    {
      fail (error, SOFIA_WS_ERROR_TLS,
            "A wss listener needs WSTAG_TLS_CERTIFICATE() and WSTAG_TLS_KEY() (%s)", url_text);
      goto error;
    }
  if (origin_list != NULL)
    origins = g_regex_split_simple ("[\\s,]+", origin_list, 0, 0);
  if (origins != NULL)
    {
      /* g_regex_split_simple leaves empty strings at the edges. */
      GStrvBuilder *builder = g_strv_builder_new ();

      for (char **o = origins; *o != NULL; o++)
        if (**o != '\0')
          g_strv_builder_add (builder, *o);
      g_strfreev (origins);
      origins = g_strv_builder_end (builder);
      g_strv_builder_unref (builder);
    }

  /* The listener's objects live on the root's GMainContext. */
  if (client)
    port = 0;
  else
    {
  g_main_context_push_thread_default (context);
  listener = g_object_new (SOFIA_WS_TYPE_LISTENER,
                           "address", url.host,
                           "port", url.port,
                           "path", path,
                           "allowed-origins", origins,
                           "tls-certificate-file", url.secure ? certificate : NULL,
                           "tls-key-file", url.secure ? key : NULL,
                           "ping-interval", keepalive,
                           "ping-timeout", MAX (keepalive_timeout, 1u),
                           "max-message-size", MAX (max_message_size, 1u),
                           "max-connections", max_connections,
                           "max-connections-per-address", max_connections_per_address,
                           "max-partial-bytes", max_partial_bytes,
                           "handshake-timeout", handshake_timeout,
                           "reuse-port", reuse_port != 0,
                           NULL);
  if (!sofia_ws_listener_start (listener, error))
    {
      g_main_context_pop_thread_default (context);
      SU_DEBUG_3 (("tport_ws: cannot listen on %s\n", url_text));
      goto error;
    }
  g_main_context_pop_thread_default (context);
  port = sofia_ws_listener_get_port (listener);
    }

  memset (&su, 0, sizeof su);
  if (inet_pton (AF_INET, url.host, &su.su_sin.sin_addr) == 1)
    {
      su.su_sin.sin_family = AF_INET;
      su.su_sin.sin_port = htons (port);
      ai.ai_addrlen = sizeof su.su_sin;
    }
  else if (inet_pton (AF_INET6, url.host, &su.su_sin6.sin6_addr) == 1)
    {
      su.su_sin6.sin6_family = AF_INET6;
      su.su_sin6.sin6_port = htons (port);
      ai.ai_addrlen = sizeof su.su_sin6;
    }
  else
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT,
            "\"%s\": listen on a numeric address (the host is what Via and Contact carry)",
            url_text);
      goto error;
    }
  ai.ai_family = su.su_family;
  ai.ai_socktype = SOCK_STREAM;
  ai.ai_protocol = IPPROTO_TCP;
  ai.ai_addr = &su.su_sa;

  /* What tport_alloc_primary() does, without linking the primary into mr_primaries. */
  pri = su_home_clone (mr->mr_master->tp_home, sizeof (WsPrimary));
  if (pri == NULL)
    {
      fail (error, SOFIA_WS_ERROR_FAILED, "Out of memory");
      goto error;
    }
  base = &pri->base;
  pri->secure = url.secure;
  base->pri_vtable = url.secure ? &wss_vtable : &ws_vtable;
  base->pri_public = base->pri_vtable->vtp_public;
  base->pri_has_tls = url.secure;
  tp = base->pri_primary;
  tp->tp_master = mr;
  tp->tp_pri = base;
  tp->tp_socket = INVALID_SOCKET;
  tp->tp_index = 0;
  tp->tp_params = base->pri_params;
  memcpy (tp->tp_params, mr->mr_params, sizeof *tp->tp_params);
  tp->tp_reusable = mr->mr_master->tp_reusable;
  tp->tp_conn_orient = 1;
  tp->tp_addrinfo->ai_addr = &tp->tp_addr->su_sa;

  if (tport_set_params (tp, TAG_NEXT (tags)) < 0)
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT, "tport_set_params() refused the tags of %s",
            url_text);
      goto error;
    }
  tp->tp_timer = su_timer_create (su_root_task (mr->mr_root), 1);
  if (tp->tp_timer == NULL)
    {
      fail (error, SOFIA_WS_ERROR_FAILED, "su_timer_create() failed");
      goto error;
    }
  /* Not deferrable, unlike tport's own primaries: this timer runs the reaper that frees closed
   * connections (tport_close() sets it), and su_glib's GSource never dispatches for a
   * deferrable timer alone (su_source_prepare() raises its timeout to the max defer time on
   * every wakeup). tcp primaries get dispatched by their sockets' events; ours have none, as
   * libwebsockets does the I/O, so closed WS secondaries would pile up until the agent goes. */

  canon = g_strdup (client ? CLIENT_VIA_HOST : url.host);
  if (tport_setname (tp, base->pri_vtable->vtp_name, &ai, canon) < 0)
    {
      fail (error, SOFIA_WS_ERROR_FAILED, "tport_setname() failed for %s", url_text);
      goto error;
    }

  /* A client's Via names no reachable address, as browsers' do (RFC 7118 section 5.2). */
  if (client)
    via = g_strdup_printf ("SIP/2.0/%s " CLIENT_VIA_HOST, base->pri_vtable->vtp_name);
  else
    via = g_strdup_printf ("SIP/2.0/%s %s%s%s:%u", base->pri_vtable->vtp_name,
                           ai.ai_family == AF_INET6 ? "[" : "", url.host,
                           ai.ai_family == AF_INET6 ? "]" : "", port);
  pri->via = sip_via_make (tp->tp_home, via);
  if (pri->via == NULL)
    {
      fail (error, SOFIA_WS_ERROR_FAILED, "Cannot make the Via \"%s\"", via);
      goto error;
    }
  tp->tp_magic = (tp_magic_t *) pri->via;

  pri->context = g_main_context_ref (context);
  pri->bridge = bridge;
  pri->client = client;
  pri->path = g_strdup (path);
  pri->ca_file = g_strdup (ca_file);
  pri->tls_verify = tls_verify != 0;
  pri->origin = g_strdup (origin);
  pri->connect_timeout = connect_timeout;
  pri->keepalive = keepalive;
  pri->keepalive_timeout = keepalive_timeout;
  pri->crlf_keepalive = crlf_keepalive;
  pri->reconnect = reconnect;
  pri->max_message_size = max_message_size;
  pri->send_queue_bytes = MAX (send_queue_bytes, 1u);
  pri->send_timeout = send_timeout;
  if (!client)
    {
      pri->listener = g_steal_pointer (&listener);
      g_signal_connect (pri->listener, "accepted", G_CALLBACK (on_accepted), pri);
    }

  if (!track_primary (mr, pri, error))
    goto error;

  SU_DEBUG_5 (("tport_ws: %s on %s (%s)\n", client ? "connecting" : "listening", url_text,
               via));
  if (bridge != NULL)
    tport_ws_root_bridge_start (bridge);
  g_free (url.host);
  return tp;

error:
  if (pri != NULL)
    {
      ws_deinit_primary (&pri->base);
      if (pri->base.pri_primary->tp_timer != NULL)
        su_timer_destroy (pri->base.pri_primary->tp_timer);
      su_home_unref (pri->base.pri_primary->tp_home);
    }
  if (listener != NULL)
    sofia_ws_listener_stop (listener);
  g_free (url.host);
  return NULL;
}

typedef struct {
  nta_agent_t *agent;
  const char *url;
  const char *client_protocol;
  tagi_t const *tags;
  GError **error;
  tport_t *result;
} AddListenerCall;

static int
add_listener_in_thread (void *data)
{
  AddListenerCall *call = data;

  call->result = ws_add_listener_here (call->agent, call->url, call->client_protocol,
                                       call->tags, call->error);
  return 0;
}

/* Everything about a stack happens in its root's thread: NUA's stack thread, for instance. */
static tport_t *
add_primary (nta_agent_t  *agent,
             const char   *url,
             const char   *client_protocol,
             tagi_t const *tags,
             GError      **error)
{
  AddListenerCall call = { agent, url, client_protocol, tags, error, NULL };
  tport_t *master = agent != NULL ? nta_agent_tports (agent) : NULL;

  if (master == NULL)
    return ws_add_listener_here (agent, url, client_protocol, tags, error);
  if (su_task_execute (su_root_task (((tport_master_t *) master)->mr_root),
                       add_listener_in_thread, &call, NULL) < 0)
    return fail (error, SOFIA_WS_ERROR_FAILED, "Cannot reach the thread of the agent's root");
  return call.result;
}

static tport_t *
ws_add_listener (nta_agent_t  *agent,
                 const char   *url,
                 tagi_t const *tags,
                 GError      **error)
{
  return add_primary (agent, url, NULL, tags, error);
}

static tport_t *
ws_add_client (nta_agent_t  *agent,
               const char   *protocol,
               tagi_t const *tags,
               GError      **error)
{
  if (protocol == NULL)
    return fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT, "The protocol (ws or wss) is required");
  return add_primary (agent, NULL, protocol, tags, error);
}

static tport_t *
ws_client_connect (tport_t    *client,
                   const char *url_text,
                   GError    **error)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  WsPrimary *pri;
  url_t *url;
  char transport[16] = "";
  tp_name_t tpn[1] = { { 0 } };
  char port_text[8];
  guint64 port_number = 0;
  struct addrinfo hints = { 0 }, *found = NULL;
  tport_t *tp = NULL;
  su_addrinfo_t ai = { 0 };
  int status;

  if (client == NULL || !tport_ws_is_ws (client) || !tport_ws_abi_is_primary (client) ||
      !((WsPrimary *) client->tp_pri)->client)
    return fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                 "Not a ws client made by sofia_ws_tport_add_client()");
  pri = (WsPrimary *) client->tp_pri;

  url = url_text != NULL ? url_make (home, url_text) : NULL;
  if (url == NULL || (url->url_type != url_sip && url->url_type != url_sips) ||
      url->url_host == NULL)
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT,
            "\"%s\" is not a SIP URL such as sip:192.0.2.1:8080;transport=ws",
            url_text ? url_text : "(null)");
      goto out;
    }
  if (url->url_params != NULL)
    url_param (url->url_params, "transport", transport, sizeof transport);
  if (transport[0] != '\0' && g_ascii_strcasecmp (transport, pri->secure ? "wss" : "ws") != 0)
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT, "\"%s\" is not for this %s client",
            url_text, pri->secure ? "wss" : "ws");
      goto out;
    }

  g_snprintf (port_text, sizeof port_text, "%s",
              url->url_port && url->url_port[0] ? url->url_port : pri->secure ? "443" : "80");
  if (!g_ascii_string_to_unsigned (port_text, 10, 1, 65535, &port_number, NULL))
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT, "\"%s\" has no valid port", url_text);
      goto out;
    }
  tpn->tpn_proto = pri->secure ? "wss" : "ws";
  tpn->tpn_canon = url->url_host;
  tpn->tpn_host = url->url_host;
  tpn->tpn_port = port_text;
  tpn->tpn_ident = NULL;
  tpn->tpn_comp = NULL;
  if (url->url_host[0] == '[')
    {
      char *bare = su_strndup (home, url->url_host + 1, strlen (url->url_host) - 2);

      tpn->tpn_canon = tpn->tpn_host = bare;
    }

  /* An open connection to that address (tport_by_name() searches the primary's tree). */
  tp = tport_by_name (client, tpn);
  if (tp != NULL && !tport_ws_abi_is_primary (tp) && !tport_is_closed (tp) &&
      !((WsSecondary *) tp)->closing)
    goto out;
  tp = NULL;

  if (!host_is_ip_address (tpn->tpn_host))
    {
      /* A name: no lookup here, which would block the loop. The connection is made now,
       * connecting (requests sent meanwhile wait in it), and its WebSocket resolves the name
       * with GLib's resolver, asynchronously; the address is taken once connected. */
      struct sockaddr_in unspecified = { 0 };

      unspecified.sin_family = AF_INET;
      unspecified.sin_port = htons ((guint16) port_number);
      ai.ai_family = AF_INET;
      ai.ai_socktype = SOCK_STREAM;
      ai.ai_protocol = IPPROTO_TCP;
      ai.ai_addr = (void *) &unspecified;
      ai.ai_addrlen = sizeof unspecified;
      tp = ws_connect_full (&pri->base, &ai, tpn, TRUE);
      if (tp == NULL)
        fail (error, SOFIA_WS_ERROR_FAILED, "Cannot make a connection to %s: %s", url_text,
              g_strerror (errno));
      goto out;
    }

  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;     /* an IP literal: no lookup */
  status = getaddrinfo (tpn->tpn_host, port_text, &hints, &found);
  if (status != 0 || found == NULL)
    {
      fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT, "\"%s\" is not an address: %s",
            tpn->tpn_host, gai_strerror (status));
      goto out;
    }
  ai.ai_family = found->ai_family;
  ai.ai_socktype = SOCK_STREAM;
  ai.ai_protocol = IPPROTO_TCP;
  ai.ai_addr = (void *) found->ai_addr;
  ai.ai_addrlen = found->ai_addrlen;
  tp = ws_connect_full (&pri->base, &ai, tpn, FALSE);
  if (tp == NULL)
    fail (error, SOFIA_WS_ERROR_FAILED, "Cannot make a connection to %s: %s", url_text,
          g_strerror (errno));

out:
  if (found != NULL)
    freeaddrinfo (found);
  su_home_deinit (home);
  return tp;
}

/* ---- for the preload interposer (tport-ws-preload.c) -------------------------------------- */

G_MODULE_EXPORT const SofiaWsTportModule *sofia_ws_tport_module_init (guint    version,
                                                                      GError **error);

/* The module's interface, registering on first use; NULL (and one message on stderr, once)
 * when it refuses this process's libsofia-sip-ua. */
gboolean
tport_ws_preload_ready (void)
{
  static gsize once = 0;
  static gboolean ready = FALSE;

  if (g_once_init_enter (&once))
    {
      g_autoptr(GError) error = NULL;

      ready = sofia_ws_tport_module_init (SOFIA_WS_TPORT_MODULE_VERSION, &error) != NULL;
      if (!ready)
        g_printerr ("sofia-ws: %s; ws and wss stay unavailable, nothing else changes\n",
                    error->message);
      g_once_init_leave (&once, 1);
    }
  return ready;
}

/* The connection for a request to @url from @agent: the agent's ws (or wss) client, made on
 * first use, connects or reuses. NULL leaves the request to NTA as it is. */
tport_t *
tport_ws_preload_connection (nta_agent_t *agent,
                             const char  *url,
                             gboolean     secure)
{
  g_autoptr(GError) error = NULL;
  tport_master_t *mr;
  GPtrArray *primaries;
  tport_t *client = NULL;
  tport_t *connection;

  if (!tport_ws_preload_ready () || (mr = (tport_master_t *) nta_agent_tports (agent)) == NULL)
    return NULL;

  G_LOCK (masters);
  primaries = masters != NULL ? g_hash_table_lookup (masters, mr) : NULL;
  for (guint i = 0; primaries != NULL && i < primaries->len && client == NULL; i++)
    {
      WsPrimary *pri = g_ptr_array_index (primaries, i);

      if (pri->client && pri->secure == secure)
        client = pri->base.pri_primary;
    }
  G_UNLOCK (masters);

  if (client == NULL)
    client = ws_add_client (agent, secure ? "wss" : "ws", NULL, &error);
  if (client == NULL)
    {
      SU_DEBUG_1 (("tport_ws: no %s client: %s\n", secure ? "wss" : "ws", error->message));
      return NULL;
    }
  connection = ws_client_connect (client, url, &error);
  if (connection == NULL)
    SU_DEBUG_3 (("tport_ws: %s\n", error->message));
  return connection;
}

/* ---- NUA ---------------------------------------------------------------------------------- */

static nta_agent_t *
ws_nua_agent (nua_t   *nua,
              GError **error)
{
  nta_agent_t *agent;
  tport_master_t *mr;

  if (nua == NULL)
    return fail (error, SOFIA_WS_ERROR_INVALID_ARGUMENT, "No NUA stack given"), NULL;
  agent = tport_ws_abi_nua_agent (nua);
  if (agent == NULL)
    {
      fail (error, SOFIA_WS_ERROR_ABI_MISMATCH,
            "This NUA stack does not look like libsofia-sip-ua 1.12.11's, or it has no agent "
            "yet");
      return NULL;
    }
  mr = (tport_master_t *) nta_agent_tports (agent);
  if (mr == NULL || (void *) mr->mr_stack != (void *) agent)
    {
      fail (error, SOFIA_WS_ERROR_ABI_MISMATCH,
            "The NUA stack's agent does not look like libsofia-sip-ua 1.12.11's");
      return NULL;
    }
  return agent;
}

/* ---- the entry point ---------------------------------------------------------------------- */

static SofiaWsTransport *
ws_get_transport (tport_t *tport)
{
  if (!tport_ws_is_ws (tport) || tport_ws_abi_is_primary (tport))
    return NULL;
  return (SofiaWsTransport *) ((WsSecondary *) tport)->websocket;
}

static SofiaWsListener *
ws_get_listener (tport_t *tport)
{
  if (!tport_ws_is_ws (tport))
    return NULL;
  return ((WsPrimary *) tport->tp_pri)->listener;
}

static const SofiaWsTportModule module_table = {
  .version = SOFIA_WS_TPORT_MODULE_VERSION,
  .add_listener = ws_add_listener,
  .add_client = ws_add_client,
  .connect = ws_client_connect,
  .nua_agent = ws_nua_agent,
  .get_transport = ws_get_transport,
  .get_listener = ws_get_listener,
  .is_ws = tport_ws_is_ws,
  .enable_routing = tport_ws_hook_install,
  .flow_uri = tport_ws_flows_uri,
};

G_MODULE_EXPORT const SofiaWsTportModule *sofia_ws_tport_module_init (guint    version,
                                                                      GError **error);

G_MODULE_EXPORT const SofiaWsTportModule *
sofia_ws_tport_module_init (guint    version,
                            GError **error)
{
  static gsize registered = 0;
  static char *refusal = NULL;

  if (version != SOFIA_WS_TPORT_MODULE_VERSION)
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_ABI_MISMATCH,
                   "tport-ws.so speaks module interface %u, libsofia-ws asked for %u",
                   SOFIA_WS_TPORT_MODULE_VERSION, version);
      return NULL;
    }

  if (g_once_init_enter (&registered))
    {
      char *why = NULL;

      if (!tport_ws_abi_check (&why))
        refusal = g_strdup_printf ("The ws/wss tport module is not registered: %s", why);
      else if (tport_register_type (&ws_vtable) < 0 || tport_register_type (&wss_vtable) < 0)
        refusal = g_strdup ("The ws/wss tport module is not registered: tport's table of "
                            "transport types is full");
      else
        SU_DEBUG_5 (("tport_ws: WS and WSS transport types registered\n"));
      /* Said once by the caller (a GError from libsofia-ws, stderr when preloaded). */
      if (refusal != NULL)
        SU_DEBUG_5 (("tport_ws: %s\n", refusal));
      g_free (why);
      g_once_init_leave (&registered, 1);
    }

  if (refusal != NULL)
    {
      g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_ABI_MISMATCH, refusal);
      return NULL;
    }
  return &module_table;
}
