#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60), its corpus seeded from captures/ by
# seeds.py (docs/fuzzing.md says what each target reads and what a long run reached).
# cargo-fuzz needs nightly features; on a stable-only machine RUSTC_BOOTSTRAP=1 enables them.
#   fuzz/run.sh [SECONDS [TARGET...]]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(capture reassembly tls quic quic_crypto http filter merge)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# capture, merge, tls, http, reassembly, quic, quic_crypto: cut from captures/ (needs tshark).
python3 seeds.py ../captures corpus
mkdir -p corpus/filter
# HTTP seeds beyond the captures: a chunked response and an h2c preface with HEADERS.
printf '\x26\x00\x07GET /a?token=x HTTP/1.1\r\nHost: h\r\nCookie: a=b\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n' > corpus/http/seed-http1
printf '\x21\x00\x09PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x02\x01\x04\x00\x00\x00\x01\x88\x55' > corpus/http/seed-h2c
printf 'tcp port 8080 and not (src host 10.0.0.1 or tcp[tcpflags] & (tcp-syn|tcp-ack) != 0)\n' > corpus/filter/seed-expr
printf 'ip6 and udp\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x86\xdd\x60\x00\x00\x00\x00\x08\x2c\x40' > corpus/filter/seed-pkt
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048
done
