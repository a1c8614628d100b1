#!/usr/bin/env bash
# Fetch Debian's kernel for berth's micro-VMs into a cache and print the cache dir.
#
#   bash scripts/fetch-kernel.sh [CACHE_DIR]   (default: $BERTH_KERNEL_DIR or
#                                               /var/cache/berth/kernel)
#
# Idempotent: does nothing once CACHE_DIR/vmlinux exists. The package is downloaded with
# `apt-get download` from the host's configured sources and unpacked with `dpkg -x`
# into the cache only; nothing is installed into /boot. The result:
#
#   CACHE_DIR/vmlinuz            Debian's compressed kernel (bzImage)
#   CACHE_DIR/vmlinux            the uncompressed ELF, bootable as PVH by QEMU microvm
#   CACHE_DIR/lib/modules/VER/   the modules and modules.dep
#   CACHE_DIR/version            VER
set -euo pipefail

dir="${1:-${BERTH_KERNEL_DIR:-/var/cache/berth/kernel}}"
if [[ -s "$dir/vmlinux" && -s "$dir/version" ]]; then
    echo "$dir"
    exit 0
fi

for tool in apt-get apt-cache dpkg xz od grep; do
    command -v "$tool" >/dev/null || { echo "fetch-kernel: $tool missing" >&2; exit 1; }
done

# The versioned package behind linux-image-amd64, preferring the unsigned build.
pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')"
if [[ -z "$pkg" ]]; then
    echo "fetch-kernel: cannot resolve linux-image-amd64 (run apt-get update?)" >&2
    exit 1
fi
if apt-cache show "$pkg-unsigned" >/dev/null 2>&1; then
    pkg="$pkg-unsigned"
fi

mkdir -p "$dir"
work="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# As root, download as root: apt's _apt sandbox user cannot write into the cache.
(cd "$work" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" "$pkg" >&2)
dpkg -x "$work"/*.deb "$work/root"

vmlinuz="$(ls "$work"/root/boot/vmlinuz-* | head -n1)"
version="${vmlinuz##*/vmlinuz-}"
[[ -d "$work/root/lib/modules/$version" ]] || {
    echo "fetch-kernel: no modules for $version in $pkg" >&2
    exit 1
}

# Extract the ELF vmlinux as the kernel tree's scripts/extract-vmlinux does: find the xz
# magic (FD 37 7A 58 5A 00) and decompress from there, ignoring what follows the stream.
offset="$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1)"
[[ -n "$offset" ]] || { echo "fetch-kernel: no xz stream in $vmlinuz" >&2; exit 1; }
tail -c +"$((offset + 1))" "$vmlinuz" | xz -dc --single-stream >"$work/vmlinux" 2>/dev/null || true
if [[ "$(od -An -c -N4 "$work/vmlinux" | tr -d ' ')" != '177ELF' ]]; then
    echo "fetch-kernel: decompressed kernel is not an ELF file" >&2
    exit 1
fi

# The package has no modules.dep (depmod runs at install): berth-vm reads each
# module's dependencies from its .modinfo section instead.
rm -rf "$dir/lib"
mkdir -p "$dir/lib/modules"
mv "$work/root/lib/modules/$version" "$dir/lib/modules/$version"
cp "$vmlinuz" "$dir/vmlinuz"
mv "$work/vmlinux" "$dir/vmlinux.tmp"
echo "$version" >"$dir/version"
mv "$dir/vmlinux.tmp" "$dir/vmlinux" # last: its presence marks a complete cache
echo "$dir"
