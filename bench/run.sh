#!/usr/bin/env bash
# The standard benchmark (../shared/bench/README.md): 1 GiB, 1.9 M packets, 76,833 flows.
# Builds release, makes the workload if missing, then alternates meshsniff and a libpcap record
# walk (`tcpdump -r F -w /dev/null`) RUNS times on the same warm file and prints medians,
# throughput, peak RSS, the ratio to tcpdump, and whether the flow counts are exact.
#
#   bench/run.sh [RUNS]          (default 5)
#   BENCH_DIR=/path bench/run.sh (where the 1 GiB workload lives; default /tmp/meshsniff-bench)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
shared=${MESHSNIFF_SHARED:-$here/../shared}
dir=${BENCH_DIR:-/tmp/meshsniff-bench}
file=$dir/bench-1g.pcap
for t in tcpdump python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: $t is needed (apt-get install tcpdump time)" >&2; exit 2; }
done
[ -f "$shared/bench/amplify.py" ] || { echo "bench: $shared/bench/amplify.py not found (set MESHSNIFF_SHARED)" >&2; exit 2; }
mkdir -p "$dir"
if [ ! -f "$file" ] || [ ! -f "$file.stats.json" ]; then
  echo "bench: generating the workload in $dir (deterministic, ~15 s)" >&2
  python3 "$shared/bench/amplify.py" "$shared/bench/seed/seed.pcap" "$file" --size-mb 1024 >&2
fi
(cd "$here" && cargo build --release --quiet)
bin=$here/target/release/meshsniff
cat "$file" > /dev/null # warm the page cache
out=$(mktemp)
trap 'rm -f "$out" "$out".*' EXIT
# Both write to /dev/null in the timed runs (tcpdump -w /dev/null, meshsniff's JSON Lines);
# one more, untimed run keeps meshsniff's output to check the counts.
for i in $(seq "$runs"); do
  /usr/bin/time -f "%e %M" -o "$out.m.$i" "$bin" analyze --quiet --format jsonl "$file" > /dev/null
  /usr/bin/time -f "%e %M" -o "$out.t.$i" tcpdump -r "$file" -w /dev/null 2>/dev/null
done
"$bin" analyze --quiet --format jsonl "$file" > "$out.jsonl"
python3 - "$file" "$out" "$runs" <<'PY'
import json, statistics, sys, os
f, out, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = os.path.getsize(f)
def med(kind):
    xs = [tuple(map(float, open(f"{out}.{kind}.{i}").read().split()[-2:])) for i in range(1, runs + 1)]
    return statistics.median(x[0] for x in xs), max(x[1] for x in xs)
m_s, m_kib = med("m")
t_s, t_kib = med("t")
summary = json.loads(open(out + ".jsonl").read().strip().splitlines()[-1])
exp = json.load(open(f + ".stats.json"))
want = (exp["totals"]["flows"], exp["expected"]["tls_flows"], exp["expected"]["http_flows"])
got = (summary["flows"], summary["protocols"]["tls"], summary["protocols"]["http"])
print(f"workload      {size/1e9:.3f} GB, {summary['packets']:,} packets, {want[0]:,} flows")
print(f"meshsniff     {m_s:.2f} s  {size/m_s/1e9:.2f} GB/s  peak RSS {m_kib/1024:.1f} MiB   (median of {runs})")
print(f"tcpdump walk  {t_s:.2f} s  {size/t_s/1e9:.2f} GB/s  peak RSS {t_kib/1024:.1f} MiB")
print(f"ratio         meshsniff takes {m_s/t_s:.2f}x tcpdump's time (same run, same warm file)")
print(f"counts        flows/tls/http {got[0]:,}/{got[1]:,}/{got[2]:,}  expected {want[0]:,}/{want[1]:,}/{want[2]:,}  {'EXACT' if got == want else 'MISMATCH'}")
sys.exit(0 if got == want else 1)
PY
