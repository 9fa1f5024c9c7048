/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "sofia-ws-version.h"

/**
 * sofia_ws_get_major_version:
 *
 * Returns: the major version of the sofia-ws library in use at run time
 */
guint
sofia_ws_get_major_version (void)
{
  return SOFIA_WS_MAJOR_VERSION;
}

/**
 * sofia_ws_get_minor_version:
 *
 * Returns: the minor version of the sofia-ws library in use at run time
 */
guint
sofia_ws_get_minor_version (void)
{
  return SOFIA_WS_MINOR_VERSION;
}

/**
 * sofia_ws_get_micro_version:
 *
 * Returns: the micro version of the sofia-ws library in use at run time
 */
guint
sofia_ws_get_micro_version (void)
{
  return SOFIA_WS_MICRO_VERSION;
}
