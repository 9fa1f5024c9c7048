/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sofia-ws-registrar: a SIP registrar and MESSAGE relay on Sofia-SIP's NTA, serving SIP over
 * WebSocket (RFC 7118) through sofia-ws, and SIP over TCP or UDP beside it.
 *
 *   sofia-ws-registrar --listen 'sip:127.0.0.1:5066;transport=ws' \
 *                      --listen 'sip:127.0.0.1:5060;transport=tcp' [--verbose]
 *
 * Prints "listening <url>" for each listener once it is ready (port 0 becomes the port the
 * system chose), then serves until SIGTERM or SIGINT:
 *   REGISTER  stores the Contacts of the To user (Expires or ;expires=, 0 removes them) with the
 *             connection the request came on, and answers 200 with the bindings;
 *   OPTIONS   200, with Allow, Accept and Supported;
 *   MESSAGE   to a registered user: relayed over that user's own connection (NTATAG_TPORT),
 *             and the user's final response relayed back; 404 for an unknown user, 480 when
 *             its connection is gone.
 * Each request prints one line (--quiet: none, for benchmarks); --verbose also prints every
 * WebSocket transport event.
 * Sofia's own dumps work as usual: TPORT_LOG=1 prints every SIP message, TPORT_WS_DEBUG=5 the
 * ws module's log.
 */
#include <sofia-ws/sofia-ws-tport.h>

#include <glib-unix.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#define DEFAULT_EXPIRES 600
#define MAX_EXPIRES 3600

typedef struct {
  char *contact;                  /* the Contact URI, as registered */
  tport_t *tport;                 /* the connection it came on (a reference), or NULL */
  gint64 expires_at;              /* monotonic microseconds */
} Binding;

typedef struct {
  su_root_t *root;
  GMainLoop *loop;
  nta_agent_t *agent;
  nta_leg_t *leg;
  GHashTable *bindings;           /* user -> GPtrArray of Binding */
} Registrar;

typedef struct {
  nta_incoming_t *irq;
  nta_outgoing_t *orq;
} Relay;

static gboolean quiet;            /* --quiet: no line per request */

/* One line about a request, unless --quiet. */
static void say (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
say (const char *format,
     ...)
{
  va_list args;

  if (quiet)
    return;
  va_start (args, format);
  vprintf (format, args);
  va_end (args);
}

static void
binding_free (Binding *binding)
{
  g_free (binding->contact);
  if (binding->tport != NULL)
    tport_unref (binding->tport);
  g_free (binding);
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

/* ---- REGISTER ------------------------------------------------------------------------------ */

static int
on_register (Registrar      *self,
             nta_incoming_t *irq,
             sip_t const    *sip,
             tport_t        *tport)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  const char *user = sip->sip_to && sip->sip_to->a_url->url_user ? sip->sip_to->a_url->url_user
                                                                   : NULL;
  unsigned default_expires = sip->sip_expires ? sip->sip_expires->ex_delta : DEFAULT_EXPIRES;
  GPtrArray *bindings;
  sip_contact_t *answer = NULL, **tail = &answer;
  char label[128];

  if (user == NULL)
    {
      reply (irq, SIP_400_BAD_REQUEST, TAG_END ());
      return 0;
    }

  bindings = g_hash_table_lookup (self->bindings, user);
  if (bindings == NULL)
    {
      bindings = g_ptr_array_new_with_free_func ((GDestroyNotify) binding_free);
      g_hash_table_insert (self->bindings, g_strdup (user), bindings);
    }

  for (sip_contact_t const *m = sip->sip_contact; m != NULL; m = m->m_next)
    {
      char *uri;                  /* in home */
      unsigned expires = default_expires;

      if (m->m_url->url_type == url_any)  /* "Contact: *" */
        {
          if (default_expires == 0)
            g_ptr_array_set_size (bindings, 0);
          continue;
        }
      if (m->m_expires != NULL)
        expires = (unsigned) strtoul (m->m_expires, NULL, 10);
      expires = MIN (expires, MAX_EXPIRES);
      uri = url_as_string (home, m->m_url);

      for (guint i = 0; i < bindings->len; i++)
        if (g_strcmp0 (((Binding *) g_ptr_array_index (bindings, i))->contact, uri) == 0)
          g_ptr_array_remove_index (bindings, i--);

      if (expires > 0)
        {
          Binding *binding = g_new0 (Binding, 1);
          GString *answered = g_string_new (NULL);
          sip_contact_t *copy;

          binding->contact = g_strdup (uri);
          binding->tport = tport != NULL ? tport_ref (tport) : NULL;
          binding->expires_at = g_get_monotonic_time () + (gint64) expires * G_USEC_PER_SEC;
          g_ptr_array_add (bindings, binding);

          /* The Contact as registered, its parameters kept (+sip.instance, reg-id, ob), and
           * the expiry granted. */
          g_string_append_printf (answered, "<%s>", uri);
          for (int i = 0; m->m_params != NULL && m->m_params[i] != NULL; i++)
            if (g_ascii_strncasecmp (m->m_params[i], "expires=", 8) != 0)
              g_string_append_printf (answered, ";%s", m->m_params[i]);
          g_string_append_printf (answered, ";expires=%u", expires);
          copy = sip_contact_make (home, answered->str);
          g_string_free (answered, TRUE);
          if (copy != NULL)
            {
              *tail = copy;
              tail = &copy->m_next;
            }
        }
    }

  say ("REGISTER %s from %s: %u binding(s)\n", user,
           tport_label (tport, label, sizeof label), bindings->len);
  reply (irq, SIP_200_OK, SIPTAG_CONTACT (answer), TAG_END ());
  su_home_deinit (home);
  return 0;
}

/* ---- MESSAGE ------------------------------------------------------------------------------- */

static int
on_relay_response (nta_outgoing_magic_t *magic,
                   nta_outgoing_t       *orq,
                   sip_t const          *sip)
{
  Relay *relay = (Relay *) magic;
  int status = sip ? sip->sip_status->st_status : 408;
  const char *phrase = sip ? sip->sip_status->st_phrase : "Request Timeout";

  if (status < 200)
    return 0;
  say ("MESSAGE relayed: %d %s\n", status, phrase);
  reply (relay->irq, status, phrase, TAG_END ());
  nta_outgoing_destroy (orq);
  g_free (relay);
  return 0;
}

static Binding *
find_binding (Registrar  *self,
              const char *user)
{
  GPtrArray *bindings = user ? g_hash_table_lookup (self->bindings, user) : NULL;
  gint64 now = g_get_monotonic_time ();

  if (bindings == NULL)
    return NULL;
  for (guint i = 0; i < bindings->len; i++)
    if (((Binding *) g_ptr_array_index (bindings, i))->expires_at <= now)
      g_ptr_array_remove_index (bindings, i--);
  /* The newest binding first. */
  return bindings->len > 0 ? g_ptr_array_index (bindings, bindings->len - 1) : NULL;
}

static int
on_message (Registrar      *self,
            nta_incoming_t *irq,
            sip_t const    *sip)
{
  const char *user = sip->sip_request->rq_url->url_user;
  Binding *binding = find_binding (self, user);
  msg_t *request, *forward;
  sip_t *fsip;
  url_t *target;
  Relay *relay;

  if (binding == NULL)
    {
      say ("MESSAGE for %s: not registered\n", user ? user : "(no user)");
      reply (irq, SIP_404_NOT_FOUND, TAG_END ());
      return 0;
    }
  if (binding->tport != NULL && tport_is_closed (binding->tport))
    {
      say ("MESSAGE for %s: its connection is gone\n", user);
      reply (irq, SIP_480_TEMPORARILY_UNAVAILABLE, TAG_END ());
      return 0;
    }

  request = nta_incoming_getrequest (irq);
  forward = msg_copy (request);
  msg_destroy (request);
  fsip = sip_object (forward);
  target = url_hdup (msg_home (forward), URL_STRING_MAKE (binding->contact)->us_url);
  msg_header_replace (forward, NULL, (msg_header_t *) fsip->sip_request,
                      (msg_header_t *) sip_request_create (msg_home (forward), SIP_METHOD_MESSAGE,
                                                           (url_string_t *) target, NULL));
  if (fsip->sip_max_forwards != NULL && fsip->sip_max_forwards->mf_count > 0)
    fsip->sip_max_forwards->mf_count--;

  relay = g_new0 (Relay, 1);
  relay->irq = irq;
  /* Over the user's own connection: a WebSocket client cannot be dialled, and its Contact
   * host (often "xyz.invalid") is not to be resolved. */
  relay->orq = nta_outgoing_mcreate (self->agent, on_relay_response, (nta_outgoing_magic_t *) relay,
                                     (url_string_t *) target, forward,
                                     TAG_IF (binding->tport != NULL,
                                             NTATAG_TPORT (binding->tport)),
                                     TAG_END ());
  if (relay->orq == NULL)
    {
      say ("MESSAGE for %s: cannot relay\n", user);
      msg_destroy (forward);
      g_free (relay);
      reply (irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END ());
      return 0;
    }
  say ("MESSAGE from %s to %s: relaying to %s\n",
           sip->sip_from ? sip->sip_from->a_url->url_user : "?", user, binding->contact);
  return 0;
}

/* ---- all requests -------------------------------------------------------------------------- */

static int
on_request (nta_leg_magic_t *magic,
            nta_leg_t       *leg,
            nta_incoming_t  *irq,
            sip_t const     *sip)
{
  Registrar *self = (Registrar *) magic;
  tport_t *tport = nta_incoming_transport (self->agent, irq, NULL);
  int result = 0;
  char label[128];

  switch (sip->sip_request->rq_method)
    {
    case sip_method_register:
      result = on_register (self, irq, sip, tport);
      break;
    case sip_method_options:
      say ("OPTIONS from %s: 200\n", tport_label (tport, label, sizeof label));
      reply (irq, SIP_200_OK,
             SIPTAG_ALLOW_STR ("REGISTER, OPTIONS, MESSAGE"),
             SIPTAG_ACCEPT_STR ("text/plain, application/sdp"),
             SIPTAG_SUPPORTED_STR ("path, outbound"),
             TAG_END ());
      break;
    case sip_method_message:
      result = on_message (self, irq, sip);
      break;
    case sip_method_ack:
      nta_incoming_destroy (irq);
      break;
    default:
      say ("%s from %s: 405\n", sip->sip_request->rq_method_name,
               tport_label (tport, label, sizeof label));
      reply (irq, SIP_405_METHOD_NOT_ALLOWED,
             SIPTAG_ALLOW_STR ("REGISTER, OPTIONS, MESSAGE"), TAG_END ());
      break;
    }
  if (tport != NULL)
    tport_unref (tport);
  return result;
}

/* ---- transport events (--verbose) ---------------------------------------------------------- */

static void
print_event (SofiaWsTransport *transport,
             const char       *event,
             const char       *detail)
{
  g_print ("ws %s: %s%s%s\n",
           sofia_ws_websocket_get_remote_address (SOFIA_WS_WEBSOCKET (transport)), event,
           detail ? " " : "", detail ? detail : "");
}

static void
on_ws_message (SofiaWsTransport *transport, const char *message, gpointer data)
{
  g_autofree char *first = g_strndup (message, strcspn (message, "\r\n"));

  print_event (transport, "message", first);
}

static void
on_ws_message_sent (SofiaWsTransport *transport, const char *message, gpointer data)
{
  g_autofree char *first = g_strndup (message, strcspn (message, "\r\n"));

  print_event (transport, "message-sent", first);
}

static void
on_ws_event (SofiaWsTransport *transport, gpointer event)
{
  print_event (transport, event, NULL);
}

static void
on_ws_error (SofiaWsTransport *transport, const GError *error, gpointer data)
{
  print_event (transport, "transport-error", error->message);
}

static void
on_accepted (SofiaWsListener *listener, SofiaWsWebSocket *websocket, gpointer data)
{
  print_event (SOFIA_WS_TRANSPORT (websocket), "connected", "(accepted)");
  g_signal_connect (websocket, "message", G_CALLBACK (on_ws_message), NULL);
  g_signal_connect (websocket, "message-sent", G_CALLBACK (on_ws_message_sent), NULL);
  g_signal_connect (websocket, "disconnecting", G_CALLBACK (on_ws_event), "disconnecting");
  g_signal_connect (websocket, "disconnected", G_CALLBACK (on_ws_event), "disconnected");
  g_signal_connect (websocket, "transport-error", G_CALLBACK (on_ws_error), NULL);
}

/* ---- main ---------------------------------------------------------------------------------- */

/* --plain-root: Sofia's own poll/epoll loop instead of GLib's; SIGTERM is noticed by a timer. */
static volatile sig_atomic_t stop_requested;

static void
on_stop_signal (int signal_number)
{
  stop_requested = 1;
}

static void
on_stop_check (su_root_magic_t *magic, su_timer_t *timer, su_timer_arg_t *arg)
{
  if (stop_requested)
    su_root_break ((su_root_t *) arg);
}

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_CONTINUE;
}

static gboolean
is_ws_url (const char *text)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  url_t *url = url_make (home, text);
  char transport[16] = "";
  gboolean ws = FALSE;

  if (url != NULL && url->url_params != NULL &&
      url_param (url->url_params, "transport", transport, sizeof transport) > 0)
    ws = g_ascii_strcasecmp (transport, "ws") == 0 || g_ascii_strcasecmp (transport, "wss") == 0;
  su_home_deinit (home);
  return ws;
}

int
main (int argc, char **argv)
{
  g_auto(GStrv) listen = NULL;
  g_autofree char *path = NULL, *certificate = NULL, *key = NULL, *origins = NULL;
  gint idle = -1;
  gint max_connections = -1, per_address = -1, partial_bytes = -1, handshake_timeout = -1;
  gboolean verbose = FALSE;
  gboolean plain_root = FALSE;
  GOptionEntry entries[] = {
    { "listen", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &listen,
      "Listen on URL, such as 'sip:127.0.0.1:5066;transport=ws' (repeatable; tcp, udp, ws, "
      "wss)", "URL" },
    { "path", 0, 0, G_OPTION_ARG_STRING, &path, "HTTP path of the WebSocket service", "PATH" },
    { "allowed-origins", 0, 0, G_OPTION_ARG_STRING, &origins,
      "Origins accepted in WebSocket handshakes (comma-separated)", "LIST" },
    { "tls-certificate", 0, 0, G_OPTION_ARG_FILENAME, &certificate, "PEM certificate for wss",
      "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &key, "PEM private key for wss", "FILE" },
    { "idle", 0, 0, G_OPTION_ARG_INT, &idle,
      "Close connections idle for MS milliseconds (default: Sofia's 30 minutes)", "MS" },
    { "max-connections", 0, 0, G_OPTION_ARG_INT, &max_connections,
      "Connections open at once on each ws/wss listener, 0 for no limit (default 10000)", "N" },
    { "max-connections-per-address", 0, 0, G_OPTION_ARG_INT, &per_address,
      "Connections open at once from one IPv4 address or IPv6 /64, 0 for no limit "
      "(default 256)", "N" },
    { "max-partial-bytes", 0, 0, G_OPTION_ARG_INT, &partial_bytes,
      "Bytes of partly received WebSocket messages all connections of a listener may hold, "
      "0 for no limit (default 64 MiB)", "BYTES" },
    { "handshake-timeout", 0, 0, G_OPTION_ARG_INT, &handshake_timeout,
      "Seconds a new connection has for its TLS and WebSocket handshakes, 0 for no limit "
      "(default 10)", "S" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print every WebSocket transport event",
      NULL },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet,
      "Print no line per request (for benchmarks)", NULL },
    { "plain-root", 0, 0, G_OPTION_ARG_NONE, &plain_root,
      "Run on Sofia's own event loop (su_root_create) instead of GLib's", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- SIP registrar over WebSocket");
  g_autoptr(GError) error = NULL;
  Registrar self = { 0 };
  GSource *source;
  int status = 0;

  setvbuf (stdout, NULL, _IOLBF, 0);     /* one line at a time for whoever reads us */
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("sofia-ws-registrar: %s\n", error->message);
      return 2;
    }
  if (max_connections < -1 || per_address < -1 || partial_bytes < -1 || handshake_timeout < -1)
    {
      g_printerr ("sofia-ws-registrar: the limits are 0 (none) or more\n");
      return 2;
    }
  if (listen == NULL || listen[0] == NULL)
    {
      g_printerr ("sofia-ws-registrar: give at least one --listen URL\n");
      return 2;
    }

  su_init ();
  self.loop = g_main_loop_new (NULL, FALSE);
  if (plain_root)
    self.root = su_root_create (&self);
  else
    {
      /* Sofia's GLib glue announces its port at its default log level ("su_source_port_create()
       * returns 0x..."): silenced, unless SOFIA_DEBUG asks for Sofia's logs. */
      gboolean quiet_glue = g_getenv ("SOFIA_DEBUG") == NULL;

      if (quiet_glue)
        su_log_set_level (su_log_default, 0);
      self.root = su_glib_root_create (&self);
      if (quiet_glue)
        su_log_set_level (su_log_default, 3);   /* Sofia's default (su_default_log.c) */
      source = su_glib_root_gsource (self.root);
      g_source_attach (source, NULL);
    }
  self.bindings = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify) g_ptr_array_unref);

  /* Before any "listening" line: whoever reads them may send SIGTERM at once. */
  if (plain_root)
    {
      signal (SIGTERM, on_stop_signal);
      signal (SIGINT, on_stop_signal);
    }
  else
    {
      g_unix_signal_add (SIGTERM, on_signal, self.loop);
      g_unix_signal_add (SIGINT, on_signal, self.loop);
    }

  self.agent = nta_agent_create (self.root, (url_string_t *) -1 /* NONE: no transport yet */, NULL, NULL,
                                 NTATAG_UA (0), NTATAG_SERVER_RPORT (1), TAG_END ());
  if (self.agent == NULL)
    {
      g_printerr ("sofia-ws-registrar: cannot create the NTA agent\n");
      return 1;
    }
  self.leg = nta_leg_tcreate (self.agent, on_request, (nta_leg_magic_t *) &self,
                              NTATAG_NO_DIALOG (1), TAG_END ());

  /* Sofia's own transports first, so that their "listening" lines come out in order too. */
  for (char **url = listen; *url != NULL; url++)
    {
      if (is_ws_url (*url))
        continue;
      if (nta_agent_add_tport (self.agent, URL_STRING_MAKE (*url),
                               TAG_IF (idle >= 0, TPTAG_IDLE ((unsigned) idle)), TAG_END ()) < 0)
        {
          g_printerr ("sofia-ws-registrar: cannot listen on %s: %s\n", *url, g_strerror (errno));
          status = 1;
          goto out;
        }
    }
  for (tport_t *tp = tport_primaries (nta_agent_tports (self.agent)); tp; tp = tport_next (tp))
    {
      tp_name_t const *name = tport_name (tp);

      g_print ("listening sip:%s:%s;transport=%s\n", name->tpn_host, name->tpn_port,
               name->tpn_proto);
    }

  for (char **url = listen; *url != NULL; url++)
    {
      tport_t *tp;
      tp_name_t const *name;
      g_autofree char *proto = NULL;

      if (!is_ws_url (*url))
        continue;
      tp = sofia_ws_tport_add_listener (self.agent, *url, &error,
                                        TAG_IF (path, WSTAG_PATH (path)),
                                        TAG_IF (origins, WSTAG_ALLOWED_ORIGINS (origins)),
                                        TAG_IF (certificate, WSTAG_TLS_CERTIFICATE (certificate)),
                                        TAG_IF (key, WSTAG_TLS_KEY (key)),
                                        TAG_IF (idle >= 0, TPTAG_IDLE ((unsigned) idle)),
                                        TAG_IF (max_connections >= 0,
                                                WSTAG_MAX_CONNECTIONS (max_connections)),
                                        TAG_IF (per_address >= 0,
                                                WSTAG_MAX_CONNECTIONS_PER_ADDRESS (per_address)),
                                        TAG_IF (partial_bytes >= 0,
                                                WSTAG_MAX_PARTIAL_BYTES (partial_bytes)),
                                        TAG_IF (handshake_timeout >= 0,
                                                WSTAG_HANDSHAKE_TIMEOUT (handshake_timeout)),
                                        TAG_END ());
      if (tp == NULL)
        {
          g_printerr ("sofia-ws-registrar: cannot listen on %s: %s\n", *url, error->message);
          status = 1;
          goto out;
        }
      if (verbose)
        g_signal_connect (sofia_ws_tport_get_listener (tp), "accepted", G_CALLBACK (on_accepted),
                          NULL);
      name = tport_name (tp);
      proto = g_ascii_strdown (name->tpn_proto, -1);
      g_print ("listening sip:%s%s%s:%s;transport=%s\n",
               strchr (name->tpn_host, ':') ? "[" : "", name->tpn_host,
               strchr (name->tpn_host, ':') ? "]" : "", name->tpn_port, proto);
    }

  if (plain_root)
    {
      su_timer_t *check = su_timer_create (su_root_task (self.root), 100);

      su_timer_set_for_ever (check, on_stop_check, (su_timer_arg_t *) self.root);
      su_root_run (self.root);
      su_timer_destroy (check);
    }
  else
    g_main_loop_run (self.loop);
  g_print ("stopping\n");

out:
  /* Bindings hold references on tports: drop them before the agent goes. */
  g_hash_table_remove_all (self.bindings);
  nta_leg_destroy (self.leg);
  nta_agent_destroy (self.agent);
  g_hash_table_unref (self.bindings);
  su_root_destroy (self.root);
  g_main_loop_unref (self.loop);
  su_deinit ();
  return status;
}
