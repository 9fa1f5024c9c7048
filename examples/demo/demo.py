#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The demo of ./run demo: a Sofia-SIP registrar serving SIP over WebSocket, and two clients
exchanging a MESSAGE through it.

    /usr/bin/python3 demo.py --registrar BUILD/examples/sofia-ws-registrar \\
                             --node-dir tests/interop/node [--plugin-dir BUILD/plugin]

1. sofia-ws-registrar listens on ws and tcp (127.0.0.1, ports the system chose), --verbose;
2. bob (bob.py: Python, SofiaWs.WebSocket through GObject introspection) connects, REGISTERs;
3. alice (alice.mjs: SIP.js 0.21 on Node, with the `ws` package) connects, REGISTERs and sends
   bob a MESSAGE, which the registrar relays over bob's WebSocket; bob answers 200;
4. both unREGISTER and disconnect; the registrar is stopped with SIGTERM.

Every line of the three programs is printed, prefixed with its name. Exit status 0 only when
every step succeeded (and the registrar exited 0), 1 otherwise; never more than --timeout
seconds (30 by default). The registrar needs SOFIA_WS_PLUGIN_DIR (--plugin-dir) to find the
ws tport module of a build tree; bob needs GI_TYPELIB_PATH and LD_LIBRARY_PATH there.
"""
import argparse
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = {"registrar": "registrar", "bob": "bob      ", "alice": "alice    "}


class DemoError(Exception):
    pass


class Demo:
    def __init__(self, options):
        self.options = options
        self.deadline = time.monotonic() + options.timeout
        self.lines = queue.Queue()          # (name, line), (name, None) once its output ends
        self.output = {}                    # name -> [lines]
        self.procs = {}                     # name -> Popen

    # ---- processes ----------------------------------------------------------------------------

    def start(self, name, argv, env=None):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, encoding="utf-8",
                                errors="replace", bufsize=1)
        self.procs[name] = proc
        self.output[name] = []
        threading.Thread(target=self.read, args=(name, proc), daemon=True).start()
        return proc

    def read(self, name, proc):
        for line in proc.stdout:
            self.lines.put((name, line.rstrip("\r\n")))
        self.lines.put((name, None))

    def next_line(self):
        """The next (name, line) of any process, printed; DemoError past the deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DemoError(f"timeout: the demo took more than {self.options.timeout:g} s")
        try:
            name, line = self.lines.get(timeout=left)
        except queue.Empty:
            raise DemoError(f"timeout: the demo took more than {self.options.timeout:g} s") from None
        if line is not None:
            print(f"{NAMES[name]} | {line}", flush=True)
            self.output[name].append(line)
        return name, line

    def wait_for(self, name, pattern, what):
        """Reads lines until NAME prints one matching PATTERN; returns the match."""
        while True:
            who, line = self.next_line()
            if line is None:
                if who == name or who == "registrar":
                    raise DemoError(f"{who} exited ({self.procs[who].wait()}) before {what}")
                continue
            if who == name:
                match = re.search(pattern, line)
                if match:
                    return match

    def wait_exit(self, names):
        """Reads lines until every one of NAMES has closed its output and exited."""
        open_ = set(names)
        while open_:
            who, line = self.next_line()
            if line is None:
                if who == "registrar" and who not in names:
                    raise DemoError(f"the registrar exited early ({self.procs[who].wait()})")
                open_.discard(who)
        for name in names:
            left = max(0.1, self.deadline - time.monotonic())
            try:
                self.procs[name].wait(timeout=left)
            except subprocess.TimeoutExpired:
                raise DemoError(f"timeout: {name} closed its output but does not exit") from None

    def stop_all(self):
        """SIGTERM to whatever still runs, SIGKILL after 3 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ---- the scenario -------------------------------------------------------------------------

    def run(self):
        o = self.options
        env = dict(os.environ)
        if o.plugin_dir:
            env["SOFIA_WS_PLUGIN_DIR"] = o.plugin_dir
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["PYTHONIOENCODING"] = "utf-8"

        print(f"demo: starting {o.registrar}", flush=True)
        self.start("registrar", [o.registrar, "--listen", "sip:127.0.0.1:0;transport=ws",
                                 "--listen", "sip:127.0.0.1:0;transport=tcp", "--verbose"], env)
        listening = {}
        while len(listening) < 2:
            m = self.wait_for("registrar", r"^listening sip:(\S+):(\d+);transport=(ws|tcp)$",
                              "listening on ws and tcp")
            listening[m.group(3)] = (m.group(1), m.group(2))
        host, port = listening["ws"]
        server = f"ws://{host}:{port}/"
        domain = host.strip("[]")
        print(f"demo: registrar ready: {server} (ws), sip:{host}:{listening['tcp'][1]};"
              "transport=tcp; starting bob", flush=True)

        client_timeout = str(max(5, int(self.deadline - time.monotonic()) - 3))
        self.start("bob", [o.python, os.path.join(HERE, "bob.py"), server, domain, client_timeout],
                   env)
        self.wait_for("bob", r"^registered$", "registering")

        body = f"hello bob, from alice over SIP.js (\u00e9\u20ac) {secrets.token_hex(4)}"
        print("demo: bob is registered; starting alice", flush=True)
        client_timeout = str(max(5, int(self.deadline - time.monotonic()) - 3))
        self.start("alice", [o.node, os.path.join(HERE, "alice.mjs"), "--server", server,
                             "--node-dir", o.node_dir, "--domain", domain,
                             "--to", f"sip:bob@{domain}", "--body", body,
                             "--timeout", client_timeout], env)
        self.wait_exit(["bob", "alice"])

        print("demo: stopping the registrar (SIGTERM)", flush=True)
        registrar = self.procs["registrar"]
        registrar.send_signal(signal.SIGTERM)
        self.wait_exit(["registrar"])

        problems = []
        for name in ("alice", "bob", "registrar"):
            if self.procs[name].returncode != 0:
                problems.append(f"{name} exited with status {self.procs[name].returncode}")
        if f"MESSAGE to sip:bob@{domain}: 200 OK" not in self.output["alice"]:
            problems.append("alice's MESSAGE got no 200 OK")
        if f"MESSAGE body: {body}" not in self.output["bob"]:
            problems.append("bob did not receive the body alice sent")
        if "MESSAGE relayed: 200 OK" not in self.output["registrar"]:
            problems.append("the registrar did not relay bob's 200 OK")
        if problems:
            raise DemoError("; ".join(problems))


def main():
    sys.stdout.reconfigure(encoding="utf-8", errors="replace", line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrar", default=os.environ.get("SOFIA_WS_REGISTRAR"),
                        help="the sofia-ws-registrar program ($SOFIA_WS_REGISTRAR)")
    parser.add_argument("--node-dir", default=os.environ.get("SOFIA_WS_NODE_DIR"),
                        help="the directory holding node_modules with sip.js and ws "
                        "($SOFIA_WS_NODE_DIR)")
    parser.add_argument("--plugin-dir", default=os.environ.get("SOFIA_WS_PLUGIN_DIR"),
                        help="where tport-ws.so is ($SOFIA_WS_PLUGIN_DIR; default: installed)")
    parser.add_argument("--node", default=shutil.which("node") or "node", help="Node.js")
    parser.add_argument("--python", default="/usr/bin/python3", help="Python with PyGObject")
    parser.add_argument("--timeout", type=float, default=30, help="seconds (default: 30)")
    options = parser.parse_args()

    problems = []
    if not options.registrar or not os.access(options.registrar, os.X_OK):
        problems.append(f"no registrar program: {options.registrar!r} (give --registrar)")
    if not options.node_dir or not os.path.isdir(os.path.join(options.node_dir, "node_modules",
                                                             "sip.js")):
        problems.append(f"no node_modules/sip.js in {options.node_dir!r} (run `npm ci` there)")
    if not shutil.which(options.node):
        problems.append(f"no Node.js: {options.node!r}")
    if problems:
        print(f"demo: FAILED: {'; '.join(problems)}", flush=True)
        return 1

    demo = Demo(options)
    try:
        demo.run()
    except DemoError as e:
        print(f"demo: FAILED: {e}", flush=True)
        return 1
    finally:
        demo.stop_all()
    print("demo: OK: alice (SIP.js) and bob (SofiaWs.WebSocket) registered, exchanged a MESSAGE "
          "through the Sofia-SIP registrar over WebSocket, unregistered and disconnected", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
