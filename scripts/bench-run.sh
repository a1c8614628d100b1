#!/usr/bin/env bash
# Benchmark (not a test): wall time and peak RSS of `<runtime> run` of /bin/true on one
# busybox bundle, for berth-runtime (release build), runc and crun.
#
#   sudo bash scripts/bench-run.sh            # RUNS=100 WARMUP=10 to change the counts
#
# * Every runtime gets its own --root under a temp dir and a container id of its own
#   (bench-<pid>-<runtime>); `run` deletes the container when it exits, and hyperfine's
#   --prepare force-deletes it before every timed run in case a run failed, so ids never
#   collide. Commands run without a shell (hyperfine -N).
# * crun 1.8 refuses hybrid cgroup hosts ("cgroups in hybrid mode not supported"), so its
#   hyperfine runs inside a private mount namespace where /sys/fs/cgroup is a plain
#   cgroup2 mount; berth-runtime and runc run on the host as it is.
# * crun loads a cgroup-v2 device eBPF program and first sets RLIMIT_MEMLOCK to infinity,
#   which fails without CAP_SYS_RESOURCE when the hard limit is finite. In that case the
#   bundle drops `linux.resources` (the default deny-all device rule) - for all three
#   runtimes, so they still share one bundle - and says so.
# * Peak RSS is GNU time's %M (KiB): the largest of the runtime process and the
#   descendants it reaped, median of RSS_RUNS runs.
# A runtime that is missing, does not build or fails a first smoke run is skipped.
set -euo pipefail

cd "$(dirname "$0")/.."

RUNS="${RUNS:-50}"
WARMUP="${WARMUP:-5}"
RSS_RUNS="${RSS_RUNS:-5}"

[[ $(id -u) -eq 0 ]] || { echo "bench-run: needs root" >&2; exit 1; }
for tool in hyperfine jq /usr/bin/time unshare; do
    command -v "$tool" >/dev/null || {
        echo "bench-run: $tool missing (scripts/install-deps.sh)" >&2
        exit 1
    }
done

WORK="$(mktemp -d /tmp/berth-bench.XXXXXX)"
TAG="bench-$$"
declare -A BIN=() ROOT=()

cleanup() {
    set +e
    for rt in "${!BIN[@]}"; do
        "${BIN[$rt]}" --root "${ROOT[$rt]}" delete --force "$TAG-$rt" >/dev/null 2>&1
    done
    find /sys/fs/cgroup -depth -type d -name "$TAG-*" -exec rmdir {} \; 2>/dev/null
    if ! grep -q " $WORK" /proc/self/mountinfo; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# --- the bundle: busybox, `runc spec` defaults, /bin/true, no terminal -------------------
BUNDLE="$WORK/bundle"
mkdir -p "$BUNDLE/rootfs/bin" "$BUNDLE/rootfs/proc" "$BUNDLE/rootfs/sys" "$BUNDLE/rootfs/dev"
cp /bin/busybox "$BUNDLE/rootfs/bin/busybox"
for applet in sh true; do ln -s busybox "$BUNDLE/rootfs/bin/$applet"; done
runc spec --bundle "$BUNDLE"
filter='.process.terminal = false | .process.args = ["/bin/true"]'
cap_eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
has_sys_resource=$(((0x$cap_eff >> 24) & 1))
if [[ $(ulimit -Hl) != unlimited && $has_sys_resource -eq 0 ]]; then
    echo "bench-run: no CAP_SYS_RESOURCE and a finite RLIMIT_MEMLOCK: crun could not load"
    echo "           its device eBPF program, so the bundle drops linux.resources (all runtimes)"
    filter="$filter | del(.linux.resources)"
fi
jq "$filter" "$BUNDLE/config.json" >"$WORK/config.json"
mv "$WORK/config.json" "$BUNDLE/config.json"

# --- the runtimes ---------------------------------------------------------------------
CGROUP2_NS='umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"'
in_cgroup2_ns() { unshare --mount --propagation private sh -c "$CGROUP2_NS" sh "$@"; }

# Runs "$@" for runtime $1 (inside the cgroup2-only namespace for crun).
wrap() {
    local rt=$1
    shift
    if [[ $rt == crun ]]; then in_cgroup2_ns "$@"; else "$@"; fi
}

ORDER=()
add_runtime() {
    local rt=$1 bin=$2
    BIN[$rt]=$bin
    ROOT[$rt]="$WORK/root-$rt"
    mkdir -p "${ROOT[$rt]}"
    local out
    if out=$(wrap "$rt" "$bin" --root "${ROOT[$rt]}" run --bundle "$BUNDLE" "$TAG-$rt" 2>&1); then
        ORDER+=("$rt")
    else
        echo "bench-run: skipping $rt: smoke run failed: $out" >&2
        "$bin" --root "${ROOT[$rt]}" delete --force "$TAG-$rt" >/dev/null 2>&1 || true
    fi
}

if [[ -n "${BERTH_BIN:-}" ]]; then
    add_runtime berth "$BERTH_BIN"
elif berth_bin=$(bash scripts/build-release.sh 2>"$WORK/build.log"); then
    add_runtime berth "$(realpath "$berth_bin")"
else
    echo "bench-run: skipping berth: release build failed:" >&2
    tail -5 "$WORK/build.log" >&2
fi
for rt in runc crun; do
    if bin=$(command -v "$rt"); then add_runtime "$rt" "$bin"; else echo "bench-run: $rt not installed" >&2; fi
done
((${#ORDER[@]})) || { echo "bench-run: no runtime works" >&2; exit 1; }

# --- measure --------------------------------------------------------------------------
declare -A MEDIAN=() MEAN=() STDDEV=() RSS=()
for rt in "${ORDER[@]}"; do
    bin=${BIN[$rt]} root=${ROOT[$rt]} id="$TAG-$rt"
    echo
    echo "==> $rt ($bin)"
    # Not timed; a file because -N has no shell for the `|| true`.
    printf '%q --root %q delete --force %q >/dev/null 2>&1 || true\n' "$bin" "$root" "$id" \
        >"$WORK/prepare-$rt.sh"
    wrap "$rt" hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --style basic \
        --prepare "sh $WORK/prepare-$rt.sh" \
        --export-json "$WORK/$rt.json" \
        --command-name "$rt run /bin/true" \
        "$bin --root $root run --bundle $BUNDLE $id"
    MEDIAN[$rt]=$(jq '.results[0].median * 1000' "$WORK/$rt.json")
    MEAN[$rt]=$(jq '.results[0].mean * 1000' "$WORK/$rt.json")
    STDDEV[$rt]=$(jq '.results[0].stddev * 1000' "$WORK/$rt.json")
    rss=()
    for _ in $(seq "$RSS_RUNS"); do
        rss+=("$(wrap "$rt" /usr/bin/time -f %M -o "$WORK/rss" "$bin" --root "$root" \
            run --bundle "$BUNDLE" "$id" >/dev/null 2>&1 && cat "$WORK/rss" || echo 0)")
    done
    RSS[$rt]=$(printf '%s\n' "${rss[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
done

# --- report ---------------------------------------------------------------------------
echo
echo "run of /bin/true, $RUNS runs each (kernel $(uname -r), $(nproc) CPUs)"
printf '%-8s %12s %18s %14s\n' runtime "median ms" "mean ± sd ms" "peak RSS KiB"
for rt in "${ORDER[@]}"; do
    printf '%-8s %12.2f %11.2f ± %5.2f %14s\n' "$rt" "${MEDIAN[$rt]}" "${MEAN[$rt]}" \
        "${STDDEV[$rt]}" "${RSS[$rt]}"
done
if [[ -n "${MEDIAN[berth]:-}" ]]; then
    for other in runc crun; do
        [[ -n "${MEDIAN[$other]:-}" ]] || continue
        awk -v b="${MEDIAN[berth]}" -v o="${MEDIAN[$other]}" -v rb="${RSS[berth]}" \
            -v ro="${RSS[$other]}" -v n="$other" \
            'BEGIN { printf "berth/%s: time %.2fx, peak RSS %.2fx\n", n, b / o, (ro ? rb / ro : 0) }'
    done
else
    echo "berth: not measured (see above)"
fi
