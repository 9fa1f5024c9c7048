/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* A GResolver for tests, installed as the default: it answers the names added to it, after
 * the delay given, on the context of the caller of the lookup, and never touches DNS. A name
 * it was not given fails with G_RESOLVER_ERROR_NOT_FOUND, and so does a synchronous lookup
 * (nothing in the code under test may block on one). IP literals and "localhost" are
 * answered by GResolver itself without reaching it. */
#define TEST_TYPE_RESOLVER (test_resolver_get_type ())
G_DECLARE_FINAL_TYPE (TestResolver, test_resolver, TEST, RESOLVER, GResolver)

/* Makes a resolver and sets it as the default (the previous one is restored by
 * test_resolver_uninstall()). */
TestResolver *test_resolver_install   (void);
void          test_resolver_uninstall (TestResolver *self);

/* @name resolves to @addresses (comma-separated IP literals) after @delay_ms, or fails with
 * G_RESOLVER_ERROR_NOT_FOUND after @delay_ms when @addresses is NULL. */
void          test_resolver_add       (TestResolver *self,
                                       const char   *name,
                                       guint         delay_ms,
                                       const char   *addresses);

/* Asynchronous lookups started, finished (answered or cancelled), and finished cancelled. */
guint         test_resolver_started   (TestResolver *self);
guint         test_resolver_finished  (TestResolver *self);
guint         test_resolver_cancelled (TestResolver *self);
/* Waits (iterating the thread-default context) until every lookup started has finished. */
void          test_resolver_wait_idle (TestResolver *self);

G_END_DECLS
