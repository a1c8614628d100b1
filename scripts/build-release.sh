#!/usr/bin/env bash
# Build the release berth-runtime as a static, non-PIE executable (no dynamic loader,
# no load-time relocations: less memory touched at every start) and print its path.
#
#   bash scripts/build-release.sh [extra cargo args]
#
# `--target` is explicit so that the static flags apply to berth-runtime only, not to
# build scripts and proc-macros.
set -euo pipefail
cd "$(dirname "$0")/.."
triple="$(uname -m)-unknown-linux-gnu"
# libseccomp is linked statically too (Debian's libseccomp-dev ships libseccomp.a).
export LIBSECCOMP_LINK_TYPE=static
export LIBSECCOMP_LIB_PATH="${LIBSECCOMP_LIB_PATH:-/usr/lib/$(uname -m)-linux-gnu}"
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release --quiet --target "$triple" -p berth-runtime "$@" >&2
echo "${CARGO_TARGET_DIR:-$PWD/target}/$triple/release/berth-runtime"
