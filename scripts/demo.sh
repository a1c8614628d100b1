#!/usr/bin/env bash
# berth's main job on a built-in default: run a busybox container with berth-runtime.
#
#   sudo bash scripts/demo.sh [COMMAND...]
#
# Installs what it needs (busybox-static), builds berth-runtime (release), makes an OCI
# bundle from Debian's busybox in a temp dir, writes the default spec with
# `berth-runtime spec`, and runs COMMAND in it (default: a short tour of what the
# container sees). The bundle and the container are removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "demo: containers need root: run with sudo" >&2
    exit 1
fi
if [[ ! -x /bin/busybox ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi
runtime=$(bash scripts/build-release.sh)

bundle=$(mktemp -d /tmp/berth-demo.XXXXXX)
id="demo-$$"
cleanup() {
    "$runtime" delete --force "$id" >/dev/null 2>&1 || true
    rm -rf "$bundle"
}
trap cleanup EXIT

mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] && continue
    ln -sf busybox "$bundle/rootfs/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" >"$bundle/rootfs/etc/passwd"
(cd "$bundle" && "$runtime" spec)

if [[ $# -eq 0 ]]; then
    set -- sh -c 'echo "hello from $(hostname), pid $$ in its own pid namespace";
        echo "--- processes:"; ps;
        echo "--- mounts:"; cat /proc/mounts | cut -d" " -f1-3 | head -12;
        echo "--- capabilities:"; grep Cap /proc/self/status'
fi
# The default spec asks for a terminal; use it only when we have one.
terminal=false
[[ -t 0 && -t 1 ]] && terminal=true
args=$(jq -n '$ARGS.positional' --args -- "$@")
jq --argjson args "$args" --argjson t "$terminal" \
    '.process.args = $args | .process.terminal = $t' \
    "$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"

"$runtime" run --bundle "$bundle" "$id"
