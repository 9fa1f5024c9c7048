/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registrar's core: REGISTER, OPTIONS and the relay of MESSAGE to registered users, on one
 * NTA default leg (see registrar-core.h and sofia-ws-registrar.c for what each request gets). */
#include "registrar-core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#define DEFAULT_EXPIRES 600
#define MAX_EXPIRES 3600

typedef struct {
  char *contact;                  /* the Contact URI, as registered */
  tport_t *tport;                 /* the connection it came on (a reference), or NULL */
  gint64 expires_at;              /* monotonic microseconds */
} Binding;

struct _Registrar {
  su_root_t *root;
  nta_agent_t *agent;
  nta_leg_t *leg;
  RegistrarOptions options;
  GHashTable *bindings;           /* user -> GPtrArray of Binding */
};

typedef struct {
  nta_incoming_t *irq;
  nta_outgoing_t *orq;
} Relay;

static gboolean quiet;            /* RegistrarOptions.quiet: no line per request */

/* One line about a request, unless quiet. */
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
  quiet = self->options.quiet;
  self->bindings = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify) g_ptr_array_unref);
  self->leg = nta_leg_tcreate (agent, on_request, (nta_leg_magic_t *) self,
                               NTATAG_NO_DIALOG (1), TAG_END ());
  if (self->leg == NULL)
    {
      registrar_free (self);
      return NULL;
    }
  return self;
}

void
registrar_free (Registrar *self)
{
  if (self == NULL)
    return;
  /* Bindings hold references on tports: drop them before the agent goes. */
  g_hash_table_remove_all (self->bindings);
  if (self->leg != NULL)
    nta_leg_destroy (self->leg);
  g_hash_table_unref (self->bindings);
  g_free (self);
}
