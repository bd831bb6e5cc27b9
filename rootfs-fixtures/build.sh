#!/usr/bin/env bash
# Builds the test root filesystems under rootfs-fixtures/out/ and prints the
# path of the busybox rootfs on stdout (everything else goes to stderr).
#
# Idempotent and cheap to re-run: files are only replaced when their content
# changed, and replaced by rename so running containers never see a half
# written binary. Needs root only to install busybox-static when missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$(cd "$here/.." && pwd)"
out="$here/out"
rootfs="$out/busybox"

log() { printf 'build.sh: %s\n' "$*" >&2; }

# A binary counts as static when ldd finds no libraries in it.
is_static() {
	local ldd_out
	ldd_out="$(ldd "$1" 2>&1 || true)"
	[[ $ldd_out == *"not a dynamic executable"* || $ldd_out == *"statically linked"* ]]
}

# install_file SRC DEST MODE: replace DEST by SRC (atomically) unless equal.
install_file() {
	local src="$1" dest="$2" mode="$3"
	if [[ -f $dest && ! -L $dest ]] && cmp -s "$src" "$dest"; then
		chmod "$mode" "$dest"
		return
	fi
	cp "$src" "$dest.tmp.$$"
	chmod "$mode" "$dest.tmp.$$"
	mv -f "$dest.tmp.$$" "$dest"
	log "updated ${dest#"$out/"}"
}

# write_file DEST MODE < CONTENT: like install_file, content from stdin.
write_file() {
	local tmp="$out/.stdin.$$"
	cat >"$tmp"
	install_file "$tmp" "$1" "$2"
	rm -f "$tmp"
}

mkdir -p "$out"
# Serialise concurrent runs (several test suites may call this at once).
if command -v flock >/dev/null; then
	exec 9>"$out/.lock"
	flock 9
fi

# 1. A static busybox.
if [[ ! -x /bin/busybox ]] || ! is_static /bin/busybox; then
	log "installing busybox-static"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get -o DPkg::Lock::Timeout=600 install -y busybox-static >&2; then
		apt-get -o DPkg::Lock::Timeout=600 update >&2
		apt-get -o DPkg::Lock::Timeout=600 install -y busybox-static >&2
	fi
	is_static /bin/busybox || {
		log "/bin/busybox is still not static"
		exit 1
	}
fi

# 2. The probe, static, in the workspace's usual target dir. The explicit
# --target keeps crt-static off build scripts and proc-macros.
host="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-$workspace/target}"
[[ $target_dir == /* ]] || target_dir="$workspace/$target_dir"
(
	cd "$workspace"
	RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
		cargo build --release -p probe --target "$host" >&2
)
probe="$target_dir/$host/release/probe"
is_static "$probe" || {
	log "$probe is not static"
	exit 1
}

# 3. The busybox rootfs.
mkdir -p "$rootfs"
chmod 0755 "$rootfs"
(
	cd "$rootfs"
	mkdir -p bin dev etc proc run sys usr var home/tester root tmp var/tmp
	chmod 0755 bin dev etc proc run sys usr var home
	chmod 0700 root
	chmod 1777 tmp var/tmp
	if ((EUID == 0)); then chown 1000:1000 home/tester; fi
	for link in sbin:bin usr/bin:../bin usr/sbin:../bin; do
		name="${link%%:*}"
		[[ -L $name ]] || ln -s "${link#*:}" "$name"
	done
)
install_file /bin/busybox "$rootfs/bin/busybox" 0755
install_file "$probe" "$rootfs/bin/probe" 0755
while read -r applet; do
	[[ $applet == busybox || -L $rootfs/bin/$applet ]] || ln -s busybox "$rootfs/bin/$applet"
done < <("$rootfs/bin/busybox" --list)

write_file "$rootfs/etc/passwd" 0644 <<'EOF'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
write_file "$rootfs/etc/group" 0644 <<'EOF'
root:x:0:
tester:x:1000:
extra:x:2000:tester
nogroup:x:65534:
EOF

printf '%s\n' "$rootfs"
