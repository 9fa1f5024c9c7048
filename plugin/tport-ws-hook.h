/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Routes NTA's and NUA's requests through the module when it is not preloaded (once; TRUE at
 * once when it is preloaded). FALSE with @error when that cannot take effect. */
gboolean tport_ws_hook_install (GError **error);

G_END_DECLS
