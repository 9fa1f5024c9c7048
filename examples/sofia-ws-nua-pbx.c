/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sofia-ws-nua-pbx: a small Sofia NUA program serving browsers both ways, the model for NUA
 * developers using sofia-ws.
 *
 *   sofia-ws-nua-pbx [--listen 'sip:127.0.0.1:5066;transport=ws']
 *                    [--listen 'sips:127.0.0.1:5067;transport=wss'
 *                     --tls-certificate cert.pem --tls-key key.pem] [--allowed-origins LIST]
 *
 * Browsers (SIP.js, JsSIP) register on the ws and wss listeners; the program answers each
 * REGISTER with 200 and its Contacts. A call from a browser to a registered user is bridged
 * (a B2BUA): the program calls that user's browser with the caller's SDP, relays the answer,
 * and a BYE on one leg ends the other. It answers any other call itself, and reads commands
 * on stdin:
 *   call USER           INVITE the browser registered as USER
 *   message USER TEXT   send it a MESSAGE
 *   hangup              BYE the current call, and both legs of the bridged call
 *   quit
 * It prints one line per event ("listening URL", "registered alice sip:...", "call 200",
 * "bridged alice -> bob", "call ended by alice"...).
 *
 * What sofia-ws does for NUA here: sofia_ws_tport_add_nua_listener() adds the listener and
 * routes NUA's requests to ws connections (no LD_PRELOAD needed), so a request to a browser's
 * registered Contact (sip:xyz@abc.invalid;transport=ws) takes the connection that browser
 * opened, and NUA's Contact on ws connections is the listener's, transport=ws. No media here
 * (NUTAG_MEDIA_ENABLE(0)): a bridged call's SDP passes through as it is, so the browsers send
 * their media to each other, and the calls the program answers itself get a fixed SDP; a real
 * PBX would let NUA's soa or its media server make it. */
#include <sofia-ws/sofia-ws-tport.h>

#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/su_log.h>

#define SDP "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
            "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

enum { CALLER, CALLEE };

/* A call between two browsers through the program (a B2BUA): the caller's leg (its INVITE to
 * us) and the callee's leg (our INVITE to the callee's registered Contact), each a NUA handle
 * with a dialog of its own. */
typedef struct {
  nua_handle_t *leg[2];           /* [CALLER], [CALLEE] */
  char *user[2];
  gboolean answered;              /* the callee's 2xx went to the caller */
  gboolean ending;                /* a leg has ended, or is being ended: so is the other */
  gboolean terminated[2];
} Bridge;

typedef struct {
  GMainLoop *loop;
  nua_t *nua;
  GHashTable *contacts;           /* user -> registered Contact URI */
  GPtrArray *handles;             /* handles to destroy at the end */
  nua_handle_t *call;             /* the call the program made or answered itself */
  Bridge *bridge;                 /* the bridged call: one at a time */
} Pbx;

static void
keep (Pbx *pbx, nua_handle_t *nh)
{
  if (!g_ptr_array_find (pbx->handles, nh, NULL))
    g_ptr_array_add (pbx->handles, nh);
}

/* A handle towards the browser registered as @user: its request URI is the Contact the
 * browser registered, which names the connection it opened. */
static nua_handle_t *
handle_to (Pbx *pbx, const char *user, const char *from)
{
  const char *contact = g_hash_table_lookup (pbx->contacts, user);
  g_autofree char *to = NULL;
  nua_handle_t *nh;

  if (contact == NULL)
    {
      printf ("%s is not registered\n", user);
      return NULL;
    }
  to = g_strdup_printf ("<sip:%s@127.0.0.1>", user);
  nh = nua_handle (pbx->nua, NULL, NUTAG_URL (contact), SIPTAG_TO_STR (to),
                   SIPTAG_FROM_STR (from), TAG_END ());
  keep (pbx, nh);
  return nh;
}

/* ---- bridged calls ------------------------------------------------------------------------- */

/* A browser calls @callee, a registered user: the program calls the callee's browser with the
 * caller's SDP; bridge_event() relays the answer. */
static void
bridge_start (Pbx *pbx, nua_handle_t *nh, sip_t const *sip, const char *callee)
{
  url_t const *from_url = sip->sip_from->a_url;
  const char *caller = from_url->url_user ? from_url->url_user : "anonymous";
  g_autofree char *from = NULL;
  Bridge *bridge;

  if (sip->sip_payload == NULL)   /* browsers offer in the INVITE; ACKs are not relayed */
    {
      printf ("not bridged: %s calls %s without an SDP offer\n", caller, callee);
      nua_respond (nh, SIP_488_NOT_ACCEPTABLE, TAG_END ());
      return;
    }
  if (pbx->bridge != NULL)
    {
      printf ("busy: %s calls %s during the bridged call\n", caller, callee);
      nua_respond (nh, SIP_486_BUSY_HERE, TAG_END ());
      return;
    }
  bridge = g_new0 (Bridge, 1);
  from = g_strdup_printf ("<sip:%s@%s>", caller, from_url->url_host);
  bridge->leg[CALLER] = nh;
  bridge->leg[CALLEE] = handle_to (pbx, callee, from);
  bridge->user[CALLER] = g_strdup (caller);
  bridge->user[CALLEE] = g_strdup (callee);
  pbx->bridge = bridge;
  printf ("calling %s for %s\n", callee, caller);
  nua_invite (bridge->leg[CALLEE], SIPTAG_CONTENT_TYPE (sip->sip_content_type),
              SIPTAG_PAYLOAD (sip->sip_payload), TAG_END ());
}

/* Ends the leg @side as its state requires: BYE once answered, else CANCEL towards the callee
 * or the final response @status to the caller. */
static void
bridge_end_leg (Bridge *bridge, int side, int status, const char *phrase)
{
  if (bridge->terminated[side])
    return;
  if (bridge->answered)
    nua_bye (bridge->leg[side], TAG_END ());
  else if (side == CALLEE)
    nua_cancel (bridge->leg[side], TAG_END ());
  else
    nua_respond (bridge->leg[side], status, phrase, TAG_END ());
}

/* The `hangup` command: both browsers see the call ended by the other side, the program. */
static void
bridge_hang_up (Bridge *bridge)
{
  if (bridge->ending)
    return;
  printf ("call ended by the pbx\n");
  bridge->ending = TRUE;
  bridge_end_leg (bridge, CALLEE, 0, NULL);
  bridge_end_leg (bridge, CALLER, SIP_480_TEMPORARILY_UNAVAILABLE);
}

static void
bridge_free (Pbx *pbx)
{
  g_free (pbx->bridge->user[CALLER]);
  g_free (pbx->bridge->user[CALLEE]);
  g_clear_pointer (&pbx->bridge, g_free);
}

/* The events of the bridged call's legs; FALSE for those handled as for any call (the BYE's
 * response, a MESSAGE in the dialog...). */
static gboolean
bridge_event (Pbx *pbx, nua_event_t event, int status, char const *phrase, nua_handle_t *nh,
              sip_t const *sip, tagi_t tags[])
{
  Bridge *bridge = pbx->bridge;
  int side = nh == bridge->leg[CALLER] ? CALLER : nh == bridge->leg[CALLEE] ? CALLEE : -1;
  int other = side == CALLER ? CALLEE : CALLER;
  int state = nua_callstate_init;

  if (side < 0)
    return FALSE;
  switch (event)
    {
    case nua_r_invite:            /* the callee's answer: relayed to the caller, SDP and all */
      if (status <= 100)
        return TRUE;
      if (bridge->ending)
        {
          if (status < 300)       /* it answered as the call ended */
            nua_bye (nh, TAG_END ());
          return TRUE;
        }
      if (status >= 300)
        {
          printf ("call to %s failed: %d %s\n", bridge->user[CALLEE], status, phrase);
          bridge->ending = TRUE;
        }
      else if (status >= 200)
        bridge->answered = TRUE;
      /* nua_respond() keeps the phrase's pointer, and the event's goes with the event: a
       * phrase of Sofia's own, static. */
      nua_respond (bridge->leg[CALLER], status,
                   sip_status_phrase (status) ? sip_status_phrase (status) : "Relayed",
                   TAG_IF (sip && sip->sip_payload, SIPTAG_CONTENT_TYPE (sip->sip_content_type)),
                   TAG_IF (sip && sip->sip_payload, SIPTAG_PAYLOAD (sip->sip_payload)),
                   TAG_END ());
      return TRUE;
    case nua_i_ack:               /* the caller's ACK: both legs are up */
      printf ("bridged %s -> %s\n", bridge->user[CALLER], bridge->user[CALLEE]);
      return TRUE;
    case nua_i_invite:            /* a re-INVITE: this example does not relay them */
      nua_respond (nh, SIP_488_NOT_ACCEPTABLE, TAG_END ());
      return TRUE;
    case nua_i_cancel:
    case nua_i_bye:
      printf ("call %s by %s\n", event == nua_i_bye ? "ended" : "cancelled", bridge->user[side]);
      bridge->ending = TRUE;
      bridge_end_leg (bridge, other, 0, NULL);
      return TRUE;
    case nua_i_state:
      tl_gets (tags, NUTAG_CALLSTATE_REF (state), TAG_END ());
      if (state != nua_callstate_terminated)
        return TRUE;
      bridge->terminated[side] = TRUE;
      if (!bridge->ending)        /* the leg failed (a lost connection, no ACK...) */
        {
          printf ("call ended: %s's leg failed\n", bridge->user[side]);
          bridge->ending = TRUE;
          bridge_end_leg (bridge, other, SIP_480_TEMPORARILY_UNAVAILABLE);
        }
      if (bridge->terminated[other])
        bridge_free (pbx);
      return TRUE;
    default:
      return FALSE;
    }
}

/* ---- events -------------------------------------------------------------------------------- */

static void
on_event (nua_event_t event, int status, char const *phrase, nua_t *nua, nua_magic_t *magic,
          nua_handle_t *nh, nua_hmagic_t *hmagic, sip_t const *sip, tagi_t tags[])
{
  Pbx *pbx = (Pbx *) magic;

  if (pbx->bridge != NULL && bridge_event (pbx, event, status, phrase, nh, sip, tags))
    {
      fflush (stdout);
      return;
    }
  switch (event)
    {
    case nua_i_register:          /* NUTAG_APPL_METHOD ("REGISTER"): ours to answer */
      {
        su_home_t home[1] = { SU_HOME_INIT (home) };
        const char *user = sip->sip_to->a_url->url_user;

        keep (pbx, nh);
        if (user != NULL && sip->sip_contact != NULL)
          {
            /* expires=0 on the Contact (SIP.js), else Expires: 0 (JsSIP) */
            const char *expires = sip->sip_contact->m_expires;
            gboolean removing = expires ? strtoul (expires, NULL, 10) == 0
                                        : sip->sip_expires && sip->sip_expires->ex_delta == 0;

            if (removing)
              g_hash_table_remove (pbx->contacts, user);
            else
              g_hash_table_insert (pbx->contacts, g_strdup (user),
                                   g_strdup (url_as_string (home, sip->sip_contact->m_url)));
            printf ("%s %s %s\n", removing ? "unregistered" : "registered", user,
                    url_as_string (home, sip->sip_contact->m_url));
          }
        /* NUTAG_WITH_THIS: the response is to the request of this event. */
        nua_respond (nh, SIP_200_OK, SIPTAG_CONTACT (sip->sip_contact),
                     NUTAG_WITH_THIS (nua), TAG_END ());
        su_home_deinit (home);
      }
      break;
    case nua_i_invite:            /* a browser calls: a registered user, else the program */
      {
        const char *callee = sip->sip_request->rq_url->url_user;

        keep (pbx, nh);
        printf ("incoming call from %s@%s\n", sip->sip_from->a_url->url_user,
                sip->sip_from->a_url->url_host);
        if (callee != NULL && g_hash_table_contains (pbx->contacts, callee))
          bridge_start (pbx, nh, sip, callee);
        else
          {
            pbx->call = nh;
            nua_respond (nh, SIP_200_OK, SIPTAG_CONTENT_TYPE_STR ("application/sdp"),
                         SIPTAG_PAYLOAD_STR (SDP), TAG_END ());
          }
      }
      break;
    case nua_i_message:
      keep (pbx, nh);
      printf ("message: %.*s\n", sip->sip_payload ? (int) sip->sip_payload->pl_len : 0,
              sip->sip_payload ? sip->sip_payload->pl_data : "");
      break;
    case nua_i_bye:
      printf ("hung up by the browser\n");
      break;
    case nua_r_invite:
    case nua_r_message:
    case nua_r_bye:
      if (status >= 200)
        printf ("%s %d %s\n", event == nua_r_invite ? "call" :
                              event == nua_r_message ? "message-sent" : "hangup", status, phrase);
      break;
    case nua_i_state:
      {
        int state = nua_callstate_init;

        tl_gets (tags, NUTAG_CALLSTATE_REF (state), TAG_END ());
        if (state == nua_callstate_terminated && nh == pbx->call)
          pbx->call = NULL;
      }
      break;
    case nua_r_shutdown:
      if (status >= 200)
        g_main_loop_quit (pbx->loop);
      break;
    default:
      break;
    }
  fflush (stdout);
}

/* ---- commands ------------------------------------------------------------------------------ */

static gboolean
on_stdin (GIOChannel *channel, GIOCondition condition, gpointer data)
{
  Pbx *pbx = data;
  g_autofree char *line = NULL;
  g_auto(GStrv) words = NULL;
  nua_handle_t *nh;

  if (g_io_channel_read_line (channel, &line, NULL, NULL, NULL) != G_IO_STATUS_NORMAL)
    {
      nua_shutdown (pbx->nua);
      return G_SOURCE_REMOVE;
    }
  words = g_strsplit (g_strstrip (line), " ", 3);
  if (g_strv_length (words) >= 2 && g_str_equal (words[0], "call") &&
      (nh = handle_to (pbx, words[1], "<sip:pbx@127.0.0.1>")) != NULL)
    {
      pbx->call = nh;
      nua_invite (nh, SIPTAG_CONTENT_TYPE_STR ("application/sdp"), SIPTAG_PAYLOAD_STR (SDP),
                  TAG_END ());
    }
  else if (g_strv_length (words) == 3 && g_str_equal (words[0], "message") &&
           (nh = handle_to (pbx, words[1], "<sip:pbx@127.0.0.1>")) != NULL)
    nua_message (nh, SIPTAG_CONTENT_TYPE_STR ("text/plain"), SIPTAG_PAYLOAD_STR (words[2]),
                 TAG_END ());
  else if (g_strv_length (words) == 1 && g_str_equal (words[0], "hangup"))
    {
      if (pbx->call != NULL)
        nua_bye (pbx->call, TAG_END ());
      if (pbx->bridge != NULL)
        bridge_hang_up (pbx->bridge);
    }
  else if (g_strv_length (words) == 1 && g_str_equal (words[0], "quit"))
    {
      nua_shutdown (pbx->nua);
      return G_SOURCE_REMOVE;
    }
  fflush (stdout);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_signal (gpointer data)
{
  nua_shutdown (((Pbx *) data)->nua);
  return G_SOURCE_REMOVE;
}

/* ---- main ---------------------------------------------------------------------------------- */

static gboolean
is_wss (const char *url)
{
  g_autofree char *lower = g_ascii_strdown (url, -1);

  return strstr (lower, "transport=wss") != NULL;
}

int
main (int argc, char **argv)
{
  g_auto(GStrv) listen = NULL;
  g_autofree char *certificate = NULL, *key = NULL, *origins = NULL;
  GOptionEntry entries[] = {
    { "listen", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &listen,
      "Listen on URL: 'sip:HOST:PORT;transport=ws' or 'sips:HOST:PORT;transport=wss' "
      "(repeatable; default sip:127.0.0.1:5066;transport=ws)", "URL" },
    { "tls-certificate", 0, 0, G_OPTION_ARG_FILENAME, &certificate, "PEM certificate for wss",
      "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &key, "PEM private key for wss", "FILE" },
    { "allowed-origins", 0, 0, G_OPTION_ARG_STRING, &origins,
      "Origins accepted in WebSocket handshakes (comma-separated; default: any)", "LIST" },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- a NUA PBX for browsers");
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOChannel) in = NULL;
  Pbx pbx = { 0 };
  su_root_t *root;

  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      fprintf (stderr, "sofia-ws-nua-pbx: %s (--help for the options)\n", error->message);
      return 2;
    }
  if (argc > 1)
    {
      fprintf (stderr, "sofia-ws-nua-pbx: unexpected argument \"%s\" (--help for the options)\n",
               argv[1]);
      return 2;
    }
  if (listen == NULL)
    listen = g_strdupv ((char *[]) { "sip:127.0.0.1:5066;transport=ws", NULL });
  for (char **url = listen; *url != NULL; url++)
    if (is_wss (*url) && (certificate == NULL || key == NULL))
      {
        fprintf (stderr, "sofia-ws-nua-pbx: %s needs --tls-certificate and --tls-key\n", *url);
        return 2;
      }

  su_init ();
  pbx.loop = g_main_loop_new (NULL, FALSE);
  pbx.contacts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  pbx.handles = g_ptr_array_new ();
  /* Sofia's GLib glue announces its port at Sofia's default log level ("su_source_port_create()
   * returns ..."): quiet unless SOFIA_DEBUG asks for Sofia's logs. */
  if (g_getenv ("SOFIA_DEBUG") == NULL)
    su_log_set_level (su_log_default, 0);
  root = su_glib_root_create (NULL);         /* lws and NUA on the default GMainContext */
  if (g_getenv ("SOFIA_DEBUG") == NULL)
    su_log_set_level (su_log_default, 3);    /* Sofia's default: the module's warnings show */
  su_root_threading (root, 0);               /* NUA's stack in this thread */
  g_source_attach (su_glib_root_gsource (root), NULL);

  /* NUTAG_MIN_SE: JsSIP asks for 90 s session timers, RFC 4028's floor; NUA's default of
   * 120 s would refuse its calls with 422. */
  pbx.nua = nua_create (root, on_event, (nua_magic_t *) &pbx,
                        NUTAG_URL ("sip:127.0.0.1:0;transport=tcp"),
                        NUTAG_APPL_METHOD ("REGISTER"), NUTAG_ALLOW ("REGISTER"),
                        NUTAG_MEDIA_ENABLE (0), NUTAG_MIN_SE (90), TAG_END ());
  if (pbx.nua == NULL)
    {
      fprintf (stderr, "sofia-ws-nua-pbx: nua_create failed\n");
      return 1;
    }
  for (char **url = listen; *url != NULL; url++)
    {
      /* The listener, and routing of NUA's requests to ws connections. */
      tport_t *ws = sofia_ws_tport_add_nua_listener (pbx.nua, *url, &error,
                                                     TAG_IF (certificate,
                                                             WSTAG_TLS_CERTIFICATE (certificate)),
                                                     TAG_IF (key, WSTAG_TLS_KEY (key)),
                                                     TAG_IF (origins,
                                                             WSTAG_ALLOWED_ORIGINS (origins)),
                                                     TAG_END ());
      g_autofree char *proto = NULL;

      if (ws == NULL)
        {
          fprintf (stderr, "sofia-ws-nua-pbx: cannot listen on %s: %s\n", *url, error->message);
          return 1;
        }
      proto = g_ascii_strdown (tport_name (ws)->tpn_proto, -1);
      printf ("listening sip:%s:%s;transport=%s\n", tport_name (ws)->tpn_host,
              tport_name (ws)->tpn_port, proto);
    }
  fflush (stdout);

  in = g_io_channel_unix_new (0);
  g_io_add_watch (in, G_IO_IN | G_IO_HUP, on_stdin, &pbx);
  g_unix_signal_add (SIGTERM, on_signal, &pbx);
  g_main_loop_run (pbx.loop);

  for (guint i = 0; i < pbx.handles->len; i++)
    nua_handle_destroy (g_ptr_array_index (pbx.handles, i));
  if (pbx.bridge != NULL)
    bridge_free (&pbx);
  nua_destroy (pbx.nua);
  su_root_destroy (root);
  g_ptr_array_unref (pbx.handles);
  g_hash_table_unref (pbx.contacts);
  g_main_loop_unref (pbx.loop);
  su_deinit ();
  return 0;
}
