#!/usr/bin/env bash
# Role: builds the test cluster's binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl) from the Go module proxy into a cache outside the
# checkout keyed by the pinned versions; does nothing when they are already there.
# Prints the bin directory on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

export GOMODCACHE=${GOMODCACHE:-/var/cache/meshsniff/go/mod}
export GOCACHE=${GOCACHE:-/var/cache/meshsniff/go/build}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
root=${MESHSNIFF_CLUSTER_CACHE:-/var/cache/meshsniff/cluster}/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION
bin=$root/bin
mkdir -p "$bin" "$root/src"

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
missing=()
for b in "${k8s_bins[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done

go_build() { nice -n 10 go build -p 2 -trimpath "$@"; }

if [ ! -x "$bin/etcd" ]; then
  echo "build.sh: building etcd $ETCD_VERSION" >&2
  w=$root/src/etcd
  mkdir -p "$w"
  cat > "$w/go.mod" <<MOD
module meshsniff.test/etcd-build

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat > "$w/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$w" && go mod download go.etcd.io/etcd/server/v3 \
     && go_build -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3 \
     && mv "$bin/etcd.tmp" "$bin/etcd")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "build.sh: building ${missing[*]} $KUBERNETES_VERSION" >&2
  w=$root/src/kubernetes
  mkdir -p "$w"
  # The served go.mod replaces its staging modules with ./staging/src/...; a module that
  # requires k8s.io/kubernetes must replace each with the published v0.<minor>.<patch>.
  gomod=$(cd "$w" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
            | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [ -f "$gomod" ] || { echo "build.sh: no go.mod for k8s.io/kubernetes@$KUBERNETES_VERSION" >&2; exit 1; }
  staging_version=v0.${KUBERNETES_VERSION#v1.}
  {
    echo "module meshsniff.test/kubernetes-build"
    echo
    sed -n 's/^go [0-9].*/&/p' "$gomod"
    echo
    sed -n 's/^godebug .*/&/p' "$gomod"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    sed -n "s|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*|	\1 => \1 $staging_version|p" "$gomod"
    echo ")"
  } > "$w/go.mod"
  grep -q "k8s.io/api => k8s.io/api $staging_version" "$w/go.mod" \
    || { echo "build.sh: no staging replacements derived from $gomod" >&2; exit 1; }
  minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  pkgs=()
  for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  tmp=$root/bin.tmp
  rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$w" && go_build -ldflags "$ld" -o "$tmp/" "${pkgs[@]}")
  for b in "${missing[@]}"; do mv "$tmp/$b" "$bin/$b"; done
  rmdir "$tmp"
fi
echo "$bin"
