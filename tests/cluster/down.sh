#!/usr/bin/env bash
# Role: takes down what up.sh made: every process (components, shims, container processes),
# mount (container rootfs, overlay, shm, kubelet volumes, pod netns), network namespace, veth,
# the bridge, the kubelet's KUBE-* iptables chains, its cgroups and the state directories.
# Idempotent; leaves the build and image caches alone.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
[ "$(id -u)" = 0 ] || { echo "down.sh: needs root" >&2; exit 1; }
S=/var/lib/meshsniff-cluster
R=/run/meshsniff-cluster
log() { echo "down.sh: $*" >&2; }

# A pid from our pid file, only while it still runs the program we started.
ours() {  # name -> pid or nothing
  local f=$R/$1.pid p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' < "/proc/$p/cmdline" | grep -q "$1"; then echo "$p"; fi
}
stop() {  # name: TERM, up to 10 s, then KILL
  local n=$1 p i
  p=$(ours "$n")
  [ -n "$p" ] || { rm -f "$R/$n.pid"; return 0; }
  log "stopping $n ($p)"
  kill -TERM "$p" 2> /dev/null
  for ((i = 0; i < 20; i++)); do kill -0 "$p" 2> /dev/null || break; sleep 0.5; done
  kill -KILL "$p" 2> /dev/null
  rm -f "$R/$n.pid"
}

stop kubelet
stop kube-scheduler
stop kube-controller-manager

# Container processes: everything in the kubelet's cgroups, then containerd's tasks and shims.
kill_cgroup_procs() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2> /dev/null | sort -u | while read -r p; do
      kill -KILL "$p" 2> /dev/null
    done
  done
}
sandboxes=
if [ -S "$R/containerd.sock" ] && [ -n "$(ours containerd)" ]; then
  sandboxes=$(ctr --address "$R/containerd.sock" -n k8s.io containers ls -q 2> /dev/null)
  for t in $(ctr --address "$R/containerd.sock" -n k8s.io tasks ls -q 2> /dev/null); do
    ctr --address "$R/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$t" > /dev/null 2>&1
  done
fi
kill_cgroup_procs
sleep 1
for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $R/containerd.sock" || true); do
  kill -KILL "$p" 2> /dev/null
done
stop containerd
stop kube-apiserver
stop etcd
kill_cgroup_procs

# Mounts under our directories (deepest first), then the pod network namespaces that carry
# an address of our pod subnet.
umount_under() {
  local m
  awk '{print $5}' /proc/self/mountinfo | grep -E "^$1(/|$)" | sort -r | while read -r m; do
    umount -l "$m" 2> /dev/null || log "could not unmount $m"
  done
}
umount_under "$R"
umount_under "$S"
prefix=${POD_SUBNET%.*}.
for ns in $(ip netns list 2> /dev/null | awk '/^cni-/ {print $1}'); do
  if ip -n "$ns" -4 -o addr show 2> /dev/null | grep -q " inet ${prefix//./\\.}"; then
    log "removing network namespace $ns"
    ip netns delete "$ns" 2> /dev/null || { umount -l "/run/netns/$ns"; rm -f "/run/netns/$ns"; }
  fi
done

# The veths still on our bridge, then the bridge.
if ip link show "$CNI_BRIDGE" > /dev/null 2>&1; then
  for v in $(ip -o link show master "$CNI_BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$v" 2> /dev/null
  done
  ip link delete "$CNI_BRIDGE"
  log "removed bridge $CNI_BRIDGE"
fi

# The kubelet's iptables chains (KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT, ...): nothing else
# here writes KUBE-* chains. The CNI config has no ipMasq and no portmap, so it adds none.
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
  command -v "$ipt" > /dev/null || continue
  for table in filter nat mangle; do
    chains=$("$ipt" -t "$table" -S 2> /dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}')
    [ -n "$chains" ] || continue
    for c in $chains; do "$ipt" -t "$table" -F "$c" 2> /dev/null; done
    "$ipt" -t "$table" -S 2> /dev/null | grep -E '^-A .* -j KUBE-' | while read -r rule; do
      # shellcheck disable=SC2086
      "$ipt" -t "$table" ${rule/-A/-D} 2> /dev/null
    done
    for c in $chains; do "$ipt" -t "$table" -X "$c" 2> /dev/null; done
    log "removed $ipt $table chains: $(echo $chains)"
  done
done

# The kubelet's cgroups (empty now), deepest first.
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods; do
  [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2> /dev/null
done

# The kernel settings the kubelet changed, as they were before up.sh first started it.
if [ -f "$S/sysctl.orig" ]; then
  while IFS= read -r kv; do sysctl -q -w "$kv" > /dev/null 2>&1 || log "could not restore $kv"; done < "$S/sysctl.orig"
fi
rm -rf "$S" "$R" /var/lib/cni/results/meshsniff-* 2> /dev/null
# libcni's result cache (its default /var/lib/cni) for our sandboxes, the CRI's cni-loopback
# too; a sandbox whose creation failed is no longer listed but leaves its cni-loopback entry,
# and no other CRI runtime runs on these machines: all cni-loopback entries go.
for id in $sandboxes; do rm -f /var/lib/cni/results/*-"$id"-*; done
rm -f /var/lib/cni/results/cni-loopback-*
rmdir /var/lib/cni/results /var/lib/cni 2> /dev/null
# containerd 1.6's shims put their sockets in /run/containerd/s whatever the state dir; a
# killed shim leaves its socket: remove those nothing listens on, then the empty directories.
for f in /run/containerd/s/*; do
  [ -S "$f" ] || continue
  ss -xlH 2> /dev/null | grep -qF "$f" || rm -f "$f"
done
rmdir /run/containerd/s /run/containerd/fifo /run/containerd 2> /dev/null
left=$(awk '{print $5}' /proc/self/mountinfo | grep -cE "^($S|$R)(/|$)" || true)
[ "$left" = 0 ] || log "$left mounts are still under $S or $R"
log "done"
