/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "sofia-ws-transport.h"

G_BEGIN_DECLS

/* Run-to-completion around code that hands the transport's events to others outside a
 * signal emission (the message sink): state changes they request are queued and run after
 * the outermost sofia_ws_transport_leave(), as for the signals. enter() holds a reference. */
void sofia_ws_transport_enter (SofiaWsTransport *self);
void sofia_ws_transport_leave (SofiaWsTransport *self);

G_END_DECLS
