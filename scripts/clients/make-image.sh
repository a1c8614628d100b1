#!/usr/bin/env bash
# Build a tiny busybox image OFFLINE, as a docker-archive tarball that `docker load`,
# `podman load` and `ctr images import` all accept.
#
#   bash scripts/clients/make-image.sh OUT.tar [NAME]      (NAME: localhost/berth-busybox:latest)
#
# The rootfs is /bin/busybox ($BERTH_BUSYBOX; must be static: Debian's busybox-static)
# with a symlink per applet in /bin, a minimal /etc (passwd, group, hosts) and the
# usual empty mount points. Every tar is built with sorted names, mtime 0 and uid/gid 0,
# so the same busybox always gives the same layer and config digests.
set -euo pipefail

out=${1:?usage: make-image.sh OUT.tar [NAME]}
name=${2:-localhost/berth-busybox:latest}
busybox=${BERTH_BUSYBOX:-/bin/busybox}

if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked' && ldd "$busybox" >/dev/null 2>&1; then
    echo "make-image: $busybox is dynamically linked; install busybox-static" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,etc,dev,proc,sys,tmp,root,run,var/tmp,home}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
ln -s bin "$root/sbin"
mkdir -p "$root/usr"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
P
cat >"$root/etc/group" <<'G'
root:x:0:
daemon:x:1:
nogroup:x:65534:
G
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"

deterministic_tar() { # DIR OUT
    tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -cf "$2" .
}

arch=$(uname -m)
case $arch in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac

layer=$work/layer.tar
deterministic_tar "$root" "$layer"
layer_sha=$(sha256sum "$layer" | cut -d' ' -f1)

arc=$work/archive
mkdir -p "$arc/$layer_sha"
mv "$layer" "$arc/$layer_sha/layer.tar"
config=$(printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"berth scripts/clients/make-image.sh"}]}' "$arch" "$layer_sha")
config_sha=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
printf '%s' "$config" >"$arc/$config_sha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
    "$config_sha" "$name" "$layer_sha" >"$arc/manifest.json"
printf '{"%s":{"%s":"%s"}}' "${name%:*}" "${name##*:}" "$layer_sha" >"$arc/repositories"

deterministic_tar "$arc" "$work/image.tar"
mv "$work/image.tar" "$out"
echo "make-image: $out ($name, config sha256:$config_sha)" >&2
