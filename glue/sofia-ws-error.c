/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "sofia-ws-error.h"

G_DEFINE_QUARK (sofia-ws-error-quark, sofia_ws_error)
