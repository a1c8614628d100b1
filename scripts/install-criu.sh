#!/usr/bin/env bash
# Make a working CRIU available for checkpoint/restore and print its path.
#
#   bash scripts/install-criu.sh        # prints e.g. /usr/sbin/criu
#
# Debian 12's criu (3.17) cannot run on kernels from 6.13 on ("vdso: Unexpected rt vDSO
# area bounds": the kernel added a [vvar_vclock] mapping that CRIU learned in 4.1). When
# the system criu fails `criu check`, this fetches Debian 13 (trixie)'s criu and the
# libraries it needs from Debian's archive into a private prefix (nothing is installed
# system-wide, the host's apt sources are not touched) and prints a wrapper that runs it
# with trixie's own loader. The prefix is a cache: a second run reuses it.
set -euo pipefail

PREFIX="${BERTH_CRIU_PREFIX:-/var/cache/berth/criu-trixie}"

works() { "$1" check >/dev/null 2>&1; }

if command -v criu >/dev/null && works "$(command -v criu)"; then
    command -v criu
    exit 0
fi
if [[ -x "$PREFIX/bin/criu" ]] && works "$PREFIX/bin/criu"; then
    echo "$PREFIX/bin/criu"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "install-criu: needs root" >&2; exit 1; }
arch=$(dpkg --print-architecture)
triple="$(uname -m)-linux-gnu"
tmp=$(mktemp -d /tmp/berth-criu.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/archives/partial" "$tmp/cache"
echo "deb http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache"
    -o "Dir::Cache::Archives=$tmp/archives" -o "APT::Architecture=$arch"
    -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
)
echo "install-criu: the system criu fails 'criu check'; fetching Debian trixie's criu into $PREFIX" >&2
apt-get "${apt_opts[@]}" -qq update >&2
# criu and every library it loads (the trixie loader and libc come along: criu must run
# with them, not with the host's older glibc).
pkgs=(criu libcompel1 libc6 libgcc-s1 libbsd0 libmd0 libgnutls30t64 libgmp10 libhogweed6t64
      libnettle8t64 libidn2-0 libunistring5 libp11-kit0 libffi8 libtasn1-6 libnet1
      libnftables1 libnftnl11 libmnl0 libxtables12 libjansson4 libedit2 libtinfo6
      libnl-3-200 libprotobuf-c1 libuuid1)
(cd "$tmp/archives" && apt-get "${apt_opts[@]}" -qq download "${pkgs[@]}" >&2)
rm -rf "$PREFIX.new" && mkdir -p "$PREFIX.new/root" "$PREFIX.new/bin"
for deb in "$tmp"/archives/*.deb; do
    dpkg-deb -x "$deb" "$PREFIX.new/root"
done
cat >"$PREFIX.new/bin/criu" <<WRAP
#!/bin/sh
exec $PREFIX/root/usr/lib/$triple/ld-linux-x86-64.so.2 --library-path $PREFIX/root/usr/lib/$triple $PREFIX/root/usr/sbin/criu "\$@"
WRAP
chmod +x "$PREFIX.new/bin/criu"
rm -rf "$PREFIX" && mv "$PREFIX.new" "$PREFIX"
if ! works "$PREFIX/bin/criu"; then
    echo "install-criu: trixie's criu does not pass 'criu check' here either:" >&2
    "$PREFIX/bin/criu" check >&2 || true
    exit 1
fi
echo "$PREFIX/bin/criu"
