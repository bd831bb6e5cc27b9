#!/usr/bin/env bash
# The startup benchmark (bench/startup.sh) inside the test VM: pure cgroup v2, so no
# private layout is needed. Under TCG every run is ~50x slower than on the host: compare the
# runtimes with each other here, never with host figures.
#
#   bench/startup-vm.sh                  BENCH_N=20, BENCH_RSS_N=5 by default
#   BENCH_RUNTIMES="crun runc" bench/startup-vm.sh
#
# The rootfs fixture is built on the host first: the guest sees the repository read-only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
readonly HERE ROOT

if [ ! -x "$ROOT/rootfs-fixtures/out/busybox/bin/busybox" ]; then
    "$ROOT/rootfs-fixtures/build.sh" >/dev/null
fi

export BENCH_N="${BENCH_N:-20}"
export BENCH_RSS_N="${BENCH_RSS_N:-5}"
export BENCH_LAYOUT=native
export VM_PASS_ENV="${VM_PASS_ENV:-} BENCH_N BENCH_RSS_N BENCH_LAYOUT BENCH_RUNTIMES BENCH_MEMORY MINI_RUN"
exec "$ROOT/scripts/vm/run.sh" --timeout "${VM_TIMEOUT:-3600}" -- "$HERE/startup.sh"
