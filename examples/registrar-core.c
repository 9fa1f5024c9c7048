/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registrar's core: REGISTER, OPTIONS and the stateful relay of every request addressed to
 * a registered user (or routed through us by a flow token), on one NTA default leg.
 *
 * Tables, all bounded:
 *   users    user name -> User: its bindings (at most max_bindings), oldest first;
 *   flows    the connections we know by a flow token: a tport that a binding or a dialog's
 *            Record-Route points at; gone when the connection is (with its bindings);
 *   expiry   every binding, in order of expiry, for the sweep;
 *   relays   the NTA transaction pairs (incoming, outgoing) of the requests being relayed.
 * A timer on the root sweeps expired bindings, closed flows and finished relays.
 *
 * Routing. A request whose top Route is ours (sip:<a>.<b>@host;lr, a and b the flow ids of the
 * two parties of the dialog, 0 for none) goes over the other party's flow: the one that it did
 * not come on; 430 Flow Failed at once when that flow is gone (RFC 5626). Any other request
 * whose Request-URI names a registered user goes to that user's newest binding over the
 * binding's own connection (NTATAG_TPORT: browsers' Contacts are ".invalid" hosts, never
 * dialled). Dialog-creating requests get our Record-Route with the flow token.
 *
 * Edge mode (RegistrarOptions.upstream: sofia-ws-edge) keeps no users. Flows are only the
 * connections WebSocket clients made to our listeners; everything else (the upstream server,
 * SIP peers over tcp/udp, the ws servers we connect to) is "the network", flow 0:
 *   from a client       to the upstream server, whatever the Request-URI; a REGISTER gets
 *                       a Path, a dialog-creating request a Record-Route, with the token
 *                       "<client>.0" on our listener of the upstream's transport;
 *   our Route/Path      (popped) over the client's flow, 430 when gone; from the client
 *                       itself, on to the network;
 *   from the network    to the next Route, else the Request-URI: a transport=ws/wss target
 *                       over our own client connection to it (sofia_ws_tport_connect(): one
 *                       per target, CRLF keep-alives), anything else as NTA routes it; a
 *                       dialog-creating request gets a Record-Route "0.0" (or "0.<client>").
 * Loops: our Via branch is a hash of what identifies the request as it reached us (RFC 3261
 * 16.6 step 8); a request that comes back with it in one of our Vias gets 482. */
#include "registrar-core.h"

#include <sofia-ws/sofia-ws-tport.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>

#include <sofia-sip/hostdomain.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/msg_protos.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#define DEFAULT_EXPIRES 600
#define MAX_EXPIRES 3600
#define MAX_CONTACT_LENGTH 1024       /* one Contact field as stored */
#define INVITE_LINGER_US (32 * G_USEC_PER_SEC)  /* 64*T1: further 2xx of a relayed INVITE */
#define FLOW_ID_LENGTH 16             /* hex digits */
#define NO_FLOW "0000000000000000"
#define ALLOW "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, NOTIFY, UPDATE, PRACK, " \
              "SUBSCRIBE, REFER, REGISTER"

typedef struct _User User;
typedef struct _Flow Flow;

typedef struct {
  User *user;
  Flow *flow;                     /* the connection it came on, or NULL (connectionless) */
  tport_t *tport;                 /* a reference: the flow's, or the udp primary's */
  char *uri;                      /* the Contact URI, as registered: the key in its user */
  char *field;                    /* the Contact as answered, without ;expires */
  gint64 expires_at;              /* monotonic microseconds */
  GSequenceIter *expiry;          /* in Registrar.expiry */
  GList user_link;                /* in User.bindings */
  GList flow_link;                /* in Flow.bindings */
} Binding;

struct _User {
  char *name;
  GQueue bindings;                /* Binding, oldest first */
};

struct _Flow {
  char id[FLOW_ID_LENGTH + 1];
  char *peer;                     /* "host port", its key in Registrar.flow_peers */
  tport_t *tport;                 /* a reference */
  gboolean outbound;              /* the edge's own connection to a ws/wss target */
  char *target;                   /* outbound: its key in Registrar.targets */
  gint64 keep_until;              /* outbound: monotonic time it may be closed as idle */
  GQueue bindings;                /* Binding */
};

typedef struct {
  Registrar *self;
  nta_incoming_t *irq;
  nta_outgoing_t *orq;
  sip_method_t method;
  char *method_name;
  tport_t *tport;                 /* a reference: where the request went */
  gint64 linger_until;            /* 0 while pending; then when a 2xx'd INVITE may go */
  GList link;                     /* in Registrar.relays */
} Relay;

struct _Registrar {
  su_root_t *root;
  nta_agent_t *agent;
  nta_leg_t *leg;
  su_timer_t *sweep;
  RegistrarOptions options;
  GHashTable *users;              /* name -> User */
  GHashTable *flows;              /* tport_t * -> Flow */
  GHashTable *flow_ids;           /* id -> Flow (not owned) */
  GHashTable *flow_peers;         /* "host port" of the peer -> Flow (not owned) */
  GSequence *expiry;              /* Binding, soonest first (not owned) */
  GQueue relays;                  /* Relay */
  guint bindings;
  /* edge mode */
  su_home_t home[1];
  url_t *upstream;                /* NULL: the registrar */
  char upstream_proto[8];         /* "udp", "tcp", "tls" */
  tport_t *clients[2];            /* the ws and wss client primaries, made on first use */
  GHashTable *targets;            /* "ws host:port" -> its connection's Flow (not owned) */
};

static gboolean quiet;            /* RegistrarOptions.quiet: no line per request */
static const char *line_prefix = "";   /* RegistrarOptions.line_prefix */

/* One line about a request, unless quiet. */
static void say (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
say (const char *format,
     ...)
{
  va_list args;

  if (quiet)
    return;
  fputs (line_prefix, stdout);
  va_start (args, format);
  vprintf (format, args);
  va_end (args);
}

static const char *
tport_label (tport_t *tport, char *buffer, gsize size)
{
  tp_name_t const *name = tport != NULL ? tport_name (tport) : NULL;

  if (name == NULL)
    return "?";
  g_snprintf (buffer, size, "%s %s:%s", name->tpn_proto, name->tpn_host, name->tpn_port);
  return buffer;
}

/* The address @request came from: FALSE when the message has none. */
static gboolean
sender_address (msg_t    *request,
                char     *host,
                gsize     size,
                unsigned *port)
{
  su_addrinfo_t *ai = request != NULL ? msg_addrinfo (request) : NULL;

  if (ai == NULL || ai->ai_addr == NULL)
    return FALSE;
  if (ai->ai_family == AF_INET)
    {
      struct sockaddr_in const *in = (struct sockaddr_in const *) ai->ai_addr;

      inet_ntop (AF_INET, &in->sin_addr, host, size);
      *port = ntohs (in->sin_port);
    }
  else if (ai->ai_family == AF_INET6)
    {
      struct sockaddr_in6 const *in6 = (struct sockaddr_in6 const *) ai->ai_addr;

      inet_ntop (AF_INET6, &in6->sin6_addr, host, size);
      *port = ntohs (in6->sin6_port);
    }
  else
    return FALSE;
  return TRUE;
}

/* tport_label(), or for a request NTA gives no connection for (an ACK outside a transaction)
 * the address it came from. */
static const char *
sender_label (tport_t *tport, msg_t *request, char *buffer, gsize size)
{
  su_addrinfo_t *ai = request != NULL ? msg_addrinfo (request) : NULL;
  char host[64] = "";
  unsigned port = 0;

  if (tport != NULL || !sender_address (request, host, sizeof host, &port))
    return tport_label (tport, buffer, size);
  g_snprintf (buffer, size, "%s %s:%u", ai->ai_protocol == IPPROTO_UDP ? "udp"
                                        : ai->ai_protocol == IPPROTO_TCP ? "tcp" : "?",
              host, port);
  return buffer;
}

static void
reply (nta_incoming_t *irq,
       int             status,
       const char     *phrase,
       tag_type_t      tag,
       tag_value_t     value,
       ...)
{
  ta_list ta;

  ta_start (ta, tag, value);
  nta_incoming_treply (irq, status, phrase, ta_tags (ta));
  ta_end (ta);
  nta_incoming_destroy (irq);
}

static gboolean
tport_is_gone (tport_t *tport)
{
  return tport == NULL || tport_is_closed (tport) || tport_is_shutdown (tport);
}

/* ---- flows --------------------------------------------------------------------------------- */

static void binding_remove (Registrar *self, Binding *binding);
static void user_prune     (Registrar *self, User *user);
static void target_keep    (Registrar *self, Flow *flow, guint seconds);

/* The flow of a connection, made on first use; NULL for a connectionless or closed tport. */
static Flow *
flow_for (Registrar *self,
          tport_t   *tport)
{
  Flow *flow;

  if (tport == NULL || !tport_is_secondary (tport) || tport_is_gone (tport))
    return NULL;
  /* The edge's flows are its WebSocket clients' connections and its own connections to
   * ws/wss targets; the rest is the network. */
  if (self->upstream != NULL && sofia_ws_tport_get_listener (tport) == NULL &&
      !sofia_ws_tport_is_ws (tport))
    return NULL;
  flow = g_hash_table_lookup (self->flows, tport);
  if (flow != NULL)
    return flow;

  flow = g_new0 (Flow, 1);
  do
    {
      guint64 random = 0;

      if (getrandom (&random, sizeof random, 0) != sizeof random)
        random = ((guint64) g_random_int () << 32) | g_random_int ();
      g_snprintf (flow->id, sizeof flow->id, "%016" G_GINT64_MODIFIER "x", random);
    }
  while (g_str_equal (flow->id, NO_FLOW) || g_hash_table_contains (self->flow_ids, flow->id));
  flow->tport = tport_ref (tport);
  flow->outbound = self->upstream != NULL && sofia_ws_tport_get_listener (tport) == NULL;
  g_queue_init (&flow->bindings);
  g_hash_table_insert (self->flows, tport, flow);
  g_hash_table_insert (self->flow_ids, flow->id, flow);
  if (tport_name (tport) != NULL && tport_name (tport)->tpn_host != NULL)
    {
      flow->peer = g_strdup_printf ("%s %s", tport_name (tport)->tpn_host,
                                    tport_name (tport)->tpn_port);
      /* replace: the key is this flow's string, not an older flow's with the same peer */
      g_hash_table_replace (self->flow_peers, flow->peer, flow);
    }
  return flow;
}

/* The flow's bindings go with it. */
static void
flow_free (Registrar *self,
           Flow      *flow)
{
  while (flow->bindings.head != NULL)
    {
      Binding *binding = flow->bindings.head->data;
      User *user = binding->user;

      binding_remove (self, binding);
      user_prune (self, user);
    }
  g_hash_table_remove (self->flow_ids, flow->id);
  if (flow->peer != NULL && g_hash_table_lookup (self->flow_peers, flow->peer) == flow)
    g_hash_table_remove (self->flow_peers, flow->peer);
  if (flow->target != NULL && g_hash_table_lookup (self->targets, flow->target) == flow)
    g_hash_table_remove (self->targets, flow->target);
  g_free (flow->target);
  g_free (flow->peer);
  tport_unref (flow->tport);
  g_free (flow);
}

/* ---- users and bindings -------------------------------------------------------------------- */

static void
user_free (User *user)
{
  g_assert (user->bindings.length == 0);
  g_free (user->name);
  g_free (user);
}

/* A user without bindings is no entry. */
static void
user_prune (Registrar *self,
            User      *user)
{
  if (user != NULL && user->bindings.length == 0)
    g_hash_table_remove (self->users, user->name);
}

static gint
binding_compare_expiry (gconstpointer a, gconstpointer b, gpointer data)
{
  const Binding *x = a, *y = b;

  if (x->expires_at != y->expires_at)
    return x->expires_at < y->expires_at ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

static void
binding_remove (Registrar *self,
                Binding   *binding)
{
  g_sequence_remove (binding->expiry);
  g_queue_unlink (&binding->user->bindings, &binding->user_link);
  if (binding->flow != NULL)
    g_queue_unlink (&binding->flow->bindings, &binding->flow_link);
  if (binding->tport != NULL)
    tport_unref (binding->tport);
  g_free (binding->uri);
  g_free (binding->field);
  g_free (binding);
  self->bindings--;
}

static Binding *
user_find_binding (User       *user,
                   const char *uri)
{
  for (GList *l = user->bindings.head; l != NULL; l = l->next)
    if (g_str_equal (((Binding *) l->data)->uri, uri))
      return l->data;
  return NULL;
}

/* The newest binding of @name that is not expired and whose connection is open. */
static Binding *
find_binding (Registrar  *self,
              const char *name,
              gboolean   *known)
{
  User *user = name != NULL ? g_hash_table_lookup (self->users, name) : NULL;
  gint64 now = g_get_monotonic_time ();

  *known = user != NULL;
  if (user == NULL)
    return NULL;
  for (GList *l = user->bindings.tail; l != NULL; l = l->prev)
    {
      Binding *binding = l->data;

      if (binding->expires_at > now && !tport_is_gone (binding->tport))
        return binding;
    }
  return NULL;
}

/* ---- REGISTER ------------------------------------------------------------------------------ */

typedef struct {
  sip_contact_t const *contact;
  char *uri;                      /* in the request's home */
  unsigned expires;
  Binding *existing;
} ContactUpdate;

static int
on_register (Registrar      *self,
             nta_incoming_t *irq,
             sip_t const    *sip,
             tport_t        *tport)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  const char *name = sip->sip_to && sip->sip_to->a_url->url_user ? sip->sip_to->a_url->url_user
                                                                   : NULL;
  unsigned default_expires = sip->sip_expires ? sip->sip_expires->ex_delta : DEFAULT_EXPIRES;
  guint max_contacts = self->options.max_contacts;
  ContactUpdate updates[max_contacts];
  guint n = 0, count;
  gboolean star = FALSE;
  User *user;
  sip_contact_t *answer = NULL, **tail = &answer;
  gint64 now = g_get_monotonic_time ();
  char label[128];

  if (name == NULL)
    {
      reply (irq, 400, "Bad Request (no user in To)", TAG_END ());
      return 0;
    }
  user = g_hash_table_lookup (self->users, name);

  /* Check everything first: a REGISTER is applied whole or not at all. */
  for (sip_contact_t const *m = sip->sip_contact; m != NULL; m = m->m_next)
    {
      ContactUpdate *update;

      if (m->m_url->url_type == url_any)  /* "Contact: *" */
        {
          star = TRUE;
          continue;
        }
      if (n == max_contacts)
        {
          su_home_deinit (home);
          reply (irq, 400, "Bad Request (too many Contacts)", TAG_END ());
          return 0;
        }
      update = &updates[n++];
      update->contact = m;
      update->uri = url_as_string (home, m->m_url);
      update->expires = m->m_expires != NULL ? (unsigned) strtoul (m->m_expires, NULL, 10)
                                             : default_expires;
      update->expires = MIN (update->expires, MAX_EXPIRES);
      update->existing = user != NULL && update->uri != NULL
                         ? user_find_binding (user, update->uri) : NULL;
      if (update->uri == NULL || strlen (update->uri) > MAX_CONTACT_LENGTH)
        {
          su_home_deinit (home);
          reply (irq, 400, "Bad Request (Contact too long)", TAG_END ());
          return 0;
        }
    }
  if (star && (n > 0 || default_expires != 0))
    {
      su_home_deinit (home);
      reply (irq, 400, "Bad Request (Contact: * with other Contacts or a non-zero Expires)",
             TAG_END ());
      return 0;
    }
  count = user != NULL ? user->bindings.length : 0;
  for (guint i = 0; i < n; i++)
    {
      gboolean repeated = FALSE;

      for (guint j = 0; j < i && !repeated; j++)
        repeated = g_str_equal (updates[i].uri, updates[j].uri);
      if (repeated)
        continue;
      if (updates[i].existing != NULL && updates[i].expires == 0)
        count--;
      else if (updates[i].existing == NULL && updates[i].expires > 0)
        count++;
    }
  if (count > self->options.max_bindings)
    {
      su_home_deinit (home);
      say ("REGISTER %s from %s: 403, more than %u bindings\n", name,
           tport_label (tport, label, sizeof label), self->options.max_bindings);
      reply (irq, 403, "Forbidden (too many bindings)", TAG_END ());
      return 0;
    }
  if (user == NULL && count > 0 && g_hash_table_size (self->users) >= self->options.max_users)
    {
      su_home_deinit (home);
      say ("REGISTER %s from %s: 503, %u users\n", name,
           tport_label (tport, label, sizeof label), self->options.max_users);
      reply (irq, 503, "Service Unavailable (too many users)",
             SIPTAG_RETRY_AFTER_STR ("60"), TAG_END ());
      return 0;
    }

  /* Apply. */
  if (star && user != NULL)
    {
      while (user->bindings.head != NULL)
        binding_remove (self, user->bindings.head->data);
    }
  for (guint i = 0; i < n; i++)
    {
      ContactUpdate *update = &updates[i];
      Binding *existing = user != NULL ? user_find_binding (user, update->uri) : NULL;
      Binding *binding;
      GString *field;

      if (existing != NULL)
        binding_remove (self, existing);
      if (update->expires == 0)
        continue;
      if (user == NULL)
        {
          user = g_new0 (User, 1);
          user->name = g_strdup (name);
          g_queue_init (&user->bindings);
          g_hash_table_insert (self->users, user->name, user);
        }

      binding = g_new0 (Binding, 1);
      binding->user = user;
      binding->uri = g_strdup (update->uri);
      binding->flow = flow_for (self, tport);
      binding->tport = tport != NULL ? tport_ref (tport) : NULL;
      binding->expires_at = now + (gint64) update->expires * G_USEC_PER_SEC;
      /* The Contact as registered, its parameters kept (+sip.instance, reg-id, ob). */
      field = g_string_new (NULL);
      g_string_append_printf (field, "<%s>", update->uri);
      for (int p = 0; update->contact->m_params != NULL && update->contact->m_params[p] != NULL;
           p++)
        if (g_ascii_strncasecmp (update->contact->m_params[p], "expires=", 8) != 0)
          g_string_append_printf (field, ";%s", update->contact->m_params[p]);
      binding->field = g_string_free (field, FALSE);
      binding->user_link.data = binding;
      binding->flow_link.data = binding;
      g_queue_push_tail_link (&user->bindings, &binding->user_link);
      if (binding->flow != NULL)
        g_queue_push_tail_link (&binding->flow->bindings, &binding->flow_link);
      binding->expiry = g_sequence_insert_sorted (self->expiry, binding, binding_compare_expiry,
                                                  NULL);
      self->bindings++;
    }

  /* The answer: every binding of the user, with the time each has left. */
  for (GList *l = user != NULL ? user->bindings.head : NULL; l != NULL; l = l->next)
    {
      Binding *binding = l->data;
      gint64 left = (binding->expires_at - now + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC;
      char *text = su_sprintf (home, "%s;expires=%" G_GINT64_FORMAT, binding->field,
                               MAX (left, 0));
      sip_contact_t *copy = text != NULL ? sip_contact_make (home, text) : NULL;

      if (copy != NULL)
        {
          *tail = copy;
          tail = &copy->m_next;
        }
    }

  say ("REGISTER %s from %s: %u binding(s)\n", name,
       tport_label (tport, label, sizeof label), user != NULL ? user->bindings.length : 0);
  user_prune (self, user);
  reply (irq, SIP_200_OK, SIPTAG_CONTACT (answer), TAG_END ());
  su_home_deinit (home);
  return 0;
}

/* ---- routing ------------------------------------------------------------------------------- */

/* Our Record-Route user part: "<a>.<b>", two flow ids. */
static gboolean
parse_flow_token (const char *user,
                  char        a[FLOW_ID_LENGTH + 1],
                  char        b[FLOW_ID_LENGTH + 1])
{
  if (user == NULL || strlen (user) != 2 * FLOW_ID_LENGTH + 1 || user[FLOW_ID_LENGTH] != '.')
    return FALSE;
  for (int i = 0; i < 2 * FLOW_ID_LENGTH + 1; i++)
    if (i != FLOW_ID_LENGTH && !g_ascii_isxdigit (user[i]))
      return FALSE;
  memcpy (a, user, FLOW_ID_LENGTH);
  a[FLOW_ID_LENGTH] = '\0';
  memcpy (b, user + FLOW_ID_LENGTH + 1, FLOW_ID_LENGTH);
  b[FLOW_ID_LENGTH] = '\0';
  return TRUE;
}

static gboolean
is_own_route (sip_route_t const *route)
{
  char a[FLOW_ID_LENGTH + 1], b[FLOW_ID_LENGTH + 1];

  return route != NULL && url_has_param (route->r_url, "lr") &&
         parse_flow_token (route->r_url->url_user, a, b);
}

/* Whether @host:@port (NULL: 5060) is the address of one of our listeners. */
static gboolean
is_own_address (Registrar  *self,
                const char *host,
                const char *port)
{
  if (host == NULL)
    return FALSE;
  if (port == NULL)
    port = "5060";
  for (tport_t *tp = tport_primaries (nta_agent_tports (self->agent)); tp != NULL;
       tp = tport_next (tp))
    {
      tp_name_t const *name = tport_name (tp);

      if (name != NULL && name->tpn_host != NULL && name->tpn_port != NULL &&
          g_ascii_strcasecmp (host, name->tpn_host) == 0 && g_str_equal (port, name->tpn_port))
        return TRUE;
    }
  return FALSE;
}

/* Whether a Via of the request is one of ours: the request has been here before. */
static gboolean
has_own_via (Registrar         *self,
             sip_via_t const   *via)
{
  for (; via != NULL; via = via->v_next)
    if (is_own_address (self, via->v_host, via->v_port))
      return TRUE;
  return FALSE;
}

/* The edge's Via branch for a request as it reached us: a hash of its Request-URI, top Route,
 * Call-ID, tags, CSeq and Proxy-Require (RFC 3261 16.6 step 8), so that the same request
 * coming back is known (16.3 step 4) while a spiral, changed on the way, is not. */
static char *
edge_branch (sip_t const *sip)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  const char *parts[] = {
    url_as_string (home, sip->sip_request->rq_url),
    sip->sip_route != NULL ? url_as_string (home, sip->sip_route->r_url) : "",
    sip->sip_call_id != NULL ? sip->sip_call_id->i_id : "",
    sip->sip_from != NULL && sip->sip_from->a_tag != NULL ? sip->sip_from->a_tag : "",
    sip->sip_to != NULL && sip->sip_to->a_tag != NULL ? sip->sip_to->a_tag : "",
    sip->sip_cseq != NULL ? su_sprintf (home, "%u %s", sip->sip_cseq->cs_seq,
                                        sip->sip_cseq->cs_method_name) : "",
    sip->sip_proxy_require != NULL ? sip_header_as_string (home, (sip_header_t const *)
                                                           sip->sip_proxy_require) : "",
  };
  char *branch;

  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    {
      g_checksum_update (sum, (const guchar *) (parts[i] != NULL ? parts[i] : ""), -1);
      g_checksum_update (sum, (const guchar *) "\n", 1);
    }
  branch = g_strdup_printf ("z9hG4bK%.32s", g_checksum_get_string (sum));
  su_home_deinit (home);
  return branch;
}

/* Whether one of our Vias carries @branch: the request has come round. */
static gboolean
edge_is_loop (Registrar   *self,
              sip_t const *sip,
              const char  *branch)
{
  for (sip_via_t const *via = sip->sip_via; via != NULL; via = via->v_next)
    if (via->v_branch != NULL && g_ascii_strcasecmp (via->v_branch, branch) == 0 &&
        is_own_address (self, via->v_host, via->v_port))
      return TRUE;
  return FALSE;
}

/* "duplicate Max-Forwards", "malformed Contact": what is wrong with the first erroneous
 * header, in characters fit for a reason phrase. */
static char *
describe_error (sip_error_t const *error)
{
  msg_header_t const *h = (msg_header_t const *) error;
  const char *what, *name;
  GString *text = g_string_new (NULL);

  if (h->sh_class != msg_error_class)
    what = "duplicate", name = h->sh_class->hc_name;
  else
    what = "malformed", name = error->er_name;
  g_string_append_printf (text, "Bad Request (%s ", what);
  for (const char *c = name != NULL ? name : "header"; *c != '\0' && text->len < 60; c++)
    g_string_append_c (text, g_ascii_isalnum (*c) || *c == '-' ? *c : '?');
  g_string_append_c (text, ')');
  return g_string_free (text, FALSE);
}

/* Sofia takes a bare CR or LF for the empty line before the body, and keeps it as it came: sent
 * on as it is, a peer that looks for CRLF (RFC 3261 7) would not find where the message ends
 * over a stream, and would read the next message as its body. Ours is CRLF. */
static void
set_separator (msg_t *msg,
               sip_t *sip)
{
  sip_separator_t *separator;

  if (sip->sip_separator == NULL || strcmp (sip->sip_separator->sep_data, "\r\n") == 0)
    return;
  separator = sip_separator_create (msg_home (msg));
  if (separator != NULL)
    msg_header_replace (msg, (msg_pub_t *) sip, (msg_header_t *) sip->sip_separator,
                        (msg_header_t *) separator);
}

/* ---- the relay ----------------------------------------------------------------------------- */

static void
relay_free (Relay *relay)
{
  Registrar *self = relay->self;

  g_queue_unlink (&self->relays, &relay->link);
  if (relay->orq != NULL)
    nta_outgoing_destroy (relay->orq);
  if (relay->irq != NULL)
    {
      if (nta_incoming_status (relay->irq) < 200)
        nta_incoming_treply (relay->irq, 503, "Service Unavailable (stopping)", TAG_END ());
      nta_incoming_destroy (relay->irq);
    }
  if (relay->tport != NULL)
    tport_unref (relay->tport);
  g_free (relay->method_name);
  g_free (relay);
}

#define NTA_INTERNAL_MSG (1 << 15)  /* nta_internal.h: a response NTA made itself */

static void send_non_2xx_ack (Relay *relay, sip_t const *response);

static int
on_relay_response (nta_outgoing_magic_t *magic,
                   nta_outgoing_t       *orq,
                   sip_t const          *sip)
{
  Relay *relay = (Relay *) magic;
  int status = sip != NULL && sip->sip_status ? sip->sip_status->st_status : 408;
  const char *phrase = sip != NULL && sip->sip_status ? sip->sip_status->st_phrase
                                                      : "Request Timeout";
  msg_t *response;

  if (status < 101)               /* 100 Trying is hop by hop */
    return 0;

  response = nta_outgoing_getresponse (orq);
  if (response == NULL || msg_has_error (response) || sip == NULL || sip->sip_error != NULL)
    {
      /* Nothing a peer sent is copied unchecked: Sofia cannot serialise what it could not
       * parse. */
      if (nta_incoming_status (relay->irq) < 200)
        nta_incoming_treply (relay->irq, 502, "Bad Gateway (malformed response)", TAG_END ());
      status = 502;
      phrase = "Bad Gateway (malformed response)";
    }
  else
    {
      /* A deep copy: NTA keeps it in the incoming transaction, to send again when the
       * request is retransmitted, after the relay (and with it @response) is gone; a
       * shallow msg_copy() would still point into @response's buffer. */
      msg_t *out = msg_dup (response);
      sip_t *osip = out != NULL ? sip_object (out) : NULL;

      if (osip != NULL)
        set_separator (out, osip);
      /* Our Via goes, the request's Vias come from the incoming transaction. */
      while (osip != NULL && osip->sip_via != NULL)
        msg_header_remove (out, (msg_pub_t *) osip, (msg_header_t *) osip->sip_via);
      if (osip == NULL || nta_incoming_complete_response (relay->irq, out, 0, NULL,
                                                          TAG_END ()) < 0)
        {
          if (out != NULL)
            msg_destroy (out);
        }
      else
        nta_incoming_mreply (relay->irq, out);
    }
  if (response != NULL)
    msg_destroy (response);

  if (status < 200)
    return 0;
  if (relay->method == sip_method_invite && status >= 300 && sip != NULL &&
      sip->sip_status != NULL && !(sip->sip_flags & NTA_INTERNAL_MSG) &&
      relay->tport != NULL && sofia_ws_tport_is_ws (relay->tport))
    send_non_2xx_ack (relay, sip);
  if (relay->method == sip_method_register && status < 300 && relay->tport != NULL &&
      sip != NULL)
    {
      /* The server reaches the registered party by our Path, over this connection: it stays
       * while the registration lasts. */
      unsigned expires = sip->sip_expires != NULL ? sip->sip_expires->ex_delta : 0;

      for (sip_contact_t const *m = sip->sip_contact; m != NULL; m = m->m_next)
        if (m->m_expires != NULL)
          expires = MAX (expires, (unsigned) strtoul (m->m_expires, NULL, 10));
      target_keep (relay->self, g_hash_table_lookup (relay->self->flows, relay->tport),
                   MIN (expires, MAX_EXPIRES) + relay->self->options.target_idle);
    }
  say ("%s relayed: %d %s\n", relay->method_name, status, phrase);
  if (relay->method == sip_method_invite && status < 300 && status != 502)
    {
      /* Further 2xx (forks, retransmissions) may follow: keep both transactions a while. */
      if (relay->linger_until == 0)
        relay->linger_until = g_get_monotonic_time () + INVITE_LINGER_US;
      return 0;
    }
  relay_free (relay);
  return 0;
}

/* A CANCEL of the INVITE we sent, over the same connection. nta_outgoing_tcancel() would look
 * the transport up by name, which finds no ws connection. */
static void
send_cancel (Relay *relay)
{
  Registrar *self = relay->self;
  msg_t *invite;
  sip_t const *isip;
  msg_t *cancel;
  su_home_t *home;

  if (relay->tport == NULL)
    {
      /* The edge's request to the network went where NTA routed it: so does its CANCEL. */
      nta_outgoing_tcancel (relay->orq, NULL, NULL, TAG_END ());
      return;
    }
  invite = nta_outgoing_getrequest (relay->orq);
  isip = sip_object (invite);
  if (isip == NULL || isip->sip_request == NULL || tport_is_gone (relay->tport))
    {
      if (invite != NULL)
        msg_destroy (invite);
      return;
    }
  cancel = nta_msg_create (self->agent, 0);
  home = msg_home (cancel);
  if (sip_add_tl (cancel, sip_object (cancel),
                  SIPTAG_REQUEST (sip_request_create (home, SIP_METHOD_CANCEL,
                                                      (url_string_t *) isip->sip_request->rq_url,
                                                      NULL)),
                  SIPTAG_FROM (isip->sip_from),
                  SIPTAG_TO (isip->sip_to),
                  SIPTAG_CALL_ID (isip->sip_call_id),
                  SIPTAG_CSEQ (sip_cseq_create (home, isip->sip_cseq->cs_seq, SIP_METHOD_CANCEL)),
                  SIPTAG_ROUTE (isip->sip_route),
                  SIPTAG_MAX_FORWARDS_STR ("70"),
                  TAG_END ()) < 0 ||
      nta_outgoing_mcreate (self->agent, NULL, NULL,
                            (url_string_t *) isip->sip_request->rq_url, cancel,
                            NTATAG_TPORT (relay->tport),
                            NTATAG_BRANCH_KEY (nta_outgoing_branch (relay->orq)),
                            TAG_END ()) == NULL)
    msg_destroy (cancel);
  msg_destroy (invite);
}

/* The hop-by-hop ACK of a non-2xx final response to an INVITE we sent over a ws/wss
 * connection (RFC 3261 17.1.1.3: the 487 after a CANCEL...). NTA sends one itself, but looks
 * the transport up by name (tport_by_name()), which finds no ws connection ("No transport"):
 * the same ACK, over the same connection, with the INVITE's branch. */
static void
send_non_2xx_ack (Relay       *relay,
                  sip_t const *response)
{
  Registrar *self = relay->self;
  msg_t *invite = nta_outgoing_getrequest (relay->orq);
  sip_t const *isip = sip_object (invite);
  msg_t *ack;
  su_home_t *home;

  if (isip == NULL || isip->sip_request == NULL || isip->sip_cseq == NULL ||
      tport_is_gone (relay->tport))
    {
      if (invite != NULL)
        msg_destroy (invite);
      return;
    }
  ack = nta_msg_create (self->agent, 0);
  home = msg_home (ack);
  if (sip_add_tl (ack, sip_object (ack),
                  SIPTAG_REQUEST (sip_request_create (home, SIP_METHOD_ACK,
                                                      (url_string_t *) isip->sip_request->rq_url,
                                                      NULL)),
                  SIPTAG_FROM (isip->sip_from),
                  SIPTAG_TO (response->sip_to),
                  SIPTAG_CALL_ID (isip->sip_call_id),
                  SIPTAG_CSEQ (sip_cseq_create (home, isip->sip_cseq->cs_seq, SIP_METHOD_ACK)),
                  SIPTAG_ROUTE (isip->sip_route),
                  SIPTAG_MAX_FORWARDS (isip->sip_max_forwards),
                  TAG_END ()) < 0)
    msg_destroy (ack);
  else
    {
      nta_outgoing_t *orq = nta_outgoing_mcreate (self->agent, NULL, NULL,
                                                  (url_string_t *) isip->sip_request->rq_url,
                                                  ack, NTATAG_TPORT (relay->tport),
                                                  NTATAG_BRANCH_KEY (nta_outgoing_branch (relay->orq)),
                                                  TAG_END ());

      if (orq != NULL)
        nta_outgoing_destroy (orq);
      else
        msg_destroy (ack);
    }
  msg_destroy (invite);
}

/* CANCEL of a relayed INVITE: NTA has answered it (200) and the INVITE (487); forward it. */
static int
on_relay_cancel (nta_incoming_magic_t *magic,
                 nta_incoming_t       *irq,
                 sip_t const          *sip)
{
  Relay *relay = (Relay *) magic;

  if (sip != NULL && sip->sip_request != NULL &&
      sip->sip_request->rq_method == sip_method_cancel && relay->orq != NULL &&
      relay->linger_until == 0)
    {
      say ("CANCEL of %s: forwarded\n", relay->method_name);
      send_cancel (relay);
    }
  return 0;
}

/* Where a request goes. */
typedef struct {
  const url_t *url;               /* the new Request-URI, or NULL to keep it */
  tport_t *tport;                 /* over which; NULL: where NTA routes @hop */
  gboolean pop_route;             /* our Route is the top one */
  gboolean record_route;
  Flow *caller;                   /* for the Record-Route: the flow it came on */
  Flow *callee;
  const url_t *hop;               /* the edge's next hop, or NULL: the Request-URI */
  gboolean path;                  /* the edge's Path, for a REGISTER */
} Target;

/* The edge's listener of the upstream's transport: its address is the edge's in Path and
 * Record-Route, where the upstream server and the network send requests for our clients. */
static tport_t *
network_primary (Registrar *self)
{
  for (tport_t *tp = tport_primaries (nta_agent_tports (self->agent)); tp != NULL;
       tp = tport_next (tp))
    if (tport_name (tp) != NULL &&
        g_ascii_strcasecmp (tport_name (tp)->tpn_proto, self->upstream_proto) == 0)
      return tp;
  return NULL;
}

/* Our route entry "<sip:TOKEN@HOST:PORT;transport=PROTO;lr>" on the listener @primary; NULL
 * when it has no name. */
static char *
listener_route_uri (su_home_t  *home,
                    tport_t    *primary,
                    const char *token)
{
  tp_name_t const *name = primary != NULL ? tport_name (primary) : NULL;
  g_autofree char *proto = NULL;

  if (name == NULL || name->tpn_host == NULL)
    return NULL;
  proto = g_ascii_strdown (name->tpn_proto, -1);
  return su_sprintf (home, "<sip:%s@%s%s%s:%s;transport=%s;lr>", token,
                     strchr (name->tpn_host, ':') ? "[" : "", name->tpn_host,
                     strchr (name->tpn_host, ':') ? "]" : "", name->tpn_port, proto);
}

/* The edge's address on the side of @flow, for its Path and Record-Route entries: on its own
 * connection to a ws/wss target, the connection's local address (the server, which cannot
 * dial a WebSocket, finds its connection from us by that address: RFC 7118's way of reaching
 * a ws client); elsewhere (the network, its browsers' side) its network listener. NULL when
 * unknown. */
static char *
edge_side_uri (Registrar  *self,
               su_home_t  *home,
               Flow       *flow,
               const char *token)
{
  SofiaWsTransport *transport = flow != NULL && flow->outbound
                                ? sofia_ws_tport_get_transport (flow->tport) : NULL;

  if (transport != NULL && SOFIA_WS_IS_WEBSOCKET (transport))
    {
      SofiaWsWebSocket *websocket = SOFIA_WS_WEBSOCKET (transport);
      const char *local = sofia_ws_websocket_get_local_address (websocket);

      if (local == NULL)
        return NULL;
      return su_sprintf (home, "<sip:%s@%s;transport=%s;lr>", token, local,
                         sofia_ws_websocket_get_is_secure (websocket) ? "wss" : "ws");
    }
  if (flow != NULL && flow->outbound)
    return NULL;
  return listener_route_uri (home, network_primary (self), token);
}

/* Our Record-Route (or, for the edge's REGISTER, Path) with the flow token of the two
 * parties: on the listener the request came to. The edge's entries face the parties: one on
 * the caller's side and one on the callee's, two when these differ (a double Record-Route,
 * RFC 5658: its own ws connection to a server on one side, the network on the other); its
 * Path is the entry on the registrar's side. */
static void
add_own_route (Registrar *self,
               msg_t     *forward,
               sip_t     *fsip,
               tport_t   *inbound,
               Target    *target,
               gboolean   path)
{
  su_home_t *home = msg_home (forward);
  char *token = su_sprintf (home, "%s.%s",
                            target->caller != NULL ? target->caller->id : NO_FLOW,
                            target->callee != NULL ? target->callee->id : NO_FLOW);
  char *entries[2] = { NULL, NULL };    /* the caller's side, the callee's */

  if (token == NULL)
    return;
  if (self->upstream != NULL)
    {
      entries[1] = edge_side_uri (self, home, target->callee, token);
      if (!path)
        entries[0] = edge_side_uri (self, home, target->caller, token);
      if ((entries[1] == NULL && target->callee != NULL && target->callee->outbound) ||
          (!path && entries[0] == NULL && target->caller != NULL && target->caller->outbound))
        say ("no local address for a ws target connection: no %s on its side\n",
             path ? "Path" : "Record-Route");
      if (entries[0] != NULL && entries[1] != NULL && g_str_equal (entries[0], entries[1]))
        entries[0] = NULL;
    }
  else
    {
      entries[1] = listener_route_uri (home, inbound == NULL ? NULL
                                             : tport_is_primary (inbound) ? inbound
                                             : tport_parent (inbound), token);
      if (entries[1] == NULL)
        return;
    }
  /* Inserted on top: the caller's side first, so that the callee's is the topmost. */
  for (guint i = 0; i < 2; i++)
    {
      msg_header_t *header;

      if (entries[i] == NULL)
        continue;
      header = path ? (msg_header_t *) sip_path_make (home, entries[i])
                    : (msg_header_t *) sip_record_route_make (home, entries[i]);
      if (header != NULL)
        msg_header_insert (forward, (msg_pub_t *) fsip, header);
    }
}

/* The Routes past our own on top: the first, and the next ones with the same token (our
 * double Record-Route). */
static sip_route_t const *
past_own_routes (sip_route_t const *route)
{
  sip_route_t const *next;

  if (route == NULL)
    return NULL;
  for (next = route->r_next; next != NULL && is_own_route (next) &&
       route->r_url->url_user != NULL &&
       g_ascii_strcasecmp (next->r_url->url_user, route->r_url->url_user) == 0;
       next = next->r_next)
    ;
  return next;
}

static void
relay_request (Registrar      *self,
               nta_incoming_t *irq,
               sip_t const    *sip,
               msg_t          *request,
               tport_t        *inbound,
               Target         *target)
{
  msg_t *forward;
  sip_t *fsip;
  Relay *relay;
  const char *method = sip->sip_request->rq_method_name;
  const url_t *url = target->url != NULL ? target->url : sip->sip_request->rq_url;
  const url_t *hop = target->hop != NULL ? target->hop : url;
  g_autofree char *branch = self->upstream != NULL ? edge_branch (sip) : NULL;

  if (sip->sip_max_forwards != NULL && sip->sip_max_forwards->mf_count == 0)
    {
      say ("%s: 483, Max-Forwards 0\n", method);
      if (sip->sip_request->rq_method == sip_method_ack)
        nta_incoming_destroy (irq);
      else
        reply (irq, SIP_483_TOO_MANY_HOPS, TAG_END ());
      return;
    }
  if (branch != NULL ? edge_is_loop (self, sip, branch) : has_own_via (self, sip->sip_via))
    {
      say ("%s: 482, a loop\n", method);
      if (sip->sip_request->rq_method == sip_method_ack)
        nta_incoming_destroy (irq);
      else
        reply (irq, SIP_482_LOOP_DETECTED, TAG_END ());
      return;
    }
  /* Never dial: a connectionless binding is sent to a numeric address only. */
  if (!tport_is_secondary (target->tport) && !host_is_ip_address (hop->url_host))
    {
      say ("%s to %s: 480, no connection and no address\n", method, hop->url_host);
      if (sip->sip_request->rq_method == sip_method_ack)
        nta_incoming_destroy (irq);
      else
        reply (irq, SIP_480_TEMPORARILY_UNAVAILABLE, TAG_END ());
      return;
    }

  forward = msg_copy (request);
  fsip = sip_object (forward);
  set_separator (forward, fsip);
  if (target->url != NULL)
    msg_header_replace (forward, NULL, (msg_header_t *) fsip->sip_request,
                        (msg_header_t *) sip_request_create (msg_home (forward),
                                                             sip->sip_request->rq_method,
                                                             method,
                                                             (url_string_t *) target->url,
                                                             NULL));
  if (target->pop_route && fsip->sip_route != NULL)
    {
      sip_route_t const *rest = past_own_routes (fsip->sip_route);

      while (fsip->sip_route != NULL && fsip->sip_route != rest)
        msg_header_remove (forward, (msg_pub_t *) fsip, (msg_header_t *) fsip->sip_route);
    }
  if (fsip->sip_max_forwards != NULL)
    fsip->sip_max_forwards->mf_count--;
  else
    msg_header_insert (forward, (msg_pub_t *) fsip,
                       (msg_header_t *) sip_max_forwards_make (msg_home (forward), "70"));
  if (target->record_route)
    add_own_route (self, forward, fsip, inbound, target, FALSE);
  if (target->path)
    add_own_route (self, forward, fsip, inbound, target, TRUE);

  if (sip->sip_request->rq_method == sip_method_ack)
    {
      /* The ACK of a 2xx is a transaction of its own, sent on at once and forgotten (NTA
       * would keep it until the agent goes). nta_msg_tsend() would resolve the URL itself,
       * and knows no transport=ws. */
      nta_outgoing_t *ack = nta_outgoing_mcreate (self->agent, NULL, NULL,
                                                  (url_string_t *) hop, forward,
                                                  NTATAG_TPORT (target->tport),
                                                  TAG_IF (branch != NULL,
                                                          NTATAG_BRANCH_KEY (branch)),
                                                  TAG_END ());

      if (ack != NULL)
        nta_outgoing_destroy (ack);
      else
        msg_destroy (forward);
      nta_incoming_destroy (irq);
      return;
    }
  if (self->relays.length >= self->options.max_relays)
    {
      msg_destroy (forward);
      say ("%s: 503, %u relays pending\n", method, self->relays.length);
      reply (irq, 503, "Service Unavailable (too many pending requests)",
             SIPTAG_RETRY_AFTER_STR ("5"), TAG_END ());
      return;
    }

  if (target->tport != NULL)
    target_keep (self, g_hash_table_lookup (self->flows, target->tport),
                 self->options.target_idle);
  relay = g_new0 (Relay, 1);
  relay->self = self;
  relay->irq = irq;
  relay->method = sip->sip_request->rq_method;
  relay->method_name = g_strdup (method);
  relay->tport = tport_ref (target->tport);
  relay->link.data = relay;
  relay->orq = nta_outgoing_mcreate (self->agent, on_relay_response,
                                     (nta_outgoing_magic_t *) relay, (url_string_t *) hop,
                                     forward, NTATAG_TPORT (target->tport),
                                     TAG_IF (branch != NULL, NTATAG_BRANCH_KEY (branch)),
                                     TAG_END ());
  if (relay->orq == NULL)
    {
      say ("%s: cannot relay\n", method);
      msg_destroy (forward);          /* NTA takes it only when it makes the transaction */
      relay->irq = NULL;
      if (relay->tport != NULL)
        tport_unref (relay->tport);
      g_free (relay->method_name);
      g_free (relay);
      reply (irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END ());
      return;
    }
  g_queue_push_tail_link (&self->relays, &relay->link);
  if (relay->method == sip_method_invite)
    nta_incoming_bind (irq, on_relay_cancel, (nta_incoming_magic_t *) relay);
}

/* Replies, or destroys an ACK. */
static void
refuse (nta_incoming_t *irq,
        sip_t const    *sip,
        int             status,
        const char     *phrase)
{
  if (sip->sip_request->rq_method == sip_method_ack)
    nta_incoming_destroy (irq);
  else
    reply (irq, status, phrase, TAG_END ());
}

static gboolean creates_dialog (sip_t const *sip);
static void     edge_forward   (Registrar      *self,
                                nta_incoming_t *irq,
                                sip_t const    *sip,
                                msg_t          *request,
                                tport_t        *inbound,
                                gboolean        pop_route);

/* A request routed by our Record-Route: over the flow of the party it did not come from. */
static void
route_in_dialog (Registrar      *self,
                 nta_incoming_t *irq,
                 sip_t const    *sip,
                 msg_t          *request,
                 tport_t        *inbound)
{
  char a[FLOW_ID_LENGTH + 1], b[FLOW_ID_LENGTH + 1];
  Flow *from = flow_for (self, inbound);
  const char *from_id = from != NULL ? from->id : NO_FLOW;
  const char *to_id;
  Target target = { NULL, NULL, TRUE, FALSE, NULL, NULL };
  Flow *to = NULL;
  char label[128];

  parse_flow_token (sip->sip_route->r_url->url_user, a, b);
  if (g_ascii_strcasecmp (from_id, a) == 0)
    to_id = b;
  else if (g_ascii_strcasecmp (from_id, b) == 0)
    to_id = a;
  else
    to_id = NULL;
  if (to_id == NULL)
    {
      say ("%s from %s: 430, not on a flow of its dialog\n", sip->sip_request->rq_method_name,
           tport_label (inbound, label, sizeof label));
      refuse (irq, sip, 430, "Flow Failed");
      return;
    }
  if (g_str_equal (to_id, NO_FLOW) && self->upstream != NULL)
    {
      /* The edge: from a client (or the network) on to the network. */
      edge_forward (self, irq, sip, request, inbound, TRUE);
      return;
    }
  if (g_str_equal (to_id, NO_FLOW))
    {
      /* A connectionless party: any udp transport of ours, to its numeric Contact. */
      target.tport = tport_by_protocol (nta_agent_tports (self->agent), "udp");
    }
  else
    {
      to = g_hash_table_lookup (self->flow_ids, to_id);
      target.tport = to != NULL && !tport_is_gone (to->tport) ? to->tport : NULL;
    }
  if (target.tport == NULL)
    {
      say ("%s from %s: 430, the other party's flow is gone\n",
           sip->sip_request->rq_method_name, tport_label (inbound, label, sizeof label));
      refuse (irq, sip, 430, "Flow Failed");
      return;
    }
  if (self->upstream != NULL && creates_dialog (sip))
    {
      /* The edge: an INVITE the upstream sends a client by its Path. */
      target.record_route = TRUE;
      target.caller = from;
      target.callee = to;
    }
  say ("%s from %s: in dialog, relaying\n", sip->sip_request->rq_method_name,
       sender_label (inbound, request, label, sizeof label));
  relay_request (self, irq, sip, request, inbound, &target);
}

static gboolean
creates_dialog (sip_t const *sip)
{
  switch (sip->sip_request->rq_method)
    {
    case sip_method_invite:
    case sip_method_subscribe:
    case sip_method_refer:
    case sip_method_notify:
      return sip->sip_to == NULL || sip->sip_to->a_tag == NULL;
    default:
      return FALSE;
    }
}

/* ---- edge mode ------------------------------------------------------------------------------ */

/* An outbound flow is in use: kept at least @seconds more. */
static void
target_keep (Registrar *self,
             Flow      *flow,
             guint      seconds)
{
  gint64 until = g_get_monotonic_time () + (gint64) seconds * G_USEC_PER_SEC;

  if (flow != NULL && flow->outbound && until > flow->keep_until)
    flow->keep_until = until;
}

/* The open target connections, their closed ones forgotten. */
static guint
count_targets (Registrar *self)
{
  GHashTableIter iter;
  Flow *flow;

  g_hash_table_iter_init (&iter, self->targets);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &flow))
    if (tport_is_gone (flow->tport))
      g_hash_table_iter_remove (&iter);
  return g_hash_table_size (self->targets);
}

/* The edge's connection to a ws/wss target, such as a WebSocket SIP server: the open one, or
 * a new one (sofia_ws_tport_connect()) while fewer than max_targets are open; NULL, with
 * @why, when none can be made. */
static tport_t *
edge_connection (Registrar   *self,
                 const url_t *hop,
                 gboolean     secure,
                 const char **why)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL, *key = NULL;
  tport_t **client = &self->clients[secure ? 1 : 0];
  tport_t *connection;
  Flow *flow;
  const char *port = hop->url_port != NULL ? hop->url_port : secure ? "443" : "80";
  gboolean v6 = strchr (hop->url_host, ':') != NULL && hop->url_host[0] != '[';

  *why = "Service Unavailable (no connection)";
  key = g_strdup_printf ("%s %s%s%s:%s", secure ? "wss" : "ws", v6 ? "[" : "", hop->url_host,
                         v6 ? "]" : "", port);
  flow = g_hash_table_lookup (self->targets, key);
  if ((flow == NULL || tport_is_gone (flow->tport)) &&
      count_targets (self) >= self->options.max_targets)
    {
      say ("%s: 503, %u ws/wss targets open (--max-targets)\n", key,
           self->options.max_targets);
      *why = "Service Unavailable (too many ws targets)";
      return NULL;
    }
  if (*client == NULL)
    *client = sofia_ws_tport_add_client (self->agent, secure ? "wss" : "ws", &error,
                                         WSTAG_CRLF_KEEPALIVE (self->options.crlf_keepalive),
                                         TAG_IF (self->options.tls_ca_file != NULL,
                                                 WSTAG_TLS_CA_FILE (self->options.tls_ca_file)),
                                         TAG_END ());
  if (*client == NULL)
    {
      say ("cannot make %s connections: %s\n", secure ? "wss" : "ws", error->message);
      return NULL;
    }
  url = g_strdup_printf ("sip:%s%s%s:%s;transport=%s", v6 ? "[" : "", hop->url_host,
                         v6 ? "]" : "", port, secure ? "wss" : "ws");
  connection = sofia_ws_tport_connect (*client, url, &error);
  if (connection == NULL)
    {
      say ("cannot connect to %s: %s\n", url, error->message);
      return NULL;
    }
  flow = flow_for (self, connection);
  if (flow != NULL && flow->target == NULL)
    {
      flow->target = g_steal_pointer (&key);
      g_hash_table_replace (self->targets, flow->target, flow);
    }
  target_keep (self, flow, self->options.target_idle);
  return connection;
}

/* The edge, towards the network: a client's request to the upstream server; any other to its
 * next Route (ours popped if @pop_route), else its Request-URI. */
static void
edge_forward (Registrar      *self,
              nta_incoming_t *irq,
              sip_t const    *sip,
              msg_t          *request,
              tport_t        *inbound,
              gboolean        pop_route)
{
  Flow *from = flow_for (self, inbound);
  const char *method = sip->sip_request->rq_method_name;
  Target target = { NULL, NULL, pop_route, creates_dialog (sip), from, NULL, NULL, FALSE };
  sip_route_t const *route = sip->sip_route;
  char transport[8] = "";
  char label[128];

  if (from != NULL && !from->outbound)
    {
      target.hop = self->upstream;
      target.path = sip->sip_request->rq_method == sip_method_register;
      say ("%s from %s: to the upstream\n", method, tport_label (inbound, label, sizeof label));
      relay_request (self, irq, sip, request, inbound, &target);
      return;
    }

  if (pop_route && route != NULL)
    route = past_own_routes (route);
  target.hop = route != NULL ? route->r_url : sip->sip_request->rq_url;
  if (route == NULL && sip->sip_request->rq_method == sip_method_options &&
      target.hop->url_user == NULL &&
      is_own_address (self, target.hop->url_host, target.hop->url_port))
    {
      say ("OPTIONS from %s: 200\n", tport_label (inbound, label, sizeof label));
      reply (irq, SIP_200_OK, SIPTAG_ALLOW_STR (ALLOW), SIPTAG_SUPPORTED_STR ("path"),
             TAG_END ());
      return;
    }
  if (target.hop->url_host == NULL)
    {
      refuse (irq, sip, SIP_416_UNSUPPORTED_URI);
      return;
    }
  if (target.hop->url_params != NULL)
    url_param (target.hop->url_params, "transport", transport, sizeof transport);
  if (g_ascii_strcasecmp (transport, "ws") == 0 || g_ascii_strcasecmp (transport, "wss") == 0)
    {
      /* A browser's made-up host names a connection we do not know (an old token, or none):
       * it is gone, never dialled. */
      if (g_str_has_suffix (target.hop->url_host, ".invalid"))
        {
          say ("%s from %s to %s: 430, no such connection\n", method,
               tport_label (inbound, label, sizeof label), target.hop->url_host);
          refuse (irq, sip, 430, "Flow Failed");
          return;
        }
      const char *why;

      target.tport = edge_connection (self, target.hop,
                                      g_ascii_strcasecmp (transport, "wss") == 0, &why);
      if (target.tport == NULL)
        {
          if (sip->sip_request->rq_method == sip_method_ack)
            nta_incoming_destroy (irq);
          else
            reply (irq, 503, why, SIPTAG_RETRY_AFTER_STR ("10"), TAG_END ());
          return;
        }
      /* Our Path or Record-Route on that side names this connection: the server sends the
       * requests of the registration or dialog back over it. */
      target.callee = flow_for (self, target.tport);
      target.path = sip->sip_request->rq_method == sip_method_register && target.callee != NULL;
    }
  say ("%s from %s%s: to %s%s%s\n", method, tport_label (inbound, label, sizeof label),
       pop_route ? " by our Route" : "", target.hop->url_host,
       target.hop->url_port != NULL ? ":" : "",
       target.hop->url_port != NULL ? target.hop->url_port : "");
  relay_request (self, irq, sip, request, inbound, &target);
}

/* A request to a registered user: to its newest binding, over the binding's own connection. */
static void
route_to_user (Registrar      *self,
               nta_incoming_t *irq,
               sip_t const    *sip,
               msg_t          *request,
               tport_t        *inbound)
{
  const char *name = sip->sip_request->rq_url->url_user;
  const char *method = sip->sip_request->rq_method_name;
  gboolean known;
  Binding *binding = find_binding (self, name, &known);
  su_home_t home[1] = { SU_HOME_INIT (home) };
  Target target = { NULL, NULL, FALSE, FALSE, NULL, NULL };

  if (binding == NULL)
    {
      say ("%s for %s: %s\n", method, name, known ? "its connection is gone" : "not registered");
      if (known)
        refuse (irq, sip, SIP_480_TEMPORARILY_UNAVAILABLE);
      else
        refuse (irq, sip, SIP_404_NOT_FOUND);
      return;
    }
  target.url = url_hdup (home, URL_STRING_MAKE (binding->uri)->us_url);
  target.tport = binding->tport;
  if (target.url == NULL || target.tport == NULL)
    {
      su_home_deinit (home);
      refuse (irq, sip, SIP_480_TEMPORARILY_UNAVAILABLE);
      return;
    }
  if (creates_dialog (sip))
    {
      target.record_route = TRUE;
      target.caller = flow_for (self, inbound);
      target.callee = binding->flow;
    }
  say ("%s from %s to %s: relaying to %s\n", method,
       sip->sip_from && sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "?",
       name, binding->uri);
  relay_request (self, irq, sip, request, inbound, &target);
  su_home_deinit (home);
}

/* ---- all requests -------------------------------------------------------------------------- */

/* The connection a request came on. NTA gives none for an ACK outside a transaction: then the
 * flow whose peer sent it. */
static tport_t *
inbound_tport (Registrar      *self,
               nta_incoming_t *irq,
               msg_t          *request)
{
  tport_t *tport = nta_incoming_transport (self->agent, irq, NULL);
  char host[64] = "", key[80];
  unsigned port = 0;
  Flow *flow;

  if (tport != NULL || !sender_address (request, host, sizeof host, &port))
    return tport;
  g_snprintf (key, sizeof key, "%s %u", host, port);
  flow = g_hash_table_lookup (self->flow_peers, key);
  return flow != NULL ? tport_ref (flow->tport) : NULL;
}

static int
on_request (nta_leg_magic_t *magic,
            nta_leg_t       *leg,
            nta_incoming_t  *irq,
            sip_t const     *sip)
{
  Registrar *self = (Registrar *) magic;
  msg_t *request = nta_incoming_getrequest (irq);
  tport_t *tport = inbound_tport (self, irq, request);
  sip_method_t method = sip->sip_request->rq_method;
  char label[128];

  if (tport != NULL && self->upstream != NULL)
    target_keep (self, g_hash_table_lookup (self->flows, tport), self->options.target_idle);

  if (request == NULL || msg_has_error (request) || sip->sip_error != NULL)
    {
      /* Sofia keeps a second single header (Max-Forwards, Content-Type...) aside as an
       * error; such a message cannot be copied and sent on. */
      g_autofree char *phrase = sip->sip_error != NULL ? describe_error (sip->sip_error)
                                                       : g_strdup ("Bad Request");

      say ("%s from %s: 400, %s\n", sip->sip_request->rq_method_name,
           tport_label (tport, label, sizeof label), phrase);
      refuse (irq, sip, 400, phrase);
    }
  else if (method == sip_method_register && self->upstream == NULL)
    on_register (self, irq, sip, tport);
  else if (method == sip_method_cancel)
    reply (irq, SIP_481_NO_TRANSACTION, TAG_END ());  /* a CANCEL of no INVITE we relay */
  else if (is_own_route (sip->sip_route))
    route_in_dialog (self, irq, sip, request, tport);
  else if (self->upstream != NULL)
    edge_forward (self, irq, sip, request, tport, FALSE);
  else if (sip->sip_request->rq_url->url_user != NULL)
    route_to_user (self, irq, sip, request, tport);
  else if (method == sip_method_options)
    {
      say ("OPTIONS from %s: 200\n", tport_label (tport, label, sizeof label));
      reply (irq, SIP_200_OK,
             SIPTAG_ALLOW_STR (ALLOW),
             SIPTAG_ACCEPT_STR ("text/plain, application/sdp"),
             SIPTAG_SUPPORTED_STR ("path, outbound"),
             TAG_END ());
    }
  else if (method == sip_method_ack)
    nta_incoming_destroy (irq);
  else
    {
      say ("%s from %s: 405\n", sip->sip_request->rq_method_name,
           tport_label (tport, label, sizeof label));
      reply (irq, SIP_405_METHOD_NOT_ALLOWED, SIPTAG_ALLOW_STR (ALLOW), TAG_END ());
    }
  if (request != NULL)
    msg_destroy (request);
  if (tport != NULL)
    tport_unref (tport);
  return 0;
}

/* ---- the sweep ----------------------------------------------------------------------------- */

/* Whether a request relayed over @tport is still pending. */
static gboolean
has_relays (Registrar *self,
            tport_t   *tport)
{
  for (GList *l = self->relays.head; l != NULL; l = l->next)
    if (((Relay *) l->data)->tport == tport && ((Relay *) l->data)->linger_until == 0)
      return TRUE;
  return FALSE;
}

static void
on_sweep (su_root_magic_t *magic,
          su_timer_t      *timer,
          su_timer_arg_t  *arg)
{
  Registrar *self = (Registrar *) arg;
  gint64 now = g_get_monotonic_time ();
  GSequenceIter *first;
  GHashTableIter iter;
  Flow *flow;

  while (!g_sequence_iter_is_end (first = g_sequence_get_begin_iter (self->expiry)) &&
         ((Binding *) g_sequence_get (first))->expires_at <= now)
    {
      Binding *binding = g_sequence_get (first);
      User *user = binding->user;

      binding_remove (self, binding);
      user_prune (self, user);
    }

  g_hash_table_iter_init (&iter, self->flows);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &flow))
    if (tport_is_gone (flow->tport))
      {
        g_hash_table_iter_steal (&iter);
        flow_free (self, flow);
      }
    else if (flow->outbound && flow->keep_until <= now && !has_relays (self, flow->tport))
      {
        /* No message either way, nor a registration through it, for target_idle s: closed
         * (with a 1000 close frame), its slot free; the next request opens a new one. */
        say ("%s: idle for %u s, closed\n", flow->target != NULL ? flow->target : "ws target",
             self->options.target_idle);
        flow->keep_until = G_MAXINT64;
        tport_shutdown (flow->tport, 2);
      }

  for (GList *l = self->relays.head, *next; l != NULL; l = next)
    {
      Relay *relay = l->data;

      next = l->next;
      if (relay->linger_until != 0 && relay->linger_until <= now)
        relay_free (relay);
    }
}

/* ---- life cycle ---------------------------------------------------------------------------- */

Registrar *
registrar_new (su_root_t              *root,
               nta_agent_t            *agent,
               const RegistrarOptions *options)
{
  Registrar *self = g_new0 (Registrar, 1);

  self->root = root;
  self->agent = agent;
  if (options != NULL)
    self->options = *options;
#define DEFAULT(field, value) if (self->options.field == 0) self->options.field = (value)
  DEFAULT (max_users, REGISTRAR_DEFAULT_MAX_USERS);
  DEFAULT (max_bindings, REGISTRAR_DEFAULT_MAX_BINDINGS);
  DEFAULT (max_contacts, REGISTRAR_DEFAULT_MAX_CONTACTS);
  DEFAULT (max_relays, REGISTRAR_DEFAULT_MAX_RELAYS);
  DEFAULT (sweep_interval_ms, 1000);
  DEFAULT (max_targets, REGISTRAR_DEFAULT_MAX_TARGETS);
  DEFAULT (target_idle, REGISTRAR_DEFAULT_TARGET_IDLE);
#undef DEFAULT
  self->options.max_contacts = MIN (self->options.max_contacts, 1000);
  quiet = self->options.quiet;
  su_home_init (self->home);
  self->options.tls_ca_file = su_strdup (self->home, self->options.tls_ca_file);
  self->options.upstream = NULL;
  if (options != NULL && options->upstream != NULL)
    {
      self->upstream = url_hdup (self->home, URL_STRING_MAKE (options->upstream)->us_url);
      if (self->upstream == NULL || self->upstream->url_host == NULL ||
          (self->upstream->url_type != url_sip && self->upstream->url_type != url_sips))
        {
          g_warning ("not a SIP URI: %s", options->upstream);
          su_home_deinit (self->home);
          g_free (self);
          return NULL;
        }
      if (self->upstream->url_params == NULL ||
          url_param (self->upstream->url_params, "transport", self->upstream_proto,
                     sizeof self->upstream_proto) == 0)
        g_strlcpy (self->upstream_proto, self->upstream->url_type == url_sips ? "tls" : "udp",
                   sizeof self->upstream_proto);
    }
  line_prefix = self->options.line_prefix != NULL ? self->options.line_prefix : "";
  self->users = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) user_free);
  self->flows = g_hash_table_new (g_direct_hash, g_direct_equal);
  self->flow_ids = g_hash_table_new (g_str_hash, g_str_equal);
  self->flow_peers = g_hash_table_new (g_str_hash, g_str_equal);
  self->targets = g_hash_table_new (g_str_hash, g_str_equal);
  self->expiry = g_sequence_new (NULL);
  g_queue_init (&self->relays);
  self->leg = nta_leg_tcreate (agent, on_request, (nta_leg_magic_t *) self,
                               NTATAG_NO_DIALOG (1), TAG_END ());
  self->sweep = su_timer_create (su_root_task (root), self->options.sweep_interval_ms);
  if (self->leg == NULL || self->sweep == NULL ||
      su_timer_set_for_ever (self->sweep, on_sweep, (su_timer_arg_t *) self) < 0)
    {
      registrar_free (self);
      return NULL;
    }
  return self;
}

void
registrar_free (Registrar *self)
{
  GHashTableIter iter;
  Flow *flow;

  if (self == NULL)
    return;
  if (self->sweep != NULL)
    su_timer_destroy (self->sweep);
  while (self->relays.head != NULL)
    relay_free (self->relays.head->data);
  /* Bindings hold references on tports: drop them before the agent goes. */
  g_hash_table_iter_init (&iter, self->flows);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &flow))
    {
      g_hash_table_iter_steal (&iter);
      flow_free (self, flow);
    }
  while (!g_sequence_iter_is_end (g_sequence_get_begin_iter (self->expiry)))
    {
      Binding *binding = g_sequence_get (g_sequence_get_begin_iter (self->expiry));
      User *user = binding->user;

      binding_remove (self, binding);
      user_prune (self, user);
    }
  if (self->leg != NULL)
    nta_leg_destroy (self->leg);
  g_hash_table_unref (self->users);
  g_hash_table_unref (self->flows);
  g_hash_table_unref (self->flow_ids);
  g_hash_table_unref (self->flow_peers);
  g_hash_table_unref (self->targets);
  g_sequence_free (self->expiry);
  su_home_deinit (self->home);
  g_free (self);
}

void
registrar_get_stats (Registrar      *self,
                     RegistrarStats *stats)
{
  stats->users = g_hash_table_size (self->users);
  stats->bindings = self->bindings;
  stats->flows = g_hash_table_size (self->flows);
  stats->relays = self->relays.length;
}
