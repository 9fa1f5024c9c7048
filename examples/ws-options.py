#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sends an OPTIONS to a SIP-over-WebSocket server; prints every transport event and the answer.

    /usr/bin/python3 ws-options.py ws://127.0.0.1:5066/ [CA-FILE for a wss:// server]
"""
import sys
import gi
gi.require_version("SofiaWs", "1.0")
from gi.repository import GLib, SofiaWs

server = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:5066/"
host = GLib.Uri.parse(server, GLib.UriFlags.NONE).get_host()
request = (f"OPTIONS sip:{host} SIP/2.0\r\nVia: SIP/2.0/WS example.invalid;branch=z9hG4bK"
           f"{GLib.random_int():08x}\r\nMax-Forwards: 70\r\nTo: <sip:{host}>\r\nFrom: "
           f"<sip:example@{host}>;tag={GLib.random_int():08x}\r\nCall-ID: {GLib.uuid_string_random()}"
           "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
loop, ws, answered = GLib.MainLoop(), SofiaWs.WebSocket.new(server), []
if len(sys.argv) > 2:
    ws.props.tls_ca_file = sys.argv[2]
for name in ("connecting", "connected", "disconnecting", "disconnected"):
    ws.connect(name, lambda t, name=name: print("event:", name))
ws.connect("message-sent", lambda t, m: print("event: message-sent:", m.split("\r\n")[0]))
ws.connect("transport-error", lambda t, e: (print("event: transport-error:", e.message), loop.quit()))
ws.connect("message", lambda t, m: (print("event: message:\n" + m.replace("\r\n", "\n")), answered.append(m),
                                    t.disconnect_async(None, None, lambda *_: loop.quit())))
ws.after_connected_async(None, lambda t, r: t.send_async(request, None, None, lambda *_: None))
ws.connect_async(None, None, lambda *_: None)
loop.run()
sys.exit(0 if answered and answered[0].startswith("SIP/2.0 2") else 1)
