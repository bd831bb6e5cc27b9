#!/usr/bin/env python3
"""mini-sched end to end on hollow nodes (issue 16's benchmark; not a test).

Runs the release mini-sched daemon and `mini-shim hollow --count NODES` in a network namespace
of their own, applies WORKLOADS workloads totalling INSTANCES instances, and reports:
time until all run, p50/p99 from apply to running per instance (seen by polling
`get instances`, so each figure is late by up to one poll), the daemon's peak RSS and CPU
seconds, `get instances` p99 during the burst, false node losses, and then, with LOSE nodes
frozen at once, the time until every instance runs on the others again.

    sudo bench/sched_e2e.py [--nodes 1000] [--instances 30000] [--workloads 30] [--lose 100]

Everything it makes (namespace, temporary directory, processes) is removed at the end.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release")
JOIN = "127.0.0.1:7440"


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def proc_stats(pid):
    """(rss bytes, cpu seconds) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return rss, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--instances", type=int, default=30000)
    ap.add_argument("--workloads", type=int, default=30)
    ap.add_argument("--lose", type=int, default=100)
    ap.add_argument("--poll", type=float, default=0.5, help="seconds between polls")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per phase")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="mini-sched-e2e-")
    netns = f"msbench{os.getpid()}"
    children = []
    sched = os.path.join(BIN, "mini-sched")
    sock = os.path.join(tmp, "sched.sock")

    def ns(cmd):
        return ["nsenter", f"--net=/run/netns/{netns}"] + cmd

    def cli(*a):
        t = time.monotonic()
        out = subprocess.run([sched, "--socket", sock, *a], capture_output=True, text=True)
        return out, time.monotonic() - t

    def get(kind):
        out, took = cli("get", kind, "-o", "json")
        if out.returncode != 0:
            return None, took
        text = out.stdout.strip()
        return (json.loads(text) if text else []), took

    try:
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        init = subprocess.run(
            [sched, "init", "--state-dir", f"{tmp}/sched", "--advertise", JOIN,
             # a /24 per node for up to 16,384 nodes (the default /16 holds 256)
             "--cluster-cidr", "10.128.0.0/10"],
            capture_output=True, text=True, check=True)
        token = next(w for w in (init.stdout + init.stderr).replace('"', " ").split()
                     if w.startswith("mst1."))
        daemon = subprocess.Popen(
            ns([sched, "daemon", "--state-dir", f"{tmp}/sched", "--socket", sock,
                "--join-listen", JOIN]),
            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/sched.log", "w"))
        children.append(daemon)
        while not os.path.exists(sock) or cli("get", "nodes")[0].returncode != 0:
            time.sleep(0.2)
        t0 = time.monotonic()
        hollow = subprocess.Popen(
            ns([os.path.join(BIN, "mini-shim"), "hollow", "--count", str(args.nodes),
                "--join", JOIN, "--token", token, "--state-dir", f"{tmp}/hollow",
                "--max-connections", "64"]),
            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/hollow.log", "w"))
        children.append(hollow)
        while True:
            nodes, _ = get("nodes")
            if nodes and sum(n["state"] == "ready" for n in nodes) == args.nodes:
                break
            if time.monotonic() - t0 > args.timeout:
                sys.exit(f"only {sum(n['state'] == 'ready' for n in nodes or [])} nodes ready")
            time.sleep(1)
        print(f"{args.nodes} hollow nodes joined and ready in {time.monotonic() - t0:.1f} s")
        names = [n["name"] for n in nodes]

        rss0, cpu0 = proc_stats(daemon.pid)
        per = args.instances // args.workloads
        applied = {}
        start = time.monotonic()
        for w in range(args.workloads):
            spec = (f"name: bench{w}\nsource: {{rootfs: /nonexistent-hollow}}\n"
                    f"command: [sleep, '1000']\nreplicas: {per}\n"
                    "resources:\n  requests: {cpu: 10m, memory: 4Mi}\nstop_timeout: 1s\n")
            path = f"{tmp}/bench{w}.yaml"
            with open(path, "w") as f:
                f.write(spec)
            out, _ = cli("apply", "-f", path)
            if out.returncode != 0:
                sys.exit(f"apply: {out.stderr}")
            applied[f"bench{w}"] = time.monotonic()
        print(f"applied {args.workloads} workloads x {per} in {time.monotonic() - start:.1f} s")

        running_at, get_times, peak_rss = {}, [], rss0
        total = per * args.workloads
        while len(running_at) < total:
            insts, took = get("instances")
            get_times.append(took)
            now = time.monotonic()
            for i in insts or []:
                if i["phase"] == "running" and i["id"] not in running_at:
                    running_at[i["id"]] = now - applied[i["workload"]]
            peak_rss = max(peak_rss, proc_stats(daemon.pid)[0])
            if now - start > args.timeout:
                print(f"timed out: {len(running_at)} of {total} running")
                break
            time.sleep(args.poll)
        all_running = time.monotonic() - start
        rss1, cpu1 = proc_stats(daemon.pid)
        lat = list(running_at.values())
        nodes, _ = get("nodes")
        false_losses = sum(n["state"] == "lost" for n in nodes or [])
        print(f"all {len(running_at)} running after {all_running:.1f} s "
              f"({len(running_at) / all_running:.0f} instances/s)")
        print(f"apply -> running: p50 {pct(lat, 50):.1f} s, p99 {pct(lat, 99):.1f} s")
        print(f"scheduler: peak RSS {peak_rss / 2**20:.0f} MiB (before {rss0 / 2**20:.0f} MiB), "
              f"cpu {cpu1 - cpu0:.1f} s over {all_running:.1f} s")
        print(f"get instances during the burst: p50 {pct(get_times, 50) * 1000:.0f} ms, "
              f"p99 {pct(get_times, 99) * 1000:.0f} ms ({len(get_times)} calls)")
        print(f"false node losses: {false_losses}")

        frozen = set(names[: args.lose])
        with open(f"{tmp}/hollow/frozen", "w") as f:
            f.write("\n".join(sorted(frozen)))
        lost_at = time.monotonic()
        while True:
            insts, _ = get("instances")
            if insts is not None and len(insts) == total and all(
                    i["phase"] == "running" and i.get("node") not in frozen for i in insts):
                break
            if time.monotonic() - lost_at > args.timeout:
                print("timed out waiting for the replacements")
                break
            time.sleep(args.poll)
        print(f"{args.lose} nodes lost at once: all instances running elsewhere after "
              f"{time.monotonic() - lost_at:.1f} s")
        nodes, _ = get("nodes")
        wrong = [n["name"] for n in nodes or []
                 if (n["state"] == "lost") != (n["name"] in frozen)]
        print(f"nodes lost that were not frozen, or frozen and not lost: {len(wrong)}")
    finally:
        for c in reversed(children):
            c.kill()
            c.wait()
        subprocess.run(["ip", "netns", "del", netns])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
