#!/usr/bin/env bash
# Builds mini-run and the busybox test rootfs, then runs a busybox container with
# `mini-run run` and removes everything it made. The README's "first run" command.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" -eq 0 ] || { echo "quickstart: run as root (containers need namespaces and cgroups)" >&2; exit 1; }

# Debian packages the build needs (libseccomp.a is linked into mini-run); build.sh installs
# busybox-static itself.
if ! dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q 'ok installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends libseccomp-dev >&2 ||
        { apt-get -o DPkg::Lock::Timeout=600 update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends libseccomp-dev >&2; }
fi
rootfs=$(rootfs-fixtures/build.sh)
cargo build --release -p mini-run >&2
bin="$PWD/target/x86_64-unknown-linux-gnu/release/mini-run"

bundle=$(mktemp -d /tmp/mini-run-quickstart.XXXXXX)
id="quickstart-$$"
trap '"$bin" delete --force "$id" >/dev/null 2>&1 || true; rm -rf "$bundle"' EXIT

# A runc-style default config, pointed at the busybox rootfs, without a terminal.
(cd "$bundle" && "$bin" spec)
python3 - "$bundle/config.json" "$rootfs" <<'PY'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["root"]["path"] = rootfs
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
    "echo hello from busybox in mini-run; echo hostname: $(hostname); echo pid: $$; id; ls /"]
json.dump(c, open(path, "w"), indent=2)
PY

echo "+ mini-run run --bundle $bundle $id" >&2
"$bin" run --bundle "$bundle" "$id"
