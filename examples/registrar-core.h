/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registrar of examples/sofia-ws-registrar as a library: the NTA leg that answers REGISTER
 * and OPTIONS and relays requests to registered users, and its tables. The program around it
 * (sofia-ws-registrar.c) owns the root, the agent, the listeners and the options; tests and
 * fuzzers link this core directly (registrar_core_dep in examples/meson.build).
 *
 * With RegistrarOptions.upstream the same core is sofia-ws-edge, a proxy between WebSocket
 * clients and one SIP server (its flows, relay, CANCEL and limits are the registrar's): see
 * "edge mode" in registrar-core.c. */
#pragma once

#include <glib.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/su_wait.h>

G_BEGIN_DECLS

#define REGISTRAR_DEFAULT_MAX_USERS     100000
#define REGISTRAR_DEFAULT_MAX_BINDINGS  10
#define REGISTRAR_DEFAULT_MAX_CONTACTS  10
#define REGISTRAR_DEFAULT_MAX_RELAYS    10000
#define REGISTRAR_DEFAULT_MAX_TARGETS   64
#define REGISTRAR_DEFAULT_TARGET_IDLE   120

/* Every field 0 means its default. */
typedef struct {
  gboolean quiet;                 /* no line per request on stdout */
  const char *line_prefix;        /* before each line, such as "worker 2 pid 1234: " (NULL:
                                   * none); must outlive the registrar */
  guint max_users;                /* users with bindings (503 past it) */
  guint max_bindings;             /* bindings of one user (403 past it) */
  guint max_contacts;             /* Contacts in one REGISTER (400 past it) */
  guint max_relays;               /* requests being relayed at once (503 past it) */
  guint sweep_interval_ms;        /* how often expired bindings and closed flows go (1000) */
  /* Edge mode (sofia-ws-edge): the SIP server every request from a WebSocket client goes to,
   * such as "sip:192.0.2.1:5060;transport=tcp"; NULL for the registrar. The agent must have a
   * listener of that transport: it is the edge's address in Path and Record-Route. */
  const char *upstream;
  const char *tls_ca_file;        /* edge: CAs for wss targets (NULL: the system's) */
  guint crlf_keepalive;           /* edge: seconds between CRLF keep-alives to ws targets
                                   * (0: none; sofia-ws-edge's default is 30) */
  guint max_targets;              /* edge: connections to ws/wss targets open (or opening) at
                                   * once; a request for another target gets 503 (64) */
  guint target_idle;              /* edge: seconds a target connection is kept without a
                                   * message, nor a registration through it (120) */
} RegistrarOptions;

/* What the tables hold now. */
typedef struct {
  guint users;                    /* users with at least one binding */
  guint bindings;
  guint flows;                    /* connections known by a flow token */
  guint relays;                   /* relayed requests whose transactions are kept */
} RegistrarStats;

typedef struct _Registrar Registrar;

/* A registrar on @agent (which runs on @root): creates the default leg that receives every
 * request outside a known dialog, and the timer that sweeps the tables. @options may be NULL
 * (defaults); it is copied. */
Registrar *registrar_new       (su_root_t              *root,
                                nta_agent_t            *agent,
                                const RegistrarOptions *options);

/* Answers the relays still pending (503), destroys their transactions, the leg, the timer and
 * every binding and flow (dropping their tport references); call it before
 * nta_agent_destroy(). NULL is ignored. */
void       registrar_free      (Registrar              *self);

void       registrar_get_stats (Registrar              *self,
                                RegistrarStats         *stats);

G_END_DECLS
