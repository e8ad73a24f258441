#!/usr/bin/env python3
# Role: builds a container image without docker, as an OCI image layout in one tar (oci-layout,
# index.json, blobs/sha256/...): one layer made from a directory (fixed mtimes, uid/gid 0,
# sorted, so the same input gives the same digest), an image config with entrypoint, user, env.
# `ctr images import`, `skopeo copy oci-archive:...` and `podman load` read it. Python 3 stdlib.
"""Build a reproducible OCI image archive from a root filesystem directory.

  release/oci-image.py --name ghcr.io/meshsniff/meshsniff --tag 0.1.0 --rootfs DIR \\
      --entrypoint /meshsniff --user 65534 -o OUT.tar

Prints the manifest digest (sha256:...) on stdout: that is the image's digest in a registry
(`skopeo copy` keeps it, ctr shows it). The archive's index.json names the image twice:
`org.opencontainers.image.ref.name` = the tag (the OCI convention, read by skopeo and podman)
and `io.containerd.image.name` = NAME:TAG (what `ctr images import` names the image by).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import time

# 2000-01-01T00:00:00Z, the date release/build.sh gives the krew archive's entries.
DEFAULT_EPOCH = 946684800

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"


def fail(msg):
    print(f"oci-image.py: {msg}", file=sys.stderr)
    sys.exit(2)


def canonical(obj):
    """JSON with sorted keys and no spaces: the bytes hashed are the same on every run."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def rfc3339(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def layer_tar(rootfs, mtime):
    """The directory's content as an uncompressed tar: sorted, owned by 0:0, mtime fixed,
    permission bits (with setuid/sticky) kept, symlinks as symlinks, nothing else kept."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for dirpath, dirnames, filenames in os.walk(rootfs, followlinks=False):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                entries.append(os.path.join(dirpath, name))
        for path in sorted(entries, key=lambda p: os.path.relpath(p, rootfs)):
            rel = os.path.relpath(path, rootfs)
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                fail(f"{path}: only files, directories and symlinks go into a layer")
    return buf.getvalue()


def gz(data):
    out = io.BytesIO()
    # mtime=0 and no file name in the gzip header: the compressed bytes depend on data only.
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as g:
        g.write(data)
    return out.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def argv_list(value):
    """`--entrypoint /meshsniff` or `--entrypoint '["/bin/sh","-c","..."]'` (also --cmd)."""
    if value is None:
        return None
    if value.startswith("["):
        try:
            v = json.loads(value)
        except json.JSONDecodeError as e:
            fail(f"{value!r}: not a JSON array of strings ({e})")
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            fail(f"{value!r}: not a JSON array of strings")
        return v
    return [value]


def pairs(values, what):
    out = {}
    for v in values:
        if "=" not in v:
            fail(f"{what} {v!r}: expected KEY=VALUE")
        k, val = v.split("=", 1)
        out[k] = val
    return out


def build(args):
    if not os.path.isdir(args.rootfs):
        fail(f"--rootfs {args.rootfs}: not a directory")
    if ":" in args.tag or "/" in args.tag or not args.tag:
        fail(f"--tag {args.tag!r}: a tag is the part after the colon, e.g. 0.1.0")
    if "@" in args.name or args.name.rsplit("/", 1)[-1].count(":"):
        fail(f"--name {args.name!r}: the repository without tag or digest (give --tag)")
    env_v = os.environ.get("SOURCE_DATE_EPOCH")
    epoch = args.mtime if args.mtime is not None else int(env_v) if env_v else DEFAULT_EPOCH

    raw = layer_tar(args.rootfs, epoch)
    diff_id = digest(raw)
    if args.compression == "gzip":
        layer, layer_mt = gz(raw), MT_LAYER + "+gzip"
    else:
        layer, layer_mt = raw, MT_LAYER

    config_section = {}
    entrypoint = argv_list(args.entrypoint)
    if entrypoint:
        config_section["Entrypoint"] = entrypoint
    cmd = argv_list(args.cmd)
    if cmd:
        config_section["Cmd"] = cmd
    if args.user is not None:
        config_section["User"] = args.user
    env = list(args.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    config_section["Env"] = env
    config_section["WorkingDir"] = args.workdir
    labels = pairs(args.label, "--label")
    if labels:
        config_section["Labels"] = labels
    created = rfc3339(epoch)
    config = {
        "architecture": args.arch,
        "os": args.os,
        "created": created,
        "config": config_section,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "release/oci-image.py"}],
    }
    config_b = canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": digest(config_b), "size": len(config_b)},
        "layers": [{"mediaType": layer_mt, "digest": digest(layer), "size": len(layer)}],
    }
    annotations = pairs(args.annotation, "--annotation")
    if annotations:
        manifest["annotations"] = annotations
    manifest_b = canonical(manifest)
    full = f"{args.name}:{args.tag}"
    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [
            {
                "mediaType": MT_MANIFEST,
                "digest": digest(manifest_b),
                "size": len(manifest_b),
                "platform": {"architecture": args.arch, "os": args.os},
                "annotations": {
                    "org.opencontainers.image.ref.name": args.tag,
                    "io.containerd.image.name": full,
                },
            }
        ],
    }
    files = [
        ("oci-layout", canonical({"imageLayoutVersion": "1.0.0"})),
        ("index.json", canonical(index)),
    ]
    blobs = {}
    for b in (config_b, manifest_b, layer):
        blobs[digest(b)[len("sha256:"):]] = b
    for hexd in sorted(blobs):
        files.append((f"blobs/sha256/{hexd}", blobs[hexd]))

    out_dir = os.path.dirname(os.path.abspath(args.output))
    tmp = os.path.join(out_dir, f".{os.path.basename(args.output)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
            for d in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
                t.addfile(info)
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, epoch
                t.addfile(info, io.BytesIO(data))
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if args.verbose:
        print(
            f"{full}: layer {len(raw)} bytes ({len(layer)} {args.compression}), "
            f"config {digest(config_b)}",
            file=sys.stderr,
        )
    print(digest(manifest_b))


def main():
    p = argparse.ArgumentParser(
        description="Build a reproducible OCI image archive (no docker) from a directory.",
        epilog="Prints the manifest digest. Import: ctr -n k8s.io images import OUT.tar; "
        "push: skopeo copy oci-archive:OUT.tar docker://NAME:TAG.",
    )
    p.add_argument("--name", required=True, help="repository, e.g. ghcr.io/meshsniff/meshsniff")
    p.add_argument("--tag", required=True, help="tag, e.g. 0.1.0")
    p.add_argument("--rootfs", required=True, help="directory that becomes the image's /")
    p.add_argument("-o", "--output", required=True, help="the archive to write")
    p.add_argument("--entrypoint", help="a path, or a JSON array of strings")
    p.add_argument("--cmd", help="Cmd: one argument, or a JSON array of strings")
    p.add_argument("--user", help="User: uid, uid:gid or a name")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE (repeatable)")
    p.add_argument("--workdir", default="/", help="WorkingDir (default /)")
    p.add_argument("--label", action="append", default=[], help="config label KEY=VALUE")
    p.add_argument("--annotation", action="append", default=[], help="manifest KEY=VALUE")
    p.add_argument("--arch", default="amd64")
    p.add_argument("--os", default="linux")
    p.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    p.add_argument(
        "--mtime",
        type=int,
        help=f"Unix seconds for every entry and `created` (default: SOURCE_DATE_EPOCH, "
        f"else {DEFAULT_EPOCH})",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="sizes on stderr")
    build(p.parse_args())


if __name__ == "__main__":
    main()
