/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bench-util.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>

#define BENCH_ERROR (g_quark_from_static_string ("bench-error"))

gsize
bench_sip_head_length (const guint8 *data,
                       gsize         len)
{
  for (gsize i = 0; i + 3 < len; i++)
    if (data[i] == '\r' && data[i + 1] == '\n' && data[i + 2] == '\r' && data[i + 3] == '\n')
      return i + 4;
  return 0;
}

const char *
bench_sip_find_header (const char *data,
                       gsize       len,
                       const char *name,
                       const char *compact,
                       gsize      *value_len)
{
  const char *end = data + len;
  const char *line = memchr (data, '\n', len);

  if (line == NULL)
    return NULL;
  line++;                       /* skip the start line */

  while (line < end)
    {
      const char *eol = memchr (line, '\n', (gsize) (end - line));
      const char *colon;

      if (eol == NULL)
        eol = end;
      colon = memchr (line, ':', (gsize) (eol - line));
      if (colon != NULL)
        {
          const char *name_end = colon;
          gsize name_len;

          while (name_end > line && (name_end[-1] == ' ' || name_end[-1] == '\t'))
            name_end--;
          name_len = (gsize) (name_end - line);
          if ((name_len == strlen (name) && g_ascii_strncasecmp (line, name, name_len) == 0) ||
              (compact != NULL && name_len == strlen (compact) &&
               g_ascii_strncasecmp (line, compact, name_len) == 0))
            {
              const char *value = colon + 1;
              const char *value_end = eol;

              while (value < value_end && (*value == ' ' || *value == '\t'))
                value++;
              while (value_end > value && g_ascii_isspace (value_end[-1]))
                value_end--;
              *value_len = (gsize) (value_end - value);
              return value;
            }
        }
      line = eol + 1;
    }
  return NULL;
}

gboolean
bench_ws_selected_sip (struct lws *wsi,
                       char       *seen,
                       gsize       seen_size)
{
  seen[0] = '\0';
  if (lws_hdr_copy (wsi, seen, (int) seen_size, WSI_TOKEN_PROTOCOL) <= 0)
    return FALSE;
  return g_ascii_strcasecmp (g_strstrip (seen), "sip") == 0;
}

gboolean
bench_ws_url_parse (const char  *url,
                    BenchWsUrl  *out,
                    GError     **error)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_ENCODED, error);
  const char *path;
  const char *query;

  if (uri == NULL)
    return FALSE;
  if (g_strcmp0 (g_uri_get_scheme (uri), "ws") != 0)
    {
      g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_SCHEME,
                   "only ws:// URLs are supported, not \"%s\"", url);
      return FALSE;
    }
  if (g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    {
      g_set_error (error, G_URI_ERROR, G_URI_ERROR_BAD_HOST, "no host in \"%s\"", url);
      return FALSE;
    }
  out->host = g_strdup (g_uri_get_host (uri));
  out->port = g_uri_get_port (uri) > 0 ? g_uri_get_port (uri) : 80;
  path = *g_uri_get_path (uri) != '\0' ? g_uri_get_path (uri) : "/";
  query = g_uri_get_query (uri);
  out->path = query != NULL ? g_strdup_printf ("%s?%s", path, query) : g_strdup (path);
  out->host_header = strchr (out->host, ':') != NULL
                     ? g_strdup_printf ("[%s]:%d", out->host, out->port)
                     : g_strdup_printf ("%s:%d", out->host, out->port);
  return TRUE;
}

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a;
  gint64 y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

void
bench_latencies_sort (GArray *latencies)
{
  g_array_sort (latencies, compare_gint64);
}

gint64
bench_percentile (GArray *sorted,
                  double  p)
{
  gsize rank;

  if (sorted->len == 0)
    return 0;
  rank = (gsize) ceil (p / 100.0 * sorted->len);
  if (rank < 1)
    rank = 1;
  if (rank > sorted->len)
    rank = sorted->len;
  return g_array_index (sorted, gint64, rank - 1);
}

static const char *hard_limit_message;

static void
on_hard_limit (int signum)
{
  ssize_t ignored G_GNUC_UNUSED;

  /* Async-signal-safe: write(2) and _exit(2) only. */
  ignored = write (STDERR_FILENO, hard_limit_message, strlen (hard_limit_message));
  _exit (1);
}

gboolean
bench_arm_hard_limit (double       seconds,
                      const char  *message,
                      GError     **error)
{
  struct sigaction sa;
  struct itimerval it;

  hard_limit_message = message;
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_hard_limit;
  sigemptyset (&sa.sa_mask);
  if (sigaction (SIGALRM, &sa, NULL) != 0)
    {
      g_set_error (error, BENCH_ERROR, 0, "sigaction: %s", g_strerror (errno));
      return FALSE;
    }
  memset (&it, 0, sizeof it);
  it.it_value.tv_sec = (time_t) seconds;
  it.it_value.tv_usec = (suseconds_t) ((seconds - (double) it.it_value.tv_sec) * 1e6);
  if (setitimer (ITIMER_REAL, &it, NULL) != 0)
    {
      g_set_error (error, BENCH_ERROR, 0, "setitimer: %s", g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}
