/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Proves, before the module registers anything, that the libsofia-sip-ua loaded in this
 * process has the layout tport-ws-abi.h declares. A wrong guess would not fail loudly: the
 * library would read and write our structs at other offsets. So the check refuses FreeSWITCH's
 * fork, compares the built-in vtables with our struct sizes and member order, then binds a
 * real tcp primary and reads it back through our declarations, comparing each field with what
 * the library's own accessors or the kernel say about the same object. */
#define _GNU_SOURCE 1                   /* dladdr1(), RTLD_NOLOAD */

#include "tport-ws-abi.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <sofia-sip/msg.h>

/* Members of the built-in tcp and udp vtables. Only the check compares against them; the module
 * must not reuse them (tcp's timer and receive functions work on tp_socket). */
extern tport_vtable_t const tport_tcp_vtable;
extern tport_vtable_t const tport_udp_vtable;
int tport_tcp_init_primary (tport_primary_t *, tp_name_t tpn[1], su_addrinfo_t *, tagi_t const *,
                            char const **);
int tport_accept (tport_primary_t *pri, int events);
int tport_tcp_init_secondary (tport_t *self, int socket, int accepted, char const **);
int tport_recv_stream (tport_t *self);
ssize_t tport_send_stream (tport_t const *self, msg_t *msg, msg_iovec_t iov[], size_t iovused);
int tport_tcp_next_timer (tport_t *self, su_time_t *, char const **);
void tport_tcp_timer (tport_t *self, su_time_t);
int tport_udp_init_primary (tport_primary_t *, tp_name_t tpn[1], su_addrinfo_t *, tagi_t const *,
                            char const **);
int tport_recv_dgram (tport_t *self);
ssize_t tport_send_dgram (tport_t const *self, msg_t *msg, msg_iovec_t iov[], size_t iovused);

#if defined(__x86_64__) && defined(__LP64__)
/* Offsets read off the machine code of Debian's amd64 build (objdump -d of the accessors named
 * here), so that an edit of the header cannot silently move them. Other architectures rely on
 * the run-time check alone. */
G_STATIC_ASSERT (sizeof (tport_vtable_t) == 168);
G_STATIC_ASSERT (offsetof (tport_vtable_t, vtp_pri_size) == 0x10);        /* tport_vtable_by_name */
G_STATIC_ASSERT (offsetof (tport_vtable_t, vtp_secondary_size) == 0x38);  /* tport_vtable_by_name */
G_STATIC_ASSERT (sizeof (tport_params_t) == 48);
G_STATIC_ASSERT (offsetof (tport_params_t, tpp_qsize) == 0x20);           /* tport_queuelen */
G_STATIC_ASSERT (sizeof (tport_t) == 0x1e8);                              /* tport_vtable_by_name */
G_STATIC_ASSERT (offsetof (tport_t, tp_master) == 0x38);                  /* tport_primaries */
G_STATIC_ASSERT (offsetof (tport_t, tp_pri) == 0x40);                     /* tport_has_tls */
G_STATIC_ASSERT (offsetof (tport_t, tp_params) == 0x48);                  /* tport_tcreate */
G_STATIC_ASSERT (offsetof (tport_t, tp_magic) == 0x50);                   /* tport_magic */
G_STATIC_ASSERT (offsetof (tport_t, tp_name) == 0x80);                    /* tport_name */
G_STATIC_ASSERT (offsetof (tport_t, tp_index) == 0xbc);                   /* tport_is_registered */
G_STATIC_ASSERT (offsetof (tport_t, tp_addrinfo) == 0xc8);                /* tport_get_address */
G_STATIC_ASSERT (offsetof (tport_t, tp_queue) == 0x158);                  /* tport_queuelen */
G_STATIC_ASSERT (offsetof (tport_t, tp_qhead) == 0x160);                  /* tport_queuelen */
G_STATIC_ASSERT (sizeof (tport_primary_t) == 0x250);                      /* tport_vtable_by_name */
G_STATIC_ASSERT (offsetof (tport_primary_t, pri_public) == 0x1f0);        /* tport_is_public */
G_STATIC_ASSERT (offsetof (tport_primary_t, pri_next) == 0x1f8);          /* tport_is_updating */
G_STATIC_ASSERT (offsetof (tport_primary_t, pri_open) == 0x200);          /* tport_secondary */
G_STATIC_ASSERT (sizeof (tport_master_t) == 0x2b8);                       /* tport_tcreate */
G_STATIC_ASSERT (offsetof (tport_master_t, mr_stack) == 0x1f0);           /* tport_tcreate */
G_STATIC_ASSERT (offsetof (tport_master_t, mr_tpac) == 0x1f8);            /* tport_tcreate */
G_STATIC_ASSERT (offsetof (tport_master_t, mr_root) == 0x208);            /* tport_tcreate */
G_STATIC_ASSERT (offsetof (tport_master_t, mr_primaries) == 0x228);       /* tport_primaries */
G_STATIC_ASSERT (offsetof (tport_master_t, mr_params) == 0x230);          /* tport_tcreate */
G_STATIC_ASSERT (offsetof (tport_master_t, mr_delivery) == 0x268);        /* tport_delivered_by */
#endif

/* Symbols only FreeSWITCH's fork defines: it has its own ws transport and other layouts. */
static const char *const freeswitch_symbols[] = { "tport_ws_vtable", "sip_transport_ws", NULL };

/* Distinct values, so that two swapped parameters cannot read back as each other. */
enum {
  PROBE_IDLE = 710001,
  PROBE_TIMEOUT = 720002,
  PROBE_KEEPALIVE = 730003,
  PROBE_QSIZE = 47,
};

static gboolean G_GNUC_PRINTF (2, 3)
refuse (char      **why,
        const char *format,
        ...)
{
  va_list args;

  if (why != NULL)
    {
      va_start (args, format);
      *why = g_strdup_vprintf (format, args);
      va_end (args);
    }
  return FALSE;
}

void
tport_ws_abi_expectation_init (TportWsAbiExpectation *expect)
{
  g_return_if_fail (expect != NULL);

  expect->vtable_size = sizeof (tport_vtable_t);
  expect->registry_size = sizeof (tport_vtables);
  expect->primary_size = sizeof (tport_primary_t);
  expect->tport_size = sizeof (tport_t);
  expect->fork_symbols = freeswitch_symbols;
}

/* ---- the library file ------------------------------------------------------------------- */

static gboolean
check_not_fork (void              *lib,
                const char *const *fork_symbols,
                char             **why)
{
  for (; *fork_symbols != NULL; fork_symbols++)
    if (dlsym (lib, *fork_symbols) != NULL)
      return refuse (why, "%s defines %s, so it is FreeSWITCH's sofia-sip fork, whose tport "
                     "structs differ from Debian's 1.12.11 and which has its own ws transport",
                     TPORT_WS_ABI_SONAME, *fork_symbols);
  return TRUE;
}

/* The ELF symbol's own size is the library's sizeof of the object. */
static gboolean
check_symbol_size (void       *lib,
                   const char *name,
                   gsize       expected,
                   const char *what,
                   char      **why)
{
  void *address = dlsym (lib, name);
  const ElfW(Sym) *symbol = NULL;
  Dl_info info;

  if (address == NULL)
    return refuse (why, "%s does not export %s", TPORT_WS_ABI_SONAME, name);
  if (!dladdr1 (address, &info, (void **) &symbol, RTLD_DL_SYMENT) || symbol == NULL)
    return refuse (why, "no symbol information for %s in %s", name, TPORT_WS_ABI_SONAME);
  if (symbol->st_size != expected)
    return refuse (why, "%s is %zu bytes in %s, but this module declares %s as %zu bytes",
                   name, (size_t) symbol->st_size, TPORT_WS_ABI_SONAME, what, (size_t) expected);
  return TRUE;
}

/* ---- the registry of transport types ---------------------------------------------------- */

static gboolean
name_is_sane (const char *name)
{
  gsize i;

  if (name == NULL)
    return FALSE;
  for (i = 0; i < 16 && name[i] != '\0'; i++)
    if (!g_ascii_isgraph (name[i]))
      return FALSE;
  return i > 0 && i < 16;
}

/* Built-in vtables are initialised with the library's own sizeof: exact equality proves our
 * struct sizes, and their function members prove the member order. */
static gboolean
check_builtin (const tport_vtable_t       *vt,
               const char                  *name,
               const TportWsAbiExpectation *expect,
               char                       **why)
{
  if (g_strcmp0 (vt->vtp_name, name) != 0 || vt->vtp_public != tport_type_local)
    return refuse (why, "the built-in %s vtable reads as name \"%s\", kind %d",
                   name, vt->vtp_name, (int) vt->vtp_public);
  if (vt->vtp_pri_size != expect->primary_size || vt->vtp_secondary_size != expect->tport_size)
    return refuse (why, "the built-in %s vtable says the library's tport_primary_t is %zu bytes "
                   "and tport_t %zu bytes, but this module declares %zu and %zu bytes",
                   name, vt->vtp_pri_size, vt->vtp_secondary_size,
                   (size_t) expect->primary_size, (size_t) expect->tport_size);
  return TRUE;
}

#define CHECK_MEMBER(vt, member, function)                                                  \
  G_STMT_START {                                                                            \
    if ((vt)->member != (function))                                                         \
      return refuse (why, "%s." #member " is not " #function ": struct tport_vtable's "     \
                     "member order differs", (vt)->vtp_name);                               \
  } G_STMT_END

static gboolean
check_member_order (char **why)
{
  const tport_vtable_t *tcp = &tport_tcp_vtable;
  const tport_vtable_t *udp = &tport_udp_vtable;

  CHECK_MEMBER (tcp, vtp_init_primary, tport_tcp_init_primary);
  CHECK_MEMBER (tcp, vtp_wakeup_pri, tport_accept);
  CHECK_MEMBER (tcp, vtp_connect, NULL);
  CHECK_MEMBER (tcp, vtp_init_secondary, tport_tcp_init_secondary);
  CHECK_MEMBER (tcp, vtp_recv, tport_recv_stream);
  CHECK_MEMBER (tcp, vtp_send, tport_send_stream);
  CHECK_MEMBER (tcp, vtp_next_secondary_timer, tport_tcp_next_timer);
  CHECK_MEMBER (tcp, vtp_secondary_timer, tport_tcp_timer);
  CHECK_MEMBER (udp, vtp_init_primary, tport_udp_init_primary);
  CHECK_MEMBER (udp, vtp_recv, tport_recv_dgram);
  CHECK_MEMBER (udp, vtp_send, tport_send_dgram);
  CHECK_MEMBER (udp, vtp_secondary_timer, NULL);
  return TRUE;
}

static gboolean
check_registry (const TportWsAbiExpectation *expect,
                char                       **why)
{
  gboolean found_tcp = FALSE, found_udp = FALSE;
  const tport_vtable_t *first_tcp = NULL;
  int i, free_slots = 0;

  if (!check_builtin (&tport_tcp_vtable, "tcp", expect, why) ||
      !check_builtin (&tport_udp_vtable, "udp", expect, why) ||
      !check_member_order (why))
    return FALSE;

  for (i = TPORT_WS_ABI_VTABLE_SLOTS - 1; i >= 0; i--)
    {
      const tport_vtable_t *vt = tport_vtables[i];

      if (vt == NULL)
        {
          free_slots++;
          continue;
        }
      if (!name_is_sane (vt->vtp_name) || (int) vt->vtp_public < tport_type_local ||
          (int) vt->vtp_public > tport_type_socks)
        return refuse (why, "tport_vtables[%d] does not read as a vtable (kind %d)",
                       i, (int) vt->vtp_public);
      /* The limits tport_vtable_by_name() asserts, with our sizes in place of the library's. */
      if (vt->vtp_pri_size < expect->primary_size || vt->vtp_secondary_size < expect->tport_size)
        return refuse (why, "tport_vtables[%d] (%s) allocates %zu-byte primaries and %zu-byte "
                       "secondaries, smaller than this module's tport_primary_t (%zu) and "
                       "tport_t (%zu)", i, vt->vtp_name, vt->vtp_pri_size, vt->vtp_secondary_size,
                       (size_t) expect->primary_size, (size_t) expect->tport_size);
      found_tcp |= vt == &tport_tcp_vtable;
      found_udp |= vt == &tport_udp_vtable;
      if (first_tcp == NULL && vt->vtp_public == tport_type_local &&
          g_ascii_strcasecmp (vt->vtp_name, "tcp") == 0)
        first_tcp = vt;
    }

  if (!found_tcp || !found_udp)
    return refuse (why, "tport_vtables does not hold the built-in %s vtable",
                   found_tcp ? "udp" : "tcp");
  /* The same top-down search as the library's: proves we read the array it searches. */
  if (tport_vtable_by_name ("tcp", tport_type_local) != first_tcp)
    return refuse (why, "tport_vtable_by_name(\"tcp\") disagrees with tport_vtables as read "
                   "here");
  if (free_slots == 0)
    return refuse (why, "all %d slots of tport_vtables are taken", TPORT_WS_ABI_VTABLE_SLOTS);
  return TRUE;
}

/* ---- a live master and tcp primary, read back ------------------------------------------- */

/* tport_tcreate() insists on a stack and its class. Nothing ever reaches them: the probe's root
 * is never run. */
static char probe_stack;

static void
probe_recv (tp_stack_t *stack, tport_t *tp, msg_t *msg, tp_magic_t *magic, su_time_t received)
{
  msg_destroy (msg);
}

static void
probe_error (tp_stack_t *stack, tport_t *tp, int errcode, char const *remote)
{
}

static msg_t *
probe_alloc (tp_stack_t *stack, int flags, char const data[], usize_t size,
             tport_t const *tp, tp_client_t *client)
{
  return NULL;
}

static const tp_stack_class_t probe_class = {
  .tpac_size = sizeof (tp_stack_class_t),
  .tpac_recv = probe_recv,
  .tpac_error = probe_error,
  .tpac_alloc = probe_alloc,
};

/* A master with distinctive parameters and one tcp primary listening on 127.0.0.1, made with
 * the public API only. Destroy it with tport_destroy(). */
tport_t *
tport_ws_abi_probe_bind (su_root_t *root,
                         char     **why)
{
  static const char *const transports[] = { "tcp", NULL };
  const tp_name_t name = { .tpn_proto = "tcp", .tpn_host = "127.0.0.1", .tpn_port = "0" };
  tport_t *master;

  g_return_val_if_fail (root != NULL, NULL);

  master = tport_tcreate ((tp_stack_t *) &probe_stack, &probe_class, root,
                          TPTAG_IDLE (PROBE_IDLE),
                          TPTAG_TIMEOUT (PROBE_TIMEOUT),
                          TPTAG_KEEPALIVE (PROBE_KEEPALIVE),
                          TPTAG_QUEUESIZE (PROBE_QSIZE),
                          TAG_END ());
  if (master == NULL)
    {
      refuse (why, "tport_tcreate() failed: %s", g_strerror (errno));
      return NULL;
    }
  if (tport_tbind (master, &name, transports, TAG_END ()) < 0)
    {
      int saved = errno;

      tport_destroy (master);
      refuse (why, "tport_tbind(tcp/127.0.0.1:0) failed: %s", g_strerror (saved));
      return NULL;
    }
  return master;
}

/* Both a master and a primary: our params must read as the library's tport_get_params(). */
static gboolean
check_params (const char           *who,
              tport_t              *tp,
              const tport_params_t *params,
              char                **why)
{
  unsigned idle = 0, timeout = 0, keepalive = 0, qsize = 0;
  usize_t mtu = 0;
  int tos = 0, reuse = 0;

  if (tport_get_params (tp, TPTAG_IDLE_REF (idle), TPTAG_TIMEOUT_REF (timeout),
                        TPTAG_KEEPALIVE_REF (keepalive), TPTAG_QUEUESIZE_REF (qsize),
                        TPTAG_MTU_REF (mtu), TPTAG_TOS_REF (tos), TPTAG_REUSE_REF (reuse),
                        TAG_END ()) != 7)
    return refuse (why, "%s: tport_get_params() did not answer all 7 parameters", who);
  if (params->tpp_idle != idle || params->tpp_timeout != timeout ||
      params->tpp_keepalive != keepalive || params->tpp_qsize != qsize ||
      params->tpp_mtu != mtu || params->tpp_tos != tos || (int) tp->tp_reusable != reuse)
    return refuse (why, "%s: tport_params_t reads idle=%u timeout=%u keepalive=%u qsize=%u "
                   "mtu=%u tos=%d reusable=%u, the library says %u %u %u %u %u %d %d", who,
                   params->tpp_idle, params->tpp_timeout, params->tpp_keepalive, params->tpp_qsize,
                   params->tpp_mtu, params->tpp_tos, (unsigned) tp->tp_reusable,
                   idle, timeout, keepalive, qsize, (unsigned) mtu, tos, reuse);
  if (idle != PROBE_IDLE || timeout != PROBE_TIMEOUT || keepalive != PROBE_KEEPALIVE ||
      qsize != PROBE_QSIZE)
    return refuse (why, "%s: not the probe's parameters: was it made by "
                   "tport_ws_abi_probe_bind()?", who);
  return TRUE;
}

static gboolean
check_master (tport_master_t *mr,
              su_root_t      *root,
              char          **why)
{
  tport_t *master = mr->mr_master;

  if (master->tp_master != mr || master->tp_pri != NULL)
    return refuse (why, "master: tp_master/tp_pri read %p/%p, expected %p/NULL",
                   (void *) master->tp_master, (void *) master->tp_pri, (void *) mr);
  if (master->tp_params != mr->mr_params)
    return refuse (why, "master: tp_params is %p, expected &mr_params %p",
                   (void *) master->tp_params, (void *) mr->mr_params);
  if (mr->mr_root != root || mr->mr_stack != (tp_stack_t *) &probe_stack ||
      mr->mr_tpac != &probe_class)
    return refuse (why, "master: mr_root/mr_stack/mr_tpac read %p/%p/%p, expected %p/%p/%p",
                   (void *) mr->mr_root, (void *) mr->mr_stack, (void *) mr->mr_tpac,
                   (void *) root, (void *) &probe_stack, (void *) &probe_class);
  if ((tport_t *) mr->mr_primaries != tport_primaries (master))
    return refuse (why, "master: mr_primaries is %p, tport_primaries() says %p",
                   (void *) mr->mr_primaries, (void *) tport_primaries (master));
  return check_params ("master", master, mr->mr_params, why);
}

/* Pointers and embedded members of the primary, each against an accessor of the library. */
static gboolean
check_primary_links (tport_master_t  *mr,
                     tport_primary_t *pri,
                     su_root_t       *root,
                     char           **why)
{
  tport_t *tp = pri->pri_primary;
  gboolean registered = FALSE;
  int i;

  if (tp->tp_master != mr || tp->tp_pri != pri)
    return refuse (why, "tcp primary: tp_master/tp_pri read %p/%p, expected %p/%p (itself)",
                   (void *) tp->tp_master, (void *) tp->tp_pri, (void *) mr, (void *) pri);
  if (tp->tp_params != pri->pri_params)
    return refuse (why, "tcp primary: tp_params is %p, expected its own &pri_params %p",
                   (void *) tp->tp_params, (void *) pri->pri_params);
  for (i = 0; i < TPORT_WS_ABI_VTABLE_SLOTS; i++)
    registered |= tport_vtables[i] == pri->pri_vtable;
  if (pri->pri_vtable != &tport_tcp_vtable || !registered)
    return refuse (why, "tcp primary: pri_vtable is %p, expected tport_tcp_vtable %p from "
                   "tport_vtables", (void *) pri->pri_vtable, (void *) &tport_tcp_vtable);
  if (pri->pri_public != tport_type_local || tport_is_public (tp))
    return refuse (why, "tcp primary: pri_public reads %d, expected tport_type_local",
                   pri->pri_public);
  if ((tport_t *) pri->pri_next != tport_next (tp) || pri->pri_open != tport_secondary (tp) ||
      pri->pri_closed != NULL)
    return refuse (why, "tcp primary: pri_next/pri_open/pri_closed read %p/%p/%p, "
                   "the library says %p/%p/NULL", (void *) pri->pri_next, (void *) pri->pri_open,
                   (void *) pri->pri_closed, (void *) tport_next (tp),
                   (void *) tport_secondary (tp));
  if (tp->tp_name != tport_name (tp) || tp->tp_addrinfo != tport_get_address (tp))
    return refuse (why, "tcp primary: tp_name/tp_addrinfo at %p/%p, the library says %p/%p",
                   (void *) tp->tp_name, (void *) tp->tp_addrinfo, (void *) tport_name (tp),
                   (void *) tport_get_address (tp));
  if (tp->tp_timer == NULL || su_timer_root (tp->tp_timer) != root)
    return refuse (why, "tcp primary: tp_timer %p is not a timer on the master's root",
                   (void *) tp->tp_timer);
  return TRUE;
}

/* The address as tport stores it, against the kernel's view of tp_socket. */
static gboolean
check_primary_address (tport_t *tp,
                       char   **why)
{
  const su_addrinfo_t *ai = tp->tp_addrinfo;
  struct sockaddr_in bound;
  socklen_t length = sizeof bound;
  int type = 0, listening = 0;
  socklen_t int_length = sizeof (int);
  char port[16];

  if (g_strcmp0 (tp->tp_name->tpn_proto, "tcp") != 0 ||
      g_strcmp0 (tp->tp_name->tpn_host, "127.0.0.1") != 0)
    return refuse (why, "tcp primary: tp_name reads %s/%s, expected tcp/127.0.0.1",
                   tp->tp_name->tpn_proto, tp->tp_name->tpn_host);
  if (ai->ai_family != AF_INET || ai->ai_socktype != SOCK_STREAM ||
      ai->ai_protocol != IPPROTO_TCP || ai->ai_addr != &tp->tp_addr->su_sa ||
      ai->ai_addrlen != sizeof (struct sockaddr_in))
    return refuse (why, "tcp primary: tp_addrinfo reads family %d socktype %d protocol %d "
                   "addrlen %u ai_addr %p, expected %d %d %d %u and &tp_addr %p",
                   ai->ai_family, ai->ai_socktype, ai->ai_protocol, (unsigned) ai->ai_addrlen,
                   (void *) ai->ai_addr, AF_INET, SOCK_STREAM, IPPROTO_TCP,
                   (unsigned) sizeof (struct sockaddr_in), (void *) &tp->tp_addr->su_sa);
  if (getsockopt (tp->tp_socket, SOL_SOCKET, SO_TYPE, &type, &int_length) != 0 ||
      getsockopt (tp->tp_socket, SOL_SOCKET, SO_ACCEPTCONN, &listening, &int_length) != 0 ||
      type != SOCK_STREAM || !listening ||
      getsockname (tp->tp_socket, (struct sockaddr *) &bound, &length) != 0 ||
      bound.sin_family != AF_INET)
    return refuse (why, "tcp primary: tp_socket (%d) is not a listening IPv4 tcp socket",
                   tp->tp_socket);
  g_snprintf (port, sizeof port, "%u", (unsigned) ntohs (bound.sin_port));
  if (tp->tp_addr->su_sin.sin_port != bound.sin_port ||
      g_strcmp0 (tp->tp_name->tpn_port, port) != 0)
    return refuse (why, "tcp primary: tp_addr port %u and tpn_port \"%s\" do not match the "
                   "socket's port %s", (unsigned) ntohs (tp->tp_addr->su_sin.sin_port),
                   tp->tp_name->tpn_port, port);
  if (tp->tp_index <= 0 || tp->tp_events != SU_WAIT_ACCEPT)
    return refuse (why, "tcp primary: tp_index %d / tp_events %#x, expected a registration "
                   "index and SU_WAIT_ACCEPT", tp->tp_index, (unsigned) tp->tp_events);
  return TRUE;
}

/* Bits and words with no getter of their own that returns a pointer: write a value through our
 * declaration, ask the library, put the old value back. Nothing runs in between: the probe's
 * root is not running, and this is its thread. */
static gboolean
check_primary_flags (tport_master_t  *mr,
                     tport_primary_t *pri,
                     char           **why)
{
  tport_t *tp = pri->pri_primary;
  int saved_index = tp->tp_index;
  tp_magic_t *saved_magic = tport_magic (tp);
  gboolean flags_ok, index_ok, magic_ok, delivery_ok;
  static char magic_probe, msg_probe;
  tport_t *saved_d_tport;
  msg_t *saved_d_msg;

  if (tp->tp_accepted || !tp->tp_conn_orient || tp->tp_has_connection || !tp->tp_reusable ||
      tp->tp_closed || tp->tp_is_connected || pri->pri_updating || pri->pri_has_tls)
    return refuse (why, "tcp primary: the flags read accepted=%u conn_orient=%u "
                   "has_connection=%u reusable=%u closed=%u connected=%u updating=%u tls=%u, "
                   "expected 0 1 0 1 0 0 0 0", tp->tp_accepted, tp->tp_conn_orient,
                   tp->tp_has_connection, tp->tp_reusable, tp->tp_closed, tp->tp_is_connected,
                   pri->pri_updating, pri->pri_has_tls);

  tp->tp_closed = 1;
  tp->tp_is_connected = 1;
  pri->pri_updating = 1;
  pri->pri_has_tls = 1;
  flags_ok = tport_is_closed (tp) && tport_is_connected (tp) && tport_is_updating (tp) &&
             tport_has_tls (tp);
  tp->tp_closed = 0;
  tp->tp_is_connected = 0;
  pri->pri_updating = 0;
  pri->pri_has_tls = 0;
  flags_ok = flags_ok && !tport_is_closed (tp) && !tport_is_connected (tp) &&
             !tport_is_updating (tp) && !tport_has_tls (tp);
  if (!flags_ok)
    return refuse (why, "tcp primary: tp_closed, tp_is_connected, pri_updating or pri_has_tls "
                   "is not the bit the library reads");

  tp->tp_index = 0;
  index_ok = !tport_is_registered (tp);
  tp->tp_index = -1;
  index_ok = index_ok && tport_is_registered (tp);
  tp->tp_index = saved_index;
  if (!index_ok)
    return refuse (why, "tcp primary: tp_index is not the word tport_is_registered() reads");

  tport_set_magic (tp, (tp_magic_t *) &magic_probe);
  magic_ok = tp->tp_magic == (tp_magic_t *) &magic_probe;
  tport_set_magic (tp, saved_magic);
  if (!magic_ok)
    return refuse (why, "tcp primary: tp_magic is not where tport_set_magic() writes");

  saved_d_tport = mr->mr_delivery->d_tport;
  saved_d_msg = mr->mr_delivery->d_msg;
  mr->mr_delivery->d_tport = tp;
  mr->mr_delivery->d_msg = (msg_t *) &msg_probe;
  delivery_ok = tport_delivered_by (mr->mr_master, (msg_t *) &msg_probe) == tp;
  mr->mr_delivery->d_tport = saved_d_tport;
  mr->mr_delivery->d_msg = saved_d_msg;
  if (!delivery_ok)
    return refuse (why, "master: mr_delivery is not where tport_delivered_by() reads");
  return TRUE;
}

/* master: made by tport_ws_abi_probe_bind() on root. Reads it and its tcp primary through our
 * declarations, comparing every field with what the library or the kernel says. */
gboolean
tport_ws_abi_check_master (tport_t   *master,
                           su_root_t *root,
                           char     **why)
{
  tport_master_t *mr = (tport_master_t *) master;
  tport_primary_t *pri;

  g_return_val_if_fail (master != NULL, FALSE);
  g_return_val_if_fail (root != NULL, FALSE);

  if (!tport_is_master (master))
    return refuse (why, "not a master tport");
  if (!check_master (mr, root, why))
    return FALSE;

  /* mr_primaries agrees with tport_primaries() by now; tp_pri is checked next. */
  pri = mr->mr_primaries;
  if (pri == NULL)
    return refuse (why, "master: the probe's tcp primary is missing");

  return check_primary_links (mr, pri, root, why) &&
         check_primary_address (pri->pri_primary, why) &&
         check_params ("tcp primary", pri->pri_primary, pri->pri_params, why) &&
         check_primary_flags (mr, pri, why);
}

static gboolean
check_live (char **why)
{
  su_root_t *root = su_root_create (NULL);
  tport_t *master;
  gboolean ok;

  if (root == NULL)
    return refuse (why, "su_root_create() failed: %s", g_strerror (errno));
  master = tport_ws_abi_probe_bind (root, why);
  ok = master != NULL && tport_ws_abi_check_master (master, root, why);
  tport_destroy (master);
  su_root_destroy (root);
  return ok;
}

/* ---- entry points ----------------------------------------------------------------------- */

gboolean
tport_ws_abi_check_with (const TportWsAbiExpectation *expect,
                         char                       **why)
{
  void *lib;
  gboolean ok;

  g_return_val_if_fail (expect != NULL, FALSE);
  g_return_val_if_fail (why == NULL || *why == NULL, FALSE);

  /* The copy this process uses, whatever linked it in: the module, the app or a dlopen. */
  lib = dlopen (TPORT_WS_ABI_SONAME, RTLD_LAZY | RTLD_NOLOAD);
  if (lib == NULL)
    return refuse (why, "%s is not loaded: %s", TPORT_WS_ABI_SONAME, dlerror ());

  ok = check_not_fork (lib, expect->fork_symbols, why) &&
       check_symbol_size (lib, "tport_tcp_vtable", expect->vtable_size, "struct tport_vtable",
                          why) &&
       check_symbol_size (lib, "tport_vtables", expect->registry_size, "tport_vtables[]", why) &&
       check_registry (expect, why) &&
       check_live (why);

  dlclose (lib);
  return ok;
}

/**
 * tport_ws_abi_check:
 * @why: (out) (optional) (transfer full): where to store why the check failed
 *
 * Proves that the libsofia-sip-ua in this process has the private layout tport-ws-abi.h
 * declares, before anything is registered with it. It binds and destroys a tcp transport on
 * 127.0.0.1 with a su_root of its own, so it must run on a thread that may create one.
 *
 * Returns: %TRUE if the layouts match; otherwise %FALSE with *@why set (free with g_free())
 */
gboolean
tport_ws_abi_check (char **why)
{
  TportWsAbiExpectation expect;

  tport_ws_abi_expectation_init (&expect);
  /* For tests of the refusal path on a real process: expect the struct sizes of FreeSWITCH's
   * fork (tport_t 520 bytes, tport_primary_t 632), as a module built for it would. */
  if (g_getenv ("SOFIA_WS_SIMULATE_FOREIGN_ABI") != NULL)
    {
      expect.tport_size = 520;
      expect.primary_size = 632;
    }
  return tport_ws_abi_check_with (&expect, why);
}

/* ---- NUA ------------------------------------------------------------------------------------ */

struct nta_agent_s *
tport_ws_abi_nua_agent (struct nua_s *nua)
{
  su_home_t const *home = (su_home_t const *) nua;

  if (nua == NULL || home->suh_size != TPORT_WS_ABI_NUA_SIZE)
    return NULL;
  return *(struct nta_agent_s **) ((char *) nua + TPORT_WS_ABI_NUA_NTA_OFFSET);
}
