/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "memory-transport.h"

struct _MemoryTransport
{
  SofiaWsTransport parent_instance;

  MemoryTransport *peer;         /* weak */
  MemoryKnobs knobs;
};

G_DEFINE_FINAL_TYPE (MemoryTransport, memory_transport, SOFIA_WS_TYPE_TRANSPORT)

/**
 * MemoryTransport:
 *
 * A test-only [class@SofiaWs.Transport] whose wire is the main loop.
 */

/**
 * memory_transport_knobs: (skip)
 */
MemoryKnobs *
memory_transport_knobs (MemoryTransport *self)
{
  return &self->knobs;
}

/**
 * memory_transport_set_connect_error:
 * @self: a #MemoryTransport
 * @error: (nullable): the error later connects fail with, or %NULL for success
 */
void
memory_transport_set_connect_error (MemoryTransport *self,
                                    const GError    *error)
{
  g_clear_error (&self->knobs.connect_error);
  if (error != NULL)
    self->knobs.connect_error = g_error_copy (error);
}

static void
remember_options (GVariant **slot,
                  GVariant  *options)
{
  g_clear_pointer (slot, g_variant_unref);
  if (options != NULL)
    *slot = g_variant_ref (options);
}

static gboolean
peer_is_listening (MemoryTransport *self)
{
  SofiaWsTransportState state;

  if (self->peer == NULL)
    return FALSE;
  state = sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (self->peer));
  return state == SOFIA_WS_TRANSPORT_STATE_CONNECTED ||
         state == SOFIA_WS_TRANSPORT_STATE_DISCONNECTING;
}

/* Completes @task after @delay_ms (or in an idle), with @error or success; a cancellable
 * cancelled meanwhile wins. */
typedef struct {
  GTask *task;
  GError *error;
  void (*before) (MemoryTransport *self);
  char *message;                 /* a send's message, delivered to the peer on success */
} Completion;

static gboolean
complete_now (gpointer user_data)
{
  Completion *completion = user_data;
  GTask *task = completion->task;
  MemoryTransport *self = g_task_get_source_object (task);

  if (g_task_return_error_if_cancelled (task))
    {
      if (g_task_get_source_tag (task) == memory_transport_knobs)
        self->knobs.connect_saw_cancel = TRUE;
    }
  else if (completion->error != NULL)
    g_task_return_error (task, g_steal_pointer (&completion->error));
  else if (completion->message != NULL && !peer_is_listening (self))
    g_task_return_new_error (task, SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                             "The peer is not connected");
  else
    {
      g_autoptr(MemoryTransport) receiver = completion->message ? g_object_ref (self->peer) : NULL;

      if (completion->before != NULL)
        completion->before (self);
      /* Handed to the wire first (message-sent), then received, as on a socket. */
      g_task_return_boolean (task, TRUE);
      if (receiver != NULL)
        sofia_ws_transport_emit_message (SOFIA_WS_TRANSPORT (receiver), completion->message);
    }

  g_clear_error (&completion->error);
  g_free (completion->message);
  g_object_unref (task);
  g_free (completion);
  return G_SOURCE_REMOVE;
}

static void
complete_later (GTask        *task,
                guint         delay_ms,
                const GError *error,
                void        (*before) (MemoryTransport *self),
                const char   *message)
{
  Completion *completion = g_new0 (Completion, 1);

  completion->task = task;
  completion->message = g_strdup (message);
  completion->error = error ? g_error_copy (error) : NULL;
  completion->before = before;
  if (delay_ms == 0)
    g_idle_add (complete_now, completion);
  else
    g_timeout_add (delay_ms, complete_now, completion);
}

static gboolean
finish (GAsyncResult  *result,
        gboolean       override_event,
        gboolean      *override_out,
        GError       **error)
{
  gboolean ok = g_task_propagate_boolean (G_TASK (result), error);

  *override_out = ok && override_event;
  return ok;
}

static gboolean
announce_connected (gpointer user_data)
{
  sofia_ws_transport_transition (user_data, SOFIA_WS_TRANSPORT_STATE_CONNECTED);
  return G_SOURCE_REMOVE;
}

static void
connected_by_implementation (MemoryTransport *self)
{
  if (self->knobs.override_connect_late_ms > 0)
    g_timeout_add_full (G_PRIORITY_DEFAULT, self->knobs.override_connect_late_ms,
                        announce_connected, g_object_ref (self), g_object_unref);
  else
    announce_connected (self);
}

static void
memory_transport_connect_async (SofiaWsTransport    *transport,
                                GVariant            *options,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  MemoryTransport *self = MEMORY_TRANSPORT (transport);
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  /* Marks the task so complete_now() can tell it was the connect that saw the cancel. */
  g_task_set_source_tag (task, memory_transport_knobs);
  self->knobs.connect_calls++;
  self->knobs.connect_saw_cancel = FALSE;
  remember_options (&self->knobs.last_connect_options, options);
  complete_later (task, self->knobs.connect_delay_ms, self->knobs.connect_error,
                  self->knobs.override_connect ? connected_by_implementation : NULL, NULL);
}

static gboolean
memory_transport_connect_finish (SofiaWsTransport  *transport,
                                 GAsyncResult      *result,
                                 gboolean          *override_event,
                                 GError           **error)
{
  return finish (result, MEMORY_TRANSPORT (transport)->knobs.override_connect, override_event,
                 error);
}

static void
disconnected_by_implementation (MemoryTransport *self)
{
  sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (self),
                                 SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
}

static void
tell_peer_closed (MemoryTransport *self)
{
  if (self->peer != NULL &&
      sofia_ws_transport_get_state (SOFIA_WS_TRANSPORT (self->peer)) ==
        SOFIA_WS_TRANSPORT_STATE_CONNECTED)
    {
      g_autoptr(GError) error = g_error_new_literal (SOFIA_WS_ERROR, SOFIA_WS_ERROR_CLOSED,
                                                     "The peer closed the connection");

      memory_transport_drop (self->peer, error);
    }
}

static void
close_and_maybe_announce (MemoryTransport *self)
{
  tell_peer_closed (self);
  if (self->knobs.override_disconnect)
    disconnected_by_implementation (self);
}

static void
memory_transport_disconnect_async (SofiaWsTransport    *transport,
                                   GVariant            *options,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  MemoryTransport *self = MEMORY_TRANSPORT (transport);
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  self->knobs.disconnect_calls++;
  remember_options (&self->knobs.last_disconnect_options, options);
  complete_later (task, self->knobs.disconnect_delay_ms, self->knobs.disconnect_error,
                  close_and_maybe_announce, NULL);
}

static gboolean
memory_transport_disconnect_finish (SofiaWsTransport  *transport,
                                    GAsyncResult      *result,
                                    gboolean          *override_event,
                                    GError           **error)
{
  return finish (result, MEMORY_TRANSPORT (transport)->knobs.override_disconnect,
                 override_event, error);
}

static void
memory_transport_send_async (SofiaWsTransport    *transport,
                             const char          *message,
                             GVariant            *options,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  MemoryTransport *self = MEMORY_TRANSPORT (transport);
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  self->knobs.send_calls++;
  remember_options (&self->knobs.last_send_options, options);
  complete_later (task, self->knobs.send_delay_ms, self->knobs.send_error, NULL, message);
}

static gboolean
memory_transport_send_finish (SofiaWsTransport  *transport,
                              GAsyncResult      *result,
                              gboolean          *override_event,
                              GError           **error)
{
  return finish (result, MEMORY_TRANSPORT (transport)->knobs.override_send, override_event,
                 error);
}

/**
 * memory_transport_drop:
 * @self: a #MemoryTransport
 * @error: why the connection dropped
 *
 * The connection drops under the transport: `transport-error` with @error, then
 * DISCONNECTED.
 */
void
memory_transport_drop (MemoryTransport *self,
                       const GError    *error)
{
  sofia_ws_transport_emit_transport_error (SOFIA_WS_TRANSPORT (self), error);
  sofia_ws_transport_transition (SOFIA_WS_TRANSPORT (self),
                                 SOFIA_WS_TRANSPORT_STATE_DISCONNECTED);
}

/**
 * memory_transport_new_pair:
 * @a: (out) (transfer full): one end
 * @b: (out) (transfer full): the other end
 *
 * Makes two transports wired to each other.
 */
void
memory_transport_new_pair (MemoryTransport **a,
                           MemoryTransport **b)
{
  *a = g_object_new (MEMORY_TYPE_TRANSPORT, NULL);
  *b = g_object_new (MEMORY_TYPE_TRANSPORT, NULL);
  g_set_weak_pointer (&(*a)->peer, *b);
  g_set_weak_pointer (&(*b)->peer, *a);
}

static void
memory_transport_finalize (GObject *object)
{
  MemoryTransport *self = MEMORY_TRANSPORT (object);

  g_clear_weak_pointer (&self->peer);
  g_clear_error (&self->knobs.connect_error);
  g_clear_error (&self->knobs.disconnect_error);
  g_clear_error (&self->knobs.send_error);
  g_clear_pointer (&self->knobs.last_connect_options, g_variant_unref);
  g_clear_pointer (&self->knobs.last_disconnect_options, g_variant_unref);
  g_clear_pointer (&self->knobs.last_send_options, g_variant_unref);

  G_OBJECT_CLASS (memory_transport_parent_class)->finalize (object);
}

static void
memory_transport_class_init (MemoryTransportClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  SofiaWsTransportClass *transport_class = SOFIA_WS_TRANSPORT_CLASS (klass);

  object_class->finalize = memory_transport_finalize;
  transport_class->connect_async = memory_transport_connect_async;
  transport_class->connect_finish = memory_transport_connect_finish;
  transport_class->disconnect_async = memory_transport_disconnect_async;
  transport_class->disconnect_finish = memory_transport_disconnect_finish;
  transport_class->send_async = memory_transport_send_async;
  transport_class->send_finish = memory_transport_send_finish;
}

static void
memory_transport_init (MemoryTransport *self)
{
}
