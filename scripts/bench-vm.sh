#!/usr/bin/env bash
# Benchmark (not a test) of `berth run --isolation vm`:
#
#   sudo bash scripts/bench-vm.sh        # RUNS=10 WARMUP=1 VMS=10 to change the counts
#
# 1. Wall time (hyperfine -N, medians) of
#      - a bare `qemu-system-x86_64 -M microvm` boot of the same kernel, same accelerator
#        and memory, with a minimal busybox initramfs whose /init powers off at once;
#      - `berth run --rm --isolation vm busybox true` (image, base disk and initramfs
#        cached by a first run);
#      - `berth run --rm --isolation container busybox true`, and `process` if it works.
#    and the ratio berth-vm / bare boot.
# 2. Host memory of one running VM (`run -d ... sleep`): QEMU's RSS and PSS
#    (/proc/PID/smaps_rollup) and KSM-merged pages (/proc/PID/ksm_merging_pages).
# 3. Disk use of VMS running VMs of one image: their qcow2 overlays plus the one base
#    disk, against VMS full copies of the base (du, allocated blocks).
# Release builds of berth and the static guest agent; everything under a temp root.
set -euo pipefail

cd "$(dirname "$0")/.."

RUNS="${RUNS:-10}"
WARMUP="${WARMUP:-1}"
VMS="${VMS:-10}"

[[ $(id -u) -eq 0 ]] || { echo "bench-vm: needs root" >&2; exit 1; }
for tool in hyperfine jq python3 qemu-system-x86_64 qemu-img mkfs.ext4; do
    command -v "$tool" >/dev/null || {
        echo "bench-vm: $tool missing (scripts/install-deps.sh)" >&2
        exit 1
    }
done
bash scripts/fetch-kernel.sh >/dev/null
KERNEL_DIR="${BERTH_KERNEL_DIR:-/var/cache/berth/kernel}"

target="${CARGO_TARGET_DIR:-$PWD/target}"
triple="$(uname -m)-unknown-linux-gnu"
echo "bench-vm: building release berth and the static guest agent" >&2
cargo build --quiet --release -p berth
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
    -p berth-guest-agent --target "$triple" --target-dir "$target/guest-agent"
BERTH="$target/release/berth"
export BERTH_GUEST_AGENT="$target/guest-agent/$triple/release/berth-guest-agent"

WORK="$(mktemp -d /tmp/berth-bench-vm.XXXXXX)"
ROOT="$WORK/root"
cleanup() {
    set +e
    for d in "$ROOT"/containers/*; do
        [[ -d $d ]] && "$BERTH" --root "$ROOT" rm -f "$(basename "$d")" >/dev/null 2>&1
    done
    grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
b() { "$BERTH" --root "$ROOT" "$@"; }

# The accelerator berth picks (TCG when /dev/kvm cannot boot a stock kernel).
ACCEL="${BERTH_VM_ACCEL:-$(python3 - <<'EOF'
import os
flags = open("/proc/cpuinfo").read()
vt = " vmx " in flags or " svm " in flags
try:
    os.close(os.open("/dev/kvm", os.O_RDWR)); kvm = True
except OSError:
    kvm = False
print("kvm" if vt and kvm else "tcg")
EOF
)}"
echo "bench-vm: accelerator $ACCEL" >&2

# A minimal initramfs: static busybox and an /init that powers off at once.
python3 - "$WORK/bare.cpio" <<'EOF'
import sys
out = open(sys.argv[1], "wb")
ino = [0]
def entry(name, mode, data=b"", rdev=(0, 0)):
    ino[0] += 1
    n = name.encode() + b"\0"
    fields = [ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(n), 0]
    out.write(b"070701" + b"".join(b"%08x" % f for f in fields) + n)
    out.write(b"\0" * (-(110 + len(n)) % 4))
    out.write(data + b"\0" * (-len(data) % 4))
entry("dev", 0o40755)
entry("dev/console", 0o20600, rdev=(5, 1))
entry("bin", 0o40755)
entry("bin/busybox", 0o100755, open("/bin/busybox", "rb").read())
entry("init", 0o100755, b"#!/bin/busybox sh\nexec /bin/busybox poweroff -f\n")
entry("TRAILER!!!", 0)
out.write(b"\0" * (-out.tell() % 512))
EOF
tsc_khz=$(awk -F: '/^cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
accel_arg="$ACCEL"
[[ $ACCEL == tcg ]] && accel_arg="tcg,tb-size=128"
BARE=(qemu-system-x86_64 -machine microvm,mem-merge=on -accel "$accel_arg" -nodefaults
    -no-user-config -nographic -no-reboot -m 256 -smp 1
    -kernel "$KERNEL_DIR/vmlinux" -initrd "$WORK/bare.cpio"
    -append "console=ttyS0 quiet panic=-1 rdinit=/init tsc_early_khz=$tsc_khz 8250.nr_uarts=1 i8042.noaux i8042.nokbd"
    -serial "file:$WORK/bare-console.log")
[[ $ACCEL == kvm ]] && BARE+=(-cpu host)
"${BARE[@]}" || { echo "bench-vm: the bare boot failed" >&2; exit 1; }

# First runs: image, snapshots, initramfs and base disk made and cached.
b run --rm --isolation vm --accel "$ACCEL" busybox true
b run --rm --isolation container busybox true
cmds=(-n bare-qemu-boot "$(printf "%q " "${BARE[@]}")"
    -n berth-vm "$BERTH --root $ROOT run --rm --isolation vm --accel $ACCEL busybox true"
    -n berth-container "$BERTH --root $ROOT run --rm --isolation container busybox true")
if b run --rm --isolation process busybox true 2>/dev/null; then
    cmds+=(-n berth-process "$BERTH --root $ROOT run --rm --isolation process busybox true")
else
    echo "bench-vm: --isolation process does not work here: not measured" >&2
fi
hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --export-json "$WORK/times.json" "${cmds[@]}" >&2
echo
echo "== wall time, median of $RUNS, and CPU time (user+sys, mean) (accelerator $ACCEL, load average $(cut -d' ' -f1-3 /proc/loadavg))"
jq -r '.results[] | "\(.command)\t\(.median * 1000 | floor) ms\tcpu \((.user + .system) * 1000 | floor) ms"' "$WORK/times.json"
jq -r '(.results | map({(.command): .}) | add) as $m
    | "ratio berth-vm / bare boot: wall \($m["berth-vm"].median / $m["bare-qemu-boot"].median * 100 | floor / 100), cpu \(($m["berth-vm"].user + $m["berth-vm"].system) / ($m["bare-qemu-boot"].user + $m["bare-qemu-boot"].system) * 100 | floor / 100)"' \
    "$WORK/times.json"

# The host is shared: its load moves between hyperfine's batches. Alternate the two
# boots too, and compare medians of pairs run back to back.
echo
echo "== interleaved: $RUNS pairs, bare boot then berth-vm, wall seconds"
bare_t=() vm_t=()
for _ in $(seq "$RUNS"); do
    s=$(date +%s%N); "${BARE[@]}"; e=$(date +%s%N); bare_t+=($(((e - s) / 1000000)))
    s=$(date +%s%N); b run --rm --isolation vm --accel "$ACCEL" busybox true; e=$(date +%s%N)
    vm_t+=($(((e - s) / 1000000)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mb=$(median "${bare_t[@]}") mv=$(median "${vm_t[@]}")
echo "bare-qemu-boot median $mb ms; berth-vm median $mv ms; ratio $(awk -v a="$mv" -v b="$mb" 'BEGIN {printf "%.2f", a / b}')"

echo
echo "== host memory of one running VM (256 MiB guest, busybox sleep)"
id=$(b run -d --isolation vm --accel "$ACCEL" busybox sleep 3600)
sleep 2
pid=$(jq -r .pid "$ROOT/vm/$id/state.json")
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")
ksm=$(cat "/proc/$pid/ksm_merging_pages" 2>/dev/null || echo n/a)
echo "qemu RSS ${rss} KiB, PSS ${pss} KiB, KSM merged pages $ksm (ksm run=$(cat /sys/kernel/mm/ksm/run 2>/dev/null || echo n/a))"
b rm -f "$id" >/dev/null

echo
echo "== disk: $VMS running VMs of one image"
ids=()
for _ in $(seq "$VMS"); do
    ids+=("$(b run -d --isolation vm --accel "$ACCEL" --memory 128m busybox sh -c 'echo x > /root/f; sleep 3600')")
done
sleep 2
base=$(ls "$ROOT"/vm/cache/base-*.ext4)
base_kib=$(du -k "$base" | cut -f1)
overlays_kib=$(du -ck "$ROOT"/vm/*/root.qcow2 | tail -1 | cut -f1)
echo "base disk $base_kib KiB (apparent $(du -k --apparent-size "$base" | cut -f1) KiB); $VMS overlays $overlays_kib KiB"
echo "shared: $((base_kib + overlays_kib)) KiB vs $VMS full copies: $((VMS * base_kib)) KiB"
for id in "${ids[@]}"; do b rm -f "$id" >/dev/null; done
echo
echo "command: sudo bash scripts/bench-vm.sh (RUNS=$RUNS WARMUP=$WARMUP VMS=$VMS)"
