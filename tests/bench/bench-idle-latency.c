/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-idle-latency: does the per-message cost stay flat as idle connections grow?
 *
 * In one process and on one GMainContext: a SofiaWsListener on 127.0.0.1 that echoes every
 * message, N idle SofiaWsWebSocket clients connected to it, and one active client doing
 * sequential round trips of a ~500-byte SIP-like message. For each N of --idle the runs
 * alternate (A/B/A/B...); every run connects its idle clients afresh and closes them at the
 * end. The median of each figure over the runs is printed, with the ratio of the last N to
 * the first.
 *
 *   bench-idle-latency [--idle 10,5000] [--round-trips 5000] [--runs 3] [--batch 200]
 *                      [--warmup 500]
 *
 * Progress goes to stderr, the table to stdout. Exit status 0 only when every run completed
 * (every connect eventually succeeded, every echo matched, everything closed).
 *
 * "polls/rt" and "fds/poll" come from a poll function wrapped around g_poll() for the
 * measured phase: with one GSource for all connections, fds/poll stays small whatever N is;
 * with one GSource per connection it would grow with N. */
#include <sofia-ws/sofia-ws.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#define MESSAGE_SIZE 500
#define FD_MARGIN 64                    /* listener socket, uv, GLib wakeups, stdio, ... */
#define CONNECT_PHASE_TIMEOUT_MS (60 * 1000)
#define ROUND_TRIP_PHASE_TIMEOUT_MS (60 * 1000)
#define CLOSE_PHASE_TIMEOUT_MS (30 * 1000)

typedef struct {
  guint idle;
  guint connect_failures;
  double connect_s;
  double handshakes_per_s;
  double rss_kib_per_pair;
  double p50_us;
  double p99_us;
  double max_us;
  double mean_us;
  double rt_per_s;
  double cpu_us_per_rt;
  double polls_per_rt;
  double fds_per_poll;
} RunResult;

typedef struct {
  /* options */
  guint round_trips;
  guint warmup;
  guint batch;

  SofiaWsListener *listener;
  char *url;
  guint echo_errors;
  gboolean fatal;                       /* something failed: stop after cleaning up */

  /* idle connections */
  GPtrArray *idle;                      /* SofiaWsWebSocket *, NULL while not connected */
  GQueue retry;                         /* slots whose connect failed, to try again */
  guint target;
  guint next_slot;
  guint outstanding;
  guint connected;
  guint failures;
  guint max_failures;
  gboolean give_up;
  char *last_connect_error;

  /* the active client */
  SofiaWsWebSocket *active;
  gboolean active_connected;
  gboolean active_done;
  char *message;                        /* the message in flight */
  gint64 sent_at;
  guint rt_target;
  guint rt_done;
  gboolean recording;
  gint64 *latencies;
  guint mismatches;
  gboolean round_trips_finished;

  /* closing */
  guint disconnects_pending;

  gboolean listener_stopped;

  /* poll accounting */
  gboolean counting_polls;
  guint64 polls;
  guint64 polled_fds;
} Bench;

typedef struct {
  Bench *bench;
  guint slot;
} ConnectOp;

static Bench *poll_owner;

static gint
counting_poll (GPollFD *fds,
               guint    nfds,
               gint     timeout)
{
  if (poll_owner != NULL && poll_owner->counting_polls)
    {
      poll_owner->polls++;
      poll_owner->polled_fds += nfds;
    }
  return g_poll (fds, nfds, timeout);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static double
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double
rss_kib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return 0;
  line = strstr (status, "VmRSS:");
  return line != NULL ? g_ascii_strtod (line + strlen ("VmRSS:"), NULL) : 0;
}

static gboolean
raise_fd_limit (guint max_idle)
{
  /* Both ends of every idle connection and of the active one are in this process. */
  guint needed = 2 * (max_idle + 1) + FD_MARGIN;
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
    {
      g_printerr ("getrlimit(RLIMIT_NOFILE): %s\n", g_strerror (errno));
      return FALSE;
    }
  if (rl.rlim_cur < rl.rlim_max)
    {
      rlim_t old = rl.rlim_cur;

      rl.rlim_cur = rl.rlim_max;
      if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
        g_printerr ("warning: could not raise the RLIMIT_NOFILE soft limit from %lu to %lu: %s\n",
                    (unsigned long) old, (unsigned long) rl.rlim_max, g_strerror (errno));
      getrlimit (RLIMIT_NOFILE, &rl);
    }
  g_printerr ("RLIMIT_NOFILE: soft %lu, hard %lu; this run needs about %u\n",
              (unsigned long) rl.rlim_cur, (unsigned long) rl.rlim_max, needed);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < needed)
    {
      g_printerr ("error: not enough file descriptors: %u idle connections in one process need "
                  "2 fds each (client and server side), about %u in all, but RLIMIT_NOFILE is "
                  "%lu (hard limit %lu). Lower --idle or raise the hard limit "
                  "(ulimit -Hn, limits.conf, systemd LimitNOFILE=).\n",
                  max_idle, needed, (unsigned long) rl.rlim_cur,
                  (unsigned long) rl.rlim_max);
      return FALSE;
    }
  return TRUE;
}

static gboolean
set_flag (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

typedef gboolean (*Condition) (Bench *b);

/* Turns the main context until @cond holds or @timeout_ms passed. */
static gboolean
wait_for (Bench      *b,
          Condition   cond,
          guint       timeout_ms,
          const char *what)
{
  gboolean timed_out = FALSE;
  GSource *timer = g_timeout_source_new (timeout_ms);

  g_source_set_callback (timer, set_flag, &timed_out, NULL);
  g_source_set_static_name (timer, "[bench] deadline");
  g_source_attach (timer, NULL);
  while (!cond (b) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_source_destroy (timer);
  g_source_unref (timer);

  if (!cond (b))
    {
      g_printerr ("error: timed out after %.1f s waiting for %s\n", timeout_ms / 1000.0, what);
      return FALSE;
    }
  return TRUE;
}

/* A SIP MESSAGE of exactly MESSAGE_SIZE bytes; fixed-width numbers keep the size constant. */
static char *
make_message (guint seq)
{
  g_autoptr(GString) s = g_string_sized_new (MESSAGE_SIZE + 1);
  gsize body_len;

  g_string_append_printf (s,
    "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/WS bench.invalid;branch=z9hG4bK-%010u\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:bob@127.0.0.1>\r\n"
    "From: <sip:alice@127.0.0.1>;tag=bench-idle\r\n"
    "Call-ID: bench-idle-latency@127.0.0.1\r\n"
    "CSeq: %010u MESSAGE\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 000\r\n"
    "\r\n", seq, seq);
  g_assert (s->len < MESSAGE_SIZE - 10);
  body_len = MESSAGE_SIZE - s->len;
  g_assert (body_len < 1000);
  /* Fill in the real Content-Length over the placeholder. */
  {
    char *cl = strstr (s->str, "Content-Length: 000");
    char digits[4];

    g_snprintf (digits, sizeof digits, "%03u", (guint) body_len);
    memcpy (cl + strlen ("Content-Length: "), digits, 3);
  }
  for (gsize i = 0; i < body_len; i++)
    g_string_append_c (s, 'a' + (seq + i) % 26);
  g_assert (s->len == MESSAGE_SIZE);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static int
compare_gint64 (const void *a,
                const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static int
compare_double (const void *a,
                const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static gint64
percentile (const gint64 *sorted,
            guint         n,
            double        p)
{
  guint rank = (guint) ceil (p / 100.0 * n);

  return sorted[CLAMP (rank, 1, n) - 1];
}

/* ---- the echo server -------------------------------------------------------------------- */

static void
on_echo_sent (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Bench *b = user_data;
  g_autoptr(GError) error = NULL;

  if (!sofia_ws_transport_send_finish (SOFIA_WS_TRANSPORT (source), result, &error))
    {
      if (b->echo_errors++ < 5)
        g_printerr ("server: echo failed: %s\n", error->message);
    }
}

static void
on_server_message (SofiaWsTransport *connection,
                   const char       *message,
                   Bench            *b)
{
  sofia_ws_transport_send_async (connection, message, NULL, NULL, on_echo_sent, b);
}

static void
on_accepted (SofiaWsListener  *listener,
             SofiaWsWebSocket *connection,
             Bench            *b)
{
  /* The listener keeps the connection alive until it closes. */
  g_signal_connect (connection, "message", G_CALLBACK (on_server_message), b);
}

/* ---- idle connections ------------------------------------------------------------------- */

static void start_connect (Bench *b, guint slot);

static void
refill (Bench *b)
{
  while (!b->give_up && b->outstanding < b->batch)
    {
      guint slot;

      if (!g_queue_is_empty (&b->retry))
        slot = GPOINTER_TO_UINT (g_queue_pop_head (&b->retry));
      else if (b->next_slot < b->target)
        slot = b->next_slot++;
      else
        break;
      start_connect (b, slot);
    }
}

static void
on_idle_connected (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  ConnectOp *op = user_data;
  Bench *b = op->bench;
  g_autoptr(GError) error = NULL;

  b->outstanding--;
  if (sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result, &error))
    b->connected++;
  else
    {
      b->failures++;
      g_free (b->last_connect_error);
      b->last_connect_error = g_strdup (error->message);
      if (b->failures <= 5)
        g_printerr ("  connect %u failed (will retry): %s\n", op->slot, error->message);
      /* The GTask holds the client for the length of this callback. */
      g_clear_object (&b->idle->pdata[op->slot]);
      if (b->failures > b->max_failures)
        b->give_up = TRUE;
      else
        g_queue_push_tail (&b->retry, GUINT_TO_POINTER (op->slot));
    }
  g_free (op);
  refill (b);
}

static void
start_connect (Bench *b,
               guint  slot)
{
  SofiaWsWebSocket *client = sofia_ws_websocket_new (b->url);
  ConnectOp *op = g_new0 (ConnectOp, 1);

  op->bench = b;
  op->slot = slot;
  b->idle->pdata[slot] = client;
  b->outstanding++;
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL,
                                    on_idle_connected, op);
}

static gboolean
idle_phase_over (Bench *b)
{
  return b->outstanding == 0 && (b->connected == b->target || b->give_up);
}

/* ---- the active client ------------------------------------------------------------------ */

static void
on_active_connected (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  Bench *b = user_data;
  g_autoptr(GError) error = NULL;

  b->active_connected = sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result,
                                                           &error);
  if (!b->active_connected)
    g_printerr ("error: the active client could not connect: %s\n", error->message);
  b->active_done = TRUE;
}

static gboolean
active_connect_over (Bench *b)
{
  return b->active_done;
}

static void
on_active_sent (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  Bench *b = user_data;
  g_autoptr(GError) error = NULL;

  if (!sofia_ws_transport_send_finish (SOFIA_WS_TRANSPORT (source), result, &error))
    {
      g_printerr ("error: the active client's send failed: %s\n", error->message);
      b->fatal = TRUE;
    }
}

static void
send_next (Bench *b)
{
  g_free (b->message);
  b->message = make_message (b->rt_done + (b->recording ? b->warmup : 0));
  b->sent_at = g_get_monotonic_time ();
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (b->active), b->message, NULL, NULL,
                                 on_active_sent, b);
}

static void
on_active_message (SofiaWsTransport *client,
                   const char       *message,
                   Bench            *b)
{
  gint64 now = g_get_monotonic_time ();

  if (b->round_trips_finished)
    return;
  if (b->message == NULL || strcmp (message, b->message) != 0)
    b->mismatches++;
  if (b->recording)
    b->latencies[b->rt_done] = now - b->sent_at;
  if (++b->rt_done == b->rt_target)
    b->round_trips_finished = TRUE;
  else
    send_next (b);
}

static gboolean
round_trips_over (Bench *b)
{
  return b->round_trips_finished || b->fatal;
}

static gboolean
run_round_trips (Bench   *b,
                 guint    count,
                 gboolean recording)
{
  if (count == 0)
    return TRUE;
  b->rt_target = count;
  b->rt_done = 0;
  b->recording = recording;
  b->round_trips_finished = FALSE;
  send_next (b);
  return wait_for (b, round_trips_over, ROUND_TRIP_PHASE_TIMEOUT_MS, "the round trips") &&
         !b->fatal;
}

/* ---- closing ---------------------------------------------------------------------------- */

static void
on_disconnected (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Bench *b = user_data;
  g_autoptr(GError) error = NULL;

  if (!sofia_ws_transport_disconnect_finish (SOFIA_WS_TRANSPORT (source), result, &error))
    g_printerr ("  disconnect failed: %s\n", error->message);
  b->disconnects_pending--;
}

static gboolean
disconnects_over (Bench *b)
{
  return b->disconnects_pending == 0;
}

static gboolean
server_side_closed (Bench *b)
{
  return sofia_ws_listener_get_n_connections (b->listener) == 0;
}

static void
disconnect (Bench            *b,
            SofiaWsWebSocket *client)
{
  b->disconnects_pending++;
  sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (client), NULL, NULL,
                                       on_disconnected, b);
}

static gboolean
close_everything (Bench *b)
{
  gboolean ok;

  for (guint i = 0; b->idle != NULL && i < b->idle->len; i++)
    if (b->idle->pdata[i] != NULL)
      disconnect (b, b->idle->pdata[i]);
  if (b->active != NULL)
    disconnect (b, b->active);
  ok = wait_for (b, disconnects_over, CLOSE_PHASE_TIMEOUT_MS, "the clients to disconnect");

  if (b->active != NULL)
    g_signal_handlers_disconnect_by_data (b->active, b);
  g_clear_object (&b->active);
  g_clear_pointer (&b->idle, g_ptr_array_unref);
  g_queue_clear (&b->retry);

  ok = wait_for (b, server_side_closed, CLOSE_PHASE_TIMEOUT_MS,
                 "the server side of every connection to close") && ok;
  return ok;
}

/* ---- one run ---------------------------------------------------------------------------- */

static gboolean
run_once (Bench     *b,
          guint      n_idle,
          RunResult *r)
{
  gint64 t0, t1;
  double rss0, rss1, cpu0, cpu1;
  gboolean ok = FALSE;
  guint still_connected = 0;
  double sum = 0;

  memset (r, 0, sizeof *r);
  r->idle = n_idle;

  /* 1. the idle connections, at most --batch connects outstanding */
  b->idle = g_ptr_array_new_full (n_idle, g_object_unref);
  g_ptr_array_set_size (b->idle, n_idle);
  g_queue_init (&b->retry);
  b->target = n_idle;
  b->next_slot = 0;
  b->outstanding = 0;
  b->connected = 0;
  b->failures = 0;
  b->max_failures = n_idle / 20 + 20;
  b->give_up = FALSE;

  rss0 = rss_kib ();
  t0 = g_get_monotonic_time ();
  refill (b);
  if (!wait_for (b, idle_phase_over, CONNECT_PHASE_TIMEOUT_MS, "the idle connections"))
    goto out;
  t1 = g_get_monotonic_time ();
  rss1 = rss_kib ();
  r->connect_failures = b->failures;
  if (b->give_up)
    {
      g_printerr ("error: gave up after %u failed connects (%u of %u connected); last error: %s\n",
                  b->failures, b->connected, n_idle, b->last_connect_error);
      goto out;
    }
  r->connect_s = (t1 - t0) / 1e6;
  r->handshakes_per_s = n_idle > 0 ? n_idle / MAX (r->connect_s, 1e-6) : 0;
  r->rss_kib_per_pair = n_idle > 0 ? (rss1 - rss0) / n_idle : 0;
  g_printerr ("  %u idle connected in %.2f s (%.0f handshakes/s, %u failed and retried), "
              "RSS %+.1f MiB (%.1f KiB per connection pair; only the first run of a size shows it, later "
              "ones reuse freed memory); listener holds %u\n",
              n_idle, r->connect_s, r->handshakes_per_s, b->failures, (rss1 - rss0) / 1024,
              r->rss_kib_per_pair, sofia_ws_listener_get_n_connections (b->listener));

  /* 2. the active client */
  b->active = sofia_ws_websocket_new (b->url);
  b->active_done = FALSE;
  b->active_connected = FALSE;
  g_signal_connect (b->active, "message", G_CALLBACK (on_active_message), b);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (b->active), NULL, NULL,
                                    on_active_connected, b);
  if (!wait_for (b, active_connect_over, CONNECT_PHASE_TIMEOUT_MS, "the active client") ||
      !b->active_connected)
    goto out;

  b->mismatches = 0;
  if (!run_round_trips (b, b->warmup, FALSE))
    goto out;

  /* 3. the measured round trips */
  b->polls = 0;
  b->polled_fds = 0;
  b->counting_polls = TRUE;
  cpu0 = cpu_seconds ();
  t0 = g_get_monotonic_time ();
  ok = run_round_trips (b, b->round_trips, TRUE);
  t1 = g_get_monotonic_time ();
  cpu1 = cpu_seconds ();
  b->counting_polls = FALSE;
  if (!ok)
    goto out;
  ok = FALSE;

  qsort (b->latencies, b->round_trips, sizeof (gint64), compare_gint64);
  for (guint i = 0; i < b->round_trips; i++)
    sum += b->latencies[i];
  r->p50_us = percentile (b->latencies, b->round_trips, 50);
  r->p99_us = percentile (b->latencies, b->round_trips, 99);
  r->max_us = b->latencies[b->round_trips - 1];
  r->mean_us = sum / b->round_trips;
  r->rt_per_s = b->round_trips / MAX ((t1 - t0) / 1e6, 1e-9);
  r->cpu_us_per_rt = (cpu1 - cpu0) * 1e6 / b->round_trips;
  r->polls_per_rt = (double) b->polls / b->round_trips;
  r->fds_per_poll = b->polls > 0 ? (double) b->polled_fds / b->polls : 0;

  for (guint i = 0; i < b->idle->len; i++)
    if (b->idle->pdata[i] != NULL &&
        sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (b->idle->pdata[i])))
      still_connected++;

  g_printerr ("  %u round trips: p50 %.0f us, p99 %.0f us, max %.0f us, mean %.1f us, "
              "%.0f rt/s, CPU %.1f us/rt, %.2f polls/rt, %.1f fds/poll\n",
              b->round_trips, r->p50_us, r->p99_us, r->max_us, r->mean_us, r->rt_per_s,
              r->cpu_us_per_rt, r->polls_per_rt, r->fds_per_poll);

  if (b->mismatches > 0)
    {
      g_printerr ("error: %u echoes did not match what was sent\n", b->mismatches);
      goto out;
    }
  if (still_connected != n_idle ||
      sofia_ws_listener_get_n_connections (b->listener) != n_idle + 1)
    {
      g_printerr ("error: after the round trips %u of %u idle clients are connected and the "
                  "listener holds %u connections (expected %u)\n", still_connected, n_idle,
                  sofia_ws_listener_get_n_connections (b->listener), n_idle + 1);
      goto out;
    }
  ok = TRUE;

out:
  t0 = g_get_monotonic_time ();
  if (!close_everything (b))
    ok = FALSE;
  g_printerr ("  closed everything in %.2f s\n", (g_get_monotonic_time () - t0) / 1e6);
  return ok;
}

/* ---- main ------------------------------------------------------------------------------- */

static double
median_of (RunResult  *runs,
           guint       n,
           gsize       offset)
{
  g_autofree double *v = g_new (double, n);

  for (guint i = 0; i < n; i++)
    v[i] = *(double *) ((char *) &runs[i] + offset);
  qsort (v, n, sizeof (double), compare_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MEDIAN(runs, n, field) median_of ((runs), (n), G_STRUCT_OFFSET (RunResult, field))

static void
on_listener_stopped (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  Bench *b = user_data;

  sofia_ws_listener_stop_finish (SOFIA_WS_LISTENER (source), result, NULL);
  b->listener_stopped = TRUE;
}

static gboolean
listener_stopped (Bench *b)
{
  return b->listener_stopped;
}

static void
drain_main_context (void)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  gint64 quiet_since = g_get_monotonic_time ();

  /* Let the library tear its libwebsockets contexts and loop down. */
  while (g_get_monotonic_time () - quiet_since < 200 * 1000 && g_get_monotonic_time () < deadline)
    {
      if (g_main_context_iteration (NULL, FALSE))
        quiet_since = g_get_monotonic_time ();
      else
        g_usleep (2000);
    }
}

int
main (int    argc,
      char **argv)
{
  g_autofree char *idle_arg = NULL;
  int round_trips = 5000, runs = 3, batch = 200, warmup = 500;
  GOptionEntry entries[] = {
    { "idle", 'i', 0, G_OPTION_ARG_STRING, &idle_arg,
      "Idle connection counts to compare, comma-separated (default 10,5000)", "N,N,..." },
    { "round-trips", 'k', 0, G_OPTION_ARG_INT, &round_trips,
      "Measured round trips per run (default 5000)", "K" },
    { "runs", 'r', 0, G_OPTION_ARG_INT, &runs, "Runs per idle count (default 3)", "R" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch,
      "Connects outstanding at a time (default 200)", "B" },
    { "warmup", 'w', 0, G_OPTION_ARG_INT, &warmup,
      "Unmeasured round trips before each measurement (default 500)", "W" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- round-trip latency of one "
                                                           "sofia-ws connection vs. idle ones");
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) idle_strs = NULL;
  g_autofree guint *idle_counts = NULL;
  guint n_counts, max_idle = 0;
  g_autofree RunResult *results = NULL;   /* [count][run] */
  Bench bench = { 0 }, *b = &bench;
  gboolean ok = TRUE;
  gboolean stopped = FALSE;
  gint64 started = g_get_monotonic_time ();

  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (round_trips < 1 || runs < 1 || batch < 1 || warmup < 0)
    {
      g_printerr ("--round-trips, --runs and --batch must be at least 1, --warmup at least 0\n");
      return 2;
    }

  idle_strs = g_strsplit (idle_arg != NULL ? idle_arg : "10,5000", ",", -1);
  n_counts = g_strv_length (idle_strs);
  idle_counts = g_new0 (guint, MAX (n_counts, 1));
  for (guint i = 0; i < n_counts; i++)
    {
      guint64 v;

      if (!g_ascii_string_to_unsigned (g_strstrip (idle_strs[i]), 10, 0, 100000, &v, &error))
        {
          g_printerr ("--idle: %s\n", error->message);
          return 2;
        }
      idle_counts[i] = v;
      max_idle = MAX (max_idle, (guint) v);
    }
  if (n_counts == 0)
    {
      g_printerr ("--idle needs at least one count\n");
      return 2;
    }

  /* Before any lws context exists: lws sizes its fd table from the limit at creation. */
  if (!raise_fd_limit (max_idle))
    return 1;

  b->round_trips = round_trips;
  b->warmup = warmup;
  b->batch = batch;
  b->latencies = g_new0 (gint64, round_trips);
  poll_owner = b;
  g_main_context_set_poll_func (NULL, counting_poll);

  b->listener = sofia_ws_listener_new ();
  /* Thousands of connections, all from 127.0.0.1: no connection limits. */
  g_object_set (b->listener, "address", "127.0.0.1", "port", 0, "max-connections", 0,
                "max-connections-per-address", 0, NULL);
  g_signal_connect (b->listener, "accepted", G_CALLBACK (on_accepted), b);
  if (!sofia_ws_listener_start (b->listener, &error))
    {
      g_printerr ("error: could not start the listener: %s\n", error->message);
      g_object_unref (b->listener);
      g_free (b->latencies);
      return 1;
    }
  b->url = g_strdup_printf ("ws://127.0.0.1:%u/", sofia_ws_listener_get_port (b->listener));
  g_printerr ("listener on %s; %d runs per idle count, %d round trips of %d bytes each "
              "(after %d warm-up), connects %d at a time\n",
              b->url, runs, round_trips, MESSAGE_SIZE, warmup, batch);

  results = g_new0 (RunResult, (gsize) n_counts * runs);
  for (int run = 0; run < runs && ok; run++)
    for (guint c = 0; c < n_counts && ok; c++)
      {
        g_printerr ("run %d/%d, %u idle connections (%.1f s elapsed)\n", run + 1, runs,
                    idle_counts[c], (g_get_monotonic_time () - started) / 1e6);
        ok = run_once (b, idle_counts[c], &results[c * runs + run]);
      }

  if (ok)
    {
      RunResult *first = &results[0];
      double p50_first, p50_last, rts_first, rts_last, cpu_first, cpu_last;

      g_print ("\nsofia-ws idle-connection benchmark: 1 process, 1 GMainContext, ws on 127.0.0.1,"
               " %d-byte messages,\n%d measured round trips per run, median of %d runs "
               "per row (each column's median on its own)\n\n",
               MESSAGE_SIZE, round_trips, runs);
      g_print ("%6s %10s %8s %8s %8s %8s %8s %8s %9s %8s %8s %6s\n",
               "idle", "connect ms", "hs/s", "p50 us", "p99 us", "max us", "mean us",
               "rt/s", "CPU us/rt", "polls/rt", "fds/poll", "fails");
      for (guint c = 0; c < n_counts; c++)
        {
          RunResult *rr = &results[c * runs];
          guint fails = 0;

          for (int run = 0; run < runs; run++)
            fails += rr[run].connect_failures;
          g_print ("%6u %10.1f %8.0f %8.0f %8.0f %8.0f %8.1f %8.0f %9.1f %8.2f %8.1f %6u\n",
                   idle_counts[c], MEDIAN (rr, runs, connect_s) * 1000,
                   MEDIAN (rr, runs, handshakes_per_s), MEDIAN (rr, runs, p50_us),
                   MEDIAN (rr, runs, p99_us), MEDIAN (rr, runs, max_us),
                   MEDIAN (rr, runs, mean_us), MEDIAN (rr, runs, rt_per_s),
                   MEDIAN (rr, runs, cpu_us_per_rt), MEDIAN (rr, runs, polls_per_rt),
                   MEDIAN (rr, runs, fds_per_poll), fails);
        }

      g_print ("\nper run (in the order run):\n");
      for (int run = 0; run < runs; run++)
        for (guint c = 0; c < n_counts; c++)
          {
            RunResult *r = &results[c * runs + run];

            g_print ("  run %d idle %5u: p50 %5.0f us  p99 %5.0f us  max %6.0f us  %7.0f rt/s  "
                     "CPU %6.1f us/rt  %.1f fds/poll  connect %.0f ms\n",
                     run + 1, r->idle, r->p50_us, r->p99_us, r->max_us, r->rt_per_s,
                     r->cpu_us_per_rt, r->fds_per_poll, r->connect_s * 1000);
          }

      if (n_counts > 1)
        {
          RunResult *last = &results[(n_counts - 1) * runs];

          p50_first = MEDIAN (first, runs, p50_us);
          p50_last = MEDIAN (last, runs, p50_us);
          rts_first = MEDIAN (first, runs, rt_per_s);
          rts_last = MEDIAN (last, runs, rt_per_s);
          cpu_first = MEDIAN (first, runs, cpu_us_per_rt);
          cpu_last = MEDIAN (last, runs, cpu_us_per_rt);
          g_print ("\nratio idle=%u / idle=%u: p50 x%.2f, rt/s x%.2f, CPU us/rt x%.2f\n",
                   idle_counts[n_counts - 1], idle_counts[0], p50_last / MAX (p50_first, 1e-9),
                   rts_last / MAX (rts_first, 1e-9), cpu_last / MAX (cpu_first, 1e-9));
        }
    }

  /* Tear down: stop the listener, wait for its port to be released, let lws wind down. */
  sofia_ws_listener_stop_async (b->listener, NULL, on_listener_stopped, b);
  stopped = wait_for (b, listener_stopped, CLOSE_PHASE_TIMEOUT_MS, "the listener to stop");
  g_signal_handlers_disconnect_by_data (b->listener, b);
  g_clear_object (&b->listener);
  drain_main_context ();
  g_main_context_set_poll_func (NULL, g_poll);
  poll_owner = NULL;

  g_free (b->url);
  g_free (b->message);
  g_free (b->latencies);
  g_free (b->last_connect_error);
  g_printerr ("%s after %.1f s\n", ok && stopped ? "done" : "FAILED",
              (g_get_monotonic_time () - started) / 1e6);
  return ok ? 0 : 1;
}
