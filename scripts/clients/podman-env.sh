#!/usr/bin/env bash
# A private, rootful Podman whose every byte lives under one directory.
#
#   bash scripts/clients/podman-env.sh DIR [RUNTIME] [--no-ulimits]
#   DIR/podman load -i busybox.tar
#   DIR/podman run --rm localhost/berth-busybox echo hi
#   DIR/cleanup                  # remove containers, unmount, rm -rf DIR
#
# DIR gets the storage (root, runroot, tmpdir), a containers.conf, a storage.conf, an
# empty registries.conf (nothing is ever pulled), and two scripts: `podman` (podman
# with all of that and `--runtime RUNTIME`, default berth-runtime; `run` and `create`
# get --cgroup-parent /berth-clients-<DIR's name>) and `cleanup`.
# containers.conf picks cgroupfs (berth refuses --systemd-cgroup), the file events
# logger, no network namespace setup (netns="none": no netavark/CNI, host network
# untouched), and default_ulimits within this machine's hard limits: without it Podman
# asks for nofile=1048576, and a runtime lacking CAP_SYS_RESOURCE cannot raise a hard
# limit. --no-ulimits leaves default_ulimits out, to see that failure.
set -euo pipefail
dir=${1:?usage: podman-env.sh DIR [RUNTIME] [--no-ulimits]}
runtime=${2:-berth-runtime}
mkdir -p "$dir"/{root,runroot,tmp}
dir=$(cd "$dir" && pwd)
cgname=berth-clients-$(basename "$dir")
if [[ $runtime == */* ]]; then runtime=$(realpath "$runtime"); fi
{
    echo '[containers]'
    if [[ ${3:-} != --no-ulimits ]]; then
        echo "default_ulimits = [\"nofile=$(ulimit -Hn):$(ulimit -Hn)\", \"nproc=4096:4096\"]"
    fi
    echo 'netns = "none"'
    echo 'log_driver = "k8s-file"'
    echo '[engine]'
    echo 'cgroup_manager = "cgroupfs"'
    echo 'events_logger = "file"'
    echo "events_logfile_path = \"$dir/events.log\""
    echo "tmp_dir = \"$dir/tmp\""
    echo "volume_path = \"$dir/root/volumes\""
} >"$dir/containers.conf"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/root"\nrunroot = "%s/runroot"\n' \
    "$dir" "$dir" >"$dir/storage.conf"
: >"$dir/registries.conf"

cat >"$dir/podman" <<W
#!/bin/sh
export CONTAINERS_CONF=$dir/containers.conf
export CONTAINERS_STORAGE_CONF=$dir/storage.conf
export CONTAINERS_REGISTRIES_CONF=$dir/registries.conf
# containers' cgroups go under /$cgname, which cleanup removes
case "\$1" in
run | create) verb=\$1; shift; set -- "\$verb" --cgroup-parent /$cgname "\$@" ;;
esac
exec podman --root $dir/root --runroot $dir/runroot --tmpdir $dir/tmp \\
    --storage-driver overlay --cgroup-manager cgroupfs --events-backend file \\
    --runtime $runtime "\$@"
W
cat >"$dir/cleanup" <<C
#!/bin/sh
# remove every container, unmount what is left under $dir (deepest first), rm -rf it
timeout 60 $dir/podman rm -af -t 0 >/dev/null 2>&1
timeout 60 $dir/podman system reset -f >/dev/null 2>&1
awk -v d="$dir" '\$5 == d || index(\$5, d "/") == 1 { print \$5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "\$m" 2>/dev/null; done
# the cgroups under our own parent (the runtime removes each container's, not parents)
for p in /sys/fs/cgroup/$cgname /sys/fs/cgroup/*/$cgname; do
    [ -d "\$p" ] && find "\$p" -depth -type d -exec rmdir {} + 2>/dev/null
done
rm -rf "$dir"
C
chmod +x "$dir/podman" "$dir/cleanup"
