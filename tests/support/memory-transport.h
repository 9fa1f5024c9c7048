/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sofia-ws/sofia-ws.h>

G_BEGIN_DECLS

/* A SofiaWsTransport whose "wire" is the main loop: two of them make a pair, and what one
 * sends the other receives. Knobs let tests drive every path of the contract. */
#define MEMORY_TYPE_TRANSPORT (memory_transport_get_type ())
G_DECLARE_FINAL_TYPE (MemoryTransport, memory_transport, MEMORY, TRANSPORT, SofiaWsTransport)

void memory_transport_new_pair (MemoryTransport **a,
                                MemoryTransport **b);

/**
 * MemoryKnobs: (skip)
 */
typedef struct {
  guint connect_delay_ms;        /* 0: completes in an idle */
  guint disconnect_delay_ms;
  guint send_delay_ms;
  GError *connect_error;         /* the connect vfunc fails with this */
  GError *disconnect_error;      /* the disconnect vfunc fails with this */
  GError *send_error;            /* the send vfunc fails with this */
  gboolean override_connect;     /* transition to CONNECTED itself, report override_event */
  guint override_connect_late_ms;/* with override_connect: transition this long after finish */
  gboolean override_disconnect;
  gboolean override_send;        /* report override_event, emit nothing */

  /* What the vfuncs saw. */
  guint connect_calls;
  guint disconnect_calls;
  guint send_calls;
  gboolean connect_saw_cancel;   /* the connect vfunc ended through its cancellable */
  GVariant *last_connect_options;
  GVariant *last_disconnect_options;
  GVariant *last_send_options;
} MemoryKnobs;

MemoryKnobs *memory_transport_knobs (MemoryTransport *self);

void memory_transport_set_connect_error (MemoryTransport *self,
                                         const GError    *error);

void memory_transport_drop (MemoryTransport *self,
                            const GError    *error);

G_END_DECLS
