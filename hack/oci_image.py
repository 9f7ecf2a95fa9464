#!/usr/bin/env python3
"""Assembles an OCI image archive from root filesystem folders, without a container engine.

    hack/oci_image.py --name ghcr.io/verdant-dev/verdant-operator:0.1.0 \
        --layer build/rootfs-base --layer build/rootfs-app \
        --entrypoint /usr/local/bin/verdant-operator --user 65532:65532 \
        --label org.opencontainers.image.version=0.1.0 --out operator.tar

Each --layer folder becomes one uncompressed tar layer, in order (later layers win).
The result is an OCI image layout in a tar (oci-layout, index.json, blobs/sha256/...),
which `ctr images import` and `skopeo copy oci-archive:` accept. Its index names the
image twice: `io.containerd.image.name` (the full reference, which containerd uses
as the image name) and `org.opencontainers.image.ref.name` (the tag, per the OCI spec).

Guarantees:
- The same folders and options give a byte-identical archive: entries are sorted, times
  are clamped to --created (default: SOURCE_DATE_EPOCH, else 0), owner names are dropped
  (numeric ids stay), and JSON is written with sorted keys.
- Every blob is named by the sha256 of its bytes; the config's diff_ids equal the layer
  digests (layers are uncompressed).
- Hard links inside a layer stay hard links; device files, sockets and FIFOs are skipped
  (the runtime provides /dev).

Uses only the Python standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"


class ImageError(Exception):
    """Bad input: the message names the option or path at fault."""


@dataclass
class ImageSpec:
    """What goes into the image config besides the layers."""

    name: str
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: str = ""
    env: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    workdir: str = ""
    created: int = 0
    architecture: str = "amd64"
    os: str = "linux"


def split_reference(name: str) -> tuple[str, str]:
    """Splits `repo[:tag]` into (repository, tag); the tag defaults to `latest`."""
    if not name or any(c.isspace() for c in name) or "@" in name:
        raise ImageError(f"--name: {name!r} is not an image reference like repo/name:tag")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
    else:
        repo, tag = name, "latest"
    if not repo or not tag:
        raise ImageError(f"--name: {name!r} is not an image reference like repo/name:tag")
    return repo, tag


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, target):
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


def _walk_sorted(root: str, rel: str = ""):
    """Yields (relative path, absolute path) for everything under root, sorted, parents first."""
    for name in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
        child_rel = f"{rel}/{name}" if rel else name
        child_abs = os.path.join(root, child_rel)
        yield child_rel, child_abs
        if stat.S_ISDIR(os.lstat(child_abs).st_mode):
            yield from _walk_sorted(root, child_rel)


def write_layer(rootfs: str, out, created: int) -> tuple[str, int]:
    """Writes rootfs as a tar layer to the binary file `out`; returns (digest, size)."""
    if not os.path.isdir(rootfs):
        raise ImageError(f"--layer: {rootfs} is not a directory")
    writer = _HashingWriter(out)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in _walk_sorted(rootfs):
            st = os.lstat(path)
            if not (
                stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)
            ):
                continue
            info = tar.gettarinfo(path, arcname=rel)
            info.mtime = min(int(st.st_mtime), created) if created else 0
            info.uname = ""
            info.gname = ""
            info.pax_headers = {}
            if info.isreg():
                with open(path, "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
    return "sha256:" + writer.sha.hexdigest(), writer.size


def _json_bytes(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def image_config(spec: ImageSpec, diff_ids: list[str]) -> dict:
    created = datetime.fromtimestamp(spec.created, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {
        "User": spec.user,
        "Env": spec.env,
        "Entrypoint": spec.entrypoint,
        "Cmd": spec.cmd,
        "WorkingDir": spec.workdir,
        "Labels": spec.labels,
    }
    config = {key: value for key, value in fields.items() if value}
    return {
        "architecture": spec.architecture,
        "os": spec.os,
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "hack/oci_image.py"} for _ in diff_ids],
    }


def _descriptor(media_type: str, digest: str, size: int, **extra) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def build_archive(spec: ImageSpec, layers: list[str], out_path: str) -> dict:
    """Writes the OCI archive to out_path (atomically); returns the index it wrote."""
    _, tag = split_reference(spec.name)
    if not layers:
        raise ImageError("--layer: give at least one root filesystem folder")
    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".oci-build-") as work:
        blobs = os.path.join(work, "blobs", "sha256")
        os.makedirs(blobs)

        def put_blob(data: bytes) -> tuple[str, int]:
            digest = hashlib.sha256(data).hexdigest()
            with open(os.path.join(blobs, digest), "wb") as f:
                f.write(data)
            return "sha256:" + digest, len(data)

        layer_descs = []
        for rootfs in layers:
            tmp = os.path.join(work, "layer.tmp")
            with open(tmp, "wb") as f:
                digest, size = write_layer(rootfs, f, spec.created)
            os.replace(tmp, os.path.join(blobs, digest.split(":", 1)[1]))
            layer_descs.append(_descriptor(MEDIA_LAYER, digest, size))

        config_digest, config_size = put_blob(
            _json_bytes(image_config(spec, [d["digest"] for d in layer_descs]))
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": _descriptor(MEDIA_CONFIG, config_digest, config_size),
            "layers": layer_descs,
        }
        manifest_digest, manifest_size = put_blob(_json_bytes(manifest))
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                _descriptor(
                    MEDIA_MANIFEST,
                    manifest_digest,
                    manifest_size,
                    platform={"architecture": spec.architecture, "os": spec.os},
                    annotations={ANNOTATION_CONTAINERD_NAME: spec.name, ANNOTATION_REF_NAME: tag},
                )
            ],
        }
        with open(os.path.join(work, "index.json"), "wb") as f:
            f.write(_json_bytes(index))
        with open(os.path.join(work, "oci-layout"), "wb") as f:
            f.write(_json_bytes({"imageLayoutVersion": "1.0.0"}))

        tmp_out = out_path + ".tmp"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            for rel in ["oci-layout", "index.json", "blobs", "blobs/sha256"] + [
                f"blobs/sha256/{n}" for n in sorted(os.listdir(blobs))
            ]:
                info = tar.gettarinfo(os.path.join(work, rel), arcname=rel)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                info.mode = 0o755 if info.isdir() else 0o644
                if info.isreg():
                    with open(os.path.join(work, rel), "rb") as data:
                        tar.addfile(info, data)
                else:
                    tar.addfile(info)
        os.replace(tmp_out, out_path)
        return index


def _parse_args(argv: list[str]) -> tuple[ImageSpec, list[str], str]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="full reference, e.g. registry/repo:tag")
    p.add_argument("--layer", action="append", default=[], help="root filesystem folder (repeat)")
    p.add_argument("--out", required=True, help="the archive to write")
    p.add_argument("--entrypoint", action="append", default=[], help="one argv word (repeat)")
    p.add_argument("--cmd", action="append", default=[], help="one argv word (repeat)")
    p.add_argument("--user", default="", help="uid[:gid]")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE (repeat)")
    p.add_argument("--label", action="append", default=[], help="KEY=VALUE (repeat)")
    p.add_argument("--workdir", default="")
    p.add_argument(
        "--created",
        type=int,
        default=int(os.environ.get("SOURCE_DATE_EPOCH", "0")),
        help="Unix time for the config and the upper bound of file times",
    )
    a = p.parse_args(argv)
    labels = {}
    for item in a.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ImageError(f"--label: {item!r} is not KEY=VALUE")
        labels[key] = value
    for item in a.env:
        if "=" not in item or item.startswith("="):
            raise ImageError(f"--env: {item!r} is not KEY=VALUE")
    spec = ImageSpec(
        name=a.name,
        entrypoint=a.entrypoint,
        cmd=a.cmd,
        user=a.user,
        env=a.env,
        labels=labels,
        workdir=a.workdir,
        created=a.created,
    )
    return spec, a.layer, a.out


def main(argv: list[str]) -> int:
    try:
        spec, layers, out = _parse_args(argv)
        index = build_archive(spec, layers, out)
    except ImageError as e:
        print(f"oci_image: {e}", file=sys.stderr)
        return 2
    print(f"{spec.name} {index['manifests'][0]['digest']} {os.path.getsize(out)} bytes -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
