#!/usr/bin/env bash
# A three-host mini-sched cluster on one machine, one network namespace per host, joined by
# veth pairs to a bridge in a fourth namespace where the scheduler runs. Walks through
# deploy (on the cluster network: one instance fetches another's page across hosts by its
# address) → scale → rolling update → host loss and healing → the host's return (its stale
# copies are stopped), then removes everything it made. README: "A cluster on one machine".
#
#   scripts/cluster-demo.sh            # builds what it needs (release), runs the walkthrough
#   DEMO_PAUSE=1 scripts/cluster-demo.sh   # waits for Enter between steps
#   MINI_BIN_DIR=target/x86_64-unknown-linux-gnu/debug scripts/cluster-demo.sh  # prebuilt
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" -eq 0 ] || { echo "cluster-demo: run as root (namespaces, cgroups)" >&2; exit 1; }

rootfs=$(rootfs-fixtures/build.sh)
if [ -n "${MINI_BIN_DIR:-}" ]; then   # prebuilt binaries (e.g. target/…/debug)
    bin=$(cd "$MINI_BIN_DIR" && pwd)
else
    cargo build --release -p mini-sched -p mini-shim -p mini-run >&2
    bin="$PWD/target/x86_64-unknown-linux-gnu/release"
fi

work=$(mktemp -d "/tmp/mini-sched-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The binaries run from a private copy: a rebuild during the demo cannot pull them away.
mkdir -p "$work/bin"
cp "$bin/mini-sched" "$bin/mini-shim" "$bin/mini-run" "$work/bin/"
bin="$work/bin"
tag="d$$"                       # unique per run: namespaces, links, directories
hub="msd-$tag-hub"
sock="$work/sched.sock"
pids=()
agent_pid=()

sched() { "$bin/mini-sched" --socket "$sock" "$@"; }
# `nsenter --net` enters only the network namespace (`ip netns exec` would also remount /sys,
# hiding the cgroup hierarchies the agents' containers need) and execs the program, so `$!` is
# the program's own pid.
step() {
    printf '\n\033[1m== %s\033[0m\n' "$*"
    if [ -n "${DEMO_PAUSE:-}" ]; then read -r -p "(Enter to go on) " _; fi
}
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...: polls until COMMAND succeeds
    local limit=$1 what=$2; shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$end" ]; then echo "cluster-demo: timed out waiting for $what" >&2; return 1; fi
        sleep 0.3
    done
}

cleanup() {
    local status=$?
    set +e
    if [ "$status" -ne 0 ] && [ -S "$sock" ]; then
        echo "cluster-demo: failed; the cluster's state and last events:" >&2
        sched get instances -o wide >&2
        sched events | tail -n 25 >&2
        tail -n 20 "$work"/*.log >&2
    fi
    if [ -S "$sock" ]; then
        sched delete workload web >/dev/null 2>&1
        for _ in $(seq 1 60); do
            sched get workloads -o json 2>/dev/null | grep -q '"web"' || break
            sleep 0.5
        done
    fi
    for pid in "${pids[@]}" "${agent_pid[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${pids[@]}" "${agent_pid[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    # Last resort, should the workload's deletion not have finished: monitors (and with them
    # their containers) of this demo, found by the demo's own directory in their command line.
    for cmdline in /proc/[0-9]*/cmdline; do
        if tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -qF "$work/"; then
            pid=${cmdline#/proc/}; pid=${pid%/cmdline}
            echo "cluster-demo: stopping leftover process $pid" >&2
            kill -9 "$pid" 2>/dev/null
        fi
    done
    for i in 1 2 3; do ip netns del "msd-$tag-n$i" 2>/dev/null; done
    ip netns del "$hub" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

step "Network: a hub namespace with a bridge, three host namespaces on veth links"
ip netns add "$hub"
ip -n "$hub" link set lo up
ip -n "$hub" link add br0 type bridge
ip -n "$hub" addr add 10.88.0.1/24 dev br0
ip -n "$hub" link set br0 up
for i in 1 2 3; do
    ns="msd-$tag-n$i"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$hub" link add "h$i" type veth peer name eth0 netns "$ns"
    ip -n "$hub" link set "h$i" master br0 up
    ip -n "$ns" addr add "10.88.0.1$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    echo "host n$i: namespace $ns, 10.88.0.1$i"
done

step "mini-sched init: the cluster CA, a join token and the cluster network; the daemon in the hub namespace"
# The hosts are on 10.88.0.0/24, so the instances' network takes another range.
init_out=$("$bin/mini-sched" init --state-dir "$work/sched" --advertise 10.88.0.1:7440 \
    --cluster-cidr 10.244.0.0/16 --subnet-size 24)
echo "$init_out"
token=$(grep -o 'mst1\.[0-9a-f]*\.[0-9a-f]*' <<<"$init_out" | head -n1)
nsenter --net="/run/netns/$hub" "$bin/mini-sched" daemon --state-dir "$work/sched" --socket "$sock" \
    --join-listen 10.88.0.1:7440 --heartbeat-interval 500ms --node-timeout 3s \
    >"$work/daemon.log" 2>&1 &
pids+=($!)
wait_for 10 "the daemon's socket" test -S "$sock"

start_agent() {
    local i=$1 zone
    zone=$([ "$i" -eq 1 ] && echo a || echo b)
    nsenter --net="/run/netns/msd-$tag-n$i" "$bin/mini-shim" join --scheduler 10.88.0.1:7440 --token "$token" \
        --listen "10.88.0.1$i:7443" --node-name "n$i" --label "zone=$zone" \
        --state-dir "$work/agent-$i" >>"$work/agent-$i.log" 2>&1 &
    agent_pid[$i]=$!
}

step "Three agents join with the token (each gets its certificate from the cluster CA)"
for i in 1 2 3; do start_agent "$i"; done
wait_for 20 "three ready nodes" bash -c "[ \$('$bin/mini-sched' --socket '$sock' get nodes -o json | grep -c '\"state\": \"ready\"') -eq 3 ]"
sched get nodes -o wide

step "Deploy: three busybox httpd instances spread over the zone label, on the cluster network (the default)"
sed -e "s|rootfs: .*|rootfs: $rootfs|" scheduler/examples/web.yaml >"$work/web.yaml"
sched apply -f "$work/web.yaml"
sched rollout status web --timeout 60s
all_addressed() {
    sched get instances -o json | python3 -c '
import json,sys
run=[i for i in json.load(sys.stdin) if i["phase"]=="running"]
sys.exit(0 if len(run)==3 and all(i.get("address") for i in run) else 1)'
}
wait_for 30 "every instance's address" all_addressed
sched get instances -o wide

step "Cluster network: each node has a subnet; an instance fetches a page from one on another host"
for n in 1 2 3; do sched describe node "n$n" | grep -E '^(Name|Subnet):'; done
read -r from to to_node address < <(sched get instances -o json | python3 -c '
import json,sys
run=[i for i in json.load(sys.stdin) if i["phase"]=="running" and i.get("address")]
a=run[0]; b=next(i for i in run if i["node"]!=a["node"])
print(a["id"], b["id"], b["node"], b["address"])')
echo "$from (on $(sched get instances -o json | python3 -c 'import json,sys; print(next(i["node"] for i in json.load(sys.stdin) if i["id"]==sys.argv[1]))' "$from")) fetches http://$address:8080/ from $to (on $to_node):"
sched exec "$from" -- sh -c "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $address 8080"

step "Scale to 5"
sched scale web 5
sched rollout status web --timeout 60s
sched get instances

step "Rolling update: a new greeting (max surge 1, max unavailable 0)"
sed -i -e 's/GREETING: hello/GREETING: bonjour/' -e 's/^replicas: 3/replicas: 5/' "$work/web.yaml"
sched apply -f "$work/web.yaml"
sched rollout status web --timeout 120s
sched get instances

victim=$(sched get instances -o json | python3 -c '
import collections,json,sys
c=collections.Counter(i["node"] for i in json.load(sys.stdin) if i["phase"]=="running")
print(c.most_common(1)[0][0])')
i=${victim#n}
step "Kill host $victim: its link goes down; the scheduler replaces its instances elsewhere"
echo "running on $victim: $(sched get instances -o json | python3 -c '
import json,sys
print(" ".join(i["id"] for i in json.load(sys.stdin) if i.get("node")==sys.argv[1] and i["phase"]=="running"))' "$victim")"
ip -n "$hub" link set "h$i" down
lost_at=$(date +%s.%N)
five_elsewhere() {
    sched get instances -o json | python3 -c '
import json,sys
live=[i for i in json.load(sys.stdin) if i["phase"]=="running" and i["ready"] and i.get("node")!=sys.argv[1]]
sys.exit(0 if len(live)>=5 else 1)' "$victim"
}
wait_for 60 "five ready instances on the other hosts" five_elsewhere
healed_at=$(date +%s.%N)
awk -v a="$lost_at" -v b="$healed_at" 'BEGIN { printf "host loss to all instances replaced and ready: %.1f s\n", b - a }'
sched get nodes
sched get instances

step "Host $victim comes back: its stale copies are stopped (fencing), nothing runs twice"
ip -n "$hub" link set "h$i" up
victim_ready() {
    sched get nodes -o json | python3 -c '
import json,sys
sys.exit(0 if any(n["name"]==sys.argv[1] and n["state"]=="ready" for n in json.load(sys.stdin)) else 1)' "$victim"
}
wait_for 30 "$victim ready again" victim_ready
sleep 3
sched events | grep -E "NodeLost|NodeReturned|Fenced|Lost" | tail -n 8
sched get nodes
sched get instances

step "Delete the workload and take the cluster down"
sched delete workload web
