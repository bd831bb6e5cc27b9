#!/usr/bin/env bash
# Startup benchmark (run on purpose, not a test): how long `RUNTIME run` of a busybox
# /bin/true container takes, and the runtime's peak RSS, for mini-run, crun and runc side
# by side.
#
#   bench/startup.sh
#   BENCH_N=500 BENCH_RUNTIMES="crun runc" bench/startup.sh
#
# Environment:
#   BENCH_N         timed runs per runtime (default 200)
#   BENCH_RSS_N     runs per runtime for peak RSS (default 20)
#   BENCH_RUNTIMES  which runtimes, in order (default "mini-run crun runc"); a runtime that is
#                   not installed (or mini-run not built) is skipped with a note
#   BENCH_MEMORY    a memory limit in bytes for the benchmark container (e.g. 524288)
#   MINI_RUN        the mini-run binary (default target/x86_64-unknown-linux-gnu/release/mini-run of this repo)
#   BENCH_LAYOUT    "hybrid" (default): run inside a private mount namespace with our own
#                   hybrid cgroup layout (see below); "native": use the host's /sys/fs/cgroup
#                   as it is (used by bench/startup-vm.sh, where it is pure cgroup v2)
#
# Why a private layout: this host's cgroup v2 tree (/sys/fs/cgroup/unified) holds the
# hugetlb controller, a layout crun refuses. In a private mount namespace we put a tmpfs
# on /sys/fs/cgroup and mount every v1 controller (hugetlb included, which moves it from
# the v2 tree to a v1 hierarchy) plus an empty cgroup2 at unified: the usual hybrid layout.
# Caveat: cgroup hierarchies are global, so while this runs, hugetlb is absent from the
# host's /sys/fs/cgroup/unified; the kernel hands it back when the namespace ends and the
# hierarchy is empty, which the script checks.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
readonly HERE ROOT
readonly FIXTURE="$ROOT/rootfs-fixtures/out/busybox"

say() { echo "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------
# Inner part: runs as `startup.sh --inner WORK RUNTIME_SPECS...` inside the private mount
# namespace. Everything mounted here disappears with the namespace.
# ---------------------------------------------------------------------------------------

# Group the v1 controllers the kernel has (/proc/cgroups) into hierarchies: controllers
# that the host has already bound together must be mounted together (a v1 controller can
# be in one hierarchy only); unbound ones (hierarchy 0) follow the usual pairings.
# Prints one line per hierarchy: "MOUNTOPTS FRESH", FRESH=1 if no host hierarchy has it.
v1_hierarchies() {
    awk '
        !/^#/ && $4 == 1 {
            if ($2 != 0) {
                if ($2 in bound) bound[$2] = bound[$2] "," $1
                else bound[$2] = $1
                next
            }
            free[$1] = 1
        }
        END {
            for (h in bound) print bound[h], 0
            if (("cpu" in free) && ("cpuacct" in free)) { print "cpu,cpuacct", 1; delete free["cpu"]; delete free["cpuacct"] }
            if (("net_cls" in free) && ("net_prio" in free)) { print "net_cls,net_prio", 1; delete free["net_cls"]; delete free["net_prio"] }
            for (c in free) print c, 1
        }' /proc/cgroups | sort
}

# Remove cgroups that our containers left (a runtime that does not clean up must not pin
# a hierarchy, which would keep hugetlb away from the host's v2 tree for good). In fresh
# hierarchies everything below the root is ours; in the host's shared ones only our ids.
remove_leftover_cgroups() {
    local tag=$1 dir fresh
    while read -r dir fresh; do
        if [ "$fresh" = 1 ]; then
            find "$dir" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
        else
            find "$dir" -mindepth 1 -depth -type d -name "*$tag*" -exec rmdir {} \; 2>/dev/null || true
        fi
    done <"$WORK/mounted"
}

setup_hybrid_layout() {
    local opts fresh dir c
    mount -t tmpfs -o mode=0755,size=1m bench-cgroup /sys/fs/cgroup
    : >"$WORK/mounted"
    while read -r opts fresh; do
        dir=/sys/fs/cgroup/$opts
        mkdir -p "$dir"
        mount -t cgroup -o "$opts" cgroup "$dir"
        echo "$dir $fresh" >>"$WORK/mounted"
        # "cpu,cpuacct" is also reachable as cpu and cpuacct, as on a distro.
        if [[ "$opts" == *,* ]]; then
            for c in ${opts//,/ }; do ln -s "$opts" "/sys/fs/cgroup/$c"; done
        fi
    done < <(v1_hierarchies)
    # The systemd named hierarchy that a hybrid host has; mounting it again shares the
    # host's. Optional: a host without it works too.
    mkdir -p /sys/fs/cgroup/systemd
    if mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd 2>/dev/null; then
        echo "/sys/fs/cgroup/systemd 0" >>"$WORK/mounted"
    else
        rmdir /sys/fs/cgroup/systemd
    fi
    mkdir -p /sys/fs/cgroup/unified
    mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
    say "private hybrid layout: $(cd /sys/fs/cgroup && echo *); unified controllers: [$(cat /sys/fs/cgroup/unified/cgroup.controllers)]"
}

inner() {
    WORK=$1
    shift
    local rc=0
    if [ "${BENCH_LAYOUT:-hybrid}" = hybrid ]; then
        setup_hybrid_layout
        trap 'remove_leftover_cgroups "$BENCH_TAG"' EXIT
    fi
    python3 "$HERE/startup_driver.py" --bundle "$WORK/bundle" --state "$WORK/state" \
        -n "${BENCH_N:-200}" --rss-n "${BENCH_RSS_N:-20}" --tag "$BENCH_TAG" "$@" || rc=$?
    return "$rc"
}

# ---------------------------------------------------------------------------------------
# Outer part.
# ---------------------------------------------------------------------------------------

# "NAME=ABSOLUTE_PATH" for each wanted runtime that is there.
resolve_runtimes() {
    local r path
    for r in ${BENCH_RUNTIMES:-mini-run crun runc}; do
        if [ "$r" = mini-run ]; then
            path=${MINI_RUN:-$ROOT/target/x86_64-unknown-linux-gnu/release/mini-run}
            if [ ! -x "$path" ]; then
                say "note: skipping mini-run: $path not built (cargo build --release)"
                continue
            fi
        elif ! path=$(command -v "$r"); then
            say "note: skipping $r: not installed"
            continue
        fi
        echo "$r=$(realpath "$path")"
    done
}

# A bundle whose config is a runtime's default spec (default namespaces and mounts) with
# only the process changed: /bin/true, no terminal.
make_bundle() {
    local bundle=$1 specgen
    if [ ! -x "$FIXTURE/bin/busybox" ]; then
        say "building the busybox rootfs fixture"
        "$ROOT/rootfs-fixtures/build.sh" >/dev/null
    fi
    [ -e "$FIXTURE/bin/true" ] || die "$FIXTURE has no /bin/true"
    mkdir -p "$bundle"
    # A private copy (3 MB): runtimes may create mount points in the rootfs.
    cp -a "$FIXTURE" "$bundle/rootfs"
    specgen=$(command -v runc || command -v crun || true)
    [ -n "$specgen" ] || die "need runc or crun to generate the default spec"
    (cd "$bundle" && "$specgen" spec)
    python3 "$HERE/true_config.py" "$bundle/config.json" "${BENCH_MEMORY:-}"
}

versions() {
    local spec name path
    for spec in "$@"; do
        name=${spec%%=*}
        path=${spec#*=}
        printf '  %-9s %s\n' "$name" "$("$path" --version 2>&1 | head -n1)"
    done
}

# Controllers bound to no v1 hierarchy before the benchmark (hierarchy 0 in /proc/cgroups).
unbound_controllers() {
    awk '!/^#/ && $2 == 0 && $4 == 1 { print $1 }' /proc/cgroups | sort
}

# After the namespace is gone every controller the benchmark mounted as v1 should be free again
# (hugetlb back in the host's v2 tree). A v1 hierarchy outlives its last unmount when a
# just-removed child cgroup was still dying at that moment; mounting it again (it has no
# children now) and unmounting it releases it.
check_host_layout() {
    local before=$1 _ c hier opts
    for _ in $(seq 1 20); do
        [ "$(unbound_controllers)" = "$before" ] && return 0
        sleep 0.1
    done
    for c in $before; do
        hier=$(awk -v c="$c" '$1 == c { print $2 }' /proc/cgroups)
        [ "$hier" != 0 ] || continue
        opts=$(awk -v h="$hier" '!/^#/ && $2 == h { print $1 }' /proc/cgroups | paste -sd, -)
        # shellcheck disable=SC2016  # expanded by the inner shell
        unshare -m --propagation private sh -c '
            d=$(mktemp -d /tmp/mini-bench-release.XXXXXX)
            mount -t cgroup -o "$1" cgroup "$d" && umount "$d"
            rmdir "$d"' sh "$opts" || true
    done
    for _ in $(seq 1 50); do
        [ "$(unbound_controllers)" = "$before" ] && return 0
        sleep 0.1
    done
    say "WARNING: controllers still bound to a v1 hierarchy: $(comm -23 <(echo "$before") <(unbound_controllers) | paste -sd' ' -)"
}

main() {
    local work t0 rc=0
    local -a specs=()
    if [ "${1:-}" = --inner ]; then
        shift
        inner "$@"
        return
    fi
    [ "$(id -u)" = 0 ] || die "run as root"
    command -v python3 >/dev/null || die "python3 is needed"

    mapfile -t specs < <(resolve_runtimes)
    [ ${#specs[@]} -gt 0 ] || die "no runtime to benchmark"

    work=$(mktemp -d /tmp/mini-bench-startup.XXXXXX)
    # shellcheck disable=SC2064  # expand now: $work is fixed
    trap "rm -rf '$work'" EXIT
    make_bundle "$work/bundle"
    mkdir -p "$work/state"
    export BENCH_TAG="mbench$$"
    local unbound
    unbound=$(unbound_controllers)

    echo "startup benchmark: $(uname -r), $(nproc) cpus, layout ${BENCH_LAYOUT:-hybrid}, N=${BENCH_N:-200}, RSS runs=${BENCH_RSS_N:-20}${BENCH_MEMORY:+, memory limit ${BENCH_MEMORY} bytes}"
    versions "${specs[@]}"
    t0=$(date +%s)
    if [ "${BENCH_LAYOUT:-hybrid}" = hybrid ]; then
        unshare -m --propagation private "$HERE/startup.sh" --inner "$work" "${specs[@]}" || rc=$?
        check_host_layout "$unbound"
    else
        "$HERE/startup.sh" --inner "$work" "${specs[@]}" || rc=$?
    fi
    echo "(wall time $(($(date +%s) - t0)) s; median/p90/mean of wall time per 'run', ratios of medians)"
    return "$rc"
}

main "$@"
