#!/usr/bin/env bash
# A private dockerd (and the containerd it starts itself) whose every byte lives under
# one directory, with berth-runtime registered as the runtime "berth".
#
#   bash scripts/clients/docker-env.sh DIR [RUNTIME]     # starts dockerd, waits for it
#   DIR/docker load -i busybox.tar
#   DIR/docker run --runtime berth --network none --rm localhost/berth-busybox echo hi
#   DIR/cleanup                   # remove containers, stop dockerd, unmount, rm -rf DIR
#
# The host network is never touched: --bridge none, --iptables=false, --ip-forward=false
# (dockerd turns net.ipv4.ip_forward on otherwise),
# --ip6tables=false, --ip-masq=false, no userland proxy; containers use
# --network none. The cgroup driver is cgroupfs (berth refuses --systemd-cgroup), and
# containers' cgroups go under /berth-clients-<DIR's name> (removed by cleanup);
# --config-file points at our own file so /etc/docker/daemon.json is ignored.
# DOCKER_CLI picks the client (default: /usr/bin/docker if present, else docker).
set -euo pipefail
dir=${1:?usage: docker-env.sh DIR [RUNTIME]}
runtime=${2:-$(command -v berth-runtime || true)}
[[ -n $runtime ]] || { echo "docker-env: no berth-runtime given or in PATH" >&2; exit 1; }
runtime=$(realpath "$runtime")
mkdir -p "$dir"/{data,exec,tmp}
dir=$(cd "$dir" && pwd)
cgname=berth-clients-$(basename "$dir")
cli=${DOCKER_CLI:-$( [[ -x /usr/bin/docker ]] && echo /usr/bin/docker || echo docker )}
# deprecated-key-path: else dockerd 20.10 writes its trust key to /etc/docker/key.json
printf '{"deprecated-key-path": "%s/key.json"}\n' "$dir" >"$dir/daemon.json"
# dockerd 20.10 always makes /run/docker/plugins; cleanup removes it if we made it
[[ -e /run/docker ]] || touch "$dir/made-run-docker"

cat >"$dir/docker" <<W
#!/bin/sh
export DOCKER_CONFIG=$dir/cli
exec $cli -H unix://$dir/docker.sock "\$@"
W
cat >"$dir/cleanup" <<C
#!/bin/sh
# remove containers, stop dockerd (and its containerd), unmount, rm -rf
if [ -S $dir/docker.sock ]; then
    ids=\$(timeout 20 $dir/docker ps -aq 2>/dev/null)
    [ -n "\$ids" ] && timeout 60 $dir/docker rm -f \$ids >/dev/null 2>&1
fi
pid=\$(cat $dir/dockerd.pid 2>/dev/null)
if [ -n "\$pid" ] && kill -0 "\$pid" 2>/dev/null; then
    kill -TERM "\$pid"
    i=0; while kill -0 "\$pid" 2>/dev/null && [ \$i -lt 150 ]; do sleep 0.1; i=\$((i+1)); done
    kill -KILL "\$pid" 2>/dev/null
fi
# the containerd and shims dockerd started, if any outlived it (matched by our dir)
for p in \$(pgrep -f -- "$dir/" 2>/dev/null); do
    [ "\$p" != "\$\$" ] && kill -KILL "\$p" 2>/dev/null
done
awk -v d="$dir" '\$5 == d || index(\$5, d "/") == 1 { print \$5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "\$m" 2>/dev/null; done
# the cgroups under our own parent (the runtime removes each container's, not parents)
for p in /sys/fs/cgroup/$cgname /sys/fs/cgroup/*/$cgname; do
    [ -d "\$p" ] && find "\$p" -depth -type d -exec rmdir {} + 2>/dev/null
done
[ -e $dir/made-run-docker ] && rmdir /run/docker/plugins /run/docker 2>/dev/null
rm -rf "$dir"
C
chmod +x "$dir/docker" "$dir/cleanup"

TMPDIR=$dir/tmp setsid dockerd \
    --config-file "$dir/daemon.json" \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "unix://$dir/docker.sock" \
    --bridge none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
    --userland-proxy=false \
    --storage-driver overlay2 --exec-opt native.cgroupdriver=cgroupfs \
    --add-runtime "berth=$runtime" --cgroup-parent "/$cgname" \
    --log-level "${DOCKERD_LOG_LEVEL:-info}" \
    </dev/null >"$dir/dockerd.log" 2>&1 &

for _ in $(seq 1 300); do
    if [[ -S $dir/docker.sock ]] && "$dir/docker" version >/dev/null 2>&1; then
        exit 0
    fi
    sleep 0.1
done
echo "docker-env: dockerd did not come up in 30 s; its log:" >&2
tail -n 30 "$dir/dockerd.log" >&2
"$dir/cleanup"
exit 1
