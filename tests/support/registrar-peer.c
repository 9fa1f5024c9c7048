/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "registrar-peer.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <sys/prctl.h>
#include <string.h>
#include "valgrind-compat.h"

#define LISTENING "listening sip:"

struct _RegistrarPeer {
  GSubprocess *process;
  GDataInputStream *out;
  GHashTable *ports;              /* transport -> port */
};

void
test_wrap_in_valgrind (GPtrArray *argv)
{
  const char *suppressions = g_getenv ("SOFIA_WS_VALGRIND_SUPPRESSIONS");
  g_auto(GStrv) files = suppressions ? g_strsplit (suppressions, ":", -1) : NULL;

  if (!RUNNING_ON_VALGRIND)
    return;
  g_ptr_array_add (argv, g_strdup ("valgrind"));
  g_ptr_array_add (argv, g_strdup ("--error-exitcode=99"));
  g_ptr_array_add (argv, g_strdup ("--leak-check=full"));
  g_ptr_array_add (argv, g_strdup ("--errors-for-leak-kinds=definite"));
  g_ptr_array_add (argv, g_strdup ("--show-leak-kinds=definite"));
  for (char **file = files; file != NULL && *file != NULL; file++)
    g_ptr_array_add (argv, g_strdup_printf ("--suppressions=%s", *file));
}

char *
test_preload_value (const char *module)
{
  const char *runtime = g_getenv ("SOFIA_WS_ASAN_PRELOAD");

  if (runtime != NULL && *runtime != '\0')
    return g_strdup_printf ("%s:%s", runtime, module);
  return g_strdup (module);
}

gboolean
test_is_sanitized (void)
{
  return g_getenv ("SOFIA_WS_TEST_SANITIZED") != NULL;
}

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static RegistrarPeer *
peer_start (const char        *variable,
            const char *const *args,
            guint              listeners,
            const char        *stderr_path)
{
  const char *binary = g_getenv (variable);
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  RegistrarPeer *self = g_new0 (RegistrarPeer, 1);
  gboolean count = listeners == 0;

  g_assert_nonnull (binary);
  test_wrap_in_valgrind (argv);
  g_ptr_array_add (argv, g_strdup (binary));
  for (const char *const *arg = args; *arg != NULL; arg++)
    {
      g_ptr_array_add (argv, g_strdup (*arg));
      listeners += count && g_str_equal (*arg, "--listen");
    }
  g_ptr_array_add (argv, NULL);

  {
    g_autoptr(GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);

    /* A test that dies (a fatal assertion) takes its registrar along: an orphan would keep the
     * test's stdout open and meson waiting for it until the timeout. */
    g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
    if (stderr_path != NULL)
      g_subprocess_launcher_set_stderr_file_path (launcher, stderr_path);
    self->process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata,
                                                  &error);
  }
  g_assert_no_error (error);
  self->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (self->process));
  self->ports = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  /* "listening sip:127.0.0.1:PORT;transport=T", one per listener. */
  while (g_hash_table_size (self->ports) < listeners)
    {
      g_autofree char *line = g_data_input_stream_read_line_utf8 (self->out, NULL, NULL, &error);
      const char *port, *transport;

      g_assert_no_error (error);
      g_assert_nonnull (line);
      g_test_message ("registrar: %s", line);
      g_assert_true (g_str_has_prefix (line, LISTENING));
      port = strrchr (line, ':');
      transport = strstr (line, ";transport=");
      g_assert_nonnull (transport);
      g_hash_table_insert (self->ports, g_strdup (transport + strlen (";transport=")),
                           GUINT_TO_POINTER (g_ascii_strtoull (port + 1, NULL, 10)));
    }
  return self;
}

RegistrarPeer *
registrar_peer_start (const char *const *args)
{
  return peer_start ("SOFIA_WS_REGISTRAR", args, 0, NULL);
}

RegistrarPeer *
registrar_peer_start_edge (const char *const *args)
{
  return peer_start ("SOFIA_WS_EDGE", args, 0, NULL);
}

RegistrarPeer *
registrar_peer_start_edge_logging (const char *const *args,
                                   const char        *stderr_path)
{
  return peer_start ("SOFIA_WS_EDGE", args, 0, stderr_path);
}

RegistrarPeer *
registrar_peer_start_edge_listening (const char *const *args,
                                     guint              listeners)
{
  return peer_start ("SOFIA_WS_EDGE", args, listeners, NULL);
}

guint16
registrar_peer_get_port (RegistrarPeer *self,
                         const char    *transport)
{
  return (guint16) GPOINTER_TO_UINT (g_hash_table_lookup (self->ports, transport));
}

GPid
registrar_peer_get_pid (RegistrarPeer *self)
{
  const char *id = g_subprocess_get_identifier (self->process);

  return id != NULL ? (GPid) g_ascii_strtoll (id, NULL, 10) : 0;
}

typedef struct {
  char *line;
  gboolean done;
} LineRead;

static void
on_line (GObject *source, GAsyncResult *result, gpointer data)
{
  LineRead *read = data;
  g_autoptr(GError) error = NULL;

  read->line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result,
                                                          NULL, &error);
  g_assert_no_error (error);
  read->done = TRUE;
}

char *
registrar_peer_read_line (RegistrarPeer *self,
                          const char    *prefix,
                          void         (*iterate) (gpointer data),
                          gpointer       data)
{
  gint64 deadline = g_get_monotonic_time () + 40 * G_USEC_PER_SEC;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      LineRead read = { NULL, FALSE };

      if (iterate == NULL)
        {
          read.line = g_data_input_stream_read_line_utf8 (self->out, NULL, NULL, &error);
          g_assert_no_error (error);
        }
      else
        {
          g_data_input_stream_read_line_async (self->out, G_PRIORITY_DEFAULT, NULL, on_line,
                                               &read);
          while (!read.done)
            {
              g_assert_cmpint (g_get_monotonic_time (), <, deadline);
              iterate (data);
            }
        }
      g_assert_nonnull (read.line);
      g_test_message ("registrar: %s", read.line);
      if (g_str_has_prefix (read.line, prefix))
        return read.line;
      g_free (read.line);
    }
}

int
registrar_peer_terminate (RegistrarPeer *self)
{
  g_autoptr(GError) error = NULL;
  int status;

  g_subprocess_send_signal (self->process, SIGTERM);
  g_subprocess_wait (self->process, NULL, &error);
  g_assert_no_error (error);
  if (g_subprocess_get_if_exited (self->process))
    status = g_subprocess_get_exit_status (self->process);
  else
    status = -g_subprocess_get_term_sig (self->process);
  g_object_unref (self->out);
  g_object_unref (self->process);
  g_hash_table_unref (self->ports);
  g_free (self);
  return status;
}

void
registrar_peer_stop (RegistrarPeer *self)
{
  /* (Under g_test_set_nonfatal_assertions(), a registrar killed by a signal fails the test here
   * and goes on.) */
  if (self != NULL)
    g_assert_cmpint (registrar_peer_terminate (self), ==, 0);
}

TestCertificate *
test_certificate_new (const char *name)
{
  return test_certificate_new_with_san (name, "IP:127.0.0.1");
}

TestCertificate *
test_certificate_new_with_san (const char *name,
                               const char *san)
{
  TestCertificate *self = g_new0 (TestCertificate, 1);
  g_autofree char *command = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;

  self->dir = g_dir_make_tmp ("sofia-ws-certificate-XXXXXX", NULL);
  g_assert_nonnull (self->dir);
  command = g_strdup_printf ("sh -c \"cd '%s' && openssl req -x509 -newkey ec "
                             "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key "
                             "-out server.pem -days 2 -subj /CN=%s "
                             "-addext subjectAltName=%s 2>/dev/null\"",
                             self->dir, name, san);
  g_spawn_command_line_sync (command, NULL, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("openssl failed: %s", err);
  self->certificate = g_build_filename (self->dir, "server.pem", NULL);
  self->key = g_build_filename (self->dir, "server.key", NULL);
  return self;
}

void
test_certificate_free (TestCertificate *self)
{
  if (self == NULL)
    return;
  g_unlink (self->certificate);
  g_unlink (self->key);
  g_rmdir (self->dir);
  g_free (self->certificate);
  g_free (self->key);
  g_free (self->dir);
  g_free (self);
}
