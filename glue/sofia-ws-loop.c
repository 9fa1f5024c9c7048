/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>
#include <gio/gio.h>
#include <uv.h>

#include "sofia-ws-error.h"
#include "sofia-ws-loop-private.h"

struct _SofiaWsLoop
{
  guint ref_count;                /* under loops_lock */
  gboolean dying;                 /* destruction scheduled; a new ref cancels it */
  GMainContext *context;
  uv_loop_t uv;
  GSource *source;
  struct lws_context *client_lws; /* shared by the clients, made on first use */
  GHashTable *client_vhosts;      /* CA file ("" = system CAs) -> struct lws_vhost * */
  GHashTable *liveness_policies;  /* (ping << 16 | hangup) -> lws_retry_bo_t * */
};

typedef struct {
  GSource source;
  SofiaWsLoop *loop;              /* not a reference: the loop owns the source */
  gpointer fd_tag;
  gboolean dispatching;           /* inside uv_run() */
  gboolean kicked;                /* another uv_run() wanted once this one ends */
  gboolean masked;                /* fd taken out of a nested iteration's poll */
} UvSource;

/* One loop per GMainContext. */
static GMutex loops_lock;
static GHashTable *loops;

const struct lws_protocols sofia_ws_loop_protocols[] = {
  {
    .name = "sip",
    .callback = sofia_ws_loop_protocol_callback,
    .per_session_data_size = sizeof (SofiaWsSessionData),
    /* lws gives every connection a receive buffer of this size (0: the context's
     * pt_serv_buf_size), and caps each read from the socket at it. Not smaller: at 1 KiB
     * pipelined requests cost one recv() per KiB (7% more CPU per request at 1 x 32) for
     * 3 KiB less per idle connection. */
    .rx_buffer_size = 0,
    /* Without it, sends would be cut at rx_buffer_size: one send() per message up to this. */
    .tx_packet_size = 64 * 1024,
  },
  { NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* ---- the uv loop as one GSource ------------------------------------------------------- */

/* The source can recurse, so that GLib does not take its fd out of the poll set and put it
 * back around every dispatch, which costs two wakeup writes and a read per iteration. uv_run()
 * must not recurse, though: an iteration nested in one of our dispatches (a handler running a
 * main loop) does not dispatch us, and stops polling our fd, which stays readable, until the
 * outer dispatch ends. */
static gboolean
uv_source_prepare (GSource *source,
                   gint    *timeout)
{
  UvSource *self = (UvSource *) source;
  uv_loop_t *uv = &self->loop->uv;
  int next;

  if (self->dispatching)
    {
      if (!self->masked)
        {
          g_source_modify_unix_fd (source, self->fd_tag, 0);
          self->masked = TRUE;
        }
      *timeout = -1;
      return FALSE;
    }

  /* uv_backend_timeout() says 0 for a loop with nothing to do: that means "sleep" here. */
  if (!uv_loop_alive (uv))
    {
      *timeout = -1;
      return FALSE;
    }

  uv_update_time (uv);
  next = uv_backend_timeout (uv);
  *timeout = next;
  return next == 0;
}

static gboolean
uv_source_check (GSource *source)
{
  UvSource *self = (UvSource *) source;
  uv_loop_t *uv = &self->loop->uv;

  if (self->dispatching)
    return FALSE;
  if (g_source_query_unix_fd (source, self->fd_tag) & (G_IO_IN | G_IO_ERR | G_IO_HUP))
    return TRUE;
  if (!uv_loop_alive (uv))
    return FALSE;
  uv_update_time (uv);
  return uv_backend_timeout (uv) == 0;
}

static gboolean
uv_source_dispatch (GSource     *source,
                    GSourceFunc  callback,
                    gpointer     user_data)
{
  UvSource *self = (UvSource *) source;

  if (self->dispatching)
    {
      /* A nested iteration found the ready time set before the outer dispatch began: that
       * run is owed to the outer one, and left set it would make this iteration spin. */
      self->kicked = TRUE;
      g_source_set_ready_time (source, -1);
      return G_SOURCE_CONTINUE;
    }

  self->dispatching = TRUE;
  self->kicked = FALSE;
  uv_run (&self->loop->uv, UV_RUN_NOWAIT);
  /* lws's uv event library starts an idle handle after every I/O callback, so that its next
   * loop iteration finishes the service (its timers, input it has buffered): a second
   * uv_run() per message. Here, not in another pass of the GLib context (prepare, query,
   * poll(), check, dispatch; on a plain su_root, a timer of the root and its wake-up too);
   * once, so that the other sources keep their turn when messages keep coming. */
  if (!g_source_is_destroyed (source) && uv_loop_alive (&self->loop->uv) &&
      uv_backend_timeout (&self->loop->uv) == 0)
    uv_run (&self->loop->uv, UV_RUN_NOWAIT);
  self->dispatching = FALSE;
  if (g_source_is_destroyed (source))     /* the loop went away from a callback */
    return G_SOURCE_REMOVE;

  if (self->masked)
    {
      g_source_modify_unix_fd (source, self->fd_tag, G_IO_IN);
      self->masked = FALSE;
    }
  /* Kicks from inside uv_run() (a write asked for, a wsi to close) were only noted: one
   * ready time for all, set only when it changes, since each change writes GLib's wakeup. */
  g_source_set_ready_time (source, self->kicked ? 0 : -1);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs uv_source_funcs = {
  .prepare = uv_source_prepare,
  .check = uv_source_check,
  .dispatch = uv_source_dispatch,
};

void
sofia_ws_loop_kick (SofiaWsLoop *loop)
{
  UvSource *source = (UvSource *) loop->source;

  if (source->dispatching)
    source->kicked = TRUE;
  else
    g_source_set_ready_time (loop->source, 0);
}

void
sofia_ws_loop_wake (SofiaWsLoop *loop,
                    struct lws  *wsi)
{
  lws_cancel_service (lws_get_context (wsi));
  sofia_ws_loop_kick (loop);
}

/* ---- lws logging ---------------------------------------------------------------------- */

static void
log_from_lws (int         level,
              const char *line)
{
  g_autofree char *text = g_strchomp (g_strdup (line));

  /* Failures reach users as GErrors and close codes; lws's own lines are for debugging. */
  g_debug ("lws: %s", text);
}

static void
set_lws_logging (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once))
    {
      const char *level = g_getenv ("SOFIA_WS_LWS_LOG_LEVEL");

      /* lws's log bits (LLL_*; 31 adds info and debug lines), into g_debug(). */
      lws_set_log_level (level != NULL ? atoi (level) : (LLL_ERR | LLL_WARN | LLL_NOTICE),
                         log_from_lws);
      g_once_init_leave (&once, 1);
    }
}

/* ---- creation and destruction --------------------------------------------------------- */

static void
turn_until_idle (uv_loop_t *uv)
{
  int budget = 10000;

  while (budget-- > 0 && uv_run (uv, UV_RUN_NOWAIT) != 0)
    ;
}

static void
loop_free (SofiaWsLoop *loop)
{
  if (loop->client_lws != NULL)
    {
      /* With a foreign loop lws closes its handles asynchronously: turn the uv loop until
       * they are closed (bounded, as lws's own internal-loop teardown is), then destroy
       * again to free the rest, as lws's foreign-loop example does. */
      lws_context_destroy (loop->client_lws);
      turn_until_idle (&loop->uv);
      lws_context_destroy (loop->client_lws);
      turn_until_idle (&loop->uv);
    }

  g_clear_pointer (&loop->client_vhosts, g_hash_table_unref);
  g_clear_pointer (&loop->liveness_policies, g_hash_table_unref);
  if (loop->source != NULL)
    {
      g_source_destroy (loop->source);
      g_source_unref (loop->source);
    }

  if (uv_loop_close (&loop->uv) != 0)
    {
      /* Freeing a loop with live handles would be a use-after-free later: keep it. */
      g_debug ("libuv loop still has open handles after lws was destroyed; leaving it");
      g_main_context_unref (loop->context);
      return;
    }

  g_main_context_unref (loop->context);
  g_free (loop);
}

static gboolean
loop_destroy_if_unused (gpointer user_data)
{
  SofiaWsLoop *loop = user_data;

  g_mutex_lock (&loops_lock);
  if (loop->ref_count > 0)
    {
      loop->dying = FALSE;
      g_mutex_unlock (&loops_lock);
      return G_SOURCE_REMOVE;
    }
  g_hash_table_remove (loops, loop->context);
  g_mutex_unlock (&loops_lock);

  loop_free (loop);
  return G_SOURCE_REMOVE;
}

static SofiaWsLoop *
loop_new (GMainContext  *context,
          GError       **error)
{
  SofiaWsLoop *loop = g_new0 (SofiaWsLoop, 1);
  UvSource *uv_source;
  int err;

  loop->ref_count = 1;
  loop->context = g_main_context_ref (context);
  loop->client_vhosts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  loop->liveness_policies = g_hash_table_new_full (NULL, NULL, NULL, g_free);

  err = uv_loop_init (&loop->uv);
  if (err != 0)
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_FAILED,
                   "Could not create a libuv loop: %s", uv_strerror (err));
      g_hash_table_unref (loop->client_vhosts);
      g_hash_table_unref (loop->liveness_policies);
      g_main_context_unref (loop->context);
      g_free (loop);
      return NULL;
    }

  loop->source = g_source_new (&uv_source_funcs, sizeof (UvSource));
  uv_source = (UvSource *) loop->source;
  uv_source->loop = loop;
  uv_source->fd_tag = g_source_add_unix_fd (loop->source, uv_backend_fd (&loop->uv), G_IO_IN);
  g_source_set_static_name (loop->source, "[sofia-ws] libwebsockets");
  g_source_set_can_recurse (loop->source, TRUE);
  g_source_attach (loop->source, context);
  return loop;
}

static struct lws_context *
lws_context_new_on_loop (SofiaWsLoop  *loop,
                         GError      **error)
{
  struct lws_context_creation_info info = { 0 };
  struct lws_context *lws;
  void *foreign_loops[1];

  set_lws_logging ();
  foreign_loops[0] = &loop->uv;
  info.options = LWS_SERVER_OPTION_LIBUV |
                 LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                 LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                 LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;
  info.port = CONTEXT_PORT_NO_LISTEN;
  /* lws reads at most this much from a socket at a time (for ws: its receive buffer, which
   * is this size too). lws's 4 KiB cost a recv() per ten pipelined requests, where Sofia's
   * TCP reads everything there is; 16 KiB makes 1 x 32 0.87 -> 0.91 of TCP. An idle
   * connection's RSS does not change (8.1 KiB): the buffer's pages are touched only as far
   * as messages fill it. */
  info.pt_serv_buf_size = 16 * 1024;
  info.foreign_loops = foreign_loops;
  info.gid = -1;
  info.uid = -1;
  lws = lws_create_context (&info);
  if (lws == NULL)
    g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_FAILED,
                         "Could not create a libwebsockets context (is the "
                         "libwebsockets-evlib-uv package installed?)");
  return lws;
}

struct lws_context *
sofia_ws_loop_new_server_context (SofiaWsLoop  *loop,
                                  GError      **error)
{
  return lws_context_new_on_loop (loop, error);
}

/* ---- destroying a listener's context while the loop goes on --------------------------- */

typedef struct {
  SofiaWsLoop *loop;
  struct lws_context *lws;
  GPtrArray *done;                /* GTask *, completed at the end */
  gboolean started;
  gboolean busy;
} Teardown;

static void
find_context_handle (uv_handle_t *handle,
                     void        *user_data)
{
  Teardown *teardown = user_data;

  /* lws's own uv handles carry their context (LWS_UV_REFCOUNT_STATIC_HANDLE_NEW); they close
   * only after every connection of that context has. */
  if (handle->data == (void *) teardown->lws)
    teardown->busy = TRUE;
}

static gboolean
step_teardown (gpointer user_data)
{
  Teardown *teardown = user_data;

  /* Started here, from the GLib side: inside an lws callback lws would defer it. */
  if (!teardown->started)
    {
      teardown->started = TRUE;
      lws_context_destroy (teardown->lws);
      sofia_ws_loop_kick (teardown->loop);
      return G_SOURCE_CONTINUE;
    }

  teardown->busy = FALSE;
  uv_walk (&teardown->loop->uv, find_context_handle, teardown);
  if (teardown->busy)
    return G_SOURCE_CONTINUE;

  lws_context_destroy (teardown->lws);
  for (guint i = 0; teardown->done != NULL && i < teardown->done->len; i++)
    g_task_return_boolean (teardown->done->pdata[i], TRUE);
  g_clear_pointer (&teardown->done, g_ptr_array_unref);
  sofia_ws_loop_unref (teardown->loop);
  g_free (teardown);
  return G_SOURCE_REMOVE;
}

void
sofia_ws_loop_destroy_server_context (SofiaWsLoop        *loop,
                                      struct lws_context *lws,
                                      GPtrArray          *done)
{
  Teardown *teardown = g_new0 (Teardown, 1);
  GSource *source;

  /* The first lws_context_destroy() closes everything asynchronously on the uv loop; the
   * second, once lws's handles are gone, frees the context (as lws's foreign-loop example
   * does). */
  teardown->loop = sofia_ws_loop_ref (loop);
  teardown->lws = lws;
  teardown->done = done != NULL ? g_ptr_array_ref (done) : NULL;

  source = g_timeout_source_new (10);
  g_source_set_callback (source, step_teardown, teardown, NULL);
  g_source_set_static_name (source, "[sofia-ws] listener teardown");
  g_source_attach (source, loop->context);
  g_source_unref (source);
}

SofiaWsLoop *
sofia_ws_loop_ref_for_context (GMainContext  *context,
                               GError       **error)
{
  SofiaWsLoop *loop;

  g_return_val_if_fail (context != NULL, NULL);

  g_mutex_lock (&loops_lock);
  if (loops == NULL)
    loops = g_hash_table_new (NULL, NULL);

  loop = g_hash_table_lookup (loops, context);
  if (loop != NULL)
    loop->ref_count++;
  else
    {
      loop = loop_new (context, error);
      if (loop != NULL)
        g_hash_table_insert (loops, context, loop);
    }
  g_mutex_unlock (&loops_lock);

  return loop;
}

SofiaWsLoop *
sofia_ws_loop_ref (SofiaWsLoop *loop)
{
  g_mutex_lock (&loops_lock);
  loop->ref_count++;
  g_mutex_unlock (&loops_lock);
  return loop;
}

void
sofia_ws_loop_unref (SofiaWsLoop *loop)
{
  gboolean schedule = FALSE;

  g_mutex_lock (&loops_lock);
  if (--loop->ref_count == 0 && !loop->dying)
    {
      loop->dying = TRUE;
      schedule = TRUE;
    }
  g_mutex_unlock (&loops_lock);

  /* Never destroy lws from inside one of its callbacks: from an idle of the loop's context. */
  if (schedule)
    {
      GSource *idle = g_idle_source_new ();

      g_source_set_priority (idle, G_PRIORITY_DEFAULT);
      g_source_set_callback (idle, loop_destroy_if_unused, loop, NULL);
      g_source_set_static_name (idle, "[sofia-ws] libwebsockets teardown");
      g_source_attach (idle, loop->context);
      g_source_unref (idle);
    }
}

struct lws_context *
sofia_ws_loop_get_client_context (SofiaWsLoop  *loop,
                                  GError      **error)
{
  if (loop->client_lws == NULL)
    loop->client_lws = lws_context_new_on_loop (loop, error);
  return loop->client_lws;
}

GMainContext *
sofia_ws_loop_get_main_context (SofiaWsLoop *loop)
{
  return loop->context;
}

struct lws_vhost *
sofia_ws_loop_get_client_vhost (SofiaWsLoop  *loop,
                                const char   *ca_file,
                                GError      **error)
{
  const char *key = ca_file != NULL ? ca_file : "";
  struct lws_context_creation_info info = { 0 };
  struct lws_vhost *vhost;
  char *stored_key;

  vhost = g_hash_table_lookup (loop->client_vhosts, key);
  if (vhost != NULL)
    return vhost;
  if (sofia_ws_loop_get_client_context (loop, error) == NULL)
    return NULL;

  /* lws keeps the name and CA path pointers: a literal, and the table's key, which lives as
   * long as the lws context. */
  stored_key = g_strdup (key);
  info.vhost_name = "sofia-ws-client";
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = sofia_ws_loop_protocols;
  /* Needed on client vhosts too, or TLS connects fail with "SSL_new failed". */
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  if (ca_file != NULL)
    {
      info.client_ssl_ca_filepath = stored_key;
      /* Only this CA: the system's store must not widen what the user asked to trust. */
      info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    }

  vhost = lws_create_vhost (loop->client_lws, &info);
  if (vhost == NULL)
    {
      g_set_error (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_TLS,
                   "Could not set up TLS for clients%s%s", ca_file ? " with CA file " : "",
                   ca_file ? ca_file : "");
      g_free (stored_key);
      return NULL;
    }

  g_hash_table_insert (loop->client_vhosts, stored_key, vhost);
  return vhost;
}

const lws_retry_bo_t *
sofia_ws_loop_get_liveness_policy (SofiaWsLoop *loop,
                                   guint        ping_secs,
                                   guint        hangup_secs)
{
  gpointer key;
  lws_retry_bo_t *policy;

  /* Not NULL: lws 4.1 gives a vhost without a policy its context's default, which PINGs
   * every connection idle for 300 s and hangs up 10 s later (and keeps a timer per
   * connection for it, inserted by walking a list as long as the connections). A policy
   * of zeros has no validity timer at all: no PING unless asked for. */
  if (ping_secs == 0)
    {
      static const lws_retry_bo_t no_pings = { 0 };

      return &no_pings;
    }

  ping_secs = MIN (ping_secs, G_MAXUINT16);
  hangup_secs = CLAMP (hangup_secs, ping_secs + 1, G_MAXUINT16);
  key = GUINT_TO_POINTER (ping_secs << 16 | hangup_secs);
  policy = g_hash_table_lookup (loop->liveness_policies, key);
  if (policy == NULL)
    {
      policy = g_new0 (lws_retry_bo_t, 1);
      policy->secs_since_valid_ping = ping_secs;
      policy->secs_since_valid_hangup = hangup_secs;
      /* lws adds 30% jitter when this is 0; 1% keeps the timing close to what was asked. */
      policy->jitter_percent = 1;
      g_hash_table_insert (loop->liveness_policies, key, policy);
    }
  return policy;
}

