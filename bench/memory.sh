#!/usr/bin/env bash
# Peak RSS of `meshsniff analyze` next to the documented bound (docs/memory.md) on each hostile
# shape of issue 11 (several hundred MB each, streamed from examples/hostile_pcap through a
# pipe, never written to disk) and on the standard workload (../shared/bench/README.md).
# Each hostile shape runs with --max-flows set to its number of live flows and --collect-bytes 1024,
# so the bound is tight (at 16 KiB the TLS caches' worst case alone is 193 MiB); the standard
# workload runs with the defaults and with --max-flows 1024.
# bound = baseline (the same binary on a capture without packets) + FlowConfig::memory_bound.
# Not a timing benchmark: one run each.
#
#   bench/memory.sh                 (release build; PROFILE=debug for a quick check)
#   BENCH_DIR=/path bench/memory.sh (where the 1 GiB workload lives; default /tmp/meshsniff-bench)
#   SCALE=0.25 bench/memory.sh      (fewer flows per hostile shape)
#   MESHSNIFF_BIN=/path/meshsniff   (measure another build, e.g. the one before a change)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${MESHSNIFF_SHARED:-$here/../shared}
dir=${BENCH_DIR:-/tmp/meshsniff-bench}
profile=${PROFILE:-release}
scale=${SCALE:-1}
file=$dir/bench-1g.pcap
for t in python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "memory: $t is needed (apt-get install time python3)" >&2; exit 2; }
done
[ -f "$shared/bench/amplify.py" ] || { echo "memory: $shared/bench/amplify.py not found (set MESHSNIFF_SHARED)" >&2; exit 2; }
mkdir -p "$dir"
if [ ! -f "$file" ] || [ ! -f "$file.stats.json" ]; then
  echo "memory: generating the standard workload in $dir (deterministic, ~15 s)" >&2
  python3 "$shared/bench/amplify.py" "$shared/bench/seed/seed.pcap" "$file" --size-mb 1024 >&2
fi
if [ "$profile" = release ]; then
  (cd "$here" && cargo build --release --quiet --bin meshsniff --example hostile_pcap)
  out_dir=$here/target/release
else
  (cd "$here" && cargo build --quiet --bin meshsniff --example hostile_pcap)
  out_dir=$here/target/debug
fi
bin=${MESHSNIFF_BIN:-$out_dir/meshsniff} # MESHSNIFF_BIN: another build to compare
gen=$out_dir/examples/hostile_pcap
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# peak KiB of analyze reading stdin; $1 = name, rest = analyze flags
peak() {
  local name=$1; shift
  /usr/bin/time -f %M -o "$tmp/$name.rss" "$bin" analyze --quiet --format jsonl "$@" > "$tmp/$name.jsonl"
  tail -1 "$tmp/$name.rss"
}
row() { # name input_bytes peak_kib max_flows collect_bytes
  local base bound
  base=$("$gen" tcp-out-of-order 0 2>/dev/null | peak "base-$1" --max-flows "$4" --collect-bytes "$5" -)
  bound=$(( base * 1024 + $("$gen" --bound "$4" "$5") ))
  python3 - "$1" "$2" "$3" "$bound" "$4" "$5" <<'PY'
import sys
name, size, kib, bound, mf, cb = sys.argv[1], *map(int, sys.argv[2:])
peak = kib * 1024
print(f"{name:<20} {size/1e6:>6.0f} MB  max-flows {mf:>6,}  collect {cb:>6,}  peak RSS {peak/2**20:>7.1f} MiB  "
      f"bound {bound/2**20:>7.1f} MiB  {peak/bound:>5.2f}x  {'within' if peak <= bound else 'OVER'}")
PY
}

echo "bound = baseline + max_flows x per-flow + index + QUIC table + TLS caches (docs/memory.md)"
# shape:flows[:max-flows] (refused connections close at once: a small table suffices)
for spec in tcp-out-of-order:100 h2c-headers:800 quic-crypto:100 tcp-syn-rst:3000000:64; do
  IFS=: read -r shape n mf <<< "$spec"
  flows=$(python3 -c "print(max(1, int($n * $scale)))")
  mf=${mf:-$flows}
  # The generator streams into analyze; its byte count comes back on stderr.
  kib=$("$gen" "$shape" "$flows" 2> "$tmp/$shape.gen" | peak "$shape" --max-flows "$mf" --collect-bytes 1024 -)
  size=$(sed -n 's/^hostile_pcap: \([0-9]*\) bytes written/\1/p' "$tmp/$shape.gen")
  row "$shape" "${size:-0}" "$kib" "$mf" 1024
done

size=$(stat -c %s "$file")
kib=$(peak standard "$file")
row "standard (defaults)" "$size" "$kib" 65536 16384
kib=$(peak standard-1024 --max-flows 1024 "$file")
row "standard (1,024)" "$size" "$kib" 1024 16384
python3 - "$file" "$tmp/standard.jsonl" "$tmp/standard-1024.jsonl" <<'PY'
import json, sys
exp = json.load(open(sys.argv[1] + ".stats.json"))
want = (exp["totals"]["flows"], exp["expected"]["tls_flows"], exp["expected"]["http_flows"])
ok = True
for path in sys.argv[2:]:
    s = json.loads(open(path).read().strip().splitlines()[-1])
    got = (s["flows"], s["protocols"]["tls"], s["protocols"]["http"])
    ok &= got == want
    print(f"counts {path.rsplit('/', 1)[-1]:<22} flows/tls/http {got[0]:,}/{got[1]:,}/{got[2]:,}  expected {want[0]:,}/{want[1]:,}/{want[2]:,}  {'EXACT' if got == want else 'MISMATCH'}")
sys.exit(0 if ok else 1)
PY
