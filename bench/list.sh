#!/usr/bin/env bash
# `list` and `state` benchmark (run on purpose, not a test): each runtime gets N created
# containers (their inits waiting for `start`) under its own --root, then `list`, `list
# --format json` and `state ID` are timed R times each, the runtimes interleaved; every
# container is deleted at the end, also on failure.
#
#   bench/list.sh                        BENCH_CONTAINERS=300, BENCH_R=20
#   BENCH_CONTAINERS=1000 BENCH_RUNTIMES="mini-run runc" bench/list.sh
#
# Environment: BENCH_CONTAINERS, BENCH_R, BENCH_RUNTIMES (default "mini-run runc crun"; one
# that cannot create the bundle on this host's cgroup layout, as crun on a hybrid host whose
# v2 tree holds controllers, is dropped with its error), MINI_RUN (the mini-run binary).
# Prints medians of wall time and of cpu time (user + system, wait4's rusage).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
readonly HERE ROOT
readonly FIXTURE="$ROOT/rootfs-fixtures/out/busybox"
N=${BENCH_CONTAINERS:-300}
R=${BENCH_R:-20}

say() { echo "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$FIXTURE/bin/busybox" ] || "$ROOT/rootfs-fixtures/build.sh" >/dev/null

WORK=$(mktemp -d /tmp/mini-bench-list.XXXXXX)
declare -a PATHS=() NAMES=()
cleanup() {
    local i id
    for i in "${!NAMES[@]}"; do
        for id in $(ls "$WORK/state/${NAMES[$i]}" 2>/dev/null); do
            "${PATHS[$i]}" --root "$WORK/state/${NAMES[$i]}" delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/bundle" "$WORK/state"
cp -a "$FIXTURE" "$WORK/bundle/rootfs"
(cd "$WORK/bundle" && runc spec)
python3 "$HERE/true_config.py" "$WORK/bundle/config.json"

for r in ${BENCH_RUNTIMES:-mini-run crun runc}; do
    if [ "$r" = mini-run ]; then
        path=${MINI_RUN:-$ROOT/target/x86_64-unknown-linux-gnu/release/mini-run}
    else
        path=$(command -v "$r") || { say "note: skipping $r: not installed"; continue; }
    fi
    root="$WORK/state/$r"
    # Output to files: a created container's init keeps the runtime's stdio open.
    if ! "$path" --root "$root" create --bundle "$WORK/bundle" c1 </dev/null >/dev/null 2>"$WORK/err"; then
        say "note: skipping $r: it cannot create the bundle here: $(cat "$WORK/err")"
        rm -rf "$root"
        continue
    fi
    NAMES+=("$r")
    PATHS+=("$path")
    say "creating $N containers with $r"
    for i in $(seq 2 "$N"); do
        "$path" --root "$root" create --bundle "$WORK/bundle" "c$i" </dev/null >/dev/null 2>&1 ||
            die "$r create c$i failed"
    done
done
[ ${#NAMES[@]} -gt 0 ] || die "no runtime to benchmark"

echo "list/state benchmark: $(uname -r), $(nproc) cpus, $N containers each, $R runs per command"
args=()
for i in "${!NAMES[@]}"; do
    root="$WORK/state/${NAMES[$i]}"
    args+=("${NAMES[$i]}|${PATHS[$i]} --root $root list"
        "${NAMES[$i]}|${PATHS[$i]} --root $root list --format json"
        "${NAMES[$i]}|${PATHS[$i]} --root $root state c$((N / 2))")
done
python3 - "$R" "${args[@]}" <<'EOF'
import os, statistics, sys, time

def run(argv):
    null = os.open(os.devnull, os.O_RDWR)
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter() - t0) * 1e3
    os.close(null)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed")
    return wall, (usage.ru_utime + usage.ru_stime) * 1e3

rounds = int(sys.argv[1])
cmds = [(a.split("|", 1)[0], a.split("|", 1)[1].split()) for a in sys.argv[2:]]
times = [[] for _ in cmds]
for k in range(rounds):
    for i in list(range(len(cmds)))[k % len(cmds):] + list(range(len(cmds)))[:k % len(cmds)]:
        times[i].append(run(cmds[i][1]))
print(f"{'runtime':9} {'command':22} {'wall ms':>9} {'cpu ms':>8}")
for (name, argv), t in zip(cmds, times):
    what = " ".join(argv[3:])
    print(f"{name:9} {what:22} {statistics.median(w for w, _ in t):9.2f} "
          f"{statistics.median(c for _, c in t):8.2f}")
EOF
