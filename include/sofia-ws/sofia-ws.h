/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#define SOFIA_WS_INSIDE

#include <sofia-ws/sofia-ws-version.h>
#include <sofia-ws/sofia-ws-error.h>
#include <sofia-ws/sofia-ws-enum-types.h>
#include <sofia-ws/sofia-ws-transport.h>
#include <sofia-ws/sofia-ws-websocket.h>
#include <sofia-ws/sofia-ws-listener.h>

#undef SOFIA_WS_INSIDE
