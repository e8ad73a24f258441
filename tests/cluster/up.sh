#!/usr/bin/env bash
# Role: brings up a real single-node Kubernetes on this machine from nothing: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd (CRI) and the kubelet,
# pods on a bridge of our own that never routes off the machine. Idempotent; builds what is
# missing (build.sh, images.sh). Logs on stderr; stdout ends with the PATH and KUBECONFIG exports.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
[ "$(id -u)" = 0 ] || { echo "up.sh: needs root" >&2; exit 1; }

S=/var/lib/meshsniff-cluster          # state: certificates, configs, data, logs
R=/run/meshsniff-cluster              # sockets and pid files
NODE=meshsniff-node
APISERVER=https://$NODE_IP:6443
log() { echo "up.sh: $*" >&2; }
die() { log "$*"; exit 1; }

bin=$("$here/build.sh" | tail -n 1)
images=$("$here/images.sh" | tail -n 1)
export PATH=$bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$S"/{pki,logs,etcd,kubelet,containerd,cni/net.d,cni/ipam} "$R"
chmod 0700 "$S" "$S/pki"

# ---- the network: our bridge with the node IP; no forwarding, no masquerade, no route out
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 0 ] \
  || die "net.ipv4.ip_forward is 1 here; the cluster must not route: refusing to start"
ip link show "$CNI_BRIDGE" > /dev/null 2>&1 || ip link add "$CNI_BRIDGE" type bridge
ip addr show dev "$CNI_BRIDGE" | grep -q "inet $NODE_IP/" \
  || ip addr add "$NODE_IP/${POD_SUBNET#*/}" dev "$CNI_BRIDGE"
ip link set "$CNI_BRIDGE" up
# The bridge plugin runs with isGateway false: with true it writes 1 to ip_forward.
cat > "$S/cni/net.d/10-meshsniff.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "meshsniff",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$S/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$NODE_IP"}]]
      }
    },
    {"type": "loopback"}
  ]
}
JSON

# ---- certificates (openssl): one CA signs every serving and client certificate
pki=$S/pki
if [ ! -f "$pki/ca.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=meshsniff-test-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2> /dev/null
fi
cert() {  # name subject [subjectAltName]
  local n=$1 subj=$2 san=${3:-}
  [ -f "$pki/$n.crt" ] && return 0
  openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$pki/$n.key" -out "$pki/$n.csr" 2> /dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi
  } > "$pki/$n.ext"
  openssl x509 -req -in "$pki/$n.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/$n.ext" -out "$pki/$n.crt" 2> /dev/null
  rm -f "$pki/$n.csr" "$pki/$n.ext"
}
svc_ip=${SERVICE_CIDR%.*}.1
cert apiserver "/CN=kube-apiserver" \
  "IP:$NODE_IP,IP:127.0.0.1,IP:$svc_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=meshsniff-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kubelet-client "/O=system:nodes/CN=system:node:$NODE"
cert kubelet "/CN=$NODE" "IP:$NODE_IP,DNS:$NODE"
[ -f "$pki/sa.key" ] || { openssl genrsa -out "$pki/sa.key" 2048 2> /dev/null
                          openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2> /dev/null; }
chmod 0600 "$pki"/*.key

kubeconfig() {  # file user
  local f=$S/$1.kubeconfig u=$2
  cat > "$f" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: meshsniff
  cluster:
    server: $APISERVER
    certificate-authority: $pki/ca.crt
users:
- name: $u
  user:
    client-certificate: $pki/$u.crt
    client-key: $pki/$u.key
contexts:
- name: meshsniff
  context: {cluster: meshsniff, user: $u}
current-context: meshsniff
YAML
  chmod 0600 "$f"
}
kubeconfig admin admin
kubeconfig controller-manager controller-manager
kubeconfig scheduler scheduler
kubeconfig kubelet kubelet-client

# ---- processes: each started once, its pid in $R, its output in $S/logs
running() { [ -f "$R/$1.pid" ] && kill -0 "$(cat "$R/$1.pid")" 2> /dev/null; }
start() {  # name command...
  local n=$1; shift
  if running "$n"; then return 0; fi
  log "starting $n"
  setsid "$@" >> "$S/logs/$n.log" 2>&1 < /dev/null &
  echo $! > "$R/$n.pid"
}
wait_for() {  # what seconds command...
  local what=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 2; i++)); do
    "$@" > /dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "$what not ready after ${secs}s"
  return 1
}
fail_log() { tail -n 30 "$S/logs/$1.log" >&2; die "$1 did not come up"; }

start etcd etcd --name meshsniff --data-dir "$S/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster meshsniff=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --quota-backend-bytes 1073741824 --log-level warn
wait_for etcd 60 curl -fsS http://127.0.0.1:2381/health || fail_log etcd

start kube-apiserver kube-apiserver \
  --etcd-servers http://127.0.0.1:2379 \
  --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$pki/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC \
  --enable-admission-plugins NodeRestriction,PodSecurity \
  --allow-privileged=true --profiling=false --v=1
wait_for kube-apiserver 120 kubectl --kubeconfig "$S/admin.kubeconfig" get --raw /readyz \
  || fail_log kube-apiserver

start kube-controller-manager kube-controller-manager \
  --kubeconfig "$S/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$S/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$S/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --v=1
start kube-scheduler kube-scheduler \
  --kubeconfig "$S/scheduler.kubeconfig" \
  --authentication-kubeconfig "$S/scheduler.kubeconfig" \
  --authorization-kubeconfig "$S/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --v=1

# ---- containerd: its own root, state, socket and config (cgroupfs, our pause image, our CNI)
cat > "$S/containerd/config.toml" <<TOML
version = 2
root = "$S/containerd/root"
state = "$R/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.grpc.v1.opt"]
[grpc]
  address = "$R/containerd.sock"
[ttrpc]
  address = "$R/containerd.sock.ttrpc"
[debug]
  address = "$R/containerd-debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  # lowering oom_score_adj below 0 is refused here (EACCES); the pause container asks for
  # -998 and runc fails with "can't get final child's PID from pipe: EOF": clamp to ours
  restrict_oom_score_adj = true
  # pod network namespaces under $R (down.sh unmounts them there), not in /run/netns
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$R/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$S/cni/net.d"
    max_conf_num = 1
  # Every registry is a closed port on loopback: a pod naming an image the node lacks fails at
  # once ("connection refused" to 127.0.0.1:9), and containerd never looks a registry up nor
  # dials off the machine (the network rule; a helper pod with IfNotPresent did once).
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$S/containerd/certs.d"
TOML
mkdir -p "$S/containerd/certs.d/_default" "$S/containerd/certs.d/docker.io"
for d in _default docker.io; do
  cat > "$S/containerd/certs.d/$d/hosts.toml" <<TOML
server = "http://127.0.0.1:9"
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
TOML
done
start containerd containerd --config "$S/containerd/config.toml"
ctr() { command ctr --address "$R/containerd.sock" "$@"; }
wait_for containerd 60 ctr version || fail_log containerd

# ---- images: imported into the CRI's namespace (k8s.io); the helper image when release/ made it
for f in pause web curl busybox; do
  ctr -n k8s.io images import "$images/$f.tar" > /dev/null
done
ctr -n k8s.io images tag --force "$BUSYBOX_IMAGE" "$UPLOAD_DEFAULT_IMAGE" > /dev/null
# MESHSNIFF_HELPER_IMAGE names another archive (e.g. one built in another checkout).
helper_tar=${MESHSNIFF_HELPER_IMAGE:-$repo/release/out/image/meshsniff-oci.tar}
if [ -f "$helper_tar" ]; then
  "$here/import.sh" "$helper_tar"
else
  log "no helper image: $helper_tar is missing (release/build.sh makes it; tests/cluster/import.sh imports one later); the plugin's default --image is not in the cluster"
fi

# ---- kubelet
cat > "$S/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
containerRuntimeEndpoint: unix://$R/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: ""
clusterDomain: cluster.local
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
YAML
# The kubelet sets these to its defaults (protectKernelDefaults off); down.sh puts back the
# values seen before the first start.
if [ ! -f "$S/sysctl.orig" ]; then
  for k in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
           kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
    echo "$k=$(sysctl -n "$k")"
  done > "$S/sysctl.orig"
fi
start kubelet kubelet --config "$S/kubelet/config.yaml" --kubeconfig "$S/kubelet.kubeconfig" \
  --root-dir "$S/kubelet" --cert-dir "$S/kubelet/pki" --hostname-override "$NODE" \
  --node-ip "$NODE_IP" --v=1

export KUBECONFIG=$S/admin.kubeconfig
node_ready() {
  [ "$(kubectl get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
wait_for "node $NODE" 180 node_ready || fail_log kubelet
wait_for "the default service account" 120 kubectl get serviceaccount default -n default \
  || fail_log kube-controller-manager
log "node $NODE is Ready ($(kubectl version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -n 1))"
echo "export PATH=$bin:\$PATH"
echo "export KUBECONFIG=$S/admin.kubeconfig"
