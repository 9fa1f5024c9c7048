/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SIP.js Transport contract at work on two in-memory transports, alice and bob: every
 * transport event is printed. alice connects and sends an OPTIONS, bob answers 200 OK, bob
 * goes away, and alice's next send fails with SOFIA_WS_ERROR_NOT_CONNECTED. */
#include <sofia-ws/sofia-ws.h>

#include "support/memory-transport.h"

typedef struct {
  GMainLoop *loop;
  SofiaWsTransport *alice;
  SofiaWsTransport *bob;
  gint64 start;
  int status;
} Demo;

static const char *
name_of (Demo *demo, SofiaWsTransport *t)
{
  return t == demo->alice ? "alice" : "bob";
}

static void
print_event (Demo *demo, SofiaWsTransport *t, const char *event, const char *detail)
{
  double ms = (g_get_monotonic_time () - demo->start) / 1000.0;

  g_print ("%8.3f ms  %-5s  %-15s %s\n", ms, name_of (demo, t), event, detail ? detail : "");
}

static char *
first_line (const char *message)
{
  return g_strndup (message, strcspn (message, "\r\n"));
}

static void
on_state_event (SofiaWsTransport *t, Demo *demo)
{
  GSignalInvocationHint *hint = g_signal_get_invocation_hint (t);

  print_event (demo, t, g_signal_name (hint->signal_id), NULL);
}

static void
on_message_sent (SofiaWsTransport *t, const char *message, Demo *demo)
{
  g_autofree char *line = first_line (message);

  print_event (demo, t, "message-sent", line);
}

static void
on_transport_error (SofiaWsTransport *t, const GError *error, Demo *demo)
{
  g_autofree char *detail = g_strdup_printf ("%s (%s %d)", error->message,
                                             g_quark_to_string (error->domain), error->code);

  print_event (demo, t, "transport-error", detail);
}

static void on_send_done (GObject *source, GAsyncResult *result, gpointer user_data);

static char *
answer_for (const char *request)
{
  g_auto(GStrv) lines = g_strsplit (request, "\r\n", -1);
  GString *response = g_string_new ("SIP/2.0 200 OK\r\n");

  /* RFC 3261 8.2.6: the response copies Via, From, Call-ID and CSeq, and To (adding a tag). */
  for (guint i = 1; lines[i] != NULL && lines[i][0] != '\0'; i++)
    {
      if (g_str_has_prefix (lines[i], "To:"))
        g_string_append_printf (response, "%s;tag=bob-1\r\n", lines[i]);
      else if (g_str_has_prefix (lines[i], "Via:") || g_str_has_prefix (lines[i], "From:") ||
               g_str_has_prefix (lines[i], "Call-ID:") || g_str_has_prefix (lines[i], "CSeq:"))
        g_string_append_printf (response, "%s\r\n", lines[i]);
    }
  g_string_append (response, "Content-Length: 0\r\n\r\n");
  return g_string_free (response, FALSE);
}

static void
on_message (SofiaWsTransport *t, const char *message, Demo *demo)
{
  g_autofree char *line = first_line (message);

  print_event (demo, t, "message", line);
  if (t == demo->bob && g_str_has_prefix (message, "OPTIONS "))
    {
      g_autofree char *response = answer_for (message);

      sofia_ws_transport_send_async (t, response, NULL, NULL, on_send_done, demo);
    }
  else if (t == demo->alice && g_str_has_prefix (message, "SIP/2.0 200"))
    /* The exchange is complete: bob goes away. */
    sofia_ws_transport_disconnect_async (demo->bob, NULL, NULL, NULL, NULL);
}

static const char options_request[] =
  "OPTIONS sip:bob@example.invalid SIP/2.0\r\n"
  "Via: SIP/2.0/WS alice.invalid;branch=z9hG4bK-demo-1\r\n"
  "Max-Forwards: 70\r\n"
  "To: <sip:bob@example.invalid>\r\n"
  "From: <sip:alice@example.invalid>;tag=alice-1\r\n"
  "Call-ID: demo-call-1@alice.invalid\r\n"
  "CSeq: 1 OPTIONS\r\n"
  "Content-Length: 0\r\n\r\n";

static void
on_send_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Demo *demo = user_data;
  g_autoptr(GError) error = NULL;

  if (!sofia_ws_transport_send_finish (SOFIA_WS_TRANSPORT (source), result, &error))
    {
      /* Expected once bob is gone: the contract says NOT_CONNECTED. */
      if (g_error_matches (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_NOT_CONNECTED))
        print_event (demo, SOFIA_WS_TRANSPORT (source), "send failed", error->message);
      else
        {
          g_printerr ("unexpected send failure: %s\n", error->message);
          demo->status = 1;
        }
      g_main_loop_quit (demo->loop);
    }
}

static void
on_alice_disconnected (SofiaWsTransport *t, Demo *demo)
{
  /* A send while disconnected fails and emits transport-error. */
  sofia_ws_transport_send_async (t, options_request, NULL, NULL, on_send_done, demo);
}

static void
on_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Demo *demo = user_data;
  g_autoptr(GError) error = NULL;

  if (!sofia_ws_transport_connect_finish (SOFIA_WS_TRANSPORT (source), result, &error))
    {
      g_printerr ("connect failed: %s\n", error->message);
      demo->status = 1;
      g_main_loop_quit (demo->loop);
      return;
    }
  if (SOFIA_WS_TRANSPORT (source) == demo->alice)
    sofia_ws_transport_send_async (demo->alice, options_request, NULL, NULL, on_send_done, demo);
}

static void
watch (Demo *demo, SofiaWsTransport *t)
{
  const char *states[] = { "connecting", "connected", "disconnecting", "disconnected" };

  for (guint i = 0; i < G_N_ELEMENTS (states); i++)
    g_signal_connect (t, states[i], G_CALLBACK (on_state_event), demo);
  g_signal_connect (t, "message-sent", G_CALLBACK (on_message_sent), demo);
  g_signal_connect (t, "message", G_CALLBACK (on_message), demo);
  g_signal_connect (t, "transport-error", G_CALLBACK (on_transport_error), demo);
}

static void
connect_bob_then_alice (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Demo *demo = user_data;

  on_connected (source, result, demo);
  sofia_ws_transport_connect_async (demo->alice, NULL, NULL, on_connected, demo);
}

int
main (void)
{
  Demo demo = { 0 };
  MemoryTransport *alice, *bob;

  g_print ("sofia-ws %s: the SIP.js Transport contract on an in-memory pair\n",
           SOFIA_WS_VERSION_STRING);
  memory_transport_new_pair (&alice, &bob);
  demo.alice = SOFIA_WS_TRANSPORT (alice);
  demo.bob = SOFIA_WS_TRANSPORT (bob);
  demo.loop = g_main_loop_new (NULL, FALSE);
  demo.start = g_get_monotonic_time ();

  watch (&demo, demo.alice);
  watch (&demo, demo.bob);
  g_signal_connect (demo.alice, "disconnected", G_CALLBACK (on_alice_disconnected), &demo);

  sofia_ws_transport_connect_async (demo.bob, NULL, NULL, connect_bob_then_alice, &demo);
  g_main_loop_run (demo.loop);

  g_print ("demo %s\n", demo.status == 0 ? "finished" : "FAILED");
  g_signal_handlers_disconnect_by_data (demo.alice, &demo);
  g_signal_handlers_disconnect_by_data (demo.bob, &demo);
  g_object_unref (demo.alice);
  g_object_unref (demo.bob);
  g_main_loop_unref (demo.loop);
  return demo.status;
}
