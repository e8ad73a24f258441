#!/usr/bin/env bash
# Role: builds the test cluster's images as OCI archives without docker: pause (static C),
# web (Debian's python3 + the stdlib it needs), curl (curl + its shared libraries) and
# busybox (busybox-static), each from a minimal root filesystem, through release/oci-image.py.
# Cached by the hash of this script and pause.c; prints the directory of the archives.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
oci=$repo/release/oci-image.py
[ -f "$oci" ] || { echo "images.sh: $oci is missing (the image builder from release/)" >&2; exit 1; }

key=$(cat "$here/images.sh" "$here/pause.c" "$here/versions.env" "$oci" | sha256sum | cut -c1-16)
out=${MESHSNIFF_CLUSTER_CACHE:-/var/cache/meshsniff/cluster}/images-$key
if [ -f "$out/done" ]; then echo "$out"; exit 0; fi
rm -rf "$out"; mkdir -p "$out"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# Copies a dynamically linked program and every shared library ldd names into a root.
with_libs() {
  local root=$1; shift
  local f lib
  for f in "$@"; do
    mkdir -p "$root$(dirname "$f")"; cp -L "$f" "$root$f"
    for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
    done
  done
}
# What every image gets: /etc files a process expects, /tmp, and a busybox shell.
base() {
  local root=$1
  mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
  cp /bin/busybox "$root/bin/busybox"
}
applets() {  # every busybox applet as a symlink in /bin
  local root=$1 a
  for a in $(busybox --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
}
image() {  # name:tag root file [oci-image.py options]
  local ref=$1 root=$2 file=$3; shift 3
  python3 "$oci" --name "${ref%:*}" --tag "${ref##*:}" --rootfs "$root" -o "$out/$file" \
    --env PATH=/usr/local/bin:/usr/bin:/bin "$@" > /dev/null
}

# pause: nothing but the static binary.
mkdir -p "$work/pause"
gcc -static -O2 -Wall -Wextra -Werror -o "$work/pause/pause" "$here/pause.c"
strip "$work/pause/pause"
image "$PAUSE_IMAGE" "$work/pause" pause.tar --entrypoint /pause --user 65535

# busybox: every applet (sh, tar, cat, sha256sum, ...): the plugin's --upload mode target.
r=$work/busybox; base "$r"; applets "$r"
image "$BUSYBOX_IMAGE" "$r" busybox.tar --cmd '["/bin/sh"]'

# web: python3 -m http.server; the stdlib without tests, GUI, build and packaging parts.
r=$work/web; base "$r"
ln -s busybox "$r/bin/sh"
py=$(readlink -f /usr/bin/python3); pyver=$(basename "$py")
with_libs "$r" "$py"; ln -s "$pyver" "$r/usr/bin/python3"
mkdir -p "$r/usr/lib/$pyver"
tar -C "/usr/lib/$pyver" --exclude=test --exclude=tests --exclude=idlelib --exclude=tkinter \
    --exclude=turtledemo --exclude=ensurepip --exclude=lib2to3 --exclude=distutils \
    --exclude='config-*' --exclude=site-packages --exclude=dist-packages --exclude=__pycache__ \
    -cf - . | tar -C "$r/usr/lib/$pyver" -xf -
for so in "$r/usr/lib/$pyver"/lib-dynload/*.so; do
  for lib in $(ldd "$so" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
    [ -e "$r$lib" ] || { mkdir -p "$r$(dirname "$lib")"; cp -L "$lib" "$r$lib"; }
  done
done
# As PID 1, python3 would ignore SIGTERM (no default action for PID 1): every pod deletion
# would wait out its grace period (30 s). sitecustomize makes SIGTERM exit 0 there. Debian's
# sitecustomize.py is a symlink to /etc: remove it first, never write through it to the host.
rm -f "$r/usr/lib/$pyver/sitecustomize.py"
cat > "$r/usr/lib/$pyver/sitecustomize.py" <<'PY'
import os, signal, sys
if os.getpid() == 1:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
PY
mkdir -p "$r/srv"; echo "hello from meshsniff web" > "$r/srv/index.html"
image "$WEB_IMAGE" "$r" web.tar --workdir /srv --cmd '["python3", "-m", "http.server", "8080"]'

# curl: Debian's curl and its libraries, no CA store.
r=$work/curl; base "$r"
ln -s busybox "$r/bin/sh"
with_libs "$r" /usr/bin/curl
image "$CURL_IMAGE" "$r" curl.tar --entrypoint /usr/bin/curl

touch "$out/done"
echo "$out"
