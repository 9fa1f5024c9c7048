#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""examples/ws-options.py, run as its own process against a SofiaWs.Listener served from this
one: a SofiaWs.WebSocket client and a listener across two processes, both through GI.
Prints TAP."""
import os
import shutil
import subprocess
import sys
import tempfile

import gi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402

gi.require_version("Gio", "2.0")
gi.require_version("SofiaWs", "1.0")
from gi.repository import GLib, Gio, SofiaWs  # noqa: E402

EXAMPLE = os.path.join(os.environ.get("G_TEST_SRCDIR", os.path.dirname(__file__) + "/.."),
                       "..", "examples", "ws-options.py")


def answer(request):
    """A 200 for @request: its Via, From, To (with a tag), Call-ID and CSeq."""
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    keep = [h for h in head[1:] if h.split(":", 1)[0].strip().lower()
            in ("via", "from", "call-id", "cseq")]
    to = [h + ";tag=listener" for h in head[1:] if h.lower().startswith("to:")]
    return "\r\n".join(["SIP/2.0 200 OK"] + keep + to + ["Content-Length: 0", "", ""])


def run_example(listener, *extra, scheme="ws", host="127.0.0.1"):
    """Runs the example against @listener while this process serves; returns (status, output)."""
    url = f"{scheme}://{host}:{listener.get_port()}/"
    process = Gio.Subprocess.new(["/usr/bin/python3", EXAMPLE, url, *extra],
                                 Gio.SubprocessFlags.STDOUT_PIPE | Gio.SubprocessFlags.STDERR_MERGE)
    loop = GLib.MainLoop()
    result = {}

    def done(proc, res):
        _, result["out"], _ = proc.communicate_utf8_finish(res)
        loop.quit()

    process.communicate_utf8_async(None, None, done)
    GLib.timeout_add_seconds(20, loop.quit)
    loop.run()
    assert "out" in result, "the example did not finish"
    return process.get_exit_status(), result["out"]


def serve_answers(listener, received):
    def on_accepted(_listener, connection):
        def on_message(transport, message):
            received.append(message)
            transport.send_async(answer(message), None, None, lambda *_: None)
        connection.connect("message", on_message)

    listener.connect("accepted", on_accepted)


def test_example_over_wss():
    directory = tempfile.mkdtemp(prefix="sofia-ws-pki-")
    try:
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        run = lambda *a: subprocess.run(a, cwd=directory, check=True, capture_output=True)
        run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=sofia-ws example CA")
        run("openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
        with open(os.path.join(directory, "ext.cnf"), "w", encoding="ascii") as ext:
            ext.write("subjectAltName=DNS:localhost\n")
        run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
        listener = SofiaWs.Listener(tls_certificate_file=os.path.join(directory, "server.pem"),
                                    tls_key_file=os.path.join(directory, "server.key"))
        received = []
        serve_answers(listener, received)
        listener.start()
        assert listener.get_is_secure()
        status, out = run_example(listener, os.path.join(directory, "ca.pem"), scheme="wss",
                                  host="localhost")
        assert status == 0, out
        assert "SIP/2.0 200 OK" in out.splitlines(), out
        assert len(received) == 1, received
        listener.stop()
    finally:
        shutil.rmtree(directory)


def test_example_gets_200():
    listener = SofiaWs.Listener.new()
    received = []

    serve_answers(listener, received)
    listener.start()
    status, out = run_example(listener)
    lines = out.splitlines()
    assert status == 0, out
    assert lines[:2] == ["event: connecting", "event: connected"], out
    assert "event: message-sent: OPTIONS sip:127.0.0.1 SIP/2.0" in lines, out
    assert "SIP/2.0 200 OK" in lines, out
    assert lines[-2:] == ["event: disconnecting", "event: disconnected"], out
    assert len(received) == 1 and received[0].startswith("OPTIONS sip:127.0.0.1 SIP/2.0\r\n")
    listener.stop()


def test_example_reports_refused_server():
    listener = SofiaWs.Listener.new()
    listener.start()
    port = listener.get_port()
    loop = GLib.MainLoop()
    listener.stop_async(None, lambda *_: loop.quit())
    loop.run()
    process = Gio.Subprocess.new(["/usr/bin/python3", EXAMPLE, f"ws://127.0.0.1:{port}/"],
                                 Gio.SubprocessFlags.STDOUT_PIPE | Gio.SubprocessFlags.STDERR_MERGE)
    _, out, _ = process.communicate_utf8(None, None)
    assert process.get_exit_status() == 1, out
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert lines[0] == "event: connecting", out
    assert lines[1].startswith(f"event: transport-error: Could not connect to ws://127.0.0.1:{port}/"), out
    assert lines[2] == "event: disconnected", out


TESTS = [test_example_gets_200, test_example_over_wss, test_example_reports_refused_server]


if __name__ == "__main__":
    sys.exit(tap.run(TESTS))
