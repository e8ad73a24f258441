#!/usr/bin/env bash
# Role: imports image archives (OCI or docker-archive tarballs) into the running test
# cluster's containerd, in the CRI's namespace (k8s.io), so pods can use them with
# imagePullPolicy Never/IfNotPresent. Usage: sudo tests/cluster/import.sh ARCHIVE...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 ARCHIVE..." >&2; exit 2; }
sock=/run/meshsniff-cluster/containerd.sock
[ -S "$sock" ] || { echo "import.sh: no test cluster containerd at $sock (run up.sh)" >&2; exit 1; }
for f in "$@"; do
  ctr --address "$sock" -n k8s.io images import "$f" | sed -n 's/^unpacking \([^ ]*\) .*/import.sh: imported \1/p' >&2
done
