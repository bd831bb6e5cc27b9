#!/usr/bin/env bash
# Services benchmark (run on purpose, not a test; issue 15), on one node:
#   1. programming cost: a whole table of 10 and then 1,000 services x 10 endpoints (PUT,
#      one nftables transaction), and the latency of one endpoint change (PATCH, answered
#      once the change is live in the kernel) at each size: medians over BENCH_CHANGES;
#   2. data plane: HTTP requests/s and p99 latency through a service's virtual address vs
#      straight to the endpoint's address, same client, same run, rounds interleaved.
#
#   bench/services.sh
#   BENCH_CHANGES=50 BENCH_REQUESTS=4000 bench/services.sh
#
# Everything runs in network namespaces this script makes (the node with its agent in
# development mode on a unix socket, an endpoint with busybox httpd, a client) and removes.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHIM="${MINI_SHIM:-$ROOT/target/x86_64-unknown-linux-gnu/release/mini-shim}"
CHANGES="${BENCH_CHANGES:-30}"
REQUESTS="${BENCH_REQUESTS:-2000}"
[ -x "$SHIM" ] || { echo "no $SHIM: run cargo build --release -p mini-shim first" >&2; exit 1; }

node="msvcb$$"; ep="${node}e"; cl="${node}c"
dir="$(mktemp -d)"; agent=""
cleanup() {
    [ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
    for ns in "$node" "$ep" "$cl"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

for ns in "$node" "$ep" "$cl"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$node" link add toep type veth peer name eth0 netns "$ep"
ip -n "$node" link add tocl type veth peer name eth0 netns "$cl"
ip -n "$node" addr add 10.89.0.1/24 dev toep; ip -n "$ep" addr add 10.89.0.2/24 dev eth0
ip -n "$node" addr add 192.168.78.1/24 dev tocl; ip -n "$cl" addr add 192.168.78.2/24 dev eth0
for pair in "$node toep" "$node tocl" "$ep eth0" "$cl eth0"; do set -- $pair; ip -n "$1" link set "$2" up; done
ip -n "$ep" route add default via 10.89.0.1
ip -n "$cl" route add default via 192.168.78.1
ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1

mkdir -p "$dir/www"; echo ok > "$dir/www/index.html"
ip netns exec "$ep" busybox httpd -p 8080 -h "$dir/www"
nsenter --net="/run/netns/$node" "$SHIM" agent --dev --cleanup --node-name n1 \
    --listen "unix:$dir/sock" --state-dir "$dir/state" 2>"$dir/agent.log" &
agent=$!
for _ in $(seq 100); do curl -s --unix-socket "$dir/sock" http://a/v1/version >/dev/null && break; sleep 0.1; done

python3 - "$dir/sock" "$CHANGES" <<'EOF'
import json, statistics, subprocess, sys, time
sock, changes = sys.argv[1], int(sys.argv[2])

def call(method, body):
    out = subprocess.run(["curl", "-s", "-m", "600", "--unix-socket", sock, "-X", method,
                          "-w", "\n%{http_code} %{time_total}", "--data-binary", "@-",
                          "http://a/v1/services"], input=json.dumps(body).encode(),
                         capture_output=True, check=True).stdout.decode()
    text, tail = out.rsplit("\n", 1)
    code, seconds = tail.split()
    if code != "200":
        sys.exit(f"{method} /v1/services: {code} {text}")
    return float(seconds)

def service(i, endpoints, first=1):
    return {"name": f"s{i}", "address": f"10.96.{i // 250}.{i % 250 + 1}",
            "ports": [{"port": 80, "target_port": 8080, "protocol": "tcp"}],
            "endpoints": [{"instance": f"s{i}-{e}", "node": "n2",
                           "address": f"10.{100 + e}.{i // 250}.{i % 250 + first}",
                           "weight": 10} for e in range(endpoints)]}

generation = 0
for count in (10, 1000):
    generation += 1
    table = {"generation": generation, "domain": "cluster.local",
             "services": [service(i, 10) for i in range(count)]}
    put = call("PUT", table)
    times = []
    for c in range(changes):
        s = service(0, 10, first=2 + c % 2)  # the last endpoint's address changes
        s["endpoints"] = table["services"][0]["endpoints"][:9] + s["endpoints"][9:]
        generation += 1
        times.append(call("PATCH", {"from": generation - 1, "generation": generation,
                                    "upsert": [s]}))
    print(f"{count} services x 10 endpoints: whole table (PUT) {put * 1000:.0f} ms; "
          f"one endpoint change (PATCH) median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms over {changes}")
generation += 1
call("PUT", {"generation": generation, "domain": "cluster.local", "services": [
    {"name": "bench", "address": "10.96.0.1",
     "ports": [{"port": 80, "target_port": 8080, "protocol": "tcp"}],
     "endpoints": [{"instance": "ep", "node": "n2", "address": "10.89.0.2", "weight": 1}]}]})
EOF

ip netns exec "$cl" python3 - "$REQUESTS" <<'EOF'
import socket, sys, time
requests = int(sys.argv[1])
targets = {"through the service 10.96.0.1:80": ("10.96.0.1", 80),
           "straight to the endpoint 10.89.0.2:8080": ("10.89.0.2", 8080)}
lat = {name: [] for name in targets}
spent = {name: 0.0 for name in targets}
for _ in range(4):  # interleaved rounds, so drift on a shared machine hits both alike
    for name, addr in targets.items():
        start = time.perf_counter()
        for _ in range(requests // 4):
            t = time.perf_counter()
            s = socket.create_connection(addr, timeout=5)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            while s.recv(4096):
                pass
            s.close()
            lat[name].append(time.perf_counter() - t)
        spent[name] += time.perf_counter() - start
for name in targets:
    l = sorted(lat[name])
    print(f"{name}: {len(l) / spent[name]:.0f} requests/s, p50 {l[len(l) // 2] * 1e3:.2f} ms, "
          f"p99 {l[int(len(l) * 0.99)] * 1e3:.2f} ms ({len(l)} requests, a new connection each)")
EOF
