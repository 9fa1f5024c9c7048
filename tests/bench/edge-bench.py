#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""sofia-ws-edge against Kamailio used as the same WebSocket edge, in front of one SIP server.

    /usr/bin/python3 tests/bench/edge-bench.py [--build DIR] [--edge PATH]
                                               [--sides edge,kamailio[,direct]]
                                               [--duration S] [--warmup S] [--runs N]
                                               [--points 1x1,50x1,50x32] [--method OPTIONS]
                                               [--prime S] [--kamailio-workers N] [--verbose]

One upstream SIP server for the whole run: a Kamailio (stateless, sl_send_reply 200 to every
OPTIONS and MESSAGE) with a tcp listener on 127.0.0.1. In front of it, two edges, each with a
ws listener on 127.0.0.1 for tests/sip-load (the browsers) and forwarding every request to that
upstream over tcp:

  edge      examples/sofia-ws-edge --listen 'sip:127.0.0.1:0;transport=ws'
            --upstream 'sip:127.0.0.1:UP;transport=tcp' --quiet (one process; its threads are
            counted and printed)
  kamailio  Kamailio with the websocket and xhttp modules (event_route[xhttp:request] with
            ws_handle_handshake()), a tcp listener that carries the WebSocket upgrade, and a
            request_route that forwards every request statefully (t_relay) to the upstream,
            Record-Route on dialog-creating requests; --kamailio-workers tcp worker processes
            (default: the number of cores), and Kamailio's own helper processes; its fast
            allocator (-x tlsf), 2 GiB of shared memory and a 1 MiB write queue per
            connection (tcp_conn_wq_max), without which it failed under this load (see
            Kamailio below)
  direct    (optional, a reference) sip-load straight to the upstream over tcp, no edge

sip-load sends OPTIONS (or --method MESSAGE) whose Request-URI and To name a user at the
upstream (sip:bench@127.0.0.1:UP), so that both edges forward them instead of answering. Each
side first gets one uncounted run of --prime seconds at the largest point (Kamailio's tm keeps
every transaction 5 s after it completes: its memory reaches its steady state after that). At
each point (connections x window) every side runs --runs times, alternating which goes first
(A B, B A, A B, ...). Printed per point and side: the median requests/s and p99 latency with
the min-max of the runs, the edge's CPU time per request (utime + stime over the run, of the
edge process, or of Kamailio's main process and all its children, divided by the requests of
the run) and the upstream's, and the ratios edge/Kamailio of requests/s and p99. The load
average is printed at the start and the end.

Exit status: 0; 1 when any run lost requests, got a non-2xx response or failed, or a server
died (the tables are printed anyway; a failed run prints the end of the server's log); 2 for
bad usage, a missing kamailio, or a missing edge binary (run with --sides kamailio,direct to
measure the Kamailio half alone). The servers are stopped when the script ends, even killed.
"""
import argparse
import ctypes
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import (CLK_TCK, LISTENING, fail, fmt_us, print_header, proc_cpu_ticks, read_log,
                      run_sip_load, stop_process, table)

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT_S = 10
STOP_TIMEOUT_S = 5
KAMAILIO_MODULE_DIRS = ["/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib64/kamailio/modules",
                        "/usr/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules",
                        "/usr/local/lib/kamailio/modules"]

# ---- processes -------------------------------------------------------------------------------


def children_of(pid):
    """The PIDs whose parent is @pid (one scan of /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(name))
    return found


def tree_cpu_ticks(pids):
    """utime + stime of every PID in @pids that is still there."""
    total = 0
    for pid in pids:
        try:
            total += proc_cpu_ticks(pid)
        except OSError:
            pass
    return total


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """A preexec_fn: SIGTERM to the child when this script dies, even killed, so that no
    server outlives a benchmark that did not get to stop it."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def pick_free_port():
    """A free tcp port on 127.0.0.1 (bound, read, closed: Kamailio needs a number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """What the sides share: a process, its stderr in a file, stop by PID."""

    def __init__(self, name):
        self.name = name
        self.proc = None
        self.log = tempfile.TemporaryFile()

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def errors(self):
        return "\n".join(read_log(self.log).splitlines()[-30:])

    def pids(self):
        """The processes whose CPU is this server's: itself (threads included)."""
        return [self.pid]

    def describe(self):
        with open(f"/proc/{self.pid}/status") as f:
            threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
        return f"1 process, {threads} thread{'s' if threads != 1 else ''}"

    def pss_kib(self):
        """The proportional set size summed over the processes: Kamailio's shared memory
        counted once, not once per process as summed RSS would."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
            except (OSError, StopIteration):
                pass
        return total

    def stop(self):
        """SIGTERM to the PID, SIGKILL after a timeout; the exit status."""
        if self.proc is None:
            return None
        return stop_process(self.proc, timeout=STOP_TIMEOUT_S)


class Kamailio(Server):
    """A Kamailio in the foreground (-DD -E) on 127.0.0.1:@port, its configuration, run
    directory and log in a temporary directory of its own. Its main process forks the workers
    and helpers; SIGTERM to it stops them all."""

    def __init__(self, name, body, port, workers):
        super().__init__(name)
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="edge-bench-kamailio-")
        self.cfg = os.path.join(self.dir, "kamailio.cfg")
        binary = kamailio_binary()
        modules = kamailio_modules_dir()
        with open(self.cfg, "w") as f:
            f.write("#!KAMAILIO\n"
                    f"# edge-bench.py: {name}\n"
                    f"#!define PORT {port}\n"
                    f"mpath=\"{modules}/\"\n"
                    "debug=0\n"
                    "log_stderror=yes\n"
                    f"children={workers}\n"
                    f"tcp_children={workers}\n"
                    "auto_aliases=no\n"
                    "dns=no\n"
                    "rev_dns=no\n"
                    "use_dns_cache=no\n"
                    "dns_try_ipv6=no\n"
                    "enable_sctp=no\n"
                    "tcp_accept_no_cl=yes\n"
                    "tcp_connection_lifetime=3605\n"
                    "tcp_max_connections=4096\n"
                    # What may wait to be written on one connection: 1 MiB, as sofia-ws's
                    # send queue (WSTAG_SEND_QUEUE_BYTES). Kamailio's default, 32 KiB, is
                    # less than 50 × 32 requests in flight on the one connection to the
                    # upstream: the sends beyond it fail (500s, lost requests).
                    "tcp_conn_wq_max=1048576\n"
                    f"listen=tcp:127.0.0.1:{port}\n"
                    f"alias=127.0.0.1:{port}\n"
                    + body)
        # -m 2048: tm keeps a completed transaction in shared memory for its wait timer (5 s
        # by default), so the edge holds about 5 s worth of requests, some 5 KiB each; 64 MiB
        # ran out at 6,000 requests/s and 512 MiB at 20,000 (500s "out of mem", then lost
        # requests). Pages are only touched as they are used.
        # -x/-X tlsf: Kamailio's fast allocator rather than its default (qm, with its debugging
        # checks), which cost the edge about 40% more CPU per request here.
        try:
            self.proc = subprocess.Popen([binary, "-DD", "-E", "-f", self.cfg, "-Y", self.dir,
                                          "-P", os.path.join(self.dir, "kamailio.pid"),
                                          "-w", self.dir, "-m", "2048", "-M", "8",
                                          "-x", "tlsf", "-X", "tlsf"],
                                         cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=self.log, stderr=subprocess.STDOUT,
                                         preexec_fn=die_with_parent)
        except OSError:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def pids(self):
        return [self.pid, *children_of(self.pid)]

    def describe(self):
        return f"main process and {len(children_of(self.pid))} children"

    def wait_ready(self, probe):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if probe(self.port):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} (kamailio -f {self.cfg}) did not answer on "
                           f"127.0.0.1:{self.port}:\n{self.errors()}")

    def stop(self):
        status = super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return status


def kamailio_binary():
    env = os.environ.get("KAMAILIO")
    if env:
        return shutil.which(env) or env
    return shutil.which("kamailio") or "/usr/sbin/kamailio"


def kamailio_available():
    """Whether kamailio and its websocket module are there (the upstream is always a Kamailio);
    if not, says so on stderr."""
    problem = None
    if not os.access(kamailio_binary(), os.X_OK):
        problem = f"no kamailio binary ({kamailio_binary()}; set KAMAILIO)"
    else:
        try:
            kamailio_modules_dir()
        except RuntimeError as e:
            problem = str(e)
    if problem:
        print(f"edge-bench: {problem}; Debian: apt-get install kamailio "
              f"kamailio-websocket-modules (./run bench installs them)", file=sys.stderr)
    return problem is None


def kamailio_modules_dir():
    env = os.environ.get("KAMAILIO_MODULES_DIR")
    candidates = [env] if env else KAMAILIO_MODULE_DIRS
    for d in candidates:
        if d and os.path.isfile(os.path.join(d, "websocket.so")):
            return d
    raise RuntimeError("no Kamailio module directory with websocket.so (install kamailio and "
                       "kamailio-websocket-modules, or set KAMAILIO_MODULES_DIR)")


# The upstream: answers OPTIONS and MESSAGE with 200 statelessly, nothing else.
UPSTREAM_CFG = """
loadmodule "sl.so"
loadmodule "textops.so"

request_route {
\tif (is_method("OPTIONS|MESSAGE")) {
\t\tsl_send_reply("200", "OK");
\t\texit;
\t}
\tif (is_method("ACK")) {
\t\texit;
\t}
\tsl_send_reply("405", "Method Not Allowed");
}
"""

# Kamailio as the WebSocket edge: browsers' requests relayed statefully to the upstream over tcp.
# Requests from the upstream towards the browsers (handle_ruri_alias() on them) are not measured
# and not configured.
KAMAILIO_EDGE_CFG = """
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "nathelper.so"
loadmodule "xhttp.so"
loadmodule "websocket.so"

modparam("nathelper", "natping_interval", 0)
modparam("websocket", "keepalive_mechanism", 1)
modparam("websocket", "keepalive_timeout", 30)
modparam("websocket", "sub_protocols", 1)

request_route {
\tif (!mf_process_maxfwd_header("10")) {
\t\tsl_send_reply("483", "Too Many Hops");
\t\texit;
\t}
\tif (proto == WS || proto == WSS) {
\t\tforce_rport();
\t}
\tif (has_totag()) {
\t\tif (!loose_route()) {
\t\t\t$du = "UPSTREAM";
\t\t}
\t\troute(RELAY);
\t}
\tif (is_method("CANCEL")) {
\t\tif (t_check_trans()) {
\t\t\troute(RELAY);
\t\t}
\t\texit;
\t}
\tt_check_trans();
\tif (is_method("INVITE|SUBSCRIBE|REFER")) {
\t\trecord_route();
\t}
\t$du = "UPSTREAM";
\troute(RELAY);
}

route[RELAY] {
\tif (!t_relay()) {
\t\tsl_reply_error();
\t}
\texit;
}

event_route[xhttp:request] {
\tset_reply_close();
\tset_reply_no_connect();
\tif ($rm =~ "^GET$" && $hdr(Upgrade) =~ "websocket" && $hdr(Connection) =~ "upgrade") {
\t\tif (ws_handle_handshake()) {
\t\t\texit;
\t\t}
\t}
\txhttp_reply("404", "Not Found", "", "");
}
"""


def probe_sip_tcp(port):
    """An OPTIONS over tcp to 127.0.0.1:@port: True once a 200 comes back."""
    request = (f"OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\n"
               "Via: SIP/2.0/TCP 127.0.0.1:9;rport;branch=z9hG4bKedgebenchprobe\r\n"
               "Max-Forwards: 70\r\n"
               f"To: <sip:probe@127.0.0.1:{port}>\r\n"
               "From: <sip:edge-bench@edge-bench.invalid>;tag=probe\r\n"
               "Call-ID: edge-bench-probe@edge-bench.invalid\r\n"
               "CSeq: 1 OPTIONS\r\n"
               "Content-Length: 0\r\n\r\n").encode()
    return exchange(port, request, b"SIP/2.0 200 ")


def probe_http(port):
    """An HTTP GET to 127.0.0.1:@port: True once Kamailio's xhttp answers it."""
    request = f"GET /edge-bench-probe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    return exchange(port, request, b"HTTP/1.")


def exchange(port, request, prefix):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(request)
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(prefix)
    except OSError:
        return False


class Edge(Server):
    """sofia-ws-edge --listen 'sip:127.0.0.1:0;transport=ws' --upstream UP --quiet; its ws
    port read from its "listening sip:HOST:PORT;transport=ws" line. What it prints after is
    drained by cat(1), so that it never blocks."""

    def __init__(self, binary, plugin_dir, upstream_uri):
        super().__init__("sofia-ws-edge")
        env = dict(os.environ, SOFIA_WS_PLUGIN_DIR=plugin_dir)
        self.argv = [binary, "--listen", "sip:127.0.0.1:0;transport=ws",
                     "--upstream", upstream_uri, "--quiet"]
        self.drain = None
        self.proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.log,
                                     preexec_fn=die_with_parent)
        self.port = None
        deadline = time.monotonic() + START_TIMEOUT_S
        out = self.proc.stdout
        pending = b""
        while self.port is None:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"sofia-ws-edge did not print its ws listener "
                                   f"({' '.join(self.argv)}):\n{pending.decode(errors='replace')}"
                                   f"{self.errors()}")
            if not select.select([out], [], [], min(left, 0.5))[0]:
                continue
            chunk = os.read(out.fileno(), 4096)
            if not chunk:
                time.sleep(0.05)
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                m = LISTENING.match(line.decode(errors="replace"))
                if m and m.group(3) == "ws":
                    self.port = int(m.group(2))
        self.drain = subprocess.Popen(["cat"], stdin=out, stdout=subprocess.DEVNULL)
        out.close()

    def stop(self):
        status = super().stop()
        if self.drain is not None:
            self.drain.wait()
            self.drain = None
        return status


class Direct(Server):
    """No edge: sip-load's tcp straight to the upstream (whose CPU is counted apart)."""

    def __init__(self, upstream):
        super().__init__("direct")
        self.upstream = upstream

    def alive(self):
        return True

    def pids(self):
        return []

    def describe(self):
        return "no process"

    def stop(self):
        return 0


# ---- measuring -------------------------------------------------------------------------------


def run_load(args, sip_load, side, target, upstream, connections, window, duration):
    """One sip-load run; the CPU of @side's processes and of the upstream's around it."""
    pids, up_pids = side.pids(), upstream.pids()
    before, up_before = tree_cpu_ticks(pids), tree_cpu_ticks(up_pids)
    problem, result = run_sip_load(sip_load, [*target, "--method", args.method,
                                              "--request-uri", args.request_uri,
                                              "-c", str(connections), "-w", str(window),
                                              "-d", str(duration),
                                              "--warmup", str(min(args.warmup, duration / 2))],
                                   timeout=duration + 30)
    after, up_after = tree_cpu_ticks(pids), tree_cpu_ticks(up_pids)
    label = f"{side.name} {connections}x{window}"
    if result is None:
        fail(f"{label}: {problem}\n{side.name}'s log ends with:\n{side.errors()}")
        return None
    run = {"rps": float(result["rps"]), "p50": int(result["p50_us"]),
           "p99": int(result["p99_us"]), "lost": int(result["lost"]),
           "requests": int(result["requests"])}
    requests = max(run["requests"], 1)
    run["cpu_us"] = (after - before) * 1e6 / CLK_TCK / requests if pids else None
    run["up_cpu_us"] = (up_after - up_before) * 1e6 / CLK_TCK / requests
    if problem is not None:
        fail(f"{label}: {problem}\n{side.name}'s log ends with:\n{side.errors()}")
        run["failed"] = True
    return run


def summary(runs, key):
    values = [r[key] for r in runs if r is not None and r.get(key) is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def check_alive(upstream, sides):
    for server in (upstream, *(s for s, _ in sides.values())):
        if not server.alive():
            raise RuntimeError(f"{server.name} died (status {server.proc.returncode}):\n"
                               f"{server.errors()}")


def measure(args, sip_load, points, sides, upstream):
    """@sides: {name: (Server, sip-load target argv)}. Per point: {name: summaries, lost}."""
    results, failed = [], False
    names = list(sides)
    check_alive(upstream, sides)
    if args.prime:
        # One run per side at the largest point first, not counted: Kamailio's tm keeps each
        # transaction for 5 s after it completes, so its shared memory only reaches its steady
        # state (pages touched, transactions freed by its timer as fast as they come) after that.
        connections, window = max(points, key=lambda p: p[0] * p[1])
        for name in names:
            server, target = sides[name]
            run = run_load(args, sip_load, server, target, upstream, connections, window,
                           args.prime)
            failed |= run is None or run.get("failed", False)
    for connections, window in points:
        runs = {name: [] for name in names}
        for i in range(args.runs):
            order = names if i % 2 == 0 else names[::-1]
            for name in order:
                check_alive(upstream, sides)
                server, target = sides[name]
                run = run_load(args, sip_load, server, target, upstream, connections, window,
                               args.duration)
                failed |= run is None or run.get("failed", False)
                runs[name].append(run)
                if args.verbose and run is not None:
                    cpu = f"{run['cpu_us']:.1f}" if run["cpu_us"] is not None else "-"
                    print(f"  {name:8} {connections}x{window} run {i + 1}: "
                          f"{run['rps']:,.0f} req/s p50 {fmt_us(run['p50'])} "
                          f"p99 {fmt_us(run['p99'])} lost {run['lost']} cpu {cpu} µs/req "
                          f"upstream {run['up_cpu_us']:.1f} µs/req", flush=True)
        m = {n: {k: summary(runs[n], k) for k in ("rps", "p50", "p99", "cpu_us", "up_cpu_us")}
             for n in names}
        lost = {n: sum(r["lost"] for r in runs[n] if r is not None) for n in names}
        results.append(((connections, window), m, lost))
    return results, failed


def fmt_rps_spread(s):
    if s is None:
        return "-"
    med, lo, hi = s
    return f"{med:,.0f} ({lo:,.0f}-{hi:,.0f})"


def fmt_us_spread(s):
    """A latency and its min-max, all in the unit of the median."""
    if s is None:
        return "-"
    med, lo, hi = s
    if med < 1000:
        return f"{med:,.0f} ({lo:,.0f}-{hi:,.0f}) µs"
    return f"{med / 1000:,.2f} ({lo / 1000:,.2f}-{hi / 1000:,.2f}) ms"


def fmt_cpu(s):
    return f"{s[0]:.1f}" if s is not None else "-"


def fmt_ratio(a, b):
    return f"{a[0] / b[0]:.2f}" if a is not None and b is not None and b[0] else "-"


def print_results(results, names):
    headers = ["c × w"]
    for n in names:
        headers += [f"{n} req/s (min-max)", f"{n} p99 (min-max)"]
    if "edge" in names and "kamailio" in names:
        headers += ["edge/kamailio req/s", "edge/kamailio p99"]
    for n in names:
        headers += [f"{n} CPU µs/req"]
    for n in names:
        headers += [f"upstream CPU µs/req ({n})"]
    headers += ["lost"]
    rows = []
    for (connections, window), m, lost in results:
        row = [f"{connections} × {window}"]
        for n in names:
            row += [fmt_rps_spread(m[n]["rps"]), fmt_us_spread(m[n]["p99"])]
        if "edge" in names and "kamailio" in names:
            row += [fmt_ratio(m["edge"]["rps"], m["kamailio"]["rps"]),
                    fmt_ratio(m["edge"]["p99"], m["kamailio"]["p99"])]
        row += [fmt_cpu(m[n]["cpu_us"]) for n in names]
        row += [fmt_cpu(m[n]["up_cpu_us"]) for n in names]
        row += [" / ".join(str(lost[n]) for n in names)]
        rows.append(row)
    print(table(headers, rows, [False] + [True] * (len(headers) - 1)))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(TOP, "_build"),
                        help="build directory (sip-load, and the edge unless --edge)")
    parser.add_argument("--edge", help="the sofia-ws-edge binary "
                        "(default: BUILD/examples/sofia-ws-edge); its plugin from the "
                        "plugin/ directory next to its examples/ directory")
    parser.add_argument("--sides", default="edge,kamailio",
                        help="any of edge, kamailio, direct, comma-separated (edge,kamailio)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (3)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="seconds at the start of each run left out of req/s and latency")
    parser.add_argument("--runs", type=int, default=3, help="runs per side and point (3)")
    parser.add_argument("--prime", type=float, default=6.0,
                        help="seconds of one uncounted run per side at the largest point "
                        "before the measured ones (6; 0: none)")
    parser.add_argument("--points", default="1x1,50x1,50x32",
                        help="connections x window, comma-separated (1x1,50x1,50x32)")
    parser.add_argument("--method", default="OPTIONS", choices=["OPTIONS", "MESSAGE"])
    parser.add_argument("--kamailio-workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="tcp worker processes of the Kamailio edge and of the upstream "
                        "(default: the number of cores)")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)
    try:
        points = [tuple(int(n) for n in p.split("x")) for p in args.points.split(",")]
    except ValueError:
        parser.error(f"--points: expected CxW[,CxW...], got {args.points!r}")
    names = args.sides.split(",")
    unknown = [n for n in names if n not in ("edge", "kamailio", "direct")]
    if unknown or not names or len(set(names)) != len(names):
        parser.error(f"--sides: any of edge, kamailio, direct, each once; got {args.sides!r}")
    if args.runs < 1 or args.duration <= args.warmup or args.kamailio_workers < 1 \
            or args.prime < 0:
        parser.error("--runs and --kamailio-workers must be >= 1, --duration > --warmup, "
                     "--prime >= 0")
    sip_load = os.path.join(args.build, "tests", "sip-load")
    if not os.access(sip_load, os.X_OK):
        parser.error(f"no {sip_load}: build first (ninja -C {args.build})")
    edge_binary = os.path.abspath(args.edge or os.path.join(args.build, "examples",
                                                            "sofia-ws-edge"))
    plugin_dir = os.path.join(os.path.dirname(os.path.dirname(edge_binary)), "plugin")
    if "edge" in names:
        if not os.access(edge_binary, os.X_OK):
            print(f"edge-bench: no sofia-ws-edge at {edge_binary}: build it, give --edge PATH, "
                  f"or measure the Kamailio half alone with --sides kamailio,direct",
                  file=sys.stderr)
            return 2
        if not os.path.isdir(plugin_dir):
            plugin_dir = os.path.join(args.build, "plugin")

    if not kamailio_available():
        return 2
    print_header("sofia-ws-edge against Kamailio as the same WebSocket edge (sip-load over ws, "
                 "one upstream Kamailio over tcp)")
    print(f"runs: {args.runs} per side and point, alternating, {args.duration:g} s each "
          f"({args.warmup:g} s warm-up left out of req/s and latency); medians (min-max); "
          f"CPU = utime+stime over the run / requests of the run, of the edge's processes and "
          f"of the upstream's; first one uncounted {args.prime:g} s run per side at the "
          f"largest point", flush=True)

    servers = []
    failed = False
    try:
        upstream = Kamailio("upstream", UPSTREAM_CFG, pick_free_port(), args.kamailio_workers)
        servers.append(upstream)
        upstream.wait_ready(probe_sip_tcp)
        upstream_uri = f"sip:127.0.0.1:{upstream.port};transport=tcp"
        args.request_uri = f"sip:bench@127.0.0.1:{upstream.port}"
        sides = {}
        for name in names:
            if name == "edge":
                server = Edge(edge_binary, plugin_dir, upstream_uri)
                servers.append(server)
                sides[name] = (server, ["--url", f"ws://127.0.0.1:{server.port}/"])
            elif name == "kamailio":
                port = pick_free_port()
                server = Kamailio("kamailio", KAMAILIO_EDGE_CFG.replace("UPSTREAM", upstream_uri),
                                  port, args.kamailio_workers)
                servers.append(server)
                server.wait_ready(probe_http)
                sides[name] = (server, ["--url", f"ws://127.0.0.1:{port}/"])
            else:
                server = Direct(upstream)
                sides[name] = (server, ["--tcp", f"127.0.0.1:{upstream.port}"])
        print(f"upstream: kamailio (pid {upstream.pid}, {upstream.describe()}) tcp "
              f"127.0.0.1:{upstream.port}, {args.kamailio_workers} tcp workers, stateless 200; "
              f"{args.method} to {args.request_uri}")
        for name, (server, target) in sides.items():
            if name == "edge":
                print(f"edge: {' '.join(server.argv)} (pid {server.pid}, {server.describe()}), "
                      f"plugin {plugin_dir}")
            elif name == "kamailio":
                print(f"kamailio: kamailio as ws edge (pid {server.pid}, {server.describe()}: "
                      f"{args.kamailio_workers} tcp workers and its helpers) ws "
                      f"127.0.0.1:{server.port}, t_relay to {upstream_uri}")
            else:
                print("direct: sip-load over tcp to the upstream, no edge")
        sys.stdout.flush()
        results, failed = measure(args, sip_load, points, sides, upstream)
        print()
        print_results(results, names)
        for name, (server, _) in sides.items():
            if server.pids():
                print(f"{name}: memory at the end {server.pss_kib() / 1024:.1f} MiB (PSS summed "
                      f"over its processes); {server.describe()} at the end")
        for (connections, window), m, _ in results:
            busy = ", ".join(f"{n} {m[n]['rps'][0] * m[n]['cpu_us'][0] / 1e6:.2f}"
                             for n in names if m[n]["rps"] and m[n]["cpu_us"])
            line = f"at {connections} × {window}:"
            if "edge" in names and "kamailio" in names:
                line += (f" ratio edge/kamailio req/s "
                         f"{fmt_ratio(m['edge']['rps'], m['kamailio']['rps'])}, p99 "
                         f"{fmt_ratio(m['edge']['p99'], m['kamailio']['p99'])}, CPU/req "
                         f"{fmt_ratio(m['edge']['cpu_us'], m['kamailio']['cpu_us'])};")
            if busy:
                line += f" cores busy (median req/s × CPU/req) {busy}"
            print(line)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        fail(str(e))
        failed = True
    finally:
        for server in reversed(servers):
            alive = server.alive()
            status = server.stop()
            if not alive or status not in (0, -signal.SIGTERM):
                fail(f"{server.name} exited with status {status}:\n{server.errors()}")
                failed = True
    print(f"load average at the end {loadavg()}")
    if failed:
        fail("some runs failed or lost requests (see above)")
    return 1 if failed else 0


def on_sigterm(signum, frame):
    raise KeyboardInterrupt   # through main()'s finally: the servers stopped, their dirs removed


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        fail("interrupted; the servers were stopped")
        sys.exit(130)
