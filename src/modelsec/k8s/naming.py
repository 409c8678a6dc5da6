"""Deterministic ModelScan names: one scan per (model, revision, group), whoever asks.

The webhook and the CLI compute the same name to find the scan that judges a workload's
model, and two requests for the same triple meet on the same object instead of scanning
twice. The name is readable (the model's last path component) and unique (a digest of
the whole triple).
"""

from __future__ import annotations

import hashlib
import re

from modelsec.references.model import canonical as canonical_ref
from modelsec.sources import ModelRefError, parse_model_uri

_DIGEST_CHARS = 16  # 64 bits: collisions need ~4e9 scans of a single cluster


def canonical(model: str, revision: str | None) -> tuple[str, str]:
    """(uri, revision) as :func:`~modelsec.sources.parse_model_uri` reads them, in one
    spelling per model (:func:`modelsec.references.model.canonical`): ``hf://org/m@abc`` and
    ``hf://org/m`` with revision ``abc`` are the same scan, and so are ``file:///m//x``
    and ``file:///m/x``, ``hf://Org/M`` and ``hf://org/m``."""
    try:
        ref = parse_model_uri(model, revision or None)
    except (ModelRefError, ValueError):
        return model.strip(), (revision or "").strip()
    return canonical_ref(ref)


def scan_key(model: str, revision: str | None, group: str) -> str:
    """Digest of the triple; also the ``modelsec.io/scan-key`` label (≤ 63 chars)."""
    uri, rev = canonical(model, revision)
    canonical_text = "\0".join((uri, rev, group.strip()))
    return hashlib.sha256(canonical_text.encode()).hexdigest()[:_DIGEST_CHARS]


def _tail(model: str) -> str:
    path = model.split("://", 1)[-1].split("@", 1)[0].rstrip("/")
    last = path.rsplit("/", 1)[-1].lower()
    # Dots are legal in names but not next to dashes: keep [a-z0-9-] only, always valid.
    cleaned = re.sub(r"[^a-z0-9]+", "-", last).strip("-")
    return cleaned[:60].strip("-") or "model"


def scan_name(model: str, revision: str | None, group: str) -> str:
    """``<model tail>-<digest>``, e.g. ``bert-base-uncased-3f2a9c0d1e4b5a67``."""
    return f"{_tail(model)}-{scan_key(model, revision, group)}"
