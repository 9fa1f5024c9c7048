#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bob, the Python client of the demo (examples/demo/demo.py starts it): SofiaWs.WebSocket
through GObject introspection, SIP written by hand.

    /usr/bin/python3 bob.py ws://127.0.0.1:PORT/ [DOMAIN] [TIMEOUT-SECONDS]

Connects (subprotocol "sip"), REGISTERs as sip:bob@DOMAIN (default: the server's host),
answers the first MESSAGE with 200 and prints its body ("MESSAGE body: ..."), unREGISTERs
and disconnects. Prints every signal of the transport and each SIP step; "registered" once the
REGISTER got 200. Exit status 0 when every step succeeded, 1 otherwise.
"""
import sys

import gi

gi.require_version("SofiaWs", "1.0")
from gi.repository import GLib, SofiaWs  # noqa: E402

server = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:5066/"
domain = sys.argv[2] if len(sys.argv) > 2 else GLib.Uri.parse(server, GLib.UriFlags.NONE).get_host()
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0

loop = GLib.MainLoop()
ws = SofiaWs.WebSocket.new(server)
call_id = GLib.uuid_string_random()
tag = f"{GLib.random_int():08x}"
done = {"registered": False, "message": False, "unregistered": False, "disconnected": False}
errors = []


def say(line):
    print(line, flush=True)


def fail(message):
    errors.append(message)
    say(f"FAILED: {message}")
    if ws.get_state() == SofiaWs.TransportState.CONNECTED:
        ws.disconnect_async(None, None, lambda *_: None)
    else:
        loop.quit()


def first_line(text):
    return text.split("\r\n", 1)[0]


# ---- SIP text --------------------------------------------------------------------------------

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "l": "content-length",
           "c": "content-type", "m": "contact"}


def parse(text):
    """(first line, [(name, value)] in order, body) of one SIP message."""
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:     # folded line
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers.append((COMPACT.get(name, name), value.strip()))
    return lines[0], headers, body


def header(headers, name):
    return next((value for n, value in headers if n == name), None)


def register(cseq, expires):
    return (f"REGISTER sip:{domain} SIP/2.0\r\n"
            f"Via: SIP/2.0/WS xyz.invalid;branch=z9hG4bK{GLib.random_int():08x}{cseq}\r\n"
            "Max-Forwards: 70\r\n"
            f"To: <sip:bob@{domain}>\r\n"
            f"From: \"bob\" <sip:bob@{domain}>;tag={tag}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:bob@xyz.invalid;transport=ws>\r\n"
            f"Expires: {expires}\r\n"
            "User-Agent: sofia-ws demo bob (Python, SofiaWs.WebSocket)\r\n"
            "Content-Length: 0\r\n\r\n")


def answer_200(headers):
    """A 200 to a request: its Via (every one, in order), From, To (with a tag), Call-ID, CSeq."""
    lines = ["SIP/2.0 200 OK"]
    lines += [f"Via: {value}" for name, value in headers if name == "via"]
    to = header(headers, "to")
    if ";tag=" not in to.replace(" ", "").lower():
        to += f";tag={GLib.random_int():08x}"
    lines += [f"From: {header(headers, 'from')}", f"To: {to}",
              f"Call-ID: {header(headers, 'call-id')}", f"CSeq: {header(headers, 'cseq')}",
              "Content-Length: 0"]
    return "\r\n".join(lines) + "\r\n\r\n"


def send(text, step):
    def sent(transport, result):
        try:
            transport.send_finish(result)
        except GLib.Error as e:
            fail(f"{step}: cannot send: {e.message}")
    ws.send_async(text, None, None, sent)


# ---- the transport's signals -----------------------------------------------------------------

def on_state(transport, name):
    say(f"event: {name}")
    if name == "disconnected":
        done["disconnected"] = True
        loop.quit()


for signal in ("connecting", "connected", "disconnecting", "disconnected"):
    ws.connect(signal, on_state, signal)
ws.connect("message-sent", lambda t, m: say(f"event: message-sent: {first_line(m)}"))
ws.connect("transport-error", lambda t, e: say(f"event: transport-error: {e.message}"))
ws.connect("keepalive", lambda t, answered: say(f"event: keepalive: {'answered' if answered else 'no answer'}"))


def on_message(transport, text):
    say(f"event: message: {first_line(text)}")
    start, headers, body = parse(text)
    if start.startswith("SIP/2.0 "):
        status = start[len("SIP/2.0 "):]
        cseq = header(headers, "cseq") or ""
        if cseq == "1 REGISTER":
            say(f"REGISTER sip:bob@{domain}: {status}")
            if not status.startswith("200"):
                return fail(f"REGISTER: {status}, expected 200")
            done["registered"] = True
            say("registered")
        elif cseq == "2 REGISTER":
            say(f"unREGISTER sip:bob@{domain}: {status}")
            if not status.startswith("200"):
                return fail(f"unREGISTER: {status}, expected 200")
            done["unregistered"] = True
            ws.disconnect_async(None, None, lambda *_: None)
    elif start.startswith("MESSAGE "):
        sender = header(headers, "from")
        send(answer_200(headers), "200 to MESSAGE")
        if done["message"]:
            return                          # a retransmission: answered again, nothing more
        done["message"] = True
        say(f"MESSAGE from {sender}: answered 200 OK")
        say(f"MESSAGE body: {body}")
        send(register(2, 0), "unREGISTER")
    else:
        say(f"unexpected message: {start}")


ws.connect("message", on_message)


def on_connected(transport, result):
    try:
        transport.connect_finish(result)
    except GLib.Error as e:
        return fail(f"cannot connect to {server}: {e.message}")
    send(register(1, 600), "REGISTER")


def on_timeout():
    fail(f"timeout after {timeout:g} s; steps done: {[k for k, v in done.items() if v]}")
    GLib.timeout_add_seconds(2, loop.quit)      # if disconnecting hangs
    return GLib.SOURCE_REMOVE


say(f"SofiaWs.WebSocket (Python {sys.version.split()[0]}), server {server}")
ws.connect_async(None, None, on_connected)
GLib.timeout_add(int(timeout * 1000), on_timeout)
loop.run()

missing = [k for k, v in done.items() if not v]
if errors or missing:
    say(f"FAILED: {'; '.join(errors) or 'not done: ' + ', '.join(missing)}")
    sys.exit(1)
say("done")
