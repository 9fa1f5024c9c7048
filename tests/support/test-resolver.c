/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-resolver.h"

typedef struct {
  guint delay_ms;
  char *addresses;                /* NULL: the name does not resolve */
} Answer;

struct _TestResolver
{
  GResolver parent_instance;
  GHashTable *answers;            /* name -> Answer * */
  GResolver *previous;
  guint started;
  guint finished;
  guint cancelled;
};

G_DEFINE_FINAL_TYPE (TestResolver, test_resolver, G_TYPE_RESOLVER)

static void
answer_free (Answer *answer)
{
  g_free (answer->addresses);
  g_free (answer);
}

static GList *
addresses_from (const char *text)
{
  g_auto(GStrv) parts = g_strsplit (text, ",", -1);
  GList *list = NULL;

  for (guint i = 0; parts[i] != NULL; i++)
    {
      GInetAddress *address = g_inet_address_new_from_string (parts[i]);

      g_assert_nonnull (address);
      list = g_list_append (list, address);
    }
  return list;
}

typedef struct {
  TestResolver *self;             /* the task holds a reference */
  char *name;
} Lookup;

static void
lookup_free (Lookup *lookup)
{
  g_free (lookup->name);
  g_free (lookup);
}

static gboolean
on_answer_due (gpointer user_data)
{
  GTask *task = user_data;
  Lookup *lookup = g_task_get_task_data (task);
  TestResolver *self = lookup->self;
  Answer *answer = g_hash_table_lookup (self->answers, lookup->name);

  self->finished++;
  if (g_task_return_error_if_cancelled (task))
    self->cancelled++;
  else if (answer == NULL || answer->addresses == NULL)
    g_task_return_new_error (task, G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND,
                             "test resolver: no address for \"%s\"", lookup->name);
  else
    g_task_return_pointer (task, addresses_from (answer->addresses),
                           (GDestroyNotify) g_resolver_free_addresses);
  return G_SOURCE_REMOVE;
}

static void
test_resolver_lookup_by_name_async (GResolver           *resolver,
                                    const gchar         *hostname,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  TestResolver *self = TEST_RESOLVER (resolver);
  g_autoptr(GTask) task = g_task_new (resolver, cancellable, callback, user_data);
  Answer *answer = g_hash_table_lookup (self->answers, hostname);
  Lookup *lookup = g_new0 (Lookup, 1);
  g_autoptr(GSource) source = g_timeout_source_new (answer != NULL ? answer->delay_ms : 0);

  self->started++;
  lookup->self = self;
  lookup->name = g_strdup (hostname);
  g_task_set_task_data (task, lookup, (GDestroyNotify) lookup_free);
  g_task_set_source_tag (task, test_resolver_lookup_by_name_async);
  /* On the task's context: the thread-default one of the caller. */
  g_task_attach_source (task, source, on_answer_due);
}

static GList *
test_resolver_lookup_by_name_finish (GResolver     *resolver,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
test_resolver_lookup_by_name_with_flags_async (GResolver                 *resolver,
                                               const gchar               *hostname,
                                               GResolverNameLookupFlags   flags,
                                               GCancellable              *cancellable,
                                               GAsyncReadyCallback        callback,
                                               gpointer                   user_data)
{
  test_resolver_lookup_by_name_async (resolver, hostname, cancellable, callback, user_data);
}

static GList *
test_resolver_lookup_by_name (GResolver     *resolver,
                              const gchar   *hostname,
                              GCancellable  *cancellable,
                              GError       **error)
{
  g_set_error (error, G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND,
               "test resolver: synchronous lookup of \"%s\" refused", hostname);
  return NULL;
}

static GList *
test_resolver_lookup_by_name_with_flags (GResolver                 *resolver,
                                         const gchar               *hostname,
                                         GResolverNameLookupFlags   flags,
                                         GCancellable              *cancellable,
                                         GError                   **error)
{
  return test_resolver_lookup_by_name (resolver, hostname, cancellable, error);
}

static void
test_resolver_finalize (GObject *object)
{
  TestResolver *self = TEST_RESOLVER (object);

  g_hash_table_unref (self->answers);
  g_clear_object (&self->previous);
  G_OBJECT_CLASS (test_resolver_parent_class)->finalize (object);
}

static void
test_resolver_class_init (TestResolverClass *klass)
{
  GResolverClass *resolver_class = G_RESOLVER_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = test_resolver_finalize;
  resolver_class->lookup_by_name = test_resolver_lookup_by_name;
  resolver_class->lookup_by_name_async = test_resolver_lookup_by_name_async;
  resolver_class->lookup_by_name_finish = test_resolver_lookup_by_name_finish;
  resolver_class->lookup_by_name_with_flags = test_resolver_lookup_by_name_with_flags;
  resolver_class->lookup_by_name_with_flags_async =
    test_resolver_lookup_by_name_with_flags_async;
  resolver_class->lookup_by_name_with_flags_finish = test_resolver_lookup_by_name_finish;
}

static void
test_resolver_init (TestResolver *self)
{
  self->answers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify) answer_free);
}

TestResolver *
test_resolver_install (void)
{
  TestResolver *self = g_object_new (TEST_TYPE_RESOLVER, NULL);

  self->previous = g_resolver_get_default ();
  g_resolver_set_default (G_RESOLVER (self));
  return self;
}

void
test_resolver_uninstall (TestResolver *self)
{
  test_resolver_wait_idle (self);
  g_resolver_set_default (self->previous);
  g_object_unref (self);
}

void
test_resolver_add (TestResolver *self,
                   const char   *name,
                   guint         delay_ms,
                   const char   *addresses)
{
  Answer *answer = g_new0 (Answer, 1);

  answer->delay_ms = delay_ms;
  answer->addresses = g_strdup (addresses);
  g_hash_table_replace (self->answers, g_strdup (name), answer);
}

guint
test_resolver_started (TestResolver *self)
{
  return self->started;
}

guint
test_resolver_finished (TestResolver *self)
{
  return self->finished;
}

guint
test_resolver_cancelled (TestResolver *self)
{
  return self->cancelled;
}

void
test_resolver_wait_idle (TestResolver *self)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (self->finished < self->started)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("test resolver: %u lookup(s) still under way", self->started - self->finished);
      g_main_context_iteration (NULL, TRUE);
    }
}
