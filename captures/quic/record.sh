#!/usr/bin/env bash
# Records captures/quic-aioquic.pcap: a real QUIC v1 handshake (aioquic from PyPI, client and
# server) on the loopback of a network namespace this script creates and removes
# (msn-quic-rec), captured by tcpdump. The certificate is throw-away; the key log is kept as
# captures/quic/quic-aioquic.keys (here, not beside the pcap: tests/tls_keys.rs reads every
# NAME.keys beside a capture as a TCP TLS key log) so Wireshark can decrypt past the
# Initials. Needs root, iproute2, tcpdump, openssl, python3 with venv. Run under the
# machine-wide namespace lock:
#   sudo flock /tmp/meshsniff-netns.lock captures/quic/record.sh [OUTDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/..}
[ "$(id -u)" = 0 ] || { echo "record.sh: needs root (network namespace, tcpdump)" >&2; exit 2; }
NS=msn-quic-rec PORT=4433
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del $NS 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# aioquic pinned, in a venv of its own (Debian has no python3-aioquic).
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q 'aioquic==1.7.2'
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=quic.test \
  -addext subjectAltName=DNS:quic.test -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

ip netns add $NS
ip netns exec $NS ip link set lo up
ip netns exec $NS tcpdump -i lo -U -s 0 -w "$work/quic.pcap" udp port $PORT 2>/dev/null &
pids+=($!)
ip netns exec $NS "$work/venv/bin/python" "$here/peers.py" server "$work/cert.pem" "$work/key.pem" $PORT &
pids+=($!)
sleep 2
: > "$work/keys"
ip netns exec $NS timeout 20 "$work/venv/bin/python" "$here/peers.py" client $PORT "$work/keys"
sleep 1
kill "${pids[@]}"; wait 2>/dev/null || true; pids=()
install -m 0644 "$work/quic.pcap" "$out/quic-aioquic.pcap"
install -m 0644 "$work/keys" "$here/quic-aioquic.keys"
echo "wrote $out/quic-aioquic.pcap ($(stat -c %s "$out/quic-aioquic.pcap") bytes)"
