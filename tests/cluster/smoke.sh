#!/usr/bin/env bash
# Role: proves the node up.sh made runs real pods: a web pod (python3 http.server) fetched by
# a curl pod over the pod IP, then kubectl logs, exec, port-forward and an ephemeral container
# (kubectl debug) against it; an absent image's pull kept on loopback; Pod Security and RBAC
# refusing what they must. Needs KUBECONFIG
# (eval "$(up.sh)"); exits non-zero on the first thing that does not work; removes its namespace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${KUBECONFIG:?run eval \"\$(sudo tests/cluster/up.sh)\" first}"
ns=meshsniff-smoke
k() { kubectl -n "$ns" "$@"; }
step() { echo "== $*"; }
fail() { echo "smoke: FAILED: $*" >&2; k get pods -o wide >&2 || true; k get events >&2 || true; exit 1; }
cleanup() { kubectl delete namespace "$ns" --wait=false > /dev/null 2>&1 || true; [ -z "${pf:-}" ] || kill "$pf" 2> /dev/null || true; }
trap cleanup EXIT

kubectl delete namespace "$ns" --ignore-not-found --wait=true > /dev/null
kubectl create namespace "$ns" > /dev/null
k wait --for=create serviceaccount/default --timeout=60s > /dev/null

step "web pod ($WEB_IMAGE): python3 -m http.server 8080"
k apply -f - > /dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  dnsPolicy: None
  dnsConfig: {nameservers: ["$NODE_IP"]}
  containers:
  - name: web
    image: $WEB_IMAGE
    imagePullPolicy: Never
    ports: [{containerPort: 8080}]
YAML
k wait --for=condition=Ready pod/web --timeout=120s > /dev/null || fail "web pod not Ready"
ip=$(k get pod web -o jsonpath='{.status.podIP}')
echo "web pod IP: $ip"
case "$ip" in "${POD_SUBNET%.*}".*) ;; *) fail "pod IP $ip is not in $POD_SUBNET" ;; esac

step "curl pod ($CURL_IMAGE) fetches http://$ip:8080/ and its log is read with kubectl logs"
k apply -f - > /dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: curl}
spec:
  restartPolicy: Never
  dnsPolicy: None
  dnsConfig: {nameservers: ["$NODE_IP"]}
  containers:
  - name: curl
    image: $CURL_IMAGE
    imagePullPolicy: Never
    args: ["-sS", "--max-time", "10", "http://$ip:8080/"]
YAML
k wait --for=jsonpath='{.status.phase}'=Succeeded pod/curl --timeout=120s > /dev/null \
  || { k logs curl >&2 || true; fail "curl pod did not succeed"; }
out=$(k logs curl)
echo "kubectl logs curl: $out"
[ "$out" = "hello from meshsniff web" ] || fail "curl pod fetched: $out"
k logs web | grep -q '"GET / HTTP/1.1" 200' || fail "web log has no GET /"
echo "kubectl logs web: $(k logs web | grep 'GET /' | tail -n 1)"

step "kubectl exec"
out=$(k exec web -- python3 -c 'import socket; print(socket.gethostname())')
echo "kubectl exec web -- python3 ...: $out"
[ "$out" = web ] || fail "exec printed $out"

step "kubectl port-forward"
pflog=$(mktemp)
k port-forward pod/web :8080 > "$pflog" 2>&1 &   # kubectl picks a free local port
pf=$!
port=
for _ in $(seq 1 40); do
  port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) -> 8080$/\1/p' "$pflog")
  [ -n "$port" ] && break; sleep 0.25
done
[ -n "$port" ] || fail "port-forward: $(cat "$pflog")"
out=$(curl -sS --max-time 10 "http://127.0.0.1:$port/") || fail "port-forward: $(cat "$pflog")"
echo "curl through port-forward (127.0.0.1:$port): $out"
[ "$out" = "hello from meshsniff web" ] || fail "port-forward fetched $out"
kill "$pf"; wait "$pf" 2> /dev/null || true; pf=; rm -f "$pflog"

step "ephemeral container (kubectl debug, $BUSYBOX_IMAGE)"
k debug web -c dbg --image="$BUSYBOX_IMAGE" --image-pull-policy=Never --target=web --profile=general \
  -- sh -c 'trap "exit 0" TERM; sleep 600 & wait' > /dev/null
for _ in $(seq 1 120); do
  st=$(k get pod web -o jsonpath='{.status.ephemeralContainerStatuses[?(@.name=="dbg")].state.running.startedAt}')
  [ -n "$st" ] && break; sleep 0.5
done
[ -n "$st" ] || fail "ephemeral container dbg not running"
out=$(k exec web -c dbg -- wget -qO- http://127.0.0.1:8080/)
echo "kubectl exec -c dbg -- wget http://127.0.0.1:8080/: $out"
[ "$out" = "hello from meshsniff web" ] || fail "ephemeral container fetched $out"
procs=$(k exec web -c dbg -- ps -o comm)
echo "$procs" | grep -q python3 || fail "ephemeral container does not see the web process (--target)"
echo "ephemeral container sees: $(echo "$procs" | tr '\n' ' ')"

step "an image the node lacks: the pull goes to loopback's closed port, never off the machine"
k run nopull --image=quay.io/meshsniff-smoke/absent:1 --restart=Never > /dev/null
for _ in $(seq 1 60); do
  out=$(k get events --field-selector involvedObject.name=nopull,reason=Failed -o jsonpath='{.items[*].message}')
  [ -n "$out" ] && break; sleep 0.5
done
echo "$out" | grep -q 'http://127.0.0.1:9/v2/meshsniff-smoke/absent/manifests/1' || fail "pull went: $out"
k delete pod nopull --wait=false > /dev/null
echo "pull refused: ${out:0:120}..."

step "Pod Security: a namespace enforcing restricted refuses a privileged pod"
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted > /dev/null 2>&1
if out=$(k run psa --image="$BUSYBOX_IMAGE" --image-pull-policy=Never --privileged 2>&1); then
  fail "privileged pod admitted under restricted"
fi
echo "$out" | grep -q 'violates PodSecurity "restricted:latest": privileged' || fail "admission said: $out"
echo "refused: ${out:0:110}..."

step "RBAC: a user whose certificate the CSR API signed is authenticated, and denied"
tmp=$(mktemp -d)
openssl req -newkey rsa:2048 -nodes -subj "/CN=smoke-nobody" -keyout "$tmp/u.key" -out "$tmp/u.csr" 2> /dev/null
kubectl delete csr smoke-nobody --ignore-not-found > /dev/null
kubectl apply -f - > /dev/null <<YAML
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: smoke-nobody}
spec:
  request: $(base64 -w0 "$tmp/u.csr")
  signerName: kubernetes.io/kube-apiserver-client
  usages: [client auth]
YAML
kubectl certificate approve smoke-nobody > /dev/null
for _ in $(seq 1 40); do
  kubectl get csr smoke-nobody -o jsonpath='{.status.certificate}' | base64 -d > "$tmp/u.crt"
  [ -s "$tmp/u.crt" ] && break; sleep 0.25
done
kubectl delete csr smoke-nobody > /dev/null
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
as_user() { kubectl --kubeconfig /dev/null --server "$server" --certificate-authority "$ca" \
              --client-certificate "$tmp/u.crt" --client-key "$tmp/u.key" "$@"; }
who=$(as_user auth whoami -o jsonpath='{.status.userInfo.username}')
[ "$who" = smoke-nobody ] || fail "whoami: $who"
if out=$(as_user -n "$ns" get pods 2>&1); then fail "RBAC let smoke-nobody list pods"; fi
rm -rf "$tmp"
echo "$out" | grep -q 'User "smoke-nobody" cannot list resource "pods"' || fail "RBAC said: $out"
echo "whoami: $who; $out"

echo "smoke: OK (kubectl $(kubectl version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | head -n 1), node $(kubectl get nodes -o jsonpath='{.items[0].status.nodeInfo.kubeletVersion} {.items[0].status.nodeInfo.containerRuntimeVersion}'))"
