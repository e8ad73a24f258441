#!/usr/bin/env bash
# Records the sample captures in this folder from real programs (openssl s_server/s_client,
# curl, python3, nginx, a Go h2c server) talking between two network namespaces that this script creates and
# removes. Needs root, iproute2, tcpdump, dumpcap/editcap (wireshark-common), openssl, curl,
# python3, nginx, go (it builds h2c-upgrade/ with golang.org/x/net from the module proxy).
# Traffic stays inside the namespaces it creates (10.77.0.0/24, fd77::/64) and
# their loopbacks. Certificates are throw-away and not kept; key logs are kept beside the TLS
# captures so Wireshark can decrypt them.
#
#   sudo captures/record.sh            # re-record everything into captures/
#   sudo captures/record.sh OUTDIR     # elsewhere
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
mkdir -p "$out"
[ "$(id -u)" = 0 ] || { echo "record.sh: needs root (network namespaces, tcpdump)" >&2; exit 2; }
for t in ip tcpdump dumpcap editcap openssl curl python3 nginx go; do
  command -v "$t" >/dev/null || { echo "record.sh: $t not installed (see .ci/run for the packages)" >&2; exit 2; }
done

C=msn-rec-c S=msn-rec-s
CIP=10.77.0.1 SIP=10.77.0.2 CIP6=fd77::1 SIP6=fd77::2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del $C 2>/dev/null || true
  ip netns del $S 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

inC() { ip netns exec $C "$@"; }
inS() { ip netns exec $S "$@"; }

ip netns add $C
ip netns add $S
ip link add veth-c netns $C type veth peer name veth-s netns $S
inC ip link set lo up; inS ip link set lo up
inC ip addr add $CIP/24 dev veth-c; inS ip addr add $SIP/24 dev veth-s
inC ip -6 addr add $CIP6/64 dev veth-c nodad; inS ip -6 addr add $SIP6/64 dev veth-s nodad
inC ip link set veth-c up; inS ip link set veth-s up
# veth offloads stay at their defaults (TSO/GSO/GRO on), as on a real node: captures show
# super-packets larger than the MTU (up to 11 KB in http-python-curl.pcap).

# --- throw-away PKI --------------------------------------------------------------------------
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=meshsniff test CA" -keyout ca.key -out ca.crt 2>/dev/null
mkcert() { # name subject-alt-names
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
mkcert api.test "DNS:api.test"
mkcert client "URI:spiffe://cluster.local/ns/default/sa/client"

# --- helpers -----------------------------------------------------------------------------------
# wait_port NS PORT: until something listens on PORT in NS (bounded).
wait_port() {
  for _ in $(seq 100); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.05
  done
  echo "record.sh: nothing listens on port $2 in $1" >&2; return 1
}
# start_capture NS FILE ARGS...: tcpdump in NS, returns once it is capturing.
start_capture() {
  local ns=$1 file=$2; shift 2
  ip netns exec "$ns" tcpdump -Z root --immediate-mode -U -s 0 -w "$file" "$@" 2>"$file.log" &
  cap_pid=$!
  pids+=("$cap_pid")
  for _ in $(seq 100); do grep -q "listening on" "$file.log" 2>/dev/null && return 0; sleep 0.05; done
  echo "record.sh: tcpdump did not start: $(cat "$file.log")" >&2; return 1
}
stop_capture() {
  sleep 0.3
  kill -INT "$cap_pid"; wait "$cap_pid" 2>/dev/null || true
  rm -f "$1.log"
}
# bgS CMD...: a server in the server namespace; `ip netns exec` execs, so $! is the server.
bgS() { ip netns exec $S "$@" >/dev/null 2>&1 & pids+=($!); }
server_pid() { echo "${pids[-1]}"; }
done_with() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# --- 1. TLS 1.3, SNI and ALPN, server-authenticated only -----------------------------------------
start_capture $S "$out/tls13-openssl.pcap" -i veth-s tcp
bgS openssl s_server -quiet -accept 8443 -cert api.test.crt -key api.test.key -alpn h2,http/1.1 -www -naccept 1
srv=$(server_pid); wait_port $S 8443
printf 'GET / HTTP/1.1\r\nHost: api.test\r\n\r\n' | inC timeout 10 openssl s_client -quiet -ign_eof \
  -connect $SIP:8443 -servername api.test -alpn h2,http/1.1 -CAfile ca.crt \
  -keylogfile "$out/tls13-openssl.keys" >/dev/null 2>&1 || true
done_with "$srv"; stop_capture "$out/tls13-openssl.pcap"

# --- 2. TLS 1.2 mutual TLS (client certificate with a SPIFFE URI SAN) -------------------------
start_capture $S "$out/tls12-mtls-openssl.pcap" -i veth-s tcp
bgS openssl s_server -quiet -accept 8443 -tls1_2 -cert api.test.crt -key api.test.key -CAfile ca.crt -Verify 1 -www -naccept 1
srv=$(server_pid); wait_port $S 8443
printf 'GET / HTTP/1.1\r\nHost: api.test\r\n\r\n' | inC timeout 10 openssl s_client -quiet -ign_eof \
  -connect $SIP:8443 -servername api.test -CAfile ca.crt -cert client.crt -key client.key \
  -keylogfile "$out/tls12-mtls-openssl.keys" >/dev/null 2>&1 || true
done_with "$srv"; stop_capture "$out/tls12-mtls-openssl.pcap"

# --- 3. Cleartext HTTP/1.1: two requests on one keep-alive connection, plus Basic auth -------
mkdir -p www && printf 'hello from the pod\n' > www/index.html && head -c 20000 /dev/urandom | base64 > www/big.txt
start_capture $S "$out/http-python-curl.pcap" -i veth-s tcp
bgS python3 -m http.server --protocol HTTP/1.1 --bind $SIP --directory www 8080
srv=$(server_pid); wait_port $S 8080
inC curl -s -o /dev/null -o /dev/null -u demo:not-a-real-password \
  "http://$SIP:8080/index.html" "http://$SIP:8080/big.txt"
done_with "$srv"; stop_capture "$out/http-python-curl.pcap"

# --- 4. h2c with prior knowledge (nginx) -------------------------------------------------------
cat > nginx.conf <<EOF
worker_processes 1; daemon off; error_log $work/nginx.err; pid $work/nginx.pid;
events { worker_connections 64; }
http { access_log off;
  server { listen $SIP:8081 http2; location / { return 200 "h2c ok\n"; } }
  server { listen $SIP:8082; location / { return 200 "plain ok\n"; } } }
EOF
start_capture $S "$out/h2c-nginx.pcap" -i veth-s tcp
bgS nginx -c "$work/nginx.conf"
srv=$(server_pid); wait_port $S 8081
inC curl -s -o /dev/null --http2-prior-knowledge "http://$SIP:8081/grpc-like"
done_with "$srv"; stop_capture "$out/h2c-nginx.pcap"

# --- 5. Content, not port: TLS on port 80, HTTP on port 22, binary on 5432, an empty connection
start_capture $S "$out/content-not-port.pcap" -i veth-s tcp
bgS openssl s_server -quiet -accept 80 -cert api.test.crt -key api.test.key -www -naccept 1
tls80=$(server_pid)
bgS python3 -m http.server --bind $SIP 22
http22=$(server_pid)
bgS python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("'$SIP'", 5432)); s.listen(4)
for _ in range(2):
    c, _ = s.accept(); d = c.recv(64)
    if d: c.sendall(bytes(range(256)))
    c.close()'
bin=$(server_pid)
wait_port $S 80; wait_port $S 22; wait_port $S 5432
printf 'GET / HTTP/1.0\r\n\r\n' | inC timeout 10 openssl s_client -quiet -ign_eof -connect $SIP:80 -servername port80.test >/dev/null 2>&1 || true
inC curl -s -o /dev/null "http://$SIP:22/"
inC python3 -c '
import socket
c = socket.create_connection(("'$SIP'", 5432)); c.sendall(bytes([0, 0, 0, 8, 4, 210, 22, 47])); c.recv(1024); c.close()
socket.create_connection(("'$SIP'", 5432)).close()'
done_with "$tls80"; done_with "$http22"; done_with "$bin"
stop_capture "$out/content-not-port.pcap"

# --- 6. tcpdump -i any (LINUX_SLL2, nanosecond): IPv6 HTTP over the veth, TLS on loopback ----
start_capture $S "$out/any-ipv6-sll2.pcap" -i any --time-stamp-precision=nano tcp
bgS python3 -m http.server --bind $SIP6 8080 --directory www
srv=$(server_pid)
bgS openssl s_server -quiet -accept 127.0.0.1:9443 -cert api.test.crt -key api.test.key -www -naccept 1
tlslo=$(server_pid)
wait_port $S 8080; wait_port $S 9443
inC curl -s -o /dev/null -g "http://[$SIP6]:8080/index.html"
printf 'GET / HTTP/1.0\r\n\r\n' | inS timeout 10 openssl s_client -quiet -ign_eof -connect 127.0.0.1:9443 -servername localhost >/dev/null 2>&1 || true
done_with "$srv"; done_with "$tlslo"; stop_capture "$out/any-ipv6-sll2.pcap"

# --- 7. pcapng with two named interfaces (dumpcap on the pod's eth and lo) ---------------------
ip netns exec $S dumpcap -q -i veth-s -i lo -f tcp -w "$out/two-interfaces.pcapng" 2>"$work/dumpcap.log" &
cap_pid=$!; pids+=("$cap_pid")
for _ in $(seq 100); do [ -s "$out/two-interfaces.pcapng" ] && break; sleep 0.05; done
sleep 1
bgS python3 -m http.server --bind 0.0.0.0 8080 --directory www
srv=$(server_pid); wait_port $S 8080
inC curl -s -o /dev/null "http://$SIP:8080/index.html"
inS curl -s -o /dev/null -H 'Cookie: session=local-only' "http://127.0.0.1:8080/index.html"
done_with "$srv"; sleep 0.5; kill -INT "$cap_pid"; wait "$cap_pid" 2>/dev/null || true

# --- 8. mTLS scenarios (TLS 1.3 and 1.2, accepted and refused), each with its key log -------
# tls_case NAME SERVER-ARGS -- CLIENT-ARGS: s_server (with -Verify 1: client certificate
# required) and one s_client, captured on the server's veth.
tls_case() {
  local name=$1; shift
  local sargs=() cargs=()
  while [ "$1" != "--" ]; do sargs+=("$1"); shift; done; shift
  cargs=("$@")
  start_capture $S "$out/$name.pcap" -i veth-s tcp
  bgS openssl s_server -quiet -accept 8443 -cert api.test.crt -key api.test.key -CAfile ca.crt -www -naccept 1 "${sargs[@]}"
  local srv; srv=$(server_pid); wait_port $S 8443
  printf 'GET /secret HTTP/1.1\r\nHost: api.test\r\n\r\n' | inC timeout 10 openssl s_client -quiet -ign_eof \
    -connect $SIP:8443 -servername api.test -CAfile ca.crt -keylogfile "$out/$name.keys" "${cargs[@]}" >/dev/null 2>&1 || true
  done_with "$srv"; stop_capture "$out/$name.pcap"
}
tls_case tls13-mtls-ok -tls1_3 -Verify 1 -- -cert client.crt -key client.key
tls_case tls13-mtls-nocert-openssl -tls1_3 -Verify 1 --
tls_case tls12-mtls-nocert-openssl -tls1_2 -Verify 1 --
# An Istio-like client: the sidecar's ALPN and SNI, and a SPIFFE client certificate.
tls_case tls13-istio-like -tls1_3 -Verify 1 -alpn istio-peer-exchange,istio -- \
  -cert client.crt -key client.key -alpn istio-peer-exchange,istio \
  -servername outbound_.8080_._.reviews.default.svc.cluster.local

# nginx with ssl_verify_client on refuses a client without a certificate with HTTP 400 inside
# TLS, not with an alert.
cat > nginx-mtls.conf <<NGINX
worker_processes 1; daemon off; error_log $work/nginx-mtls.err; pid $work/nginx-mtls.pid;
events { worker_connections 64; }
http { access_log off;
  server { listen $SIP:8443 ssl; ssl_protocols TLSv1.3;
    ssl_certificate $work/api.test.crt; ssl_certificate_key $work/api.test.key;
    ssl_client_certificate $work/ca.crt; ssl_verify_client on;
    location / { return 200 "secret\n"; } } }
NGINX
start_capture $S "$out/tls13-mtls-nocert-nginx.pcap" -i veth-s tcp
bgS nginx -c "$work/nginx-mtls.conf"
srv=$(server_pid); wait_port $S 8443
SSLKEYLOGFILE="$out/tls13-mtls-nocert-nginx.keys" inC curl -s -o /dev/null --cacert ca.crt \
  --resolve api.test:8443:$SIP "https://api.test:8443/secret" || true
done_with "$srv"; stop_capture "$out/tls13-mtls-nocert-nginx.pcap"

# STARTTLS: an SMTP-style exchange in clear, then TLS on the same connection (python3 ssl
# server, smtplib client).
cat > smtp-starttls.py <<'PY'
import socket, ssl, sys
host, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, 2525)); s.listen(1)
c, _ = s.accept()
f = c.makefile("rb")
c.sendall(b"220 mail.test ESMTP\r\n")
f.readline()                                   # EHLO
c.sendall(b"250-mail.test\r\n250 STARTTLS\r\n")
f.readline()                                   # STARTTLS
c.sendall(b"220 Ready to start TLS\r\n")
t = ctx.wrap_socket(c, server_side=True)
tf = t.makefile("rb")
tf.readline()                                  # EHLO again, now encrypted
t.sendall(b"250 mail.test\r\n")
tf.readline()                                  # QUIT
t.sendall(b"221 bye\r\n")
t.close()
PY
start_capture $S "$out/starttls-smtp.pcap" -i veth-s tcp
bgS python3 smtp-starttls.py $SIP api.test.crt api.test.key
srv=$(server_pid); wait_port $S 2525
inC python3 -c '
import smtplib, ssl, sys
s = smtplib.SMTP(sys.argv[1], 2525, local_hostname="client.test", timeout=10)
s.starttls(context=ssl._create_unverified_context())
s.quit()' $SIP || true
done_with "$srv"; stop_capture "$out/starttls-smtp.pcap"

# IPv6 with an extension header: the client socket carries a Destination Options header
# (IPV6_DSTOPTS sticky option, one PadN option) on every packet it sends.
# Filter `ip6`, not `tcp`: libpcap's `tcp` does not look past IPv6 extension headers.
start_capture $S "$out/ipv6-dstopts.pcap" -i veth-s ip6
bgS python3 -m http.server --bind $SIP6 8080 --directory www
srv=$(server_pid); wait_port $S 8080
inC python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_DSTOPTS", 59), bytes([0, 0, 1, 4, 0, 0, 0, 0]))
s.connect((sys.argv[1], 8080, 0, 0))
s.sendall(b"GET /index.html HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
while s.recv(4096):
    pass
s.close()' $SIP6
done_with "$srv"; stop_capture "$out/ipv6-dstopts.pcap"

# --- 8b. h2c by Upgrade (RFC 7540 §3.2): curl --http2 asks to upgrade its first request, the
# Go server (golang.org/x/net/http2/h2c) answers 101 and the response on stream 1 in HTTP/2;
# the second request reuses the connection as stream 3.
(cd "$here/h2c-upgrade" && go build -o "$work/h2c-upgrade-server" .)
start_capture $S "$out/h2c-upgrade.pcap" -i veth-s tcp
bgS "$work/h2c-upgrade-server" $SIP:8083
srv=$(server_pid); wait_port $S 8083
inC curl -s -o /dev/null -o /dev/null --http2 -H 'Authorization: Bearer not-a-real-token' \
  "http://$SIP:8083/first" "http://$SIP:8083/second?token=not-a-real-token"
done_with "$srv"; stop_capture "$out/h2c-upgrade.pcap"

# --- 9. Derived: the same HTTP traffic with two VLAN tags (802.1ad 300 around 802.1Q 42) added
# to every Ethernet header. The kernel here has no 8021q module, so stacked VLAN interfaces
# cannot be made; the tags are inserted into the real frames instead (lengths adjusted).
python3 - "$out/http-python-curl.pcap" "$out/qinq-http.pcap" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
out = bytearray(data[:24])
at = 24
tags = struct.pack(">HHHH", 0x88A8, 300, 0x8100, 42)
while at + 16 <= len(data):
    sec, frac, incl, orig = struct.unpack_from("<IIII", data, at)
    frame = data[at + 16:at + 16 + incl]
    frame = frame[:12] + tags + frame[12:]
    out += struct.pack("<IIII", sec, frac, incl + 8, orig + 8) + frame
    at += 16 + incl
open(dst, "wb").write(out)
PY

# --- 10. Derived: the HTTP capture without its first three packets (a mid-stream start) ---------
editcap -F pcap -r "$out/http-python-curl.pcap" "$out/midstream-http.pcap" 4-1000000 >/dev/null

# --- 11. Derived: raw-IP link types (LINKTYPE_RAW 101, IPV4 228, IPV6 229), made by removing
# the Ethernet header from every frame of real captures, as a capture on a tun device or a
# routed interface would show them.
python3 - "$out" <<'PY'
import struct, sys
out = sys.argv[1]
def relink(src, dst, linktype):
    data = open(f"{out}/{src}", "rb").read()
    magic = data[:4]
    e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    hdr = bytearray(data[:24])
    struct.pack_into(e + "I", hdr, 20, linktype)
    res, at = bytes(hdr), 24
    while at + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack_from(e + "IIII", data, at)
        frame = data[at + 16:at + 16 + incl]
        res += struct.pack(e + "IIII", sec, frac, incl - 14, orig - 14) + frame[14:]
        at += 16 + incl
    open(f"{out}/{dst}", "wb").write(res)
relink("http-python-curl.pcap", "rawip-101-http.pcap", 101)
relink("tls13-openssl.pcap", "rawip4-228-tls.pcap", 228)
relink("ipv6-dstopts.pcap", "rawip6-229-http.pcap", 229)
PY

chmod 0644 "$out"/*.pcap "$out"/*.pcapng "$out"/*.keys 2>/dev/null || true
echo "record.sh: wrote $(ls "$out"/*.pcap "$out"/*.pcapng | wc -l) captures to $out"
