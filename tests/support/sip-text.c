/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sip-text.h"

#include <string.h>

char *
sip_text_request (const char *method,
                  const char *request_uri,
                  const char *user,
                  const char *to_uri,
                  const char *call_id,
                  guint       cseq,
                  const char *extra_headers,
                  const char *body)
{
  return g_strdup_printf ("%s %s SIP/2.0\r\n"
                          "Via: SIP/2.0/WS %s.invalid;branch=z9hG4bK%08x%08x\r\n"
                          "Max-Forwards: 70\r\n"
                          "To: <%s>\r\n"
                          "From: <sip:%s@127.0.0.1>;tag=%s-%u\r\n"
                          "Call-ID: %s\r\n"
                          "CSeq: %u %s\r\n"
                          "%s"
                          "Content-Length: %zu\r\n"
                          "\r\n"
                          "%s",
                          method, request_uri, user, g_random_int (), g_random_int (), to_uri,
                          user, user, cseq, call_id, cseq, method,
                          extra_headers ? extra_headers : "", body ? strlen (body) : 0,
                          body ? body : "");
}

static gboolean
is_header (const char *line,
           const char *name)
{
  gsize n = strlen (name);

  return g_ascii_strncasecmp (line, name, n) == 0 && (line[n] == ':' || line[n] == ' ');
}

char *
sip_text_response (const char *request,
                   guint       status,
                   const char *reason)
{
  g_auto(GStrv) lines = g_strsplit (request, "\r\n", -1);
  GString *response = g_string_new (NULL);

  g_string_append_printf (response, "SIP/2.0 %u %s\r\n", status, reason);
  for (guint i = 1; lines[i] != NULL && lines[i][0] != '\0'; i++)
    {
      if (is_header (lines[i], "To") && strstr (lines[i], "tag=") == NULL)
        g_string_append_printf (response, "%s;tag=uas-%08x\r\n", lines[i], g_random_int ());
      else if (is_header (lines[i], "Via") || is_header (lines[i], "v") ||
               is_header (lines[i], "From") || is_header (lines[i], "f") ||
               is_header (lines[i], "To") || is_header (lines[i], "t") ||
               is_header (lines[i], "Call-ID") || is_header (lines[i], "i") ||
               is_header (lines[i], "CSeq"))
        g_string_append_printf (response, "%s\r\n", lines[i]);
    }
  g_string_append (response, "Content-Length: 0\r\n\r\n");
  return g_string_free (response, FALSE);
}

char *
sip_text_header (const char *message,
                 const char *name)
{
  g_auto(GStrv) lines = g_strsplit (message, "\r\n", -1);

  for (guint i = 1; lines[i] != NULL && lines[i][0] != '\0'; i++)
    if (is_header (lines[i], name))
      return g_strstrip (g_strdup (strchr (lines[i], ':') + 1));
  return NULL;
}

guint
sip_text_status (const char *message)
{
  if (!g_str_has_prefix (message, "SIP/2.0 "))
    return 0;
  return (guint) g_ascii_strtoull (message + 8, NULL, 10);
}

char *
sip_text_method (const char *message)
{
  if (g_str_has_prefix (message, "SIP/2.0 "))
    return NULL;
  return g_strndup (message, strcspn (message, " "));
}
