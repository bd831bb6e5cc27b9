#!/usr/bin/env bash
# Guest side of the cgroup v2 suite (called by scripts/test-all.sh through scripts/vm/run.sh).
#
#   guest-run-tests.sh DIR BIN [DIR BIN]...
#
# Runs each prebuilt libtest binary BIN one after another, with DIR (its package's root) as
# working directory and CARGO_MANIFEST_DIR, as `cargo test` would, and with
# --test-threads=1: cgroup tests share one hierarchy and the guest has 2 slow CPUs.
# Every binary runs even if an earlier one failed; the exit status is non-zero if any did.
set -uo pipefail

declare -a names=() results=() times=()

run_one() {
    local dir=$1 bin=$2 t0 t1 rc=0
    echo
    echo "----- ${bin##*/} (in $dir)"
    t0=$(date +%s.%N)
    (cd "$dir" && CARGO_MANIFEST_DIR=$dir "$bin" --test-threads=1) || rc=$?
    t1=$(date +%s.%N)
    names+=("${bin##*/}")
    results+=("$rc")
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')")
}

main() {
    local i failed=0
    if [ $(($# % 2)) -ne 0 ]; then
        echo "usage: $0 DIR BIN [DIR BIN]..." >&2
        return 2
    fi
    echo "guest: kernel $(uname -r), $(nproc) cpus, cgroup controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
    while [ $# -gt 0 ]; do
        run_one "$1" "$2"
        shift 2
    done
    echo
    echo "----- guest summary"
    for i in "${!names[@]}"; do
        if [ "${results[$i]}" -eq 0 ]; then
            printf '  PASS  %-50s %8ss\n' "${names[$i]}" "${times[$i]}"
        else
            printf '  FAIL  %-50s %8ss  (exit %s)\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
            failed=1
        fi
    done
    return "$failed"
}

main "$@"
