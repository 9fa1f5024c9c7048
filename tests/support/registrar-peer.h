/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* examples/sofia-ws-registrar ($SOFIA_WS_REGISTRAR) as a peer for test suites, on 127.0.0.1 ports
 * the system chose, stopped by PID with SIGTERM. Under `meson test --setup valgrind` it runs
 * under memcheck too (suppressions from $SOFIA_WS_VALGRIND_SUPPRESSIONS), so that a memory error
 * or definite leak in the module makes it exit non-zero. */

typedef struct _RegistrarPeer RegistrarPeer;

/* Starts the registrar with @args (its options, such as "--listen", URL, ...; NULL-terminated)
 * and reads its "listening" lines: one per --listen. Fails the test on any error. */
RegistrarPeer *registrar_peer_start     (const char *const *args);

/* The same for examples/sofia-ws-edge ($SOFIA_WS_EDGE), the registrar's core in edge mode. */
RegistrarPeer *registrar_peer_start_edge (const char *const *args);
/* The same, its stderr (Sofia's log, and valgrind's) written to the file @stderr_path. */
RegistrarPeer *registrar_peer_start_edge_logging (const char *const *args,
                                                  const char        *stderr_path);
/* The same, reading @listeners "listening" lines (listeners given in a --config file). */
RegistrarPeer *registrar_peer_start_edge_listening (const char *const *args,
                                                    guint              listeners);

/* The port of the listener for @transport ("ws", "wss", "tcp", "udp"); 0 if none. */
guint16        registrar_peer_get_port  (RegistrarPeer *self,
                                         const char    *transport);

/* The registrar's process ID (under valgrind: valgrind's, which is the same process); 0 once
 * it has exited. */
GPid           registrar_peer_get_pid   (RegistrarPeer *self);

/* The registrar's next output line that starts with @prefix (the lines before it are logged
 * and skipped). While waiting, @iterate (if not NULL) is called again and again, for a test
 * whose own loop must keep running for the registrar to get there. */
char          *registrar_peer_read_line (RegistrarPeer *self,
                                         const char    *prefix,
                                         void         (*iterate) (gpointer data),
                                         gpointer       data);

/* SIGTERM, and the registrar must exit 0 (every agent, listener and connection destroyed). */
void           registrar_peer_stop      (RegistrarPeer *self);

/* SIGTERM, waits for the registrar to exit and frees @self: its exit status, or minus the
 * signal that killed it. */
int            registrar_peer_terminate (RegistrarPeer *self);

/* Puts valgrind and its options before a child's command when this process runs under valgrind;
 * @argv owns its strings. */
void           test_wrap_in_valgrind    (GPtrArray *argv);

/* The value of LD_PRELOAD that loads @module into a program: @module itself, or, in the
 * sanitizer build ($SOFIA_WS_ASAN_PRELOAD), the ASan runtime first (it must come before every
 * other library) and then @module. */
char          *test_preload_value       (const char *module);

/* TRUE in the sanitizer build ($SOFIA_WS_TEST_SANITIZED), where RSS includes ASan's
 * quarantine of freed memory and says nothing about our own. */
gboolean       test_is_sanitized        (void);

/* A self-signed certificate for 127.0.0.1 (CN @name), made with openssl in a new temporary
 * directory: "<dir>/server.pem" and "<dir>/server.key". */
typedef struct {
  char *dir;
  char *certificate;
  char *key;
} TestCertificate;

TestCertificate *test_certificate_new  (const char      *name);
/* The same with the subjectAltName @san ("DNS:host.example", "IP:127.0.0.1"). */
TestCertificate *test_certificate_new_with_san (const char *name,
                                                const char *san);
void             test_certificate_free (TestCertificate *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RegistrarPeer, registrar_peer_stop)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestCertificate, test_certificate_free)

G_END_DECLS
