/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nua-gateway: a Sofia NUA user agent configured as the README's "FreeSWITCH behind
 * sofia-ws-edge" tells a FreeSWITCH gateway, standing in for FreeSWITCH in the tests
 * (tests/test-edge-nua.c). Test-only: built by tests/meson.build, not installed.
 *
 *   nua-gateway --user fs1 --proxy 'sip:127.0.0.1:EDGE;transport=tcp'
 *               --registrar 'sip:127.0.0.1:KAMAILIO;transport=ws'
 *               [--domain 127.0.0.1] [--listen 'sip:127.0.0.1:0;transport=tcp']
 *               [--expires 300] [--retry-seconds 30] [--media-port 40000]
 *
 * The settings, and the FreeSWITCH gateway parameter each one stands for:
 *   --proxy      register-proxy and outbound-proxy: the edge's tcp listener, where every
 *                request goes (NUTAG_PROXY, NTA's default proxy: the next hop, no Route added)
 *   --registrar  proxy: the ws server with transport=ws, the REGISTER's Request-URI
 *                (NUTAG_REGISTRAR); calls name it too: `call sip:bob@HOST:PORT;transport=ws`
 *   --listen     the gateway's own tcp listener (register-transport=tcp, contact-host=sip-ip):
 *                its Contact and Via say TCP, and the ws server's requests reach it there
 *                through the edge
 *   --domain     from-domain: the domain of From and To
 *   --expires    expire-seconds: NUA refreshes the registration before it runs out
 *   --retry-seconds  retry-seconds: after a failed REGISTER, register again this much later
 *
 * Commands on stdin, one a line:
 *   register     REGISTER (and keep it refreshed)
 *   unregister   REGISTER with expires 0
 *   call URI     INVITE URI with an SDP offer (NUA's soa)
 *   bye          hang up the current call
 *   quit         nua_shutdown (unregisters, ends calls) and exit 0
 * Incoming INVITEs get 180 and then 200 with an SDP answer (NUA's soa). One line per event:
 *   listening sip:127.0.0.1:PORT;transport=tcp
 *   registered 200 | registered 503 ... (every REGISTER's final response, refreshes too)
 *   unregistered 200
 *   incoming INVITE from sip:USER@HOST
 *   call 180 | call 200 | call 404 ...    (responses to our INVITE, 180 and up)
 *   ack                                  (the ACK of a call we answered)
 *   remote sdp m=audio PORT ...          (the peer's media line, once offer/answer is done)
 *   bye received | bye 200 | terminated
 *   shutdown */
#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/soa_tag.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/url.h>

typedef struct {
  GMainLoop *loop;
  nua_t *nua;
  char *aor;                      /* sip:USER@DOMAIN */
  char *user;
  guint expires;
  guint retry_seconds;
  nua_handle_t *registration;
  guint retry;                    /* the GLib timer of the next attempt, after a failure */
  gboolean registering;           /* the registration is wanted (not unregistered) */
  nua_handle_t *call;             /* one call at a time */
  GPtrArray *handles;             /* every handle, destroyed at the end */
  gboolean shutting_down;
  int status;                     /* the exit status */
} Gateway;

static void
say (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
say (const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  vprintf (format, ap);
  va_end (ap);
  putchar ('\n');
  fflush (stdout);
}

static void
keep (Gateway *gw, nua_handle_t *nh)
{
  if (!g_ptr_array_find (gw->handles, nh, NULL))
    g_ptr_array_add (gw->handles, nh);
}

static void
do_register (Gateway *gw)
{
  g_autofree char *expires = g_strdup_printf ("%u", gw->expires);

  gw->registering = TRUE;
  if (gw->registration == NULL)
    {
      gw->registration = nua_handle (gw->nua, NULL, SIPTAG_TO_STR (gw->aor),
                                     SIPTAG_FROM_STR (gw->aor), TAG_END ());
      keep (gw, gw->registration);
    }
  nua_register (gw->registration, NUTAG_M_USERNAME (gw->user), SIPTAG_EXPIRES_STR (expires),
                TAG_END ());
}

static gboolean
on_retry (gpointer data)
{
  Gateway *gw = data;

  gw->retry = 0;
  if (gw->registering && !gw->shutting_down)
    do_register (gw);
  return G_SOURCE_REMOVE;
}

/* The media line of an SDP text, for the "remote sdp" line. */
static char *
media_line (const char *sdp)
{
  const char *m = sdp != NULL ? strstr (sdp, "m=") : NULL;

  return m != NULL ? g_strndup (m, strcspn (m, "\r\n")) : g_strdup ("none");
}

/* Whether @text is a sip: or sips: URI with a host (NUA would take anything as a URL). */
static gboolean
is_sip_uri (const char *text)
{
  su_home_t home[1] = { SU_HOME_INIT (home) };
  url_t *url = url_make (home, text);
  gboolean ok = url != NULL && (url->url_type == url_sip || url->url_type == url_sips) &&
                url->url_host != NULL && *url->url_host != '\0';

  su_home_deinit (home);
  return ok;
}

static void
on_event (nua_event_t event, int status, char const *phrase, nua_t *nua, nua_magic_t *magic,
          nua_handle_t *nh, nua_hmagic_t *hmagic, sip_t const *sip, tagi_t tags[])
{
  Gateway *gw = (Gateway *) magic;

  switch (event)
    {
    case nua_r_get_params:
      {
        sip_contact_t const *m = NULL;

        tl_gets (tags, NTATAG_CONTACT_REF (m), TAG_END ());
        if (m == NULL || m->m_url->url_port == NULL)
          {
            g_printerr ("nua-gateway: no contact from NUA\n");
            gw->status = 1;
            gw->shutting_down = TRUE;
            nua_shutdown (gw->nua);
            break;
          }
        say ("listening sip:%s:%s;transport=tcp", m->m_url->url_host, m->m_url->url_port);
      }
      break;
    case nua_r_register:
      if (status < 200)
        break;
      say ("registered %d %s", status, phrase);
      /* A failed REGISTER ends NUA's refreshing: register again later, as FreeSWITCH does
       * (a 401/407 that NUA could not answer is a failure like any other here). */
      if (status >= 300 && gw->registering && !gw->shutting_down && gw->retry == 0)
        gw->retry = g_timeout_add_seconds (gw->retry_seconds, on_retry, gw);
      break;
    case nua_r_unregister:
      if (status >= 200)
        say ("unregistered %d %s", status, phrase);
      break;
    case nua_i_invite:
      keep (gw, nh);
      say ("incoming INVITE from sip:%s@%s", sip->sip_from->a_url->url_user
                                               ? sip->sip_from->a_url->url_user : "",
           sip->sip_from->a_url->url_host);
      if (gw->call != NULL || gw->shutting_down)
        {
          nua_respond (nh, SIP_486_BUSY_HERE, TAG_END ());
          break;
        }
      gw->call = nh;
      nua_respond (nh, SIP_180_RINGING, TAG_END ());
      /* The answer: soa's, from the offer and our SOATAG_USER_SDP_STR. */
      nua_respond (nh, SIP_200_OK, TAG_END ());
      break;
    case nua_r_invite:
      if (status >= 180)
        say ("call %d %s", status, phrase);
      break;
    case nua_i_ack:
      say ("ack");
      break;
    case nua_i_bye:
      say ("bye received");
      break;
    case nua_r_bye:
      if (status >= 200)
        say ("bye %d %s", status, phrase);
      break;
    case nua_i_cancel:
      say ("cancel received");
      break;
    case nua_i_state:
      {
        int state = nua_callstate_init;
        int offer_recv = 0, answer_recv = 0;
        char const *remote = NULL;

        tl_gets (tags, NUTAG_CALLSTATE_REF (state), NUTAG_OFFER_RECV_REF (offer_recv),
                 NUTAG_ANSWER_RECV_REF (answer_recv), SOATAG_REMOTE_SDP_STR_REF (remote),
                 TAG_END ());
        if ((offer_recv || answer_recv) && remote != NULL)
          {
            g_autofree char *m = media_line (remote);

            say ("remote sdp %s", m);
          }
        if (state == nua_callstate_terminated)
          {
            say ("terminated");
            if (nh == gw->call)
              gw->call = NULL;
          }
      }
      break;
    case nua_i_options:
    case nua_i_message:
      keep (gw, nh);
      break;
    case nua_r_shutdown:
      if (status >= 200)
        {
          say ("shutdown %d", status);
          g_main_loop_quit (gw->loop);
        }
      break;
    case nua_i_error:
      say ("error %d %s", status, phrase);
      break;
    case nua_i_terminated:        /* a handle's usages are gone: "terminated" said it */
      break;
    default:
      if (status >= 300)          /* failures of anything else, for the test's log */
        say ("event %s %d %s", nua_event_name (event), status, phrase);
      break;
    }
}

static void
shut_down (Gateway *gw)
{
  if (gw->shutting_down)
    return;
  gw->shutting_down = TRUE;
  g_clear_handle_id (&gw->retry, g_source_remove);
  nua_shutdown (gw->nua);
}

static gboolean
on_stdin (GIOChannel *channel, GIOCondition condition, gpointer data)
{
  Gateway *gw = data;
  g_autofree char *line = NULL;
  g_auto(GStrv) words = NULL;

  if (g_io_channel_read_line (channel, &line, NULL, NULL, NULL) != G_IO_STATUS_NORMAL)
    {
      shut_down (gw);
      return G_SOURCE_REMOVE;
    }
  words = g_strsplit (g_strstrip (line), " ", 2);
  if (gw->shutting_down || words[0] == NULL)
    return G_SOURCE_CONTINUE;
  if (g_str_equal (words[0], "register"))
    do_register (gw);
  else if (g_str_equal (words[0], "unregister"))
    {
      gw->registering = FALSE;
      g_clear_handle_id (&gw->retry, g_source_remove);
      if (gw->registration != NULL)
        nua_unregister (gw->registration, TAG_END ());
    }
  else if (g_str_equal (words[0], "call") && words[1] != NULL)
    {
      if (gw->call != NULL)
        say ("busy: a call is up");
      else if (!is_sip_uri (words[1]))
        say ("bad uri: %s", words[1]);
      else
        {
          gw->call = nua_handle (gw->nua, NULL, NUTAG_URL (words[1]), SIPTAG_TO_STR (words[1]),
                                 SIPTAG_FROM_STR (gw->aor), TAG_END ());
          keep (gw, gw->call);
          nua_invite (gw->call, TAG_END ());
        }
    }
  else if (g_str_equal (words[0], "bye"))
    {
      if (gw->call != NULL)
        nua_bye (gw->call, TAG_END ());
      else
        say ("no call");
    }
  else if (g_str_equal (words[0], "quit"))
    {
      shut_down (gw);
      return G_SOURCE_REMOVE;
    }
  else
    say ("unknown command: %s", words[0]);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_signal (gpointer data)
{
  shut_down (data);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  g_autofree char *user = NULL, *domain = NULL, *proxy = NULL, *registrar = NULL;
  g_autofree char *listen = NULL, *sdp = NULL;
  int expires = 300, retry_seconds = 30, media_port = 40000;
  GOptionEntry entries[] = {
    { "user", 0, 0, G_OPTION_ARG_STRING, &user, "The gateway's user (username)", "NAME" },
    { "domain", 0, 0, G_OPTION_ARG_STRING, &domain,
      "The domain of From and To (from-domain; default 127.0.0.1)", "HOST" },
    { "proxy", 0, 0, G_OPTION_ARG_STRING, &proxy,
      "Where every request goes (register-proxy, outbound-proxy): the edge's tcp listener", "URL" },
    { "registrar", 0, 0, G_OPTION_ARG_STRING, &registrar,
      "The REGISTER's Request-URI (proxy): the ws server, transport=ws", "URL" },
    { "listen", 0, 0, G_OPTION_ARG_STRING, &listen,
      "Own listener (default sip:127.0.0.1:0;transport=tcp)", "URL" },
    { "expires", 0, 0, G_OPTION_ARG_INT, &expires,
      "Registration expiry (expire-seconds; default 300)", "S" },
    { "retry-seconds", 0, 0, G_OPTION_ARG_INT, &retry_seconds,
      "Register again this long after a failure (retry-seconds; default 30)", "S" },
    { "media-port", 0, 0, G_OPTION_ARG_INT, &media_port,
      "The audio port of our SDP (default 40000; no media flows)", "PORT" },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- a NUA gateway for the tests");
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOChannel) in = NULL;
  Gateway gw = { 0 };
  su_root_t *root;

  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      fprintf (stderr, "nua-gateway: %s (--help for the options)\n", error->message);
      return 2;
    }
  if (argc > 1 || user == NULL || proxy == NULL || registrar == NULL || expires <= 0 ||
      retry_seconds <= 0 || media_port <= 0 || media_port > 65535)
    {
      fprintf (stderr, "nua-gateway: --user, --proxy and --registrar are needed, and numbers "
                       "must be positive (--help for the options)\n");
      return 2;
    }
  if (!is_sip_uri (proxy) || !is_sip_uri (registrar) ||
      (listen != NULL && !is_sip_uri (listen)))
    {
      fprintf (stderr, "nua-gateway: --proxy, --registrar and --listen take sip: URIs, "
                       "e.g. 'sip:127.0.0.1:5080;transport=tcp'\n");
      return 2;
    }
  gw.user = user;
  gw.aor = g_strdup_printf ("<sip:%s@%s>", user, domain != NULL ? domain : "127.0.0.1");
  gw.expires = (guint) expires;
  gw.retry_seconds = (guint) retry_seconds;
  sdp = g_strdup_printf ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                         "t=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", media_port);

  su_init ();
  gw.loop = g_main_loop_new (NULL, FALSE);
  gw.handles = g_ptr_array_new ();
  /* Quiet Sofia's GLib glue unless SOFIA_DEBUG asks for Sofia's logs (as sofia-ws-nua-pbx). */
  if (g_getenv ("SOFIA_DEBUG") == NULL)
    su_log_set_level (su_log_default, 0);
  root = su_glib_root_create (NULL);
  if (g_getenv ("SOFIA_DEBUG") == NULL)
    su_log_set_level (su_log_default, 3);
  su_root_threading (root, 0);
  g_source_attach (su_glib_root_gsource (root), NULL);

  /* NUTAG_OUTBOUND: not behind a NAT, and no OPTIONS keep-alives through the ws server: the
   * Contact stays the listener's (the edge dials it), as FreeSWITCH's does. */
  gw.nua = nua_create (root, on_event, (nua_magic_t *) &gw,
                       NUTAG_URL (listen != NULL ? listen : "sip:127.0.0.1:0;transport=tcp"),
                       NUTAG_PROXY (proxy), NUTAG_REGISTRAR (registrar),
                       NUTAG_OUTBOUND ("no-natify no-options-keepalive no-validate"),
                       SOATAG_USER_SDP_STR (sdp), TAG_END ());
  if (gw.nua == NULL)
    {
      fprintf (stderr, "nua-gateway: nua_create failed (a bad --listen, --proxy or "
                       "--registrar?)\n");
      su_root_destroy (root);
      g_ptr_array_unref (gw.handles);
      g_main_loop_unref (gw.loop);
      g_free (gw.aor);
      su_deinit ();
      return 1;
    }
  nua_get_params (gw.nua, TAG_ANY (), TAG_END ());

  in = g_io_channel_unix_new (0);
  g_io_add_watch (in, G_IO_IN | G_IO_HUP, on_stdin, &gw);
  g_unix_signal_add (SIGTERM, on_signal, &gw);
  g_main_loop_run (gw.loop);

  g_clear_handle_id (&gw.retry, g_source_remove);
  for (guint i = 0; i < gw.handles->len; i++)
    nua_handle_destroy (g_ptr_array_index (gw.handles, i));
  nua_destroy (gw.nua);
  su_root_destroy (root);
  g_ptr_array_unref (gw.handles);
  g_main_loop_unref (gw.loop);
  g_free (gw.aor);
  su_deinit ();
  return gw.status;
}
