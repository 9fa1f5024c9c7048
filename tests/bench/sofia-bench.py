#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sofia over sofia-ws against Sofia over TCP (the same NTA program), and against raw lws.

    /usr/bin/python3 tests/bench/sofia-bench.py [--build DIR] [--duration S] [--warmup S]
                                                [--runs N] [--points 1x1,1x32,50x1,50x32]
                                                [--ceiling-points 1x1,50x1,50x32]
                                                [--scenarios glib,plain,relay,ceiling]

Each scenario starts ONE examples/sofia-ws-registrar with a ws and a tcp listener (port 0), then
for each point (connections x window) runs tests/sip-load against two targets, alternating
which goes first (A B, B A, A B, ...), --runs times each, and prints the medians: requests/s,
p50 and p99 latency, lost (must be 0: a FAIL line otherwise), the ratios of requests/s and p99,
and each server's CPU time per request (utime + stime of /proc/PID/stat over the whole sip-load
run, divided by the requests of that run). Peak RSS (VmHWM) is read when the scenario ends.

  glib     OPTIONS, the registrar on GLib's main loop: its ws port against its tcp port.
  plain    the same with --plain-root (Sofia's own su_root loop).
  relay    the stateful relay, on GLib's loop: sip-load --method MESSAGE --callees K, ws against
           tcp. K = min(connections, 10) callee connections (same transport) REGISTER first;
           every MESSAGE then goes through NTA twice (the incoming transaction, and the outgoing
           one over the callee's own connection) and its 200 comes back the same way. K is 1
           at 1 x W and 10 at 50 x W: each callee then takes the MESSAGEs of 5 connections, so
           that the callees' side does not serialize the relay on one connection. CPU per
           request is the registrar's, per MESSAGE (2 messages in and 2 out).
  ceiling  500-byte requests (sip-load --size 500) against the registrar's ws port (OPTIONS,
           GLib loop) and against tests/lws-echo, a raw libwebsockets echo server on lws's own
           poll loop (sip-load --echo --size 500), at --ceiling-points; the ratio sofia-ws/raw
           of requests/s is the share of the ceiling left by sofia-ws and Sofia (target: at
           least 0.6 at 50 x 1). The registrar answers with about 350 bytes, the echo with 500.

The registrar runs with --quiet: its line per request (two per relayed MESSAGE) would cost
both transports the same few microseconds of formatting and write(2) and hide what the
transports themselves cost. The driver reads its "listening" lines, then hands the pipe to
cat(1) writing to /dev/null, so that the registrar never blocks on whatever it still prints. Exit status: 0, or 1 when any run lost requests, got a non-2xx response or
failed (the tables are printed anyway); a missed ceiling target is reported, not a failure.
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile

from benchlib import (CLK_TCK, Registrar, fail, fmt_us, print_header, proc_cpu_ticks,
                      proc_status_kib, run_sip_load, table)

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ECHO_LISTENING = re.compile(r"^listening (ws://\S+)")
RELAY_MAX_CALLEES = 10
CEILING_SIZE = 500
CEILING_TARGET = (50, 1, 0.6)     # connections, window, minimum sofia-ws/raw requests/s


class EchoServer:
    """tests/lws-echo on 127.0.0.1, port 0: the raw libwebsockets ceiling."""

    name = "lws-echo"

    def __init__(self, build):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([os.path.join(build, "tests", "lws-echo")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.pid = self.proc.pid
        line = self.proc.stdout.readline().decode(errors="replace")
        m = ECHO_LISTENING.match(line)
        if not m:
            self.stop()
            raise RuntimeError(f"lws-echo did not print its listener:\n{line}{self.errors()}")
        self.url = m.group(1)

    def alive(self):
        return self.proc.poll() is None

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode


def registrar_target(registrar, transport):
    host, port = registrar.ports[transport]
    return ["--url", f"ws://{host}:{port}/"] if transport == "ws" else ["--tcp", f"{host}:{port}"]


def run_load(sip_load, server_pid, target, extra, label, connections, window, duration, warmup):
    """One sip-load run against @target (its argv), @server_pid's CPU time measured around it."""
    before = proc_cpu_ticks(server_pid)
    problem, result = run_sip_load(sip_load, [*target, *extra, "-c", str(connections),
                                              "-w", str(window), "-d", str(duration),
                                              "--warmup", str(warmup)],
                                   timeout=duration + 30)
    after = proc_cpu_ticks(server_pid)
    label = f"{label} {connections}x{window}"
    if result is None:
        fail(f"{label}: {problem}")
        return None
    run = {"rps": float(result["rps"]), "p50": int(result["p50_us"]),
           "p99": int(result["p99_us"]), "lost": int(result["lost"]),
           "requests": int(result["requests"])}
    run["cpu_us"] = (after - before) * 1e6 / CLK_TCK / max(run["requests"], 1)
    if problem is not None:
        fail(f"{label}: {problem}")
        run["failed"] = True
    return run


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def median(runs, key):
    values = [r[key] for r in runs if r is not None]
    return statistics.median(values) if values else None


def measure(args, sip_load, points, sides, check_alive):
    """Runs both @sides ({name: (server pid, target argv, extra argv for a connection count)})
    at each point, --runs times each, alternating which goes first. Returns, per point, the
    medians and the lost requests of each side; and whether any run failed."""
    results, failed = [], False
    names = list(sides)
    for connections, window in points:
        runs = {name: [] for name in names}
        for i in range(args.runs):
            for name in (names if i % 2 == 0 else names[::-1]):
                check_alive()
                pid, target, extra = sides[name]
                run = run_load(sip_load, pid, target, extra(connections), name, connections,
                               window, args.duration, args.warmup)
                failed |= run is None or run.get("failed", False)
                runs[name].append(run)
                if args.verbose and run is not None:
                    print(f"  {name:8} {connections}x{window} run {i + 1}: "
                          f"{run['rps']:,.0f} req/s p50 {fmt_us(run['p50'])} "
                          f"p99 {fmt_us(run['p99'])} lost {run['lost']} "
                          f"cpu {run['cpu_us']:.1f} µs/req", flush=True)
        m = {n: {k: median(runs[n], k) for k in ("rps", "p50", "p99", "cpu_us")} for n in names}
        lost = {n: sum(r["lost"] for r in runs[n] if r is not None) for n in names}
        results.append(((connections, window), m, lost))
    return results, failed


def fmt_rps(rps):
    return f"{rps:,.0f}" if rps is not None else "-"


def fmt_cpu(cpu_us):
    return f"{cpu_us:.1f}" if cpu_us is not None else "-"


def print_comparison(results, a, b, label):
    """The table of measure()'s @results, side @a against side @b."""
    headers = ["c × w", f"{a} req/s", f"{b} req/s", f"{a}/{b} req/s", f"{a} p50", f"{b} p50",
               f"{a} p99", f"{b} p99", f"{a}/{b} p99", f"{a} lost", f"{b} lost",
               f"{a} CPU µs/req", f"{b} CPU µs/req"]
    rows = [[label(connections, window),
             fmt_rps(m[a]["rps"]), fmt_rps(m[b]["rps"]), fmt_ratio(m[a]["rps"], m[b]["rps"]),
             fmt_us(m[a]["p50"]), fmt_us(m[b]["p50"]),
             fmt_us(m[a]["p99"]), fmt_us(m[b]["p99"]), fmt_ratio(m[a]["p99"], m[b]["p99"]),
             f"{lost[a]}", f"{lost[b]}", fmt_cpu(m[a]["cpu_us"]), fmt_cpu(m[b]["cpu_us"])]
            for (connections, window), m, lost in results]
    print(table(headers, rows, [False] + [True] * (len(headers) - 1)))


def relay_callees(connections):
    return min(connections, RELAY_MAX_CALLEES)


def stop_registrar(registrar, name):
    """Stops the registrar of scenario @name and prints its memory; True when it failed."""
    hwm = proc_status_kib(registrar.pid, "VmHWM")
    status = registrar.stop()
    print(f"registrar peak RSS (VmHWM): {hwm / 1024:.1f} MiB "
          f"(RSS after start {registrar.rss_start / 1024:.1f} MiB); exit status {status}")
    if status not in (0, -signal.SIGTERM):
        fail(f"{name}: the registrar exited with status {status}:\n{registrar.errors()}")
        return True
    return False


def check_alive(*servers):
    def check():
        for server in servers:
            if not server.alive():
                raise RuntimeError(f"{server.name} died:\n{server.errors()}")
    return check


def scenario(args, sip_load, name, plain_root, points, relay=False):
    """The registrar's ws port against its tcp port: OPTIONS, or (@relay) MESSAGE to callees."""
    registrar = Registrar(args.build, plain_root)
    what = (f"MESSAGE relayed to K = min(c, {RELAY_MAX_CALLEES}) registered callees "
            f"(sip-load --method MESSAGE --callees K)" if relay else "OPTIONS")
    print(f"\n### {name}: sofia-ws-registrar{' --plain-root' if plain_root else ''} "
          f"(pid {registrar.pid}), ws port {registrar.ports['ws'][1]}, "
          f"tcp port {registrar.ports['tcp'][1]}; {what}", flush=True)

    def extra(connections):
        if not relay:
            return []
        return ["--method", "MESSAGE", "--callees", str(relay_callees(connections))]

    sides = {"WS": (registrar.pid, registrar_target(registrar, "ws"), extra),
             "TCP": (registrar.pid, registrar_target(registrar, "tcp"), extra)}
    try:
        results, failed = measure(args, sip_load, points, sides, check_alive(registrar))
    except BaseException:
        registrar.stop()
        raise
    failed |= stop_registrar(registrar, name)
    if relay:
        print_comparison(results, "WS", "TCP", lambda c, w: f"{c} × {w}, K {relay_callees(c)}")
    else:
        print_comparison(results, "WS", "TCP", lambda c, w: f"{c} × {w}")
    return failed


def ceiling(args, sip_load, points):
    """500-byte requests: the registrar's ws port (OPTIONS) against lws-echo."""
    registrar = Registrar(args.build, False)
    try:
        echo = EchoServer(args.build)
    except BaseException:
        registrar.stop()
        raise
    print(f"\n### ceiling: sofia-ws-registrar (pid {registrar.pid}, GLib root), ws port "
          f"{registrar.ports['ws'][1]}, OPTIONS --size {CEILING_SIZE}; against lws-echo "
          f"(pid {echo.pid}) {echo.url}, --echo --size {CEILING_SIZE}", flush=True)
    size = ["--size", str(CEILING_SIZE)]
    sides = {"sofia-ws": (registrar.pid, registrar_target(registrar, "ws"), lambda c: size),
             "raw": (echo.pid, ["--url", echo.url], lambda c: ["--echo", *size])}
    try:
        results, failed = measure(args, sip_load, points, sides, check_alive(registrar, echo))
    except BaseException:
        registrar.stop()
        echo.stop()
        raise
    failed |= stop_registrar(registrar, "ceiling")
    hwm = proc_status_kib(echo.pid, "VmHWM")
    status = echo.stop()
    print(f"lws-echo peak RSS (VmHWM): {hwm / 1024:.1f} MiB; exit status {status}")
    if status != 0:
        fail(f"ceiling: lws-echo exited with status {status}:\n{echo.errors()}")
        failed = True
    print_comparison(results, "sofia-ws", "raw", lambda c, w: f"{c} × {w}")

    connections, window, target = CEILING_TARGET
    for point, m, _ in results:
        if point == (connections, window) and m["sofia-ws"]["rps"] and m["raw"]["rps"]:
            ratio = m["sofia-ws"]["rps"] / m["raw"]["rps"]
            print(f"target: sofia-ws OPTIONS req/s >= {target:g} × raw lws echo at "
                  f"{connections} × {window}: {ratio:.2f}, {'met' if ratio >= target else 'NOT met'}")
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(TOP, "_build"), help="build directory")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (3)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="seconds at the start of each run left out of req/s and latency")
    parser.add_argument("--runs", type=int, default=3, help="runs per side and point (3)")
    parser.add_argument("--points", default="1x1,1x32,50x1,50x32",
                        help="connections x window, comma-separated (glib, plain, relay)")
    parser.add_argument("--ceiling-points", default="1x1,50x1,50x32",
                        help="connections x window of the ceiling scenario")
    parser.add_argument("--scenarios", default="glib,plain,relay,ceiling",
                        help="any of glib, plain, relay, ceiling, comma-separated (all)")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)
    points = [tuple(int(n) for n in p.split("x")) for p in args.points.split(",")]
    ceiling_points = [tuple(int(n) for n in p.split("x")) for p in args.ceiling_points.split(",")]
    names = {"glib": "GLib root", "plain": "plain su_root (--plain-root)",
             "relay": "MESSAGE relay (GLib root)", "ceiling": "ceiling"}
    scenarios = args.scenarios.split(",")
    unknown = [key for key in scenarios if key not in names]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    sip_load = os.path.join(args.build, "tests", "sip-load")

    print_header("Sofia over sofia-ws against Sofia over TCP, and against raw libwebsockets "
                 "(sip-load, one server process per scenario)")
    print(f"runs: {args.runs} per side and point, alternating, {args.duration:g} s "
          f"each ({args.warmup:g} s warm-up left out of req/s and latency); medians; "
          f"CPU = the server's utime+stime over the run / requests of the run", flush=True)

    failed = False
    for key in scenarios:
        try:
            if key == "ceiling":
                failed |= ceiling(args, sip_load, ceiling_points)
            else:
                failed |= scenario(args, sip_load, names[key], key == "plain", points,
                                   relay=key == "relay")
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            fail(f"{names[key]}: {e}")
            failed = True
    if failed:
        fail("some runs failed or lost requests (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
