#!/usr/bin/env bash
# Role: capture throughput, as a benchmark (root). A bulk transfer over a veth pair (curl
# downloading SIZE_MB from python3 http.server, in two namespaces this script creates and
# removes), captured at the same time by `meshsniff capture` and by tcpdump, both writing
# to files on tmpfs; prints what each captured and what the kernel dropped for each.
#
#   sudo bench/capture.sh [SIZE_MB]      (default 512)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
size=${1:-512}
[ "$(id -u)" = 0 ] || { echo "capture.sh: needs root (namespaces, packet sockets)" >&2; exit 2; }
for t in ip tcpdump curl python3; do
  command -v "$t" >/dev/null || { echo "capture.sh: $t not installed" >&2; exit 2; }
done
(cd "$here" && cargo build --release --quiet)
bin=$here/target/release/meshsniff
S=msn-capbench-s C=msn-capbench-c
work=$(mktemp -d /dev/shm/meshsniff-capbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del $S 2>/dev/null || true; ip netns del $C 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
ip netns add $S; ip netns add $C
ip link add eth0 netns $S type veth peer name eth0 netns $C
ip -n $S addr add 10.80.0.2/24 dev eth0; ip -n $C addr add 10.80.0.1/24 dev eth0
for ns in $S $C; do ip -n $ns link set lo up; ip -n $ns link set eth0 up; done
mkdir -p "$work/www"
head -c "$((size << 20))" /dev/zero > "$work/www/bulk.bin"
ip netns exec $S python3 -m http.server --bind 10.80.0.2 --directory "$work/www" 8080 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do ip netns exec $S ss -Hltn 'sport = :8080' | grep -q . && break; sleep 0.05; done
ip netns exec $S tcpdump -Z root -U -s 0 -i eth0 -w "$work/tcpdump.pcap" 2> "$work/tcpdump.log" &
td=$!; pids+=($td)
"$bin" capture --netns $S -i eth0 -w "$work/meshsniff.pcap" 2> "$work/meshsniff.log" &
ms=$!; pids+=($ms)
for f in tcpdump meshsniff; do
  for _ in $(seq 100); do grep -qi "listening on\|capturing on" "$work/$f.log" && break; sleep 0.05; done
done
start=$(date +%s.%N)
ip netns exec $C curl -s -o /dev/null "http://10.80.0.2:8080/bulk.bin"
secs=$(echo "$(date +%s.%N) - $start" | bc)
sleep 0.5
kill -TERM $ms $td; wait $ms $td 2>/dev/null || true
echo "transfer      ${size} MiB in ${secs}s over veth ($(echo "scale=0; $size * 8 / $secs" | bc) Mbit/s)"
for f in meshsniff tcpdump; do
  cap=$(grep -o '^[0-9]* packets captured' "$work/$f.log" | cut -d' ' -f1)
  drop=$(grep -o '^[0-9]* packets dropped by kernel' "$work/$f.log" | cut -d' ' -f1)
  printf '%-13s %s packets captured, %s dropped by the kernel, file %s\n' \
    "$f" "$cap" "$drop" "$(du -h "$work/$f.pcap" | cut -f1)"
done
