#!/usr/bin/env bash
# What the test suite left on this host: run `snapshot` before the tests and `check` after.
#
#   scripts/leftovers.sh snapshot FILE   record what exists now
#   scripts/leftovers.sh check FILE      print what appeared since, exit 1 if anything did
#
# Compared: network namespaces (/run/netns), mount points, cgroup directories named as the
# tests name things (mini-*, or unique()'s PREFIX-PID-N) at any depth, nftables tables,
# network links (bridges, veths, vxlan devices), the cluster network's routes (`proto 77`, the
# agent's) and CNI host-local address stores (/var/lib/cni/networks/*), entries in /tmp named mini-*, runtime state under /run/mini-run, and live
# processes that started after the snapshot and belong to the tests: a binary of this
# checkout or in /tmp, a process whose root is not the host's (a container), or one of the
# daemons the tests start (containerd, dockerd, conmon, podman, their shims, qemu).
# Tests name everything uniquely and remove it even when they fail; anything listed here is
# a bug in a test's cleanup.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly DAEMONS='^(containerd|containerd-shim.*|dockerd|docker-proxy|conmon|podman|runc|crun|qemu-system-x86|mini-run|mini-shim|mini-sched)$'

usage() { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Everything but processes, one "kind<TAB>name" line each, sorted. Each source may be absent
# (no /run/netns yet, no nft): it then contributes nothing.
inventory() {
    {
        ls /run/netns 2>/dev/null | sed 's/^/netns\t/' || true
        awk '{ print "mount\t" $5 }' /proc/self/mountinfo
        # Cgroups named as the tests name them (unique(): prefix-PID-N, or mini-*), at any
        # depth: the machine's own cgroups come and go with its other work.
        find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null |
            grep -E '/(mini[^/]*|[^/]+-[0-9]+-[0-9]+)(/|$)' | sed 's/^/cgroup\t/' || true
        if command -v nft >/dev/null; then
            nft list tables 2>/dev/null | sed 's/^table /nft\t/' || true
        fi
        ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print "link\t" $2 }' || true
        # The mini-shim agent's host-gw routes, and host-local's allocations (a network's
        # directory, and each address held in it).
        ip route show proto 77 2>/dev/null | sed 's/^/route\t/' || true
        find /var/lib/cni/networks -mindepth 1 2>/dev/null | sed 's/^/cni\t/' || true
        # (The VM's initramfs cache, /tmp/mini-run-vm-cache, is kept on purpose.)
        ls -d /tmp/mini-* 2>/dev/null | grep -v '^/tmp/mini-run-vm-cache$' | sed 's/^/tmp\t/' || true
        ls /run/mini-run 2>/dev/null | sed 's/^/state\t/' || true
    } | sort -u
}

# Processes of the tests that started after the boot-relative time $1 (clock ticks).
test_processes() {
    local since=$1 pid stat start comm exe root
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        [ "$pid" = $$ ] && continue
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # Field 22 (starttime) counted after the ")" that ends comm, which may hold spaces.
        start=$(echo "${stat##*) }" | awk '{ print $20 }')
        [ -n "$start" ] && [ "$start" -gt "$since" ] || continue
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
        root=$(readlink "/proc/$pid/root" 2>/dev/null || true)
        [ -n "$exe" ] || continue   # a kernel thread
        if [[ "$exe" == "$ROOT"/* || "$exe" == /tmp/* || ( -n "$root" && "$root" != / ) ||
              "$comm" =~ $DAEMONS ]]; then
            echo "process	$pid $comm ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120))"
        fi
    done
}

# The uptime now, in clock ticks (as /proc/PID/stat's starttime).
ticks_now() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%d\n", $1 * hz }' /proc/uptime
}

main() {
    [ $# -eq 2 ] || usage
    local mode=$1 file=$2 found
    case "$mode" in
        snapshot)
            { echo "ticks	$(ticks_now)"; inventory; } >"$file"
            ;;
        check)
            [ -f "$file" ] || { echo "leftovers: no snapshot $file: run '$0 snapshot $file' first" >&2; exit 2; }
            found=$( { comm -13 <(grep -v '^ticks	' "$file") <(inventory)
                       test_processes "$(awk -F'\t' '$1 == "ticks" { print $2 }' "$file")"; } )
            if [ -n "$found" ]; then
                echo "leftovers: the tests left $(echo "$found" | wc -l) thing(s) behind:"
                echo "$found" | sed 's/^/  /'
                exit 1
            fi
            echo "leftovers: none (netns, mounts, cgroups, nft tables, links, routes, CNI address stores, /tmp/mini-*, /run/mini-run, processes)"
            ;;
        *) usage ;;
    esac
}

main "$@"
