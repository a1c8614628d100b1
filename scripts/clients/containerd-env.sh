#!/usr/bin/env bash
# A private containerd whose root, state and sockets live under one directory, with
# `ctr` pointed at it; berth-runtime is used through the runc v2 shim, the way
# Kubernetes reaches it through a RuntimeClass (see docs/clients.md).
#
#   bash scripts/clients/containerd-env.sh DIR [RUNTIME]   # starts containerd, waits
#   DIR/ctr images import busybox.tar          (namespace berth-clients-<DIR's name>)
#   DIR/ctr run --rm --runc-binary "$RUNTIME" localhost/berth-busybox:latest c1 echo hi
#   DIR/cleanup                  # kill tasks, stop containerd, unmount, rm -rf DIR
#
# The CRI plugin and the snapshotters that need kernel or disk support we don't use
# are disabled (docs/clients.md shows the CRI configuration Kubernetes needs). Shim sockets go to
# /run/containerd/s/<hash> (containerd 1.6 fixes that path); each is removed when its
# shim exits (cleanup removes /run/containerd/s and /run/containerd if it made them
# and they are empty). `DIR/ctr run` adds --fifo-dir DIR/fifo and --runc-root DIR/runc,
# `DIR/ctr tasks exec` --fifo-dir DIR/fifo, so nothing lands in /run/containerd/{fifo,runc}.
set -euo pipefail
dir=${1:?usage: containerd-env.sh DIR [RUNTIME]}
runtime=${2:-$(command -v berth-runtime || true)}
[[ -n $runtime ]] || { echo "containerd-env: no berth-runtime given or in PATH" >&2; exit 1; }
runtime=$(realpath "$runtime")
mkdir -p "$dir"/{root,state,fifo,tmp,runc}
dir=$(cd "$dir" && pwd)
cgname=berth-clients-$(basename "$dir")
[[ -e /run/containerd/s ]] || touch "$dir/made-run-containerd-s"
[[ -e /run/containerd ]] || touch "$dir/made-run-containerd"

cat >"$dir/config.toml" <<T
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
T

cat >"$dir/ctr" <<W
#!/bin/sh
# namespace $cgname: containers' cgroups are /$cgname/<id>, removed by cleanup
case "\$1 \$2" in
run\ *) shift; exec ctr -a $dir/containerd.sock -n $cgname run --fifo-dir $dir/fifo --runc-root $dir/runc "\$@" ;;
t\ exec | task*\ exec) shift 2; exec ctr -a $dir/containerd.sock -n $cgname tasks exec --fifo-dir $dir/fifo "\$@" ;;
esac
exec ctr -a $dir/containerd.sock -n $cgname "\$@"
W
cat >"$dir/cleanup" <<C
#!/bin/sh
# kill and delete every task and container, stop containerd, unmount, rm -rf
if [ -S $dir/containerd.sock ]; then
    for ns in \$(timeout 10 ctr -a $dir/containerd.sock namespaces ls -q 2>/dev/null); do
        for t in \$(timeout 10 ctr -a $dir/containerd.sock -n \$ns tasks ls -q 2>/dev/null); do
            timeout 10 ctr -a $dir/containerd.sock -n \$ns tasks kill -a -s KILL \$t >/dev/null 2>&1
            timeout 20 ctr -a $dir/containerd.sock -n \$ns tasks delete -f \$t >/dev/null 2>&1
        done
        for c in \$(timeout 10 ctr -a $dir/containerd.sock -n \$ns containers ls -q 2>/dev/null); do
            timeout 20 ctr -a $dir/containerd.sock -n \$ns containers delete \$c >/dev/null 2>&1
        done
    done
fi
pid=\$(cat $dir/containerd.pid 2>/dev/null)
if [ -n "\$pid" ] && kill -0 "\$pid" 2>/dev/null; then
    kill -TERM "\$pid"
    i=0; while kill -0 "\$pid" 2>/dev/null && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i+1)); done
    kill -KILL "\$pid" 2>/dev/null
fi
# shims outlive containerd by design: kill those of this instance
for p in \$(pgrep -f -- "-address $dir/containerd.sock" 2>/dev/null); do kill -KILL "\$p" 2>/dev/null; done
awk -v d="$dir" '\$5 == d || index(\$5, d "/") == 1 { print \$5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "\$m" 2>/dev/null; done
# the cgroups under our own parent (the runtime removes each container's, not parents)
for p in /sys/fs/cgroup/$cgname /sys/fs/cgroup/*/$cgname; do
    [ -d "\$p" ] && find "\$p" -depth -type d -exec rmdir {} + 2>/dev/null
done
# (exiting shims remove their sockets a moment later)
if [ -e $dir/made-run-containerd-s ]; then
    i=0; while [ -d /run/containerd/s ] && [ \$i -lt 30 ]; do
        rmdir /run/containerd/s 2>/dev/null || sleep 0.1; i=\$((i+1))
    done
fi
[ -e $dir/made-run-containerd ] && rmdir /run/containerd 2>/dev/null
rm -rf "$dir"
C
chmod +x "$dir/ctr" "$dir/cleanup"

TMPDIR=$dir/tmp setsid containerd --config "$dir/config.toml" \
    --log-level "${CONTAINERD_LOG_LEVEL:-info}" </dev/null >"$dir/containerd.log" 2>&1 &
echo $! >"$dir/containerd.pid"
for _ in $(seq 1 300); do
    if [[ -S $dir/containerd.sock ]] && "$dir/ctr" version >/dev/null 2>&1; then
        exit 0
    fi
    sleep 0.1
done
echo "containerd-env: containerd did not come up in 30 s; its log:" >&2
tail -n 30 "$dir/containerd.log" >&2
"$dir/cleanup"
exit 1
