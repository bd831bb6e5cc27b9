#!/usr/bin/env bash
# Run one command inside a throw-away qemu VM that boots Debian's kernel on a pure cgroup v2
# hierarchy, with the host's root filesystem shared read-only (so the guest runs the very
# binaries built on the host), and exit with the command's exit status.
#
#   scripts/vm/run.sh [--timeout SECS] [--share DIR]... -- CMD ARGS...
#
# Why a VM: this host has a hybrid cgroup v1 layout that we cannot change, and the runtime
# must also be tested on cgroup v2. KVM does not work here (see shared/VM-NOTES.md), so the
# guest runs under TCG: slow (~50x), but real kernel behaviour.
#
# Options:
#   --timeout SECS  whole-VM time limit, boot included (default 900, env VM_TIMEOUT)
#   --share DIR     also expose host DIR read-write at the same path in the guest; needed for
#                   directories under /tmp, /run, /var/tmp or /root, which the guest hides
#                   behind its own tmpfs (e.g. a CARGO_TARGET_DIR under /tmp). A cwd there
#                   is shared automatically (its git top directory, or the cwd itself).
# Environment:
#   VM_PASS_ENV     names of extra environment variables to pass into the guest command
#   VM_KERNEL       kernel version to boot (default: newest with /boot/vmlinuz-V and
#                   /lib/modules/V)
#   VM_MEM, VM_SMP  guest memory in MiB (2048) and CPUs (2)
#   VM_VERBOSE=1    copy the guest console to stderr after the run
#
# The command's stdout and stderr (merged) are streamed live to our stdout. Our own
# messages, prefixed "[vm]", go to stderr. Exit status: the command's own; 124 if the VM
# hit the time limit; 125 if the VM failed before the command finished (crash, set-up
# error). In the guest the command sees IN_TEST_VM=1 and VM_SCRATCH (a read-write dir that
# is also visible on the host while the VM runs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly GUEST_INIT="$HERE/guest-init.sh"
# shellcheck source=../packages.sh
source "$HERE/../packages.sh"
# Modules the guest needs, named as in modules.dep; dependencies are added automatically.
# The 9p stack is required; virtio_blk gives the guest a block device (a small empty disk) so
# that io controller tests (io.max, io.weight) have a device to limit; overlay, veth and
# bridge are for container tests and optional.
readonly REQUIRED_MODULES=(virtio_pci 9pnet_virtio 9p virtio_blk)
readonly OPTIONAL_MODULES=(overlay veth bridge)
readonly CONTROLLERS="cpuset cpu io memory pids hugetlb"
readonly CACHE_DIR=/tmp/mini-run-vm-cache

timeout_s=${VM_TIMEOUT:-900}
shares=()
scratch=""
vm_pid=""
tail_pid=""

say() { echo "[vm] $*" >&2; }
die() { say "error: $*"; exit 125; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --timeout) [ $# -ge 2 ] || usage; timeout_s=$2; shift 2 ;;
            --timeout=*) timeout_s=${1#*=}; shift ;;
            --share) [ $# -ge 2 ] || usage; shares+=("$(realpath -e "$2")"); shift 2 ;;
            --share=*) shares+=("$(realpath -e "${1#*=}")"); shift ;;
            --) shift; break ;;
            -h|--help) usage 0 ;;
            *) usage ;;
        esac
    done
    [ $# -gt 0 ] || usage
    [[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds, got '$timeout_s'"
    cmd=("$@")
}

# Install what is missing, once. apt's lock may be held by a colleague's install: wait.
ensure_packages() {
    local missing=()
    mapfile -t missing < <(missing_packages qemu-system-x86 linux-image-amd64 busybox-static cpio)
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Newest kernel that has both an image and its modules (the running host kernel may have
# neither: it is not Debian's).
pick_kernel() {
    if [ -n "${VM_KERNEL:-}" ]; then
        kver=$VM_KERNEL
    else
        kver=$(for f in /boot/vmlinuz-*; do
                   v=${f#/boot/vmlinuz-}
                   [ -d "/lib/modules/$v" ] && echo "$v"
               done | sort -V | tail -n1)
    fi
    if [ -z "$kver" ] || [ ! -r "/boot/vmlinuz-$kver" ] || [ ! -f "/lib/modules/$kver/modules.dep" ]; then
        die "no usable kernel (need /boot/vmlinuz-V and /lib/modules/V; package linux-image-amd64)"
    fi
    kernel=/boot/vmlinuz-$kver
}

# Emit module paths (relative to /lib/modules/$kver) in load order: every module after
# all of its dependencies, each once. Built-in modules (modules.builtin) are skipped.
declare -A mod_path=() mod_deps=() mod_done=()
load_modules_dep() {
    local line name path deps
    while IFS= read -r line; do
        path=${line%%:*}
        deps=${line#*:}
        name=${path##*/}
        name=${name%%.ko*}
        mod_path[$name]=$path
        mod_deps[$name]=$deps
    done <"/lib/modules/$kver/modules.dep"
}

is_builtin() {
    grep -qE "/$1\.ko\$" "/lib/modules/$kver/modules.builtin" 2>/dev/null
}

resolve_module() {
    local name=$1 dep dname
    [ -n "${mod_done[$name]:-}" ] && return 0
    mod_done[$name]=1
    if [ -z "${mod_path[$name]:-}" ]; then
        is_builtin "$name" && return 0
        return 1
    fi
    for dep in ${mod_deps[$name]}; do
        dname=${dep##*/}
        dname=${dname%%.ko*}
        resolve_module "$dname" || return 1
    done
    echo "${mod_path[$name]}"
}

module_list() {
    local m
    load_modules_dep
    for m in "${REQUIRED_MODULES[@]}"; do
        resolve_module "$m" || die "kernel $kver has no module $m"
    done
    for m in "${OPTIONAL_MODULES[@]}"; do
        resolve_module "$m" || say "note: no module $m in kernel $kver (skipped)"
    done
}

find_static_busybox() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        # A dynamic busybox would need its libraries in the initramfs too.
        if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then
            echo "$b"
            return 0
        fi
    done
    die "no static busybox (package busybox-static)"
}

# Build the initramfs, or reuse the cached one. The key covers everything that goes in:
# kernel version, the module list, the init script and the busybox binary.
build_initramfs() {
    local mods busybox key stage tmp m out
    mods=$(module_list)
    busybox=$(find_static_busybox)
    key=$( { echo "$kver"; echo "$mods"; cat "$GUEST_INIT"; stat -c '%s %Y' "$busybox"; } |
           sha256sum | cut -c1-16)
    initramfs=$CACHE_DIR/initramfs-$kver-$key.cpio.gz
    [ -s "$initramfs" ] && return 0

    say "building initramfs for $kver"
    mkdir -p "$CACHE_DIR"
    stage=$(mktemp -d "$CACHE_DIR/stage.XXXXXX")
    tmp=$(mktemp "$CACHE_DIR/initramfs.XXXXXX")
    # A function-local trap would not survive set -e's exit; clean up explicitly instead.
    if ! (
        set -e
        mkdir -p "$stage"/{bin,dev,proc,sys,scratch,newroot,modules}
        cp "$busybox" "$stage/bin/busybox"
        cp "$GUEST_INIT" "$stage/init"
        chmod 0755 "$stage/init"
        # The kernel opens /dev/console for init before any devtmpfs is mounted.
        mknod -m 0600 "$stage/dev/console" c 5 1
        mknod -m 0666 "$stage/dev/null" c 1 3
        : >"$stage/modules.order"
        for m in $mods; do
            out=$(basename "${m%.ko*}").ko
            # Newer Debian kernels compress modules; busybox insmod may not unpack them.
            case "$m" in
                *.ko.xz)  xz -dc "/lib/modules/$kver/$m" >"$stage/modules/$out" ;;
                *.ko.zst) zstd -qdc "/lib/modules/$kver/$m" >"$stage/modules/$out" ;;
                *.ko.gz)  gzip -dc "/lib/modules/$kver/$m" >"$stage/modules/$out" ;;
                *)        cp "/lib/modules/$kver/$m" "$stage/modules/$out" ;;
            esac
            echo "$out" >>"$stage/modules.order"
        done
        cd "$stage"
        find . -print0 | cpio --null -o -H newc --quiet | gzip -1 >"$tmp"
    ); then
        rm -rf "$stage" "$tmp"
        die "building the initramfs failed"
    fi
    rm -rf "$stage"
    # Atomic: a concurrent run either sees the whole file or none.
    mv -f "$tmp" "$initramfs"
    chmod 0644 "$initramfs"
    # Old versions (another init script, another kernel) would only pile up.
    find "$CACHE_DIR" -maxdepth 1 -name 'initramfs-*.cpio.gz' -mtime +7 -delete 2>/dev/null || true
    say "modules: $(tr '\n' ' ' <<<"$mods" | sed 's#[^ ]*/##g')"
}

# True if the guest hides PATH behind one of its tmpfs mounts.
is_masked() {
    case "$1/" in
        /tmp/*|/run/*|/var/tmp/*|/root/*) return 0 ;;
    esac
    return 1
}

# Make the share list usable: the cwd must be visible (a checkout under /tmp is shared by
# its top directory), duplicates and shares inside other shares are dropped (the outer
# share shows them already), and parents come first.
normalize_shares() {
    local top s o keep
    local -a kept=()
    if is_masked "$PWD"; then
        top=$(git -C "$PWD" rev-parse --show-toplevel 2>/dev/null || echo "$PWD")
        say "note: $PWD is hidden in the guest; sharing $top"
        shares+=("$top")
    fi
    [ ${#shares[@]} -gt 0 ] || return 0
    while IFS= read -r s; do
        keep=1
        for o in "${kept[@]}"; do
            [[ "$s/" == "$o/"* ]] && keep=0
        done
        [ "$s" = / ] && die "--share / makes no sense: the host root is shared read-only already"
        [ "$keep" = 1 ] && kept+=("$s")
    done < <(printf '%s\n' "${shares[@]}" | LC_ALL=C sort -u)
    shares=("${kept[@]}")
}

cleanup() {
    local rc=$?
    # Only what we started, by pid.
    if [ -n "$vm_pid" ] && kill -0 "$vm_pid" 2>/dev/null; then
        kill "$vm_pid" 2>/dev/null || true
        wait "$vm_pid" 2>/dev/null || true
    fi
    if [ -n "$tail_pid" ] && kill -0 "$tail_pid" 2>/dev/null; then
        kill "$tail_pid" 2>/dev/null || true
    fi
    [ -n "$scratch" ] && rm -rf "$scratch"
    return "$rc"
}

# The caller's PATH plus the standard directories, each once. Entries under /root are
# kept but find nothing in the guest (tmpfs there), so /usr/bin etc. must follow.
guest_path() {
    local p out=":" IFS=:
    for p in $PATH /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
        [ -n "$p" ] && [[ "$out" != *":$p:"* ]] && out+="$p:"
    done
    out=${out#:}
    echo "${out%:}"
}

# What the guest runs inside the chroot: environment, cwd, then the command. Written with
# printf %q, which bash (the host's, inside the chroot) reads back verbatim.
write_guest_files() {
    local var i=0 share tag extra=""
    {
        echo "SCRATCH_PATH=$scratch"
        echo "CONTROLLERS='$CONTROLLERS'"
        for share in "${shares[@]}"; do
            i=$((i + 1))
            tag=share$i
            extra+="$tag $share"$'\n'
        done
        printf 'EXTRA_SHARES=%q\n' "$extra"
    } >"$scratch/guest.conf"

    {
        echo '#!/bin/bash'
        echo '# generated by scripts/vm/run.sh'
        printf 'export PATH=%q\n' "$(guest_path)"
        echo 'export HOME=/root RUST_BACKTRACE=1 IN_TEST_VM=1 LANG=C.UTF-8'
        printf 'export VM_SCRATCH=%q\n' "$scratch"
        for var in ${VM_PASS_ENV:-}; do
            [[ "$var" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "VM_PASS_ENV: bad name '$var'"
            if [ -n "${!var+x}" ]; then
                printf 'export %s=%q\n' "$var" "${!var}"
            fi
        done
        printf 'cd %q || { echo "[vm] cannot cd to %q in the guest (hidden under tmpfs? use --share)" >&2; exit 125; }\n' "$PWD" "$PWD"
        printf 'exec'
        printf ' %q' "${cmd[@]}"
        printf '\n'
    } >"$scratch/cmd.sh"
}

run_vm() {
    local i=0 share status=0 append qemu_args
    append="console=ttyS0 rdinit=/init panic=-1 oops=panic cgroup_no_v1=all quiet loglevel=4 mitigations=off"
    qemu_args=(
        -accel tcg -cpu max -smp "${VM_SMP:-2}" -m "${VM_MEM:-2048}"
        -nographic -no-reboot -monitor none -nic none
        -serial "file:$scratch/console.log"
        -kernel "$kernel" -initrd "$initramfs" -append "$append"
        -virtfs "local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap"
        -virtfs "local,path=$scratch,mount_tag=scratch,security_model=passthrough,multidevs=remap"
    )
    # An empty sparse disk: a block device for the io controller tests (never mounted).
    truncate -s 16M "$scratch/disk.img"
    qemu_args+=(-drive "file=$scratch/disk.img,format=raw,if=virtio,cache=unsafe")
    for share in "${shares[@]}"; do
        i=$((i + 1))
        qemu_args+=(-virtfs "local,path=$share,mount_tag=share$i,security_model=passthrough,multidevs=remap")
    done

    : >"$scratch/output.log"
    # timeout(1) so that nothing in the guest can hang CI; SIGKILL if qemu ignores TERM.
    timeout --kill-after=20 "$timeout_s" qemu-system-x86_64 "${qemu_args[@]}" \
        </dev/null >"$scratch/qemu.log" 2>&1 &
    vm_pid=$!
    # Live output: the guest writes output.log through 9p straight into the host file.
    tail -n +1 -s 0.2 -f --pid="$vm_pid" "$scratch/output.log" &
    tail_pid=$!

    wait "$vm_pid" || status=$?
    vm_pid=""
    wait "$tail_pid" 2>/dev/null || true
    tail_pid=""
    vm_status=$status
}

show_console_tail() {
    say "--- last lines of the guest console ---"
    # Serial output carries \r and the odd escape sequence: strip control characters.
    tail -n "${1:-40}" "$scratch/console.log" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' |
        tr -cd '\11\12\40-\176' >&2 || true
    if [ -s "$scratch/qemu.log" ]; then
        say "--- qemu ---"
        cat "$scratch/qemu.log" >&2
    fi
}

main() {
    local t0 t1 rc
    parse_args "$@"
    t0=$(date +%s.%N)
    ensure_packages
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found"
    pick_kernel
    build_initramfs

    scratch=$(mktemp -d /tmp/mini-vm-run.XXXXXX)
    trap cleanup EXIT
    trap 'exit 130' INT TERM HUP
    normalize_shares
    write_guest_files

    say "booting $kver (tcg, ${VM_SMP:-2} cpu, ${VM_MEM:-2048} MiB, timeout ${timeout_s}s): ${cmd[*]}"
    run_vm
    t1=$(date +%s.%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

    [ "${VM_VERBOSE:-0}" = 1 ] && show_console_tail 100000
    if [ "$vm_status" -eq 124 ] || [ "$vm_status" -eq 137 ]; then
        say "TIMEOUT: the VM did not finish within ${timeout_s}s (wall ${wall}s); killed"
        show_console_tail
        return 124
    fi
    if [ ! -s "$scratch/rc" ]; then
        if [ -s "$scratch/init-error" ]; then
            say "VM set-up failed: $(cat "$scratch/init-error")"
        else
            say "the VM ended before the command finished (guest crash? qemu status $vm_status)"
        fi
        show_console_tail
        say "wall time ${wall}s"
        return 125
    fi
    rc=$(cat "$scratch/rc")
    [[ "$rc" =~ ^[0-9]+$ ]] || { say "bad rc file: '$rc'"; return 125; }
    if [ "$vm_status" -ne 0 ]; then
        say "note: qemu exited with status $vm_status"
    fi
    # Kernel complaints are worth seeing even on success (e.g. an OOM kill, a warning).
    if grep -qE 'Call Trace|BUG:|WARNING:' "$scratch/console.log"; then
        say "note: the guest kernel logged a warning or trace:"
        show_console_tail 60
    fi
    say "command exited with $rc; wall time ${wall}s"
    return "$rc"
}

main "$@"
