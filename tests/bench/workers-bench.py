#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""More than one core (issue 14): the registrar with 1 and with 2 worker processes on one port.

    /usr/bin/python3 tests/bench/workers-bench.py [--build DIR] [--duration S] [--warmup S]
                                                  [--runs N] [--points 50x1,50x32]
                                                  [--workers 2]

Starts two examples/sofia-ws-registrar --quiet, each with one ws listener on 127.0.0.1 port 0:
one as a single process, one with --workers N (N processes sharing the port with SO_REUSEPORT;
the kernel spreads the connections over them). For each point (connections x window) it runs
tests/sip-load (OPTIONS over ws) against both, alternating which goes first (A B, B A, ...),
--runs times each, and prints per server the median requests/s and p99 with their min-max, the
server's CPU (utime + stime of all its processes over the run, in cores), sip-load's own CPU (in
cores), its CPU time per request, the whole machine's busy cores (/proc/stat) and the 1-minute
load average at the end of the runs; then the ratio N-workers / 1 worker of requests/s and p99, medians with the spread
(the lowest N-worker run over the highest single-process one, to the highest over the lowest).
Each worker's share of the CPU says how evenly the kernel spread the connections.

What bounds it: the gain is limited by the cores there are. On a machine of 2 cores, the load
generator (one process, one core at most) takes a core's worth of CPU itself, so 2 workers have
about one core between them, plus what sip-load leaves; the ratio measured there is a floor,
not what 2 workers give where the load comes from other machines. The output says how many
cores there are and how busy they were. Exit status: 1 when a run lost requests, got a non-2xx
response or failed, or a server died (each with a FAIL line); else 0.
"""
import argparse
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import (CLK_TCK, fail, fmt_us, print_header, proc_cpu_ticks, read_log, run_sip_load,
                      stop_process, table)

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LISTENING = re.compile(r"^listening sip:([^:;]+):(\d+);transport=ws")
WORKER = re.compile(r"^worker (\d+) pid (\d+)$")


class Server:
    """sofia-ws-registrar --quiet with one ws listener, as one process or --workers N."""

    def __init__(self, build, workers):
        self.workers = workers
        self.stderr = tempfile.TemporaryFile()
        self.drain = None
        env = dict(os.environ, SOFIA_WS_PLUGIN_DIR=os.path.join(build, "plugin"))
        argv = [os.path.join(build, "examples", "sofia-ws-registrar"),
                "--listen", "sip:127.0.0.1:0;transport=ws", "--quiet",
                "--max-connections=0", "--max-connections-per-address=0"]
        if workers > 1:
            argv += ["--workers", str(workers)]
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.stderr)
        self.port = None
        self.pids = [] if workers > 1 else [self.proc.pid]
        fd = self.proc.stdout.fileno()
        pending = b""
        deadline = time.monotonic() + 15
        while self.port is None or len(self.pids) < workers:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the registrar (workers {workers}) did not start:\n"
                                   f"{self.errors()}")
            if not select.select([fd], [], [], min(left, 0.5))[0]:
                continue
            chunk = os.read(fd, 4096)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                m = LISTENING.match(text)
                if m:
                    self.port = int(m.group(2))
                m = WORKER.match(text)
                if m:
                    self.pids.append(int(m.group(2)))
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stdout,
                                      stdout=subprocess.DEVNULL)
        self.proc.stdout.close()
        self.label = "1 process" if workers == 1 else f"{workers} workers"

    def cpu_ticks(self):
        """utime + stime of each of its serving processes."""
        return [proc_cpu_ticks(pid) for pid in self.pids]

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.label} died (status {self.proc.returncode}):\n"
                               f"{self.errors()}")
        for pid in self.pids:
            if not os.path.exists(f"/proc/{pid}"):
                raise RuntimeError(f"{self.label}: worker pid {pid} is gone:\n{self.errors()}")

    def errors(self):
        return read_log(self.stderr)

    def stop(self):
        status = stop_process(self.proc, timeout=10)
        if self.drain is not None:
            self.drain.wait()
        return status


def machine_ticks():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]          # idle + iowait
    total = sum(fields[:8])               # up to steal; guest is inside user
    return total - idle, total


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def children_cpu_s():
    usage = os.times()
    return usage.children_user + usage.children_system


def run_once(sip_load, server, connections, window, duration, warmup):
    """One sip-load run against @server: its figures, or None when it failed."""
    before = server.cpu_ticks()
    busy0, total0 = machine_ticks()
    load_cpu0 = children_cpu_s()
    start = time.monotonic()
    problem, result = run_sip_load(sip_load, ["--url", f"ws://127.0.0.1:{server.port}/",
                                              "-c", str(connections), "-w", str(window),
                                              "-d", str(duration), "--warmup", str(warmup)],
                                   timeout=duration + 30)
    elapsed = time.monotonic() - start
    busy1, total1 = machine_ticks()
    load_cpu1 = children_cpu_s()
    after = server.cpu_ticks()
    label = f"{server.label} {connections}x{window}"
    if result is None or problem is not None:
        fail(f"{label}: {problem}")
        return None
    per_process = [(a - b) / CLK_TCK / elapsed for a, b in zip(after, before)]
    cpu_us = (sum(after) - sum(before)) * 1e6 / CLK_TCK / max(int(result["requests"]), 1)
    return {"rps": float(result["rps"]), "p99": int(result["p99_us"]), "cpu_us": cpu_us,
            "server_cores": sum(per_process), "per_process": per_process,
            "load_cores": (load_cpu1 - load_cpu0) / elapsed,
            "machine_cores": (busy1 - busy0) / max(total1 - total0, 1) * os.cpu_count()}


def spread(values, fmt):
    return f"{fmt(min(values))}–{fmt(max(values))}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(TOP, "_build-bench"))
    parser.add_argument("--duration", type=float, default=4)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--points", default="50x1,50x32")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.workers < 2:
        parser.error("--workers: 2 or more (it is compared with one process)")
    points = [tuple(int(x) for x in p.split("x")) for p in args.points.split(",")]
    sip_load = os.path.join(args.build, "tests", "sip-load")

    cores = len(os.sched_getaffinity(0))
    print_header(f"OPTIONS over ws: one registrar process against --workers {args.workers} "
                 f"on one port (SO_REUSEPORT)")
    print(f"note: this machine has {cores} cores and sip-load (one process) shares them with "
          f"the server; with {args.workers} workers on {cores} cores the server cannot have "
          f"{args.workers} cores of its own, so the ratio is a floor for where the load comes "
          f"from elsewhere.")
    print(f"each point: {args.runs} runs of {args.duration:g} s ({args.warmup:g} s warm-up) per "
          f"server, alternating; medians, min–max")
    print()

    failed = False
    single = Server(args.build, 1)
    multi = Server(args.build, args.workers)
    ratios = []
    try:
        for connections, window in points:
            runs = {single: [], multi: []}
            loads = []
            for i in range(args.runs):
                order = (single, multi) if i % 2 == 0 else (multi, single)
                for server in order:
                    server.check_alive()
                    run = run_once(sip_load, server, connections, window, args.duration,
                                   args.warmup)
                    if run is None:
                        failed = True
                        continue
                    runs[server].append(run)
                loads.append(loadavg())
            rows = []
            for server in (single, multi):
                r = runs[server]
                if not r:
                    continue
                shares = ""
                if len(server.pids) > 1:
                    totals = [sum(run["per_process"][k] for run in r)
                              for k in range(len(server.pids))]
                    shares = " / ".join(f"{t / max(sum(totals), 1e-9):.0%}" for t in totals)
                rows.append([server.label,
                             f"{statistics.median(x['rps'] for x in r):,.0f}",
                             spread([x["rps"] for x in r], lambda v: f"{v:,.0f}"),
                             fmt_us(statistics.median(x["p99"] for x in r)),
                             spread([x["p99"] for x in r], fmt_us),
                             f"{statistics.median(x['cpu_us'] for x in r):.1f}",
                             f"{statistics.median(x['server_cores'] for x in r):.2f}",
                             shares or "-",
                             f"{statistics.median(x['load_cores'] for x in r):.2f}",
                             f"{statistics.median(x['machine_cores'] for x in r):.2f} of {cores}"])
            print(f"### {connections} connections × window {window}")
            print(table(["server", "req/s", "req/s min–max", "p99", "p99 min–max",
                         "CPU µs/req", "server cores", "per worker", "sip-load cores",
                         "machine busy"],
                        rows, [False] + [True] * 9))
            print(f"load average (1 min) after each round: "
                  f"{', '.join(f'{x:.2f}' for x in loads)}")
            if runs[single] and runs[multi]:
                one = [x["rps"] for x in runs[single]]
                many = [x["rps"] for x in runs[multi]]
                one_p99 = [x["p99"] for x in runs[single]]
                many_p99 = [x["p99"] for x in runs[multi]]
                ratio = statistics.median(many) / statistics.median(one)
                ratio_p99 = statistics.median(many_p99) / statistics.median(one_p99)
                ratios.append((connections, window, ratio))
                print(f"ratio {args.workers} workers / 1 process: req/s ×{ratio:.2f} "
                      f"(spread ×{min(many) / max(one):.2f}–×{max(many) / min(one):.2f}), "
                      f"p99 ×{ratio_p99:.2f} "
                      f"(spread ×{min(many_p99) / max(one_p99):.2f}–"
                      f"×{max(many_p99) / min(one_p99):.2f})")
            print()
    except RuntimeError as error:
        fail(str(error))
        failed = True
    finally:
        for server in (single, multi):
            status = server.stop()
            if status not in (0, None):
                fail(f"{server.label} exited with status {status}:\n{server.errors()}")
                failed = True
    if ratios:
        print("summary: " + ", ".join(f"{c}×{w}: ×{r:.2f}" for c, w, r in ratios) +
              f" ({args.workers} workers / 1 process, req/s, on {cores} cores shared with "
              f"the load generator)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
