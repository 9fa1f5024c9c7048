/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "ws-probe.h"

#include <gio/gio.h>

#define PROBE_TIMEOUT_S 30

typedef struct {
  gboolean done;
  char *out;
  char *err;
} Run;

static char *
node_dir (void)
{
  return g_test_build_filename (G_TEST_DIST, "interop", "node", NULL);
}

gboolean
test_node_package_available (const char *package)
{
  g_autofree char *dir = node_dir ();
  g_autofree char *modules = g_build_filename (dir, "node_modules", package, NULL);

  if (g_file_test (modules, G_FILE_TEST_IS_DIR))
    return TRUE;
  g_test_skip ("tests/interop/node has no node_modules: run `npm ci` there (./run test does)");
  return FALSE;
}

gboolean
test_ws_probe_available (void)
{
  return test_node_package_available ("ws");
}

static void
on_probe_done (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Run *run = user_data;
  g_autoptr(GError) error = NULL;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &run->out, &run->err,
                                        &error);
  g_assert_no_error (error);
  run->done = TRUE;
}

GKeyFile *
test_ws_probe (const char *url,
               const char *case_name,
               ...)
{
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = node_dir ();
  gint64 deadline = g_get_monotonic_time () + PROBE_TIMEOUT_S * G_USEC_PER_SEC;
  GKeyFile *report = g_key_file_new ();
  Run run = { 0 };
  const char *arg;
  va_list ap;

  g_ptr_array_add (argv, g_strdup ("node"));
  g_ptr_array_add (argv, g_strdup ("ws-probe.mjs"));
  g_ptr_array_add (argv, g_strdup ("--url"));
  g_ptr_array_add (argv, g_strdup (url));
  g_ptr_array_add (argv, g_strdup ("--case"));
  g_ptr_array_add (argv, g_strdup (case_name));
  va_start (ap, case_name);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (ap);
  g_ptr_array_add (argv, NULL);

  g_subprocess_launcher_set_cwd (launcher, dir);
  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, NULL, NULL, on_probe_done, &run);
  while (!run.done)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("ws-probe.mjs %s did not finish within %d s", case_name, PROBE_TIMEOUT_S);
      g_main_context_iteration (NULL, TRUE);
    }

  if (!g_key_file_load_from_data (report, run.out, -1, G_KEY_FILE_NONE, &error))
    g_error ("probe %s printed no report (%s); stderr:\n%s", case_name, error->message, run.err);
  g_test_message ("probe %s: %s", case_name, run.out);
  g_free (run.out);
  g_free (run.err);
  return report;
}
