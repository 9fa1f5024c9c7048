/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fuzz targets' browser: a WebSocket client on a plain non-blocking socket, watched by the
 * default GMainContext (the server under test runs in the same thread), which answers 200 to
 * every request it is sent, as a browser would, and waits for the final responses of its own
 * requests. */
#pragma once

#include <glib.h>

#define FUZZ_DEADLINE_US (10 * G_USEC_PER_SEC)

typedef struct {
  const char *name;
  int fd;
  guint watch;
  GByteArray *in;
  gboolean upgraded;
  gboolean closed;
  char *awaited_call_id;          /* the Call-ID whose final response ends a wait */
  guint awaited_status;
} FuzzClient;

int      fuzz_connect_loopback    (guint16     port);
gboolean fuzz_send_all            (int         fd,
                                   const void *data,
                                   gsize       len);
void     fuzz_client_connect      (FuzzClient *c,
                                   guint16     port);
void     fuzz_client_close        (FuzzClient *c);
void     fuzz_client_send_message (FuzzClient *c,
                                   guint8      opcode,
                                   const void *data,
                                   gsize       len);
guint    fuzz_client_request      (FuzzClient *c,
                                   const char *text,
                                   const char *call_id);
