#!/usr/bin/env bash
# Guest side of scripts/vm/selftest.sh: proves that containers work in the test VM.
#
#   scripts/vm/run.sh -- scripts/vm/guest-container-smoke.sh [RUNTIME...]   (default: runc)
#
# For each runtime (a host binary, e.g. /usr/sbin/runc or crun), builds a busybox bundle in
# the guest's /tmp from the host's static busybox, sets a 32 MiB memory limit, and runs a
# container that (1) prints its memory.max and (2) tries to fill 64 MiB, which the kernel
# must stop with an OOM kill. Exits non-zero if any runtime fails either check.
set -euo pipefail

readonly LIMIT=$((32 * 1024 * 1024))

work=$(mktemp -d /tmp/container-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A rootfs of one static busybox plus its applet links; enough for sh, cat and dd.
make_rootfs() {
    local root=$1 applet
    mkdir -p "$root"/{bin,proc,sys,dev,tmp,etc}
    cp /bin/busybox "$root/bin/busybox"
    for applet in sh cat dd echo head; do
        ln -s busybox "$root/bin/$applet"
    done
}

# Start from the runtime's own default spec so that namespaces and mounts are the real
# defaults, then change only the process, the terminal and the memory limit.
make_config() {
    local bundle=$1 runtime=$2
    (cd "$bundle" && "$runtime" spec)
    python3 - "$bundle/config.json" "$LIMIT" <<'EOF'
import json, sys
path, limit = sys.argv[1], int(sys.argv[2])
with open(path) as f:
    cfg = json.load(f)
cfg["process"]["terminal"] = False
cfg["process"]["args"] = ["sh", "-c",
    "echo memory.max=$(cat /sys/fs/cgroup/memory.max);"
    " dd if=/dev/zero of=/dev/null bs=64M count=1 && echo NOT-KILLED"]
cfg.setdefault("linux", {}).setdefault("resources", {})["memory"] = {"limit": limit, "swap": limit}
with open(path, "w") as f:
    json.dump(cfg, f, indent=2)
EOF
}

check_runtime() {
    local runtime=$1 bundle out rc=0 name line
    name=$(basename "$runtime")
    bundle=$work/bundle-$name
    mkdir -p "$bundle"
    make_rootfs "$bundle/rootfs"
    make_config "$bundle" "$runtime"
    echo "== $name: $("$runtime" --version | head -n1)"
    out=$("$runtime" --root "$work/state-$name" run --bundle "$bundle" "smoke-$name-$$" 2>&1) || rc=$?
    "$runtime" --root "$work/state-$name" delete -f "smoke-$name-$$" >/dev/null 2>&1 || true
    while IFS= read -r line; do echo "   $line"; done <<<"$out"
    echo "   exit status $rc"
    if ! grep -q "memory.max=$LIMIT" <<<"$out"; then
        echo "FAIL $name: memory.max is not $LIMIT"
        return 1
    fi
    # 137 = 128 + SIGKILL: the OOM killer took the container's dd (and so the container).
    if grep -q NOT-KILLED <<<"$out" || [ "$rc" -ne 137 ]; then
        echo "FAIL $name: the 32 MiB limit was not enforced"
        return 1
    fi
    echo "PASS $name: memory.max=$LIMIT and the 64 MiB allocation was OOM-killed"
}

main() {
    local runtimes=("$@") r failed=0
    [ ${#runtimes[@]} -gt 0 ] || runtimes=(runc)
    echo "kernel $(uname -r); cgroup: $(stat -fc %T /sys/fs/cgroup)"
    for r in "${runtimes[@]}"; do
        command -v "$r" >/dev/null || { echo "SKIP $r: not installed"; continue; }
        check_runtime "$(command -v "$r")" || failed=1
    done
    return "$failed"
}

main "$@"
