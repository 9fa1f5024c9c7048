/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registrar of examples/sofia-ws-registrar as a library: the NTA leg that answers REGISTER
 * and OPTIONS and relays requests to registered users, and its tables. The program around it
 * (sofia-ws-registrar.c) owns the root, the agent, the listeners and the options; tests and
 * fuzzers link this core directly (registrar_core_dep in examples/meson.build). */
#pragma once

#include <glib.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/su_wait.h>

G_BEGIN_DECLS

typedef struct {
  gboolean quiet;                 /* no line per request on stdout */
} RegistrarOptions;

typedef struct _Registrar Registrar;

/* A registrar on @agent (which runs on @root): creates the default leg that receives every
 * request outside a dialog. @options may be NULL (defaults); it is copied. */
Registrar *registrar_new  (su_root_t              *root,
                           nta_agent_t            *agent,
                           const RegistrarOptions *options);

/* Destroys the leg and every binding (dropping their tport references); call it before
 * nta_agent_destroy(). NULL is ignored. */
void       registrar_free (Registrar              *self);

G_END_DECLS
