"""Helpers for the CLI tests: run ``modelsec`` as a real subprocess, as root or as an
unprivileged user, on files made in a folder that user can reach."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

NOBODY = 65534
# A protocol-0 pickle that imports os.system and calls it: built from bytes, never loaded.
OS_SYSTEM_PICKLE = b"cos\nsystem\n(S'echo pwned'\ntR."


def modelsec(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    as_user: int | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``modelsec ARGS`` in a subprocess; ``as_user`` drops to that uid/gid first."""
    command = [sys.executable, "-m", "modelsec", *args]
    if as_user is not None and os.geteuid() != as_user:
        command = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups", *command]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        errors="surrogateescape",
    )


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is private to its owner), removed
    afterwards even where a test took permissions away."""
    path = Path(tempfile.mkdtemp(prefix="modelsec-cli-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for dirpath, dirnames, _ in os.walk(path):
            for name in dirnames:
                child = os.path.join(dirpath, name)
                if not os.path.islink(child):
                    os.chmod(child, stat.S_IRWXU)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def unprivileged() -> int:
    """A uid to run the CLI as, where permissions apply (root reads everything)."""
    if os.geteuid() != 0:
        return os.geteuid()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop privileges to test permissions")
    probe = modelsec("--version", as_user=NOBODY)
    if probe.returncode != 0:
        pytest.skip(f"uid {NOBODY} cannot run this Python or read the checkout: {probe.stderr.strip()}")
    return NOBODY
