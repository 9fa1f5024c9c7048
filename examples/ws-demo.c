/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIP over WebSocket end to end, with every transport event printed: a SofiaWsListener on
 * 127.0.0.1 answers SIP requests with 200 OK (a tiny UAS); "alice", a SofiaWsWebSocket in
 * this process, sends OPTIONS and a MESSAGE; "python", examples/ws-options.py in a second
 * process, sends an OPTIONS through GObject introspection. Exits 0 when every answer came.
 *
 *   sofia-ws-demo [PATH-TO-ws-options.py]
 *
 * Until the Sofia-SIP tport module lands, the server side is this tiny UAS; then the demo
 * becomes a Sofia registrar serving SIP.js over WebSocket. */
#include <sofia-ws/sofia-ws.h>

#include <string.h>

typedef struct {
  GMainLoop *loop;
  SofiaWsListener *listener;
  SofiaWsWebSocket *alice;
  gint64 start;
  guint answers;                  /* 200s alice got */
  gboolean python_done;
  int status;
} Demo;

static void
say (Demo *demo, const char *who, const char *what, const char *detail)
{
  double ms = (g_get_monotonic_time () - demo->start) / 1000.0;

  g_print ("%9.3f ms  %-14s %-16s %s\n", ms, who, what, detail ? detail : "");
}

static char *
first_line (const char *message)
{
  return g_strndup (message, strcspn (message, "\r\n"));
}

/* ---- the server: a SofiaWsListener answering every request with 200 -------------------- */

static char *
ok_for (const char *request)
{
  g_auto(GStrv) lines = g_strsplit (request, "\r\n", -1);
  GString *response = g_string_new ("SIP/2.0 200 OK\r\n");

  /* RFC 3261 8.2.6: Via, From, Call-ID, CSeq copied; To gets a tag. */
  for (guint i = 1; lines[i] != NULL && lines[i][0] != '\0'; i++)
    {
      if (g_str_has_prefix (lines[i], "To:"))
        g_string_append_printf (response, "%s;tag=demo-uas\r\n", lines[i]);
      else if (g_str_has_prefix (lines[i], "Via:") || g_str_has_prefix (lines[i], "From:") ||
               g_str_has_prefix (lines[i], "Call-ID:") || g_str_has_prefix (lines[i], "CSeq:"))
        g_string_append_printf (response, "%s\r\n", lines[i]);
    }
  g_string_append (response, "Server: sofia-ws demo\r\nContent-Length: 0\r\n\r\n");
  return g_string_free (response, FALSE);
}

static const char *
server_name (SofiaWsTransport *t)
{
  return g_object_get_data (G_OBJECT (t), "demo-name");
}

static void
on_server_state (SofiaWsTransport *t, Demo *demo)
{
  say (demo, server_name (t),
       g_signal_name (g_signal_get_invocation_hint (t)->signal_id), NULL);
}

static void
on_server_message (SofiaWsTransport *t, const char *message, Demo *demo)
{
  g_autofree char *line = first_line (message);
  g_autofree char *response = ok_for (message);

  say (demo, server_name (t), "message", line);
  sofia_ws_transport_send_async (t, response, NULL, NULL, NULL, NULL);
}

static void
on_server_sent (SofiaWsTransport *t, const char *message, Demo *demo)
{
  g_autofree char *line = first_line (message);

  say (demo, server_name (t), "message-sent", line);
}

static void
on_server_error (SofiaWsTransport *t, const GError *error, Demo *demo)
{
  say (demo, server_name (t), "transport-error", error->message);
}

static void
on_accepted (SofiaWsListener *listener, SofiaWsWebSocket *connection, Demo *demo)
{
  const char *address = sofia_ws_websocket_get_remote_address (connection);
  const char *states[] = { "disconnecting", "disconnected" };

  /* Named after the client's port: "uas:41234" serves the client on port 41234. */
  g_object_set_data_full (G_OBJECT (connection), "demo-name",
                          g_strdup_printf ("uas:%s", strrchr (address, ':') + 1), g_free);
  say (demo, "listener", "accepted", sofia_ws_websocket_get_remote_address (connection));
  for (guint i = 0; i < G_N_ELEMENTS (states); i++)
    g_signal_connect (connection, states[i], G_CALLBACK (on_server_state), demo);
  g_signal_connect (connection, "message", G_CALLBACK (on_server_message), demo);
  g_signal_connect (connection, "message-sent", G_CALLBACK (on_server_sent), demo);
  g_signal_connect (connection, "transport-error", G_CALLBACK (on_server_error), demo);
}

/* ---- alice: a SofiaWsWebSocket client --------------------------------------------------- */

static char *
request (const char *method, guint cseq, const char *body)
{
  return g_strdup_printf ("%s sip:bob@127.0.0.1 SIP/2.0\r\n"
                          "Via: SIP/2.0/WS alice.invalid;branch=z9hG4bK-demo-%u\r\n"
                          "Max-Forwards: 70\r\n"
                          "To: <sip:bob@127.0.0.1>\r\n"
                          "From: <sip:alice@127.0.0.1>;tag=alice\r\n"
                          "Call-ID: demo-%s@alice.invalid\r\n"
                          "CSeq: %u %s\r\n"
                          "%s"
                          "Content-Length: %zu\r\n\r\n%s",
                          method, cseq, method, cseq, method,
                          body ? "Content-Type: text/plain\r\n" : "", body ? strlen (body) : 0,
                          body ? body : "");
}

static void maybe_finish (Demo *demo);

static void
on_alice_state (SofiaWsTransport *t, Demo *demo)
{
  say (demo, "alice", g_signal_name (g_signal_get_invocation_hint (t)->signal_id), NULL);
}

static void
on_alice_sent (SofiaWsTransport *t, const char *message, Demo *demo)
{
  g_autofree char *line = first_line (message);

  say (demo, "alice", "message-sent", line);
}

static void
on_alice_message (SofiaWsTransport *t, const char *message, Demo *demo)
{
  g_autofree char *line = first_line (message);

  say (demo, "alice", "message", line);
  if (g_str_has_prefix (message, "SIP/2.0 200 "))
    demo->answers++;
  maybe_finish (demo);
}

static void
on_alice_error (SofiaWsTransport *t, const GError *error, Demo *demo)
{
  say (demo, "alice", "transport-error", error->message);
  demo->status = 1;
  g_main_loop_quit (demo->loop);
}

static void
on_alice_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Demo *demo = user_data;
  g_autofree char *options = request ("OPTIONS", 1, NULL);
  g_autofree char *message = request ("MESSAGE", 2, "Hello over WebSocket");

  if (!sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result, NULL))
    return;                       /* transport-error has said why */
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (demo->alice), options, NULL, NULL, NULL,
                                 NULL);
  sofia_ws_transport_send_async (SOFIA_WS_TRANSPORT (demo->alice), message, NULL, NULL, NULL,
                                 NULL);
}

/* ---- python: examples/ws-options.py in a second process --------------------------------- */

static void
on_python_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Demo *demo = user_data;
  GDataInputStream *in = G_DATA_INPUT_STREAM (source);
  g_autofree char *line = g_data_input_stream_read_line_finish_utf8 (in, result, NULL, NULL);

  if (line == NULL)
    {
      demo->python_done = TRUE;
      g_object_unref (in);
      maybe_finish (demo);
      return;
    }
  if (line[0] != '\0')
    say (demo, "python", "|", line);
  g_data_input_stream_read_line_async (in, G_PRIORITY_DEFAULT, NULL, on_python_line, demo);
}

static void
on_python_exit (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Demo *demo = user_data;

  if (!g_subprocess_wait_check_finish (G_SUBPROCESS (source), result, NULL))
    {
      say (demo, "python", "FAILED", "ws-options.py did not get its 200");
      demo->status = 1;
    }
}

static void
start_python (Demo *demo, const char *script, const char *url)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                                     G_SUBPROCESS_FLAGS_STDERR_MERGE, &error,
                                                     "/usr/bin/python3", script, url, NULL);
  GDataInputStream *in;

  if (process == NULL)
    {
      say (demo, "python", "FAILED", error->message);
      demo->status = 1;
      demo->python_done = TRUE;
      return;
    }
  in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (process));
  g_data_input_stream_read_line_async (in, G_PRIORITY_DEFAULT, NULL, on_python_line, demo);
  g_subprocess_wait_check_async (process, NULL, on_python_exit, demo);
}

static void
on_alice_disconnected_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Demo *demo = user_data;

  sofia_ws_transport_disconnect_finish (SOFIA_WS_TRANSPORT (source), result, NULL);
  g_main_loop_quit (demo->loop);
}

static void
maybe_finish (Demo *demo)
{
  if (demo->answers == 2 && demo->python_done &&
      sofia_ws_transport_is_connected (SOFIA_WS_TRANSPORT (demo->alice)))
    sofia_ws_transport_disconnect_async (SOFIA_WS_TRANSPORT (demo->alice), NULL, NULL,
                                         on_alice_disconnected_done, demo);
}

static gboolean
on_timeout (gpointer user_data)
{
  Demo *demo = user_data;

  say (demo, "demo", "FAILED", "no answer within 20 s");
  demo->status = 1;
  g_main_loop_quit (demo->loop);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  Demo demo = { 0 };
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;
  const char *script = argc > 1 ? argv[1] : "examples/ws-options.py";
  const char *states[] = { "connecting", "connected", "disconnecting", "disconnected" };

  g_print ("sofia-ws %s: SIP over WebSocket (RFC 7118), every transport event\n\n",
           SOFIA_WS_VERSION_STRING);
  demo.loop = g_main_loop_new (NULL, FALSE);
  demo.start = g_get_monotonic_time ();

  demo.listener = sofia_ws_listener_new ();
  g_signal_connect (demo.listener, "accepted", G_CALLBACK (on_accepted), &demo);
  if (!sofia_ws_listener_start (demo.listener, &error))
    {
      g_printerr ("cannot listen: %s\n", error->message);
      return 1;
    }
  url = g_strdup_printf ("ws://127.0.0.1:%u/", sofia_ws_listener_get_port (demo.listener));
  say (&demo, "listener", "listening", url);

  demo.alice = sofia_ws_websocket_new (url);
  for (guint i = 0; i < G_N_ELEMENTS (states); i++)
    g_signal_connect (demo.alice, states[i], G_CALLBACK (on_alice_state), &demo);
  g_signal_connect (demo.alice, "message", G_CALLBACK (on_alice_message), &demo);
  g_signal_connect (demo.alice, "message-sent", G_CALLBACK (on_alice_sent), &demo);
  g_signal_connect (demo.alice, "transport-error", G_CALLBACK (on_alice_error), &demo);
  sofia_ws_transport_connect_async (SOFIA_WS_TRANSPORT (demo.alice), NULL, NULL,
                                    on_alice_connected, &demo);
  start_python (&demo, script, url);

  g_timeout_add_seconds (20, on_timeout, &demo);
  g_main_loop_run (demo.loop);

  g_print ("\ndemo %s: alice got %u answers, python %s\n", demo.status == 0 ? "finished" : "FAILED",
           demo.answers, demo.python_done ? "finished" : "did not finish");
  g_signal_handlers_disconnect_by_data (demo.alice, &demo);
  g_object_unref (demo.alice);
  g_signal_handlers_disconnect_by_data (demo.listener, &demo);
  g_object_unref (demo.listener);
  g_main_loop_unref (demo.loop);
  return demo.status;
}
