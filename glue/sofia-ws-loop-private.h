/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <libwebsockets.h>

G_BEGIN_DECLS

/* One libwebsockets context per GMainContext, shared by every WebSocket transport and listener
 * created with that context as their thread default.
 *
 * lws runs on a libuv loop (lws's uv event library, loaded at run time from
 * libwebsockets-evlib-uv), and the uv loop sits in the GMainContext as one GSource: its single
 * epoll fd and its next timeout. So a GMainContext iteration costs the same with ten or ten
 * thousand connections, unlike lws's glib event library, which adds a GSource per connection
 * (DESIGN.md, "Scale trap"). All lws callbacks run from that GSource, on the context's thread. */
typedef struct _SofiaWsLoop SofiaWsLoop;

/* The protocol callback every vhost of the loop uses; it lives with the connections. */
int sofia_ws_loop_protocol_callback (struct lws               *wsi,
                                     enum lws_callback_reasons reason,
                                     void                     *user,
                                     void                     *in,
                                     size_t                    len);

SofiaWsLoop        *sofia_ws_loop_ref_for_context     (GMainContext  *context,
                                                       GError       **error);
SofiaWsLoop        *sofia_ws_loop_ref                 (SofiaWsLoop   *loop);
void                sofia_ws_loop_unref               (SofiaWsLoop   *loop);
/* The lws context of the clients, made on first use. */
struct lws_context *sofia_ws_loop_get_client_context  (SofiaWsLoop   *loop,
                                                       GError       **error);
/* Each listener has an lws context of its own on the loop: lws 4.1 closes a vhost's listen
 * socket only when its context is destroyed. */
struct lws_context *sofia_ws_loop_new_server_context  (SofiaWsLoop   *loop,
                                                       GError       **error);
/* Destroys it asynchronously while the loop goes on; @done (may be NULL) is completed
 * once its sockets are closed. */
void                sofia_ws_loop_destroy_server_context (SofiaWsLoop        *loop,
                                                          struct lws_context *lws,
                                                          GPtrArray          *done);
GMainContext       *sofia_ws_loop_get_main_context    (SofiaWsLoop   *loop);

/* A client vhost for one TLS trust setting (ca_file NULL: the system's CAs). */
struct lws_vhost   *sofia_ws_loop_get_client_vhost    (SofiaWsLoop   *loop,
                                                       const char    *ca_file,
                                                       GError       **error);

/* lws's liveness policy: a WebSocket PING after @ping_secs without a PONG, a hang-up after
 * @hangup_secs. Owned by the loop (lws keeps the pointer for the connection's life); with
 * @ping_secs 0, a static policy of zeros: no PINGs at all (NULL would mean lws's default). */
const lws_retry_bo_t *sofia_ws_loop_get_liveness_policy (SofiaWsLoop *loop,
                                                         guint        ping_secs,
                                                         guint        hangup_secs);

/* Call after any lws call made from outside an lws callback (asking for WRITEABLE, closing,
 * connecting): libuv applies fd interest changes only when it next runs, so the loop source
 * is made ready at once. */
void                sofia_ws_loop_kick                (SofiaWsLoop   *loop);

/* Call after arming an lws timeout on @wsi from outside an lws callback: lws re-arms its
 * timer only when it services, so its context is woken through its event pipe. */
void                sofia_ws_loop_wake                (SofiaWsLoop   *loop,
                                                       struct lws    *wsi);

/* The size of the per-connection data every vhost declares. */
typedef struct {
  gpointer connection;            /* the SofiaWsWebSocket, not a reference */
} SofiaWsSessionData;

extern const struct lws_protocols sofia_ws_loop_protocols[];

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SofiaWsLoop, sofia_ws_loop_unref)

G_END_DECLS
