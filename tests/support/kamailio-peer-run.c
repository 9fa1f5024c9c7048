/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kamailio-peer-run: the Kamailio of kamailio-peer.c (the same configuration, written by the
 * same code) for test programs that are not in C, such as the browser suite (Node):
 *
 *   kamailio-peer-run --sip
 *
 * starts Kamailio as the plain SIP registrar and proxy over tcp with Path support
 * (kamailio_peer_start_sip()), prints "listening sip:127.0.0.1:PORT;transport=tcp" and serves
 * until SIGTERM, SIGINT or the end of its stdin; then it stops Kamailio and exits 0. Where
 * Kamailio is not installed it prints "unavailable: REASON" and exits 77 (the caller skips);
 * any other failure: the error on stderr, exit 1. */
#include "kamailio-peer.h"

#include <glib-unix.h>
#include <stdio.h>
#include <unistd.h>

static gboolean
on_signal (gpointer loop)
{
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

static gboolean
on_stdin (gint         fd,
          GIOCondition condition,
          gpointer     loop)
{
  char buffer[256];

  if ((condition & G_IO_IN) && read (fd, buffer, sizeof buffer) > 0)
    return G_SOURCE_CONTINUE;
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *reason = NULL;
  KamailioPeer *peer;

  if (argc != 2 || !g_str_equal (argv[1], "--sip"))
    {
      g_printerr ("usage: kamailio-peer-run --sip\n");
      return 2;
    }
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (!kamailio_peer_is_available (&reason))
    {
      g_print ("unavailable: %s\n", reason);
      return 77;
    }
  peer = kamailio_peer_start_sip (&error);
  if (peer == NULL)
    {
      g_printerr ("kamailio-peer-run: %s\n", error->message);
      return 1;
    }
  loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGTERM, on_signal, loop);
  g_unix_signal_add (SIGINT, on_signal, loop);
  g_unix_fd_add (0, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, loop);
  g_print ("listening sip:127.0.0.1:%u;transport=tcp\n", kamailio_peer_get_port (peer));
  g_main_loop_run (loop);
  kamailio_peer_stop (peer);
  return 0;
}
