#!/usr/bin/env bash
# Benchmark (not a test) of container networking, all inside a network namespace
# of its own (`unshare -n`: the host's links, routes and firewall are not touched):
#
# * hyperfine: `berth run --rm --network bridge busybox true` against
#   `--network none` (what joining the default network costs a run: the namespace,
#   veth, address, routes, rules and name server made and removed each time, since
#   the run is the network's only container);
# * iperf3 TCP throughput from the namespace (the "host") to an iperf3 server in a
#   container on a bridge network, a routed network, and the host network.
#
#   sudo bash scripts/bench-net.sh [BERTH]   # RUNS=30 WARMUP=3 SECONDS_IPERF=5
#
# BERTH defaults to target/release/berth (built with `cargo build --release -p
# berth` when missing). The container gets the host's iperf3 and its libraries by
# read-only bind mounts of /usr (Debian's merged /usr).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-30}"
WARMUP="${WARMUP:-3}"
SECONDS_IPERF="${SECONDS_IPERF:-5}"

[[ $(id -u) -eq 0 ]] || { echo "bench-net: needs root" >&2; exit 1; }
for tool in hyperfine iperf3 jq unshare ip nft; do
    command -v "$tool" >/dev/null || {
        echo "bench-net: $tool missing (scripts/install-deps.sh)" >&2
        exit 1
    }
done

if [[ "${BENCH_NET_INSIDE:-}" != 1 ]]; then
    BERTH="${1:-${CARGO_TARGET_DIR:-$PWD/target}/release/berth}"
    if [[ ! -x "$BERTH" ]]; then
        cargo build --release --quiet -p berth >&2
    fi
    BERTH="$(realpath "$BERTH")"
    # Only the network namespace is new: mounts stay the host's, so berth's
    # namespace files and rootfs mounts outlive each command, as they would.
    exec env BENCH_NET_INSIDE=1 unshare --net bash "$0" "$BERTH"
fi

BERTH="$1"
ip link set lo up
WORK="$(mktemp -d /tmp/berth-bench-net.XXXXXX)"
b() { "$BERTH" --root "$WORK/root" "$@"; }
cleanup() {
    b rm -f ips-bridge ips-routed ips-host >/dev/null 2>&1 || true
    b network rm rnet bridge >/dev/null 2>&1 || true
    sleep 1.5 # the teardown of empty networks (berth __netgc) after its grace period
    # berth's namespace directory is a shared mount point (as /run/netns).
    umount "$WORK/root/netns" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

b image default >/dev/null
b network create --driver routed rnet >/dev/null
echo "berth: $BERTH"
echo "kernel: $(uname -r), $(nproc) CPUs"
echo

echo "== run --rm busybox true: --network bridge vs none =="
hyperfine -N -w "$WARMUP" -r "$RUNS" --export-json "$WORK/run.json" \
    -n none "$BERTH --root $WORK/root run --rm --network none busybox true" \
    -n bridge "$BERTH --root $WORK/root run --rm --network bridge busybox true" >/dev/null
jq -r '.results[] | "\(.command): median \(.median * 1000 | .*10 | round / 10) ms, min \(.min * 1000 | .*10 | round / 10) ms, mean \(.mean * 1000 | .*10 | round / 10) ms ± \(.stddev * 1000 | .*10 | round / 10)"' "$WORK/run.json"
jq -r '(.results | map({(.command): .}) | add) as $m | "difference of medians: \(($m.bridge.median - $m.none.median) * 1000 | .*10 | round / 10) ms, of minima: \(($m.bridge.min - $m.none.min) * 1000 | .*10 | round / 10) ms"' "$WORK/run.json"
echo

echo "== iperf3 TCP, ${SECONDS_IPERF}s, namespace (host side) -> container =="
LIBS=(-v /usr:/usr:ro -v /usr/lib:/lib:ro -v /usr/lib64:/lib64:ro)
for net in bridge rnet host; do
    name="ips-${net/rnet/routed}"
    b run -d --name "$name" --network "$net" "${LIBS[@]}" busybox /usr/bin/iperf3 -s >/dev/null
    if [[ $net == host ]]; then
        addr=127.0.0.1
    else
        addr=$(b inspect "$name" | jq -r '.. | objects | select(has("networks")) | .networks[0].ip' | head -1)
    fi
    for _ in $(seq 100); do
        timeout 1 bash -c "</dev/tcp/$addr/5201" 2>/dev/null && break || sleep 0.1
    done
    timeout $((SECONDS_IPERF + 20)) iperf3 -c "$addr" -t "$SECONDS_IPERF" -J >"$WORK/iperf.json" || true
    gbps=$(jq -r 'if .error then "failed: \(.error)" else (.end.sum_received.bits_per_second / 1e9 | .*100 | round / 100) end' "$WORK/iperf.json")
    printf '%-7s %s Gbit/s (%s)\n' "${net/rnet/routed}" "$gbps" "$addr"
    b rm -f "$name" >/dev/null
done
