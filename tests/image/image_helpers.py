"""What the image tests share: the unpacked image and a way to run commands inside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SANDBOX = Path(__file__).with_name("image_sandbox.py")


@dataclass
class Image:
    commit: str  # what it was built from
    archive: Path
    layout: Path
    rootfs: Path
    index: dict[str, Any]
    manifest: dict[str, Any]
    config: dict[str, Any]

    def blob(self, digest: str) -> Path:
        return self.layout / "blobs" / "sha256" / digest.split(":", 1)[1]

    @property
    def user(self) -> str:
        return str(self.config["config"]["User"])

    def run(self, *command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``command`` inside the image, as its user, read-only root, no network, no shell."""
        return subprocess.run(
            [
                "unshare",
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--propagation",
                "private",
                "--",
                sys.executable,
                str(SANDBOX),
                str(self.rootfs),
                self.user,
                json.dumps(self.config["config"]["Env"]),
                "--",
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def require_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("the image tests need root (the build assembles a root filesystem; the tests chroot)")
    missing = [
        tool for tool in ("umoci", "unshare", "mount", "mmdebstrap", "strip") if shutil.which(tool) is None
    ]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install mmdebstrap umoci util-linux binutils")
