"""Shared test helpers: paths to the labelled corpora beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def corpora_root() -> Path:
    return Path(os.environ.get("MODELSEC_CORPORA", REPO.parent / "shared" / "corpora"))


@pytest.fixture(scope="session")
def corpora() -> Path:
    root = corpora_root()
    if not root.is_dir():
        pytest.skip(f"shared corpora not found at {root} (set MODELSEC_CORPORA)")
    return root
