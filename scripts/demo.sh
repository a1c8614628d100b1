#!/usr/bin/env bash
# berth's main job on a built-in default: run the built-in busybox image (made on
# this machine from Debian's busybox-static, no registry) with `berth run`.
#
#   sudo bash scripts/demo.sh [COMMAND...]
#
# Installs what it needs (busybox-static), builds `berth` (release) and runs COMMAND
# (default: a short tour of what the container sees) in a container, then the same
# image as a plain process for comparison. The containers are removed afterwards
# (`--rm`); the image stays in berth's store (/var/lib/berth, or $BERTH_ROOT).
# With DEMO_VM=1 it also fetches a guest kernel and runs the image in a micro-VM.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "demo: containers need root: run with sudo" >&2
    exit 1
fi
if [[ ! -x /bin/busybox ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi
if ! command -v cargo >/dev/null; then
    echo "demo: needs a Rust toolchain (https://rustup.rs)" >&2
    exit 1
fi
cargo build --release --quiet -p berth >&2
berth="$PWD/target/release/berth"

if [[ $# -eq 0 ]]; then
    set -- sh -c 'echo "hello from $(hostname), pid $$: $(uname -sr)";
        echo "--- processes:"; ps;
        echo "--- mounts:"; cut -d" " -f1-3 /proc/mounts | head -8;
        echo "--- capabilities:"; grep CapEff /proc/self/status'
fi
tty=()
[[ -t 0 && -t 1 ]] && tty=(-it)

echo "== berth run --rm busybox (isolation: container)" >&2
"$berth" run --rm "${tty[@]}" busybox "$@"
if "$berth" run --help | grep -q 'process'; then
    echo "== berth run --rm --isolation process busybox" >&2
    "$berth" run --rm --isolation process busybox "$@" || true
fi
if [[ ${DEMO_VM:-0} == 1 ]]; then
    bash scripts/fetch-kernel.sh >&2
    # The guest agent is the VM's /init: a static binary.
    triple="$(uname -m)-unknown-linux-gnu"
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
        -p berth-guest-agent --target "$triple" --target-dir "$PWD/target/guest-agent" >&2
    export BERTH_GUEST_AGENT="$PWD/target/guest-agent/$triple/release/berth-guest-agent"
    echo "== berth run --rm --isolation vm busybox" >&2
    "$berth" run --rm --isolation vm busybox "$@"
fi
echo "(berth is at $berth: try '$berth images', '$berth run -d busybox sleep 60', '$berth ps')" >&2
