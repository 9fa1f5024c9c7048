#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sofia over sofia-ws against Sofia over TCP: the same NTA program, two transports.

    /usr/bin/python3 tests/bench/sofia-bench.py [--build DIR] [--duration S] [--warmup S]
                                                [--runs N] [--points 1x1,1x32,50x1,50x32]
                                                [--scenarios glib,plain]

For each scenario (the registrar on GLib's main loop, then with --plain-root on Sofia's own
loop) it starts ONE examples/sofia-ws-registrar with a ws and a tcp listener (port 0), then for
each point (connections x window) runs tests/sip-load (OPTIONS) against the ws port and against
the tcp port of that same process, alternating which goes first (A B, B A, A B, ...), --runs
times each, and prints the medians: requests/s, p50 and p99 latency, lost (must be 0: a FAIL
line otherwise), the WS/TCP ratios of requests/s and p99, and the registrar's CPU time per
request (utime + stime of /proc/PID/stat over the whole sip-load run, divided by the requests
of that run). The registrar's peak RSS (VmHWM) is read when its scenario ends.

The registrar prints one line per request on stdout; the driver reads its "listening" lines,
then hands the pipe to cat(1) writing to /dev/null, so that the registrar never blocks on it.
Exit status: 0, or 1 when any run lost requests or failed (the tables are printed anyway).
"""
import argparse
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLK_TCK = os.sysconf("SC_CLK_TCK")
LISTENING = re.compile(r"^listening sip:([^:;]+):(\d+);transport=(\w+)")


def fail(message):
    print(f"FAIL: {message}", flush=True)


def proc_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()   # fields from the 3rd (state) on
    return int(fields[11]) + int(fields[12])      # utime (14th), stime (15th)


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Registrar:
    """One sofia-ws-registrar process with a ws and a tcp listener on 127.0.0.1, port 0."""

    def __init__(self, build, plain_root):
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ, SOFIA_WS_PLUGIN_DIR=os.path.join(build, "plugin"))
        argv = [os.path.join(build, "examples", "sofia-ws-registrar"),
                "--listen", "sip:127.0.0.1:0;transport=ws",
                "--listen", "sip:127.0.0.1:0;transport=tcp"]
        if plain_root:
            argv.append("--plain-root")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.stderr)
        self.pid = self.proc.pid
        self.ports = {}
        fd = self.proc.stdout.fileno()
        pending = b""
        deadline = time.monotonic() + 10
        while len(self.ports) < 2:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the registrar did not print its two listeners:\n"
                                   f"{self.errors()}")
            chunk = os.read(fd, 4096)
            if not chunk:
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                m = LISTENING.match(line.decode(errors="replace"))
                if m:
                    self.ports[m.group(3)] = (m.group(1), int(m.group(2)))
        # From now on one line per request: drain it without Python in the way.
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stdout,
                                      stdout=subprocess.DEVNULL)
        self.proc.stdout.close()

    def alive(self):
        return self.proc.poll() is None

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "drain", None) is not None:
            self.drain.wait()
        return self.proc.returncode


def run_load(sip_load, registrar, transport, connections, window, duration, warmup):
    host, port = registrar.ports[transport]
    target = ["--url", f"ws://{host}:{port}/"] if transport == "ws" else ["--tcp", f"{host}:{port}"]
    argv = [sip_load, *target, "-c", str(connections), "-w", str(window),
            "-d", str(duration), "--warmup", str(warmup)]
    before = proc_cpu_ticks(registrar.pid)
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=duration + 30)
    after = proc_cpu_ticks(registrar.pid)
    result = None
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = dict(item.split("=", 1) for item in line.split()[1:])
    label = f"{transport} {connections}x{window}"
    if result is None:
        fail(f"{label}: sip-load exited {done.returncode} without a RESULT line: "
             f"{done.stderr.strip()}")
        return None
    run = {"rps": float(result["rps"]), "p50": int(result["p50_us"]),
           "p99": int(result["p99_us"]), "lost": int(result["lost"]),
           "requests": int(result["requests"])}
    run["cpu_us"] = (after - before) * 1e6 / CLK_TCK / max(run["requests"], 1)
    if done.returncode != 0 or run["lost"] != 0 or int(result.get("non2xx", 0)) != 0:
        fail(f"{label}: sip-load exited {done.returncode}, lost={run['lost']} "
             f"non2xx={result.get('non2xx')}: {done.stderr.strip()}")
        run["failed"] = True
    return run


def fmt_us(us):
    if us is None:
        return "-"
    return f"{us:,.0f} µs" if us < 1000 else f"{us / 1000:,.2f} ms"


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def table(headers, rows, right):
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).rjust(w) if r else str(c).ljust(w)
                                 for c, w, r in zip(cells, widths, right)) + " |"
    out = [line(headers),
           "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                          for w, r in zip(widths, right)) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out)


def median(runs, key):
    values = [r[key] for r in runs if r is not None]
    return statistics.median(values) if values else None


def scenario(args, sip_load, name, plain_root, points):
    registrar = Registrar(args.build, plain_root)
    print(f"\n### {name}: sofia-ws-registrar{' --plain-root' if plain_root else ''} "
          f"(pid {registrar.pid}), ws port {registrar.ports['ws'][1]}, "
          f"tcp port {registrar.ports['tcp'][1]}", flush=True)
    rss_start = proc_status_kib(registrar.pid, "VmRSS")
    rows, failed = [], False
    for connections, window in points:
        runs = {"ws": [], "tcp": []}
        for i in range(args.runs):
            order = ("ws", "tcp") if i % 2 == 0 else ("tcp", "ws")
            for transport in order:
                if not registrar.alive():
                    raise RuntimeError(f"the registrar died:\n{registrar.errors()}")
                run = run_load(sip_load, registrar, transport, connections, window,
                               args.duration, args.warmup)
                failed |= run is None or run.get("failed", False)
                runs[transport].append(run)
                if args.verbose and run is not None:
                    print(f"  {transport:3} {connections}x{window} run {i + 1}: "
                          f"{run['rps']:,.0f} req/s p50 {fmt_us(run['p50'])} "
                          f"p99 {fmt_us(run['p99'])} lost {run['lost']} "
                          f"cpu {run['cpu_us']:.1f} µs/req", flush=True)
        m = {t: {k: median(runs[t], k) for k in ("rps", "p50", "p99", "cpu_us")} for t in runs}
        lost = {t: sum(r["lost"] for r in runs[t] if r is not None) for t in runs}
        rows.append([f"{connections} × {window}",
                     f"{m['ws']['rps']:,.0f}" if m['ws']['rps'] is not None else "-",
                     f"{m['tcp']['rps']:,.0f}" if m['tcp']['rps'] is not None else "-",
                     fmt_ratio(m["ws"]["rps"], m["tcp"]["rps"]),
                     fmt_us(m["ws"]["p50"]), fmt_us(m["tcp"]["p50"]),
                     fmt_us(m["ws"]["p99"]), fmt_us(m["tcp"]["p99"]),
                     fmt_ratio(m["ws"]["p99"], m["tcp"]["p99"]),
                     f"{lost['ws']}", f"{lost['tcp']}",
                     f"{m['ws']['cpu_us']:.1f}" if m['ws']['cpu_us'] is not None else "-",
                     f"{m['tcp']['cpu_us']:.1f}" if m['tcp']['cpu_us'] is not None else "-"])
    hwm = proc_status_kib(registrar.pid, "VmHWM")
    status = registrar.stop()
    headers = ["c × w", "WS req/s", "TCP req/s", "WS/TCP req/s", "WS p50", "TCP p50",
               "WS p99", "TCP p99", "WS/TCP p99", "WS lost", "TCP lost",
               "WS CPU µs/req", "TCP CPU µs/req"]
    print(table(headers, rows, [False] + [True] * (len(headers) - 1)))
    print(f"registrar peak RSS (VmHWM): {hwm / 1024:.1f} MiB "
          f"(RSS after start {rss_start / 1024:.1f} MiB); exit status {status}")
    if status not in (0, -signal.SIGTERM):
        fail(f"{name}: the registrar exited with status {status}:\n{registrar.errors()}")
        failed = True
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(TOP, "_build"), help="build directory")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (3)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="seconds at the start of each run left out of req/s and latency")
    parser.add_argument("--runs", type=int, default=3, help="runs per transport and point (3)")
    parser.add_argument("--points", default="1x1,1x32,50x1,50x32",
                        help="connections x window, comma-separated")
    parser.add_argument("--scenarios", default="glib,plain", help="glib and/or plain")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)
    points = [tuple(int(n) for n in p.split("x")) for p in args.points.split(",")]
    sip_load = os.path.join(args.build, "tests", "sip-load")

    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    print("## Sofia over sofia-ws against Sofia over TCP (sip-load, OPTIONS, one registrar "
          "process per scenario)")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"machine: nproc {len(os.sched_getaffinity(0))}, {model}, "
          f"Linux {os.uname().release}; load average at start {load}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"runs: {args.runs} per transport and point, alternating ws/tcp, {args.duration:g} s "
          f"each ({args.warmup:g} s warm-up left out of req/s and latency); medians; "
          f"CPU = registrar utime+stime over the run / requests", flush=True)

    failed = False
    names = {"glib": ("GLib root", False), "plain": ("plain su_root (--plain-root)", True)}
    for key in args.scenarios.split(","):
        name, plain_root = names[key]
        try:
            failed |= scenario(args, sip_load, name, plain_root, points)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            fail(f"{name}: {e}")
            failed = True
    if failed:
        fail("some runs failed or lost requests (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
