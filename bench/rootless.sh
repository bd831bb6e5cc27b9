#!/usr/bin/env bash
# Rootless startup benchmark (run on purpose, not a test): `RUNTIME run` of a busybox
# /bin/true container as an unprivileged user, for mini-run, runc and crun side by side, from
# one bundle written by `mini-run spec --rootless` (runc's rootless config). Runs are
# round-robin (one of each runtime in turn), so load changes hit all alike. Prints the median
# and p90 wall time per run and the ratios of the medians.
#
#   bench/rootless.sh                                  # as root
#   BENCH_N=100 BENCH_RUNTIMES="mini-run runc" bench/rootless.sh
#   scripts/vm/run.sh -- bench/rootless.sh             # the cgroup v2 VM, where crun runs too
#
# Environment:
#   BENCH_N         timed runs per runtime (default 100)
#   BENCH_RUNTIMES  which runtimes, in order (default "mini-run runc crun"); one that is not
#                   installed, or refuses its first run, is skipped with its reason
#   MINI_RUN        the mini-run binary (default target/x86_64-unknown-linux-gnu/release/mini-run)
#
# crun refuses a hybrid host whose cgroup2 tree holds controllers (here: hugetlb in
# /sys/fs/cgroup/unified). Rootless runs use no cgroup there, so on such a host the script
# runs itself in a private mount namespace with an empty read-only tmpfs over that tree: all
# three runtimes then see a plain cgroup v1 host, and nothing changes outside the namespace.
#
# It needs root only to make the benchmark's user: an account made with useradd (removed at
# exit), or where /etc is read-only (the VM) a bare uid and gid no account uses; one-id maps
# either way. Its files go at exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
readonly FIXTURE="$ROOT/rootfs-fixtures/out/busybox"
N=${BENCH_N:-100}
RUNTIMES=${BENCH_RUNTIMES:-"mini-run runc crun"}
MINI_RUN=${MINI_RUN:-$ROOT/target/x86_64-unknown-linux-gnu/release/mini-run}

say() { echo "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: it makes an unprivileged user for the benchmark"

readonly UNIFIED=/sys/fs/cgroup/unified
if [ "${1:-}" = --inner ]; then
    mount -t tmpfs -o ro,size=4k bench-no-unified "$UNIFIED"
elif [ -n "$(cat "$UNIFIED/cgroup.controllers" 2>/dev/null)" ]; then
    exec unshare --mount --propagation private "$0" --inner
fi
[ -x "$FIXTURE/bin/true" ] || die "$FIXTURE is missing: run rootfs-fixtures/build.sh"
[ -x "$MINI_RUN" ] || die "$MINI_RUN is missing: cargo build --release -p mini-run"

WORK=$(mktemp -d /tmp/mini-bench-rootless.XXXXXX)
USER_NAME="mrbench-$$"
uid=""
cleanup() {
    # Only the benchmark uid's processes (a run that hung), then the account and its files.
    if [ -n "$uid" ]; then pkill -KILL -U "$uid" 2>/dev/null || true; fi
    if [ -n "${account:-}" ]; then userdel "$USER_NAME" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
chmod 755 "$WORK"
if useradd --no-create-home --no-user-group --gid nogroup --home-dir "$WORK/home" \
    "$USER_NAME" 2>/dev/null; then
    account=1
    uid=$(id -u "$USER_NAME")
    gid=$(id -g "$USER_NAME")
    groups=--init-groups
else
    uid=$((3900000 + $$ % 100000))
    gid=$uid
    groups=--clear-groups
    if getent passwd "$uid" >/dev/null; then die "uid $uid belongs to an account: run again"; fi
fi
mkdir -m 700 "$WORK/run" "$WORK/bundle" "$WORK/home"
cp -a "$FIXTURE" "$WORK/bundle/rootfs"
install -m 755 "$MINI_RUN" "$WORK/mini-run"
chown -R "$uid:$gid" "$WORK/run" "$WORK/bundle" "$WORK/home"

# Runs a command as the benchmark's uid with a login's environment.
as_user() {
    env -i HOME="$WORK/home" USER="$USER_NAME" LOGNAME="$USER_NAME" PATH=/usr/bin:/bin \
        XDG_RUNTIME_DIR="$WORK/run" \
        setpriv --reuid="$uid" --regid="$gid" "$groups" --inh-caps=-all -- "$@"
}

as_user "$WORK/mini-run" spec --rootless --bundle "$WORK/bundle"
python3 "$HERE/true_config.py" "$WORK/bundle/config.json"

binary() {
    case $1 in
        mini-run) echo "$WORK/mini-run" ;;
        *) command -v "$1" || true ;;
    esac
}

# RUNTIME BINARY ID: one `run` of the bundle as the user.
run_once() {
    (cd "$WORK/bundle" && as_user "$2" --root "$WORK/run/$1-state" run "$3")
}

declare -a names=() bins=() medians=() p90s=()
for rt in $RUNTIMES; do
    bin=$(binary "$rt")
    if [ -z "$bin" ]; then
        say "$rt is not installed: skipped"
        continue
    fi
    if ! err=$(run_once "$rt" "$bin" "probe-$rt" 2>&1 >/dev/null); then
        say "$rt refuses a rootless run here: ${err%%$'\n'*} (skipped)"
        continue
    fi
    names+=("$rt")
    bins+=("$bin")
    : >"$WORK/$rt.times"
done
[ ${#names[@]} -gt 0 ] || die "no runtime ran"

for i in $(seq "$N"); do
    for k in "${!names[@]}"; do
        t0=$(date +%s%N)
        run_once "${names[$k]}" "${bins[$k]}" "b$i" >/dev/null || die "${names[$k]} run $i failed"
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000)) >>"$WORK/${names[$k]}.times"
    done
done

for rt in "${names[@]}"; do
    read -r median p90 < <(sort -n "$WORK/$rt.times" | awk '{ v[NR] = $1 } END {
        printf "%.2f %.2f\n", v[int((NR + 1) / 2)] / 1000, v[int(NR * 0.9 + 0.5)] / 1000 }')
    medians+=("$median")
    p90s+=("$p90")
done

echo "rootless run of /bin/true as uid $uid, $N runs each, round-robin (times include setpriv's exec)"
printf '%-10s %10s %10s' runtime "median ms" "p90 ms"
for ref in "${names[@]}"; do printf ' %10s' "x $ref"; done
echo
for i in "${!names[@]}"; do
    printf '%-10s %10s %10s' "${names[$i]}" "${medians[$i]}" "${p90s[$i]}"
    for j in "${!names[@]}"; do
        printf ' %10s' "$(awk -v a="${medians[$i]}" -v b="${medians[$j]}" 'BEGIN { printf "%.2f", a / b }')"
    done
    echo
done
