#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sofia over sofia-ws against Sofia over TCP (the same NTA program), and against raw lws.

    /usr/bin/python3 tests/bench/sofia-bench.py [--build DIR] [--duration S] [--warmup S]
                                                [--runs N] [--points 1x1,1x32,50x1,50x32]
                                                [--ceiling-points 1x1,50x1,50x32]
                                                [--callgrind-points 1x1,50x1]
                                                [--callgrind-durations 0.5,6]
                                                [--scenarios glib,plain,relay,ceiling,
                                                             callgrind,callgrind-plain]

Each scenario starts ONE examples/sofia-ws-registrar with a ws and a tcp listener (port 0), then
for each point (connections x window) runs tests/sip-load against two targets, interleaved
(A B, B A, A B, ...), --runs times each, and prints the medians with the spread of the runs
(min-max) in brackets: requests/s, p50 and p99 latency, lost (must be 0: a FAIL line
otherwise), the ratios of the medians of requests/s, p99 and CPU, each server's CPU time per
request (utime + stime of /proc/PID/stat over the whole sip-load run, divided by the requests
of that run) and its wake-ups per request (voluntary context switches of its main thread: how
often it slept in poll() and was woken), and the machine's 1-minute load average before and
after the point. Peak RSS (VmHWM) is read when the scenario ends.

At the end come the HEADLINE lines, the ratios the transport is judged by, against Sofia's own
TCP in the same registrar on the GLib root: CPU per request at 1 x 1 and p99 at 50 x 1 (median
over median, and the range of the ratios run by run: the i-th WS and TCP runs ran back to
back), and the callgrind instruction counts; then the load average at the end. The machine is
shared and noisy: the callgrind counts are the figures that do not depend on its load.

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
  callgrind
           instructions per request of the registrar (GLib root) under valgrind --tool=callgrind,
           ws against tcp, at --callgrind-points: user-space instructions only, and the same
           however busy the machine is. Per side and point, an uncounted run (valgrind
           translates code the first time), then a short and a long run, each with the counters
           zeroed before (callgrind_control -z) and dumped after (-d); the figure is (Ir_long -
           Ir_short) / (requests_long - requests_short), so that handshakes and closes cancel.
  callgrind-plain
           the same with --plain-root (not in the default list).

The registrar runs with --quiet: its line per request (two per relayed MESSAGE) would cost
both transports the same few microseconds of formatting and write(2) and hide what the
transports themselves cost. The driver reads its "listening" lines, then hands the pipe to
cat(1) writing to /dev/null, so that the registrar never blocks on whatever it still prints. Exit status: 0, or 1 when any run lost requests, got a non-2xx response or
failed (the tables are printed anyway); a missed ceiling target is reported, not a failure.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

from benchlib import (CLK_TCK, Registrar, fail, fmt_us, loadavg, print_header, proc_cpu_ticks,
                      proc_status_kib, proc_wakeups, read_log, run_sip_load, stop_process, table)

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
        return read_log(self.stderr)

    def stop(self):
        status = stop_process(self.proc)
        self.proc.stdout.close()
        return status


def registrar_target(registrar, transport):
    host, port = registrar.ports[transport]
    return ["--url", f"ws://{host}:{port}/"] if transport == "ws" else ["--tcp", f"{host}:{port}"]


def run_load(sip_load, server_pid, target, extra, label, connections, window, duration, warmup):
    """One sip-load run against @target (its argv), @server_pid's CPU time and wake-ups
    measured around it."""
    before, woken = proc_cpu_ticks(server_pid), proc_wakeups(server_pid)
    problem, result = run_sip_load(sip_load, [*target, *extra, "-c", str(connections),
                                              "-w", str(window), "-d", str(duration),
                                              "--warmup", str(warmup)],
                                   timeout=duration + 30)
    after, woken = proc_cpu_ticks(server_pid), proc_wakeups(server_pid) - woken
    label = f"{label} {connections}x{window}"
    if result is None:
        fail(f"{label}: {problem}")
        return None
    run = {"rps": float(result["rps"]), "p50": int(result["p50_us"]),
           "p99": int(result["p99_us"]), "lost": int(result["lost"]),
           "requests": int(result["requests"])}
    run["cpu_us"] = (after - before) * 1e6 / CLK_TCK / max(run["requests"], 1)
    run["wakeups"] = woken / max(run["requests"], 1)
    if problem is not None:
        fail(f"{label}: {problem}")
        run["failed"] = True
    return run


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


KEYS = ("rps", "p50", "p99", "cpu_us", "wakeups")


def summary(runs, key):
    """(median, min, max) of @key over the runs that completed, or Nones."""
    values = [r[key] for r in runs if r is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def pair_ratios(runs_a, runs_b, key):
    """The ratios a/b of @key run by run: the i-th runs of both sides ran back to back."""
    return [a[key] / b[key] for a, b in zip(runs_a, runs_b)
            if a is not None and b is not None and b[key]]


def measure(args, sip_load, points, sides, check_alive):
    """Runs both @sides ({name: (server pid, target argv, extra argv for a connection count)})
    at each point, --runs times each, interleaved: A B, then B A, then A B... so that a change
    of the machine's load weighs on both. Returns, per point, the runs of each side, their
    (median, min, max) per figure, the lost requests and the load average before and after;
    and whether any run failed."""
    results, failed = [], False
    names = list(sides)
    for connections, window in points:
        runs = {name: [] for name in names}
        load_before = loadavg()
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
                          f"cpu {run['cpu_us']:.1f} µs/req "
                          f"wake-ups {run['wakeups']:.2f}/req", flush=True)
        m = {n: {k: summary(runs[n], k) for k in KEYS} for n in names}
        lost = {n: sum(r["lost"] for r in runs[n] if r is not None) for n in names}
        results.append({"point": (connections, window), "stats": m, "lost": lost, "runs": runs,
                        "load": (load_before, loadavg())})
    return results, failed


def fmt_spread(stat, fmt):
    """A median with the spread of the runs: "14,387 (13,950–14,601)"."""
    median_value, low, high = stat
    if median_value is None:
        return "-"
    if low == high:
        return fmt(median_value)
    return f"{fmt(median_value)} ({fmt(low)}–{fmt(high)})"


def fmt_rps(rps):
    return f"{rps:,.0f}" if rps is not None else "-"


def fmt_cpu(cpu_us):
    return f"{cpu_us:.1f}" if cpu_us is not None else "-"


def fmt_wakeups(wakeups):
    return f"{wakeups:.2f}" if wakeups is not None else "-"


def fmt_load(load):
    """The 1-minute load average before and after a point's runs."""
    return f"{load[0].split()[0]} → {load[1].split()[0]}"


def print_comparison(results, a, b, label):
    """The table of measure()'s @results, side @a against side @b: medians, with the spread
    (min–max) of the runs in brackets; the ratios are of the medians."""
    headers = ["c × w", f"{a} req/s", f"{b} req/s", f"{a}/{b} req/s",
               f"{a} p50", f"{b} p50", f"{a} p99", f"{b} p99", f"{a}/{b} p99",
               f"{a} CPU µs/req", f"{b} CPU µs/req", f"{a}/{b} CPU",
               f"{a} wake-ups/req", f"{b} wake-ups/req", "lost", "load 1 min"]
    rows = []
    for r in results:
        connections, window = r["point"]
        m, lost = r["stats"], r["lost"]
        rows.append([label(connections, window),
                     fmt_spread(m[a]["rps"], fmt_rps), fmt_spread(m[b]["rps"], fmt_rps),
                     fmt_ratio(m[a]["rps"][0], m[b]["rps"][0]),
                     fmt_us(m[a]["p50"][0]), fmt_us(m[b]["p50"][0]),
                     fmt_spread(m[a]["p99"], fmt_us), fmt_spread(m[b]["p99"], fmt_us),
                     fmt_ratio(m[a]["p99"][0], m[b]["p99"][0]),
                     fmt_spread(m[a]["cpu_us"], fmt_cpu), fmt_spread(m[b]["cpu_us"], fmt_cpu),
                     fmt_ratio(m[a]["cpu_us"][0], m[b]["cpu_us"][0]),
                     fmt_wakeups(m[a]["wakeups"][0]), fmt_wakeups(m[b]["wakeups"][0]),
                     f"{lost[a]} / {lost[b]}", fmt_load(r["load"])])
    print(table(headers, rows, [False] + [True] * (len(headers) - 1)))


def headline_ratio(results, point, key, a="WS", b="TCP"):
    """The ratio a/b of the medians of @key at @point, with the spread of the run-by-run
    ratios; None when that point was not measured."""
    for r in results:
        if r["point"] == point and r["stats"][a][key][0] and r["stats"][b][key][0]:
            pairs = pair_ratios(r["runs"][a], r["runs"][b], key)
            return r["stats"][a][key][0] / r["stats"][b][key][0], min(pairs), max(pairs)
    return None


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
    return failed, results


def callgrind_run(sip_load, registrar, out_dir, target, connections, window, duration):
    """One sip-load run with the registrar's callgrind counters zeroed before and dumped
    after: (instructions, requests), or None when the run failed."""
    subprocess.run(["callgrind_control", "-z", str(registrar.pid)], capture_output=True,
                   check=True, timeout=60)
    problem, result = run_sip_load(sip_load, [*target, "-c", str(connections), "-w",
                                              str(window), "-d", str(duration),
                                              "--warmup", "0"], timeout=duration + 60)
    dumps = set(os.listdir(out_dir))
    subprocess.run(["callgrind_control", "-d", str(registrar.pid)], capture_output=True,
                   check=True, timeout=60)
    new = sorted(set(os.listdir(out_dir)) - dumps)
    if problem is not None or len(new) != 1:
        fail(f"callgrind {connections}x{window}: {problem or 'no new callgrind dump'}")
        return None
    with open(os.path.join(out_dir, new[0])) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1]), int(result["requests"])
    fail(f"callgrind {connections}x{window}: no totals in {new[0]}")
    return None


def instructions(args, sip_load, plain_root, points):
    """Instructions per request in the registrar (callgrind: user space only, the same on a
    busy machine as on an idle one), its ws port against its tcp port. Each figure is the
    difference of a long and a short run, (Ir_long - Ir_short) / (requests_long -
    requests_short), so that what a run costs once (handshakes, closes) cancels out."""
    root = "plain su_root (--plain-root)" if plain_root else "GLib root"
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print(f"\n### instructions per request, {root}: not measured (valgrind is not "
              f"installed)")
        return False, []
    short, long = args.callgrind_durations
    out_dir = tempfile.mkdtemp(prefix="sofia-bench-callgrind-")
    registrar = Registrar(args.build, plain_root,
                          wrapper=["valgrind", "--tool=callgrind", "--quiet",
                                   f"--callgrind-out-file={out_dir}/callgrind.out"],
                          start_timeout=120)
    print(f"\n### instructions per request (callgrind), sofia-ws-registrar"
          f"{' --plain-root' if plain_root else ''} under valgrind (pid {registrar.pid}); "
          f"OPTIONS; runs of {short:g} s and {long:g} s per side and point", flush=True)
    failed, rows, figures = False, [], []
    try:
        for connections, window in points:
            per_request = {}
            for name in ("WS", "TCP"):
                registrar.check_alive()
                target = registrar_target(registrar, name.lower())
                # Valgrind translates code on its first run: a first run of each kind, not
                # counted, so that both counted ones run the same code.
                runs = [callgrind_run(sip_load, registrar, out_dir, target, connections,
                                      window, d) for d in (short, short, long)][1:]
                if None in runs or runs[1][1] <= runs[0][1]:
                    if None not in runs:
                        fail(f"callgrind {name} {connections}x{window}: the long run answered "
                             f"{runs[1][1]} requests, the short one {runs[0][1]}")
                    failed = True
                    per_request[name] = None
                    continue
                per_request[name] = ((runs[1][0] - runs[0][0]) / (runs[1][1] - runs[0][1]),
                                     runs[1][1] - runs[0][1])
            ws, tcp = per_request["WS"], per_request["TCP"]
            rows.append([f"{connections} × {window}",
                         f"{ws[0]:,.0f}" if ws else "-", f"{tcp[0]:,.0f}" if tcp else "-",
                         fmt_ratio(ws and ws[0], tcp and tcp[0]),
                         f"{ws[1]:,} / {tcp[1]:,}" if ws and tcp else "-"])
            figures.append(((connections, window), ws and ws[0], tcp and tcp[0]))
    finally:
        registrar.stop()
        shutil.rmtree(out_dir, ignore_errors=True)
    print(table(["c × w", "WS instructions/req", "TCP instructions/req", "WS/TCP",
                 "requests counted"], rows, [False, True, True, True, True]))
    return failed, figures


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
    for r in results:
        m = r["stats"]
        if r["point"] == (connections, window) and m["sofia-ws"]["rps"][0] and m["raw"]["rps"][0]:
            ratio = m["sofia-ws"]["rps"][0] / m["raw"]["rps"][0]
            print(f"target: sofia-ws OPTIONS req/s >= {target:g} × raw lws echo at "
                  f"{connections} × {window}: {ratio:.2f}, {'met' if ratio >= target else 'NOT met'}")
    return failed


def print_headline(glib, callgrind):
    """The two ratios the benchmark is judged by, against Sofia's own TCP in the same process
    (GLib root), and the instruction counts behind them."""
    print("\n### headline: sofia-ws against Sofia's TCP in the same registrar (GLib root)")
    for what, point, key in (("CPU per request at 1 × 1", (1, 1), "cpu_us"),
                             ("p99 latency at 50 × 1", (50, 1), "p99")):
        ratio = headline_ratio(glib, point, key)
        if ratio is None:
            print(f"HEADLINE WS/TCP {what}: not measured (--scenarios glib, --points "
                  f"{point[0]}x{point[1]})")
        else:
            print(f"HEADLINE WS/TCP {what}: {ratio[0]:.2f} (median over median; run by run "
                  f"{ratio[1]:.2f}–{ratio[2]:.2f})")
    for point, ws, tcp in callgrind:
        counts = f" ({ws:,.0f} / {tcp:,.0f})" if ws and tcp else ""
        print(f"HEADLINE WS/TCP instructions per request at {point[0]} × {point[1]} "
              f"(callgrind): {fmt_ratio(ws, tcp)}{counts}")


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
    parser.add_argument("--callgrind-points", default="1x1,50x1",
                        help="connections x window of the callgrind scenarios")
    parser.add_argument("--callgrind-durations", default="0.5,6",
                        help="the short and the long run of a callgrind figure, in seconds")
    parser.add_argument("--scenarios", default="glib,plain,relay,ceiling,callgrind",
                        help="any of glib, plain, relay, ceiling, callgrind, callgrind-plain, "
                             "comma-separated (all but callgrind-plain)")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)

    def parse_points(text):
        return [tuple(int(n) for n in p.split("x")) for p in text.split(",")]
    points = parse_points(args.points)
    ceiling_points = parse_points(args.ceiling_points)
    callgrind_points = parse_points(args.callgrind_points)
    args.callgrind_durations = [float(d) for d in args.callgrind_durations.split(",")]
    if len(args.callgrind_durations) != 2 or not (0 < args.callgrind_durations[0] <
                                                  args.callgrind_durations[1]):
        parser.error("--callgrind-durations: two durations, the short one first")
    names = {"glib": "GLib root", "plain": "plain su_root (--plain-root)",
             "relay": "MESSAGE relay (GLib root)", "ceiling": "ceiling",
             "callgrind": "instructions per request (GLib root)",
             "callgrind-plain": "instructions per request (plain su_root)"}
    scenarios = args.scenarios.split(",")
    unknown = [key for key in scenarios if key not in names]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    sip_load = os.path.join(args.build, "tests", "sip-load")

    print_header("Sofia over sofia-ws against Sofia over TCP, and against raw libwebsockets "
                 "(sip-load, one server process per scenario)")
    print(f"runs: {args.runs} per side and point, interleaved (A B, B A, ...), {args.duration:g} "
          f"s each ({args.warmup:g} s warm-up left out of req/s and latency); medians, with the "
          f"runs' min–max in brackets; CPU = the server's utime+stime over the run / requests "
          f"of the run; wake-ups = the server's voluntary context switches / requests", flush=True)

    failed = False
    glib, callgrind = [], []
    for key in scenarios:
        try:
            if key == "ceiling":
                failed |= ceiling(args, sip_load, ceiling_points)
            elif key.startswith("callgrind"):
                problem, figures = instructions(args, sip_load, key == "callgrind-plain",
                                                callgrind_points)
                failed |= problem
                if key == "callgrind":
                    callgrind = figures
            else:
                problem, results = scenario(args, sip_load, names[key], key == "plain", points,
                                            relay=key == "relay")
                failed |= problem
                if key == "glib":
                    glib = results
        except (RuntimeError, subprocess.TimeoutExpired, subprocess.CalledProcessError) as e:
            fail(f"{names[key]}: {e}")
            failed = True
    print_headline(glib, callgrind)
    print(f"load average at the end: {loadavg()}")
    if failed:
        fail("some runs failed or lost requests (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
