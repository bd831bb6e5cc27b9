# The Debian packages the build, the tests, the fixtures and the VM need: one list, read by
# .ci/run (installs them), scripts/test-all.sh (checks them up front) and the README.
# Sourced by bash; defines PACKAGES and missing_packages.
#
# What the tests need from Debian:
#   busybox-static   test rootfs (rootfs-fixtures) and the VM's initramfs
#   qemu-system-x86, linux-image-amd64, cpio   the cgroup v2 test VM (scripts/vm/run.sh)
#   runc, crun       reference runtimes (compatibility tests, benchmarks, VM self-test)
#   hyperfine, time  benchmarks (/usr/bin/time for peak RSS)
#   iproute2         network namespace / veth tests
#   python3          test-all.sh reads cargo's JSON with it
#   util-linux, procps, kmod, xz-utils, zstd   unshare/nsenter, ps, module tools, and
#                    unpacking compressed kernel modules for the initramfs
#   libseccomp-dev   libseccomp.a, linked into mini-run (seccomp profiles)
#   golang-github-containers-common   podman's default seccomp profile, a test input
#   podman, conmon, containerd, docker.io   real clients driving mini-run in the tests
#                    (tests/tests/podman.rs, containerd.rs, docker.rs)
#   curl             the mini-shim agent's client in tests/tests/shim_agent.rs (mutual TLS)
#   uidmap           newuidmap/newgidmap: rootless mini-run maps a user's /etc/subuid ranges
#                    with them (tests/tests/rootless.rs, podman_rootless.rs)
#   containernetworking-plugins   the CNI reference plugins (bridge, host-local, loopback,
#                    portmap in /usr/lib/cni) the agent runs for `network: cluster`
#                    (tests/tests/cluster_network.rs)
#   nftables         nft, which writes the agent's masquerading table (cluster network)
#   conntrack        the agent flushes the connection-tracking entries of a removed service's
#                    address with it (shim/src/agent/service/conntrack.rs; no maintained Rust
#                    crate deletes conntrack entries over netlink)
#   iptables         the portmap CNI plugin (Debian's 1.1.1) writes host ports' DNAT rules
#                    with iptables (the nft backend): `ports:` in a workload
#   docker-registry, skopeo   registry pulls (tests/tests/registry_pull.rs): the CNCF
#                    distribution registry the tests start (TLS, htpasswd), and skopeo to push
#                    the locally built busybox images into it
readonly PACKAGES=(
    busybox-static qemu-system-x86 linux-image-amd64 cpio
    runc crun hyperfine time iproute2 python3
    util-linux procps kmod xz-utils zstd
    libseccomp-dev golang-github-containers-common podman conmon containerd docker.io curl
    uidmap
    containernetworking-plugins nftables conntrack iptables
    docker-registry skopeo
)

# Prints those of the packages given (default: all of PACKAGES) that are not installed, one
# per line.
missing_packages() {
    local pkg
    [ $# -gt 0 ] || set -- "${PACKAGES[@]}"
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || echo "$pkg"
    done
}
