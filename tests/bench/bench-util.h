/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the benchmark clients (sip-load, ws-crowd) share: just enough SIP text handling for a
 * load generator (no allocation per message), the WebSocket URL they dial, the "sip"
 * subprotocol check, latency percentiles, and a hard time limit on the whole process. */
#pragma once

#include <libwebsockets.h>
#include <glib.h>

G_BEGIN_DECLS

/* Finds "\r\n\r\n" in data[0..len); returns the length of the head including it, or 0. */
gsize        bench_sip_head_length   (const guint8 *data,
                                      gsize         len);

/* The value of header @name (or its compact form @compact, may be NULL) within the head
 * data[0..len), whitespace-trimmed, @value_len bytes long; NULL when absent. Folded header
 * lines are not handled. */
const char  *bench_sip_find_header   (const char   *data,
                                      gsize         len,
                                      const char   *name,
                                      const char   *compact,
                                      gsize        *value_len);

/* Whether the 101 of @wsi selected the "sip" subprotocol (RFC 7118); @seen gets what it
 * selected, for messages. */
gboolean     bench_ws_selected_sip   (struct lws   *wsi,
                                      char         *seen,
                                      gsize         seen_size);

/* A ws:// URL taken apart for lws_client_connect_via_info(); the strings are the caller's. */
typedef struct {
  char *host;
  int port;
  char *path;                   /* with the query, if any; "/" when empty */
  char *host_header;            /* host:port, IPv6 literals bracketed */
} BenchWsUrl;

gboolean     bench_ws_url_parse      (const char   *url,
                                      BenchWsUrl   *out,
                                      GError      **error);

/* Sorts @latencies (gint64) in place, for bench_percentile(). */
void         bench_latencies_sort    (GArray       *latencies);
/* Nearest-rank percentile @p (0-100) of sorted gint64 values; 0 when empty. */
gint64       bench_percentile        (GArray       *sorted,
                                      double        p);

/* Ends the process with exit status 1, writing @message (a static string) to stderr, after
 * @seconds whatever else happens (SIGALRM). */
gboolean     bench_arm_hard_limit    (double        seconds,
                                      const char   *message,
                                      GError      **error);

G_END_DECLS
