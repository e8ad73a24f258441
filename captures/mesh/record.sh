#!/usr/bin/env bash
# Role: records the mesh lab captures (captures/mesh-*.pcap*) from real programs: three pod
# network namespaces on a bridge in a fourth ("the node"), Istio-like sidecars (sidecar.py,
# python3 ssl, running as uid 1337) behind iptables REDIRECT rules like istio-init's, and the
# five scenarios of issue 4. Captured on the server pod's eth0, lo and `any`, both interfaces
# at once as pcapng, and on the client pod's eth0 and lo. Needs root, iproute2, iptables,
# tcpdump, dumpcap, openssl, curl, python3, setpriv. Traffic stays inside 10.78.0.0/24 and
# the namespaces' loopbacks. Key logs are kept beside the captures (Wireshark decrypts them).
#
#   sudo captures/mesh/record.sh            # into captures/
#   sudo captures/mesh/record.sh OUTDIR
#
# Pods: A "client" 10.78.0.1 (app + outbound sidecar), B "server" 10.78.0.2 (app on :8080
# behind the inbound sidecar, an unprotected app on :9090 whose port is excluded from
# redirection, a health endpoint on :15021), C "legacy" 10.78.0.3 (no sidecar).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(dirname "$here")}
mkdir -p "$out"
[ "$(id -u)" = 0 ] || { echo "mesh/record.sh: needs root (namespaces, iptables, tcpdump)" >&2; exit 2; }
for t in ip iptables tcpdump dumpcap openssl curl python3 setpriv; do
  command -v "$t" >/dev/null || { echo "mesh/record.sh: $t not installed (see .ci/run)" >&2; exit 2; }
done

# The uid-1337 processes need an interpreter they can read (not one under /root).
PY=/usr/bin/python3
[ -x $PY ] || { echo "mesh/record.sh: $PY not installed (apt-get install python3)" >&2; exit 2; }

A=msn-mesh-a B=msn-mesh-b C=msn-mesh-c N=msn-mesh-node
AIP=10.78.0.1 BIP=10.78.0.2 CIP=10.78.0.3
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in $A $B $C $N; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
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

# istio-init's rules, reduced to what the lab needs: the server pod redirects inbound traffic
# to its app port 8080 to the sidecar's 15006 (9090 is an excluded port); the client pod
# redirects outbound TCP from every uid but the sidecar's (1337) to 15001.
inB iptables -t nat -A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 15006
inA iptables -t nat -A OUTPUT -p tcp -d 10.78.0.0/24 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001

# --- throw-away PKI: SPIFFE identities like Istio's workload certificates -----------------
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/O=cluster.local" -keyout ca.key -out ca.crt 2>/dev/null
mkcert() { # name spiffe-id
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=URI:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
mkcert client spiffe://cluster.local/ns/default/sa/client
mkcert server spiffe://cluster.local/ns/default/sa/server
chmod 644 ./*.key
mkdir -p www && printf 'orders: 3\n' > www/index.html
cp "$here/sidecar.py" .
# The sidecars (uid 1337) append their TLS key logs here.
touch a.keys b.keys && chmod 666 a.keys b.keys

wait_port() { # NS PORT
  for _ in $(seq 100); do
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
    ip netns exec "$ns" tcpdump -Z root --immediate-mode -U -s 0 -w "$file" "$@" 2>"$file.log" &
  fi
  pids+=($!); caps+=("$!:$file")
  for _ in $(seq 100); do
    grep -qi "listening on\|capturing on" "$file.log" 2>/dev/null && return 0; sleep 0.05
  done
  echo "mesh/record.sh: capture did not start: $(cat "$file.log")" >&2; return 1
}

# --- workloads ---------------------------------------------------------------------------------
bg $B python3 -m http.server --bind 0.0.0.0 --directory www 8080
bg $B python3 -m http.server --bind 0.0.0.0 --directory www 9090
bg $B "${as1337[@]}" $PY -m http.server --bind 0.0.0.0 --directory www 15021
bg $B "${as1337[@]}" $PY sidecar.py inbound 0.0.0.0:15006 $BIP:8080 server.crt server.key ca.crt "$work/b.keys"
bg $A "${as1337[@]}" $PY sidecar.py outbound 0.0.0.0:15001 client.crt client.key ca.crt "$work/a.keys"
for p in 8080 9090 15021 15006; do wait_port $B $p; done
wait_port $A 15001

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

# 1. STRICT: the client app's plain request leaves its pod as Istio mTLS and reaches the app
#    from 127.0.0.6 on the server pod's lo.
inA curl -sS -m 10 -o /dev/null "http://$BIP:8080/index.html"
# 2. A client without a sidecar sends plaintext to the protected port: the sidecar drops it.
inC curl -s -o /dev/null -m 5 "http://$BIP:8080/index.html" || true
# 3. PERMISSIVE-like: plaintext with a bearer token to a port that is not redirected.
inC curl -sS -m 10 -o /dev/null -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.not-a-real-token.sig" \
  "http://$BIP:9090/index.html"
# 4. kubectl port-forward's path: enter the pod's network namespace, dial localhost.
inB curl -sS -m 10 -o /dev/null -H "Cookie: session=not-a-real-session; theme=dark" \
  "http://127.0.0.1:8080/index.html"
# 5. A process running as the sidecar's uid escapes the redirect: plaintext on eth0.
inA "${as1337[@]}" curl -sS -m 10 -o /dev/null "http://$BIP:9090/index.html"
# 6. A kubelet-like readiness probe to the sidecar's health port.
inC curl -sS -m 10 -o /dev/null "http://$BIP:15021/index.html"

sleep 0.5
for c in "${caps[@]}"; do
  # SIGTERM, not SIGINT: a script without job control starts background commands with SIGINT
  # ignored. tcpdump and dumpcap both finish their file on SIGTERM.
  kill -TERM "${c%%:*}" 2>/dev/null || true; wait "${c%%:*}" 2>/dev/null || true
  rm -f "${c#*:}.log"
done
if [ -n "${MESH_SNIFF:-}" ]; then
  kill -TERM "$sniff_pid" 2>/dev/null || true; wait "$sniff_pid" 2>/dev/null || true
fi
cat "$work/a.keys" "$work/b.keys" > "$out/mesh.keys"
chmod 600 "$out"/mesh-* "$out/mesh.keys"
echo "mesh/record.sh: recorded $(ls "$out"/mesh-* | wc -l) captures into $out" >&2
