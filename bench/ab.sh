#!/usr/bin/env bash
# Role: an interleaved A/B of two meshsniff builds on the standard workload (what the README's
# "12% longer than the build before" comes from): runs A and B alternately RUNS times on the
# same warm file and prints each one's median wall, user and system time.
#
#   bench/ab.sh OLD_BINARY [NEW_BINARY] [RUNS]        (NEW: this checkout's release build; 7)
#
# The build before HTTP facts and verdicts, for example:
#   git worktree add /tmp/base b37333f && (cd /tmp/base && cargo build --release)
#   bench/ab.sh /tmp/base/target/release/meshsniff
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
old=${1:?usage: bench/ab.sh OLD_BINARY [NEW_BINARY] [RUNS]}
new=${2:-$here/target/release/meshsniff}
runs=${3:-7}
file=${BENCH_DIR:-/tmp/meshsniff-bench}/bench-1g.pcap
[ -f "$file" ] || { echo "ab.sh: $file missing: run bench/run.sh once to make it" >&2; exit 2; }
[ "$new" != "$here/target/release/meshsniff" ] || (cd "$here" && cargo build --release --quiet)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cat "$file" > /dev/null
for _ in $(seq "$runs"); do
  /usr/bin/time -a -o "$out/a" -f "%e %U %S" "$old" analyze --quiet --format jsonl "$file" > /dev/null
  /usr/bin/time -a -o "$out/b" -f "%e %U %S" "$new" analyze --quiet --format jsonl "$file" > /dev/null
done
python3 - "$out" <<'PY'
import statistics, sys
d = sys.argv[1]
def med(name):
    rows = [list(map(float, l.split()[-3:])) for l in open(f"{d}/{name}") if l.strip()]
    return [statistics.median(r[i] for r in rows) for i in range(3)]
a, b = med("a"), med("b")
print(f"A (old)  {a[0]:.2f} s  user {a[1]:.2f}  sys {a[2]:.2f}   (medians)")
print(f"B (new)  {b[0]:.2f} s  user {b[1]:.2f}  sys {b[2]:.2f}")
print(f"B takes  {100 * (b[0] / a[0] - 1):+.0f}% of A's wall time")
PY
