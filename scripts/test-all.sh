#!/usr/bin/env bash
# THE test command of this repository (README and CI run exactly this).
#
#   scripts/test-all.sh            everything
#   SKIP_VM=1 scripts/test-all.sh  without the cgroup v2 suite in the VM (quick local runs)
#
# Steps:
#   0. the Debian packages of scripts/packages.sh are installed (else: which, and how)
#   1. rootfs-fixtures/build.sh          test root filesystems
#   2. cargo build --release --workspace the binaries under test (and shipped)
#   3. cargo test --workspace            on this host (hybrid cgroup v1 layout), with
#      MINI_REQUIRE=cgroup-v1: every cgroup v1 test must run here. The tests build in the
#      dev/test profile (quick) and drive the release binaries of step 2.
#   4. the cgroup v2 suite in ONE boot of the test VM (scripts/vm/run.sh): the mini-cgroups
#      unit tests and every integration test target tests/tests/cgroup*.rs, built on the
#      host and run in the guest one binary after another with --test-threads=1, with
#      MINI_REQUIRE=cgroup-v2: every cgroup v2 test must run there.
#   5. scripts/leftovers.sh: nothing the tests made (netns, mounts, cgroups, nft tables,
#      links, temp dirs, runtime state, processes) is left on the host.
# A failing step does not hide later results (except that nothing runs after a failed
# build); the exit status is non-zero if anything failed. A test that cannot run in an
# environment calls mini_test_skip::skip (tests/skip), which prints a "mini-test-skip:" line:
# those are counted as skipped, not passed, and listed. The last line counts the tests of
# steps 3 and 4 as "total: N passed, N failed, N skipped".
#
# One target again, after a change (release binaries rebuilt only if their sources changed):
#   cargo build --release --workspace && cargo test -p mini-tests --test lifecycle
#
# Environment: SKIP_VM=1; VM_TIMEOUT (seconds for the VM step, default 1800);
# VM_PASS_ENV (extra variables for the guest; CI and RUST_LOG always pass).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
cd "$ROOT"

# rustup's cargo is not on PATH in every non-login shell (CI's, sudo's).
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi

# shellcheck source=packages.sh
source "$ROOT/scripts/packages.sh"

LOGS=$(mktemp -d /tmp/test-all-logs.XXXXXX)
readonly LOGS
trap 'rm -rf "$LOGS"' EXIT

declare -a step_names=() step_results=() step_times=()
any_failed=0

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
banner() { printf '\n===== %s\n' "$*"; }

# record NAME RESULT SECONDS: one row of the summary; RESULT is ok, FAILED or a note.
record() {
    step_names+=("$1")
    step_results+=("$2")
    step_times+=("$3")
    [ "$2" = FAILED ] && any_failed=1
    return 0
}

# run_step NAME LOG CMD...: run CMD with its output both shown and kept in LOG.
run_step() {
    local name=$1 log=$2 t0 rc=0
    shift 2
    banner "$name: $*"
    t0=$(now)
    "$@" 2>&1 | tee "$log" || rc=$?
    if [ "$rc" -eq 0 ]; then
        record "$name" ok "$(elapsed "$t0")"
    else
        echo "$name failed (exit $rc)"
        record "$name" FAILED "$(elapsed "$t0")"
    fi
    return "$rc"
}

# Sum libtest's "test result: ... N passed; N failed; N ignored" lines of the given logs; a
# test that printed a "mini-test-skip:" line passed only in libtest's eyes: it is skipped.
count_tests() {
    cat "$@" 2>/dev/null | awk '
        /test result: / {
            for (i = 1; i <= NF; i++) {
                if ($(i+1) ~ /^passed/)  p += $i
                if ($(i+1) ~ /^failed/)  f += $i
                if ($(i+1) ~ /^ignored/) s += $i
            }
        }
        # Anywhere in a line: with --test-threads=1 (the VM) libtest has printed
        # "test NAME ... " before the test runs, so the marker follows it.
        /mini-test-skip: / { k++ }
        END { printf "%d passed, %d failed, %d skipped\n", p - k, f, s + k }'
}

# The skipped tests of the given logs, one "test: reason" line each.
list_skips() {
    cat "$@" 2>/dev/null | sed -n 's/.*mini-test-skip: /      /p' | sort
}

# Exit with one message if a package of scripts/packages.sh is missing.
check_packages() {
    local -a missing=()
    mapfile -t missing < <(missing_packages)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "test-all: missing Debian packages: ${missing[*]}; install them with" \
             "'apt-get install --no-install-recommends ${missing[*]}' (or run bash .ci/run)" >&2
        exit 1
    fi
}

# Print "DIR<TAB>EXE" for the test executables the VM suite runs, from cargo's JSON
# messages: the mini-cgroups library's unit tests, tests/tests/cgroup*.rs targets, and the
# mini-shim monitor's tests (exit and OOM records read from v2 cgroup files).
select_vm_tests() {
    python3 - "$1" "$ROOT/tests/tests" <<'EOF'
import json, os, sys
messages, itests = sys.argv[1], sys.argv[2]
seen = set()
with open(messages) as f:
    for line in f:
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") != "compiler-artifact" or not m.get("executable"):
            continue
        if not m.get("profile", {}).get("test"):
            continue
        t = m["target"]
        src = os.path.realpath(t["src_path"])
        pkg_dir = os.path.dirname(m["manifest_path"])
        # The whole mini-cgroups crate (unit tests and tests/v1.rs, tests/v2.rs: the v1 ones
        # skip themselves on a v2 host).
        unit = os.path.basename(pkg_dir) == "cgroups" and m["target"]["kind"] in (["lib"], ["test"])
        integ = (t["kind"] == ["test"] and os.path.dirname(src) == itests
                 and os.path.basename(src).startswith("cgroup"))
        monitor = (os.path.basename(pkg_dir) == "shim" and t["kind"] == ["test"]
                   and t["name"] == "monitor")
        if (unit or integ or monitor) and m["executable"] not in seen:
            seen.add(m["executable"])
            print(pkg_dir + "\t" + m["executable"])
EOF
}

# The guest hides /tmp, /run, /var/tmp and /root behind tmpfs: a target directory there
# (CARGO_TARGET_DIR=/tmp/...) must be shared into the VM explicitly.
target_dir_share() {
    local target
    target=$(cargo metadata --format-version 1 --no-deps |
             python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    case "$target/" in
        /tmp/*|/run/*|/var/tmp/*|/root/*) echo "$target" ;;
    esac
}

vm_suite() {
    local t0 rc=0 json dir exe share
    local -a guest_args=() run_args=()
    banner "cgroup v2 suite in the VM"
    t0=$(now)
    json=$LOGS/test-artifacts.json
    if ! cargo test --workspace --no-run --message-format=json >"$json"; then
        echo "building the test binaries failed"
        record "vm: cgroup v2 tests" FAILED "$(elapsed "$t0")"
        return 1
    fi
    while IFS=$'\t' read -r dir exe; do
        guest_args+=("$dir" "$exe")
        echo "  will run ${exe#"$ROOT"/}"
    done < <(select_vm_tests "$json")
    if [ ${#guest_args[@]} -eq 0 ]; then
        echo "no cgroup v2 test binaries found (expected at least the mini-cgroups unit tests)"
        record "vm: cgroup v2 tests" FAILED "$(elapsed "$t0")"
        return 1
    fi
    share=$(target_dir_share)
    [ -n "$share" ] && run_args+=(--share "$share")
    run_args+=(--timeout "${VM_TIMEOUT:-1800}")
    MINI_REQUIRE=cgroup-v2 VM_PASS_ENV="${VM_PASS_ENV:-} CI RUST_LOG MINI_REQUIRE" \
        "$ROOT/scripts/vm/run.sh" "${run_args[@]}" -- \
        "$ROOT/scripts/vm/guest-run-tests.sh" "${guest_args[@]}" 2>&1 | tee "$LOGS/vm.log" || rc=$?
    if [ "$rc" -eq 0 ]; then
        record "vm: cgroup v2 tests" ok "$(elapsed "$t0")"
    else
        echo "the cgroup v2 suite failed (exit $rc)"
        record "vm: cgroup v2 tests" FAILED "$(elapsed "$t0")"
    fi
}

summary() {
    local i total=$1
    banner "summary"
    for i in "${!step_names[@]}"; do
        printf '  %-30s %-8s %8ss\n' "${step_names[$i]}" "${step_results[$i]}" "${step_times[$i]}"
    done
    printf '  %-30s %-8s %8ss\n' "total wall time" "" "$(elapsed "$total")"
    if [ -f "$LOGS/host-tests.log" ]; then
        echo "  host tests: $(count_tests "$LOGS/host-tests.log")"
        list_skips "$LOGS/host-tests.log"
    else
        echo "  host tests: not run"
    fi
    if [ -f "$LOGS/vm.log" ]; then
        echo "  vm tests:   $(count_tests "$LOGS/vm.log")"
        list_skips "$LOGS/vm.log"
    else
        echo "  vm tests:   not run"
    fi
    echo "total: $(count_tests "$LOGS/host-tests.log" "$LOGS/vm.log")"
}

main() {
    local t_all
    t_all=$(now)
    check_packages
    "$ROOT/scripts/leftovers.sh" snapshot "$LOGS/before.txt"
    if run_step "fixtures" "$LOGS/fixtures.log" "$ROOT/rootfs-fixtures/build.sh" &&
       run_step "build (release)" "$LOGS/build.log" cargo build --release --workspace; then
        # --no-fail-fast: one failing test binary must not hide the others' results.
        MINI_REQUIRE=cgroup-v1 run_step "host tests (cgroup v1)" "$LOGS/host-tests.log" \
            cargo test --workspace --no-fail-fast || true
        if [ "${SKIP_VM:-0}" = 1 ]; then
            banner "cgroup v2 suite in the VM: SKIPPED (SKIP_VM=1)"
            record "vm: cgroup v2 tests" "skipped" "0.0"
        else
            vm_suite || true
        fi
    else
        echo "not running the tests: the fixtures or the build failed"
    fi
    run_step "leftover check" "$LOGS/leftovers.log" \
        "$ROOT/scripts/leftovers.sh" check "$LOGS/before.txt" || true
    summary "$t_all"
    return "$any_failed"
}

main "$@"
