/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running sofia-ws's GMainContext from an su_root that is not GLib-based (the epoll or poll
 * root of NUA's stack thread, of sip-options, of FreeSWITCH-style programs).
 *
 * Each such root gets a private GMainContext, which the root drives in its own thread: the
 * fds the context wants polled become su_wait registrations of the root, its timeout an
 * su_timer; when either fires, one GLib iteration runs (check, dispatch, prepare, query) and
 * the registrations follow the new set of fds. Nothing crosses threads. sofia-ws's own loop
 * keeps that set small whatever the number of connections: libuv's backend fd and GLib's
 * wakeup fd. */
#include "tport-ws-root.h"

#include <unistd.h>

#include <sofia-sip/su_wait.h>

typedef struct {
  int fd;
  gushort events;
  int index;                      /* su_root registration, 0 when none */
  int watched;                    /* a dup() of fd: what the root polls */
} Registration;

struct _TportWsRootBridge {
  su_root_t *root;
  GMainContext *context;
  su_timer_t *timer;
  gboolean timer_armed;
  su_time_t timer_when;           /* when the armed timer fires */
  GPollFD *fds;
  gint n_fds;
  gint allocated;
  gint max_priority;
  gboolean prepared;
  gboolean iterating;
  GArray *registrations;          /* of Registration */
  guint users;                    /* stacks using the bridge */
  guint busy;                     /* asynchronous work that must finish before it leaves */
};

static void iterate (TportWsRootBridge *self);

/* One bridge per root while stacks use it. */
G_LOCK_DEFINE_STATIC (bridges);
static GHashTable *bridges;       /* su_root_t * -> TportWsRootBridge * */

static int
on_fd (su_root_magic_t *magic,
       su_wait_t       *wait,
       su_wakeup_arg_t *arg)
{
  TportWsRootBridge *self = (TportWsRootBridge *) arg;
  int watched = wait->fd;
  int revents = su_wait_events (wait, watched);
  int fd = -1;

  for (guint i = 0; i < self->registrations->len; i++)
    if (g_array_index (self->registrations, Registration, i).watched == watched)
      fd = g_array_index (self->registrations, Registration, i).fd;
  for (gint i = 0; i < self->n_fds; i++)
    if (self->fds[i].fd == fd)
      self->fds[i].revents |= (gushort) revents;
  iterate (self);
  return 0;
}

static void
on_timer (su_root_magic_t *magic,
          su_timer_t      *timer,
          su_timer_arg_t  *arg)
{
  TportWsRootBridge *self = (TportWsRootBridge *) arg;

  self->timer_armed = FALSE;
  iterate (self);
}

/* The context's next timeout as the root's timer. Most iterations ask for the deadline the
 * last one asked for (libuv's next timer has not moved): the timer then stays as it is,
 * rather than leaving and re-entering the root's timer heap at every wake-up. */
static void
arm_timer (TportWsRootBridge *self,
           gint               timeout)
{
  su_time_t when;
  su_duration_t early;

  if (timeout < 0)
    {
      if (self->timer_armed)
        su_timer_reset (self->timer);
      self->timer_armed = FALSE;
      return;
    }
  when = su_time_add (su_now (), timeout);
  /* Kept when it fires no later than asked and at most the millisecond GLib rounds to
   * earlier (an early firing only costs an iteration that arms it again). */
  early = self->timer_armed ? su_duration (when, self->timer_when) : -1;
  if (early >= 0 && early <= 1)
    return;
  su_timer_set_at (self->timer, on_timer, (su_timer_arg_t *) self, when);
  self->timer_armed = TRUE;
  self->timer_when = when;
}

static void
clear_registrations (TportWsRootBridge *self)
{
  for (guint i = 0; i < self->registrations->len; i++)
    {
      Registration *r = &g_array_index (self->registrations, Registration, i);

      if (r->index > 0)
        su_root_deregister (self->root, r->index);
      if (r->watched >= 0)
        close (r->watched);
    }
  g_array_set_size (self->registrations, 0);
}

static gboolean
registrations_match (TportWsRootBridge *self)
{
  if ((gint) self->registrations->len != self->n_fds)
    return FALSE;
  for (gint i = 0; i < self->n_fds; i++)
    {
      Registration *r = &g_array_index (self->registrations, Registration, i);

      if (r->fd != self->fds[i].fd || r->events != self->fds[i].events)
        return FALSE;
    }
  return TRUE;
}

static void
update_registrations (TportWsRootBridge *self)
{
  if (registrations_match (self))
    return;
  clear_registrations (self);
  for (gint i = 0; i < self->n_fds; i++)
    {
      /* The root polls a duplicate, so that when the owner closes the fd first (libuv's loop
       * going away) the root can still take its registration back cleanly. */
      Registration r = { self->fds[i].fd, self->fds[i].events, 0, dup (self->fds[i].fd) };
      int events = 0;
      su_wait_t wait[1];

      if (self->fds[i].events & G_IO_IN)
        events |= SU_WAIT_IN;
      if (self->fds[i].events & G_IO_OUT)
        events |= SU_WAIT_OUT;
      if (self->fds[i].events & G_IO_PRI)
        events |= SU_WAIT_ACCEPT;
      if (r.watched >= 0 && su_wait_create (wait, r.watched, events) == 0)
        {
          r.index = su_root_register (self->root, wait, on_fd, (su_wakeup_arg_t *) self, 0);
          if (r.index <= 0)
            su_wait_destroy (wait);
        }
      g_array_append_val (self->registrations, r);
    }
}

static void
iterate (TportWsRootBridge *self)
{
  gint timeout = -1;

  if (self->iterating || !g_main_context_acquire (self->context))
    return;
  self->iterating = TRUE;

  if (self->prepared)
    {
      self->prepared = FALSE;
      /* Callbacks start asynchronous work (GTask) on the thread-default context: this one. */
      g_main_context_push_thread_default (self->context);
      if (g_main_context_check (self->context, self->max_priority, self->fds, self->n_fds))
        g_main_context_dispatch (self->context);
      g_main_context_pop_thread_default (self->context);
    }

  g_main_context_prepare (self->context, &self->max_priority);
  while ((self->n_fds = g_main_context_query (self->context, self->max_priority, &timeout,
                                              self->fds, self->allocated)) > self->allocated)
    {
      self->allocated = self->n_fds;
      self->fds = g_renew (GPollFD, self->fds, self->allocated);
    }
  for (gint i = 0; i < self->n_fds; i++)
    self->fds[i].revents = 0;
  self->prepared = TRUE;
  update_registrations (self);

  arm_timer (self, timeout);

  self->iterating = FALSE;
  g_main_context_release (self->context);
}

TportWsRootBridge *
tport_ws_root_bridge_get (su_root_t *root)
{
  TportWsRootBridge *self;

  G_LOCK (bridges);
  if (bridges == NULL)
    bridges = g_hash_table_new (NULL, NULL);
  self = g_hash_table_lookup (bridges, root);
  if (self == NULL)
    {
      self = g_new0 (TportWsRootBridge, 1);
      self->root = root;
      self->context = g_main_context_new ();
      self->timer = su_timer_create (su_root_task (root), 0);
      self->registrations = g_array_new (FALSE, FALSE, sizeof (Registration));
      g_hash_table_insert (bridges, root, self);
    }
  G_UNLOCK (bridges);
  return self;
}

void
tport_ws_root_bridge_retain (TportWsRootBridge *self)
{
  self->users++;
}

void
tport_ws_root_bridge_hold (TportWsRootBridge *self)
{
  self->busy++;
}

void
tport_ws_root_bridge_done (TportWsRootBridge *self)
{
  g_return_if_fail (self->busy > 0);
  self->busy--;
}

#define DRAIN_LIMIT_USEC (3 * G_USEC_PER_SEC)

void
tport_ws_root_bridge_release (TportWsRootBridge *self)
{
  gint64 deadline = g_get_monotonic_time () + DRAIN_LIMIT_USEC;

  g_return_if_fail (self->users > 0);
  if (--self->users > 0)
    return;

  /* Let the connections say goodbye and the listeners let go of their ports. */
  g_main_context_push_thread_default (self->context);
  while (self->busy > 0 && g_get_monotonic_time () < deadline)
    if (!g_main_context_iteration (self->context, FALSE))
      g_usleep (1000);
  while (g_main_context_iteration (self->context, FALSE))
    ;
  g_main_context_pop_thread_default (self->context);
  if (self->busy > 0)
    g_warning ("sofia-ws: %u WebSocket goodbyes did not finish within %d s", self->busy,
               (int) (DRAIN_LIMIT_USEC / G_USEC_PER_SEC));

  G_LOCK (bridges);
  g_hash_table_remove (bridges, self->root);
  G_UNLOCK (bridges);
  clear_registrations (self);
  g_array_unref (self->registrations);
  su_timer_destroy (self->timer);
  g_free (self->fds);
  /* Objects still on the context (a connection that never said goodbye) keep it alive. */
  g_main_context_unref (self->context);
  g_free (self);
}

GMainContext *
tport_ws_root_bridge_get_context (TportWsRootBridge *self)
{
  return self->context;
}

void
tport_ws_root_bridge_start (TportWsRootBridge *self)
{
  /* Called in the root's thread once objects exist on the context: poll what they need. */
  iterate (self);
}
