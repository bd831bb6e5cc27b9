#!/usr/bin/env python3
"""Timing loop of the startup benchmark (called by bench/startup.sh and bench/startup-vm.sh).

For each runtime, N sequential `RUNTIME --root STATE run --bundle B ID` of the bundle's
/bin/true, the runtimes interleaved round-robin (and the order rotated every round) so that
machine drift and ordering effects hit them all alike. Wall time of each run on a
monotonic clock, measured around posix_spawn + waitpid, the cheapest way to start a process
from Python: its own overhead is the same for every runtime.

Then a smaller pass under /usr/bin/time -f %M for the peak RSS (KiB): GNU time reports the
waited-for child's ru_maxrss, which covers the runtime and the processes it waited for.
Separate from the timing pass because time(1) itself adds start-up cost.

The cpu time (user + system) of each timed run comes from wait4's rusage: it counts the runtime
and every process it reaped (the container's init and process among them).
"""

import argparse
import math
import os
import statistics
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--state", required=True, help="directory for the runtimes' --root dirs")
    p.add_argument("-n", type=int, default=200, help="timed runs per runtime")
    p.add_argument("--rss-n", type=int, default=20, help="runs per runtime for peak RSS")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per runtime first")
    p.add_argument("--time-bin", default="/usr/bin/time")
    p.add_argument("--tag", default=f"bench{os.getpid()}", help="prefix of container ids")
    p.add_argument("runtimes", nargs="+", help="NAME=PATH")
    return p.parse_args()


class Runtime:
    def __init__(self, spec, state_base):
        self.name, _, self.path = spec.partition("=")
        self.root = os.path.join(state_base, self.name)
        os.makedirs(self.root, exist_ok=True)
        self.times_ms = []
        self.cpu_ms = []
        self.rss_kib = []
        self.failures = 0
        self.last_error = ""


def spawn_wait(argv, err_path):
    """Run argv with stdin/stdout on /dev/null and stderr to err_path.
    Returns (wall ms, exit code, cpu ms of the process and the children it reaped)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, devnull, 1),
        (os.POSIX_SPAWN_DUP2, err, 2),
    ]
    try:
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        t1 = time.perf_counter_ns()
    finally:
        os.close(devnull)
        os.close(err)
    cpu_ms = (usage.ru_utime + usage.ru_stime) * 1e3
    return (t1 - t0) / 1e6, os.waitstatus_to_exitcode(status), cpu_ms


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


class Bench:
    def __init__(self, args):
        self.args = args
        self.scratch = tempfile.mkdtemp(prefix="driver.", dir=args.state)
        self.err = os.path.join(self.scratch, "stderr")
        self.counter = 0
        self.runtimes = [Runtime(s, args.state) for s in args.runtimes]

    def next_id(self, rt):
        self.counter += 1
        return f"{self.args.tag}-{rt.name}-{self.counter}"

    def cleanup(self, rt, cid):
        """`run` normally deletes the container itself; if state is left, force-delete it
        (untimed) so that runs never pile up containers or cgroups."""
        if os.path.exists(os.path.join(rt.root, cid)):
            spawn_wait([rt.path, "--root", rt.root, "delete", "-f", cid], self.err + ".del")

    def run_once(self, rt, prefix=()):
        cid = self.next_id(rt)
        argv = list(prefix) + [rt.path, "--root", rt.root, "run", "--bundle", self.args.bundle, cid]
        ms, code, cpu = spawn_wait(argv, self.err)
        if code != 0:
            rt.failures += 1
            rt.last_error = f"exit {code}: {read_text(self.err)[-600:]}"
        self.cleanup(rt, cid)
        return ms, code, cpu

    def warmup(self):
        """Untimed runs; a runtime that cannot run the bundle at all is dropped here."""
        for rt in list(self.runtimes):
            ok = 0
            for _ in range(self.args.warmup):
                _, code, _ = self.run_once(rt)
                ok += code == 0
            if ok == 0 and self.args.warmup > 0:
                print(f"  dropping {rt.name}: it failed every warm-up run ({rt.last_error})",
                      file=sys.stderr)
                self.runtimes.remove(rt)
            rt.failures = 0

    def timed_pass(self):
        rts = self.runtimes
        for i in range(self.args.n):
            k = i % len(rts)
            for rt in rts[k:] + rts[:k]:
                ms, code, cpu = self.run_once(rt)
                if code == 0:
                    rt.times_ms.append(ms)
                    rt.cpu_ms.append(cpu)
            if (i + 1) % 50 == 0:
                print(f"  {i + 1}/{self.args.n} rounds", file=sys.stderr)

    def rss_pass(self):
        if not os.access(self.args.time_bin, os.X_OK):
            print(f"  no {self.args.time_bin}: skipping peak RSS", file=sys.stderr)
            return
        out = os.path.join(self.scratch, "maxrss")
        rts = self.runtimes
        for i in range(self.args.rss_n):
            k = i % len(rts)
            for rt in rts[k:] + rts[:k]:
                _, code, _ = self.run_once(rt, [self.args.time_bin, "-f", "%M", "-o", out])
                value = read_text(out).splitlines()
                if code == 0 and value and value[-1].isdigit():
                    rt.rss_kib.append(int(value[-1]))


def pct(sorted_values, p):
    """Nearest-rank percentile."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def fmt(x, spec=".2f"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def report(runtimes, n):
    med = {rt.name: statistics.median(rt.times_ms) for rt in runtimes if rt.times_ms}
    cpu = {rt.name: statistics.median(rt.cpu_ms) for rt in runtimes if rt.cpu_ms}
    cols = ["runtime", "runs", "fail", "median ms", "p90 ms", "mean ms", "x crun", "x runc",
            "cpu ms", "cpu x crun", "RSS med KiB", "RSS max KiB"]
    rows = []
    for rt in runtimes:
        t = sorted(rt.times_ms)
        m = med.get(rt.name)
        rows.append([
            rt.name, str(len(t)), str(rt.failures),
            fmt(m), fmt(pct(t, 90)), fmt(statistics.fmean(t) if t else None),
            fmt(m / med["crun"] if m and "crun" in med else None),
            fmt(m / med["runc"] if m and "runc" in med else None),
            fmt(cpu.get(rt.name)),
            fmt(cpu[rt.name] / cpu["crun"] if rt.name in cpu and "crun" in cpu else None),
            fmt(int(statistics.median(rt.rss_kib)) if rt.rss_kib else None, "d"),
            fmt(max(rt.rss_kib) if rt.rss_kib else None, "d"),
        ])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(cols))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
    for rt in runtimes:
        if rt.failures:
            print(f"note: {rt.name} failed {rt.failures} run(s); last: {rt.last_error}")


def main():
    args = parse_args()
    bench = Bench(args)
    print(f"  warm-up: {args.warmup} run(s) each", file=sys.stderr)
    bench.warmup()
    if not bench.runtimes:
        print("no runtime could run the bundle", file=sys.stderr)
        return 1
    print(f"  timing: {args.n} rounds of {' '.join(r.name for r in bench.runtimes)}",
          file=sys.stderr)
    bench.timed_pass()
    print(f"  peak RSS: {args.rss_n} rounds under {args.time_bin}", file=sys.stderr)
    bench.rss_pass()
    print()
    report(bench.runtimes, args.n)
    return 0 if all(rt.times_ms for rt in bench.runtimes) else 1


if __name__ == "__main__":
    sys.exit(main())
