#!/usr/bin/env bash
# Benchmark (not a test): `exec` of /bin/true into a running container, berth-runtime
# against runc, one busybox bundle, one long-running container each, same run.
#
#   sudo bash scripts/bench-exec.sh            # RUNS=100 WARMUP=10 to change counts
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-100}"
WARMUP="${WARMUP:-10}"
[[ $(id -u) -eq 0 ]] || { echo "bench-exec: needs root" >&2; exit 1; }
command -v runc >/dev/null || { echo "bench-exec: runc missing (scripts/install-deps.sh)" >&2; exit 1; }

berth=$(bash scripts/build-release.sh)
WORK="$(mktemp -d /tmp/berth-bench-exec.XXXXXX)"
cleanup() {
    "$berth" --root "$WORK/berth" delete --force bench-exec >/dev/null 2>&1 || true
    runc --root "$WORK/runc" delete --force bench-exec >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

b="$WORK/bundle"
mkdir -p "$b/rootfs/bin"
cp /bin/busybox "$b/rootfs/bin/busybox"
for a in sh sleep true; do ln -s busybox "$b/rootfs/bin/$a"; done
runc spec --bundle "$b"
jq '.process.terminal = false | .process.args = ["/bin/sleep", "100000"] | del(.linux.resources)' \
    "$b/config.json" >"$b/c" && mv "$b/c" "$b/config.json"
"$berth" --root "$WORK/berth" run -d --bundle "$b" bench-exec
runc --root "$WORK/runc" run -d --bundle "$b" bench-exec >/dev/null

hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/r.json" \
    -n "berth exec" "$berth --root $WORK/berth exec bench-exec /bin/true" \
    -n "runc exec" "runc --root $WORK/runc exec bench-exec /bin/true"
jq -r '.results[] | "\(.command): median \(.median * 1000 | . * 100 | round / 100) ms"' "$WORK/r.json"
jq -r '"berth/runc: \(.results[0].median / .results[1].median | . * 100 | round / 100)x"' "$WORK/r.json"
