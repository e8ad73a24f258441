#!/usr/bin/env bash
# Release build: both binaries static (the helper is copied onto nodes; the plugin runs on
# laptops without our libraries), the krew archive and its manifest, and the helper image's
# build context. Run from anywhere; results in release/out/.
#   release/build.sh            # archive, manifest, image context
#   IMAGE=ghcr.io/you/meshsniff:tag release/build.sh --image   # also docker build the image
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
target=x86_64-unknown-linux-gnu
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$target" \
  --bin meshsniff --bin kubectl-meshsniff
out=release/out
rm -rf "$out" && mkdir -p "$out/archive" "$out/image"
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
cp release/Dockerfile "$out/image/" && cp "$out/archive/meshsniff" "$out/image/"
echo "archive:  $archive ($sha)"
echo "manifest: $out/meshsniff.yaml"
echo "image:    docker build -t ghcr.io/meshsniff/meshsniff:$version $out/image"
if [ "${1:-}" = "--image" ]; then
  docker build -t "${IMAGE:-ghcr.io/meshsniff/meshsniff:$version}" "$out/image"
fi
