#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The SofiaWs.Transport contract implemented and used from Python (PyGObject).

A Python subclass overrides the vfuncs (do_connect_async/do_connect_finish, ...) to make an
in-memory pair; the tests drive it through the public API. Prints TAP.
"""
import os
import sys

import gi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402

gi.require_version("GLib", "2.0")
gi.require_version("Gio", "2.0")
gi.require_version("SofiaWs", "1.0")
from gi.repository import GLib, Gio, SofiaWs  # noqa: E402

State = SofiaWs.TransportState

OPTIONS = (
    "OPTIONS sip:bob@example.invalid SIP/2.0\r\n"
    "Via: SIP/2.0/WS alice.invalid;branch=z9hG4bK-py-1\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:bob@example.invalid>\r\n"
    "From: <sip:alice@example.invalid>;tag=py\r\n"
    "Call-ID: py-call-1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


class PairTransport(SofiaWs.Transport):
    """What one side sends the other receives, through the main loop."""

    def __init__(self):
        super().__init__()
        self.peer = None
        self.connect_error = None
        self.override_send = False
        self.send_options = None

    # Implementations complete through a Gio.Task; the callback PyGObject hands in already
    # carries its user_data, so the task is created without one.
    def do_connect_async(self, options, cancellable, callback, user_data):
        task = Gio.Task.new(self, cancellable, callback)

        def complete():
            if self.connect_error is not None:
                task.return_error(self.connect_error)
            else:
                task.return_boolean(True)
            return GLib.SOURCE_REMOVE

        GLib.idle_add(complete)

    def do_connect_finish(self, result):
        return result.propagate_boolean(), False

    def do_disconnect_async(self, options, cancellable, callback, user_data):
        task = Gio.Task.new(self, cancellable, callback)
        GLib.idle_add(lambda: task.return_boolean(True) or GLib.SOURCE_REMOVE)

    def do_disconnect_finish(self, result):
        return result.propagate_boolean(), False

    def do_send_async(self, message, options, cancellable, callback, user_data):
        self.send_options = options
        task = Gio.Task.new(self, cancellable, callback)
        peer = self.peer

        def deliver():
            if peer.get_state() == State.CONNECTED:
                peer.emit_message(message)
            task.return_boolean(True)
            return GLib.SOURCE_REMOVE

        GLib.idle_add(deliver)

    def do_send_finish(self, result):
        return result.propagate_boolean(), self.override_send


def make_pair():
    a, b = PairTransport(), PairTransport()
    a.peer, b.peer = b, a
    return a, b


def record(transport):
    events = []
    for name in ("connecting", "connected", "disconnecting", "disconnected"):
        transport.connect(name, lambda t, name=name: events.append(name))
    transport.connect("message-sent", lambda t, m: events.append(("message-sent", m)))
    transport.connect("message", lambda t, m: events.append(("message", m)))
    transport.connect("transport-error",
                      lambda t, e: events.append(("transport-error", e.domain, e.code)))
    return events


def run(start, finish, *args):
    """Calls an async method and returns its finish result, or raises its GLib.Error."""
    loop = GLib.MainLoop()
    outcome = {}

    def done(source, result, *_):
        try:
            outcome["value"] = finish(result)
        except GLib.Error as e:
            outcome["error"] = e
        loop.quit()

    start(*args, done)
    GLib.timeout_add_seconds(5, loop.quit)
    loop.run()
    if "error" in outcome:
        raise outcome["error"]
    assert "value" in outcome, "the call never completed"
    return outcome["value"]


def connect(t, options=None):
    return run(lambda cb: t.connect_async(options, None, cb), t.connect_finish)


def disconnect(t):
    return run(lambda cb: t.disconnect_async(None, None, cb), t.disconnect_finish)


def send(t, message, options=None):
    return run(lambda cb: t.send_async(message, options, None, cb), t.send_finish)


def iterate():
    ctx = GLib.MainContext.default()
    while ctx.pending():
        ctx.iteration(False)


def test_state_enum_and_error_domain():
    assert [State.DISCONNECTED, State.CONNECTING, State.CONNECTED, State.DISCONNECTING] == \
        [0, 1, 2, 3]
    assert SofiaWs.Error.NOT_CONNECTED == 1
    assert GLib.quark_to_string(SofiaWs.error_quark()) == "sofia-ws-error-quark"


def test_connect_disconnect_events():
    a, _ = make_pair()
    events = record(a)
    assert a.props.state == State.DISCONNECTED
    assert connect(a) is True
    assert a.is_connected() and a.props.state == State.CONNECTED
    assert disconnect(a) is True
    assert events == ["connecting", "connected", "disconnecting", "disconnected"], events
    assert not a.is_connected()


def test_send_and_receive():
    a, b = make_pair()
    connect(a)
    connect(b)
    ea, eb = record(a), record(b)
    options = GLib.Variant("a{sv}", {"force": GLib.Variant("b", True)})
    assert send(a, OPTIONS, options) is True
    iterate()
    assert ea == [("message-sent", OPTIONS)], ea
    assert eb == [("message", OPTIONS)], eb
    assert a.send_options.unpack() == {"force": True}


def test_send_not_connected():
    a, _ = make_pair()
    events = record(a)
    try:
        send(a, OPTIONS)
    except GLib.Error as e:
        assert e.matches(SofiaWs.error_quark(), SofiaWs.Error.NOT_CONNECTED), e
    else:
        raise AssertionError("send while disconnected succeeded")
    assert events == [("transport-error", "sofia-ws-error-quark", SofiaWs.Error.NOT_CONNECTED)], \
        events


def test_send_override_event():
    a, b = make_pair()
    connect(a)
    connect(b)
    a.override_send = True
    events = record(a)
    assert send(a, OPTIONS) is True
    assert events == [], events


def test_python_vfunc_error_reaches_caller():
    a, _ = make_pair()
    a.connect_error = GLib.Error.new_literal(SofiaWs.error_quark(), "Connection refused",
                                             SofiaWs.Error.CONNECTION_REFUSED)
    events = record(a)
    try:
        connect(a)
    except GLib.Error as e:
        assert e.matches(SofiaWs.error_quark(), SofiaWs.Error.CONNECTION_REFUSED), e
        assert e.message == "Connection refused"
    else:
        raise AssertionError("failed connect succeeded")
    assert events == ["connecting",
                      ("transport-error", "sofia-ws-error-quark",
                       SofiaWs.Error.CONNECTION_REFUSED),
                      "disconnected"], events


def test_after_connected():
    a, _ = make_pair()
    loop = GLib.MainLoop()
    seen = []

    def after(source, result, *_):
        seen.append(("after", a.after_connected_finish(result), a.is_connected()))
        loop.quit()

    a.after_connected_async(None, after)
    iterate()
    assert seen == []
    a.connect_async(None, None, lambda s, r, *_: seen.append(("connect", a.connect_finish(r))))
    GLib.timeout_add_seconds(5, loop.quit)
    loop.run()
    assert ("after", True, True) in seen, seen


def test_connect_joins_pending():
    a, _ = make_pair()
    loop = GLib.MainLoop()
    results = []

    def done(source, result, *_):
        results.append(a.connect_finish(result))
        if len(results) == 2:
            loop.quit()

    events = record(a)
    a.connect_async(None, None, done)
    a.connect_async(None, None, done)
    GLib.timeout_add_seconds(5, loop.quit)
    loop.run()
    assert results == [True, True], results
    assert events == ["connecting", "connected"], events


def test_cancel_connect():
    a, _ = make_pair()
    cancellable = Gio.Cancellable()
    cancellable.cancel()
    try:
        run(lambda cb: a.connect_async(None, cancellable, cb), a.connect_finish)
    except GLib.Error as e:
        assert e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED), e
    else:
        raise AssertionError("cancelled connect succeeded")
    assert a.props.state == State.DISCONNECTED


TESTS = [v for k, v in sorted(globals().items()) if k.startswith("test_")]


if __name__ == "__main__":
    sys.exit(tap.run(TESTS))
