#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60), seeded from captures/. cargo-fuzz needs
# nightly features; on a stable-only machine RUSTC_BOOTSTRAP=1 enables them.
#   fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/capture corpus/reassembly corpus/tls corpus/quic corpus/http corpus/filter corpus/merge
cp ../captures/*.pcap ../captures/*.pcapng corpus/capture/ 2>/dev/null || true
# merge seeds: a real pcapng capture as both streams (a 4-byte little-endian length first).
for f in ../captures/*.pcapng; do
  python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); sys.stdout.buffer.write(struct.pack("<I",len(d))+d+d)' "$f" > "corpus/merge/seed-$(basename "$f")"
done
# HTTP seeds: a request and a response split as check_http expects, and an h2c preface.
printf '\x26\x00\x07GET /a?token=x HTTP/1.1\r\nHost: h\r\nCookie: a=b\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n' > corpus/http/seed-http1
printf '\x21\x00\x09PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x02\x01\x04\x00\x00\x00\x01\x88\x55' > corpus/http/seed-h2c
printf 'tcp port 8080 and not (src host 10.0.0.1 or tcp[tcpflags] & (tcp-syn|tcp-ack) != 0)\n' > corpus/filter/seed-expr
printf 'ip6 and udp\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x86\xdd\x60\x00\x00\x00\x00\x08\x2c\x40' > corpus/filter/seed-pkt
export RUSTC_BOOTSTRAP=1
for t in capture reassembly tls quic http filter merge; do
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048
done
