#!/usr/bin/env bash
# Benchmark (not a test): `berth pull` (download + verify + unpack, release build) vs
# `podman pull` (which unpacks too) from a loopback `docker-registry`, for two images:
#   busybox  berth's built-in busybox image (~1 MB), pushed with `berth push`;
#   debian   a `debootstrap --variant=minbase bookworm` rootfs imported as one layer
#            (`berth import`) and pushed. The tarball is made once and cached under
#            /var/cache/berth/bench (needs apt's Debian mirror and `debootstrap`).
#
#   sudo bash scripts/bench-pull.sh          # RUNS=10 WARMUP=2 IMAGES="busybox debian"
#
# * The registry runs from a temp dir on 127.0.0.1 with a free port and is stopped on
#   exit, with everything else under the temp dir.
# * Every timed run starts from an empty store: hyperfine's --prepare deletes berth's
#   --root, and podman's --root/--runroot (after `podman rmi -a -f`), before each run.
# * podman: --tls-verify=false (plain HTTP), storage driver overlay, cgroupfs, file
#   events (no systemd needed).
# * The stores (berth's --root, podman's --root) live on BENCH_FS: `ext4` (default) a
#   fresh 4 GiB ext4 image loop-mounted under the temp dir, so that the host disk's
#   state (a full, aged ext4 whose inode allocator scans past recently deleted inodes:
#   seconds of kernel time per 10k files) does not drown the comparison; `tmpfs`; or
#   `host` (the temp dir as it is).
# * Prints hyperfine's tables, then the medians, the berth/podman ratio, and for
#   debian berth's throughput in uncompressed MB/s.
set -euo pipefail

cd "$(dirname "$0")/.."

RUNS="${RUNS:-10}"
WARMUP="${WARMUP:-2}"
IMAGES="${IMAGES:-busybox debian}"
BENCH_FS="${BENCH_FS:-ext4}"
CACHE=/var/cache/berth/bench
DEBIAN_TAR="$CACHE/debian-rootfs.tar"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

[[ $(id -u) -eq 0 ]] || { echo "bench-pull: needs root" >&2; exit 1; }
for tool in hyperfine jq podman docker-registry python3; do
    command -v "$tool" >/dev/null || {
        echo "bench-pull: $tool missing (apt-get install hyperfine jq podman docker-registry)" >&2
        exit 1
    }
done

echo "building berth (release)..." >&2
cargo build --release --quiet -p berth >&2
BERTH="${CARGO_TARGET_DIR:-$PWD/target}/release/berth"

WORK="$(mktemp -d /tmp/berth-bench-pull.XXXXXX)"
REG_PID=
cleanup() {
    set +e
    if [[ -n $REG_PID ]]; then
        kill "$REG_PID" 2>/dev/null
        wait "$REG_PID" 2>/dev/null
    fi
    # podman's overlay storage may hold mounts under its root.
    grep -o " $WORK/[^ ]*" /proc/self/mountinfo | sort -r |
        xargs -r -n1 sh -c 'umount "$0" 2>/dev/null || umount -l "$0"' 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- the registry ----
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
REG="127.0.0.1:$PORT"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
    curl -fs "http://$REG/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://$REG/v2/" >/dev/null || { echo "bench-pull: registry did not start" >&2; exit 1; }

# ---- the images ----
SETUP="$WORK/setup-root"
b() { "$BERTH" --root "$SETUP" "$@"; }
declare -A REF=() RAW=()
for image in $IMAGES; do
    case $image in
    busybox)
        b image default >/dev/null
        b tag localhost/berth/busybox:latest "$REG/bench/busybox:1" >/dev/null
        RAW[busybox]=0
        ;;
    debian)
        if [[ ! -f $DEBIAN_TAR ]]; then
            command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >&2
            mkdir -p "$CACHE"
            rm -rf "$CACHE/rootfs"
            debootstrap --variant=minbase bookworm "$CACHE/rootfs" "$MIRROR" >&2
            tar -C "$CACHE/rootfs" -cf "$DEBIAN_TAR.tmp" .
            mv "$DEBIAN_TAR.tmp" "$DEBIAN_TAR"
            rm -rf "$CACHE/rootfs"
        fi
        b import "$DEBIAN_TAR" "$REG/bench/debian:1" >/dev/null
        RAW[debian]="$(stat -c %s "$DEBIAN_TAR")"
        ;;
    *) echo "bench-pull: unknown image $image" >&2; exit 1 ;;
    esac
    b push "$REG/bench/$image:1" >/dev/null
    REF[$image]="$REG/bench/$image:1"
done

# ---- the runs ----
STORES="$WORK/stores"
mkdir -p "$STORES"
case $BENCH_FS in
ext4)
    truncate -s 4G "$WORK/stores.img"
    mkfs.ext4 -q -F "$WORK/stores.img"
    mount -o loop "$WORK/stores.img" "$STORES"
    ;;
tmpfs) mount -t tmpfs -o size=4G tmpfs "$STORES" ;;
host) ;;
*) echo "bench-pull: BENCH_FS is ext4, tmpfs or host" >&2; exit 1 ;;
esac
BROOT="$STORES/berth"
PROOT="$STORES/podman"
PODMAN="podman --root $PROOT/root --runroot $PROOT/run --storage-driver overlay --cgroup-manager cgroupfs --events-backend file"
PREP_BERTH="rm -rf $BROOT"
PREP_PODMAN="$PODMAN rmi -a -f >/dev/null 2>&1; umount -R $PROOT/root/overlay 2>/dev/null; rm -rf $PROOT"

declare -A MED=()
for image in $IMAGES; do
    ref="${REF[$image]}"
    # Smoke runs (and so fail early, with the error shown).
    bash -c "$PREP_BERTH" && "$BERTH" --root "$BROOT" pull "$ref" >/dev/null 2>&1 ||
        { "$BERTH" --root "$BROOT" pull "$ref"; exit 1; }
    bash -c "$PREP_PODMAN" && $PODMAN pull -q --tls-verify=false "$ref" >/dev/null
    hyperfine -N --runs "$RUNS" --warmup "$WARMUP" \
        --export-json "$WORK/$image.json" \
        --prepare "bash -c '$PREP_BERTH'" -n "berth pull $image" \
        "$BERTH --root $BROOT pull $ref" \
        --prepare "bash -c '$PREP_PODMAN'" -n "podman pull $image" \
        "$PODMAN pull -q --tls-verify=false $ref"
    MED[$image,berth]="$(jq '.results[0].median' "$WORK/$image.json")"
    MED[$image,podman]="$(jq '.results[1].median' "$WORK/$image.json")"
done

echo
echo "medians (s), $RUNS runs each, stores on $BENCH_FS:"
for image in $IMAGES; do
    berth="${MED[$image,berth]}" podman="${MED[$image,podman]}"
    python3 - "$image" "$berth" "$podman" "${RAW[$image]}" <<'EOF'
import sys
image, berth, podman, raw = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
line = f"  {image:8} berth {berth:.4f}  podman {podman:.4f}  ratio {berth / podman:.3f}"
if raw:
    line += f"  berth {raw / 1e6 / berth:.0f} MB/s ({raw / 1e6:.0f} MB uncompressed)"
print(line)
EOF
done
