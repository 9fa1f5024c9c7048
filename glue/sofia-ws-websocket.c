/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sofia-ws-enum-types.h"
#include "sofia-ws-error.h"
#include "sofia-ws-sink-private.h"
#include "sofia-ws-transport-private.h"
#include "sofia-ws-websocket-private.h"

/**
 * SofiaWsWebSocket:
 *
 * A [class@SofiaWs.Transport] over one WebSocket connection (RFC 7118), on libwebsockets and
 * the thread-default GMainContext at construction.
 *
 * As a client, set [property@SofiaWs.WebSocket:server] (`ws://` or `wss://`) and call
 * [method@SofiaWs.Transport.connect_async]. The server's host name is resolved
 * asynchronously with GLib's resolver, within [property@SofiaWs.WebSocket:connection-timeout].
 * A [class@SofiaWs.Listener] hands out the server side of the connections it accepts as
 * WebSockets too, already connected.
 *
 * RFC 7118 rules: the `sip` subprotocol is required of the server; one SIP message is one
 * WebSocket message, sent as text (binary when it is not valid UTF-8); text and binary
 * messages are accepted, fragmented ones reassembled; a message over
 * [property@SofiaWs.WebSocket:max-message-size] closes the connection with 1009, invalid
 * UTF-8 in a text message with 1007; a disconnect sends its close code (1000 by default) and
 * waits for the peer's close, and a close from the peer without a code is reported as 1005.
 * RFC 5626 CRLF keepalives are answered and never reported as messages. A message may hold
 * NUL bytes (a binary body): see [signal@SofiaWs.Transport::message].
 *
 * Every send either goes out or fails: [method@SofiaWs.Transport.send_async] completes when
 * the message was handed to the socket, and fails with %SOFIA_WS_ERROR_QUEUE_FULL when the
 * send queue is full or %SOFIA_WS_ERROR_CLOSED when the connection closes first. The queue is
 * bounded in messages and bytes ([property@SofiaWs.WebSocket:send-queue-limit],
 * [property@SofiaWs.WebSocket:send-queue-bytes]), and a peer that reads nothing for
 * [property@SofiaWs.WebSocket:send-timeout] is closed (1008) and its queue freed.
 */

#define DEFAULT_CONNECTION_TIMEOUT 5
#define DEFAULT_KEEPALIVE_DEBOUNCE 10
#define DEFAULT_RECONNECTION_DELAY 4
#define DEFAULT_MAX_MESSAGE_SIZE (128 * 1024)
#define DEFAULT_SEND_QUEUE_LIMIT 256
#define DEFAULT_SEND_QUEUE_BYTES (1024 * 1024)
#define DEFAULT_SEND_TIMEOUT 30
#define MAX_RECONNECTION_DELAY 60
#define DEFAULT_PING_TIMEOUT 10

typedef struct {
  SofiaWsWebSocket *self;         /* not a reference: the queue is the websocket's */
  GTask *task;                    /* NULL for keepalives */
  guint8 *buffer;                 /* LWS_PRE bytes of headroom, then the message */
  gsize len;
  gboolean binary;
  gboolean announce;              /* sent without a task: emit message-sent once written */
  guint internal;                 /* a CRLF keepalive or its answer: its INTERNAL_* bit */
  GSource *cancel_source;
} OutMessage;

/* Internal messages, at most one of each kind queued at a time: a peer that floods CRLF
 * keepalives and reads nothing gets one answer waiting, not one per keepalive. */
enum {
  INTERNAL_PING = 1 << 0,         /* our "\r\n\r\n" */
  INTERNAL_PONG = 1 << 1,         /* our "\r\n" answer to the peer's */
};

struct _SofiaWsWebSocket
{
  SofiaWsTransport parent_instance;

  /* settings */
  char *server;
  guint connection_timeout;
  guint keepalive_interval;
  guint keepalive_debounce;
  guint reconnection_attempts;
  guint reconnection_delay;
  gboolean trace_sip;
  char *tls_ca_file;
  gboolean tls_verify;
  char *origin;
  guint max_message_size;
  guint send_queue_limit;
  guint send_queue_bytes;
  guint send_timeout;
  guint ping_interval;
  guint ping_timeout;

  GMainContext *context;
  SofiaWsLoop *loop;              /* while a connection exists or is being made */
  struct lws *wsi;
  gboolean accepted;
  SofiaWsListener *listener;      /* accepted: not a reference; the listener, which holds us,
                                   * clears it (sofia_ws_websocket_forget_listener()) */
  char *remote_address;
  char *local_address;            /* sofia_ws_websocket_get_local_address(), of this wsi */
  gboolean secure;

  GTask *connect_task;            /* the connect vfunc's, until established or failed */
  GSource *connect_timeout_source;  /* the whole attempt: resolution, TCP, TLS, handshake */
  char *target_host;              /* the attempt's host as the URL names it (no brackets) */
  char *target_host_header;       /* Host header, TLS SNI and the certificate's name check */
  char *target_path;
  int target_port;
  GCancellable *resolve_cancellable;  /* while GResolver looks target_host up */
  GList *addresses;               /* GInetAddress *: the resolved ones not tried yet */
  GSource *next_address_source;   /* the next of them is tried from here */
  GSource *connect_cancel_source;
  gboolean start_failed;          /* lws reported the failure from inside the connect call */
  GTask *disconnect_task;
  gboolean close_requested;
  gboolean close_started;         /* lws is sending our close frame: write nothing more */
  guint16 close_code;
  char *close_reason;
  guint16 peer_close_code;
  char *peer_close_reason;
  GError *pending_error;          /* why the connection is being closed by us */

  gint64 last_alive;               /* monotonic time of the handshake or the last PONG */

  GByteArray *rx;
  gboolean rx_in_message;
  gboolean rx_binary;
  SofiaWsMessageSink sink;        /* _sofia_ws_websocket_set_message_sink() */
  gpointer sink_data;

  GQueue tx;                      /* OutMessage * */
  gsize tx_bytes;                 /* the payload bytes in tx */
  guint tx_internal;              /* INTERNAL_* bits of the internal messages in tx */
  gint64 tx_progress;             /* monotonic time of the last write, or of the queue's start */
  GSource *send_timeout_source;   /* while something waits for the socket, or a close does */
  gboolean close_deadline;        /* the source above is the close's deadline */
  SofiaWsActivitySink activity_sink;
  gpointer activity_data;

  GSource *keepalive_source;
  GSource *debounce_source;
  gboolean awaiting_keepalive_reply;

  guint reconnection_attempt;
  GSource *reconnection_source;
  gboolean reconnecting;
};

G_DEFINE_FINAL_TYPE (SofiaWsWebSocket, sofia_ws_websocket, SOFIA_WS_TYPE_TRANSPORT)

enum {
  PROP_0,
  PROP_SERVER,
  PROP_CONNECTION_TIMEOUT,
  PROP_KEEPALIVE_INTERVAL,
  PROP_KEEPALIVE_DEBOUNCE,
  PROP_RECONNECTION_ATTEMPTS,
  PROP_RECONNECTION_DELAY,
  PROP_TRACE_SIP,
  PROP_TLS_CA_FILE,
  PROP_TLS_VERIFY,
  PROP_ORIGIN,
  PROP_MAX_MESSAGE_SIZE,
  PROP_SEND_QUEUE_LIMIT,
  PROP_SEND_QUEUE_BYTES,
  PROP_SEND_TIMEOUT,
  PROP_PING_INTERVAL,
  PROP_PING_TIMEOUT,
  PROP_REMOTE_ADDRESS,
  PROP_CLOSE_CODE,
  PROP_BUFFERED_AMOUNT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_KEEPALIVE,
  N_SIGNALS
};

static guint signals[N_SIGNALS];
static guint message_sent_id;     /* SofiaWsTransport::message-sent */
static guint message_id;          /* SofiaWsTransport::message */

static void start_keepalive (SofiaWsWebSocket *self);
static void stop_keepalive (SofiaWsWebSocket *self);
static void schedule_reconnection (SofiaWsWebSocket *self);

/* ---- helpers -------------------------------------------------------------------------- */

static const char *
peer_name (SofiaWsWebSocket *self)
{
  if (self->remote_address != NULL)
    return self->remote_address;
  return self->server != NULL ? self->server : "(unconnected)";
}

static void
trace (SofiaWsWebSocket *self,
       const char       *direction,
       const char       *data,
       gsize             len)
{
  if (self->trace_sip)
    g_debug ("%s %s (%" G_GSIZE_FORMAT " bytes):\n%.*s", direction, peer_name (self), len,
             (int) len, data);
}

static GSource *
timeout_source_new (SofiaWsWebSocket *self,
                    guint             ms,
                    GSourceFunc       func,
                    const char       *name)
{
  GSource *source = g_timeout_source_new (ms);

  /* The source holds no reference: it is destroyed with the websocket or before. */
  g_source_set_callback (source, func, self, NULL);
  g_source_set_static_name (source, name);
  g_source_attach (source, self->context);
  return source;
}

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

/* Takes @m out of the queue's accounting; it is popped, or removed, by the caller. */
static void
out_message_unqueued (OutMessage *m)
{
  m->self->tx_bytes -= m->len;
  m->self->tx_internal &= ~m->internal;
}

static void
out_message_free (OutMessage *m)
{
  clear_source (&m->cancel_source);
  g_clear_object (&m->task);
  g_free (m->buffer);
  g_free (m);
}

static void
fail_queue (SofiaWsWebSocket *self,
            const GError     *error)
{
  OutMessage *m;

  while ((m = g_queue_pop_head (&self->tx)) != NULL)
    {
      out_message_unqueued (m);
      if (m->task != NULL)
        g_task_return_error (m->task, g_error_copy (error));
      out_message_free (m);
    }
}

/* g_utf8_validate_len() with an ASCII fast path: SIP messages are nearly always ASCII, and
 * testing eight bytes at a time for a byte that is 0 or above 0x7f costs a fraction of the
 * general validation. As g_utf8_validate_len(), NUL is refused. */
static gboolean
is_utf8 (const guint8 *data,
         gsize         len)
{
  const guint64 ones = G_GUINT64_CONSTANT (0x0101010101010101);
  const guint64 highs = G_GUINT64_CONSTANT (0x8080808080808080);
  gsize i = 0;

  for (; i + 8 <= len; i += 8)
    {
      guint64 word;

      memcpy (&word, data + i, sizeof word);
      /* A zero byte borrows in (word - ones); a non-ASCII one keeps its high bit. */
      if (((word - ones) | word) & highs)
        break;
    }
  while (i < len && data[i] != 0 && data[i] < 0x80)
    i++;
  /* data[i] starts a character: everything before it was ASCII. */
  return i == len || g_utf8_validate_len ((const char *) data + i, len - i, NULL);
}

/* RFC 6455 text may hold U+0000, which is_utf8() refuses: the parts around NULs are checked. */
static gboolean
is_utf8_with_nul (const guint8 *data,
                  gsize         len)
{
  const guint8 *nul;

  while ((nul = memchr (data, '\0', len)) != NULL)
    {
      if (!is_utf8 (data, nul - data))
        return FALSE;
      len -= nul - data + 1;
      data = nul + 1;
    }
  return is_utf8 (data, len);
}

static gboolean
is_crlf_keepalive (const guint8 *data,
                   gsize         len)
{
  if (len == 0 || len % 2 != 0)
    return FALSE;
  for (gsize i = 0; i < len; i += 2)
    if (data[i] != '\r' || data[i + 1] != '\n')
      return FALSE;
  return TRUE;
}

/* Starts lws's own close of @wsi: with @code, a close frame first and a wait for the peer's
 * (RFC 6455 7.1.2), without it a plain hang-up.
 *
 * Not by returning -1 from a callback: Debian's lws 4.1.6 is a _DEBUG build, whose libuv
 * service path then closes the wsi a second time at once ("uv repeat test"), which hangs up
 * before the close frame is sent. A timeout that expires at once, with the reason lws uses
 * for idle keep-alives, takes the polite path. */
static void
close_wsi (struct lws *wsi,
           guint16     code,
           const char *reason)
{
  if (code != 0)
    {
      const char *end = NULL;

      /* RFC 6455 5.5.1: at most 123 bytes after the code, valid UTF-8: validation stops
       * before a character cut at the limit, or at the first invalid byte. */
      if (reason != NULL)
        g_utf8_validate_len (reason, MIN (strlen (reason), 123), &end);
      lws_close_reason (wsi, code, (unsigned char *) reason,
                        reason != NULL ? (size_t) (end - reason) : 0);
      lws_set_timeout (wsi, PENDING_TIMEOUT_HTTP_KEEPALIVE_IDLE, LWS_TO_KILL_ASYNC);
    }
  else
    lws_set_timeout (wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Drops the resolution of the attempt's host, if under way (its callback sees the
 * cancellable cancelled and touches nothing), and the addresses not tried yet. */
static void
cancel_resolution (SofiaWsWebSocket *self)
{
  if (self->resolve_cancellable != NULL)
    {
      g_cancellable_cancel (self->resolve_cancellable);
      g_clear_object (&self->resolve_cancellable);
    }
  g_list_free_full (g_steal_pointer (&self->addresses), g_object_unref);
  clear_source (&self->next_address_source);
}

/* Detaches from the wsi and lets lws close it on its own; no callbacks reach us after. An
 * attempt still resolving its host, or between two of its addresses, is dropped too. */
static void
abandon_wsi (SofiaWsWebSocket *self,
             guint16           code)
{
  clear_source (&self->send_timeout_source);
  cancel_resolution (self);
  if (self->wsi == NULL)
    return;

  lws_set_opaque_user_data (self->wsi, NULL);
  close_wsi (self->wsi, code, NULL);
  sofia_ws_loop_wake (self->loop, self->wsi);
  self->wsi = NULL;
  g_clear_pointer (&self->local_address, g_free);
}

static void
request_writable (SofiaWsWebSocket *self)
{
  if (self->wsi != NULL)
    {
      lws_callback_on_writable (self->wsi);
      sofia_ws_loop_kick (self->loop);
    }
}

static gboolean on_send_timeout (gpointer user_data);

static void
arm_send_timeout (SofiaWsWebSocket *self,
                  guint             ms)
{
  clear_source (&self->send_timeout_source);
  self->send_timeout_source = timeout_source_new (self, ms, on_send_timeout,
                                                  "[sofia-ws] send timeout");
}

/* Something waits for the socket: from now on the peer has send-timeout to take some of it
 * (as Kamailio's tcp_send_timeout). */
static void
watch_send (SofiaWsWebSocket *self)
{
  if (self->send_timeout == 0 || self->send_timeout_source != NULL || self->wsi == NULL ||
      self->connect_task != NULL || self->reconnecting)
    return;
  self->tx_progress = g_get_monotonic_time ();
  arm_send_timeout (self, self->send_timeout * 1000);
}

/* Starts our close of @wsi with @code; it has send-timeout to complete before lws drops the
 * connection without a goodbye. */
static void
start_close (SofiaWsWebSocket *self,
             struct lws       *wsi,
             guint16           code,
             const char       *reason)
{
  self->close_started = TRUE;
  close_wsi (wsi, code, reason);
  if (self->send_timeout > 0 && self->wsi == wsi)
    {
      self->close_deadline = TRUE;
      arm_send_timeout (self, self->send_timeout * 1000);
    }
}

static void
push_message (SofiaWsWebSocket *self,
              OutMessage       *m)
{
  g_queue_push_tail (&self->tx, m);
  self->tx_bytes += m->len;
  self->tx_internal |= m->internal;
}

/* The message is the concatenation of @vectors (@len bytes in all), copied once, behind the
 * headroom lws_write() needs and followed by a NUL for message-sent. */
static OutMessage *
out_message_new_vectors (SofiaWsWebSocket    *self,
                         const GOutputVector *vectors,
                         gsize                n_vectors,
                         gsize                len,
                         GTask               *task)
{
  OutMessage *m = g_new0 (OutMessage, 1);
  gsize offset = LWS_PRE;

  m->self = self;
  m->task = task;
  m->len = len;
  m->buffer = g_malloc (LWS_PRE + len + 1);
  for (gsize i = 0; i < n_vectors; i++)
    {
      if (vectors[i].size > 0)
        memcpy (m->buffer + offset, vectors[i].buffer, vectors[i].size);
      offset += vectors[i].size;
    }
  m->buffer[offset] = '\0';
  m->binary = !is_utf8 (m->buffer + LWS_PRE, len);
  return m;
}

static OutMessage *
out_message_new (SofiaWsWebSocket *self,
                 const char       *data,
                 gsize             len,
                 GTask            *task)
{
  GOutputVector vector = { data, len };

  return out_message_new_vectors (self, &vector, 1, len, task);
}

/* ---- connecting (client) -------------------------------------------------------------- */

static void
complete_connect (SofiaWsWebSocket *self,
                  GError           *error)
{
  g_autoptr(GTask) task = g_steal_pointer (&self->connect_task);

  clear_source (&self->connect_timeout_source);
  clear_source (&self->connect_cancel_source);
  if (task == NULL)
    {
      g_clear_error (&error);
      return;
    }
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static GError *
connection_error_from_lws (SofiaWsWebSocket *self,
                           const char       *why)
{
  g_autofree char *text = g_strdup (why != NULL ? why : "unknown");

  if (self->pending_error != NULL)
    return g_steal_pointer (&self->pending_error);

  if (strstr (text, "SSL") != NULL || strstr (text, "ssl") != NULL ||
      strstr (text, "cert") != NULL || strstr (text, "tls") != NULL ||
      strstr (text, "TLS") != NULL)
    return g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_TLS,
                        "TLS handshake with %s failed: %s", self->server, text);
  if (g_str_has_prefix (text, "HS: Cannot match protocol") ||
      g_str_has_prefix (text, "ws protocol no match"))
    return g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_PROTOCOL,
                        "%s did not accept the sip subprotocol", self->server);
  if (g_str_has_prefix (text, "HS:"))
    return g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_HANDSHAKE_REFUSED,
                        "%s refused the WebSocket handshake (%s)", self->server, text + 4);
  return g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECTION_REFUSED,
                      "Could not connect to %s: %s", self->server, text);
}

static gboolean
on_connect_timeout (gpointer user_data)
{
  SofiaWsWebSocket *self = user_data;
  GError *error = g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECT_TIMEOUT,
                               "Connection to %s timed out after %u s%s%s%s", self->server,
                               self->connection_timeout,
                               self->resolve_cancellable != NULL ? " (still resolving " : "",
                               self->resolve_cancellable != NULL ? self->target_host : "",
                               self->resolve_cancellable != NULL ? ")" : "");

  g_clear_pointer (&self->connect_timeout_source, g_source_unref);
  abandon_wsi (self, 0);
  if (self->connect_task != NULL)
    complete_connect (self, error);
  else
    {
      /* A reconnection attempt. */
      sofia_ws_transport_emit_transport_error (SOFIA_WS_TRANSPORT (self), error);
      g_error_free (error);
      sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (self),
                                     SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
      schedule_reconnection (self);
    }
  return G_SOURCE_REMOVE;
}

/* The attempt failed before a connection was established: the connect call fails, or a
 * reconnection attempt reports @error and the next one is scheduled. Takes @error. */
static void
fail_attempt (SofiaWsWebSocket *self,
              GError           *error)
{
  cancel_resolution (self);
  if (self->connect_task != NULL)
    complete_connect (self, error);
  else if (self->reconnecting)
    {
      self->reconnecting = FALSE;
      clear_source (&self->connect_timeout_source);
      sofia_ws_transport_emit_transport_error (SOFIA_WS_TRANSPORT (self), error);
      g_error_free (error);
      sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (self),
                                     SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
      schedule_reconnection (self);
    }
  else
    g_error_free (error);
}

/* Starts the lws connection to @address (numeric) for the attempt's target. */
static gboolean
connect_address (SofiaWsWebSocket  *self,
                 const char        *address,
                 GError           **error)
{
  struct lws_client_connect_info info = { 0 };
  struct lws_vhost *vhost;
  struct lws *wsi;

  vhost = sofia_ws_loop_get_client_vhost (self->loop, self->secure ? self->tls_ca_file : NULL,
                                          error);
  if (vhost == NULL)
    return FALSE;

  info.context = sofia_ws_loop_get_client_context (self->loop, NULL);
  info.vhost = vhost;
  /* lws connects to the numeric address as it is (no lookup of its own: this lws has no
   * asynchronous DNS, and a name would block the loop in getaddrinfo()). The name stays in
   * info.host, the Host header, from which lws also takes the TLS SNI and the name the
   * server's certificate is checked against (with the ":port" cut off). */
  info.address = address;
  info.port = self->target_port;
  info.path = self->target_path;
  info.host = self->target_host_header;
  info.origin = self->origin;
  info.protocol = "sip";
  info.local_protocol_name = "sip";
  info.opaque_user_data = self;
  info.retry_and_idle_policy =
    sofia_ws_loop_get_liveness_policy (self->loop, self->ping_interval,
                                       self->ping_interval + self->ping_timeout);
  if (self->secure)
    {
      info.ssl_connection = LCCSCF_USE_SSL;
      if (!self->tls_verify)
        info.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                               LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    }

  g_debug ("connecting to %s at %s", self->server, address);
  /* lws may report a failure from inside this call (through CLIENT_CONNECTION_ERROR, which
   * completes the attempt): then the wsi it returns is not ours to keep. */
  self->start_failed = FALSE;
  wsi = lws_client_connect_via_info (&info);
  sofia_ws_loop_kick (self->loop);
  if (self->start_failed)
    return TRUE;
  if (wsi == NULL)
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECTION_REFUSED,
                   "Could not start a connection to %s (%s)", self->server, address);
      return FALSE;
    }
  self->wsi = wsi;
  g_clear_pointer (&self->local_address, g_free);
  return TRUE;
}

/* Tries the next resolved address; the last failure fails the attempt. */
static void
connect_next_address (SofiaWsWebSocket *self)
{
  g_autoptr(GError) error = NULL;

  while (self->addresses != NULL)
    {
      GInetAddress *address = self->addresses->data;
      g_autofree char *text = g_inet_address_to_string (address);

      self->addresses = g_list_delete_link (self->addresses, self->addresses);
      g_object_unref (address);
      g_clear_error (&error);
      if (connect_address (self, text, &error))
        return;
    }
  fail_attempt (self, g_steal_pointer (&error));
}

static gboolean
on_next_address_due (gpointer user_data)
{
  SofiaWsWebSocket *self = user_data;

  g_clear_pointer (&self->next_address_source, g_source_unref);
  connect_next_address (self);
  return G_SOURCE_REMOVE;
}

typedef struct {
  SofiaWsWebSocket *self;         /* not a reference: valid while the cancellable is not
                                   * cancelled (every path that drops the attempt cancels) */
  GCancellable *cancellable;
} Resolution;

static void
on_resolved (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Resolution *r = user_data;
  SofiaWsWebSocket *self = r->self;
  g_autoptr(GError) error = NULL;
  GList *addresses;

  addresses = g_resolver_lookup_by_name_finish (G_RESOLVER (source), result, &error);
  if (g_cancellable_is_cancelled (r->cancellable))
    {
      /* The attempt was dropped (disconnect, timeout, dispose, a new attempt). */
      g_resolver_free_addresses (addresses);
      g_object_unref (r->cancellable);
      g_free (r);
      return;
    }
  g_object_unref (r->cancellable);
  g_free (r);
  g_clear_object (&self->resolve_cancellable);

  if (addresses == NULL)
    {
      fail_attempt (self, g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_RESOLVE,
                                       "Could not resolve %s: %s", self->target_host,
                                       error != NULL ? error->message : "no address"));
      return;
    }
  g_debug ("%s resolved to %u address(es)", self->target_host, g_list_length (addresses));
  self->addresses = addresses;
  connect_next_address (self);
}

/* Starts an attempt to connect to the server: checks the URL, arms the connection timeout
 * (which covers the whole attempt), then connects to an IP literal at once or looks a name up
 * with GLib's resolver, asynchronously, on the transport's context. The outcome comes later,
 * through fail_attempt() or on_established(); FALSE (and @error) only for what fails now. */
static gboolean
start_client (SofiaWsWebSocket  *self,
              GError           **error)
{
  g_autoptr(GUri) uri = NULL;
  g_autoptr(GResolver) resolver = NULL;
  struct lws_vhost *vhost;
  Resolution *r;
  const char *scheme;
  const char *host;
  int port;

  if (self->accepted)
    {
      g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                           "A connection accepted by a listener cannot be reconnected");
      return FALSE;
    }
  if (self->server == NULL)
    {
      g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                           "No server set: the \"server\" property needs a ws:// or wss:// URL");
      return FALSE;
    }

  uri = g_uri_parse (self->server, G_URI_FLAGS_ENCODED, NULL);
  scheme = uri != NULL ? g_uri_get_scheme (uri) : NULL;
  host = uri != NULL ? g_uri_get_host (uri) : NULL;
  if (scheme == NULL || host == NULL || *host == '\0' ||
      (g_ascii_strcasecmp (scheme, "ws") != 0 && g_ascii_strcasecmp (scheme, "wss") != 0))
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_ARGUMENT,
                   "\"%s\" is not a ws:// or wss:// URL", self->server);
      return FALSE;
    }

  cancel_resolution (self);
  self->secure = g_ascii_strcasecmp (scheme, "wss") == 0;
  port = g_uri_get_port (uri);
  if (port <= 0)
    port = self->secure ? 443 : 80;
  self->target_port = port;
  g_free (self->target_path);
  self->target_path = g_uri_join (G_URI_FLAGS_ENCODED, NULL, NULL, NULL, -1,
                                  *g_uri_get_path (uri) ? g_uri_get_path (uri) : "/",
                                  g_uri_get_query (uri), NULL);
  g_free (self->target_host);
  self->target_host = g_strdup (host);
  g_free (self->target_host_header);
  /* RFC 7230 5.4: an IPv6 literal keeps its brackets; the default port may be left out. */
  if (strchr (host, ':') != NULL)
    self->target_host_header = port == (self->secure ? 443 : 80)
                                 ? g_strdup_printf ("[%s]", host)
                                 : g_strdup_printf ("[%s]:%d", host, port);
  else
    self->target_host_header = port == (self->secure ? 443 : 80)
                                 ? g_strdup (host)
                                 : g_strdup_printf ("%s:%d", host, port);

  if (self->loop == NULL)
    {
      self->loop = sofia_ws_loop_ref_for_context (self->context, error);
      if (self->loop == NULL)
        return FALSE;
    }
  /* Made (or its CA file found wrong) now rather than after the resolution. */
  vhost = sofia_ws_loop_get_client_vhost (self->loop, self->secure ? self->tls_ca_file : NULL,
                                          error);
  if (vhost == NULL)
    return FALSE;

  g_clear_error (&self->pending_error);
  g_clear_pointer (&self->remote_address, g_free);
  self->peer_close_code = 0;
  g_clear_pointer (&self->peer_close_reason, g_free);
  self->close_requested = FALSE;
  self->close_started = FALSE;
  self->close_deadline = FALSE;
  clear_source (&self->send_timeout_source);

  clear_source (&self->connect_timeout_source);
  self->connect_timeout_source = timeout_source_new (self, self->connection_timeout * 1000,
                                                     on_connect_timeout,
                                                     "[sofia-ws] connection timeout");
  if (g_hostname_is_ip_address (host))
    {
      if (!connect_address (self, host, error))
        {
          clear_source (&self->connect_timeout_source);
          return FALSE;
        }
      return TRUE;
    }

  /* A name: looked up without blocking the loop (lws would call getaddrinfo() here). */
  self->resolve_cancellable = g_cancellable_new ();
  r = g_new0 (Resolution, 1);
  r->self = self;
  r->cancellable = g_object_ref (self->resolve_cancellable);
  resolver = g_resolver_get_default ();
  g_debug ("resolving %s", host);
  g_main_context_push_thread_default (self->context);
  g_resolver_lookup_by_name_async (resolver, host, self->resolve_cancellable, on_resolved, r);
  g_main_context_pop_thread_default (self->context);
  return TRUE;
}

static void
on_established (SofiaWsWebSocket *self,
                struct lws       *wsi)
{
  char address[128] = "";

  lws_get_peer_simple (wsi, address, sizeof address);
  g_free (self->remote_address);
  self->remote_address = g_strdup (address);
  cancel_resolution (self);       /* the addresses not tried */
  self->reconnection_attempt = 0;
  self->last_alive = g_get_monotonic_time ();
  g_debug ("connected to %s (%s)", self->server, self->remote_address);

  if (self->connect_task != NULL)
    complete_connect (self, NULL);
  else if (self->reconnecting)
    {
      self->reconnecting = FALSE;
      clear_source (&self->connect_timeout_source);
      sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (self),
                                     SOFIA_WS_TRANSPORT_STATE_CONNECTED);
    }
  start_keepalive (self);
  if (!g_queue_is_empty (&self->tx))
    {
      watch_send (self);
      request_writable (self);
    }
}

static void
on_connection_error (SofiaWsWebSocket *self,
                     const char       *why)
{
  GError *error = connection_error_from_lws (self, why);

  self->wsi = NULL;
  g_clear_pointer (&self->local_address, g_free);
  self->start_failed = TRUE;
  /* Refused at one address of the name: the next one, from the loop (not from inside lws's
   * callback), within the same connection timeout. */
  if (self->addresses != NULL &&
      g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CONNECTION_REFUSED) &&
      (self->connect_task != NULL || self->reconnecting))
    {
      g_debug ("%s; trying %s's next address", error->message, self->target_host);
      g_error_free (error);
      if (self->next_address_source == NULL)
        self->next_address_source = timeout_source_new (self, 0, on_next_address_due,
                                                        "[sofia-ws] next address");
      return;
    }
  fail_attempt (self, error);
}

/* ---- reconnection --------------------------------------------------------------------- */

static gboolean
on_reconnection_due (gpointer user_data)
{
  SofiaWsWebSocket *self = user_data;
  g_autoptr(GError) error = NULL;

  g_clear_pointer (&self->reconnection_source, g_source_unref);
  if (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (self)) !=
      SOFIA_WS_TRANSPORT_STATE_DISCONNECTED)
    return G_SOURCE_REMOVE;

  self->reconnection_attempt++;
  g_debug ("reconnecting to %s (attempt %u of %u)", self->server, self->reconnection_attempt,
           self->reconnection_attempts);
  self->reconnecting = TRUE;
  sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (self), SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  if (!start_client (self, &error))
    {
      self->reconnecting = FALSE;
      sofia_ws_transport_emit_transport_error (SOFIA_WS_TRANSPORT (self), error);
      sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (self),
                                     SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
      schedule_reconnection (self);
    }
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnection (SofiaWsWebSocket *self)
{
  guint delay_ms;
  guint exponent;

  if (self->accepted || self->reconnection_attempt >= self->reconnection_attempts ||
      self->reconnection_source != NULL)
    return;

  /* The first attempt at once, as SIP.js does; then the delay, doubling each time (capped),
   * plus up to 20% jitter so that a server restart does not see all clients at once. */
  if (self->reconnection_attempt == 0)
    delay_ms = 0;
  else
    {
      exponent = MIN (self->reconnection_attempt - 1, 6);
      delay_ms = MIN ((guint64) self->reconnection_delay * 1000 << exponent,
                      MAX_RECONNECTION_DELAY * 1000);
      delay_ms += g_random_int_range (0, delay_ms / 5 + 1);
    }
  self->reconnection_source = timeout_source_new (self, delay_ms, on_reconnection_due,
                                                  "[sofia-ws] reconnection");
}

/* ---- closing -------------------------------------------------------------------------- */

/* lws hangs up on a peer that let its liveness policy run out: no PONG for that long. */
static gboolean
peer_timed_out (SofiaWsWebSocket *self)
{
  gint64 silent_ms = (g_get_monotonic_time () - self->last_alive) / 1000;

  return self->ping_interval > 0 && self->peer_close_code == 0 &&
         silent_ms + 500 >= (gint64) (self->ping_interval + self->ping_timeout) * 1000;
}

/* lws says the connection is gone (after it was established). */
static void
on_closed (SofiaWsWebSocket *self)
{
  SofiaWsTransport *transport = SOFIA_WS_TRANSPORT (self);
  SofiaWsListener *listener;
  g_autoptr(GError) error = NULL;
  g_autoptr(GTask) disconnect_task = g_steal_pointer (&self->disconnect_task);

  self->wsi = NULL;
  g_clear_pointer (&self->local_address, g_free);
  stop_keepalive (self);
  clear_source (&self->send_timeout_source);
  self->close_deadline = FALSE;
  /* A message cut off by the close is no message; a reconnection starts afresh. */
  self->rx_in_message = FALSE;
  g_clear_pointer (&self->rx, g_byte_array_unref);

  if (self->pending_error != NULL)
    error = g_steal_pointer (&self->pending_error);
  else if (peer_timed_out (self))
    error = g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_PEER_TIMEOUT,
                         "%s did not answer WebSocket pings for %u s", peer_name (self),
                         self->ping_interval + self->ping_timeout);
  else if (self->peer_close_code != 0)
    error = g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                         "WebSocket closed by %s (code: %u%s%s)", peer_name (self),
                         self->peer_close_code, self->peer_close_reason ? ", " : "",
                         self->peer_close_reason ? self->peer_close_reason : "");
  else
    error = g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                         "WebSocket connection to %s lost (code: 1006)", peer_name (self));

  fail_queue (self, error);
  g_debug ("%s: %s", peer_name (self), error->message);

  if (disconnect_task != NULL)
    g_task_return_boolean (disconnect_task, TRUE);
  else if (self->connect_task != NULL)
    complete_connect (self, g_error_copy (error));
  else if (sofia_ws_transport_get_state (transport) == SOFIA_WS_TRANSPORT_STATE_CONNECTED ||
           sofia_ws_transport_get_state (transport) == SOFIA_WS_TRANSPORT_STATE_DISCONNECTING)
    {
      sofia_ws_transport_emit_transport_error (transport, error);
      sofia_ws_transport_transition (transport, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
      schedule_reconnection (self);
    }

  /* Read last: a handler above may have let the listener go, which forgot us. */
  listener = g_steal_pointer (&self->listener);
  if (listener != NULL)
    {
      g_object_ref (listener);
      sofia_ws_listener_connection_closed (listener, self);   /* may drop our last reference */
      g_object_unref (listener);
    }
}

void
_sofia_ws_websocket_set_message_sink (SofiaWsWebSocket   *self,
                                      SofiaWsMessageSink  sink,
                                      gpointer            user_data)
{
  g_return_if_fail (SOFIA_WS_IS_WEBSOCKET (self));

  self->sink = sink;
  self->sink_data = sink != NULL ? user_data : NULL;
}

void
_sofia_ws_websocket_set_activity_sink (SofiaWsWebSocket    *self,
                                       SofiaWsActivitySink  sink,
                                       gpointer             user_data)
{
  g_return_if_fail (SOFIA_WS_IS_WEBSOCKET (self));

  self->activity_sink = sink;
  self->activity_data = sink != NULL ? user_data : NULL;
}

void
sofia_ws_websocket_forget_listener (SofiaWsWebSocket *self)
{
  self->listener = NULL;
}

/* Closes the connection for a fault of the peer's; what it sends next is ignored. */
static int
close_for_fault (SofiaWsWebSocket *self,
                 struct lws       *wsi,
                 guint16           code,
                 GError           *error)
{
  g_clear_error (&self->pending_error);
  self->pending_error = error;
  fail_queue (self, error);
  start_close (self, wsi, code, error->message);
  return 0;
}

/* ---- data ----------------------------------------------------------------------------- */

/* Queues a CRLF keepalive or answer, unless one of its @kind already waits. */
static void
queue_internal (SofiaWsWebSocket *self,
                const char       *data,
                guint             kind)
{
  OutMessage *m;

  if ((self->tx_internal & kind) != 0 || self->wsi == NULL || self->close_requested ||
      self->close_started)
    return;
  m = out_message_new (self, data, strlen (data), NULL);
  m->internal = kind;
  push_message (self, m);
  watch_send (self);
  request_writable (self);
}

/* Whether anybody hears message, or message-sent, beyond the sink: a handler, or a class
 * handler. A message is copied as a string for them only then. */
static gboolean
wants_message (SofiaWsWebSocket *self)
{
  return SOFIA_WS_TRANSPORT_GET_CLASS (self)->message != NULL ||
         g_signal_has_handler_pending (self, message_id, 0, FALSE);
}

static gboolean
wants_message_sent (SofiaWsWebSocket *self)
{
  return SOFIA_WS_TRANSPORT_GET_CLASS (self)->message_sent != NULL ||
         g_signal_has_handler_pending (self, message_sent_id, 0, FALSE);
}

/* @data: the whole message: lws's own buffer for a message in one frame, else the fragments
 * reassembled. */
static int
on_message_complete (SofiaWsWebSocket *self,
                     struct lws       *wsi,
                     const guint8     *data,
                     gsize             len)
{
  SofiaWsTransport *transport = SOFIA_WS_TRANSPORT (self);
  SofiaWsMessageSink sink;
  g_autofree char *message = NULL;
  gboolean has_nul;
  gboolean valid;

  self->rx_in_message = FALSE;

  if (len == 0)
    {
      g_debug ("%s: empty WebSocket message ignored", peer_name (self));
      return 0;
    }

  /* A SIP body may be binary (RFC 7118 5): NUL is data, and valid UTF-8 in text too. */
  has_nul = memchr (data, '\0', len) != NULL;
  valid = has_nul ? is_utf8_with_nul (data, len) : is_utf8 (data, len);
  if (!self->rx_binary && !valid)
    return close_for_fault (self, wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD,
                            g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_MESSAGE,
                                         "%s sent invalid UTF-8 in a text message",
                                         peer_name (self)));

  if (is_crlf_keepalive (data, len))
    {
      /* Activity, as on Sofia's tcp: an idle timeout counts from here. */
      if (self->activity_sink != NULL)
        self->activity_sink (self, self->activity_data);
      /* RFC 5626 4.4.1: a double CRLF "ping" is answered with a single CRLF "pong". */
      if (len >= 4)
        queue_internal (self, "\r\n", INTERNAL_PONG);
      else if (self->awaiting_keepalive_reply)
        {
          self->awaiting_keepalive_reply = FALSE;
          clear_source (&self->debounce_source);
          g_signal_emit (self, signals[SIGNAL_KEEPALIVE], 0, TRUE);
        }
      return 0;
    }

  trace (self, "received from", (const char *) data, len);
  /* A sink (the tport module) takes the bytes as they are; the signal, with its copy as a
   * string, goes only to whoever listens. Both under one run-to-completion bracket, the
   * signal first: the sink may answer at once (Sofia replies inside it), and whoever watches
   * the signals sees message before the reply's message-sent, in the order they happened. */
  sink = self->sink;
  sofia_ws_transport_enter (transport);
  if (sink == NULL || wants_message (self))
    {
      /* Binary messages that are not UTF-8 are decoded as SIP.js 0.21 does (TextDecoder);
       * a NUL, which a C string cannot hold, becomes U+FFFD like an invalid byte. */
      message = valid && !has_nul ? g_strndup ((const char *) data, len)
                                  : g_utf8_make_valid ((const char *) data, len);
      sofia_ws_transport_emit_message (transport, message);
    }
  if (sink != NULL)
    sink (self, (const char *) data, len, self->sink_data);
  sofia_ws_transport_leave (transport);
  return 0;
}

static int
on_receive (SofiaWsWebSocket *self,
            struct lws       *wsi,
            const void       *in,
            size_t            len)
{
  if (self->pending_error != NULL)
    return 0;

  if (!self->rx_in_message)
    {
      /* The usual case, a message in one frame, is taken from lws's buffer as it is. */
      self->rx_binary = lws_frame_is_binary (wsi);
      if (lws_is_final_fragment (wsi) && lws_remaining_packet_payload (wsi) == 0 &&
          len <= self->max_message_size)
        return on_message_complete (self, wsi, in, len);
      self->rx_in_message = TRUE;
      if (self->rx == NULL)
        self->rx = g_byte_array_new ();
    }

  /* The frame's declared length counts at its first bytes: a frame announcing more than
   * max-message-size is refused before anything waits for the rest of it. */
  if (self->rx->len + len > self->max_message_size ||
      lws_remaining_packet_payload (wsi) > self->max_message_size - self->rx->len - len)
    {
      self->rx_in_message = FALSE;
      g_clear_pointer (&self->rx, g_byte_array_unref);
      if (self->listener != NULL)
        sofia_ws_listener_hold_partial (self->listener, self, 0);
      return close_for_fault (self, wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                              g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_MESSAGE_TOO_LARGE,
                                           "%s sent a message larger than %u bytes",
                                           peer_name (self), self->max_message_size));
    }

  /* The listener bounds what all its connections hold in part (max-partial-bytes). */
  if (self->listener != NULL &&
      !sofia_ws_listener_hold_partial (self->listener, self, self->rx->len + len))
    {
      self->rx_in_message = FALSE;
      g_clear_pointer (&self->rx, g_byte_array_unref);
      return close_for_fault (self, wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                              g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_MESSAGE_TOO_LARGE,
                                           "%s: no room for more partial messages on the "
                                           "listener", peer_name (self)));
    }

  g_byte_array_append (self->rx, in, len);
  if (!lws_is_final_fragment (wsi) || lws_remaining_packet_payload (wsi) > 0)
    return 0;
  {
    /* Reassembled: the buffer goes with the message rather than staying at its size (up to
     * max-message-size) on a connection that may be idle from now on. */
    g_autoptr(GByteArray) rx = g_steal_pointer (&self->rx);

    self->rx_in_message = FALSE;
    if (self->listener != NULL)
      sofia_ws_listener_hold_partial (self->listener, self, 0);
    return on_message_complete (self, wsi, rx->data, rx->len);
  }
}

/* Writes one message, @payload (with LWS_PRE bytes of headroom before it), to @wsi; when
 * @announce and somebody listens to message-sent, *@sent is its copy as a string, for the
 * caller to emit once it is done with the connection. FALSE when lws did not take it all. */
static gboolean
write_frame (SofiaWsWebSocket  *self,
             struct lws        *wsi,
             guint8            *payload,
             gsize              len,
             gboolean           binary,
             gboolean           announce,
             char             **sent)
{
  /* Before the write: a client's lws_write() masks the payload in place. */
  trace (self, "sent to", (const char *) payload, len);
  if (announce && wants_message_sent (self))
    *sent = binary ? g_utf8_make_valid ((const char *) payload, len)
                   : g_strndup ((const char *) payload, len);
  if (lws_write (wsi, payload, len, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int) len)
    {
      g_clear_pointer (sent, g_free);
      return FALSE;
    }
  self->tx_progress = g_get_monotonic_time ();
  return TRUE;
}

static int
on_writeable (SofiaWsWebSocket *self,
              struct lws       *wsi)
{
  OutMessage *m;

  if (self->close_started)
    return 0;

  m = g_queue_pop_head (&self->tx);
  if (m != NULL)
    {
      g_autofree char *sent = NULL;

      out_message_unqueued (m);
      if (!write_frame (self, wsi, m->buffer + LWS_PRE, m->len, m->binary,
                        m->announce || m->task != NULL, &sent))
        {
          if (m->task != NULL)
            g_task_return_new_error (m->task, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                     "Writing to %s failed", peer_name (self));
          out_message_free (m);
          self->close_started = TRUE;
          close_wsi (wsi, 0, NULL);
          return 0;
        }

      if ((!g_queue_is_empty (&self->tx) || self->close_requested) && self->wsi == wsi)
        lws_callback_on_writable (wsi);

      /* message-sent now, as the message goes on the wire, and before the send completes
       * (send_finish overrides the transport's own, which would come from the task's
       * callback, in a later iteration, possibly after the response to this very message).
       * A handler may drop the last reference to us: nothing below touches self. */
      if (sent != NULL)
        sofia_ws_transport_emit_message_sent (SOFIA_WS_TRANSPORT (self), sent);
      if (m->task != NULL)
        g_task_return_boolean (m->task, TRUE);
      out_message_free (m);
      return 0;
    }

  if (self->close_requested)
    start_close (self, wsi, self->close_code, self->close_reason);
  return 0;
}

/* The send timeout: the peer took nothing of what waits for it (it does not read, and the
 * kernel's buffers and lws's are full) for send-timeout. Its connection is closed with 1008
 * and the queue freed; a close that does not complete within send-timeout more (its close
 * frame cannot be written either) is dropped by lws without a goodbye. */
static gboolean
on_send_timeout (gpointer user_data)
{
  SofiaWsWebSocket *self = user_data;
  struct lws *wsi = self->wsi;
  gint64 idle_ms;

  g_clear_pointer (&self->send_timeout_source, g_source_unref);
  if (wsi == NULL)
    return G_SOURCE_REMOVE;

  if (self->close_deadline)
    {
      g_debug ("%s: the close did not complete within %u s: dropping the connection",
               peer_name (self), self->send_timeout);
      self->close_deadline = FALSE;
      fail_queue (self, &(GError) { SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                    (char *) "The connection was dropped" });
      /* Any reason but the keep-alive one marks the socket unusable: no flush, no frame. */
      lws_set_timeout (wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
      sofia_ws_loop_wake (self->loop, wsi);
      return G_SOURCE_REMOVE;
    }

  if (g_queue_is_empty (&self->tx) && !lws_partial_buffered (wsi) &&
      !(self->close_requested && !self->close_started))
    return G_SOURCE_REMOVE;       /* all written: watched again at the next queued message */

  idle_ms = (g_get_monotonic_time () - self->tx_progress) / 1000;
  if (idle_ms < (gint64) self->send_timeout * 1000)
    {
      arm_send_timeout (self, (guint) ((gint64) self->send_timeout * 1000 - idle_ms));
      return G_SOURCE_REMOVE;
    }

  if (self->close_requested)
    {
      /* Our own close, stuck behind the queue: the queue goes, the close frame is tried. */
      fail_queue (self, &(GError) { SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                    (char *) "The peer read nothing before the close" });
      start_close (self, wsi, self->close_code, self->close_reason);
    }
  else
    close_for_fault (self, wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                     g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_PEER_TIMEOUT,
                                  "%s read nothing sent to it for %u s (%" G_GSIZE_FORMAT
                                  " bytes waiting)", peer_name (self), self->send_timeout,
                                  self->tx_bytes));
  sofia_ws_loop_wake (self->loop, wsi);
  return G_SOURCE_REMOVE;
}

/* ---- keepalive (RFC 5626 CRLF) -------------------------------------------------------- */

static gboolean
on_keepalive_debounce (gpointer user_data)
{
  SofiaWsWebSocket *self = user_data;

  /* As SIP.js: no reply within the debounce time allows the next keepalive, nothing more;
   * a dead peer is found by the WebSocket close or the TCP stack. */
  g_clear_pointer (&self->debounce_source, g_source_unref);
  self->awaiting_keepalive_reply = FALSE;
  g_debug ("%s: no CRLF keepalive reply within %u s", peer_name (self),
           self->keepalive_debounce);
  g_signal_emit (self, signals[SIGNAL_KEEPALIVE], 0, FALSE);
  return G_SOURCE_REMOVE;
}

static gboolean
on_keepalive_due (gpointer user_data)
{
  SofiaWsWebSocket *self = user_data;

  g_clear_pointer (&self->keepalive_source, g_source_unref);
  if (self->wsi != NULL && !self->awaiting_keepalive_reply)
    {
      queue_internal (self, "\r\n\r\n", INTERNAL_PING);
      self->awaiting_keepalive_reply = TRUE;
      if (self->keepalive_debounce > 0)
        self->debounce_source = timeout_source_new (self, self->keepalive_debounce * 1000,
                                                    on_keepalive_debounce,
                                                    "[sofia-ws] keepalive debounce");
    }
  start_keepalive (self);
  return G_SOURCE_REMOVE;
}

static void
start_keepalive (SofiaWsWebSocket *self)
{
  guint ms;

  if (self->keepalive_interval == 0 || self->accepted || self->keepalive_source != NULL)
    return;
  /* 0.8 to 1.0 times the interval, as SIP.js. */
  ms = self->keepalive_interval * 1000;
  ms -= g_random_int_range (0, ms / 5 + 1);
  self->keepalive_source = timeout_source_new (self, ms, on_keepalive_due,
                                               "[sofia-ws] keepalive");
}

static void
stop_keepalive (SofiaWsWebSocket *self)
{
  clear_source (&self->keepalive_source);
  clear_source (&self->debounce_source);
  self->awaiting_keepalive_reply = FALSE;
}

/* ---- lws callbacks -------------------------------------------------------------------- */

static gboolean
has_sip_subprotocol (struct lws *wsi)
{
  char protocol[64] = "";

  if (lws_hdr_copy (wsi, protocol, sizeof protocol, WSI_TOKEN_PROTOCOL) <= 0)
    return FALSE;
  return g_ascii_strcasecmp (g_strstrip (protocol), "sip") == 0;
}

int
sofia_ws_websocket_handle_callback (SofiaWsWebSocket          *self,
                                    struct lws                *wsi,
                                    enum lws_callback_reasons  reason,
                                    void                      *in,
                                    size_t                     len)
{
  /* a callback may drop the last reference the application held */
  G_GNUC_UNUSED g_autoptr(SofiaWsWebSocket) hold = g_object_ref (self);

  switch (reason)
    {
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
      /* RFC 7118 4.1: the server must answer with the sip subprotocol. */
      if (!has_sip_subprotocol (wsi))
        {
          g_clear_error (&self->pending_error);
          self->pending_error = g_error_new (SOFIA_WS_ERROR, SOFIA_WS_ERROR_PROTOCOL,
                                             "%s did not accept the sip subprotocol",
                                             self->server);
          return -1;
        }
      return 0;

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      on_established (self, wsi);
      return 0;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      lws_set_opaque_user_data (wsi, NULL);
      on_connection_error (self, in);
      return 0;

    case LWS_CALLBACK_CLIENT_RECEIVE:
    case LWS_CALLBACK_RECEIVE:
      return on_receive (self, wsi, in, len);

    case LWS_CALLBACK_CLIENT_WRITEABLE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
      return on_writeable (self, wsi);

    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
    case LWS_CALLBACK_RECEIVE_PONG:
      self->last_alive = g_get_monotonic_time ();
      return 0;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (len >= 2)
        {
          const guint8 *payload = in;

          self->peer_close_code = (guint16) (payload[0] << 8 | payload[1]);
          g_free (self->peer_close_reason);
          /* The peer's text goes into error messages: keep it valid UTF-8. */
          self->peer_close_reason = len > 2 ? g_utf8_make_valid ((const char *) payload + 2,
                                                                 len - 2)
                                            : NULL;
          g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLOSE_CODE]);
        }
      else
        {
          /* RFC 6455 7.1.5: a close frame without a status code is reported as 1005. */
          self->peer_close_code = LWS_CLOSE_STATUS_NO_STATUS;
          g_clear_pointer (&self->peer_close_reason, g_free);
          g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLOSE_CODE]);
        }
      return 0;

    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_CLOSED:
      lws_set_opaque_user_data (wsi, NULL);
      on_closed (self);
      return 0;

    case LWS_CALLBACK_WSI_DESTROY:
      lws_set_opaque_user_data (wsi, NULL);
      if (self->wsi == wsi)
        {
          /* Destroyed without a close or error callback: treat as a lost connection. */
          if (self->connect_task != NULL || self->reconnecting)
            on_connection_error (self, "closed before established");
          else
            on_closed (self);
        }
      return 0;

    default:
      return 0;
    }
}

int
sofia_ws_loop_protocol_callback (struct lws               *wsi,
                                 enum lws_callback_reasons reason,
                                 void                     *user,
                                 void                     *in,
                                 size_t                    len)
{
  SofiaWsWebSocket *self;

  switch (reason)
    {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_PROTOCOL_DESTROY:
      return sofia_ws_listener_handle_callback (wsi, reason, in, len);
    default:
      break;
    }

  self = wsi != NULL ? lws_get_opaque_user_data (wsi) : NULL;
  if (self == NULL)         /* no connection (yet): a listener's wsi, or none of ours */
    return sofia_ws_listener_handle_callback (wsi, reason, in, len);
  return sofia_ws_websocket_handle_callback (self, wsi, reason, in, len);
}

/* ---- the contract --------------------------------------------------------------------- */

static gboolean
on_connect_cancelled (GCancellable *cancellable,
                      gpointer      user_data)
{
  SofiaWsWebSocket *self = user_data;

  g_clear_pointer (&self->connect_cancel_source, g_source_unref);
  abandon_wsi (self, 0);
  complete_connect (self, g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                       "Connecting to %s was cancelled", self->server));
  return G_SOURCE_REMOVE;
}

static void
sofia_ws_websocket_connect_async (SofiaWsTransport    *transport,
                                  GVariant            *options,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  SofiaWsWebSocket *self = SOFIA_WS_WEBSOCKET (transport);
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_autoptr(GError) error = NULL;

  g_task_set_source_tag (task, sofia_ws_websocket_connect_async);
  g_task_set_check_cancellable (task, FALSE);
  clear_source (&self->reconnection_source);
  self->reconnection_attempt = 0;

  self->connect_task = g_object_ref (task);
  if (!start_client (self, &error))
    {
      g_clear_object (&self->connect_task);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* The base class cancels when every caller gave up or a disconnect came first. */
  if (cancellable != NULL && self->connect_task != NULL)
    {
      self->connect_cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (self->connect_cancel_source, G_SOURCE_FUNC (on_connect_cancelled),
                             self, NULL);
      g_source_set_static_name (self->connect_cancel_source, "[sofia-ws] connect cancelled");
      g_source_attach (self->connect_cancel_source, self->context);
    }
}

static gboolean
sofia_ws_websocket_connect_finish (SofiaWsTransport  *transport,
                                   GAsyncResult      *result,
                                   gboolean          *override_event,
                                   GError           **error)
{
  *override_event = FALSE;
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
sofia_ws_websocket_disconnect_async (SofiaWsTransport    *transport,
                                     GVariant            *options,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  SofiaWsWebSocket *self = SOFIA_WS_WEBSOCKET (transport);
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
  guint16 code = 1000;
  const char *reason = NULL;

  g_task_set_source_tag (task, sofia_ws_websocket_disconnect_async);
  clear_source (&self->reconnection_source);
  stop_keepalive (self);

  if (options != NULL)
    {
      g_variant_lookup (options, "code", "q", &code);
      g_variant_lookup (options, "reason", "&s", &reason);
    }

  if (self->wsi == NULL || self->connect_task != NULL || self->reconnecting)
    {
      /* Nothing established: drop the attempt, if any. */
      self->reconnecting = FALSE;
      clear_source (&self->connect_timeout_source);
      abandon_wsi (self, 0);
      fail_queue (self, &(GError) { SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                    (char *) "The transport was disconnected" });
      g_task_return_boolean (task, TRUE);
      return;
    }

  self->close_requested = TRUE;
  self->close_code = code;
  g_free (self->close_reason);
  self->close_reason = g_strdup (reason);
  self->disconnect_task = g_steal_pointer (&task);
  watch_send (self);
  request_writable (self);
}

static gboolean
sofia_ws_websocket_disconnect_finish (SofiaWsTransport  *transport,
                                      GAsyncResult      *result,
                                      gboolean          *override_event,
                                      GError           **error)
{
  *override_event = FALSE;
  return g_task_propagate_boolean (G_TASK (result), error);
}

static gboolean
on_send_cancelled (GCancellable *cancellable,
                   gpointer      user_data)
{
  OutMessage *m = user_data;
  SofiaWsWebSocket *self = m->self;

  /* Still queued, so not on the wire yet: it can be taken back. */
  if (g_queue_remove (&self->tx, m))
    {
      out_message_unqueued (m);
      g_task_return_error_if_cancelled (m->task);
      g_clear_pointer (&m->cancel_source, g_source_unref);
      out_message_free (m);
    }
  return G_SOURCE_REMOVE;
}

/* Whether a message of @len bytes can be queued now; the error says why not. */
static gboolean
check_sendable (SofiaWsWebSocket  *self,
                gsize              len,
                GError           **error)
{
  if (len == 0)
    {
      g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_INVALID_MESSAGE,
                           "An empty message cannot be sent");
      return FALSE;
    }
  if (len > self->max_message_size)
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_MESSAGE_TOO_LARGE,
                   "The message (%" G_GSIZE_FORMAT " bytes) is larger than "
                   "max-message-size (%u bytes)", len, self->max_message_size);
      return FALSE;
    }
  if (self->wsi == NULL || self->close_requested)
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                   "The connection to %s is closing", peer_name (self));
      return FALSE;
    }
  if (g_queue_get_length (&self->tx) >= self->send_queue_limit)
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_QUEUE_FULL,
                   "The send queue to %s is full (%u messages)", peer_name (self),
                   self->send_queue_limit);
      return FALSE;
    }
  /* One message always fits: a queue under its byte limit takes the next whole. */
  if (self->tx_bytes > 0 && self->tx_bytes + len > self->send_queue_bytes)
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_QUEUE_FULL,
                   "The send queue to %s is full (%" G_GSIZE_FORMAT " bytes waiting, "
                   "send-queue-bytes is %u)", peer_name (self), self->tx_bytes,
                   self->send_queue_bytes);
      return FALSE;
    }
  return TRUE;
}

/* Queues @m, and writes it at once when nothing is ahead of it and the socket can take it,
 * rather than asking lws for a WRITEABLE callback, which costs a round of poll changes and a
 * loop iteration per message. lws buffers what the kernel does not take and finishes it on
 * its own; lws_partial_buffered() says whether it still holds such a remainder. */
static gboolean
can_write_now (SofiaWsWebSocket *self)
{
  return g_queue_is_empty (&self->tx) && self->wsi != NULL && !self->close_started &&
         !self->close_requested && self->connect_task == NULL && !self->reconnecting &&
         sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (self)) ==
           SOFIA_WS_TRANSPORT_STATE_CONNECTED &&
         !lws_partial_buffered (self->wsi);
}

static void
enqueue (SofiaWsWebSocket *self,
         OutMessage       *m)
{
  gboolean now = can_write_now (self);

  push_message (self, m);

  if (now)
    {
      struct lws *wsi = self->wsi;

      /* on_writeable() emits message-sent, whose handlers may drop our caller's reference. */
      g_object_ref (self);
      on_writeable (self, wsi);
      if (self->wsi == wsi && lws_partial_buffered (wsi))
        sofia_ws_loop_kick (self->loop);
      /* Not written whole: the peer has send-timeout to take it. Not before, for a timer per
       * message sent would cost every connection a GSource. */
      if (self->wsi == wsi && (!g_queue_is_empty (&self->tx) || lws_partial_buffered (wsi)))
        watch_send (self);
      if (!g_queue_is_empty (&self->tx) || self->close_started)
        request_writable (self);
      g_object_unref (self);
      return;
    }
  watch_send (self);
  request_writable (self);
}

/* Messages up to this size are framed on the stack by write_vectors_now(). */
#define WRITE_NOW_STACK_BYTES 4096

/* enqueue() for a message nothing waits for, when can_write_now(): written at once from a
 * frame on the stack (or on the heap, when large), without a queue entry. What the kernel
 * does not take, lws copies into its own buffer and finishes on its own, as in enqueue(). */
static void
write_vectors_now (SofiaWsWebSocket    *self,
                   const GOutputVector *vectors,
                   gsize                n_vectors,
                   gsize                len)
{
  guint8 on_stack[LWS_PRE + WRITE_NOW_STACK_BYTES];
  g_autofree guint8 *on_heap = NULL;
  g_autofree char *sent = NULL;
  struct lws *wsi = self->wsi;
  guint8 *payload;
  gsize offset = 0;

  if (len > WRITE_NOW_STACK_BYTES)
    on_heap = g_malloc (LWS_PRE + len);
  payload = (on_heap != NULL ? on_heap : on_stack) + LWS_PRE;
  for (gsize i = 0; i < n_vectors; i++)
    {
      if (vectors[i].size > 0)
        memcpy (payload + offset, vectors[i].buffer, vectors[i].size);
      offset += vectors[i].size;
    }

  /* message-sent's handlers may drop our caller's reference. */
  g_object_ref (self);
  if (!write_frame (self, wsi, payload, len, !is_utf8 (payload, len), TRUE, &sent))
    {
      self->close_started = TRUE;
      close_wsi (wsi, 0, NULL);
      request_writable (self);
    }
  else if (lws_partial_buffered (wsi))
    {
      sofia_ws_loop_kick (self->loop);
      /* Not written whole: the peer has send-timeout to take it. */
      watch_send (self);
    }
  if (sent != NULL)
    sofia_ws_transport_emit_message_sent (SOFIA_WS_TRANSPORT (self), sent);
  g_object_unref (self);
}

static void
sofia_ws_websocket_send_async (SofiaWsTransport    *transport,
                               const char          *message,
                               GVariant            *options,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  SofiaWsWebSocket *self = SOFIA_WS_WEBSOCKET (transport);
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  gsize len = strlen (message);
  GError *error = NULL;
  OutMessage *m;

  g_task_set_source_tag (task, sofia_ws_websocket_send_async);

  if (!check_sendable (self, len, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  m = out_message_new (self, message, len, task);
  if (cancellable != NULL)
    {
      m->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (m->cancel_source, G_SOURCE_FUNC (on_send_cancelled), m, NULL);
      g_source_set_static_name (m->cancel_source, "[sofia-ws] send cancelled");
      g_source_attach (m->cancel_source, self->context);
    }
  enqueue (self, m);
}

/**
 * sofia_ws_websocket_send_vectors: (skip)
 * @self: a #SofiaWsWebSocket
 * @vectors: (array length=n_vectors): the parts of one whole SIP message
 * @n_vectors: the number of @vectors
 * @error: return location for a #GError
 *
 * Sends one SIP message made of @vectors, the way a server sends: at once when nothing is
 * queued ahead of it and the socket takes it, else behind the messages already queued. The
 * message is copied, so @vectors can be reused when this returns. Nothing waits for a
 * completion: this is for C programs that send many messages, such as Sofia-SIP's transport
 * (see [method@SofiaWs.Transport.send_async] for the contract's own send). `message-sent` is
 * emitted as for [method@SofiaWs.Transport.send_async] once the message is written.
 *
 * The message goes out as a text frame when it is valid UTF-8 without NUL bytes, else as a
 * binary frame (its `message-sent` string has U+FFFD for each NUL and invalid byte, as
 * `message` has). A message queued but then cut off by the connection's end is reported by
 * that end (`transport-error`, `disconnected`), as it would be for a TCP socket.
 *
 * Returns: %TRUE when the message was written or queued; %FALSE with @error set to
 *   %SOFIA_WS_ERROR_NOT_CONNECTED (not connected), %SOFIA_WS_ERROR_CLOSED (closing),
 *   %SOFIA_WS_ERROR_INVALID_MESSAGE (empty), %SOFIA_WS_ERROR_MESSAGE_TOO_LARGE (above
 *   #SofiaWsWebSocket:max-message-size) or %SOFIA_WS_ERROR_QUEUE_FULL (the send queue holds
 *   #SofiaWsWebSocket:send-queue-limit messages)
 */
gboolean
sofia_ws_websocket_send_vectors (SofiaWsWebSocket     *self,
                                 const GOutputVector  *vectors,
                                 gsize                 n_vectors,
                                 GError              **error)
{
  OutMessage *m;
  gsize len = 0;

  g_return_val_if_fail (SOFIA_WS_IS_WEBSOCKET (self), FALSE);
  g_return_val_if_fail (vectors != NULL || n_vectors == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  for (gsize i = 0; i < n_vectors; i++)
    {
      g_return_val_if_fail (vectors[i].buffer != NULL || vectors[i].size == 0, FALSE);
      len += vectors[i].size;
    }

  if (sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (self)) !=
      SOFIA_WS_TRANSPORT_STATE_CONNECTED)
    {
      g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_NOT_CONNECTED,
                           "Not connected.");
      return FALSE;
    }
  if (!check_sendable (self, len, error))
    return FALSE;

  if (can_write_now (self))
    {
      write_vectors_now (self, vectors, n_vectors, len);
      return TRUE;
    }
  m = out_message_new_vectors (self, vectors, n_vectors, len, NULL);
  m->announce = TRUE;
  enqueue (self, m);
  return TRUE;
}

static gboolean
sofia_ws_websocket_send_finish (SofiaWsTransport  *transport,
                                GAsyncResult      *result,
                                gboolean          *override_event,
                                GError           **error)
{
  /* on_writeable() emitted message-sent as the message was written. */
  *override_event = TRUE;
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- accepted connections ------------------------------------------------------------- */

SofiaWsWebSocket *
sofia_ws_websocket_new_accepted (SofiaWsLoop     *loop,
                                 struct lws      *wsi,
                                 SofiaWsListener *listener,
                                 guint            max_message_size,
                                 guint            ping_interval,
                                 guint            ping_timeout,
                                 gboolean         trace_sip)
{
  SofiaWsWebSocket *self = g_object_new (SOFIA_WS_TYPE_WEBSOCKET,
                                         "max-message-size", max_message_size,
                                         "ping-interval", ping_interval,
                                         "ping-timeout", ping_timeout,
                                         "trace-sip", trace_sip,
                                         NULL);

  self->accepted = TRUE;
  self->loop = sofia_ws_loop_ref (loop);
  self->wsi = wsi;
  self->secure = sofia_ws_listener_get_is_secure (listener);
  self->listener = listener;

  self->remote_address = sofia_ws_listener_format_peer (lws_get_socket_fd (wsi));
  lws_set_opaque_user_data (wsi, self);
  self->last_alive = g_get_monotonic_time ();

  sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (self), SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (self), SOFIA_WS_TRANSPORT_STATE_CONNECTED);
  return self;
}

/* ---- public API ----------------------------------------------------------------------- */

/**
 * sofia_ws_websocket_new:
 * @server: (nullable): the server's URL, `ws://host[:port][/path]` or `wss://...`
 *
 * Returns: (transfer full): a new, disconnected WebSocket transport
 */
SofiaWsWebSocket *
sofia_ws_websocket_new (const char *server)
{
  return g_object_new (SOFIA_WS_TYPE_WEBSOCKET, "server", server, NULL);
}

/**
 * sofia_ws_websocket_get_server:
 * @self: a #SofiaWsWebSocket
 *
 * Returns: (nullable): the server URL; %NULL for accepted connections
 */
const char *
sofia_ws_websocket_get_server (SofiaWsWebSocket *self)
{
  g_return_val_if_fail (SOFIA_WS_IS_WEBSOCKET (self), NULL);
  return self->server;
}

/**
 * sofia_ws_websocket_get_remote_address:
 * @self: a #SofiaWsWebSocket
 *
 * Returns: (nullable): the peer's address (`IP:port` for accepted connections, the IP for
 *   clients) once connected
 */
const char *
sofia_ws_websocket_get_remote_address (SofiaWsWebSocket *self)
{
  g_return_val_if_fail (SOFIA_WS_IS_WEBSOCKET (self), NULL);
  return self->remote_address;
}

/**
 * sofia_ws_websocket_get_local_address:
 * @self: a #SofiaWsWebSocket
 *
 * Our end of the connection, `IP:port` (`[IPv6]:port`): what the peer sees as its remote
 * address. Known as soon as the TCP connection is being made (a proxy can name it in a Path
 * or Record-Route before the handshake completes), until the connection goes.
 *
 * Returns: (nullable): the local address, or %NULL without a socket
 */
const char *
sofia_ws_websocket_get_local_address (SofiaWsWebSocket *self)
{
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  char host[INET6_ADDRSTRLEN] = "";
  int fd;

  g_return_val_if_fail (SOFIA_WS_IS_WEBSOCKET (self), NULL);
  if (self->local_address != NULL || self->wsi == NULL)
    return self->local_address;
  fd = lws_get_socket_fd (self->wsi);
  if (fd < 0 || getsockname (fd, (struct sockaddr *) &sa, &len) != 0)
    return NULL;
  if (sa.ss_family == AF_INET6 &&
      IN6_IS_ADDR_V4MAPPED (&((struct sockaddr_in6 *) &sa)->sin6_addr))
    {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;

      inet_ntop (AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
      self->local_address = g_strdup_printf ("%s:%u", host, g_ntohs (in6->sin6_port));
    }
  else if (sa.ss_family == AF_INET6)
    {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;

      inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
      self->local_address = g_strdup_printf ("[%s]:%u", host, g_ntohs (in6->sin6_port));
    }
  else if (sa.ss_family == AF_INET)
    {
      struct sockaddr_in *in4 = (struct sockaddr_in *) &sa;

      if (in4->sin_port == 0)
        return NULL;              /* not bound yet */
      inet_ntop (AF_INET, &in4->sin_addr, host, sizeof host);
      self->local_address = g_strdup_printf ("%s:%u", host, g_ntohs (in4->sin_port));
    }
  return self->local_address;
}

/**
 * sofia_ws_websocket_get_close_code:
 * @self: a #SofiaWsWebSocket
 *
 * Returns: the close code the peer sent with its last close frame, or 0
 */
guint16
sofia_ws_websocket_get_close_code (SofiaWsWebSocket *self)
{
  g_return_val_if_fail (SOFIA_WS_IS_WEBSOCKET (self), 0);
  return self->peer_close_code;
}

/**
 * sofia_ws_websocket_get_buffered_amount:
 * @self: a #SofiaWsWebSocket
 *
 * As a browser's `WebSocket.bufferedAmount`: the bytes of the messages queued but not yet
 * handed to the socket (the part of one message that libwebsockets may still hold is not
 * counted). It stays within [property@SofiaWs.WebSocket:send-queue-bytes], or one message.
 *
 * Returns: the bytes waiting in the send queue
 */
gsize
sofia_ws_websocket_get_buffered_amount (SofiaWsWebSocket *self)
{
  g_return_val_if_fail (SOFIA_WS_IS_WEBSOCKET (self), 0);
  return self->tx_bytes;
}

/**
 * sofia_ws_websocket_get_is_secure:
 * @self: a #SofiaWsWebSocket
 *
 * Returns: whether the connection is (or will be) over TLS (wss)
 */
gboolean
sofia_ws_websocket_get_is_secure (SofiaWsWebSocket *self)
{
  g_return_val_if_fail (SOFIA_WS_IS_WEBSOCKET (self), FALSE);
  if (self->accepted)
    return self->secure;
  return self->server != NULL && g_ascii_strncasecmp (self->server, "wss:", 4) == 0;
}

/* ---- GObject -------------------------------------------------------------------------- */

static void
sofia_ws_websocket_dispose (GObject *object)
{
  SofiaWsWebSocket *self = SOFIA_WS_WEBSOCKET (object);

  /* Nobody holds the transport any more (pending calls would): close without events. */
  clear_source (&self->connect_timeout_source);
  clear_source (&self->connect_cancel_source);
  clear_source (&self->reconnection_source);
  stop_keepalive (self);
  abandon_wsi (self, LWS_CLOSE_STATUS_GOINGAWAY);
  fail_queue (self, &(GError) { SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                (char *) "The transport was destroyed" });
  if (self->loop != NULL)
    g_clear_pointer (&self->loop, sofia_ws_loop_unref);

  G_OBJECT_CLASS (sofia_ws_websocket_parent_class)->dispose (object);
}

static void
sofia_ws_websocket_finalize (GObject *object)
{
  SofiaWsWebSocket *self = SOFIA_WS_WEBSOCKET (object);

  g_clear_error (&self->pending_error);
  g_clear_pointer (&self->rx, g_byte_array_unref);
  g_free (self->server);
  g_free (self->target_host);
  g_free (self->target_host_header);
  g_free (self->target_path);
  g_free (self->tls_ca_file);
  g_free (self->origin);
  g_free (self->remote_address);
  g_free (self->local_address);
  g_free (self->close_reason);
  g_free (self->peer_close_reason);
  g_main_context_unref (self->context);

  G_OBJECT_CLASS (sofia_ws_websocket_parent_class)->finalize (object);
}

static void
sofia_ws_websocket_get_property (GObject    *object,
                                 guint       prop_id,
                                 GValue     *value,
                                 GParamSpec *pspec)
{
  SofiaWsWebSocket *self = SOFIA_WS_WEBSOCKET (object);

  switch (prop_id)
    {
    case PROP_SERVER: g_value_set_string (value, self->server); break;
    case PROP_CONNECTION_TIMEOUT: g_value_set_uint (value, self->connection_timeout); break;
    case PROP_KEEPALIVE_INTERVAL: g_value_set_uint (value, self->keepalive_interval); break;
    case PROP_KEEPALIVE_DEBOUNCE: g_value_set_uint (value, self->keepalive_debounce); break;
    case PROP_RECONNECTION_ATTEMPTS: g_value_set_uint (value, self->reconnection_attempts); break;
    case PROP_RECONNECTION_DELAY: g_value_set_uint (value, self->reconnection_delay); break;
    case PROP_TRACE_SIP: g_value_set_boolean (value, self->trace_sip); break;
    case PROP_TLS_CA_FILE: g_value_set_string (value, self->tls_ca_file); break;
    case PROP_TLS_VERIFY: g_value_set_boolean (value, self->tls_verify); break;
    case PROP_ORIGIN: g_value_set_string (value, self->origin); break;
    case PROP_MAX_MESSAGE_SIZE: g_value_set_uint (value, self->max_message_size); break;
    case PROP_SEND_QUEUE_LIMIT: g_value_set_uint (value, self->send_queue_limit); break;
    case PROP_SEND_QUEUE_BYTES: g_value_set_uint (value, self->send_queue_bytes); break;
    case PROP_SEND_TIMEOUT: g_value_set_uint (value, self->send_timeout); break;
    case PROP_BUFFERED_AMOUNT: g_value_set_uint64 (value, self->tx_bytes); break;
    case PROP_PING_INTERVAL: g_value_set_uint (value, self->ping_interval); break;
    case PROP_PING_TIMEOUT: g_value_set_uint (value, self->ping_timeout); break;
    case PROP_REMOTE_ADDRESS: g_value_set_string (value, self->remote_address); break;
    case PROP_CLOSE_CODE: g_value_set_uint (value, self->peer_close_code); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
sofia_ws_websocket_set_property (GObject      *object,
                                 guint         prop_id,
                                 const GValue *value,
                                 GParamSpec   *pspec)
{
  SofiaWsWebSocket *self = SOFIA_WS_WEBSOCKET (object);

  switch (prop_id)
    {
    case PROP_SERVER:
      g_free (self->server);
      self->server = g_value_dup_string (value);
      break;
    case PROP_CONNECTION_TIMEOUT: self->connection_timeout = g_value_get_uint (value); break;
    case PROP_KEEPALIVE_INTERVAL: self->keepalive_interval = g_value_get_uint (value); break;
    case PROP_KEEPALIVE_DEBOUNCE: self->keepalive_debounce = g_value_get_uint (value); break;
    case PROP_RECONNECTION_ATTEMPTS: self->reconnection_attempts = g_value_get_uint (value); break;
    case PROP_RECONNECTION_DELAY: self->reconnection_delay = g_value_get_uint (value); break;
    case PROP_TRACE_SIP: self->trace_sip = g_value_get_boolean (value); break;
    case PROP_TLS_CA_FILE:
      g_free (self->tls_ca_file);
      self->tls_ca_file = g_value_dup_string (value);
      break;
    case PROP_TLS_VERIFY: self->tls_verify = g_value_get_boolean (value); break;
    case PROP_ORIGIN:
      g_free (self->origin);
      self->origin = g_value_dup_string (value);
      break;
    case PROP_MAX_MESSAGE_SIZE: self->max_message_size = g_value_get_uint (value); break;
    case PROP_SEND_QUEUE_LIMIT: self->send_queue_limit = g_value_get_uint (value); break;
    case PROP_SEND_QUEUE_BYTES: self->send_queue_bytes = g_value_get_uint (value); break;
    case PROP_SEND_TIMEOUT: self->send_timeout = g_value_get_uint (value); break;
    case PROP_PING_INTERVAL: self->ping_interval = g_value_get_uint (value); break;
    case PROP_PING_TIMEOUT: self->ping_timeout = g_value_get_uint (value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
sofia_ws_websocket_class_init (SofiaWsWebSocketClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  SofiaWsTransportClass *transport_class = SOFIA_WS_TRANSPORT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS;

  message_sent_id = g_signal_lookup ("message-sent", SOFIA_WS_TYPE_TRANSPORT);
  message_id = g_signal_lookup ("message", SOFIA_WS_TYPE_TRANSPORT);

  object_class->dispose = sofia_ws_websocket_dispose;
  object_class->finalize = sofia_ws_websocket_finalize;
  object_class->get_property = sofia_ws_websocket_get_property;
  object_class->set_property = sofia_ws_websocket_set_property;

  transport_class->connect_async = sofia_ws_websocket_connect_async;
  transport_class->connect_finish = sofia_ws_websocket_connect_finish;
  transport_class->disconnect_async = sofia_ws_websocket_disconnect_async;
  transport_class->disconnect_finish = sofia_ws_websocket_disconnect_finish;
  transport_class->send_async = sofia_ws_websocket_send_async;
  transport_class->send_finish = sofia_ws_websocket_send_finish;

  /**
   * SofiaWsWebSocket:server:
   *
   * The server to connect to: `ws://host[:port][/path]` or `wss://...` (SIP.js `server`).
   *
   * A host name is looked up with GLib's default [class@Gio.Resolver], asynchronously on the
   * transport's context (the loop is never blocked); its addresses are tried in the resolver's
   * order until one accepts the TCP connection. The name is what the Host header, the TLS SNI
   * and the check of the server's certificate use. An IP literal is connected to directly. A
   * name that cannot be resolved fails the connect with %SOFIA_WS_ERROR_RESOLVE.
   */
  properties[PROP_SERVER] =
    g_param_spec_string ("server", NULL, NULL, NULL, rw);

  /**
   * SofiaWsWebSocket:connection-timeout:
   *
   * Seconds to establish the connection (the lookup of the server's host name, TCP, TLS and
   * the WebSocket handshake) before the connect fails with %SOFIA_WS_ERROR_CONNECT_TIMEOUT.
   */
  properties[PROP_CONNECTION_TIMEOUT] =
    g_param_spec_uint ("connection-timeout", NULL, NULL, 1, 3600, DEFAULT_CONNECTION_TIMEOUT, rw);

  /**
   * SofiaWsWebSocket:keepalive-interval:
   *
   * Seconds between RFC 5626 CRLF keepalives ("\r\n\r\n"), each sent after 0.8 to 1.0
   * times this interval; 0 (the default) sends none.
   */
  properties[PROP_KEEPALIVE_INTERVAL] =
    g_param_spec_uint ("keepalive-interval", NULL, NULL, 0, 86400, 0, rw);

  /**
   * SofiaWsWebSocket:keepalive-debounce:
   *
   * Seconds to wait for the CRLF reply to a keepalive before another may be sent.
   */
  properties[PROP_KEEPALIVE_DEBOUNCE] =
    g_param_spec_uint ("keepalive-debounce", NULL, NULL, 0, 86400, DEFAULT_KEEPALIVE_DEBOUNCE,
                       rw);

  /**
   * SofiaWsWebSocket:reconnection-attempts:
   *
   * How many times to reconnect after the connection was lost (not after a requested
   * disconnect); 0, the default, never reconnects. The first attempt is made at once, later
   * ones after [property@SofiaWs.WebSocket:reconnection-delay], doubling each time up to a
   * minute, with up to 20% random jitter.
   */
  properties[PROP_RECONNECTION_ATTEMPTS] =
    g_param_spec_uint ("reconnection-attempts", NULL, NULL, 0, G_MAXUINT, 0, rw);

  /**
   * SofiaWsWebSocket:reconnection-delay:
   *
   * Seconds before the second reconnection attempt (the base of the backoff).
   */
  properties[PROP_RECONNECTION_DELAY] =
    g_param_spec_uint ("reconnection-delay", NULL, NULL, 1, 3600, DEFAULT_RECONNECTION_DELAY,
                       rw);

  /**
   * SofiaWsWebSocket:trace-sip:
   *
   * Log every message sent and received with g_debug() (domain "SofiaWs").
   */
  properties[PROP_TRACE_SIP] =
    g_param_spec_boolean ("trace-sip", NULL, NULL, FALSE, rw);

  /**
   * SofiaWsWebSocket:tls-ca-file:
   *
   * A PEM file of the certificate authorities to trust for wss:// servers, instead of the
   * system's.
   */
  properties[PROP_TLS_CA_FILE] =
    g_param_spec_string ("tls-ca-file", NULL, NULL, NULL, rw);

  /**
   * SofiaWsWebSocket:tls-verify:
   *
   * Whether to verify the wss:// server's certificate and host name (the default). Turning
   * it off accepts any certificate: for tests only.
   */
  properties[PROP_TLS_VERIFY] =
    g_param_spec_boolean ("tls-verify", NULL, NULL, TRUE, rw);

  /**
   * SofiaWsWebSocket:origin:
   *
   * The Origin header to send in the handshake, or %NULL for none (as Node clients).
   */
  properties[PROP_ORIGIN] =
    g_param_spec_string ("origin", NULL, NULL, NULL, rw);

  /**
   * SofiaWsWebSocket:max-message-size:
   *
   * The largest message accepted or sent, in bytes. A larger incoming message closes the
   * connection with 1009; a larger send fails with %SOFIA_WS_ERROR_MESSAGE_TOO_LARGE.
   */
  properties[PROP_MAX_MESSAGE_SIZE] =
    g_param_spec_uint ("max-message-size", NULL, NULL, 1, G_MAXINT, DEFAULT_MAX_MESSAGE_SIZE,
                       rw);

  /**
   * SofiaWsWebSocket:send-queue-limit:
   *
   * How many messages may wait for the socket; a send beyond fails with
   * %SOFIA_WS_ERROR_QUEUE_FULL.
   */
  properties[PROP_SEND_QUEUE_LIMIT] =
    g_param_spec_uint ("send-queue-limit", NULL, NULL, 1, G_MAXUINT, DEFAULT_SEND_QUEUE_LIMIT,
                       rw);

  /**
   * SofiaWsWebSocket:send-queue-bytes:
   *
   * How many bytes of messages may wait for the socket (1 MiB by default); a send that
   * would go beyond fails with %SOFIA_WS_ERROR_QUEUE_FULL, except into an empty queue, which
   * takes one message of any size up to [property@SofiaWs.WebSocket:max-message-size].
   * CRLF keepalives and their answers count, and at most one answer waits at a time.
   */
  properties[PROP_SEND_QUEUE_BYTES] =
    g_param_spec_uint ("send-queue-bytes", NULL, NULL, 1, G_MAXUINT, DEFAULT_SEND_QUEUE_BYTES,
                       rw);

  /**
   * SofiaWsWebSocket:send-timeout:
   *
   * Seconds a peer may take nothing of what waits for it (30 by default; 0 for no limit),
   * as Kamailio's `tcp_send_timeout`. A peer that does not read for that long, while
   * messages or a close wait, is closed with 1008 (`transport-error` carries
   * %SOFIA_WS_ERROR_PEER_TIMEOUT) and its queue freed; a close that has not completed
   * send-timeout later (its close frame could not be written either) drops the connection.
   */
  properties[PROP_SEND_TIMEOUT] =
    g_param_spec_uint ("send-timeout", NULL, NULL, 0, 86400, DEFAULT_SEND_TIMEOUT, rw);

  /**
   * SofiaWsWebSocket:ping-interval:
   *
   * Seconds without a PONG after which a WebSocket PING is sent (RFC 7118 6); 0, the
   * default, sends none. Takes effect at the next connection.
   */
  properties[PROP_PING_INTERVAL] =
    g_param_spec_uint ("ping-interval", NULL, NULL, 0, G_MAXUINT16, 0, rw);

  /**
   * SofiaWsWebSocket:ping-timeout:
   *
   * Seconds after a PING without its PONG before the peer is declared dead: the connection
   * is dropped and `transport-error` carries %SOFIA_WS_ERROR_PEER_TIMEOUT.
   */
  properties[PROP_PING_TIMEOUT] =
    g_param_spec_uint ("ping-timeout", NULL, NULL, 1, G_MAXUINT16, DEFAULT_PING_TIMEOUT, rw);

  /**
   * SofiaWsWebSocket:remote-address:
   *
   * The peer's address once connected.
   */
  properties[PROP_REMOTE_ADDRESS] =
    g_param_spec_string ("remote-address", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * SofiaWsWebSocket:close-code:
   *
   * The close code of the peer's last close frame, or 0.
   */
  properties[PROP_CLOSE_CODE] =
    g_param_spec_uint ("close-code", NULL, NULL, 0, G_MAXUINT16, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * SofiaWsWebSocket:buffered-amount:
   *
   * The bytes queued but not yet handed to the socket (see
   * sofia_ws_websocket_get_buffered_amount()). Not notified.
   */
  properties[PROP_BUFFERED_AMOUNT] =
    g_param_spec_uint64 ("buffered-amount", NULL, NULL, 0, G_MAXUINT64, 0,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * SofiaWsWebSocket::keepalive:
   * @self: the websocket
   * @answered: %TRUE when the server answered a CRLF keepalive, %FALSE when no answer came
   *   within [property@SofiaWs.WebSocket:keepalive-debounce] (SIP.js's
   *   `keepAliveDebounceTimeout`)
   *
   * Emitted for each CRLF keepalive sent, once its fate is known.
   */
  signals[SIGNAL_KEEPALIVE] =
    g_signal_new ("keepalive", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_BOOLEAN);
}

static void
sofia_ws_websocket_init (SofiaWsWebSocket *self)
{
  self->context = g_main_context_ref_thread_default ();
}
