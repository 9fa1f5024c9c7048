/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "sofia-ws-transport.h"
#include "sofia-ws-transport-private.h"
#include "sofia-ws-error.h"
#include "sofia-ws-enum-types.h"

/**
 * SofiaWsTransport:
 *
 * The SIP.js `Transport` contract as an abstract GObject.
 *
 * A transport carries whole SIP messages to and from one peer. Subclasses implement the
 * vfunc pairs of [struct@SofiaWs.TransportClass] (SIP.js's `connectPromise`,
 * `disconnectPromise`, `sendPromise`); the base class owns the state machine
 * ([enum@SofiaWs.TransportState]), joins concurrent callers, and emits the events in
 * the order SIP.js users know: `connecting`, `connected`, `disconnecting`, `disconnected`,
 * `message-sent`, `message` and `transport-error`.
 *
 * The rules, decided once:
 *
 * - A connect while a connect is pending joins it; both complete together, with the same
 *   result. A connect while connected completes at once (in the next main-loop iteration)
 *   without an event. A connect while disconnecting waits for the disconnect, then connects.
 * - A failed connect emits `transport-error`, then `disconnected`; every caller gets the error.
 * - A disconnect while disconnected completes at once without an event; a disconnect while
 *   disconnecting joins it. A disconnect while connecting abandons the attempt: pending
 *   connects fail with %SOFIA_WS_ERROR_CLOSED.
 * - A user-requested disconnect emits `disconnecting` and then `disconnected`.
 * - A send while not connected fails with %SOFIA_WS_ERROR_NOT_CONNECTED and emits
 *   `transport-error` with that error.
 * - Cancelling a call's #GCancellable cancels that call only. A connect attempt is given up
 *   (the transport returns to DISCONNECTED, emitting `disconnected`) when all of its callers
 *   have cancelled. A disconnect, once started, always runs to its end.
 * - Transitions follow SIP.js 0.21's table (see [enum@SofiaWs.TransportState]); an illegal
 *   one is a programming error, reported with a critical warning, and the state is left as it
 *   was.
 * - Re-entrancy: a connect, disconnect or transition requested while the transport is inside
 *   one of its own operations (from any of its signal handlers, say) is queued and runs as
 *   soon as that operation ends, in request order. So every handler of a signal sees the
 *   state that signal announced, and a `disconnect` from a `connected` handler is simply
 *   done next. (SIP.js 0.21 throws "Loop detected" instead.)
 */

/**
 * SofiaWsTransportClass::connect_finish:
 * @self: a #SofiaWsTransport
 * @result: the #GAsyncResult the implementation's connect_async completed with
 * @override_event: (out): set to %TRUE when the implementation has emitted `connected` itself
 * @error: return location for a #GError
 *
 * Finishes the implementation's connect_async.
 *
 * Returns: %TRUE on success
 */
/**
 * SofiaWsTransportClass::disconnect_finish:
 * @self: a #SofiaWsTransport
 * @result: the #GAsyncResult the implementation's disconnect_async completed with
 * @override_event: (out): set to %TRUE when the implementation has emitted `disconnected` itself
 * @error: return location for a #GError
 *
 * Finishes the implementation's disconnect_async.
 *
 * Returns: %TRUE on success
 */
/**
 * SofiaWsTransportClass::send_finish:
 * @self: a #SofiaWsTransport
 * @result: the #GAsyncResult the implementation's send_async completed with
 * @override_event: (out): set to %TRUE when the implementation has emitted `message-sent` itself
 * @error: return location for a #GError
 *
 * Finishes the implementation's send_async.
 *
 * Returns: %TRUE on success
 */

typedef enum {
  REQUEST_CONNECT,
  REQUEST_DISCONNECT,
  REQUEST_TRANSITION,
} RequestKind;

typedef struct {
  RequestKind kind;
  GTask *task;                      /* connect and disconnect */
  SofiaWsTransportState state;      /* transition */
} Request;

/* Task data of a caller waiting in one of the queues below. */
typedef struct {
  SofiaWsTransport *self;           /* not a reference: the task holds one */
  GQueue *queue;                    /* the queue the task waits in, or NULL */
  GSource *cancel_source;
  GVariant *options;
} Waiter;

typedef struct {
  SofiaWsTransportState state;

  /* Run-to-completion: depth of the base class's own operations in progress, and the
   * state-changing requests that arrived meanwhile. */
  guint busy;
  GQueue deferred;

  gboolean connect_running;         /* the connect vfunc has not finished */
  gboolean connect_superseded;      /* a disconnect was requested during it */
  GCancellable *connect_cancellable;
  GQueue connect_waiters;           /* callers of the attempt in progress */
  GQueue queued_connects;           /* callers waiting for a disconnect to end */
  GError *connect_failure;          /* why the attempt in progress failed */

  gboolean disconnect_running;
  GQueue disconnect_waiters;
  GVariant *disconnect_options;     /* of a disconnect waiting for the connect vfunc */
  GError *disconnect_failure;       /* why the disconnect in progress was not clean */

  GQueue after_connected_waiters;
} SofiaWsTransportPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE (SofiaWsTransport, sofia_ws_transport, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_STATE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_CONNECTING,
  SIGNAL_CONNECTED,
  SIGNAL_DISCONNECTING,
  SIGNAL_DISCONNECTED,
  SIGNAL_MESSAGE_SENT,
  SIGNAL_MESSAGE,
  SIGNAL_TRANSPORT_ERROR,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void process_request  (SofiaWsTransport *self,
                              Request          *request);
static void start_disconnect (SofiaWsTransport *self,
                              GVariant         *options);

static gboolean
transition_is_legal (SofiaWsTransportState from,
                     SofiaWsTransportState to)
{
  switch (from)
    {
    case SOFIA_WS_TRANSPORT_STATE_DISCONNECTED:
      return to == SOFIA_WS_TRANSPORT_STATE_CONNECTING;
    case SOFIA_WS_TRANSPORT_STATE_CONNECTING:
      return to == SOFIA_WS_TRANSPORT_STATE_CONNECTED ||
             to == SOFIA_WS_TRANSPORT_STATE_DISCONNECTING ||
             to == SOFIA_WS_TRANSPORT_STATE_DISCONNECTED;
    case SOFIA_WS_TRANSPORT_STATE_CONNECTED:
      return to == SOFIA_WS_TRANSPORT_STATE_DISCONNECTING ||
             to == SOFIA_WS_TRANSPORT_STATE_DISCONNECTED;
    case SOFIA_WS_TRANSPORT_STATE_DISCONNECTING:
      return to == SOFIA_WS_TRANSPORT_STATE_CONNECTING ||
             to == SOFIA_WS_TRANSPORT_STATE_DISCONNECTED;
    default:
      return FALSE;
    }
}

/* ---- run-to-completion ---------------------------------------------------------------- */

static void
request_free (Request *request)
{
  g_clear_object (&request->task);
  g_free (request);
}

void
sofia_ws_transport_enter (SofiaWsTransport *self)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);

  g_object_ref (self);
  priv->busy++;
}

void
sofia_ws_transport_leave (SofiaWsTransport *self)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);

  /* Drain at the outermost level only, still counted as busy, so that requests made while
   * a deferred one runs are queued behind the others. */
  if (priv->busy == 1)
    {
      Request *request;

      while ((request = g_queue_pop_head (&priv->deferred)) != NULL)
        {
          process_request (self, request);
          request_free (request);
        }
    }

  priv->busy--;
  g_object_unref (self);
}

static void
submit (SofiaWsTransport *self,
        Request          *request)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);

  if (priv->busy > 0)
    {
      g_queue_push_tail (&priv->deferred, request);
      return;
    }

  sofia_ws_transport_enter (self);
  process_request (self, request);
  request_free (request);
  sofia_ws_transport_leave (self);
}

/* ---- waiting callers ------------------------------------------------------------------ */

static void
waiter_free (Waiter *waiter)
{
  if (waiter->cancel_source != NULL)
    {
      g_source_destroy (waiter->cancel_source);
      g_source_unref (waiter->cancel_source);
    }
  g_clear_pointer (&waiter->options, g_variant_unref);
  g_free (waiter);
}

static GTask *
new_task (SofiaWsTransport    *self,
          gpointer             source_tag,
          GVariant            *options,
          GCancellable        *cancellable,
          GAsyncReadyCallback  callback,
          gpointer             user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  Waiter *waiter = g_new0 (Waiter, 1);

  g_task_set_source_tag (task, source_tag);
  waiter->self = self;
  if (options != NULL)
    waiter->options = g_variant_ref_sink (options);
  g_task_set_task_data (task, waiter, (GDestroyNotify) waiter_free);

  return task;
}

static GVariant *
task_options (GTask *task)
{
  Waiter *waiter = g_task_get_task_data (task);

  return waiter->options;
}

static gboolean
on_waiter_cancelled (GCancellable *cancellable,
                     gpointer      user_data)
{
  GTask *task = user_data;
  Waiter *waiter = g_task_get_task_data (task);
  SofiaWsTransport *self = waiter->self;
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);
  GQueue *queue = waiter->queue;

  if (queue == NULL || !g_queue_remove (queue, task))
    return G_SOURCE_REMOVE;

  waiter->queue = NULL;
  g_task_return_error_if_cancelled (task);

  /* The attempt goes on while anybody still waits for it. */
  if (queue == &priv->connect_waiters &&
      g_queue_is_empty (queue) &&
      priv->connect_running &&
      !priv->connect_superseded)
    g_cancellable_cancel (priv->connect_cancellable);

  g_object_unref (task);
  return G_SOURCE_REMOVE;
}

/* Takes the reference to @task. */
static void
waiter_add (GQueue *queue,
            GTask  *task)
{
  Waiter *waiter = g_task_get_task_data (task);
  GCancellable *cancellable = g_task_get_cancellable (task);

  waiter->queue = queue;
  g_queue_push_tail (queue, task);

  if (cancellable != NULL && waiter->cancel_source == NULL)
    {
      /* A source rather than g_cancellable_connect(): it runs in the caller's context, from
       * the main loop, never under the cancellable's lock nor in a cancelling thread. */
      waiter->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (waiter->cancel_source, G_SOURCE_FUNC (on_waiter_cancelled),
                             task, NULL);
      g_source_set_static_name (waiter->cancel_source, "[sofia-ws] transport waiter");
      g_source_attach (waiter->cancel_source, g_task_get_context (task));
    }
}

static void
waiter_detach (GTask *task)
{
  Waiter *waiter = g_task_get_task_data (task);

  waiter->queue = NULL;
  if (waiter->cancel_source != NULL)
    {
      g_source_destroy (waiter->cancel_source);
      g_clear_pointer (&waiter->cancel_source, g_source_unref);
    }
}

/* Completes every caller in @queue: with success when @error is NULL. */
static void
waiters_complete (GQueue       *queue,
                  const GError *error)
{
  GTask *task;

  while ((task = g_queue_pop_head (queue)) != NULL)
    {
      waiter_detach (task);
      if (error == NULL)
        g_task_return_boolean (task, TRUE);
      else
        g_task_return_error (task, g_error_copy (error));
      g_object_unref (task);
    }
}

/* ---- signals and transitions ---------------------------------------------------------- */

static void
emit_transport_error (SofiaWsTransport *self,
                      const GError     *error)
{
  sofia_ws_transport_enter (self);
  g_signal_emit (self, signals[SIGNAL_TRANSPORT_ERROR], 0, error);
  sofia_ws_transport_leave (self);
}

static void
release_queued_connects (SofiaWsTransport *self)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);
  GTask *task;

  if (priv->state != SOFIA_WS_TRANSPORT_STATE_DISCONNECTED ||
      priv->connect_running || priv->disconnect_running)
    return;

  while ((task = g_queue_pop_head (&priv->queued_connects)) != NULL)
    {
      Request *request = g_new0 (Request, 1);

      waiter_detach (task);
      request->kind = REQUEST_CONNECT;
      request->task = task;
      g_queue_push_tail (&priv->deferred, request);
    }
}

/* Called while busy. */
static void
apply_transition (SofiaWsTransport      *self,
                  SofiaWsTransportState  new_state)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);
  static const guint state_signals[] = {
    [SOFIA_WS_TRANSPORT_STATE_DISCONNECTED] = SIGNAL_DISCONNECTED,
    [SOFIA_WS_TRANSPORT_STATE_CONNECTING] = SIGNAL_CONNECTING,
    [SOFIA_WS_TRANSPORT_STATE_CONNECTED] = SIGNAL_CONNECTED,
    [SOFIA_WS_TRANSPORT_STATE_DISCONNECTING] = SIGNAL_DISCONNECTING,
  };

  g_return_if_fail (new_state <= SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);
  g_return_if_fail (transition_is_legal (priv->state, new_state));

  priv->state = new_state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
  g_signal_emit (self, signals[state_signals[new_state]], 0);

  /* The signal's handlers have run; now the callers waiting for this state. Their
   * callbacks may request more: those are deferred, as the transport is busy. */
  switch (new_state)
    {
    case SOFIA_WS_TRANSPORT_STATE_CONNECTED:
      g_clear_error (&priv->connect_failure);
      waiters_complete (&priv->connect_waiters, NULL);
      waiters_complete (&priv->after_connected_waiters, NULL);
      break;

    case SOFIA_WS_TRANSPORT_STATE_DISCONNECTED:
      if (!g_queue_is_empty (&priv->connect_waiters))
        {
          g_autoptr(GError) error = g_steal_pointer (&priv->connect_failure);

          if (error == NULL)
            error = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                         "The connection closed before it was established");
          waiters_complete (&priv->connect_waiters, error);
        }
      g_clear_error (&priv->connect_failure);
      if (priv->connect_running && !priv->connect_superseded)
        g_cancellable_cancel (priv->connect_cancellable);
      waiters_complete (&priv->disconnect_waiters, priv->disconnect_failure);
      g_clear_error (&priv->disconnect_failure);
      release_queued_connects (self);
      break;

    case SOFIA_WS_TRANSPORT_STATE_CONNECTING:
    case SOFIA_WS_TRANSPORT_STATE_DISCONNECTING:
    default:
      break;
    }
}

/* ---- connect -------------------------------------------------------------------------- */

static void
on_connect_done (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  SofiaWsTransport *self = SOFIA_WS_TRANSPORT (source);
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);
  SofiaWsTransportClass *klass = SOFIA_WS_TRANSPORT_GET_CLASS (self);
  g_autoptr(GError) error = NULL;
  gboolean override_event = FALSE;
  gboolean ok;

  sofia_ws_transport_enter (self);

  ok = klass->connect_finish (self, result, &override_event, &error);
  priv->connect_running = FALSE;
  g_clear_object (&priv->connect_cancellable);

  if (priv->connect_superseded)
    {
      /* A disconnect took over while connecting; its callers wait for DISCONNECTED. */
      g_autoptr(GVariant) options = g_steal_pointer (&priv->disconnect_options);

      priv->connect_superseded = FALSE;
      if (ok && priv->state == SOFIA_WS_TRANSPORT_STATE_DISCONNECTING)
        start_disconnect (self, options);
      else if (priv->state != SOFIA_WS_TRANSPORT_STATE_DISCONNECTED)
        apply_transition (self, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
    }
  else if (priv->state != SOFIA_WS_TRANSPORT_STATE_CONNECTING)
    {
      /* The implementation already moved on (it announced CONNECTED itself, or the
       * connection dropped while connecting): its transitions told the callers. */
    }
  else if (ok)
    {
      if (!override_event)
        apply_transition (self, SOFIA_WS_TRANSPORT_STATE_CONNECTED);
    }
  else
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        emit_transport_error (self, error);
      g_clear_error (&priv->connect_failure);
      priv->connect_failure = g_steal_pointer (&error);
      if (priv->state == SOFIA_WS_TRANSPORT_STATE_CONNECTING)
        apply_transition (self, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
    }

  release_queued_connects (self);
  sofia_ws_transport_leave (self);
  g_object_unref (self);
}

static void
start_connect (SofiaWsTransport *self,
               GVariant         *options)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);
  SofiaWsTransportClass *klass = SOFIA_WS_TRANSPORT_GET_CLASS (self);

  priv->connect_running = TRUE;
  priv->connect_superseded = FALSE;
  priv->connect_cancellable = g_cancellable_new ();
  g_clear_error (&priv->connect_failure);

  apply_transition (self, SOFIA_WS_TRANSPORT_STATE_CONNECTING);
  klass->connect_async (self, options, priv->connect_cancellable, on_connect_done,
                        g_object_ref (self));
}

static void
process_connect (SofiaWsTransport *self,
                 GTask            *task)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);

  switch (priv->state)
    {
    case SOFIA_WS_TRANSPORT_STATE_CONNECTED:
      g_task_return_boolean (task, TRUE);
      break;

    case SOFIA_WS_TRANSPORT_STATE_CONNECTING:
      waiter_add (&priv->connect_waiters, g_object_ref (task));
      break;

    case SOFIA_WS_TRANSPORT_STATE_DISCONNECTED:
      if (!priv->connect_running && !priv->disconnect_running)
        {
          waiter_add (&priv->connect_waiters, g_object_ref (task));
          start_connect (self, task_options (task));
          break;
        }
      G_GNUC_FALLTHROUGH;

    case SOFIA_WS_TRANSPORT_STATE_DISCONNECTING:
    default:
      /* Wait for the previous connection to be gone entirely. */
      waiter_add (&priv->queued_connects, g_object_ref (task));
      break;
    }
}

/* ---- disconnect ----------------------------------------------------------------------- */

static void
on_disconnect_done (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  SofiaWsTransport *self = SOFIA_WS_TRANSPORT (source);
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);
  SofiaWsTransportClass *klass = SOFIA_WS_TRANSPORT_GET_CLASS (self);
  g_autoptr(GError) error = NULL;
  gboolean override_event = FALSE;
  gboolean ok;

  sofia_ws_transport_enter (self);

  ok = klass->disconnect_finish (self, result, &override_event, &error);
  priv->disconnect_running = FALSE;

  if (!ok)
    {
      emit_transport_error (self, error);
      g_clear_error (&priv->disconnect_failure);
      if (priv->state != SOFIA_WS_TRANSPORT_STATE_DISCONNECTED)
        priv->disconnect_failure = g_steal_pointer (&error);
    }

  /* A failed close still leaves the transport closed. With override_event the
   * implementation has made (or will make) the transition itself. */
  if (priv->state != SOFIA_WS_TRANSPORT_STATE_DISCONNECTED && !(ok && override_event))
    apply_transition (self, SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);

  release_queued_connects (self);
  sofia_ws_transport_leave (self);
  g_object_unref (self);
}

static void
start_disconnect (SofiaWsTransport *self,
                  GVariant         *options)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);
  SofiaWsTransportClass *klass = SOFIA_WS_TRANSPORT_GET_CLASS (self);

  priv->disconnect_running = TRUE;
  klass->disconnect_async (self, options, NULL, on_disconnect_done, g_object_ref (self));
}

static void
process_disconnect (SofiaWsTransport *self,
                    GTask            *task)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);
  g_autoptr(GError) superseded = NULL;

  /* The latest request wins over connects still waiting for an earlier disconnect. */
  if (!g_queue_is_empty (&priv->queued_connects))
    {
      superseded = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                        "A disconnect was requested after this connect");
      waiters_complete (&priv->queued_connects, superseded);
      g_clear_error (&superseded);
    }

  switch (priv->state)
    {
    case SOFIA_WS_TRANSPORT_STATE_DISCONNECTED:
      g_task_return_boolean (task, TRUE);
      break;

    case SOFIA_WS_TRANSPORT_STATE_DISCONNECTING:
      waiter_add (&priv->disconnect_waiters, g_object_ref (task));
      break;

    case SOFIA_WS_TRANSPORT_STATE_CONNECTING:
      waiter_add (&priv->disconnect_waiters, g_object_ref (task));
      superseded = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                        "A disconnect was requested before the connection "
                                        "was established");
      waiters_complete (&priv->connect_waiters, superseded);
      if (priv->connect_running)
        {
          GVariant *options = task_options (task);

          priv->connect_superseded = TRUE;
          g_clear_pointer (&priv->disconnect_options, g_variant_unref);
          priv->disconnect_options = options ? g_variant_ref (options) : NULL;
          g_cancellable_cancel (priv->connect_cancellable);
          apply_transition (self, SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);
        }
      else
        {
          /* An attempt the implementation started itself (a reconnection). */
          apply_transition (self, SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);
          start_disconnect (self, task_options (task));
        }
      break;

    case SOFIA_WS_TRANSPORT_STATE_CONNECTED:
    default:
      waiter_add (&priv->disconnect_waiters, g_object_ref (task));
      apply_transition (self, SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);
      start_disconnect (self, task_options (task));
      break;
    }
}

static void
process_request (SofiaWsTransport *self,
                 Request          *request)
{
  if (request->task != NULL && g_task_return_error_if_cancelled (request->task))
    return;

  switch (request->kind)
    {
    case REQUEST_CONNECT:
      process_connect (self, request->task);
      break;
    case REQUEST_DISCONNECT:
      process_disconnect (self, request->task);
      break;
    case REQUEST_TRANSITION:
    default:
      apply_transition (self, request->state);
      break;
    }
}

/* ---- public API ----------------------------------------------------------------------- */

/**
 * sofia_ws_transport_connect_async:
 * @self: a #SofiaWsTransport
 * @options: (nullable): an `a{sv}` dictionary passed to the implementation, or %NULL
 * @cancellable: (nullable): a #GCancellable, or %NULL
 * @callback: (scope async): called when the transport is connected or the attempt failed
 * @user_data: data for @callback
 *
 * Connects the transport, as SIP.js `connect()`. Emits `connecting`, then `connected` (or
 * `transport-error` and `disconnected` on failure). See the class description for joining
 * and cancellation. When a connect joins one already in progress, its @options are not used.
 */
void
sofia_ws_transport_connect_async (SofiaWsTransport    *self,
                                  GVariant            *options,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  Request *request;

  g_return_if_fail (SOFIA_WS_IS_TRANSPORT (self));
  g_return_if_fail (options == NULL || g_variant_is_of_type (options, G_VARIANT_TYPE_VARDICT));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  request = g_new0 (Request, 1);
  request->kind = REQUEST_CONNECT;
  request->task = new_task (self, sofia_ws_transport_connect_async, options, cancellable,
                            callback, user_data);
  submit (self, request);
}

static gboolean
finish_boolean (SofiaWsTransport  *self,
                GAsyncResult      *result,
                gpointer           source_tag,
                GError           **error)
{
  g_return_val_if_fail (SOFIA_WS_IS_TRANSPORT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * sofia_ws_transport_connect_finish:
 * @self: a #SofiaWsTransport
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@SofiaWs.Transport.connect_async].
 *
 * Returns: %TRUE when the transport is connected
 */
gboolean
sofia_ws_transport_connect_finish (SofiaWsTransport  *self,
                                   GAsyncResult      *result,
                                   GError           **error)
{
  return finish_boolean (self, result, sofia_ws_transport_connect_async, error);
}

/**
 * sofia_ws_transport_disconnect_async:
 * @self: a #SofiaWsTransport
 * @options: (nullable): an `a{sv}` dictionary passed to the implementation (for example a
 *   close `code` and `reason`), or %NULL
 * @cancellable: (nullable): a #GCancellable, or %NULL; cancelling it only stops the wait,
 *   not the disconnect
 * @callback: (scope async): called when the transport is disconnected
 * @user_data: data for @callback
 *
 * Disconnects the transport, as SIP.js `disconnect()`. Emits `disconnecting`, then
 * `disconnected`. Completes at once, without an event, when already disconnected.
 */
void
sofia_ws_transport_disconnect_async (SofiaWsTransport    *self,
                                     GVariant            *options,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  Request *request;

  g_return_if_fail (SOFIA_WS_IS_TRANSPORT (self));
  g_return_if_fail (options == NULL || g_variant_is_of_type (options, G_VARIANT_TYPE_VARDICT));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  request = g_new0 (Request, 1);
  request->kind = REQUEST_DISCONNECT;
  request->task = new_task (self, sofia_ws_transport_disconnect_async, options, cancellable,
                            callback, user_data);
  submit (self, request);
}

/**
 * sofia_ws_transport_disconnect_finish:
 * @self: a #SofiaWsTransport
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@SofiaWs.Transport.disconnect_async]. The transport is disconnected
 * whether or not an error is returned: an error says the close was not clean.
 *
 * Returns: %TRUE when the transport closed cleanly
 */
gboolean
sofia_ws_transport_disconnect_finish (SofiaWsTransport  *self,
                                      GAsyncResult      *result,
                                      GError           **error)
{
  return finish_boolean (self, result, sofia_ws_transport_disconnect_async, error);
}

static void
on_send_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  SofiaWsTransport *self = SOFIA_WS_TRANSPORT (source);
  SofiaWsTransportClass *klass = SOFIA_WS_TRANSPORT_GET_CLASS (self);
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;
  gboolean override_event = FALSE;

  if (!klass->send_finish (self, result, &override_event, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if (!override_event)
    sofia_ws_transport_emit_message_sent (self, g_task_get_task_data (task));
  g_task_return_boolean (task, TRUE);
}

/**
 * sofia_ws_transport_send_async:
 * @self: a #SofiaWsTransport
 * @message: one whole SIP message
 * @options: (nullable): an `a{sv}` dictionary passed to the implementation, or %NULL
 * @cancellable: (nullable): a #GCancellable, or %NULL
 * @callback: (scope async): called when the message was handed to the connection, or failed
 * @user_data: data for @callback
 *
 * Sends one SIP message, as SIP.js `send()`, and emits `message-sent` once it is handed to
 * the connection. Fails with %SOFIA_WS_ERROR_NOT_CONNECTED, emitting `transport-error`,
 * when the transport is not connected. Unlike SIP.js 0.11-0.15, @options reach the
 * implementation.
 */
void
sofia_ws_transport_send_async (SofiaWsTransport    *self,
                               const char          *message,
                               GVariant            *options,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_autoptr(GVariant) sunk_options = NULL;
  GTask *task;

  g_return_if_fail (SOFIA_WS_IS_TRANSPORT (self));
  g_return_if_fail (message != NULL);
  g_return_if_fail (options == NULL || g_variant_is_of_type (options, G_VARIANT_TYPE_VARDICT));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  if (options != NULL)
    sunk_options = g_variant_ref_sink (options);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, sofia_ws_transport_send_async);
  g_task_set_task_data (task, g_strdup (message), g_free);

  if (g_task_return_error_if_cancelled (task))
    {
      g_object_unref (task);
      return;
    }

  if (!sofia_ws_transport_is_connected (self))
    {
      g_autoptr(GError) error = g_error_new_literal (SOFIA_WS_ERROR,
                                                     SOFIA_WS_ERROR_NOT_CONNECTED,
                                                     "Not connected.");

      emit_transport_error (self, error);
      g_task_return_error (task, g_steal_pointer (&error));
      g_object_unref (task);
      return;
    }

  SOFIA_WS_TRANSPORT_GET_CLASS (self)->send_async (self, message, sunk_options, cancellable,
                                                   on_send_done, task);
}

/**
 * sofia_ws_transport_send_finish:
 * @self: a #SofiaWsTransport
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@SofiaWs.Transport.send_async].
 *
 * Returns: %TRUE when the message was handed to the connection
 */
gboolean
sofia_ws_transport_send_finish (SofiaWsTransport  *self,
                                GAsyncResult      *result,
                                GError           **error)
{
  return finish_boolean (self, result, sofia_ws_transport_send_async, error);
}

/**
 * sofia_ws_transport_is_connected:
 * @self: a #SofiaWsTransport
 *
 * As SIP.js `isConnected()`.
 *
 * Returns: %TRUE when the transport is connected
 */
gboolean
sofia_ws_transport_is_connected (SofiaWsTransport *self)
{
  g_return_val_if_fail (SOFIA_WS_IS_TRANSPORT (self), FALSE);

  return SOFIA_WS_TRANSPORT_GET_CLASS (self)->is_connected (self);
}

/**
 * sofia_ws_transport_get_state:
 * @self: a #SofiaWsTransport
 *
 * Returns: the state of the transport
 */
SofiaWsTransportState
sofia_ws_transport_get_state (SofiaWsTransport *self)
{
  SofiaWsTransportPrivate *priv;

  g_return_val_if_fail (SOFIA_WS_IS_TRANSPORT (self), SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);

  priv = sofia_ws_transport_get_instance_private (self);
  return priv->state;
}

/**
 * sofia_ws_transport_after_connected_async:
 * @self: a #SofiaWsTransport
 * @cancellable: (nullable): a #GCancellable, or %NULL
 * @callback: (scope async): called once the transport is connected
 * @user_data: data for @callback
 *
 * As SIP.js `afterConnected()`: completes in the next main-loop iteration when the
 * transport is connected, otherwise right after the next `connected` signal, however many
 * attempts that takes. Only @cancellable ends the wait otherwise.
 */
void
sofia_ws_transport_after_connected_async (SofiaWsTransport    *self,
                                          GCancellable        *cancellable,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data)
{
  SofiaWsTransportPrivate *priv;
  GTask *task;

  g_return_if_fail (SOFIA_WS_IS_TRANSPORT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  priv = sofia_ws_transport_get_instance_private (self);
  task = new_task (self, sofia_ws_transport_after_connected_async, NULL, cancellable,
                   callback, user_data);

  if (g_task_return_error_if_cancelled (task))
    g_object_unref (task);
  else if (sofia_ws_transport_is_connected (self))
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
    }
  else
    waiter_add (&priv->after_connected_waiters, task);
}

/**
 * sofia_ws_transport_after_connected_finish:
 * @self: a #SofiaWsTransport
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@SofiaWs.Transport.after_connected_async].
 *
 * Returns: %TRUE once connected; %FALSE only when cancelled
 */
gboolean
sofia_ws_transport_after_connected_finish (SofiaWsTransport  *self,
                                           GAsyncResult      *result,
                                           GError           **error)
{
  return finish_boolean (self, result, sofia_ws_transport_after_connected_async, error);
}

/* ---- for implementations -------------------------------------------------------------- */

/**
 * sofia_ws_transport_transition:
 * @self: a #SofiaWsTransport
 * @new_state: the state to enter
 *
 * For implementations: moves the transport to @new_state and emits that state's signal, for
 * changes the implementation sees first (the peer closed, a reconnection started) and when
 * its finish reports `override_event`. An illegal transition is a programming error: it is
 * reported with a critical warning and the state stays as it was. Called while the transport
 * is busy (from a signal handler or a vfunc), the transition runs when that ends.
 */
void
sofia_ws_transport_transition (SofiaWsTransport      *self,
                               SofiaWsTransportState  new_state)
{
  Request *request;

  g_return_if_fail (SOFIA_WS_IS_TRANSPORT (self));
  g_return_if_fail (new_state <= SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);

  request = g_new0 (Request, 1);
  request->kind = REQUEST_TRANSITION;
  request->state = new_state;
  submit (self, request);
}

/**
 * sofia_ws_transport_emit_message:
 * @self: a #SofiaWsTransport
 * @message: the SIP message received
 *
 * For implementations: emits `message` for a message received from the peer. Only legal
 * while CONNECTED or DISCONNECTING (messages still arrive while a close is under way).
 */
void
sofia_ws_transport_emit_message (SofiaWsTransport *self,
                                 const char       *message)
{
  SofiaWsTransportPrivate *priv;

  g_return_if_fail (SOFIA_WS_IS_TRANSPORT (self));
  g_return_if_fail (message != NULL);

  priv = sofia_ws_transport_get_instance_private (self);
  g_return_if_fail (priv->state == SOFIA_WS_TRANSPORT_STATE_CONNECTED ||
                    priv->state == SOFIA_WS_TRANSPORT_STATE_DISCONNECTING);

  sofia_ws_transport_enter (self);
  g_signal_emit (self, signals[SIGNAL_MESSAGE], 0, message);
  sofia_ws_transport_leave (self);
}

/**
 * sofia_ws_transport_emit_message_sent:
 * @self: a #SofiaWsTransport
 * @message: the SIP message that was sent
 *
 * For implementations whose send finish reports `override_event`: emits `message-sent`.
 */
void
sofia_ws_transport_emit_message_sent (SofiaWsTransport *self,
                                      const char       *message)
{
  g_return_if_fail (SOFIA_WS_IS_TRANSPORT (self));
  g_return_if_fail (message != NULL);

  sofia_ws_transport_enter (self);
  g_signal_emit (self, signals[SIGNAL_MESSAGE_SENT], 0, message);
  sofia_ws_transport_leave (self);
}

/**
 * sofia_ws_transport_emit_transport_error:
 * @self: a #SofiaWsTransport
 * @error: what went wrong
 *
 * For implementations: emits `transport-error`, for failures other layers must hear of (an
 * unexpected close, a peer that stopped answering). While the transport is CONNECTING, @error
 * also becomes the error its pending connects fail with if the attempt ends.
 */
void
sofia_ws_transport_emit_transport_error (SofiaWsTransport *self,
                                         const GError     *error)
{
  SofiaWsTransportPrivate *priv;

  g_return_if_fail (SOFIA_WS_IS_TRANSPORT (self));
  g_return_if_fail (error != NULL);

  priv = sofia_ws_transport_get_instance_private (self);
  if (priv->state == SOFIA_WS_TRANSPORT_STATE_CONNECTING)
    {
      g_clear_error (&priv->connect_failure);
      priv->connect_failure = g_error_copy (error);
    }
  emit_transport_error (self, error);
}

/* ---- GObject -------------------------------------------------------------------------- */

static gboolean
sofia_ws_transport_real_is_connected (SofiaWsTransport *self)
{
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);

  return priv->state == SOFIA_WS_TRANSPORT_STATE_CONNECTED;
}

static void
sofia_ws_transport_finalize (GObject *object)
{
  SofiaWsTransport *self = SOFIA_WS_TRANSPORT (object);
  SofiaWsTransportPrivate *priv = sofia_ws_transport_get_instance_private (self);

  /* Every waiting task holds a reference, so all queues are empty by now. */
  g_warn_if_fail (g_queue_is_empty (&priv->deferred));
  g_warn_if_fail (g_queue_is_empty (&priv->connect_waiters));
  g_clear_object (&priv->connect_cancellable);
  g_clear_error (&priv->connect_failure);
  g_clear_pointer (&priv->disconnect_options, g_variant_unref);
  g_clear_error (&priv->disconnect_failure);

  G_OBJECT_CLASS (sofia_ws_transport_parent_class)->finalize (object);
}

static void
sofia_ws_transport_get_property (GObject    *object,
                                 guint       prop_id,
                                 GValue     *value,
                                 GParamSpec *pspec)
{
  SofiaWsTransport *self = SOFIA_WS_TRANSPORT (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_enum (value, sofia_ws_transport_get_state (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
sofia_ws_transport_class_init (SofiaWsTransportClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = sofia_ws_transport_finalize;
  object_class->get_property = sofia_ws_transport_get_property;

  klass->is_connected = sofia_ws_transport_real_is_connected;

  /**
   * SofiaWsTransport:state:
   *
   * The state of the transport. It changes only together with the signal of the new state.
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       SOFIA_WS_TYPE_TRANSPORT_STATE,
                       SOFIA_WS_TRANSPORT_STATE_DISCONNECTED,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * SofiaWsTransport::connecting:
   * @self: the transport
   *
   * Emitted when the transport starts connecting (it entered CONNECTING).
   */
  signals[SIGNAL_CONNECTING] =
    g_signal_new ("connecting", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (SofiaWsTransportClass, connecting),
                  NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * SofiaWsTransport::connected:
   * @self: the transport
   *
   * Emitted when the connection is established (it entered CONNECTED).
   */
  signals[SIGNAL_CONNECTED] =
    g_signal_new ("connected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (SofiaWsTransportClass, connected),
                  NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * SofiaWsTransport::disconnecting:
   * @self: the transport
   *
   * Emitted when the transport starts closing (it entered DISCONNECTING).
   */
  signals[SIGNAL_DISCONNECTING] =
    g_signal_new ("disconnecting", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (SofiaWsTransportClass, disconnecting),
                  NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * SofiaWsTransport::disconnected:
   * @self: the transport
   *
   * Emitted when the connection is closed, lost, or could not be established (it entered
   * DISCONNECTED). When that was not requested, `transport-error` comes first.
   */
  signals[SIGNAL_DISCONNECTED] =
    g_signal_new ("disconnected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (SofiaWsTransportClass, disconnected),
                  NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * SofiaWsTransport::message-sent:
   * @self: the transport
   * @message: the SIP message
   *
   * Emitted when a message was handed to the connection.
   */
  signals[SIGNAL_MESSAGE_SENT] =
    g_signal_new ("message-sent", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (SofiaWsTransportClass, message_sent),
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * SofiaWsTransport::message:
   * @self: the transport
   * @message: the SIP message
   *
   * Emitted for every SIP message received from the peer, as a string: a message whose bytes
   * are not valid UTF-8, or hold NUL bytes (a binary body), is given whole with each such
   * byte replaced by U+FFFD, as a browser's TextDecoder would (NUL, which a C string cannot
   * hold, too). The exact bytes go to Sofia-SIP through the tport module.
   */
  signals[SIGNAL_MESSAGE] =
    g_signal_new ("message", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (SofiaWsTransportClass, message),
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * SofiaWsTransport::transport-error:
   * @self: the transport
   * @error: what went wrong, usually in the %SOFIA_WS_ERROR domain
   *
   * Emitted when an error occurs that other layers must hear of: a failed connect, a send
   * while not connected, an unexpected close, a failed disconnect.
   */
  signals[SIGNAL_TRANSPORT_ERROR] =
    g_signal_new ("transport-error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (SofiaWsTransportClass, transport_error),
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
sofia_ws_transport_init (SofiaWsTransport *self)
{
}
