/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* A real Kamailio, run in the foreground as a SIP-over-WebSocket (RFC 7118) server on one
 * loopback TCP port, for test suites.  Everything it needs (configuration, run dir, log) lives
 * in a fresh temporary directory; no system file or service is touched.
 *
 * Environment overrides: KAMAILIO (the binary), KAMAILIO_MODULES_DIR (the module directory),
 * KAMAILIO_PEER_KEEP=1 (do not delete the temporary directory on stop; its path is printed). */

#define KAMAILIO_PEER_ERROR (kamailio_peer_error_quark ())

typedef enum {
  KAMAILIO_PEER_ERROR_NOT_FOUND,   /* no kamailio binary or module directory */
  KAMAILIO_PEER_ERROR_FAILED,      /* setup failed or kamailio exited */
  KAMAILIO_PEER_ERROR_TIMEOUT,     /* the port did not come up in time */
} KamailioPeerError;

typedef struct _KamailioPeer KamailioPeer;

GQuark        kamailio_peer_error_quark  (void);

/* TRUE when a kamailio binary with the websocket module was found; otherwise FALSE and, if
 * @reason is not NULL, a newly allocated explanation (for g_test_skip). */
gboolean      kamailio_peer_is_available (char **reason);

/* For tests: kamailio_peer_start(), asserting it works, or NULL after g_test_skip() with the
 * reason when no kamailio with the websocket module is installed. */
KamailioPeer *kamailio_peer_start_or_skip (void);

/* Writes the configuration, picks a free port on 127.0.0.1, starts kamailio and waits (at
 * most about 10 s) until it answers on the port. */
KamailioPeer *kamailio_peer_start        (GError **error);

/* kamailio_peer_start() with plain SIP over TCP on the same port as well: a registrar and
 * proxy for SIP servers and proxies in front of it (sofia-ws-edge), storing the Path of a
 * REGISTER and routing its user's requests by it (registrar use_path). */
KamailioPeer *kamailio_peer_start_sip        (GError **error);
KamailioPeer *kamailio_peer_start_sip_or_skip (void);
/* The plain SIP peer listens on udp on the same port number too. With a TLS listener as well
 * (kamailio-tls-modules) on kamailio_peer_get_tls_port(), serving @certificate and @key (PEM
 * files); the _or_skip variant skips where Kamailio or its tls module is not installed. */
KamailioPeer *kamailio_peer_start_sip_tls        (const char  *certificate,
                                                  const char  *key,
                                                  GError     **error);
KamailioPeer *kamailio_peer_start_sip_tls_or_skip (const char *certificate,
                                                   const char *key);

/* Stops kamailio and starts it again on the same port, with the same configuration. On
 * failure the peer is left stopped; kamailio_peer_stop() must still be called. */
gboolean      kamailio_peer_restart      (KamailioPeer *self,
                                          GError      **error);

guint16       kamailio_peer_get_port     (KamailioPeer *self);

/* The port of the tls listener (kamailio_peer_start_sip_tls()), 0 if none. */
guint16       kamailio_peer_get_tls_port (KamailioPeer *self);

/* "ws://127.0.0.1:PORT/" */
const char   *kamailio_peer_get_ws_url   (KamailioPeer *self);

/* The PID of the main kamailio process, or 0 when it is not running. */
GPid          kamailio_peer_get_pid      (KamailioPeer *self);

/* The directory holding kamailio.cfg and the logs. */
const char   *kamailio_peer_get_dir      (KamailioPeer *self);

/* The log (stdout + stderr) of the current or last run; free with g_free(). */
char         *kamailio_peer_get_log      (KamailioPeer *self);

/* SIGTERM, wait (SIGKILL to its process group after a timeout), delete the temporary
 * directory and free. NULL is allowed. */
void          kamailio_peer_stop         (KamailioPeer *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (KamailioPeer, kamailio_peer_stop)

G_END_DECLS
