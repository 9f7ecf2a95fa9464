"""Tests of hack/oci_image.py: run with `python3 -m unittest hack/oci_image_test.py`
(tests/tests/images.rs runs them in `make test`)."""

import contextlib
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oci_image  # noqa: E402


def make_rootfs(root):
    """A small tree with a directory, an executable, a symlink, a hard link and a FIFO."""
    os.makedirs(os.path.join(root, "usr/local/bin"))
    os.makedirs(os.path.join(root, "etc"))
    os.makedirs(os.path.join(root, "empty"))
    with open(os.path.join(root, "usr/local/bin/app"), "wb") as f:
        f.write(b"#!/bin/sh\necho hi\n")
    os.chmod(os.path.join(root, "usr/local/bin/app"), 0o755)
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n")
    os.symlink("usr/local/bin/app", os.path.join(root, "app"))
    os.link(os.path.join(root, "etc/passwd"), os.path.join(root, "etc/passwd.hard"))
    os.mkfifo(os.path.join(root, "fifo"))
    os.utime(os.path.join(root, "etc/passwd"), (2_000_000_000, 2_000_000_000))


class Archive:
    """An OCI archive read back into memory."""

    def __init__(self, path):
        with tarfile.open(path) as tar:
            self.names = tar.getnames()
            self.files = {
                m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()
            }
        self.index = json.loads(self.files["index.json"])
        self.manifest = self.blob(self.index["manifests"][0]["digest"])
        self.config = self.blob(self.manifest["config"]["digest"])

    def raw_blob(self, digest):
        algorithm, hexdigest = digest.split(":")
        return self.files[f"blobs/{algorithm}/{hexdigest}"]

    def blob(self, digest):
        return json.loads(self.raw_blob(digest))

    def layer(self, i):
        data = self.raw_blob(self.manifest["layers"][i]["digest"])
        return tarfile.open(fileobj=io.BytesIO(data))


class OciImageTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.base = os.path.join(self.tmp.name, "base")
        make_rootfs(self.base)
        self.app = os.path.join(self.tmp.name, "app")
        os.makedirs(os.path.join(self.app, "opt"))
        with open(os.path.join(self.app, "opt/train.py"), "w") as f:
            f.write("print('train')\n")

    def build(self, out="image.tar", layers=None, **spec):
        spec.setdefault("name", "ghcr.io/verdant-dev/verdant-operator:0.1.0")
        path = os.path.join(self.tmp.name, out)
        oci_image.build_archive(oci_image.ImageSpec(**spec), layers or [self.base, self.app], path)
        return path

    def test_every_blob_is_named_by_its_sha256_and_sizes_match(self):
        archive = Archive(self.build())
        blobs = [n for n in archive.files if n.startswith("blobs/sha256/")]
        self.assertEqual(len(blobs), 4)  # config, manifest, two layers
        for name in blobs:
            self.assertEqual(hashlib.sha256(archive.files[name]).hexdigest(), name.split("/")[-1])
        descriptors = [archive.index["manifests"][0], archive.manifest["config"]]
        descriptors += archive.manifest["layers"]
        for desc in descriptors:
            self.assertEqual(len(archive.raw_blob(desc["digest"])), desc["size"])

    def test_layout_index_and_manifest_follow_the_oci_spec(self):
        archive = Archive(self.build())
        self.assertEqual(json.loads(archive.files["oci-layout"]), {"imageLayoutVersion": "1.0.0"})
        self.assertEqual(archive.index["schemaVersion"], 2)
        self.assertEqual(archive.index["mediaType"], oci_image.MEDIA_INDEX)
        (entry,) = archive.index["manifests"]
        self.assertEqual(entry["mediaType"], oci_image.MEDIA_MANIFEST)
        self.assertEqual(entry["platform"], {"architecture": "amd64", "os": "linux"})
        self.assertEqual(
            entry["annotations"],
            {
                "io.containerd.image.name": "ghcr.io/verdant-dev/verdant-operator:0.1.0",
                "org.opencontainers.image.ref.name": "0.1.0",
            },
        )
        self.assertEqual(archive.manifest["schemaVersion"], 2)
        self.assertEqual(archive.manifest["mediaType"], oci_image.MEDIA_MANIFEST)
        self.assertEqual(archive.manifest["config"]["mediaType"], oci_image.MEDIA_CONFIG)
        self.assertEqual(
            [layer["mediaType"] for layer in archive.manifest["layers"]], [oci_image.MEDIA_LAYER] * 2
        )

    def test_config_carries_the_runtime_settings_and_diff_ids(self):
        archive = Archive(
            self.build(
                entrypoint=["/usr/local/bin/app"],
                cmd=["run"],
                user="65532:65532",
                env=["PATH=/usr/bin"],
                labels={"org.opencontainers.image.licenses": "Apache-2.0"},
                workdir="/home/nonroot",
                created=1_700_000_000,
            )
        )
        config = archive.config
        self.assertEqual((config["architecture"], config["os"]), ("amd64", "linux"))
        self.assertEqual(config["created"], "2023-11-14T22:13:20Z")
        self.assertEqual(
            config["config"],
            {
                "Entrypoint": ["/usr/local/bin/app"],
                "Cmd": ["run"],
                "User": "65532:65532",
                "Env": ["PATH=/usr/bin"],
                "Labels": {"org.opencontainers.image.licenses": "Apache-2.0"},
                "WorkingDir": "/home/nonroot",
            },
        )
        self.assertEqual(config["rootfs"]["type"], "layers")
        # Uncompressed layers: the diff_ids are the layer digests, in order.
        self.assertEqual(
            config["rootfs"]["diff_ids"], [layer["digest"] for layer in archive.manifest["layers"]]
        )
        self.assertEqual(len(config["history"]), 2)

    def test_layer_keeps_modes_links_and_numeric_owners_and_skips_special_files(self):
        archive = Archive(self.build(created=1_700_000_000))
        layer = archive.layer(0)
        members = {m.name: m for m in layer.getmembers()}
        self.assertNotIn("fifo", members)
        self.assertEqual(list(members), sorted(members))  # parents first, sorted
        app = members["usr/local/bin/app"]
        self.assertTrue(app.isreg())
        self.assertEqual(app.mode & 0o777, 0o755)
        self.assertEqual(layer.extractfile(app).read(), b"#!/bin/sh\necho hi\n")
        self.assertTrue(members["app"].issym())
        self.assertEqual(members["app"].linkname, "usr/local/bin/app")
        self.assertTrue(members["etc/passwd.hard"].islnk())
        self.assertEqual(members["etc/passwd.hard"].linkname, "etc/passwd")
        self.assertTrue(members["empty"].isdir())
        for m in members.values():
            self.assertEqual((m.uname, m.gname), ("", ""))
            self.assertEqual((m.uid, m.gid), (os.getuid(), os.getgid()))
            self.assertLessEqual(m.mtime, 1_700_000_000)
        self.assertEqual(
            [m.name for m in archive.layer(1).getmembers()], ["opt", "opt/train.py"]
        )

    def test_same_inputs_give_the_same_bytes(self):
        first = self.build(out="a.tar")
        os.utime(os.path.join(self.app, "opt/train.py"))  # a newer mtime is clamped
        second = self.build(out="b.tar")
        with open(first, "rb") as a, open(second, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_a_changed_file_changes_the_layer_and_manifest_digest(self):
        before = Archive(self.build(out="a.tar"))
        with open(os.path.join(self.app, "opt/train.py"), "w") as f:
            f.write("print('changed')\n")
        after = Archive(self.build(out="b.tar"))
        self.assertEqual(before.manifest["layers"][0], after.manifest["layers"][0])
        self.assertNotEqual(before.manifest["layers"][1], after.manifest["layers"][1])
        self.assertNotEqual(
            before.index["manifests"][0]["digest"], after.index["manifests"][0]["digest"]
        )

    def test_references(self):
        self.assertEqual(oci_image.split_reference("registry.k8s.io/pause:3.10"), ("registry.k8s.io/pause", "3.10"))
        self.assertEqual(oci_image.split_reference("localhost:5000/trainer"), ("localhost:5000/trainer", "latest"))
        for bad in ["", "has space:1", "repo@sha256:abc", "repo:"]:
            with self.assertRaisesRegex(oci_image.ImageError, "--name"):
                oci_image.split_reference(bad)

    def test_bad_input_names_the_option(self):
        out = os.path.join(self.tmp.name, "x.tar")
        with self.assertRaisesRegex(oci_image.ImageError, "--layer: .*missing is not a directory"):
            oci_image.build_archive(
                oci_image.ImageSpec(name="a/b:1"), [os.path.join(self.tmp.name, "missing")], out
            )
        self.assertFalse(os.path.exists(out))
        with self.assertRaisesRegex(oci_image.ImageError, "--label: 'novalue'"):
            oci_image._parse_args(["--name", "a/b:1", "--out", out, "--label", "novalue"])
        with self.assertRaisesRegex(oci_image.ImageError, "--env: '=x'"):
            oci_image._parse_args(["--name", "a/b:1", "--out", out, "--env", "=x"])

    def test_command_line_writes_the_archive(self):
        out = os.path.join(self.tmp.name, "cli.tar")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = oci_image.main(
                ["--name", "localhost/verdant-trainer:0.1.0", "--layer", self.app, "--out", out,
                 "--entrypoint", "torchrun", "--cmd", "/opt/train.py", "--label", "a=b=c"]
            )
        self.assertEqual(code, 0)
        self.assertIn("localhost/verdant-trainer:0.1.0 sha256:", printed.getvalue())
        archive = Archive(out)
        self.assertEqual(archive.config["config"]["Labels"], {"a": "b=c"})
        self.assertEqual(archive.config["config"]["Entrypoint"], ["torchrun"])
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            code = oci_image.main(["--name", "x y", "--layer", self.app, "--out", out])
        self.assertEqual(code, 2)
        self.assertIn("--name: 'x y'", errors.getvalue())


if __name__ == "__main__":
    unittest.main()
