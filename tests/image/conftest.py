"""Image tests: build the OCI image with hack/build-image.sh (cached per commit under
.cache/image; MODELSEC_IMAGE_ARCHIVE=<file> uses a given archive instead), unpack it with
umoci, and run commands inside its root filesystem with image_sandbox.py. Marked ``image``
(not in a default run); hack/test.sh runs them: ``pytest -m image tests/image``. Needs root
(chroot, mount namespaces), mmdebstrap, umoci and unshare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from image_helpers import REPO, Image, require_tools


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    require_tools()
    # The commit is fixed here: in a shared checkout HEAD may move while the image builds.
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    given = os.environ.get("MODELSEC_IMAGE_ARCHIVE")
    if given:
        archive = Path(given)
    else:
        proc = subprocess.run(
            ["bash", str(REPO / "hack" / "build-image.sh")],
            capture_output=True,
            text=True,
            timeout=3600,
            env={**os.environ, "MODELSEC_IMAGE_COMMIT": commit},
        )
        if proc.returncode != 0:
            pytest.fail(f"hack/build-image.sh failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
        sys.stderr.write(
            "\n" + "\n".join(line for line in proc.stderr.splitlines() if "build-image:" in line) + "\n"
        )
        archive = Path(proc.stdout.strip().splitlines()[-1])
    work = tmp_path_factory.mktemp("image")
    layout = work / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    index = json.loads((layout / "index.json").read_text())
    (descriptor,) = index["manifests"]
    tag = descriptor["annotations"]["org.opencontainers.image.ref.name"]
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{tag}", str(work / "bundle")],
        check=True,
        capture_output=True,
    )
    manifest = json.loads((layout / "blobs" / "sha256" / descriptor["digest"].split(":")[1]).read_text())
    config = json.loads(
        (layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text()
    )
    commit = config["config"]["Labels"].get("org.opencontainers.image.revision", "") if given else commit
    return Image(commit, archive, layout, work / "bundle" / "rootfs", index, manifest, config)
