/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(SOFIA_WS_INSIDE) && !defined(SOFIA_WS_COMPILATION)
#error "Only <sofia-ws/sofia-ws.h> can be included directly."
#endif

#include <gio/gio.h>
#include <sofia-ws/sofia-ws-version.h>

G_BEGIN_DECLS

/**
 * SofiaWsTransportState:
 * @SOFIA_WS_TRANSPORT_STATE_DISCONNECTED: not connected; the initial state
 * @SOFIA_WS_TRANSPORT_STATE_CONNECTING: a connection is being established
 * @SOFIA_WS_TRANSPORT_STATE_CONNECTED: connected: messages can be sent and received
 * @SOFIA_WS_TRANSPORT_STATE_DISCONNECTING: the connection is being closed
 *
 * The states of a [class@SofiaWs.Transport], as SIP.js 0.21 names them.
 *
 * The legal transitions are those of SIP.js 0.21:
 *
 * - DISCONNECTED -> CONNECTING
 * - CONNECTING -> CONNECTED, DISCONNECTING or DISCONNECTED
 * - CONNECTED -> DISCONNECTING or DISCONNECTED
 * - DISCONNECTING -> CONNECTING or DISCONNECTED
 *
 * Entering a state emits the signal of the same name (`connecting`, `connected`,
 * `disconnecting`, `disconnected`), exactly once per transition.
 */
typedef enum {
  SOFIA_WS_TRANSPORT_STATE_DISCONNECTED,
  SOFIA_WS_TRANSPORT_STATE_CONNECTING,
  SOFIA_WS_TRANSPORT_STATE_CONNECTED,
  SOFIA_WS_TRANSPORT_STATE_DISCONNECTING,
} SofiaWsTransportState;

#define SOFIA_WS_TYPE_TRANSPORT (sofia_ws_transport_get_type ())

SOFIA_WS_AVAILABLE_IN_1_0
G_DECLARE_DERIVABLE_TYPE (SofiaWsTransport, sofia_ws_transport, SOFIA_WS, TRANSPORT, GObject)

/**
 * SofiaWsTransportClass:
 * @parent_class: the parent class
 * @connect_async: starts connecting. Called by the base class only in state CONNECTING, once
 *   per connection attempt, with a cancellable of the base class's own that is cancelled when
 *   every caller has given up or a disconnect is requested.
 * @connect_finish: finishes @connect_async. Sets @override_event to %TRUE when the
 *   implementation has itself moved the transport to CONNECTED (and so emitted `connected`)
 *   with [method@SofiaWs.Transport.transition]; otherwise the base class does it.
 * @disconnect_async: starts closing the connection. Called only in state DISCONNECTING, once
 *   per disconnect, after a successful connect.
 * @disconnect_finish: finishes @disconnect_async. Sets @override_event to %TRUE when the
 *   implementation has itself moved the transport to DISCONNECTED; otherwise the base class
 *   does it. On failure the base class still moves the transport to DISCONNECTED.
 * @send_async: sends one whole SIP message. Called only in state CONNECTED, with the caller's
 *   cancellable and options.
 * @send_finish: finishes @send_async. Sets @override_event to %TRUE when the implementation
 *   has emitted `message-sent` itself (with [method@SofiaWs.Transport.emit_message_sent]).
 * @is_connected: returns whether the transport is connected. The default implementation
 *   returns whether the state is CONNECTED.
 * @connecting: class closure of the #SofiaWsTransport::connecting signal
 * @connected: class closure of the #SofiaWsTransport::connected signal
 * @disconnecting: class closure of the #SofiaWsTransport::disconnecting signal
 * @disconnected: class closure of the #SofiaWsTransport::disconnected signal
 * @message_sent: class closure of the #SofiaWsTransport::message-sent signal
 * @message: class closure of the #SofiaWsTransport::message signal
 * @transport_error: class closure of the #SofiaWsTransport::transport-error signal
 *
 * The class of the SIP.js transport contract. A subclass implements the three vfunc pairs
 * (the `connectPromise`, `disconnectPromise` and `sendPromise` of SIP.js); the base class
 * keeps the state machine, joins and orders the callers, and emits the default events.
 */
struct _SofiaWsTransportClass
{
  GObjectClass parent_class;

  /*< public >*/
  void     (*connect_async)     (SofiaWsTransport    *self,
                                 GVariant            *options,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data);
  gboolean (*connect_finish)    (SofiaWsTransport    *self,
                                 GAsyncResult        *result,
                                 gboolean            *override_event,
                                 GError             **error);
  void     (*disconnect_async)  (SofiaWsTransport    *self,
                                 GVariant            *options,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data);
  gboolean (*disconnect_finish) (SofiaWsTransport    *self,
                                 GAsyncResult        *result,
                                 gboolean            *override_event,
                                 GError             **error);
  void     (*send_async)        (SofiaWsTransport    *self,
                                 const char          *message,
                                 GVariant            *options,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data);
  gboolean (*send_finish)       (SofiaWsTransport    *self,
                                 GAsyncResult        *result,
                                 gboolean            *override_event,
                                 GError             **error);
  gboolean (*is_connected)      (SofiaWsTransport    *self);

  /* signals */
  void (*connecting)      (SofiaWsTransport *self);
  void (*connected)       (SofiaWsTransport *self);
  void (*disconnecting)   (SofiaWsTransport *self);
  void (*disconnected)    (SofiaWsTransport *self);
  void (*message_sent)    (SofiaWsTransport *self,
                           const char       *message);
  void (*message)         (SofiaWsTransport *self,
                           const char       *message);
  void (*transport_error) (SofiaWsTransport *self,
                           const GError     *error);

  /*< private >*/
  gpointer padding[12];
};

/*
 * The public contract. The rules (tested in tests/test-transport.c):
 *
 * - connect while CONNECTING joins the pending attempt: every caller completes with its result.
 * - connect while CONNECTED completes at once (next main-loop iteration) with no event.
 * - connect while DISCONNECTING waits for the disconnect to finish, then connects.
 * - a failed connect emits `transport-error`, then `disconnected`; every caller gets the error.
 * - disconnect while DISCONNECTED completes at once with no event.
 * - disconnect while DISCONNECTING joins the pending disconnect.
 * - disconnect while CONNECTING emits `disconnecting`, cancels the attempt (pending connects
 *   fail with SOFIA_WS_ERROR_CLOSED) and completes once the transport is DISCONNECTED.
 * - a user-requested disconnect emits `disconnecting` then `disconnected` (as SIP.js 0.11 did).
 * - send while not CONNECTED fails with SOFIA_WS_ERROR_NOT_CONNECTED and emits
 *   `transport-error` carrying that error.
 * - a caller's cancellable only ever cancels that caller's own call. A connect attempt is
 *   abandoned (and the transport goes back to DISCONNECTED) only when every caller waiting for
 *   it has cancelled.
 * - state changes requested from inside a signal handler of the same transport (a disconnect
 *   in a `connected` handler, say) take effect as soon as that signal emission has finished,
 *   in the order they were requested: every handler of a signal sees the state the signal
 *   announces. Sends from handlers go out at once.
 */

SOFIA_WS_AVAILABLE_IN_1_0
void                  sofia_ws_transport_connect_async           (SofiaWsTransport    *self,
                                                                  GVariant            *options,
                                                                  GCancellable        *cancellable,
                                                                  GAsyncReadyCallback  callback,
                                                                  gpointer             user_data);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean              sofia_ws_transport_connect_finish          (SofiaWsTransport    *self,
                                                                  GAsyncResult        *result,
                                                                  GError             **error);
SOFIA_WS_AVAILABLE_IN_1_0
void                  sofia_ws_transport_disconnect_async        (SofiaWsTransport    *self,
                                                                  GVariant            *options,
                                                                  GCancellable        *cancellable,
                                                                  GAsyncReadyCallback  callback,
                                                                  gpointer             user_data);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean              sofia_ws_transport_disconnect_finish       (SofiaWsTransport    *self,
                                                                  GAsyncResult        *result,
                                                                  GError             **error);
SOFIA_WS_AVAILABLE_IN_1_0
void                  sofia_ws_transport_send_async              (SofiaWsTransport    *self,
                                                                  const char          *message,
                                                                  GVariant            *options,
                                                                  GCancellable        *cancellable,
                                                                  GAsyncReadyCallback  callback,
                                                                  gpointer             user_data);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean              sofia_ws_transport_send_finish             (SofiaWsTransport    *self,
                                                                  GAsyncResult        *result,
                                                                  GError             **error);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean              sofia_ws_transport_is_connected            (SofiaWsTransport    *self);
SOFIA_WS_AVAILABLE_IN_1_0
SofiaWsTransportState sofia_ws_transport_get_state               (SofiaWsTransport    *self);
SOFIA_WS_AVAILABLE_IN_1_0
void                  sofia_ws_transport_after_connected_async   (SofiaWsTransport    *self,
                                                                  GCancellable        *cancellable,
                                                                  GAsyncReadyCallback  callback,
                                                                  gpointer             user_data);
SOFIA_WS_AVAILABLE_IN_1_0
gboolean              sofia_ws_transport_after_connected_finish  (SofiaWsTransport    *self,
                                                                  GAsyncResult        *result,
                                                                  GError             **error);

/* For implementations (subclasses) only. */
SOFIA_WS_AVAILABLE_IN_1_0
void                  sofia_ws_transport_transition              (SofiaWsTransport     *self,
                                                                  SofiaWsTransportState new_state);
SOFIA_WS_AVAILABLE_IN_1_0
void                  sofia_ws_transport_emit_message            (SofiaWsTransport    *self,
                                                                  const char          *message);
SOFIA_WS_AVAILABLE_IN_1_0
void                  sofia_ws_transport_emit_message_sent       (SofiaWsTransport    *self,
                                                                  const char          *message);
SOFIA_WS_AVAILABLE_IN_1_0
void                  sofia_ws_transport_emit_transport_error    (SofiaWsTransport    *self,
                                                                  const GError        *error);

G_END_DECLS
