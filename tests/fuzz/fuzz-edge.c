/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: sofia-ws-edge (the registrar core in edge mode) between a browser, the
 * network and an upstream SIP server, all in this process and over the kernel's loopback.
 *
 * One process-wide setup, made once, on a su_glib root on the default GMainContext:
 *   the edge      an NTA agent with a tcp listener (its network side, the upstream's transport)
 *                 and a ws listener, and the core with RegistrarOptions.upstream (as
 *                 sofia-ws-edge builds it: examples/sofia-ws-registrar.c, -DSOFIA_WS_EDGE);
 *   the upstream  a raw tcp server of our own that the edge connects to: it answers every
 *                 request 200, or holds INVITEs with a 180 until their CANCEL (487), or answers
 *                 one request with a response the input made (malformed responses: 502);
 *   a ws target   a second NTA agent with a ws listener answering 200 to every request, which
 *                 requests from the network reach by transport=ws (the edge's own outgoing
 *                 connections); it may send each request back to the edge over that
 *                 connection, routed by the Record-Routes it got (requests arriving on the
 *                 edge's outgoing connection);
 *   a browser     a WebSocket client of our own on a plain socket, which answers 200 to what
 *                 the edge relays to it.
 *
 * An input is a mode byte and then records separated by "\n%%\n". The mode byte's bits 0-1 pick
 * the upstream's behaviour (0: 200; 1: hold INVITEs; 2 and 3: one response from the input),
 * bit 2 makes the ws target send requests back. A record's first byte is its channel: 'n' a
 * request (or anything) from the network, over a new tcp connection to the edge's tcp listener;
 * 'r' the response the upstream answers with in modes 2 and 3 (its status line, then the
 * request's Via, From, To, Call-ID and CSeq, then the rest of the record); anything else a
 * WebSocket message from the browser. Before a record goes, "@FLOW@" becomes the browser's
 * flow id as the upstream last saw it in a Path or Record-Route (so that the network can send
 * by a live token), "@TFLOW@" the flow id of the edge's connection to the ws target as the
 * target saw it, and "@EDGE@", "@EDGEWS@", "@UP@", "@WS@" the 127.0.0.1:port of the edge's tcp
 * and ws listeners, the upstream and the ws target.
 *
 * Each record is known to be processed before the next goes: after a browser message, an
 * OPTIONS of the browser's (the sentinel) must come back 200 from the upstream, through the
 * edge, on the same connection (the server reads a connection in order, and so does the edge
 * its connection to the upstream); after a network message, the edge must have closed the tcp
 * connection that we half-closed. At the end the upstream answers the INVITEs it holds (486)
 * and a last sentinel must come back. No sentinel answer within 10 s is a finding (abort).
 *
 * The fuzzer never dials elsewhere: connect(), sendto() and sendmsg() are interposed here (the
 * executable comes first in symbol lookup) and refuse every address but 127.0.0.1 at the
 * ports of this process's own listeners (ECONNREFUSED, at once), and getaddrinfo() takes
 * numeric hosts only (EAI_NONAME at once: no DNS, no resolver timeout), whatever a request
 * names. The edge's --max-targets (64) bounds the rest. */
#define _GNU_SOURCE
#include <sofia-ws/sofia-ws-tport.h>

#include <dlfcn.h>
#include <errno.h>
#include <glib-unix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/tport.h>

#include "registrar-core.h"
#include "support/sip-text.h"
#include "support/ws-frame.h"
#include "fuzz-client.h"

#define MAX_RECORDS 8
#define SEPARATOR "\n%%\n"
#define FLOW_ID_LENGTH 16
#define NO_FLOW "0000000000000000"

enum { UPSTREAM_200, UPSTREAM_HOLD_INVITE, UPSTREAM_INPUT_RESPONSE };

typedef struct {
  int fd;
  guint watch;
  GByteArray *in;
  GString *held_response;         /* the input's, until a sentinel comes on this connection */
  gboolean draining;              /* half-closed after the input's response */
} UpstreamConnection;

typedef struct {
  UpstreamConnection *connection;
  char *request;
} HeldInvite;

static struct {
  su_root_t *root;
  nta_agent_t *agent;             /* the edge's */
  nta_agent_t *target_agent;
  nta_leg_t *target_leg;
  Registrar *edge;
  guint16 edge_tcp_port, edge_ws_port, target_port, upstream_port;
  int upstream_fd;
  GPtrArray *upstream_connections;  /* UpstreamConnection */
  GPtrArray *held;                  /* HeldInvite */
  FuzzClient browser;
  guint serial;
  char flow[FLOW_ID_LENGTH + 1];        /* the browser's, as the upstream saw it */
  char target_flow[FLOW_ID_LENGTH + 1]; /* the edge's connection to the target's */
  /* this input */
  guint upstream_mode;
  gboolean reflect;
  GBytes *response;                 /* UPSTREAM_INPUT_RESPONSE: the record, once */
} g;

/* ---- the sandbox: only this process's own listeners on 127.0.0.1 ------------------------- */

static gboolean
address_is_own (const struct sockaddr *address,
                socklen_t              length)
{
  const struct sockaddr_in *in = (const struct sockaddr_in *) address;
  guint16 port;

  if (address == NULL)
    return TRUE;                    /* a connected socket's send() */
  if (address->sa_family == AF_UNIX)
    return TRUE;
  if (address->sa_family != AF_INET || length < sizeof *in ||
      in->sin_addr.s_addr != htonl (INADDR_LOOPBACK))
    return FALSE;
  port = ntohs (in->sin_port);
  return port != 0 && (port == g.edge_tcp_port || port == g.edge_ws_port ||
                       port == g.target_port || port == g.upstream_port);
}

int
connect (int fd, const struct sockaddr *address, socklen_t length)
{
  static int (*real) (int, const struct sockaddr *, socklen_t);

  if (!address_is_own (address, length))
    {
      errno = ECONNREFUSED;
      return -1;
    }
  if (real == NULL)
    real = dlsym (RTLD_NEXT, "connect");
  return real (fd, address, length);
}

ssize_t
sendto (int fd, const void *buffer, size_t length, int flags, const struct sockaddr *address,
        socklen_t address_length)
{
  static ssize_t (*real) (int, const void *, size_t, int, const struct sockaddr *, socklen_t);

  if (!address_is_own (address, address_length))
    {
      errno = ENETUNREACH;
      return -1;
    }
  if (real == NULL)
    real = dlsym (RTLD_NEXT, "sendto");
  return real (fd, buffer, length, flags, address, address_length);
}

ssize_t
sendmsg (int fd, const struct msghdr *message, int flags)
{
  static ssize_t (*real) (int, const struct msghdr *, int);

  if (!address_is_own (message->msg_name, message->msg_namelen))
    {
      errno = ENETUNREACH;
      return -1;
    }
  if (real == NULL)
    real = dlsym (RTLD_NEXT, "sendmsg");
  return real (fd, message, flags);
}

int
getaddrinfo (const char *node, const char *service, const struct addrinfo *hints,
             struct addrinfo **result)
{
  static int (*real) (const char *, const char *, const struct addrinfo *, struct addrinfo **);
  struct addrinfo numeric = { 0 };

  if (hints != NULL)
    numeric = *hints;
  numeric.ai_flags |= AI_NUMERICHOST;
  if (real == NULL)
    real = dlsym (RTLD_NEXT, "getaddrinfo");
  return real (node, service, &numeric, result);
}

/* ---- the browser (fuzz-client.c) ------------------------------------------------------- */

/* The sentinel: an OPTIONS of the browser's, which the edge sends to the upstream, whose 200
 * must come back on the browser's connection (a new one if the input made the edge close
 * it). A 503 is the edge's when the upstream ended the connection the sentinel went on (after
 * a response of the input's): the next goes on a new one. */
static void
sentinel (void)
{
  guint status = 0;

  for (guint attempt = 0; status == 0 || (status == 503 && attempt < 3); attempt++)
    {
      g_autofree char *call_id = g_strdup_printf ("fuzz-sentinel-%u", ++g.serial);
      g_autofree char *text = sip_text_request ("OPTIONS", "sip:127.0.0.1", "sentinel",
                                                "sip:sentinel@127.0.0.1", call_id, g.serial,
                                                NULL, NULL);

      if (g.browser.closed)
        fuzz_client_connect (&g.browser, g.edge_ws_port);
      status = fuzz_client_request (&g.browser, text, call_id);
    }
  if (status != 200)
    {
      fprintf (stderr, "fuzz-edge: the sentinel OPTIONS got %u\n", status);
      abort ();
    }
}

/* ---- the network: one tcp connection per message --------------------------------------- */

typedef struct {
  GString *in;
  gboolean eof;
} NetworkPeer;

static gboolean
network_on_readable (int fd, GIOCondition condition, gpointer data)
{
  NetworkPeer *peer = data;
  char buffer[16384];
  ssize_t n = recv (fd, buffer, sizeof buffer, MSG_DONTWAIT);

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (n > 0)
    {
      g_string_append_len (peer->in, buffer, n);
      return G_SOURCE_CONTINUE;
    }
  peer->eof = TRUE;
  return G_SOURCE_REMOVE;
}

/* @data over a new connection to the edge's tcp listener, half-closed. A stream is not framed
 * for us (a Content-Length may claim what follows), and Sofia keeps a half-closed connection
 * open while it waits for the rest of a message: then an OPTIONS to the edge itself over a
 * second connection, which the edge answers after it has read the first (its sockets are
 * served in the order they were accepted). */
static void
network_send (const void *data, gsize len)
{
  int fd = fuzz_connect_loopback (g.edge_tcp_port), probe;
  NetworkPeer peer = { g_string_new (NULL), FALSE }, answer = { g_string_new (NULL), FALSE };
  guint watch = g_unix_fd_add (fd, G_IO_IN | G_IO_HUP | G_IO_ERR, network_on_readable, &peer);
  guint probe_watch;
  g_autofree char *call_id = g_strdup_printf ("fuzz-network-sentinel-%u", ++g.serial);
  g_autofree char *uri = g_strdup_printf ("sip:127.0.0.1:%u;transport=tcp", g.edge_tcp_port);
  g_autofree char *options = g_strdup_printf ("OPTIONS %s SIP/2.0\r\n"
                                              "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-%s\r\n"
                                              "Max-Forwards: 70\r\n"
                                              "To: <%s>\r\n"
                                              "From: <%s>;tag=sentinel\r\n"
                                              "Call-ID: %s\r\n"
                                              "CSeq: 1 OPTIONS\r\n"
                                              "Content-Length: 0\r\n"
                                              "\r\n", uri, call_id, uri, uri, call_id);

  if (fuzz_send_all (fd, data, len))
    shutdown (fd, SHUT_WR);
  probe = fuzz_connect_loopback (g.edge_tcp_port);
  probe_watch = g_unix_fd_add (probe, G_IO_IN | G_IO_HUP | G_IO_ERR, network_on_readable,
                               &answer);
  if (!fuzz_send_all (probe, options, strlen (options)))
    g_error ("fuzz-edge: the edge closed the network sentinel's connection");
  while (!answer.eof && !(strstr (answer.in->str, "SIP/2.0 ") != NULL &&
                          strstr (answer.in->str, call_id) != NULL &&
                          g_str_has_suffix (answer.in->str, "\r\n\r\n")))
    g_main_context_iteration (NULL, TRUE);
  if (!g_str_has_prefix (answer.in->str, "SIP/2.0 200 "))
    {
      fprintf (stderr, "fuzz-edge: the network sentinel got: %.80s\n", answer.in->str);
      abort ();
    }
  if (!answer.eof)
    g_source_remove (probe_watch);
  if (!peer.eof)
    g_source_remove (watch);
  close (probe);
  close (fd);
  g_string_free (answer.in, TRUE);
  g_string_free (peer.in, TRUE);
}

/* ---- the upstream: a raw SIP server over tcp -------------------------------------------- */

/* (A peer gone is seen by the read watch.) */
static void
upstream_send (UpstreamConnection *c, const char *text, gsize len)
{
  if (c->fd >= 0)
    fuzz_send_all (c->fd, text, len);
}

/* The flow ids in our Path and Record-Route entries ("sip:<a>.<b>@"): the browser's is the
 * first of the upstream's, the edge's target connection the second of the target's. */
static void
learn_flow (const char *text, gboolean second, char id[FLOW_ID_LENGTH + 1])
{
  g_auto(GStrv) lines = g_strsplit (text, "\r\n", -1);

  for (guint i = 1; lines[i] != NULL && lines[i][0] != '\0'; i++)
    {
      const char *at;

      if (g_ascii_strncasecmp (lines[i], "Path:", 5) != 0 &&
          g_ascii_strncasecmp (lines[i], "Record-Route:", 13) != 0)
        continue;
      for (at = strstr (lines[i], "sip:"); at != NULL; at = strstr (at + 4, "sip:"))
        {
          const char *token = at + 4;
          const char *wanted = second ? token + FLOW_ID_LENGTH + 1 : token;

          if (strlen (token) > 2 * FLOW_ID_LENGTH + 1 && token[FLOW_ID_LENGTH] == '.' &&
              strspn (wanted, "0123456789abcdef") >= FLOW_ID_LENGTH &&
              strncmp (wanted, NO_FLOW, FLOW_ID_LENGTH) != 0)
            {
              memcpy (id, wanted, FLOW_ID_LENGTH);
              id[FLOW_ID_LENGTH] = '\0';
            }
        }
    }
}

/* The input's response to @request: its status line, the request's Via, From, To, Call-ID and
 * CSeq (so that NTA finds the transaction), then the rest of it as it is. */
static GString *
input_response (const char *request)
{
  gsize size;
  const char *data = g_bytes_get_data (g.response, &size);
  const char *eol = memchr (data, '\n', size);
  gsize first = eol != NULL ? (gsize) (eol - data) + 1 : size;
  g_autofree char *headers = sip_text_response (request, 200, "OK");
  const char *after_status = strstr (headers, "\r\n") + 2;
  const char *content_length = strstr (headers, "Content-Length: 0\r\n\r\n");
  GString *response = g_string_new_len (data, first);

  if (eol == NULL)
    g_string_append (response, "\r\n");
  g_string_append_len (response, after_status, content_length - after_status);
  g_string_append_len (response, data + first, size - first);
  return response;
}

/* The input's response, and the connection ends with it. */
static void
upstream_end_with_held (UpstreamConnection *c)
{
  upstream_send (c, c->held_response->str, c->held_response->len);
  g_string_free (c->held_response, TRUE);
  c->held_response = NULL;
  if (c->fd >= 0)
    shutdown (c->fd, SHUT_WR);
  c->draining = TRUE;
}

static void
upstream_on_request (UpstreamConnection *c, const char *text)
{
  g_autofree char *method = sip_text_method (text);
  g_autofree char *call_id = sip_text_header (text, "Call-ID");
  gboolean is_sentinel = call_id != NULL && g_str_has_prefix (call_id, "fuzz-sentinel-");
  g_autofree char *response = NULL;

  learn_flow (text, FALSE, g.flow);
  if (method == NULL || g_str_equal (method, "ACK") || c->draining)
    return;
  if (g.upstream_mode == UPSTREAM_INPUT_RESPONSE && g.response != NULL && !is_sentinel &&
      c->held_response == NULL)
    {
      /* Held until the sentinel comes on this connection: what follows the input's response
       * could be read as its body, or the edge could close the connection on it (and what
       * is pending on it would wait for nothing). */
      c->held_response = input_response (text);
      g_clear_pointer (&g.response, g_bytes_unref);
      return;
    }
  if (is_sentinel && c->held_response != NULL)
    {
      response = sip_text_response (text, 200, "OK");
      upstream_send (c, response, strlen (response));
      upstream_end_with_held (c);
      return;
    }
  if (g.upstream_mode == UPSTREAM_HOLD_INVITE && g_str_equal (method, "INVITE"))
    {
      HeldInvite *held = g_new0 (HeldInvite, 1);

      response = sip_text_response (text, 180, "Ringing");
      upstream_send (c, response, strlen (response));
      held->connection = c;
      held->request = g_strdup (text);
      g_ptr_array_add (g.held, held);
      return;
    }
  if (g_str_equal (method, "CANCEL"))
    for (guint i = 0; i < g.held->len; i++)
      {
        HeldInvite *held = g_ptr_array_index (g.held, i);
        g_autofree char *held_call_id = sip_text_header (held->request, "Call-ID");

        if (held->connection == c && g_strcmp0 (held_call_id, call_id) == 0)
          {
            g_autofree char *terminated = sip_text_response (held->request, 487,
                                                             "Request Terminated");

            response = sip_text_response (text, 200, "OK");
            upstream_send (c, response, strlen (response));
            upstream_send (c, terminated, strlen (terminated));
            g_ptr_array_remove_index (g.held, i);
            return;
          }
      }
  response = sip_text_response (text, 200, "OK");
  upstream_send (c, response, strlen (response));
}

static void
held_invite_free (HeldInvite *held)
{
  g_free (held->request);
  g_free (held);
}

/* Answers what the upstream still holds (486, the input's response), so that no relay stays
 * pending, and waits for the edge to close the connections that ended. An input's response
 * that is incomplete (a Content-Length past its end) leaves the edge waiting for the rest on a
 * half-closed connection, as Sofia does until its idle timeout: after the edge's transaction
 * timeout (2 s, below) that connection is closed from this side instead. */
static void
upstream_release_held (void)
{
  gboolean draining = TRUE;
  gint64 until = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;

  for (guint i = 0; i < g.upstream_connections->len; i++)
    {
      UpstreamConnection *c = g_ptr_array_index (g.upstream_connections, i);

      if (c->held_response != NULL)
        upstream_end_with_held (c);
    }
  while (draining)
    {
      draining = FALSE;
      for (guint i = 0; i < g.upstream_connections->len; i++)
        {
          UpstreamConnection *c = g_ptr_array_index (g.upstream_connections, i);

          draining |= c->draining && c->fd >= 0;
        }
      if (draining && g_get_monotonic_time () > until)
        {
          for (guint i = 0; i < g.upstream_connections->len; i++)
            {
              UpstreamConnection *c = g_ptr_array_index (g.upstream_connections, i);

              if (c->draining && c->fd >= 0)
                {
                  if (c->watch != 0)
                    g_source_remove (c->watch);
                  c->watch = 0;
                  close (c->fd);
                  c->fd = -1;
                }
            }
          draining = FALSE;
        }
      if (draining)
        g_main_context_iteration (NULL, TRUE);
    }
  while (g.held->len > 0)
    {
      HeldInvite *held = g_ptr_array_index (g.held, 0);
      g_autofree char *busy = sip_text_response (held->request, 486, "Busy Here");

      upstream_send (held->connection, busy, strlen (busy));
      g_ptr_array_remove_index (g.held, 0);
    }
}

/* Splits what the edge sent into messages (its own text: a head, then Content-Length bytes). */
static gboolean
upstream_on_readable (int fd, GIOCondition condition, gpointer data)
{
  UpstreamConnection *c = data;
  char buffer[16384];
  ssize_t n = recv (fd, buffer, sizeof buffer, MSG_DONTWAIT);

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (n <= 0)
    {
      /* Freed between inputs (upstream_prune()): a caller up the stack may hold it. */
      for (guint i = g.held->len; i > 0; i--)
        if (((HeldInvite *) g_ptr_array_index (g.held, i - 1))->connection == c)
          g_ptr_array_remove_index (g.held, i - 1);
      c->watch = 0;
      close (c->fd);
      c->fd = -1;
      return G_SOURCE_REMOVE;
    }
  if (c->fd < 0)
    return G_SOURCE_REMOVE;
  g_byte_array_append (c->in, (guint8 *) buffer, n);
  for (;;)
    {
      const char *start = (const char *) c->in->data;
      const char *end;
      g_autofree char *head = NULL, *length_text = NULL;
      gsize skip = 0, head_len, body_len;

      while (skip < c->in->len && (start[skip] == '\r' || start[skip] == '\n'))
        skip++;                     /* CRLF keep-alives */
      g_byte_array_remove_range (c->in, 0, skip);
      start = (const char *) c->in->data;
      end = c->in->len > 0 ? g_strstr_len (start, c->in->len, "\r\n\r\n") : NULL;
      if (end == NULL)
        break;
      head_len = end + 4 - start;
      head = g_strndup (start, head_len);
      length_text = sip_text_header (head, "Content-Length");
      if (length_text == NULL)
        length_text = sip_text_header (head, "l");
      body_len = length_text != NULL ? g_ascii_strtoull (length_text, NULL, 10) : 0;
      if (c->in->len < head_len + body_len)
        break;
      {
        g_autofree char *text = g_strndup (start, head_len + body_len);

        g_byte_array_remove_range (c->in, 0, head_len + body_len);
        if (sip_text_status (text) == 0)
          upstream_on_request (c, text);
      }
      if (c->fd < 0)
        break;
    }
  return G_SOURCE_CONTINUE;
}

static void
upstream_connection_free (UpstreamConnection *c)
{
  if (c->watch != 0)
    g_source_remove (c->watch);
  if (c->fd >= 0)
    close (c->fd);
  if (c->held_response != NULL)
    g_string_free (c->held_response, TRUE);
  g_byte_array_unref (c->in);
  g_free (c);
}

static void
upstream_prune (void)
{
  for (guint i = g.upstream_connections->len; i > 0; i--)
    if (((UpstreamConnection *) g_ptr_array_index (g.upstream_connections, i - 1))->fd < 0)
      g_ptr_array_remove_index (g.upstream_connections, i - 1);
}

static gboolean
upstream_on_accept (int fd, GIOCondition condition, gpointer data)
{
  int accepted = accept4 (fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  UpstreamConnection *c;

  if (accepted < 0)
    return G_SOURCE_CONTINUE;
  c = g_new0 (UpstreamConnection, 1);
  c->fd = accepted;
  c->in = g_byte_array_new ();
  c->watch = g_unix_fd_add (accepted, G_IO_IN | G_IO_HUP | G_IO_ERR, upstream_on_readable, c);
  g_ptr_array_add (g.upstream_connections, c);
  return G_SOURCE_CONTINUE;
}

static void
upstream_start (void)
{
  struct sockaddr_in address = { .sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t length = sizeof address;

  g.upstream_fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  g_assert (g.upstream_fd >= 0);
  g_assert (bind (g.upstream_fd, (struct sockaddr *) &address, sizeof address) == 0);
  g_assert (listen (g.upstream_fd, 16) == 0);
  g_assert (getsockname (g.upstream_fd, (struct sockaddr *) &address, &length) == 0);
  g.upstream_port = ntohs (address.sin_port);
  g.upstream_connections = g_ptr_array_new_with_free_func ((GDestroyNotify)
                                                           upstream_connection_free);
  g.held = g_ptr_array_new_with_free_func ((GDestroyNotify) held_invite_free);
  g_unix_fd_add (g.upstream_fd, G_IO_IN, upstream_on_accept, NULL);
}

/* ---- the ws target: an NTA agent behind the edge's outgoing ws connections -------------- */

/* The request back to the edge over the connection it came on, routed by the Record-Routes
 * it brought (the edge's own, naming that connection), marked so that it is sent once. */
static void
target_reflect (nta_incoming_t *irq, sip_t const *sip)
{
  tport_t *tport = nta_incoming_transport (g.target_agent, irq, NULL);
  msg_t *request = nta_incoming_getrequest (irq);
  msg_t *copy;
  sip_t *csip;
  nta_outgoing_t *orq;

  if (tport == NULL || request == NULL)
    goto out;
  copy = msg_copy (request);
  csip = sip_object (copy);
  while (csip->sip_via != NULL)
    msg_header_remove (copy, (msg_pub_t *) csip, (msg_header_t *) csip->sip_via);
  while (csip->sip_route != NULL)
    msg_header_remove (copy, (msg_pub_t *) csip, (msg_header_t *) csip->sip_route);
  if (csip->sip_record_route != NULL)
    msg_header_add_dup_as (copy, (msg_pub_t *) csip, sip_route_class,
                           (msg_header_t *) csip->sip_record_route);
  while (csip->sip_record_route != NULL)
    msg_header_remove (copy, (msg_pub_t *) csip, (msg_header_t *) csip->sip_record_route);
  msg_header_add_make (copy, (msg_pub_t *) csip, sip_subject_class, "fuzz-reflected");
  orq = nta_outgoing_mcreate (g.target_agent, NULL, NULL,
                              (url_string_t *) (csip->sip_route != NULL
                                                ? csip->sip_route->r_url
                                                : csip->sip_request->rq_url),
                              copy, NTATAG_TPORT (tport), TAG_END ());
  if (orq != NULL)
    nta_outgoing_destroy (orq);
  else
    msg_destroy (copy);
out:
  if (request != NULL)
    msg_destroy (request);
  if (tport != NULL)
    tport_unref (tport);
}

static int
target_on_request (nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq,
                   sip_t const *sip)
{
  gboolean reflected = sip->sip_subject != NULL && sip->sip_subject->g_value != NULL &&
                       g_str_equal (sip->sip_subject->g_value, "fuzz-reflected");
  msg_t *request = nta_incoming_getrequest (irq);

  if (request != NULL)
    {
      char *text = msg_as_string (msg_home (request), request, NULL, 0, NULL);

      if (text != NULL)
        learn_flow (text, TRUE, g.target_flow);
      msg_destroy (request);
    }
  if (g.reflect && !reflected && sip->sip_request->rq_method != sip_method_ack &&
      sip->sip_request->rq_method != sip_method_cancel)
    target_reflect (irq, sip);
  if (sip->sip_request->rq_method == sip_method_ack)
    nta_incoming_destroy (irq);
  else
    {
      nta_incoming_treply (irq, SIP_200_OK, TAG_END ());
      nta_incoming_destroy (irq);
    }
  return 0;
}

/* ---- libFuzzer ---------------------------------------------------------------------------- */

static gboolean
on_deadline (gpointer data)
{
  fprintf (stderr, "fuzz-edge: the sentinel got no answer within 10 s\n");
  abort ();
  return G_SOURCE_REMOVE;
}

static guint16
port_of (tport_t *tp)
{
  return (guint16) atoi (tport_name (tp)->tpn_port);
}

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *upstream = NULL;
  tport_t *tp;

  g_setenv ("SOFIA_WS_PLUGIN_DIR", FUZZ_PLUGIN_DIR, FALSE);
  g_setenv ("TPORT_DEBUG", "0", FALSE);
  g_setenv ("NTA_DEBUG", "0", FALSE);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);

  su_init ();
  g.root = su_glib_root_create (NULL);
  g_source_attach (su_glib_root_gsource (g.root), NULL);
  upstream_start ();

  /* The ws target first: its port must be known before anything dials it. */
  g.target_agent = nta_agent_create (g.root, (url_string_t *) -1, NULL, NULL, NTATAG_UA (0),
                                     TAG_END ());
  g_assert (g.target_agent != NULL);
  tp = sofia_ws_tport_add_listener (g.target_agent, "sip:127.0.0.1:0;transport=ws", &error,
                                    TAG_END ());
  g_assert_no_error (error);
  g.target_port = port_of (tp);
  g.target_leg = nta_leg_tcreate (g.target_agent, target_on_request, NULL,
                                  NTATAG_NO_DIALOG (1), TAG_END ());
  g_assert (g.target_leg != NULL);

  /* The edge as sofia-ws-edge makes it, with transactions that give up after 2 s (not 32):
   * requests the fuzzer sends where nothing answers do not pile up. */
  g.agent = nta_agent_create (g.root, (url_string_t *) -1, NULL, NULL, NTATAG_UA (0),
                              NTATAG_SERVER_RPORT (1), NTATAG_UDP_MTU (65535),
                              NTATAG_SIP_T1X64 (2000), TAG_END ());
  g_assert (g.agent != NULL);
  g_assert (nta_agent_add_tport (g.agent, URL_STRING_MAKE ("sip:127.0.0.1:0;transport=tcp"),
                                 TAG_END ()) == 0);
  g.edge_tcp_port = port_of (tport_primaries (nta_agent_tports (g.agent)));
  tp = sofia_ws_tport_add_listener (g.agent, "sip:127.0.0.1:0;transport=ws", &error,
                                    TAG_END ());
  g_assert_no_error (error);
  g.edge_ws_port = port_of (tp);
  upstream = g_strdup_printf ("sip:127.0.0.1:%u;transport=tcp", g.upstream_port);
  g.edge = registrar_new (g.root, g.agent, &(RegistrarOptions) { .quiet = TRUE,
                                                                 .upstream = upstream,
                                                                 .crlf_keepalive = 30 });
  g_assert (g.edge != NULL);

  g_strlcpy (g.flow, NO_FLOW, sizeof g.flow);
  g_strlcpy (g.target_flow, NO_FLOW, sizeof g.target_flow);
  g.browser = (FuzzClient) { .name = "browser", .fd = -1, .in = g_byte_array_new (),
                             .closed = TRUE };
  fuzz_client_connect (&g.browser, g.edge_ws_port);
  return 0;
}

static GString *
substitute (const guint8 *data, gsize len)
{
  GString *text = g_string_new_len ((const char *) data, len);
  g_autofree char *edge = g_strdup_printf ("127.0.0.1:%u", g.edge_tcp_port);
  g_autofree char *edge_ws = g_strdup_printf ("127.0.0.1:%u", g.edge_ws_port);
  g_autofree char *up = g_strdup_printf ("127.0.0.1:%u", g.upstream_port);
  g_autofree char *ws = g_strdup_printf ("127.0.0.1:%u", g.target_port);

  g_string_replace (text, "@TFLOW@", g.target_flow, 0);
  g_string_replace (text, "@FLOW@", g.flow, 0);
  g_string_replace (text, "@EDGEWS@", edge_ws, 0);
  g_string_replace (text, "@EDGE@", edge, 0);
  g_string_replace (text, "@UP@", up, 0);
  g_string_replace (text, "@WS@", ws, 0);
  return text;
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  guint deadline = g_timeout_add (FUZZ_DEADLINE_US / 1000, on_deadline, NULL);
  struct { const guint8 *data; gsize len; } records[MAX_RECORDS];
  guint n = 0;

  if (size > 0)
    {
      const guint8 *p = data + 1, *end = data + size;

      g.upstream_mode = MIN (data[0] & 3, UPSTREAM_INPUT_RESPONSE);
      g.reflect = (data[0] & 4) != 0;
      while (p < end && n < MAX_RECORDS)
        {
          const guint8 *next = memmem (p, end - p, SEPARATOR, strlen (SEPARATOR));

          records[n].data = p;
          records[n].len = (next != NULL ? next : end) - p;
          n++;
          p = next != NULL ? next + strlen (SEPARATOR) : end;
        }
    }
  else
    g.upstream_mode = UPSTREAM_200, g.reflect = FALSE;

  upstream_prune ();
  g_clear_pointer (&g.response, g_bytes_unref);
  for (guint i = 0; i < n; i++)
    if (records[i].len > 0 && records[i].data[0] == 'r')
      {
        g_autoptr(GString) text = substitute (records[i].data + 1, records[i].len - 1);

        g_clear_pointer (&g.response, g_bytes_unref);
        g.response = g_bytes_new (text->str, text->len);
      }

  for (guint i = 0; i < n; i++)
    {
      const guint8 *record = records[i].data;
      gsize len = records[i].len;

      if (len > 0 && record[0] == 'r')
        continue;
      if (len > 0 && record[0] == 'n')
        {
          g_autoptr(GString) text = substitute (record + 1, len - 1);

          network_send (text->str, text->len);
        }
      else
        {
          g_autoptr(GString) text = len > 0 ? substitute (record + 1, len - 1)
                                            : g_string_new (NULL);

          if (g.browser.closed)
            fuzz_client_connect (&g.browser, g.edge_ws_port);
          fuzz_client_send_message (&g.browser, 0x2, text->str, text->len);
          sentinel ();
        }
    }
  upstream_release_held ();
  g_clear_pointer (&g.response, g_bytes_unref);
  sentinel ();
  g_source_remove (deadline);
  return 0;
}
