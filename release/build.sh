#!/usr/bin/env bash
# Release build: both binaries static (the helper is copied onto nodes; the plugin runs on
# laptops without our libraries), the krew archive and its manifest, and the helper image as an
# OCI archive made without docker (release/oci-image.py: FROM scratch, only /meshsniff), named
# as the plugin's default --image. Run from anywhere; results in release/out/.
#   release/build.sh            # archive, manifest, image/meshsniff-oci.tar (+ docker context)
#   IMAGE=ghcr.io/you/meshsniff:tag release/build.sh          # the OCI archive named so
#   IMAGE=ghcr.io/you/meshsniff:tag release/build.sh --image  # also `docker build` the context
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
target=x86_64-unknown-linux-gnu
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$target" \
  --bin meshsniff --bin kubectl-meshsniff
out=release/out
rm -rf "$out" && mkdir -p "$out/archive" "$out/image/rootfs"
for b in meshsniff kubectl-meshsniff; do
  bin="target/$target/release/$b"
  if ldd "$bin" 2>&1 | grep -q '=>'; then
    ldd "$bin"; echo "$b links shared libraries: not a static build" >&2; exit 1
  fi
  strip -o "$out/archive/$b" "$bin"
done
cp README.md "$out/archive/"
archive="$out/meshsniff-v$version-linux-amd64.tar.gz"
tar -C "$out/archive" -czf "$archive" --owner=0 --group=0 --mtime='2000-01-01' \
  kubectl-meshsniff meshsniff README.md
sha=$(sha256sum "$archive" | cut -d' ' -f1)
sed -e "s/{{VERSION}}/$version/g" -e "s/{{SHA256}}/$sha/g" .krew.yaml > "$out/meshsniff.yaml"
if grep -q '{{' "$out/meshsniff.yaml"; then
  echo "unfilled placeholder in the krew manifest" >&2; exit 1
fi

# The image's name is the plugin's default --image (one place: src/kube/manifest.rs), read from
# the plugin just built, unless IMAGE says otherwise.
# (clap wraps the help text; an image name has no blank, so joining the lines is enough.)
default=$("$out/archive/kubectl-meshsniff" --help | tr '\n' ' ' | tr -s ' ' |
  grep -o -- '--image <IMAGE> [^]]*]' | sed -n 's/.*\[default: \([^] ]*\)]$/\1/p')
[ -n "$default" ] || { echo "no default --image in kubectl-meshsniff --help" >&2; exit 1; }
image=${IMAGE:-$default}
case "$image" in
  *@*) echo "IMAGE=$image: give NAME:TAG (the digest is the build's)" >&2; exit 1 ;;
  */*:*) ;;
  *) echo "IMAGE=$image: give NAME:TAG" >&2; exit 1 ;;
esac
# FROM scratch: the static binary needs nothing else at run time (no libc, no /etc/passwd, as
# it runs as uid 0 by number; filters are compiled in-process; /proc comes from the runtime).
# Entries owned by 0:0 with a fixed mtime (SOURCE_DATE_EPOCH, else 2000-01-01): the same
# binary gives the same digest.
install -m 0755 "$out/archive/meshsniff" "$out/image/rootfs/meshsniff"
digest=$(python3 release/oci-image.py --name "${image%:*}" --tag "${image##*:}" \
  --rootfs "$out/image/rootfs" --entrypoint /meshsniff --user 0 \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.source=https://github.com/meshsniff/meshsniff" \
  -o "$out/image/meshsniff-oci.tar")
echo "$image" > "$out/image/name"
echo "$digest" > "$out/image/digest"
# The docker path (optional): the same content through release/Dockerfile.
cp release/Dockerfile "$out/image/" && cp "$out/archive/meshsniff" "$out/image/"
echo "archive:  $archive ($sha)"
echo "manifest: $out/meshsniff.yaml"
echo "image:    $image@$digest"
echo "          $out/image/meshsniff-oci.tar ($(du -h "$out/image/meshsniff-oci.tar" | cut -f1)):"
echo "          ctr -n k8s.io images import $out/image/meshsniff-oci.tar"
echo "          skopeo copy oci-archive:$out/image/meshsniff-oci.tar docker://$image"
if [ "${1:-}" = "--image" ]; then
  docker build -t "$image" "$out/image"
fi
