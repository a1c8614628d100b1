#!/usr/bin/env bash
# `berth run --rm IMG true` against `podman run --rm --network none IMG true`, same
# image (berth's built-in busybox, saved and loaded into podman), same run of
# hyperfine; also berth's process level. Prints hyperfine's table and the medians'
# ratio. Podman runs runc (its crun 1.8 refuses this hybrid cgroup layout) with
# default_ulimits within this machine's hard limits. Both stores live in a temp dir
# removed at exit.
#
#   sudo RUNS=50 WARMUP=5 bash scripts/bench-engine.sh [path/to/berth]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
WARMUP=${WARMUP:-5}
for tool in hyperfine jq podman; do
    command -v "$tool" >/dev/null || {
        echo "bench-engine: $tool missing (apt-get install hyperfine jq podman)" >&2
        exit 1
    }
done
berth=${1:-}
if [[ -z $berth ]]; then
    cargo build --release --quiet -p berth >&2
    berth="$PWD/target/release/berth"
fi
work=$(mktemp -d /tmp/berth-bench-engine.XXXXXX)
# A private Podman (scripts/clients/podman-env.sh) running runc.
bash scripts/clients/podman-env.sh "$work/podman" runc
PODMAN="$work/podman/podman"
cleanup() {
    "$work/podman/cleanup" >/dev/null 2>&1 || true
    for id in $("$berth" --root "$work/berth" ps -a --format json 2>/dev/null | jq -r '.[].id'); do
        "$berth" --root "$work/berth" rm -f "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

B="$berth --root $work/berth"
$B image default >/dev/null
$B save -o "$work/busybox.tar" localhost/berth/busybox:latest
$PODMAN load -q -i "$work/busybox.tar" >/dev/null
image=localhost/berth/busybox:latest
# One run each first: both stores warm.
$B run --rm busybox true
$PODMAN run --rm --network none "$image" true

hyperfine -N -w "$WARMUP" -r "$RUNS" --export-json "$work/h.json" \
    -n berth "$B run --rm busybox true" \
    -n berth-process "$B run --rm --isolation process busybox true" \
    -n podman "$PODMAN run --rm --network none $image true"
jq -r '.results[] | "\(.command): median \(.median * 1000 | . * 100 | round / 100) ms"' "$work/h.json"
jq -r '[.results[] | {(.command): .median}] | add |
    "berth/podman: \(.berth / .podman | . * 1000 | round / 1000)  process/podman: \(.["berth-process"] / .podman | . * 1000 | round / 1000)"' "$work/h.json"
