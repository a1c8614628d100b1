#!/usr/bin/env bash
# Benchmark (not a test): what creating, configuring and removing the cgroup costs
# `berth-runtime run` of /bin/true: one bundle without any `linux.resources`, one with a
# full block (memory, cpu, pids, device rules), same runtime, same run.
#
#   sudo bash scripts/bench-cgroups.sh          # RUNS=100 WARMUP=10 to change counts
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-100}"
WARMUP="${WARMUP:-10}"
[[ $(id -u) -eq 0 ]] || { echo "bench-cgroups: needs root" >&2; exit 1; }

bin=$(bash scripts/build-release.sh)
WORK="$(mktemp -d /tmp/berth-bench-cg.XXXXXX)"
root="$WORK/state"
cleanup() {
    "$bin" --root "$root" delete --force plain >/dev/null 2>&1 || true
    "$bin" --root "$root" delete --force limited >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

make_bundle() { # name jq-filter
    local b="$WORK/$1"
    mkdir -p "$b/rootfs/bin"
    cp /bin/busybox "$b/rootfs/bin/busybox"
    ln -s busybox "$b/rootfs/bin/true"
    (cd "$b" && "$bin" spec)
    jq ".process.terminal = false | .process.args = [\"/bin/true\"] | $2" \
        "$b/config.json" >"$b/c" && mv "$b/c" "$b/config.json"
}
make_bundle plain 'del(.linux.resources)'
make_bundle limited '.linux.resources = {
    "devices": [{"allow": false, "access": "rwm"}],
    "memory": {"limit": 268435456, "reservation": 134217728},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "pids": {"limit": 256}}'

hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/r.json" \
    -n "no resources" "$bin --root $root run --bundle $WORK/plain plain" \
    -n "resources" "$bin --root $root run --bundle $WORK/limited limited"
jq -r '.results[] | "\(.command): median \(.median * 1000 | . * 100 | round / 100) ms"' "$WORK/r.json"
jq -r '(.results[1].median - .results[0].median) * 1000 | "difference of medians: \(. * 1000 | round / 1000) ms"' "$WORK/r.json"
