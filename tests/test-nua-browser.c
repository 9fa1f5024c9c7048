/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A Sofia NUA program serving browsers both ways: SIP.js (tests/interop/node/browser.mjs on
 * Node) registers on the program's ws listener, and NUA then sends it MESSAGEs by each way of
 * naming the browser's connection (its address with transport=ws as request URI, Route or
 * proxy; its .invalid Contact; the ws-flow token), calls it (INVITE/200/ACK, re-INVITE, BYE),
 * answers its calls, hangs up and is hung up on; a request to a browser that has gone fails at
 * once with 503, without dialling its port.
 *
 * Run twice by meson: linked (libsofia-ws loads the module, sofia_ws_tport_add_nua_listener()
 * routes NUA's requests through it) and with the module preloaded (LD_PRELOAD). */
#define _GNU_SOURCE 1
#include <sofia-ws/sofia-ws-tport.h>

#include <dlfcn.h>
#include <string.h>

#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_tag.h>

#include "support/registrar-peer.h"

#define SDP "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
            "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

/* In a test's data: the browser runs JsSIP rather than SIP.js. */
#define JSSIP 0x100

static gboolean
on_timeout (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Waits (@seconds at most, or until *@eof when @eof is not NULL) for an item containing
 * @needle in @queue, and takes it. */
static char *
wait_in (GQueue *queue, const gboolean *eof, const char *needle, guint seconds)
{
  gboolean expired = FALSE;
  guint timer = g_timeout_add_seconds (seconds, on_timeout, &expired);

  for (;;)
    {
      for (GList *l = queue->head; l != NULL; l = l->next)
        if (strstr (l->data, needle) != NULL)
          {
            char *found = l->data;

            g_queue_delete_link (queue, l);
            g_source_remove (timer);
            return found;
          }
      if (expired || (eof != NULL && *eof))
        {
          for (GList *l = queue->head; l != NULL; l = l->next)
            g_printerr ("# seen: %s\n", (char *) l->data);
          g_error ("no \"%s\" within %u s", needle, seconds);
        }
      g_main_context_iteration (NULL, TRUE);
    }
}

/* A program the test talks to by lines: the browser (browser.mjs) or the example. */
typedef struct {
  const char *name;               /* in verbose output */
  GSubprocess *process;
  GDataInputStream *out;
  GQueue lines;
  gboolean reading;
  gboolean eof;
} Peer;

static void peer_read (Peer *peer);

static void
on_peer_line (GObject *source, GAsyncResult *result, gpointer data)
{
  Peer *peer = data;
  char *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result,
                                                          NULL, NULL);

  peer->reading = FALSE;
  if (line == NULL)
    {
      peer->eof = TRUE;
      return;
    }
  if (g_test_verbose ())
    g_printerr ("# %s: %s\n", peer->name, line);
  g_queue_push_tail (&peer->lines, line);
  peer_read (peer);
}

static void
peer_read (Peer *peer)
{
  peer->reading = TRUE;
  g_data_input_stream_read_line_async (peer->out, G_PRIORITY_DEFAULT, NULL, on_peer_line, peer);
}

static void
peer_start (Peer *peer, const char *name, GPtrArray *argv, gboolean preload)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDIN_PIPE);
  if (!preload)
    g_subprocess_launcher_unsetenv (launcher, "LD_PRELOAD");
  peer->name = name;
  g_ptr_array_add (argv, NULL);
  peer->process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata,
                                                &error);
  g_assert_no_error (error);
  peer->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (peer->process));
  peer_read (peer);
}

static void
peer_say (Peer *peer, const char *command)
{
  g_autofree char *line = g_strconcat (command, "\n", NULL);
  g_autoptr(GError) error = NULL;

  g_output_stream_write_all (g_subprocess_get_stdin_pipe (peer->process), line, strlen (line),
                             NULL, NULL, &error);
  g_assert_no_error (error);
}

/* Waits (60 s at most: the program may run under valgrind) for a line containing @needle. */
static char *
peer_expect (Peer *peer, const char *needle)
{
  return wait_in (&peer->lines, &peer->eof, needle, 60);
}

static void
peer_stop (Peer *peer)
{
  g_autoptr(GError) error = NULL;

  peer_say (peer, "quit");
  while (!peer->eof || peer->reading)
    g_main_context_iteration (NULL, TRUE);
  g_subprocess_wait_check (peer->process, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&peer->out);
  g_clear_object (&peer->process);
  g_queue_clear_full (&peer->lines, g_free);
}

typedef struct {
  su_root_t *root;
  nua_t *nua;
  tport_t *ws;
  char *ws_port;
  GPtrArray *handles;
  GQueue nua_events;              /* "r_message 200 OK", "i_invite", "state terminated"... */
  gboolean shutdown_done;

  Peer browser;                   /* browser.mjs: its lines are JSON events */

  /* What the REGISTER showed. */
  char *contact;                  /* sip:xyz@abc.invalid;transport=ws */
  char *address;                  /* sip:127.0.0.1:PORT;transport=ws */
  char *flow;                     /* sip:127.0.0.1:WSPORT;transport=ws;lr;ws-flow=... */
  nua_handle_t *call;             /* the call of the test */
} Fixture;

static void
on_nua_event (nua_event_t event, int status, char const *phrase, nua_t *nua,
              nua_magic_t *magic, nua_handle_t *nh, nua_hmagic_t *hmagic, sip_t const *sip,
              tagi_t tags[])
{
  Fixture *f = (Fixture *) magic;

  switch (event)
    {
    case nua_i_register:
      {
        g_autoptr(GError) error = NULL;
        sip_via_t const *via = sip->sip_via;
        su_home_t home[1] = { SU_HOME_INIT (home) };

        g_ptr_array_add (f->handles, nh);
        g_clear_pointer (&f->contact, g_free);
        g_clear_pointer (&f->address, g_free);
        g_clear_pointer (&f->flow, g_free);
        g_assert_nonnull (sip->sip_contact);
        f->contact = g_strdup (url_as_string (home, sip->sip_contact->m_url));
        su_home_deinit (home);
        f->address = g_strdup_printf ("sip:%s:%s;transport=ws", via->v_received, via->v_rport);
        f->flow = sofia_ws_tport_request_flow_uri (sip, &error);
        g_assert_no_error (error);
        nua_respond (nh, 200, "OK", SIPTAG_CONTACT (sip->sip_contact), NUTAG_WITH_THIS (nua),
                     TAG_END ());
        g_queue_push_tail (&f->nua_events, g_strdup ("i_register"));
      }
      break;
    case nua_i_invite:
      g_ptr_array_add (f->handles, nh);
      f->call = nh;
      g_queue_push_tail (&f->nua_events, g_strdup ("i_invite"));
      nua_respond (nh, 200, "OK", SIPTAG_CONTENT_TYPE_STR ("application/sdp"),
                   SIPTAG_PAYLOAD_STR (SDP), TAG_END ());
      break;
    case nua_i_message:
    case nua_i_bye:
      if (event == nua_i_message && !g_ptr_array_find (f->handles, nh, NULL))
        g_ptr_array_add (f->handles, nh);
      g_queue_push_tail (&f->nua_events, g_strdup (nua_event_name (event)));
      break;
    case nua_i_state:
      {
        int state = -1;

        tl_gets (tags, NUTAG_CALLSTATE_REF (state), TAG_END ());
        g_queue_push_tail (&f->nua_events,
                           g_strdup_printf ("state %s", nua_callstate_name (state)));
      }
      break;
    case nua_r_message:
    case nua_r_invite:
    case nua_r_bye:
    case nua_r_notify:
      if (status >= 200)
        g_queue_push_tail (&f->nua_events,
                           g_strdup_printf ("%s %d %s", nua_event_name (event), status, phrase));
      break;
    case nua_r_shutdown:
      if (status >= 200)
        f->shutdown_done = TRUE;
      break;
    default:
      break;
    }
}

/* ---- the browser --------------------------------------------------------------------------- */

static void
browser_expect (Fixture *f, const char *needle)
{
  g_free (wait_in (&f->browser.lines, &f->browser.eof, needle, 10));
}

static void
nua_expect (Fixture *f, const char *needle)
{
  g_free (wait_in (&f->nua_events, NULL, needle, 10));
}

/* ---- fixture ------------------------------------------------------------------------------- */

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autofree char *modules = g_test_build_filename (G_TEST_DIST, "interop", "node",
                                                    "node_modules", "sip.js", NULL);
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "interop", "node",
                                                   "browser.mjs", NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;

  memset (f, 0, sizeof *f);
  if (!g_file_test (modules, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("tests/interop/node has no node_modules: run `npm ci` there (./run test does)");
      return;
    }
  f->handles = g_ptr_array_new ();
  f->root = su_glib_root_create (NULL);
  su_root_threading (f->root, 0);
  g_source_attach (su_glib_root_gsource (f->root), NULL);
  f->nua = nua_create (f->root, on_nua_event, (nua_magic_t *) f,
                       NUTAG_URL ("sip:127.0.0.1:0;transport=tcp"),
                       NUTAG_APPL_METHOD ("REGISTER"),
                       NUTAG_ALLOW ("REGISTER"),
                       NUTAG_MEDIA_ENABLE (0),
                       TAG_END ());
  g_assert_nonnull (f->nua);
  /* Linked: this also routes NUA's requests through the module (it checks it can). */
  f->ws = sofia_ws_tport_add_nua_listener (f->nua, "sip:127.0.0.1:0;transport=ws", &error,
                                           TAG_END ());
  g_assert_no_error (error);
  g_assert_nonnull (f->ws);
  f->ws_port = g_strdup (tport_name (f->ws)->tpn_port);

  /* The browser is Node, not a Sofia program: no LD_PRELOAD. */
  g_ptr_array_add (argv, g_strdup ("node"));
  g_ptr_array_add (argv, g_steal_pointer (&script));
  g_ptr_array_add (argv, g_strdup ("--server"));
  g_ptr_array_add (argv, g_strdup_printf ("ws://127.0.0.1:%s/", f->ws_port));
  g_ptr_array_add (argv, g_strdup ("--user"));
  g_ptr_array_add (argv, g_strdup ("alice"));
  g_ptr_array_add (argv, g_strdup ("--timeout"));
  g_ptr_array_add (argv, g_strdup ("60"));
  g_ptr_array_add (argv, g_strdup ("--lib"));
  g_ptr_array_add (argv, g_strdup (GPOINTER_TO_INT (data) & JSSIP ? "jssip" : "sipjs"));
  peer_start (&f->browser, "browser", argv, FALSE);
  nua_expect (f, "i_register");
  browser_expect (f, "\"event\":\"registered\",\"status\":200");
  g_assert_true (g_str_has_suffix (f->contact, ".invalid;transport=ws"));
  g_assert_true (strstr (f->flow, ";ws-flow=") != NULL);
}

static void
browser_quit (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  if (f->browser.process == NULL || f->browser.eof)
    return;
  peer_say (&f->browser, "quit");
  while (!f->browser.eof)
    g_main_context_iteration (NULL, TRUE);
  g_subprocess_wait (f->browser.process, NULL, &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  if (f->nua == NULL)
    return;
  browser_quit (f);
  while (f->browser.reading)
    g_main_context_iteration (NULL, TRUE);
  g_clear_object (&f->browser.out);
  g_clear_object (&f->browser.process);
  for (guint i = 0; i < f->handles->len; i++)
    nua_handle_destroy (g_ptr_array_index (f->handles, i));
  g_ptr_array_unref (f->handles);
  nua_shutdown (f->nua);
  while (!f->shutdown_done)
    g_main_context_iteration (NULL, TRUE);
  nua_destroy (f->nua);
  su_root_destroy (f->root);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_queue_clear_full (&f->nua_events, g_free);
  g_queue_clear_full (&f->browser.lines, g_free);
  g_free (f->contact);
  g_free (f->address);
  g_free (f->flow);
  g_free (f->ws_port);
}

/* ---- MESSAGE by each way of naming the browser ---------------------------------------------- */

typedef enum { BY_REQUEST_URI, BY_ROUTE, BY_PROXY, BY_CONTACT, BY_FLOW_ROUTE, BY_FLOW_URI } By;

static nua_handle_t *
send_message (Fixture *f, By by, const char *body)
{
  const char *uri = "sip:alice@127.0.0.1";
  g_autofree char *route = NULL;
  g_autofree char *flow_uri = NULL;
  const char *proxy = NULL;
  nua_handle_t *nh;

  switch (by)
    {
    case BY_REQUEST_URI:
      /* The user part too: SIP.js answers 404 to a request URI without its user. */
      flow_uri = g_strdup_printf ("sip:alice@%s", f->address + 4);
      uri = flow_uri;
      break;
    case BY_ROUTE: route = g_strdup_printf ("<%s;lr>", f->address); break;
    case BY_PROXY: proxy = f->address; break;
    case BY_CONTACT: uri = f->contact; break;
    case BY_FLOW_ROUTE: route = g_strdup_printf ("<%s>", f->flow); break;
    case BY_FLOW_URI:
      flow_uri = g_strdup_printf ("sip:alice@127.0.0.1;%s", strstr (f->flow, "ws-flow="));
      uri = flow_uri;
      break;
    default: g_assert_not_reached ();
    }
  nh = nua_handle (f->nua, NULL, NUTAG_URL (uri), SIPTAG_TO_STR ("<sip:alice@127.0.0.1>"),
                   SIPTAG_FROM_STR ("<sip:pbx@127.0.0.1>"), TAG_END ());
  g_ptr_array_add (f->handles, nh);
  if (proxy != NULL)
    nua_set_hparams (nh, NUTAG_PROXY (proxy), TAG_END ());
  nua_message (nh, SIPTAG_CONTENT_TYPE_STR ("text/plain"), SIPTAG_PAYLOAD_STR (body),
               TAG_IF (route != NULL, SIPTAG_ROUTE_STR (route)), TAG_END ());
  return nh;
}

static void
test_message (Fixture *f, gconstpointer data)
{
  By by = GPOINTER_TO_INT (data) & 0xff;
  g_autofree char *body = g_strdup_printf ("hello alice, by way %d", by);
  g_autofree char *seen = g_strdup_printf ("\"body\":\"%s\"", body);

  if (f->nua == NULL)
    return;
  send_message (f, by, body);
  nua_expect (f, "r_message 200");
  browser_expect (f, seen);
}

/* Sofia's log lines while a test captures them (the module's log has no logger of its own:
 * its lines go to Sofia's default one), still passed on to the default logger. */
static struct {
  GString *lines;
  su_logger_f *logger;
  void *stream;
} sofia_log;

static void
on_sofia_log (void *stream, char const *format, va_list ap)
{
  va_list copy;

  va_copy (copy, ap);
  g_string_append_vprintf (sofia_log.lines, format, copy);
  va_end (copy);
  if (sofia_log.logger != NULL)
    sofia_log.logger (sofia_log.stream, format, ap);
}

static void
sofia_log_capture (void)
{
  sofia_log.lines = g_string_new (NULL);
  sofia_log.logger = su_log_default->log_logger;
  sofia_log.stream = su_log_default->log_stream;
  su_log_redirect (su_log_default, on_sofia_log, NULL);
}

static void
sofia_log_release (void)
{
  su_log_redirect (su_log_default, sofia_log.logger, sofia_log.stream);
  g_string_free (g_steal_pointer (&sofia_log.lines), TRUE);
}

/* The browser went away: a request to it fails at once with 503, whatever names it, no
 * connection is dialled to its old port (NTA says "No transport": the module gave it none),
 * and the module's log (level 3, shown by default) says why. */
static void
test_gone (Fixture *f, gconstpointer data)
{
  if (f->nua == NULL)
    return;
  browser_quit (f);
  /* Let the listener see the close. */
  {
    gboolean expired = FALSE;

    g_timeout_add (500, on_timeout, &expired);
    while (!expired)
      g_main_context_iteration (NULL, TRUE);
  }
  sofia_log_capture ();
  for (By by = BY_REQUEST_URI; by <= BY_FLOW_URI; by++)
    {
      gint64 start = g_get_monotonic_time ();

      g_string_truncate (sofia_log.lines, 0);
      send_message (f, by, "anyone there?");
      nua_expect (f, "r_message 503 No transport");
      g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC);
      /* "tport_ws: request to host x7q2.invalid fails: the WebSocket connection it names
       * closed 0.5 s ago; a client's port is never dialled" */
      g_assert_nonnull (strstr (sofia_log.lines->str, "tport_ws: request to "));
      g_assert_nonnull (strstr (sofia_log.lines->str,
                                " fails: the WebSocket connection it names closed "));
    }
  sofia_log_release ();
}

/* ---- NTA ----------------------------------------------------------------------------------- */

static char last_phrase[64];

static int
on_nta_response (nta_outgoing_magic_t *magic, nta_outgoing_t *orq, sip_t const *sip)
{
  int *status = (int *) magic;

  if (sip != NULL && sip->sip_status->st_status >= 200)
    {
      *status = sip->sip_status->st_status;
      g_strlcpy (last_phrase, sip->sip_status->st_phrase, sizeof last_phrase);
    }
  else if (sip == NULL)
    *status = nta_outgoing_status (orq);
  return 0;
}

static int
wait_status (Fixture *f, int *status)
{
  gboolean expired = FALSE;
  guint timer = g_timeout_add_seconds (10, on_timeout, &expired);

  while (*status == 0 && !expired)
    g_main_context_iteration (NULL, TRUE);
  if (!expired)
    g_source_remove (timer);
  return *status;
}

/* NTA's own calls, with no NTATAG_TPORT(): nta_outgoing_tcreate() on a leg and
 * nta_outgoing_mcreate(), to the browser's Contact, then, once it has gone, to its address. */
static void
test_nta (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  nta_agent_t *agent;
  nta_leg_t *leg;
  nta_outgoing_t *orq;
  msg_t *msg;
  int status = 0;

  if (f->nua == NULL)
    return;
  g_assert_true (sofia_ws_tport_enable_routing (&error));
  g_assert_no_error (error);
  agent = sofia_ws_tport_get_nua_agent (f->nua, &error);
  g_assert_no_error (error);
  leg = nta_leg_tcreate (agent, NULL, NULL, SIPTAG_FROM_STR ("<sip:nta@127.0.0.1>;tag=nta"),
                         SIPTAG_TO_STR ("<sip:alice@127.0.0.1>"),
                         TAG_END ());
  g_assert_nonnull (leg);
  orq = nta_outgoing_tcreate (leg, on_nta_response, (nta_outgoing_magic_t *) &status, NULL,
                              SIP_METHOD_MESSAGE, URL_STRING_MAKE (f->contact),
                              SIPTAG_CONTENT_TYPE_STR ("text/plain"),
                              SIPTAG_PAYLOAD_STR ("from nta tcreate"), TAG_END ());
  g_assert_nonnull (orq);
  g_assert_cmpint (wait_status (f, &status), ==, 200);
  nta_outgoing_destroy (orq);
  browser_expect (f, "\"body\":\"from nta tcreate\"");

  status = 0;
  msg = nta_msg_create (agent, 0);
  {
    g_autofree char *request_line = g_strdup_printf ("MESSAGE %s SIP/2.0", f->contact);

    g_assert_cmpint (sip_add_tl (msg, sip_object (msg), SIPTAG_REQUEST_STR (request_line),
                                 SIPTAG_TO_STR ("<sip:alice@127.0.0.1>"),
                                 SIPTAG_FROM_STR ("<sip:nta@127.0.0.1>;tag=mcreate"),
                                 SIPTAG_CALL_ID_STR ("mcreate@test-nua-browser"),
                                 SIPTAG_CSEQ_STR ("1 MESSAGE"),
                                 SIPTAG_CONTENT_TYPE_STR ("text/plain"),
                                 SIPTAG_PAYLOAD_STR ("from nta mcreate"), TAG_END ()), >=, 0);
  }
  orq = nta_outgoing_mcreate (agent, on_nta_response, (nta_outgoing_magic_t *) &status, NULL,
                              msg, TAG_END ());
  g_assert_nonnull (orq);
  g_assert_cmpint (wait_status (f, &status), ==, 200);
  nta_outgoing_destroy (orq);
  browser_expect (f, "\"body\":\"from nta mcreate\"");

  /* Gone: 503 at once, by address too, never a connection to the old port. */
  browser_quit (f);
  {
    gboolean expired = FALSE;

    g_timeout_add (500, on_timeout, &expired);
    while (!expired)
      g_main_context_iteration (NULL, TRUE);
  }
  status = 0;
  {
    gint64 start = g_get_monotonic_time ();

    orq = nta_outgoing_tcreate (leg, on_nta_response, (nta_outgoing_magic_t *) &status, NULL,
                                SIP_METHOD_MESSAGE, URL_STRING_MAKE (f->address),
                                SIPTAG_CONTENT_TYPE_STR ("text/plain"),
                                SIPTAG_PAYLOAD_STR ("gone"), TAG_END ());
    g_assert_nonnull (orq);
    g_assert_cmpint (wait_status (f, &status), ==, 503);
    g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC);
    g_assert_cmpstr (last_phrase, ==, "No transport");
  }
  nta_outgoing_destroy (orq);
  nta_leg_destroy (leg);
}

/* ---- calls --------------------------------------------------------------------------------- */

static void
test_nua_calls (Fixture *f, gconstpointer data)
{
  g_autofree char *contact = NULL;

  if (f->nua == NULL)
    return;
  f->call = nua_handle (f->nua, NULL, NUTAG_URL (f->contact),
                        SIPTAG_TO_STR ("<sip:alice@127.0.0.1>"),
                        SIPTAG_FROM_STR ("<sip:pbx@127.0.0.1>"), TAG_END ());
  g_ptr_array_add (f->handles, f->call);
  nua_invite (f->call, SIPTAG_CONTENT_TYPE_STR ("application/sdp"), SIPTAG_PAYLOAD_STR (SDP),
              TAG_END ());
  /* NUA's Contact there is its ws listener, not its tcp one: nothing written by hand. */
  g_free (contact);
  contact = g_strdup_printf ("\"event\":\"invite\",\"from\":\"sip:pbx@127.0.0.1\","
                             "\"contact\":\"<sip:127.0.0.1:%s;transport=ws>\"", f->ws_port);
  browser_expect (f, contact);
  nua_expect (f, "r_invite 200");
  /* NUA's ACK reached it: the browser's session is up. */
  browser_expect (f, "\"state\":\"Established\"");

  /* A re-INVITE, then a MESSAGE inside the dialog. */
  nua_invite (f->call, SIPTAG_CONTENT_TYPE_STR ("application/sdp"), SIPTAG_PAYLOAD_STR (SDP),
              TAG_END ());
  nua_expect (f, "r_invite 200");
  browser_expect (f, "\"event\":\"reinvite\"");
  nua_message (f->call, SIPTAG_CONTENT_TYPE_STR ("text/plain"),
               SIPTAG_PAYLOAD_STR ("in the call"), TAG_END ());
  nua_expect (f, "r_message 200");
  browser_expect (f, "\"body\":\"in the call\"");

  /* The PBX hangs up: the BYE reaches the browser, which ends its session. */
  nua_bye (f->call, TAG_END ());
  nua_expect (f, "r_bye 200");
  browser_expect (f, "\"state\":\"Terminated\"");
}

/* The PBX gives up before the browser answers: NTA's CANCEL (sent by the INVITE's tport name,
 * not through NUA) reaches the browser, and so does the ACK to its 487. */
static void
test_nua_cancels (Fixture *f, gconstpointer data)
{
  if (f->nua == NULL)
    return;
  peer_say (&f->browser, "ring");
  browser_expect (f, "\"event\":\"ring\"");
  f->call = nua_handle (f->nua, NULL, NUTAG_URL (f->contact),
                        SIPTAG_TO_STR ("<sip:alice@127.0.0.1>"),
                        SIPTAG_FROM_STR ("<sip:pbx@127.0.0.1>"), TAG_END ());
  g_ptr_array_add (f->handles, f->call);
  nua_invite (f->call, SIPTAG_CONTENT_TYPE_STR ("application/sdp"), SIPTAG_PAYLOAD_STR (SDP),
              TAG_END ());
  browser_expect (f, "\"event\":\"invite\"");
  nua_expect (f, "state proceeding");
  nua_cancel (f->call, TAG_END ());
  nua_expect (f, "r_invite 487");
  browser_expect (f, "\"state\":\"Terminated\"");
}

static void
browser_calls (Fixture *f)
{
  g_autofree char *call = g_strdup_printf ("call sip:pbx@127.0.0.1:%s;transport=ws", f->ws_port);
  /* The Contact of NUA's 200 is its ws listener. */
  g_autofree char *answer = g_strdup_printf ("\"event\":\"call\",\"status\":200,"
                                             "\"contact\":\"<sip:127.0.0.1:%s;transport=ws>\"",
                                             f->ws_port);

  peer_say (&f->browser, call);
  nua_expect (f, "i_invite");
  browser_expect (f, answer);
  browser_expect (f, "\"state\":\"Established\"");
  nua_expect (f, "state ready");
}

static void
test_browser_calls_nua_hangs_up (Fixture *f, gconstpointer data)
{
  if (f->nua == NULL)
    return;
  browser_calls (f);
  nua_bye (f->call, TAG_END ());
  nua_expect (f, "r_bye 200");
  browser_expect (f, "\"state\":\"Terminated\"");
}

static void
test_browser_calls_and_hangs_up (Fixture *f, gconstpointer data)
{
  if (f->nua == NULL)
    return;
  browser_calls (f);
  peer_say (&f->browser, "bye");
  nua_expect (f, "i_bye");
  nua_expect (f, "state terminated");
  browser_expect (f, "\"state\":\"Terminated\"");
}

/* NOTIFY outside a subscription, as a PBX sends message-summary. */
static void
test_notify (Fixture *f, gconstpointer data)
{
  nua_handle_t *nh;

  if (f->nua == NULL)
    return;
  nh = nua_handle (f->nua, NULL, NUTAG_URL (f->contact), SIPTAG_TO_STR ("<sip:alice@127.0.0.1>"),
                   SIPTAG_FROM_STR ("<sip:pbx@127.0.0.1>"), TAG_END ());
  g_ptr_array_add (f->handles, nh);
  nua_notify (nh, NUTAG_NEWSUB (1), SIPTAG_EVENT_STR ("message-summary"),
              SIPTAG_SUBSCRIPTION_STATE_STR ("terminated;reason=noresource"),
              SIPTAG_CONTENT_TYPE_STR ("application/simple-message-summary"),
              SIPTAG_PAYLOAD_STR ("Messages-Waiting: yes\r\n"), TAG_END ());
  nua_expect (f, "r_notify 200");
  browser_expect (f, "\"event\":\"notify\"");
}

/* ---- the example program, examples/sofia-ws-nua-pbx.c ---------------------------------------- */

/* Starts browser.mjs (SIP.js) as @user on the example's ws listener at @port. */
static void
example_browser_start (Peer *browser, const char *user, const char *port)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);

  g_ptr_array_add (argv, g_strdup ("node"));
  g_ptr_array_add (argv, g_test_build_filename (G_TEST_DIST, "interop", "node", "browser.mjs",
                                                NULL));
  g_ptr_array_add (argv, g_strdup ("--server"));
  g_ptr_array_add (argv, g_strdup_printf ("ws://127.0.0.1:%s/", port));
  g_ptr_array_add (argv, g_strdup_printf ("--user=%s", user));
  peer_start (browser, user, argv, FALSE);
}

/* alice calls bob through the example, which bridges the call (bob's browser answers with its
 * fixed SDP); alice hangs up, then, on a second call (a third one meanwhile gets 486), the
 * example does ("hangup"). */
static void
example_bridges (Peer *pbx, Peer *alice, const char *port)
{
  Peer bob = { 0 };

  example_browser_start (&bob, "bob", port);
  g_free (peer_expect (pbx, "registered bob sip:"));
  g_free (peer_expect (&bob, "\"event\":\"registered\",\"status\":200"));

  peer_say (alice, "call sip:bob@127.0.0.1");
  g_free (peer_expect (pbx, "calling bob for alice"));
  g_free (peer_expect (&bob, "\"event\":\"invite\",\"from\":\"sip:alice@127.0.0.1\""));
  g_free (peer_expect (alice, "\"event\":\"call\",\"status\":200"));
  g_free (peer_expect (pbx, "bridged alice -> bob"));
  g_free (peer_expect (&bob, "\"state\":\"Established\""));
  g_free (peer_expect (alice, "\"state\":\"Established\""));
  peer_say (alice, "bye");
  g_free (peer_expect (pbx, "call ended by alice"));
  g_free (peer_expect (pbx, "hangup 200"));
  g_free (peer_expect (&bob, "\"state\":\"Terminated\""));
  g_free (peer_expect (alice, "\"state\":\"Terminated\""));

  peer_say (alice, "call sip:bob@127.0.0.1");
  g_free (peer_expect (pbx, "bridged alice -> bob"));
  g_free (peer_expect (&bob, "\"state\":\"Established\""));
  g_free (peer_expect (alice, "\"state\":\"Established\""));
  /* One bridged call at a time. */
  peer_say (alice, "call sip:bob@127.0.0.1");
  g_free (peer_expect (pbx, "busy: alice calls bob during the bridged call"));
  g_free (peer_expect (alice, "\"event\":\"call\",\"status\":486"));
  g_free (peer_expect (alice, "\"state\":\"Terminated\""));
  peer_say (pbx, "hangup");
  g_free (peer_expect (pbx, "call ended by the pbx"));
  g_free (peer_expect (pbx, "hangup 200"));
  g_free (peer_expect (pbx, "hangup 200"));
  g_free (peer_expect (&bob, "\"state\":\"Terminated\""));
  g_free (peer_expect (alice, "\"state\":\"Terminated\""));
  peer_stop (&bob);
}

/* The example does what README says: SIP.js registers, is called, gets a MESSAGE, is hung up
 * on, calls it, and calls another browser through it. The example runs linked, or preloaded in
 * the preloaded run (it inherits LD_PRELOAD): it works the same either way. */
static void
test_example_pbx (void)
{
  const char *binary = g_getenv ("SOFIA_WS_NUA_PBX");
  g_autofree char *modules = g_test_build_filename (G_TEST_DIST, "interop", "node",
                                                    "node_modules", "sip.js", NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *listening = NULL;
  g_autofree char *call = NULL;
  const char *port;
  Peer pbx = { 0 }, browser = { 0 };

  if (binary == NULL || !g_file_test (modules, G_FILE_TEST_IS_DIR))
    {
      g_test_skip (binary == NULL ? "SOFIA_WS_NUA_PBX is not set (run through meson test)"
                                  : "tests/interop/node has no node_modules: run `npm ci` there");
      return;
    }
  test_wrap_in_valgrind (argv);
  g_ptr_array_add (argv, g_strdup (binary));
  g_ptr_array_add (argv, g_strdup ("--listen"));
  g_ptr_array_add (argv, g_strdup ("sip:127.0.0.1:0;transport=ws"));
  peer_start (&pbx, "pbx", argv, TRUE);
  listening = peer_expect (&pbx, "listening sip:127.0.0.1:");
  port = strrchr (listening, ':') + 1;
  *strchr (port, ';') = '\0';

  example_browser_start (&browser, "alice", port);
  g_free (peer_expect (&pbx, "registered alice sip:"));
  g_free (peer_expect (&browser, "\"event\":\"registered\",\"status\":200"));

  peer_say (&pbx, "call alice");
  g_free (peer_expect (&browser, "\"event\":\"invite\""));
  g_free (peer_expect (&pbx, "call 200"));
  g_free (peer_expect (&browser, "\"state\":\"Established\""));
  peer_say (&pbx, "message alice hello from the pbx");
  g_free (peer_expect (&pbx, "message-sent 200"));
  g_free (peer_expect (&browser, "\"body\":\"hello from the pbx\""));
  peer_say (&pbx, "hangup");
  g_free (peer_expect (&pbx, "hangup 200"));
  g_free (peer_expect (&browser, "\"state\":\"Terminated\""));

  call = g_strdup_printf ("call sip:pbx@127.0.0.1:%s;transport=ws", port);
  peer_say (&browser, call);
  g_free (peer_expect (&pbx, "incoming call from alice"));
  g_free (peer_expect (&browser, "\"event\":\"call\",\"status\":200"));
  g_free (peer_expect (&browser, "\"state\":\"Established\""));
  peer_say (&browser, "bye");
  g_free (peer_expect (&pbx, "hung up by the browser"));
  g_free (peer_expect (&browser, "\"state\":\"Terminated\""));

  example_bridges (&pbx, &browser, port);
  peer_stop (&browser);
  peer_stop (&pbx);
}

/* A second client writing the first one's .invalid host in its Via and Contact does not get
 * the first one's requests: an open connection keeps its names. */
static void
test_name_taken (Fixture *f, gconstpointer data)
{
  g_autofree char *alice = NULL;
  g_autofree char *host = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  Peer mallory = { 0 };

  if (f->nua == NULL)
    return;
  alice = g_strdup (f->contact);
  host = g_strndup (strchr (alice, '@') + 1, strchr (alice, ';') - strchr (alice, '@') - 1);
  g_ptr_array_add (argv, g_strdup ("node"));
  g_ptr_array_add (argv, g_test_build_filename (G_TEST_DIST, "interop", "node", "browser.mjs",
                                                NULL));
  g_ptr_array_add (argv, g_strdup_printf ("--server=ws://127.0.0.1:%s/", f->ws_port));
  g_ptr_array_add (argv, g_strdup ("--user=mallory"));
  g_ptr_array_add (argv, g_strdup_printf ("--via-host=%s", host));
  peer_start (&mallory, "mallory", argv, FALSE);
  nua_expect (f, "i_register");
  g_free (peer_expect (&mallory, "\"event\":\"registered\",\"status\":200"));
  g_assert_cmpstr (strchr (f->contact, '@'), ==, strchr (alice, '@'));   /* same host */

  g_free (f->contact);
  f->contact = g_strdup (alice);
  send_message (f, BY_CONTACT, "for alice only");
  nua_expect (f, "r_message 200");
  browser_expect (f, "\"body\":\"for alice only\"");
  for (GList *l = mallory.lines.head; l != NULL; l = l->next)
    g_assert_null (strstr (l->data, "for alice only"));
  peer_stop (&mallory);
}

/* The mode the run is meant to test is the one in effect: NUA's calls reach the preloaded
 * module's nta_outgoing_mcreate() first only when it is preloaded. */
static void
check_mode (void)
{
  gboolean want_preloaded = g_getenv ("LD_PRELOAD") != NULL &&
                            strstr (g_getenv ("LD_PRELOAD"), "tport-ws.so") != NULL;
  Dl_info info = { 0 };
  void *first = dlsym (RTLD_DEFAULT, "nta_outgoing_mcreate");

  g_assert_nonnull (first);
  g_assert_true (dladdr (first, &info) != 0);
  g_test_message ("mode: %s; nta_outgoing_mcreate() first found in %s",
                  want_preloaded ? "preloaded" : "linked", info.dli_fname);
  g_assert_cmpint (strstr (info.dli_fname, "tport-ws.so") != NULL, ==, want_preloaded);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  su_init ();
  check_mode ();
  g_test_add ("/nua-browser/message/request-uri", Fixture, GINT_TO_POINTER (BY_REQUEST_URI),
              fixture_setup, test_message, fixture_teardown);
  g_test_add ("/nua-browser/message/route", Fixture, GINT_TO_POINTER (BY_ROUTE),
              fixture_setup, test_message, fixture_teardown);
  g_test_add ("/nua-browser/message/proxy", Fixture, GINT_TO_POINTER (BY_PROXY),
              fixture_setup, test_message, fixture_teardown);
  g_test_add ("/nua-browser/message/contact", Fixture, GINT_TO_POINTER (BY_CONTACT),
              fixture_setup, test_message, fixture_teardown);
  g_test_add ("/nua-browser/message/flow-route", Fixture, GINT_TO_POINTER (BY_FLOW_ROUTE),
              fixture_setup, test_message, fixture_teardown);
  g_test_add ("/nua-browser/message/flow-uri", Fixture, GINT_TO_POINTER (BY_FLOW_URI),
              fixture_setup, test_message, fixture_teardown);
  g_test_add ("/nua-browser/notify", Fixture, NULL, fixture_setup, test_notify,
              fixture_teardown);
  g_test_add ("/nua-browser/call/nua-calls-and-hangs-up", Fixture, NULL, fixture_setup,
              test_nua_calls, fixture_teardown);
  g_test_add ("/nua-browser/call/nua-cancels", Fixture, NULL, fixture_setup, test_nua_cancels,
              fixture_teardown);
  g_test_add ("/nua-browser/call/browser-calls-nua-hangs-up", Fixture, NULL, fixture_setup,
              test_browser_calls_nua_hangs_up, fixture_teardown);
  g_test_add ("/nua-browser/call/browser-calls-and-hangs-up", Fixture, NULL, fixture_setup,
              test_browser_calls_and_hangs_up, fixture_teardown);
  g_test_add ("/nua-browser/gone", Fixture, NULL, fixture_setup, test_gone, fixture_teardown);
  g_test_add_func ("/nua-browser/example-pbx", test_example_pbx);
  g_test_add ("/nua-browser/nta", Fixture, NULL, fixture_setup, test_nta, fixture_teardown);
  g_test_add ("/nua-browser/name-taken", Fixture, NULL, fixture_setup, test_name_taken,
              fixture_teardown);
  /* JsSIP (no calls: it needs WebRTC, which Node lacks): its Via and Contact hosts differ. */
  g_test_add ("/nua-browser/jssip/message/request-uri", Fixture,
              GINT_TO_POINTER (JSSIP | BY_REQUEST_URI), fixture_setup, test_message,
              fixture_teardown);
  g_test_add ("/nua-browser/jssip/message/contact", Fixture,
              GINT_TO_POINTER (JSSIP | BY_CONTACT), fixture_setup, test_message,
              fixture_teardown);
  g_test_add ("/nua-browser/jssip/message/flow-route", Fixture,
              GINT_TO_POINTER (JSSIP | BY_FLOW_ROUTE), fixture_setup, test_message,
              fixture_teardown);
  g_test_add ("/nua-browser/jssip/gone", Fixture, GINT_TO_POINTER (JSSIP), fixture_setup,
              test_gone, fixture_teardown);
  {
    int status = g_test_run ();

    su_deinit ();
    return status;
  }
}
