/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The part of libsofia-sip-ua's private transport ABI that the ws/wss tport module relies on.
 *
 * libsofia-sip-ua exports tport_register_type() and the helpers below, but installs no header
 * for them nor for the structs a transport type must extend. The module therefore declares
 * them itself, written from reading Debian's sofia-sip 1.12.11+20110422.1+1e14eea~dfsg-6
 * (libsofia-sip-ua/tport/tport_internal.h and tport.c) and checked against the binary.
 *
 * The module allocates its own primaries and secondaries with these structs at their head
 * (vtp_pri_size, vtp_secondary_size), so each struct lists every member up to the last one
 * the module or the library touches, in the library's order and with the library's types.
 * Never reorder, insert or drop a member: the offsets are the contract.
 *
 * FreeSWITCH's fork (1.13.x) ships the same SONAME, libsofia-sip-ua.so.0, with other layouts
 * (an extra tp_refs in tport_t, a longer tport_params_t and tport_master_t). So this header
 * compiles only where meson found sofia-sip-ua 1.12.11, and tport_ws_abi_check() must pass
 * before the module registers anything. */
#pragma once

#ifndef TPORT_WS_ABI_SOFIA_1_12_11
#error "tport-ws-abi.h describes sofia-sip-ua 1.12.11 only; plugin/meson.build defines TPORT_WS_ABI_SOFIA_1_12_11 after checking the version"
#endif

#include <glib.h>
#include <stdint.h>
#include <stdio.h>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_strlst.h>
#include <sofia-sip/su_time.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_plugins.h>

G_BEGIN_DECLS

/* The file the check inspects, and whose private symbols the module links against. */
#define TPORT_WS_ABI_SONAME "libsofia-sip-ua.so.0"

/* tport_vtables[] holds 64 registrable types plus one, searched from the top down. */
#define TPORT_WS_ABI_VTABLE_SLOTS 65

typedef struct tport_master tport_master_t;
typedef struct tport_primary tport_primary_t;
typedef struct tport_vtable tport_vtable_t;

/* Opaque here: only its address is stored in tport_t. */
typedef struct tport_pending_s tport_pending_t;

/* Transport parameters. A primary owns one copy (pri_params); its secondaries point at that
 * copy through tp_params, so the module reads them (idle time, queue size) but never changes
 * them through a secondary. */
typedef struct {
  unsigned tpp_mtu;
  unsigned tpp_idle;              /* ms without traffic before the base timer closes a secondary */
  unsigned tpp_timeout;           /* ms allowed for one incomplete message */
  unsigned tpp_keepalive;         /* tcp's CRLF ping interval; the WS module keeps its own pings */
  unsigned tpp_pingpong;
  unsigned tpp_sigcomp_lifetime;
  unsigned tpp_thrpsize;
  unsigned tpp_thrprqsize;
  unsigned tpp_qsize;             /* length of tport's own send queue (also tcp's listen backlog) */
  unsigned tpp_drop;
  int tpp_tos;                    /* -1 = leave IP TOS alone */
  unsigned tpp_conn_orient:1;
  unsigned tpp_sdwn_error:1;
  unsigned tpp_stun_server:1;
  unsigned tpp_pong2ping:1;
  unsigned :0;
} tport_params_t;

/* A transport: the master, a primary (one per bound protocol/address) or a secondary (one per
 * connection). The module's secondaries are its WebSocket connections. */
struct tport_s {
  su_home_t tp_home[1];           /* a tport is a su_home clone; tport_ref/unref count on it */

  /* One word of flags. */
  unsigned tp_accepted:1;         /* the peer connected to us (an lws server-side wsi) */
  unsigned tp_conn_orient:1;      /* set on WS primaries and secondaries */
  unsigned tp_has_connection:1;   /* set by vtp_init_secondary: there is a real connection */
  unsigned tp_reusable:1;         /* inherited from the master; lets tport_by_name() reuse a WS */
  unsigned tp_closed:1;           /* tport_close() ran: the secondary waits in pri_closed */
  unsigned tp_recv_close:2;       /* 2 = peer finished sending */
  unsigned tp_send_close:2;       /* 1 = we will close, 2 = we have closed */
  unsigned tp_has_keepalive:1;
  unsigned tp_has_stun_server:1;
  unsigned tp_trunc:1;
  unsigned tp_is_connected:1;     /* set once the WS handshake is complete */
  unsigned tp_verified:1;         /* wss: the peer's certificate chain was verified */
  unsigned tp_error_reported:1;
  unsigned tp_black:1;            /* red-black colour; the module links pri_open itself */
  unsigned :0;

  tport_t *tp_left;               /* pri_open / pri_closed red-black tree links */
  tport_t *tp_right;
  tport_t *tp_dad;

  tport_master_t *tp_master;
  tport_primary_t *tp_pri;        /* a primary points at itself */
  tport_params_t *tp_params;      /* a primary's &pri_params, shared by its secondaries */
  tp_magic_t *tp_magic;           /* the stack's context, copied from the master */
  su_timer_t *tp_timer;           /* a primary's timer also reaps its closed secondaries */
  su_time_t tp_ktime;
  su_time_t tp_ptime;

  tp_name_t tp_name[1];           /* primary: our "WS" name and Via host; secondary: the peer */
  su_strlst_t *tp_subjects;

  su_socket_t tp_socket;          /* INVALID_SOCKET on WS tports: lws owns the file descriptor */
  int tp_index;                   /* su_root registration; -1 on WS secondaries (see the notes) */
  int tp_events;                  /* never SU_WAIT_OUT on WS, or tport queues sends itself */

  su_addrinfo_t tp_addrinfo[1];   /* ai_socktype SOCK_SEQPACKET on WS secondaries: reliable but
                                   * message-framed, so one bad message does not end the stream */
  su_sockaddr_t tp_addr[1];       /* ai_addr of a primary points here */

  /* Receiving */
  msg_t *tp_msg;                  /* message being parsed; each WS message starts a new one */
  msg_t const *tp_rlogged;
  su_time_t tp_rtime;             /* last data received: the idle timer measures from here */
  unsigned short tp_ping;

  /* Requests waiting for responses */
  unsigned short tp_reported;
  unsigned tp_plen;
  unsigned tp_pused;
  tport_pending_t *tp_pending;
  tport_pending_t *tp_released;

  /* tport's own send queue: stays empty, vtp_send always takes the whole message */
  msg_t **tp_queue;
  unsigned short tp_qhead;
  msg_iovec_t *tp_unsent;
  size_t tp_unsentlen;
  msg_iovec_t *tp_iov;
  size_t tp_iovlen;
  msg_t const *tp_slogged;
  su_time_t tp_stime;

  tport_compressor_t *tp_comp;

  struct {
    uint64_t sent_msgs, sent_errors, sent_bytes, sent_on_line;
    uint64_t recv_msgs, recv_errors, recv_bytes, recv_on_line;
  } tp_stats;
};

/* A primary: the WS listener (or the client side of a master). The module allocates it itself,
 * because tport_tbind() cannot reach a "ws" vtable. */
struct tport_primary {
  tport_t pri_primary[1];
  tport_vtable_t const *pri_vtable;
  int pri_public;                 /* enum tport_via, copied from vtp_public */
  tport_primary_t *pri_next;      /* the master's mr_primaries list */
  tport_t *pri_open;              /* root of the red-black tree of open secondaries */
  tport_t *pri_closed;            /* closed secondaries waiting for the reaper */
  unsigned pri_updating:1;
  unsigned pri_natted:1;
  unsigned pri_has_tls:1;         /* set on a WSS primary, so tport_has_tls() says so */
  unsigned :0;
  void *pri_stun_handle;
  tport_params_t pri_params[1];
};

/* The master: one per NTA agent, created by tport_tcreate(). Never allocated by the module; it
 * links its primary into mr_primaries and reads the root and the stack's callbacks. */
struct tport_master {
  tport_t mr_master[1];
  int mr_stun_step_ready;
  tp_stack_t *mr_stack;
  tp_stack_class_t const *mr_tpac;
  int mr_log;
  su_root_t *mr_root;             /* the loop the module's timers must run on */
  su_timer_t *mr_timer;
  FILE *mr_dump_file;
  char *mr_dump;
  tport_primary_t *mr_primaries;  /* a bound WS primary is appended here */
  tport_params_t mr_params[1];    /* a new primary starts from a copy of these */
  unsigned mr_boundserver:1;
  unsigned mr_bindv6only:1;
  unsigned :0;
  struct {
    tport_t *d_tport;
    msg_t *d_msg;
    tp_name_t d_from[1];
    tport_compressor_t *d_comp;
  } mr_delivery[1];               /* what tport_delivered_by() and friends answer from */
  tport_stun_server_t *mr_stun_server;
};

/* A transport type: 21 members, the same in Debian's 1.12.11 and FreeSWITCH's fork. Registered
 * vtables are never unregistered, so the module's must live in static storage. */
struct tport_vtable {
  char const *vtp_name;           /* "WS"/"WSS": the Via protocol NTA prints */
  enum tport_via vtp_public;      /* tport_type_local for a listener */
  size_t vtp_pri_size;            /* >= sizeof (tport_primary_t), asserted on lookup */
  int (*vtp_init_primary) (tport_primary_t *pri, tp_name_t tpn[1], su_addrinfo_t *ai,
                           tagi_t const *tags, char const **return_culprit);
  void (*vtp_deinit_primary) (tport_primary_t *pri);
  int (*vtp_wakeup_pri) (tport_primary_t *pri, int events);
  tport_t *(*vtp_connect) (tport_primary_t *pri, su_addrinfo_t *ai, tp_name_t const *tpn);
  size_t vtp_secondary_size;      /* >= sizeof (tport_t), asserted on lookup */
  int (*vtp_init_secondary) (tport_t *self, int socket, int accepted, char const **return_reason);
  void (*vtp_deinit_secondary) (tport_t *self);
  void (*vtp_shutdown) (tport_t *self, int how);       /* NULL would shutdown(tp_socket) */
  int (*vtp_set_events) (tport_t const *self);         /* NULL would call su_root_eventmask() */
  int (*vtp_wakeup) (tport_t *self, int events);
  int (*vtp_recv) (tport_t *self);                     /* 0 means end of stream: return 1 */
  ssize_t (*vtp_send) (tport_t const *self, msg_t *msg, msg_iovec_t iov[], size_t iovused);
  void (*vtp_deliver) (tport_t *self, msg_t *msg, su_time_t now);
  int (*vtp_prepare) (tport_t *self, msg_t *msg, tp_name_t const *tpn,
                      struct sigcomp_compartment *cc, unsigned mtu);
  int (*vtp_keepalive) (tport_t *self, su_addrinfo_t const *ai, tagi_t const *taglist);
  int (*vtp_stun_response) (tport_t const *self, void *msg, size_t msglen,
                            void *addr, socklen_t addrlen);
  int (*vtp_next_secondary_timer) (tport_t *self, su_time_t *when, char const **return_why);
  void (*vtp_secondary_timer) (tport_t *self, su_time_t now);
};

/* The registry tport_register_type() fills from the top and tport_vtable_by_name() searches
 * from the top, so a registered type shadows a built-in one of the same name and kind. */
extern tport_vtable_t const *tport_vtables[TPORT_WS_ABI_VTABLE_SLOTS];

/* Exported private functions the module calls (all in Debian's libsofia-sip-ua0.symbols). */

int tport_register_type (tport_vtable_t const *vtp);
tport_vtable_t const *tport_vtable_by_name (char const *protoname, enum tport_via public);

/* Allocates vtp_secondary_size bytes and calls vtp_init_secondary; the module passes
 * INVALID_SOCKET because lws owns the connection's socket. */
tport_t *tport_alloc_secondary (tport_primary_t *pri, int socket, int accepted,
                                char const **return_reason);
/* Fills tp_name and tp_addrinfo/tp_addr from an address. */
int tport_setname (tport_t *self, char const *protoname, su_addrinfo_t const *ai,
                   char const *canon);
/* Tells the stack a primary changed (NTA then rebuilds its Via list). */
void tport_has_been_updated (tport_t *self);
/* Registers tp_socket with su_root: unusable with INVALID_SOCKET; the module links pri_open
 * itself instead. Declared so that nobody mistakes it for the way in. */
int tport_register_secondary (tport_t *self, su_wakeup_f wakeup, int events);
/* tp_index != 0, which -1 satisfies (makes WS secondaries clear to send). */
int tport_is_registered (tport_t const *self);

int tport_set_secondary_timer (tport_t *self);
void tport_base_timer (tport_t *self, su_time_t now);

/* Receiving: vtp_recv fills a message with tport_recv_iovec(), then msg_recv_commit(eos=1). */
void tport_recv_event (tport_t *self);
ssize_t tport_recv_iovec (tport_t const *self, msg_t **mmsg, msg_iovec_t iovec[msg_n_fragments],
                          size_t n, int exact);
void tport_recv_bytes (tport_t *self, ssize_t bytes, ssize_t on_line);
void tport_base_deliver (tport_t *self, msg_t *msg, su_time_t now);
/* Message counts (tp_stats.recv_msgs, recv_errors) of the tport, its primary and the master:
 * exported but never called by the library itself, so tcp's stay 0; the ws module counts. */
void tport_recv_message (tport_t *self, msg_t *msg, int error);

/* Closing and errors. */
void tport_close (tport_t *self);
int tport_shutdown0 (tport_t *self, int how);
void tport_zap_secondary (tport_t *self);
void tport_error_report (tport_t *self, int errcode, su_sockaddr_t const *addr);

/* TPORT_LOG / TPORT_DUMP output, as the built-in transports produce it. */
void tport_log_msg (tport_t *self, msg_t *msg, char const *what, char const *via,
                    su_time_t now);
void tport_dump_iovec (tport_t const *self, msg_t *msg, size_t n, su_iovec_t const iov[],
                       size_t iovused, char const *what, char const *how);

/* A primary's tport is the first member of its tport_primary_t. */
static inline gboolean
tport_ws_abi_is_primary (tport_t const *tp)
{
  return tp->tp_pri != NULL && (tport_t const *) tp->tp_pri->pri_primary == tp;
}

/* ---- NUA: the agent behind a nua_t ----------------------------------------------------------
 * libsofia-sip-ua 1.12.11 exports no accessor for a NUA stack's NTA agent (FreeSWITCH's fork
 * has nua_get_agent()). struct nua_s (nua/nua_stack.h) starts with its su_home_t, whose
 * suh_size is sizeof (struct nua_s) (nua_create() allocates it with su_home_new()), and holds
 * the agent in nua_nta. Returns NULL unless the size matches. */
#define TPORT_WS_ABI_NUA_SIZE 376
#define TPORT_WS_ABI_NUA_NTA_OFFSET 328

struct nua_s;
struct nta_agent_s;
struct nta_agent_s *tport_ws_abi_nua_agent (struct nua_s *nua);

/* ---- run-time check --------------------------------------------------------------------- */

gboolean tport_ws_abi_check (char **why);

/* The stages of tport_ws_abi_check(), exposed so that tests can feed them a mismatch. */

typedef struct {
  gsize vtable_size;              /* sizeof (tport_vtable_t) */
  gsize registry_size;            /* sizeof (tport_vtables) */
  gsize primary_size;             /* sizeof (tport_primary_t) */
  gsize tport_size;               /* sizeof (tport_t) */
  const char *const *fork_symbols; /* NULL-terminated; any of them present = FreeSWITCH's fork */
} TportWsAbiExpectation;

void tport_ws_abi_expectation_init (TportWsAbiExpectation *expect);
gboolean tport_ws_abi_check_with (const TportWsAbiExpectation *expect, char **why);
tport_t *tport_ws_abi_probe_bind (su_root_t *root, char **why);
gboolean tport_ws_abi_check_master (tport_t *master, su_root_t *root, char **why);

G_END_DECLS
