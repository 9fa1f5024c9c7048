/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sofia-ws-nua-pbx: a small Sofia NUA program serving browsers both ways, the model for NUA
 * developers using sofia-ws.
 *
 *   sofia-ws-nua-pbx [--listen 'sip:127.0.0.1:5066;transport=ws']
 *
 * Browsers (SIP.js, JsSIP) register on the ws listener; the program answers each REGISTER
 * with 200 and its Contacts, answers calls from browsers, and reads commands on stdin:
 *   call USER           INVITE the browser registered as USER
 *   message USER TEXT   send it a MESSAGE
 *   hangup              BYE the current call
 *   quit
 * It prints one line per event ("listening URL", "registered alice sip:...", "call 200"...).
 *
 * What sofia-ws does for NUA here: sofia_ws_tport_add_nua_listener() adds the listener and
 * routes NUA's requests to ws connections (no LD_PRELOAD needed), so a request to a browser's
 * registered Contact (sip:xyz@abc.invalid;transport=ws) takes the connection that browser
 * opened, and NUA's Contact on ws connections is the listener's, transport=ws. No media here:
 * the SDP is fixed (NUTAG_MEDIA_ENABLE(0)); a real PBX would let NUA's soa or its media server
 * make it. */
#include <sofia-ws/sofia-ws-tport.h>

#include <glib-unix.h>
#include <stdio.h>
#include <string.h>

#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>

#define SDP "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
            "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

typedef struct {
  GMainLoop *loop;
  nua_t *nua;
  GHashTable *contacts;           /* user -> registered Contact URI */
  GPtrArray *handles;             /* handles to destroy at the end */
  nua_handle_t *call;
} Pbx;

static void
keep (Pbx *pbx, nua_handle_t *nh)
{
  if (!g_ptr_array_find (pbx->handles, nh, NULL))
    g_ptr_array_add (pbx->handles, nh);
}

static void
on_event (nua_event_t event, int status, char const *phrase, nua_t *nua, nua_magic_t *magic,
          nua_handle_t *nh, nua_hmagic_t *hmagic, sip_t const *sip, tagi_t tags[])
{
  Pbx *pbx = (Pbx *) magic;

  switch (event)
    {
    case nua_i_register:          /* NUTAG_APPL_METHOD ("REGISTER"): ours to answer */
      {
        su_home_t home[1] = { SU_HOME_INIT (home) };
        const char *user = sip->sip_to->a_url->url_user;

        keep (pbx, nh);
        if (user != NULL && sip->sip_contact != NULL)
          {
            gboolean removing = sip->sip_expires && sip->sip_expires->ex_delta == 0;

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
    case nua_i_invite:            /* a browser calls: answer */
      keep (pbx, nh);
      pbx->call = nh;
      printf ("incoming call from %s@%s\n", sip->sip_from->a_url->url_user,
              sip->sip_from->a_url->url_host);
      nua_respond (nh, SIP_200_OK, SIPTAG_CONTENT_TYPE_STR ("application/sdp"),
                   SIPTAG_PAYLOAD_STR (SDP), TAG_END ());
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

/* A handle towards the browser registered as @user: its request URI is the Contact the
 * browser registered, which names the connection it opened. */
static nua_handle_t *
handle_to (Pbx *pbx, const char *user)
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
                   SIPTAG_FROM_STR ("<sip:pbx@127.0.0.1>"), TAG_END ());
  keep (pbx, nh);
  return nh;
}

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
      (nh = handle_to (pbx, words[1])) != NULL)
    {
      pbx->call = nh;
      nua_invite (nh, SIPTAG_CONTENT_TYPE_STR ("application/sdp"), SIPTAG_PAYLOAD_STR (SDP),
                  TAG_END ());
    }
  else if (g_strv_length (words) == 3 && g_str_equal (words[0], "message") &&
           (nh = handle_to (pbx, words[1])) != NULL)
    nua_message (nh, SIPTAG_CONTENT_TYPE_STR ("text/plain"), SIPTAG_PAYLOAD_STR (words[2]),
                 TAG_END ());
  else if (g_strv_length (words) == 1 && g_str_equal (words[0], "hangup") && pbx->call)
    nua_bye (pbx->call, TAG_END ());
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

int
main (int argc, char **argv)
{
  const char *listen = "sip:127.0.0.1:5066;transport=ws";
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOChannel) in = NULL;
  Pbx pbx = { 0 };
  su_root_t *root;
  tport_t *ws;

  if (argc == 3 && g_str_equal (argv[1], "--listen"))
    listen = argv[2];
  else if (argc != 1)
    {
      fprintf (stderr, "usage: %s [--listen 'sip:127.0.0.1:5066;transport=ws']\n", argv[0]);
      return 2;
    }

  su_init ();
  pbx.loop = g_main_loop_new (NULL, FALSE);
  pbx.contacts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  pbx.handles = g_ptr_array_new ();
  root = su_glib_root_create (NULL);         /* lws and NUA on the default GMainContext */
  su_root_threading (root, 0);               /* NUA's stack in this thread */
  g_source_attach (su_glib_root_gsource (root), NULL);

  pbx.nua = nua_create (root, on_event, (nua_magic_t *) &pbx,
                        NUTAG_URL ("sip:127.0.0.1:0;transport=tcp"),
                        NUTAG_APPL_METHOD ("REGISTER"), NUTAG_ALLOW ("REGISTER"),
                        NUTAG_MEDIA_ENABLE (0), TAG_END ());
  /* The listener, and routing of NUA's requests to ws connections. */
  ws = pbx.nua ? sofia_ws_tport_add_nua_listener (pbx.nua, listen, &error, TAG_END ()) : NULL;
  if (ws == NULL)
    {
      fprintf (stderr, "sofia-ws-nua-pbx: %s\n", error ? error->message : "nua_create failed");
      return 1;
    }
  printf ("listening sip:%s:%s;transport=ws\n", tport_name (ws)->tpn_host,
          tport_name (ws)->tpn_port);
  fflush (stdout);

  in = g_io_channel_unix_new (0);
  g_io_add_watch (in, G_IO_IN | G_IO_HUP, on_stdin, &pbx);
  g_unix_signal_add (SIGTERM, on_signal, &pbx);
  g_main_loop_run (pbx.loop);

  for (guint i = 0; i < pbx.handles->len; i++)
    nua_handle_destroy (g_ptr_array_index (pbx.handles, i));
  nua_destroy (pbx.nua);
  su_root_destroy (root);
  g_ptr_array_unref (pbx.handles);
  g_hash_table_unref (pbx.contacts);
  g_main_loop_unref (pbx.loop);
  su_deinit ();
  return 0;
}
