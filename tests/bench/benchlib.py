# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the benchmark drivers (sofia-bench.py, scale-bench.py) share: the registrar they start,
/proc readings, the machine line and markdown tables."""
import os
import re
import resource
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
LISTENING = re.compile(r"^listening sip:([^:;]+):(\d+);transport=(\w+)")


def fail(message):
    print(f"FAIL: {message}", flush=True)


def proc_cpu_ticks(pid):
    """utime + stime of @pid, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()   # fields from the 3rd (state) on
    return int(fields[11]) + int(fields[12])      # utime (14th), stime (15th)


def proc_wakeups(pid):
    """How often @pid's main thread went to sleep and was woken: its voluntary context
    switches (/proc/PID/status), which counts each blocking poll() that had to wait."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def loadavg():
    """The machine's load averages over 1, 5 and 15 minutes, as /proc/loadavg says them."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def proc_status_kib(pid, key):
    """A "kB" line of /proc/PID/status, such as VmRSS or VmHWM."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def nofile_setter(wanted):
    """A preexec_fn: the child's soft RLIMIT_NOFILE set to @wanted, capped at the hard limit.

    Set, not only raised: lws sizes its descriptor table from this limit and (in Debian's
    build of 4.1) scans the whole table on every close, so an inherited limit far above the
    need would weigh on the registrar, and differently for each count."""
    def set_limit():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return set_limit


def print_header(title, extra=""):
    """The title, the machine (cores, CPU, kernel, load) and the exact command."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = loadavg()
    print(f"## {title}")
    print(f"machine: nproc {len(os.sched_getaffinity(0))}, {model}, "
          f"Linux {os.uname().release}; load average at start {load}{extra}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")


def parse_fields(line):
    """The key=value fields of a line such as sip-load's "RESULT requests=.. lost=.."."""
    return dict(item.split("=", 1) for item in line.split()[1:] if "=" in item)


def run_sip_load(sip_load, args, timeout):
    """Runs tests/sip-load with @args: (why it failed or None, the fields of its RESULT line
    or None). A run fails when it exits non-zero, prints no RESULT, or lost requests or got
    a non-2xx final response."""
    done = subprocess.run([sip_load, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
    result = None
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = parse_fields(line)
    if result is None:
        return (f"sip-load exited {done.returncode} without a RESULT line: "
                f"{done.stderr.strip()}"), None
    if done.returncode != 0 or int(result["lost"]) != 0 or int(result.get("non2xx", 0)) != 0:
        return (f"sip-load exited {done.returncode}, lost={result['lost']} "
                f"non2xx={result.get('non2xx')}: {done.stderr.strip()}"), result
    return None, result


def fmt_us(us):
    if us is None:
        return "-"
    return f"{us:,.0f} µs" if us < 1000 else f"{us / 1000:,.2f} ms"


def table(headers, rows, right):
    """A markdown table; @right says which columns are right-aligned."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).rjust(w) if r else str(c).ljust(w)
                                 for c, w, r in zip(cells, widths, right)) + " |"
    out = [line(headers),
           "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                          for w, r in zip(widths, right)) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out)


def stop_process(proc, timeout=5):
    """SIGTERM to @proc (a Popen) if it still runs, SIGKILL after @timeout seconds; its exit
    status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def read_log(log):
    """The whole text of a process's log file (a TemporaryFile it wrote its stderr to)."""
    log.seek(0)
    return log.read().decode(errors="replace")


class Registrar:
    """One examples/sofia-ws-registrar --quiet with a ws and a tcp listener on 127.0.0.1,
    port 0; optionally on Sofia's own loop (--plain-root), with a set RLIMIT_NOFILE, and under
    a @wrapper (such as valgrind: the argv it runs the registrar with, same pid).

    --quiet: its line per request would cost both transports the same few microseconds of
    formatting and write(2), and hide what the transports themselves cost. What it still
    prints after its "listening" lines is drained by cat(1), so that it never blocks."""

    name = "the registrar"

    def __init__(self, build, plain_root=False, nofile=None, wrapper=(), start_timeout=10):
        self.stderr = tempfile.TemporaryFile()
        self.drain = None
        env = dict(os.environ, SOFIA_WS_PLUGIN_DIR=os.path.join(build, "plugin"))
        argv = [*wrapper, os.path.join(build, "examples", "sofia-ws-registrar"),
                "--listen", "sip:127.0.0.1:0;transport=ws",
                "--listen", "sip:127.0.0.1:0;transport=tcp", "--quiet",
                # The crowds all come from 127.0.0.1, 10,000 and more: no connection limits.
                "--max-connections=0", "--max-connections-per-address=0"]
        if plain_root:
            argv.append("--plain-root")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.stderr,
                                     preexec_fn=nofile_setter(nofile) if nofile else None)
        self.pid = self.proc.pid
        self.ports = {}
        fd = self.proc.stdout.fileno()
        pending = b""
        deadline = time.monotonic() + start_timeout
        while len(self.ports) < 2:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the registrar did not print its two listeners:\n"
                                   f"{self.errors()}")
            if not select.select([fd], [], [], min(left, 0.5))[0]:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                m = LISTENING.match(line.decode(errors="replace"))
                if m:
                    self.ports[m.group(3)] = (m.group(1), int(m.group(2)))
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stdout,
                                      stdout=subprocess.DEVNULL)
        self.proc.stdout.close()
        self.rss_start = proc_status_kib(self.pid, "VmRSS")

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"the registrar died (status {self.proc.returncode}):\n"
                               f"{self.errors()}")

    def nofile(self):
        with open(f"/proc/{self.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        return 0

    def errors(self):
        return read_log(self.stderr)

    def stop(self):
        status = stop_process(self.proc)
        if self.drain is not None:
            self.drain.wait()
        return status
