#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60), seeded from captures/. cargo-fuzz needs
# nightly features; on a stable-only machine RUSTC_BOOTSTRAP=1 enables them.
#   fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/capture corpus/reassembly corpus/tls corpus/quic
cp ../captures/*.pcap ../captures/*.pcapng corpus/capture/ 2>/dev/null || true
export RUSTC_BOOTSTRAP=1
for t in capture reassembly tls quic; do
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048
done
