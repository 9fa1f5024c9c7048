/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Just enough SIP text handling for tests to play a user agent over a raw transport. */

/* A request from @user (at the made-up host @user.invalid, as browsers do) to @request_uri,
 * with a fresh branch; @extra_headers (each ending in CRLF) and @body may be NULL. */
char *sip_text_request (const char *method,
                        const char *request_uri,
                        const char *user,
                        const char *to_uri,
                        const char *call_id,
                        guint       cseq,
                        const char *extra_headers,
                        const char *body);

/* A response to @request (RFC 3261 8.2.6: its Vias, From, Call-ID, CSeq, and To with a tag). */
char *sip_text_response (const char *request,
                         guint       status,
                         const char *reason);

/* The value of the first header @name (case-insensitive), or NULL. */
char *sip_text_header (const char *message,
                       const char *name);

/* The status code of a response, or 0 for a request. */
guint sip_text_status (const char *message);

/* The method of a request, or NULL for a response. */
char *sip_text_method (const char *message);

G_END_DECLS
