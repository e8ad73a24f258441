#!/usr/bin/env bash
# Role: the Istio-style seed story on the test cluster: imports the istio-init and proxy images
# (mesh-images.sh), makes a private CA and SPIFFE certificates (openssl), and creates namespace
# MESH_NAMESPACE with a server pod (web + istio-proxy, Envoy as uid 1337, istio-iptables as
# init container), a client pod with its own sidecar and a client without one.
#   tests/cluster/mesh.sh up      # idempotent; waits until the three pods are Ready
#   tests/cluster/mesh.sh down    # deletes the namespace
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
# shellcheck source=mesh.env
. "$here/mesh.env"
export KUBECONFIG=${KUBECONFIG:-/var/lib/meshsniff-cluster/admin.kubeconfig}
sock=${MESHSNIFF_CONTAINERD_SOCK:-/run/meshsniff-cluster/containerd.sock}
log() { echo "mesh.sh: $*" >&2; }
die() { log "$*"; exit 1; }
ns=$MESH_NAMESPACE

if [ "${1:-}" = down ]; then
  kubectl delete namespace "$ns" --ignore-not-found --wait=true --timeout=120s >&2
  exit 0
fi
[ "${1:-}" = up ] || die "usage: mesh.sh up|down"

# ---- images: into containerd's CRI namespace, once
images=$("$here/mesh-images.sh" | tail -n 1)
for f in istio-init:$ISTIO_INIT_IMAGE proxy:$PROXY_IMAGE; do
  ref=${f#*:}
  if ! ctr --address "$sock" -n k8s.io images ls -q | grep -qx "$ref"; then
    ctr --address "$sock" -n k8s.io images import "$images/${f%%:*}.tar" > /dev/null
    log "imported $ref"
  fi
done

# ---- certificates: a private CA, one SPIFFE identity per service account (Istio's file names)
pki=${MESHSNIFF_MESH_PKI:-/var/lib/meshsniff-cluster/mesh-pki}
mkdir -p "$pki"; chmod 0700 "$pki"
td=cluster.local
if [ ! -f "$pki/root-cert.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/O=$td" -keyout "$pki/ca.key" -out "$pki/root-cert.pem" 2> /dev/null
fi
for sa in server client; do
  d=$pki/$sa
  [ -f "$d/cert-chain.pem" ] && continue
  mkdir -p "$d"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/" \
    -keyout "$d/key.pem" -out "$d/csr.pem" 2> /dev/null
  printf 'subjectAltName=critical,URI:spiffe://%s/ns/%s/sa/%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' \
    "$td" "$ns" "$sa" > "$d/ext"
  openssl x509 -req -in "$d/csr.pem" -CA "$pki/root-cert.pem" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 3650 -extfile "$d/ext" -out "$d/cert-chain.pem" 2> /dev/null
  cp "$pki/root-cert.pem" "$d/root-cert.pem"
done

# ---- the namespace (privileged: istio-init needs NET_ADMIN and NET_RAW, as without Istio CNI)
kubectl apply -f - >&2 <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels:
    pod-security.kubernetes.io/enforce: privileged
    istio-injection: disabled
YAML
for sa in server client; do
  kubectl -n "$ns" create secret generic "istio-certs-$sa" --dry-run=client -o yaml \
    --from-file="$pki/$sa/cert-chain.pem" --from-file="$pki/$sa/key.pem" \
    --from-file="$pki/$sa/root-cert.pem" | kubectl apply -f - >&2
done

# ---- the sidecars' bootstraps: captures/mesh/envoy/sidecar.yaml (the mesh lab's), rendered
# here except POD_IP, which the container fills in from the downward API (into the emptyDir
# where pilot-agent would write its envoy-rev file: Istio's istio-envoy volume).
boot=$repo/captures/mesh/envoy/sidecar.yaml
[ -f "$boot" ] || die "$boot is missing (the mesh lab's Envoy bootstrap)"
render() {  # peer-san
  CERT_DIR=/etc/certs LOG_DIR=/var/log/istio-proxy PEER_SAN=$1 \
  UPSTREAM_SAN="spiffe://$td/ns/$ns/sa/server" SERVICE_FQDN="server.$ns.svc.cluster.local" \
  HTTP_PORT=8080 TCP12_PORT=8081 PERMISSIVE_PORT=8082 INBOUND_BIND=127.0.0.6 ADMIN_PORT=15000 \
  envsubst '$CERT_DIR $LOG_DIR $PEER_SAN $UPSTREAM_SAN $SERVICE_FQDN $HTTP_PORT $TCP12_PORT $PERMISSIVE_PORT $INBOUND_BIND $ADMIN_PORT' < "$boot"
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
render "spiffe://$td/ns/$ns/sa/client" > "$tmp/server.yaml"
render "spiffe://$td/ns/$ns/sa/client" > "$tmp/client.yaml"
for p in server client; do
  kubectl -n "$ns" create configmap "istio-proxy-$p" --dry-run=client -o yaml \
    --from-file=envoy.yaml="$tmp/$p.yaml" | kubectl apply -f - >&2
done

# ---- the pods. istio-init's arguments are those Istio's sidecar injector writes
# (manifests/charts/istio-control/istio-discovery/files/injection-template.yaml), with
# excludeInboundPorts 9090 added to -d on the server.
pod() {  # name sa app-image app-command-json exclude-annotation extra-d app-container app-label
  cat <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: $2, namespace: $ns}
automountServiceAccountToken: false
---
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: $ns
  labels: {app: $8, security.istio.io/tlsMode: istio, service.istio.io/canonical-name: $8}
  annotations: {traffic.sidecar.istio.io/excludeInboundPorts: "$5"}
spec:
  serviceAccountName: $2
  automountServiceAccountToken: false
  dnsPolicy: None
  dnsConfig: {nameservers: [127.0.0.1]}
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: istio-init
    image: $ISTIO_INIT_IMAGE
    imagePullPolicy: Never
    args: [-p, "15001", -z, "15006", -u, "1337", -m, REDIRECT, -i, "*", -x, "", -b, "*", -d, "15090,15021,15020$6", --log_output_level=default:info]
    securityContext:
      runAsUser: 0
      runAsGroup: 0
      runAsNonRoot: false
      privileged: false
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}
  containers:
  - name: $7
    image: $3
    imagePullPolicy: Never
    command: $4
  - name: istio-proxy
    image: $PROXY_IMAGE
    imagePullPolicy: Never
    command: [/bin/sh, -c]
    args:
    - sed "s/\\\${POD_IP}/\$POD_IP/g" /etc/istio/bootstrap/envoy.yaml > /etc/istio/proxy/envoy-rev.yaml &&
      exec /usr/local/bin/envoy -c /etc/istio/proxy/envoy-rev.yaml --disable-hot-restart --concurrency 1 -l warning
    env:
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    ports:
    - {name: http-envoy-prom, containerPort: 15090}
    readinessProbe:
      httpGet: {path: /healthz/ready, port: 15021}
      periodSeconds: 2
      failureThreshold: 30
    securityContext:
      runAsUser: 1337
      runAsGroup: 1337
      runAsNonRoot: true
      allowPrivilegeEscalation: false
      privileged: false
      readOnlyRootFilesystem: false
      capabilities: {drop: [ALL]}
    volumeMounts:
    - {name: istio-certs, mountPath: /etc/certs, readOnly: true}
    - {name: istio-proxy-config, mountPath: /etc/istio/bootstrap, readOnly: true}
    - {name: istio-envoy, mountPath: /etc/istio/proxy}
    - {name: istio-logs, mountPath: /var/log/istio-proxy}
  volumes:
  - name: istio-certs
    secret: {secretName: istio-certs-$2, defaultMode: 0444}
  - name: istio-proxy-config
    configMap: {name: istio-proxy-$1}
  - name: istio-logs
    emptyDir: {}
  - name: istio-envoy
    emptyDir: {}
YAML
}
{
  pod server server "$WEB_IMAGE" \
    '[/bin/sh, -c, "cd /srv && python3 -m http.server 9090 & cd /srv && exec python3 -m http.server 8080"]' \
    "15090,15021,15020,9090" ",9090" web web
  echo ---
  pod client client "$CURL_IMAGE" '[/bin/busybox, sleep, "100000"]' "15090,15021,15020" "" curl client
  echo ---
  cat <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: plain
  namespace: $ns
  labels: {app: plain, sidecar.istio.io/inject: "false"}
  annotations: {sidecar.istio.io/inject: "false"}
spec:
  automountServiceAccountToken: false
  dnsPolicy: None
  dnsConfig: {nameservers: [127.0.0.1]}
  terminationGracePeriodSeconds: 2
  containers:
  - name: curl
    image: $CURL_IMAGE
    imagePullPolicy: Never
    command: [/bin/busybox, sleep, "100000"]
YAML
} > "$tmp/pods.yaml"
kubectl apply -f "$tmp/pods.yaml" >&2
kubectl -n "$ns" wait --for=condition=Ready pod/server pod/client pod/plain --timeout=180s >&2 || {
  kubectl -n "$ns" get pods -o wide >&2
  kubectl -n "$ns" describe pods >&2
  for p in server client; do
    kubectl -n "$ns" logs "$p" -c istio-init >&2 || true
    kubectl -n "$ns" logs "$p" -c istio-proxy >&2 || true
  done
  die "the mesh pods did not become Ready"
}
kubectl -n "$ns" get pods -o wide >&2
