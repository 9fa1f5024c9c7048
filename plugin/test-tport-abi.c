/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tport_ws_abi_check() against Debian's libsofia-sip-ua: it passes on the real library, and each
 * of its stages fails, with a reason naming what differs, when fed a layout that does not match
 * (FreeSWITCH's struct sizes, a longer vtable, a fork-only symbol, a field read at the wrong
 * place in a live primary). */
#include "tport-ws-abi.h"

#include <string.h>
#include <sys/socket.h>

/* Sizes of FreeSWITCH's fork (1.13.17) on amd64: tport_t gains tp_refs and more. */
enum {
  FREESWITCH_PRIMARY_SIZE = 632,
  FREESWITCH_TPORT_SIZE = 520,
};

static void
assert_refused (gboolean    ok,
                const char *why,
                const char *must_mention)
{
  g_test_message ("refused: %s", why ? why : "(no reason)");
  g_assert_false (ok);
  g_assert_nonnull (why);
  g_assert_nonnull (strstr (why, must_mention));
}

static void
test_check_passes (void)
{
  char *why = NULL;
  gboolean ok = tport_ws_abi_check (&why);

  g_assert_cmpstr (why, ==, NULL);
  g_assert_true (ok);
  /* A second run finds the library as the first one left it. */
  g_assert_true (tport_ws_abi_check (NULL));
}

static void
test_check_refuses_freeswitch_sizes (void)
{
  TportWsAbiExpectation expect;
  char *why = NULL;
  gboolean ok;

  tport_ws_abi_expectation_init (&expect);
  expect.primary_size = FREESWITCH_PRIMARY_SIZE;
  expect.tport_size = FREESWITCH_TPORT_SIZE;
  ok = tport_ws_abi_check_with (&expect, &why);
  assert_refused (ok, why,
                  "the built-in tcp vtable says the library's tport_primary_t is 592 bytes and "
                  "tport_t 488 bytes, but this module declares 632 and 520 bytes");
  g_free (why);
}

static void
test_check_refuses_vtable_size (void)
{
  TportWsAbiExpectation expect;
  char *why = NULL;
  gboolean ok;

  tport_ws_abi_expectation_init (&expect);
  expect.vtable_size += sizeof (void *);
  ok = tport_ws_abi_check_with (&expect, &why);
  assert_refused (ok, why,
                  "tport_tcp_vtable is 168 bytes");
  g_free (why);
}

static void
test_check_refuses_registry_size (void)
{
  TportWsAbiExpectation expect;
  char *why = NULL;
  gboolean ok;

  tport_ws_abi_expectation_init (&expect);
  expect.registry_size /= 2;
  ok = tport_ws_abi_check_with (&expect, &why);
  assert_refused (ok, why, "tport_vtables is 520 bytes");
  g_free (why);
}

static void
test_check_refuses_fork (void)
{
  /* A symbol this library has, standing in for one only the fork has. */
  static const char *const fork_symbols[] = { "tport_ws_vtable", "tport_register_type", NULL };
  TportWsAbiExpectation expect;
  char *why = NULL;
  gboolean ok;

  tport_ws_abi_expectation_init (&expect);
  expect.fork_symbols = fork_symbols;
  ok = tport_ws_abi_check_with (&expect, &why);
  assert_refused (ok, why,
                  "defines tport_register_type, so it is FreeSWITCH's sofia-sip fork");
  g_free (why);
}

/* ---- a live probe master, corrupted one field at a time ------------------------------------ */

typedef struct {
  su_root_t *root;
  tport_t *master;
  tport_master_t *mr;
  tport_primary_t *pri;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  char *why = NULL;

  f->root = su_root_create (NULL);
  g_assert_nonnull (f->root);
  f->master = tport_ws_abi_probe_bind (f->root, &why);
  g_assert_cmpstr (why, ==, NULL);
  g_assert_nonnull (f->master);
  f->mr = (tport_master_t *) f->master;
  f->pri = (tport_primary_t *) tport_primaries (f->master);
  g_assert_nonnull (f->pri);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  tport_destroy (f->master);
  su_root_destroy (f->root);
}

static void
test_master_passes (Fixture *f, gconstpointer data)
{
  char *why = NULL;

  g_assert_true (tport_ws_abi_check_master (f->master, f->root, &why));
  g_assert_cmpstr (why, ==, NULL);
}

typedef struct {
  const char *path;
  void (*corrupt) (Fixture *f);
  const char *must_mention;
} Corruption;

static void
corrupt_tp_pri (Fixture *f)
{
  f->pri->pri_primary->tp_pri = NULL;
}

static void
corrupt_tp_params (Fixture *f)
{
  f->pri->pri_primary->tp_params = f->mr->mr_params;
}

static void
corrupt_pri_vtable (Fixture *f)
{
  f->pri->pri_vtable = tport_vtable_by_name ("udp", tport_type_local);
}

static void
corrupt_socktype (Fixture *f)
{
  f->pri->pri_primary->tp_addrinfo->ai_socktype = SOCK_DGRAM;
}

static void
corrupt_socket (Fixture *f)
{
  f->pri->pri_primary->tp_socket = -1;
}

static void
corrupt_port (Fixture *f)
{
  f->pri->pri_primary->tp_name->tpn_port = "1";
}

static void
corrupt_index (Fixture *f)
{
  f->pri->pri_primary->tp_index = 0;
}

static void
corrupt_flags (Fixture *f)
{
  f->pri->pri_primary->tp_conn_orient = 0;
}

static void
corrupt_mr_root (Fixture *f)
{
  f->mr->mr_root = NULL;
}

static void
corrupt_params (Fixture *f)
{
  f->pri->pri_params->tpp_idle = f->pri->pri_params->tpp_timeout;
}

static const Corruption corruptions[] = {
  { "/tport-abi/master/refuses/tp-pri", corrupt_tp_pri, "tcp primary: tp_master/tp_pri read" },
  { "/tport-abi/master/refuses/tp-params", corrupt_tp_params, "tcp primary: tp_params is" },
  { "/tport-abi/master/refuses/pri-vtable", corrupt_pri_vtable, "tcp primary: pri_vtable is" },
  { "/tport-abi/master/refuses/socktype", corrupt_socktype, "tcp primary: tp_addrinfo reads" },
  { "/tport-abi/master/refuses/socket", corrupt_socket, "tcp primary: tp_socket (-1)" },
  { "/tport-abi/master/refuses/port", corrupt_port, "tpn_port \"1\" do not match" },
  { "/tport-abi/master/refuses/index", corrupt_index, "tcp primary: tp_index 0" },
  { "/tport-abi/master/refuses/flags", corrupt_flags, "tcp primary: the flags read" },
  { "/tport-abi/master/refuses/mr-root", corrupt_mr_root, "master: mr_root/mr_stack/mr_tpac" },
  { "/tport-abi/master/refuses/params", corrupt_params, "not the probe's parameters" },
};

/* Corrupt, be refused, put the bytes back, pass again: the check itself changes nothing. */
static void
test_master_refuses (Fixture *f, gconstpointer data)
{
  const Corruption *corruption = data;
  tport_master_t saved_mr;
  tport_primary_t saved_pri;
  char *why = NULL;
  gboolean ok;

  memcpy (&saved_mr, f->mr, sizeof saved_mr);
  memcpy (&saved_pri, f->pri, sizeof saved_pri);

  corruption->corrupt (f);
  ok = tport_ws_abi_check_master (f->master, f->root, &why);
  assert_refused (ok, why,
                  corruption->must_mention);
  g_clear_pointer (&why, g_free);

  memcpy (f->mr, &saved_mr, sizeof saved_mr);
  memcpy (f->pri, &saved_pri, sizeof saved_pri);
  g_assert_true (tport_ws_abi_check_master (f->master, f->root, &why));
  g_assert_cmpstr (why, ==, NULL);
}

int
main (int argc, char **argv)
{
  gsize i;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tport-abi/check/passes", test_check_passes);
  g_test_add_func ("/tport-abi/check/refuses/freeswitch-sizes",
                   test_check_refuses_freeswitch_sizes);
  g_test_add_func ("/tport-abi/check/refuses/vtable-size", test_check_refuses_vtable_size);
  g_test_add_func ("/tport-abi/check/refuses/registry-size", test_check_refuses_registry_size);
  g_test_add_func ("/tport-abi/check/refuses/fork", test_check_refuses_fork);
  g_test_add ("/tport-abi/master/passes", Fixture, NULL,
              fixture_set_up, test_master_passes, fixture_tear_down);
  for (i = 0; i < G_N_ELEMENTS (corruptions); i++)
    g_test_add (corruptions[i].path, Fixture, &corruptions[i],
                fixture_set_up, test_master_refuses, fixture_tear_down);

  return g_test_run ();
}
