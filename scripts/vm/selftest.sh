#!/usr/bin/env bash
# Self-test of the VM harness (scripts/vm/run.sh); not part of scripts/test-all.sh.
# Boots the VM three times and checks that:
#   1. the guest is on a pure cgroup v2 hierarchy (/proc/self/cgroup is "0::/" only);
#   2. the command's exit status comes back (exit 3 -> run.sh exits 3);
#   3. a host-built runc (and crun, if installed) runs a busybox container with a 32 MiB
#      memory limit that the kernel enforces.
# The checks below are called through check(), which shellcheck cannot follow.
# shellcheck disable=SC2317
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly RUN="$HERE/run.sh"
failed=0

check() {
    local what=$1
    shift
    echo "=== $what"
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAILED: $what"
        failed=1
    fi
}

pure_v2() {
    local out
    out=$("$RUN" -- cat /proc/self/cgroup)
    echo "$out"
    [ "$out" = "0::/" ]
}

exit_status() {
    local rc=0
    "$RUN" -- sh -c 'cat /sys/fs/cgroup/cgroup.controllers; exit 3' || rc=$?
    echo "run.sh exited with $rc"
    [ "$rc" -eq 3 ]
}

containers() {
    local runtimes=(runc)
    command -v crun >/dev/null && runtimes+=(crun)
    "$RUN" -- "$HERE/guest-container-smoke.sh" "${runtimes[@]}"
}

check "pure cgroup v2 in the guest" pure_v2
check "exit status propagation" exit_status
check "containers with a memory limit in the guest" containers
exit "$failed"
