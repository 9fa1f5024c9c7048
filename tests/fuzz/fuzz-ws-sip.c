/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: one WebSocket message, from a client's socket to Sofia and back.
 *
 * One process-wide setup, made once: a su_glib root on the default GMainContext, an NTA agent
 * with a ws listener on 127.0.0.1 (the tport module, loaded from this build's plugin/), and the
 * registrar core (examples/registrar-core.c) on it. Two WebSocket clients of our own, on plain
 * non-blocking sockets watched by the same GMainContext: the callee, registered as
 * sip:callee@127.0.0.1, which answers 200 to every request relayed to it; and the fuzzing
 * client.
 *
 * Per input: the registrar is made anew and the callee registers again (so that no binding an
 * earlier input made survives), then the input goes out as one masked binary WebSocket message
 * on the fuzzing client's connection (reopened if the server closed it), followed by an OPTIONS
 * with a Call-ID of its own, the sentinel; the loop runs until the sentinel's 200 is back. The
 * server reads a connection in order, so by then the input was read, framed, parsed by Sofia,
 * handled by NTA and the registrar, and whatever the registrar relayed to the callee was
 * answered, all in this process, under ASan and UBSan. No sentinel answer within 10 s is a
 * finding too (abort). What stays from input to input: NTA's transactions (a later input with
 * the same Via branch is a retransmission to NTA) and the connection (unless the input made the
 * server close it).
 *
 * The covered path is the real one: the kernel's loopback, libwebsockets' server, sofia-ws's
 * message path (glue/), the tport module's receive (plugin/), Sofia's parser and NTA
 * (Debian's libsofia-sip-ua: exercised, but not instrumented, so libFuzzer's guidance comes
 * from our code's coverage only), and the registrar core. */
#include <sofia-ws/sofia-ws-tport.h>

#include <errno.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/tport.h>

#include "registrar-core.h"
#include "support/sip-text.h"
#include "support/ws-frame.h"
#include "fuzz-client.h"


static struct {
  su_root_t *root;
  nta_agent_t *agent;
  Registrar *registrar;
  guint16 port;
  FuzzClient callee;
  FuzzClient fuzzer;
  guint serial;
} g;

static char *
make_request (const char *method, const char *user, const char *extra, const char *call_id)
{
  g.serial++;
  return g_strdup_printf ("%s sip:127.0.0.1 SIP/2.0\r\n"
                          "Via: SIP/2.0/WS %s.invalid;branch=z9hG4bK-fuzz-%s-%u\r\n"
                          "Max-Forwards: 70\r\n"
                          "To: <sip:%s@127.0.0.1>\r\n"
                          "From: <sip:%s@127.0.0.1>;tag=fuzz-%u\r\n"
                          "Call-ID: %s\r\n"
                          "CSeq: %u %s\r\n"
                          "%s"
                          "Content-Length: 0\r\n"
                          "\r\n",
                          method, user, user, g.serial, user, user, g.serial, call_id,
                          g.serial, method, extra ? extra : "");
}

static void
register_callee (void)
{
  g_autofree char *call_id = g_strdup_printf ("fuzz-register-%u", g.serial + 1);
  g_autofree char *text = make_request ("REGISTER", "callee",
                                        "Contact: <sip:callee@callee.invalid;transport=ws>"
                                        ";expires=3600\r\n", call_id);
  guint status = 0;

  /* The callee's connection may have been closed by something an input made it send. */
  for (int attempt = 0; attempt < 3 && status == 0; attempt++)
    {
      if (g.callee.closed)
        fuzz_client_connect (&g.callee, g.port);
      status = fuzz_client_request (&g.callee, text, call_id);
    }
  if (status != 200)
    {
      fprintf (stderr, "fuzz-ws-sip: the callee's REGISTER got %u\n", status);
      abort ();
    }
}

static gboolean
on_deadline (gpointer data)
{
  fprintf (stderr, "fuzz-ws-sip: the sentinel got no answer within 10 s\n");
  abort ();
  return G_SOURCE_REMOVE;
}

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_autoptr(GError) error = NULL;
  tport_t *tp;

  /* This build's module, unless told otherwise. */
  g_setenv ("SOFIA_WS_PLUGIN_DIR", FUZZ_PLUGIN_DIR, FALSE);
  /* Sofia's and the module's lines about every bad message would drown libFuzzer's. */
  g_setenv ("TPORT_DEBUG", "0", FALSE);
  g_setenv ("NTA_DEBUG", "0", FALSE);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);

  su_init ();
  g.root = su_glib_root_create (NULL);
  g_source_attach (su_glib_root_gsource (g.root), NULL);
  g.agent = nta_agent_create (g.root, (url_string_t *) -1, NULL, NULL, NTATAG_UA (0),
                              NTATAG_SERVER_RPORT (1), TAG_END ());
  g_assert (g.agent != NULL);
  tp = sofia_ws_tport_add_listener (g.agent, "sip:127.0.0.1:0;transport=ws", &error, TAG_END ());
  g_assert_no_error (error);
  g.port = (guint16) atoi (tport_name (tp)->tpn_port);
  g.callee = (FuzzClient) { .name = "callee", .fd = -1, .in = g_byte_array_new () };
  g.fuzzer = (FuzzClient) { .name = "fuzzer", .fd = -1, .in = g_byte_array_new () };
  fuzz_client_connect (&g.callee, g.port);
  fuzz_client_connect (&g.fuzzer, g.port);
  return 0;
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  guint deadline = g_timeout_add (FUZZ_DEADLINE_US / 1000, on_deadline, NULL);
  guint status = 0;

  registrar_free (g.registrar);
  g.registrar = registrar_new (g.root, g.agent, &(RegistrarOptions) { .quiet = TRUE });
  register_callee ();
  if (g.fuzzer.closed)
    fuzz_client_connect (&g.fuzzer, g.port);

  fuzz_client_send_message (&g.fuzzer, 0x2, data, size);
  /* The input may make the server close the connection (a bad message, a close frame): the
   * sentinel, a new one each time, then goes again on a new connection. */
  while (status == 0)
    {
      g_autofree char *call_id = g_strdup_printf ("fuzz-sentinel-%u", g.serial + 1);
      g_autofree char *sentinel = make_request ("OPTIONS", "sentinel", NULL, call_id);

      if (g.fuzzer.closed)
        fuzz_client_connect (&g.fuzzer, g.port);
      status = fuzz_client_request (&g.fuzzer, sentinel, call_id);
    }
  g_source_remove (deadline);
  if (status != 200)
    {
      fprintf (stderr, "fuzz-ws-sip: the sentinel OPTIONS got %u\n", status);
      abort ();
    }
  return 0;
}
