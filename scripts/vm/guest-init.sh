#!/bin/busybox sh
# shellcheck shell=sh
#
# PID 1 of the test VM (copied into the initramfs by scripts/vm/run.sh as /init).
#
# It turns a bare busybox initramfs into "the host's own root filesystem, read-only, on a
# pure cgroup v2 kernel": load the 9p modules, mount the host root and the scratch share,
# put tmpfs over the few places that must be writable, mount the pseudo filesystems and
# cgroup2, enable the controllers, then make the host root the root mount and run the command that run.sh wrote into
# the scratch share. Results leave the VM only through the scratch share (output.log, rc).
#
# Everything that varies per run comes from /scratch/guest.conf, so this file (and hence
# the cached initramfs) stays the same from run to run.

PATH=/bin
export PATH

/bin/busybox mkdir -p /bin /proc /sys /dev /scratch /newroot
/bin/busybox --install -s /bin

mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Messages go to the serial console, which run.sh keeps in console.log.
exec </dev/null >/dev/console 2>&1

log() { echo "[vm-init] $*"; }

# Any failure of the set-up ends the VM at once: run.sh sees no rc file and reports the
# reason (init-error) plus the tail of the console log. Never leave the guest idling.
fail() {
    log "FATAL: $*"
    if mountpoint -q /scratch; then
        echo "$*" >/scratch/init-error
        sync
    fi
    poweroff -f
    sleep 5
    exit 1
}

# Modules, in dependency order (run.sh resolved it from modules.dep). A module that does
# not load is only fatal if 9p then fails to mount, which is checked right after.
if [ -f /modules.order ]; then
    while read -r mod; do
        [ -n "$mod" ] || continue
        insmod "/modules/$mod" || log "insmod $mod failed"
    done </modules.order
fi

P9OPTS=trans=virtio,version=9p2000.L,msize=262144

mount -t 9p -o "$P9OPTS" scratch /scratch || fail "cannot mount the scratch share (9p)"
[ -f /scratch/guest.conf ] || fail "no guest.conf in the scratch share"
# Sets SCRATCH_PATH (the scratch dir's path on the host, where it is re-exposed inside the
# chroot), EXTRA_SHARES (lines "tag path") and CONTROLLERS.
# shellcheck disable=SC1091
. /scratch/guest.conf

R=/newroot
# cache=loose: the host root is read-only for the guest and not expected to change during
# a run, so letting the guest cache pages and metadata makes exec and dynamic linking of
# the host's binaries much cheaper under TCG.
mount -t 9p -o "$P9OPTS,ro,cache=loose" hostroot "$R" || fail "cannot mount the host root (9p)"

# Writable, empty, guest-private places; /root too, so nothing of the host's home leaks in
# and HOME is writable.
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp" || fail "tmpfs on /tmp"
mount -t tmpfs -o mode=1777 tmpfs "$R/var/tmp" || fail "tmpfs on /var/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$R/run" || fail "tmpfs on /run"
mount -t tmpfs -o mode=0700 tmpfs "$R/root" || fail "tmpfs on /root"

mount -t proc proc "$R/proc" || fail "proc"
mount -t sysfs sysfs "$R/sys" || fail "sysfs"
mount -t devtmpfs devtmpfs "$R/dev" || fail "devtmpfs"
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts" || fail "devpts"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm" || fail "tmpfs on /dev/shm"
mount -t mqueue mqueue "$R/dev/mqueue" 2>/dev/null || log "no mqueue"
# devtmpfs has no fd links; bash process substitution and many tools want them.
ln -sf /proc/self/fd "$R/dev/fd"
ln -sf /proc/self/fd/0 "$R/dev/stdin"
ln -sf /proc/self/fd/1 "$R/dev/stdout"
ln -sf /proc/self/fd/2 "$R/dev/stderr"
# Make /dev/ptmx point at this devpts instance (as a normal distro does).
rm -f "$R/dev/ptmx" && ln -s pts/ptmx "$R/dev/ptmx"

# Pure cgroup v2: the kernel was booted with cgroup_no_v1=all, so nothing can mount v1.
mount -t cgroup2 -o nsdelegate cgroup2 "$R/sys/fs/cgroup" || fail "cgroup2"
# Enable each wanted controller on its own so that one the kernel lacks does not stop
# the others; child cgroups created by the tests then get them.
available=$(cat "$R/sys/fs/cgroup/cgroup.controllers")
for c in $CONTROLLERS; do
    case " $available " in
        *" $c "*) echo "+$c" >"$R/sys/fs/cgroup/cgroup.subtree_control" || log "cannot enable $c" ;;
        *) log "controller $c not available" ;;
    esac
done
log "cgroup2 controllers: $available; enabled: $(cat "$R/sys/fs/cgroup/cgroup.subtree_control")"

# The scratch share appears inside the chroot at the same path as on the host, so paths
# the host wrote into cmd.sh (and that the command prints) mean the same on both sides.
mkdir -p "$R$SCRATCH_PATH" 2>/dev/null
mount -o bind /scratch "$R$SCRATCH_PATH" || fail "cannot expose the scratch share at $SCRATCH_PATH"

# Extra host directories (run.sh --share), read-write, at their host paths. They exist on
# the host root already unless they live under one of the tmpfs mounts above.
if [ -n "${EXTRA_SHARES:-}" ]; then
    echo "$EXTRA_SHARES" | while read -r tag path; do
        [ -n "$tag" ] || continue
        mkdir -p "$R$path" 2>/dev/null
        mount -t 9p -o "$P9OPTS" "$tag" "$R$path" || fail "cannot mount share $tag at $path"
    done || fail "extra shares"
fi

hostname vm
ip link set lo up 2>/dev/null || log "cannot bring lo up"

# The host root becomes the root MOUNT, as switch_root does (move it onto /, then chroot
# into it), not merely a chroot: the kernel refuses to create a user namespace from a
# process whose root is not its mount namespace's root (create_user_ns: EPERM when
# current_chrooted()), and rootless containers need one. This shell keeps the initramfs as
# its own root, so /scratch and poweroff below are still the initramfs's.
cd "$R" || fail "cd $R"
mount --move . / || fail "cannot move the host root onto /"
log "running command"
chroot . /bin/bash "$SCRATCH_PATH/cmd.sh" >/scratch/output.log 2>&1 </dev/null
rc=$?
log "command exited with $rc"
echo "$rc" >/scratch/rc
sync
poweroff -f
sleep 5
