#!/usr/bin/env bash
# Installs everything berth's tests and benchmarks need on Debian 12 (bookworm).
# Idempotent and quick when everything is already there: apt is only touched (one
# `apt-get update`, one `apt-get install`) if a package is missing, and the Rust
# toolchain (rustup, with clippy and rustfmt) only if cargo is missing.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo -E"
fi

PACKAGES=(
    # container runtimes to compare against, and the rootfs for test containers
    busybox-static runc crun
    # benchmarks: hyperfine, GNU time for peak RSS
    hyperfine time
    # building: C toolchain, libc.a for the static berth-probe, seccomp
    build-essential libc6-dev libseccomp-dev pkg-config
    # features and test tooling
    criu iproute2 jq ca-certificates curl
    # networking: nft for the `inet berth` table, iperf3 for scripts/bench-net.sh
    nftables iperf3
    # real clients (crates/berth-runtime/tests/clients.rs, scripts/clients/): podman
    # with conmon, dockerd + containerd + the runc v2 shim, image tools; `script` is in
    # util-linux (essential)
    podman conmon docker.io containerd skopeo umoci uidmap
    # a real registry on 127.0.0.1 for the image crate's tests
    docker-registry
    # micro-VMs (crates/vm): QEMU microvm, qemu-img for the overlays, mkfs.ext4 -d
    # (the kernel comes from scripts/fetch-kernel.sh)
    qemu-system-x86 qemu-utils e2fsprogs xz-utils
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "install-deps: apt packages already installed"
fi

# Rust: Debian's rustc is too old for the workspace, so use rustup's stable toolchain.
if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
    echo "install-deps: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --component clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if command -v rustup >/dev/null; then
    for comp in clippy rustfmt; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
            rustup component add "$comp"
        fi
    done
fi

echo "install-deps: done ($(cargo --version))"
