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

#define DEADLINE_US (10 * G_USEC_PER_SEC)

typedef struct {
  const char *name;
  int fd;
  guint watch;
  GByteArray *in;
  gboolean upgraded;
  gboolean closed;
} Client;

static struct {
  su_root_t *root;
  nta_agent_t *agent;
  Registrar *registrar;
  guint16 port;
  Client callee;
  Client fuzzer;
  guint serial;
  char *awaited_call_id;          /* the Call-ID whose final response ends a wait */
  guint awaited_status;
} g;

static void
client_close (Client *c)
{
  if (c->watch != 0)
    g_source_remove (c->watch);
  c->watch = 0;
  if (c->fd >= 0)
    close (c->fd);
  c->fd = -1;
  c->closed = TRUE;
  c->upgraded = FALSE;
  g_byte_array_set_size (c->in, 0);
}

static void
client_send (Client *c, const void *data, gsize len)
{
  const guint8 *p = data;
  gint64 deadline = g_get_monotonic_time () + DEADLINE_US;

  while (len > 0 && !c->closed)
    {
      ssize_t n = send (c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

      if (n > 0)
        {
          p += n;
          len -= n;
        }
      else if (n < 0 && (errno == EAGAIN || errno == EINTR))
        {
          /* The server must read for this to go on: it runs in this thread. */
          if (g_get_monotonic_time () > deadline)
            g_error ("%s: the server reads nothing for 10 s", c->name);
          g_main_context_iteration (NULL, TRUE);
        }
      else
        client_close (c);
    }
}

static void
client_send_message (Client *c, guint8 opcode, const void *data, gsize len)
{
  g_autoptr(GByteArray) frame = ws_frame_new (opcode, data, len);

  client_send (c, frame->data, frame->len);
}

static void
on_sip (Client *c, const char *text)
{
  guint status = sip_text_status (text);

  if (status == 0)
    {
      g_autofree char *method = sip_text_method (text);

      /* Whatever the registrar relays is answered, as a browser would. */
      if (method != NULL && g_strcmp0 (method, "ACK") != 0)
        {
          g_autofree char *response = sip_text_response (text, 200, "OK");

          /* Text when it is UTF-8 (RFC 7118), else binary: the request's own bytes come back
           * in its headers. */
          client_send_message (c, g_utf8_validate (response, -1, NULL) ? 0x1 : 0x2, response,
                               strlen (response));
        }
      return;
    }
  if (status >= 200 && g.awaited_call_id != NULL)
    {
      g_autofree char *call_id = sip_text_header (text, "Call-ID");

      if (g_strcmp0 (call_id, g.awaited_call_id) == 0)
        {
          g.awaited_status = status;
          g_clear_pointer (&g.awaited_call_id, g_free);
        }
    }
}

static gboolean
on_readable (int fd, GIOCondition condition, gpointer data)
{
  Client *c = data;
  guint8 buffer[16384];
  ssize_t n = recv (fd, buffer, sizeof buffer, MSG_DONTWAIT);
  WsFrame frame;

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (n <= 0)
    {
      c->watch = 0;
      client_close (c);
      return G_SOURCE_REMOVE;
    }
  g_byte_array_append (c->in, buffer, n);
  if (!c->upgraded)
    {
      gsize head = 0;
      guint status = ws_frame_handshake_status ((const char *) c->in->data, c->in->len, &head);

      if (status == 0)
        return G_SOURCE_CONTINUE;
      if (status != 101)
        g_error ("%s: handshake answered %u", c->name, status);
      g_byte_array_remove_range (c->in, 0, head);
      c->upgraded = TRUE;
    }
  while (!c->closed && ws_frame_parse (c->in, &frame))
    {
      gsize size;
      const char *payload = g_bytes_get_data (frame.payload, &size);

      if (frame.opcode == 0x1 || frame.opcode == 0x2)
        {
          g_autofree char *text = g_strndup (payload, size);

          on_sip (c, text);
        }
      else if (frame.opcode == 0x8)
        {
          /* The server closes: answer its close, then let it go. */
          client_send_message (c, 0x8, payload, MIN (size, 2));
          g_bytes_unref (frame.payload);
          c->watch = 0;
          client_close (c);
          return G_SOURCE_REMOVE;
        }
      else if (frame.opcode == 0x9)
        client_send_message (c, 0xa, payload, size);
      g_bytes_unref (frame.payload);
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
client_upgraded_or_closed (Client *c)
{
  return c->upgraded || c->closed;
}

static void
client_connect (Client *c)
{
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons (g.port),
                                 .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  g_autofree char *host = g_strdup_printf ("127.0.0.1:%u", g.port);
  g_autofree char *request = ws_frame_handshake_request (host, NULL);
  int one = 1;
  c->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert (c->fd >= 0);
  setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* Loopback: connect() completes in the kernel's accept queue, before the server runs. */
  if (connect (c->fd, (struct sockaddr *) &address, sizeof address) < 0)
    g_error ("%s: connect: %s", c->name, g_strerror (errno));
  c->closed = FALSE;
  c->upgraded = FALSE;
  c->watch = g_unix_fd_add (c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
  client_send (c, request, strlen (request));
  while (!client_upgraded_or_closed (c))
    g_main_context_iteration (NULL, TRUE);
  if (c->closed)
    g_error ("%s: the server closed the handshake", c->name);
}

/* Sends @text as a request on @c and runs the loop until the final response with Call-ID
 * @call_id came back (its status), or @c was closed (0). The deadline source aborts. */
static guint
request_and_wait (Client *c, const char *text, const char *call_id)
{
  g_free (g.awaited_call_id);
  g.awaited_call_id = g_strdup (call_id);
  g.awaited_status = 0;
  client_send_message (c, 0x1, text, strlen (text));
  while (g.awaited_call_id != NULL && !c->closed)
    g_main_context_iteration (NULL, TRUE);
  g_clear_pointer (&g.awaited_call_id, g_free);
  return g.awaited_status;
}

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
        client_connect (&g.callee);
      status = request_and_wait (&g.callee, text, call_id);
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
  g.callee = (Client) { .name = "callee", .fd = -1, .in = g_byte_array_new () };
  g.fuzzer = (Client) { .name = "fuzzer", .fd = -1, .in = g_byte_array_new () };
  client_connect (&g.callee);
  client_connect (&g.fuzzer);
  return 0;
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  guint deadline = g_timeout_add (DEADLINE_US / 1000, on_deadline, NULL);
  guint status = 0;

  registrar_free (g.registrar);
  g.registrar = registrar_new (g.root, g.agent, &(RegistrarOptions) { .quiet = TRUE });
  register_callee ();
  if (g.fuzzer.closed)
    client_connect (&g.fuzzer);

  client_send_message (&g.fuzzer, 0x2, data, size);
  /* The input may make the server close the connection (a bad message, a close frame): the
   * sentinel, a new one each time, then goes again on a new connection. */
  while (status == 0)
    {
      g_autofree char *call_id = g_strdup_printf ("fuzz-sentinel-%u", g.serial + 1);
      g_autofree char *sentinel = make_request ("OPTIONS", "sentinel", NULL, call_id);

      if (g.fuzzer.closed)
        client_connect (&g.fuzzer);
      status = request_and_wait (&g.fuzzer, sentinel, call_id);
    }
  g_source_remove (deadline);
  if (status != 200)
    {
      fprintf (stderr, "fuzz-ws-sip: the sentinel OPTIONS got %u\n", status);
      abort ();
    }
  return 0;
}
