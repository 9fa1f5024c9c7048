/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* A SIP user agent's TCP connection for tests: raw text out, whole messages (by Content-Length)
 * in. Reads iterate the thread-default main context while they wait, so that a server running
 * in the same process (NTA on a GLib root) gets its turn. */
typedef struct _SipSocket SipSocket;

SipSocket *sip_socket_connect (guint16     port);
void       sip_socket_send    (SipSocket  *self,
                               const char *text);
/* The next message (CRLF keep-alives skipped), or NULL if the peer closed the connection or
 * nothing came within @timeout_ms. */
char      *sip_socket_read    (SipSocket  *self,
                               guint       timeout_ms);
/* The local "127.0.0.1:port", for Via and Contact. */
const char *sip_socket_local  (SipSocket  *self);
void       sip_socket_close   (SipSocket  *self);

/* @text (made by sip_text_request(), whose Via says WS) with a TCP Via. */
char      *sip_text_over_tcp  (char       *text);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SipSocket, sip_socket_close)

G_END_DECLS
