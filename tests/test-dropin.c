/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The module dropped into Sofia programs without rebuilding them.
 *
 * Preloaded (LD_PRELOAD=tport-ws.so) into Debian's unmodified `sip-options`
 * (sofia-sip-bin), OPTIONS to `sip:127.0.0.1:PORT;transport=ws` get 200 from the project's
 * registrar and from Kamailio; without the module the same command fails; udp and tcp
 * behave as without it. On a libsofia-sip-ua whose private layout the module does not know
 * (simulated with SOFIA_WS_SIMULATE_FOREIGN_ABI), it says so once and changes nothing. And
 * through libsofia-ws: the module is found in SOFIA_WS_PLUGIN_DIR, a missing one and a foreign
 * layout are clear errors, and nothing is registered then. */
#include <sofia-ws/sofia-ws-tport.h>

#include <glib/gstdio.h>
#include <string.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/tport_plugins.h>

#include "support/kamailio-peer.h"
#include "support/registrar-peer.h"

/* Exported by libsofia-sip-ua, declared in no installed header. */
typedef struct tport_vtable tport_vtable_t;
extern tport_vtable_t const *tport_vtable_by_name (char const *protoname, enum tport_via public);

typedef struct {
  RegistrarPeer *registrar;
  guint16 ws_port;
  guint16 udp_port;
  guint16 tcp_port;
} Fixture;

static gboolean
sip_options_available (void)
{
  g_autofree char *path = g_find_program_in_path ("sip-options");

  if (path == NULL)
    g_test_skip ("sip-options (sofia-sip-bin) is not installed");
  return path != NULL;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  const char *args[] = { "--listen", "sip:127.0.0.1:0;transport=ws",
                         "--listen", "sip:127.0.0.1:0;transport=udp",
                         "--listen", "sip:127.0.0.1:0;transport=tcp", NULL };

  f->registrar = registrar_peer_start (args);
  f->ws_port = registrar_peer_get_port (f->registrar, "ws");
  f->udp_port = registrar_peer_get_port (f->registrar, "udp");
  f->tcp_port = registrar_peer_get_port (f->registrar, "tcp");
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->registrar, registrar_peer_stop);
}

static char *
registrar_line (Fixture *f, const char *prefix)
{
  return registrar_peer_read_line (f->registrar, prefix, NULL, NULL);
}

typedef struct {
  int status;                     /* exit status of sip-options */
  char *out;
  char *err;
} Run;

static void
run_clear (Run *run)
{
  g_free (run->out);
  g_free (run->err);
}

/* Unmodified sip-options, with the module preloaded or not. */
static void
sip_options (const char *uri, gboolean preload, gboolean foreign, Run *run)
{
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *module = g_build_filename (g_getenv ("SOFIA_WS_PLUGIN_DIR"), "tport-ws.so",
                                              NULL);

  /* Nothing of the build tree but the preloaded module itself. */
  g_subprocess_launcher_unsetenv (launcher, "SOFIA_WS_PLUGIN_DIR");
  if (preload)
    {
      g_autofree char *preload_value = test_preload_value (module);

      g_subprocess_launcher_setenv (launcher, "LD_PRELOAD", preload_value, TRUE);
      /* In the sanitizer build: Debian's sip-options leaves its su_home to exit(), which
       * LeakSanitizer would report; the module's own leaks are checked in the suites built
       * here. */
      if (g_getenv ("SOFIA_WS_ASAN_PRELOAD") != NULL)
        g_subprocess_launcher_setenv (launcher, "ASAN_OPTIONS", "detect_leaks=0", TRUE);
    }
  if (foreign)
    g_subprocess_launcher_setenv (launcher, "SOFIA_WS_SIMULATE_FOREIGN_ABI", "1", TRUE);
  process = g_subprocess_launcher_spawn (launcher, &error, "timeout", "30", "sip-options",
                                         "--bind=sip:127.0.0.1:0", uri, NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (process, NULL, NULL, &run->out, &run->err, &error);
  g_assert_no_error (error);
  run->status = g_subprocess_get_exit_status (process);
  g_test_message ("sip-options %s%s: exit %d\n%s%s", uri, preload ? " (preloaded)" : "",
                  run->status, run->out, run->err);
}

static void
test_preload_ws (Fixture *f, gconstpointer data)
{
  g_autofree char *uri = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", f->ws_port);
  g_autofree char *line = NULL;
  Run run = { 0 };

  if (!sip_options_available ())
    return;
  sip_options (uri, TRUE, FALSE, &run);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_true (g_str_has_prefix (run.out, "SIP/2.0 200 OK"));
  line = registrar_line (f, "OPTIONS from ");
  g_assert_true (g_str_has_prefix (line, "OPTIONS from WS 127.0.0.1:"));
  run_clear (&run);
}

/* Without the module, the unmodified program cannot reach a ws target. */
static void
test_unmodified_fails (Fixture *f, gconstpointer data)
{
  g_autofree char *uri = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", f->ws_port);
  Run run = { 0 };

  if (!sip_options_available ())
    return;
  sip_options (uri, FALSE, FALSE, &run);
  g_assert_cmpint (run.status, !=, 0);
  g_assert_true (g_str_has_prefix (run.out, "SIP/2.0 503 "));
  run_clear (&run);
}

/* udp and tcp with the module preloaded: answered as without it, over Sofia's transports. */
static void
test_preload_udp_tcp (Fixture *f, gconstpointer data)
{
  const char *protocols[] = { "udp", "tcp" };

  if (!sip_options_available ())
    return;
  for (guint i = 0; i < G_N_ELEMENTS (protocols); i++)
    {
      g_autofree char *uri = g_strdup_printf ("sip:127.0.0.1:%u;transport=%s",
                                              i == 0 ? f->udp_port : f->tcp_port, protocols[i]);
      g_autofree char *line = NULL;
      g_autofree char *prefix = g_strdup_printf ("OPTIONS from %s ", protocols[i]);
      Run run = { 0 };

      sip_options (uri, TRUE, FALSE, &run);
      g_assert_cmpint (run.status, ==, 0);
      g_assert_true (g_str_has_prefix (run.out, "SIP/2.0 200 OK"));
      g_assert_null (strstr (run.err, "sofia-ws"));
      line = registrar_line (f, "OPTIONS from ");
      g_assert_true (g_str_has_prefix (line, prefix));
      run_clear (&run);
    }
}

/* A layout the module does not know: one message, and the program behaves as without it. */
static void
test_preload_foreign (Fixture *f, gconstpointer data)
{
  g_autofree char *ws = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", f->ws_port);
  g_autofree char *tcp = g_strdup_printf ("sip:127.0.0.1:%u;transport=tcp", f->tcp_port);
  const char *message = "sofia-ws: The ws/wss tport module is not registered: ";
  const char *first;
  Run run = { 0 };

  if (!sip_options_available ())
    return;
  sip_options (tcp, TRUE, TRUE, &run);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_true (g_str_has_prefix (run.out, "SIP/2.0 200 OK"));
  run_clear (&run);

  sip_options (ws, TRUE, TRUE, &run);
  g_assert_cmpint (run.status, !=, 0);
  g_assert_true (g_str_has_prefix (run.out, "SIP/2.0 503 "));
  first = strstr (run.err, message);
  g_assert_nonnull (first);
  g_assert_nonnull (strstr (first, "tport_t 488 bytes, but this module declares 632 and 520"));
  g_assert_null (strstr (first + 1, message));   /* said once */
  run_clear (&run);
}

static void
test_preload_kamailio (void)
{
  g_autoptr(KamailioPeer) kamailio = NULL;
  g_autofree char *uri = NULL;
  Run run = { 0 };

  if (!sip_options_available ())
    return;
  kamailio = kamailio_peer_start_or_skip ();
  if (kamailio == NULL)
    return;
  uri = g_strdup_printf ("sip:127.0.0.1:%u;transport=ws", kamailio_peer_get_port (kamailio));
  sip_options (uri, TRUE, FALSE, &run);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_true (g_str_has_prefix (run.out, "SIP/2.0 200 OK"));
  run_clear (&run);
}

/* ---- through libsofia-ws, in subprocesses: each process loads the module once ------------- */

static void
test_register_missing_module (void)
{
  if (g_test_subprocess ())
    {
      g_autofree char *empty = g_dir_make_tmp ("sofia-ws-no-plugin-XXXXXX", NULL);
      g_autoptr(GError) error = NULL;

      g_setenv ("SOFIA_WS_PLUGIN_DIR", empty, TRUE);
      g_assert_false (sofia_ws_tport_register (&error));
      g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_FAILED);
      g_assert_nonnull (strstr (error->message, "Cannot load the ws tport module"));
      g_assert_null (tport_vtable_by_name ("WS", tport_type_local));
      g_rmdir (empty);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
test_register_foreign (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GError) error = NULL;

      g_setenv ("SOFIA_WS_SIMULATE_FOREIGN_ABI", "1", TRUE);
      g_assert_false (sofia_ws_tport_register (&error));
      g_assert_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_ABI_MISMATCH);
      g_assert_nonnull (strstr (error->message, "not registered"));
      /* Nothing registered: Sofia knows no "WS" transport. */
      g_assert_null (tport_vtable_by_name ("WS", tport_type_local));
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
test_register_from_plugin_dir (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (sofia_ws_tport_register (&error));
      g_assert_no_error (error);
      g_assert_nonnull (tport_vtable_by_name ("WS", tport_type_local));
      g_assert_nonnull (tport_vtable_by_name ("WSS", tport_type_local));
      /* Idempotent. */
      g_assert_true (sofia_ws_tport_register (&error));
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) \
  g_test_add ("/dropin/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("preload/ws", test_preload_ws);
  ADD ("unmodified/ws-fails", test_unmodified_fails);
  ADD ("preload/udp-tcp-unchanged", test_preload_udp_tcp);
  ADD ("preload/foreign-abi", test_preload_foreign);
#undef ADD
  g_test_add_func ("/dropin/preload/kamailio", test_preload_kamailio);
  g_test_add_func ("/dropin/gmodule/plugin-dir", test_register_from_plugin_dir);
  g_test_add_func ("/dropin/gmodule/missing", test_register_missing_module);
  g_test_add_func ("/dropin/gmodule/foreign-abi", test_register_foreign);

  return g_test_run ();
}
