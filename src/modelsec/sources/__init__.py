"""Model references and the sources that serve them.

Everything that scans a model by reference (the CLI with ``hf://`` or ``s3://``, the
operator reconciling a ModelScan, the webhook matching groups) goes through
:func:`parse_model_uri` and :func:`scan_model`, so a reference means the same everywhere.

Local files are handled here; remote sources live in their own modules (one per source
type) and register in :data:`SOURCE_MODULES`.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from modelsec.engine import Engine, ProgressCallback, ScanReport
from modelsec.findings import Incomplete
from modelsec.metadata import ModelMetadata, SourceType
from modelsec.sources.errors import CLIENT_MISSING


class ModelRefError(ValueError):
    """A model reference that cannot be understood; the message says how to write it."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: ``hf://org/name@rev``, ``s3://bucket/key``, ``file:///p``."""

    scheme: str  # "hf" | "s3" | "file"
    location: str  # org/name, bucket/key-or-prefix, or absolute path
    revision: str | None = None

    @property
    def source_type(self) -> SourceType:
        return {"hf": SourceType.HUGGING_FACE, "s3": SourceType.S3, "file": SourceType.LOCAL}[self.scheme]

    @property
    def pinned(self) -> bool:
        """The revision names content that cannot change: a full Hub commit SHA (each scan
        checks that the Hub serves that commit) or an S3 version id. Branches and tags
        move, and S3 ``etag:``/``sha256:`` revisions are re-checked against the objects by
        each scan, so a verdict kept for them could be about bytes no longer there."""
        if not self.revision:
            return False
        if self.scheme == "hf":
            return re.fullmatch(r"[0-9a-fA-F]{40}", self.revision) is not None
        return self.scheme == "s3" and not self.revision.startswith(("etag:", "sha256:"))

    @property
    def uri(self) -> str:
        base = f"file://{self.location}" if self.scheme == "file" else f"{self.scheme}://{self.location}"
        return base

    def __str__(self) -> str:
        return f"{self.uri}@{self.revision}" if self.revision else self.uri


# The Hub's own host names (an address merely ending in "huggingface.co", such as
# evilhuggingface.co, is another server: reading it as the Hub would scan another model).
HUB_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})


def parse_model_uri(text: str, revision: str | None = None) -> ModelRef:
    """Parse a reference as users write it. A plain path is a local file or directory.

    ``@revision`` suffixes are accepted on ``hf://`` and ``s3://`` references; an explicit
    ``revision`` argument wins over the suffix.
    """
    text = text.strip()
    if not text:
        raise ModelRefError("empty model reference")
    if "://" not in text:
        return ModelRef("file", os.path.abspath(text), revision)
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # "s3://[": urlsplit refuses brackets that are not an IPv6 host
        raise ModelRefError(f"{text}: not a valid URI ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ModelRefError(f"{text}: file:// references take an absolute path (file:///models/x)")
        return ModelRef("file", unquote(parts.path) or "/", revision)
    if scheme in ("https", "http") and (parts.hostname or "").rstrip(".") in HUB_HOSTS:
        path = parts.path.strip("/")
        segments = path.split("/")
        if len(segments) < 2:
            raise ModelRefError(f"{text}: expected https://huggingface.co/<org>/<name>")
        rev = None
        if len(segments) >= 4 and segments[2] in ("tree", "blob", "resolve"):
            rev = segments[3]
        return ModelRef("hf", "/".join(segments[:2]), revision or rev)
    if scheme in ("hf", "s3"):
        location = (parts.netloc + parts.path).strip()
        rev = None
        if "@" in location:
            location, rev = location.rsplit("@", 1)
            if not rev:
                raise ModelRefError(f"{text}: empty revision after '@'")
        if scheme == "hf":
            location = location.strip("/")
            if location.count("/") != 1 or not all(location.split("/")):
                raise ModelRefError(f"{text}: expected hf://<org>/<name>[@revision]")
        elif not parts.netloc:
            raise ModelRefError(f"{text}: expected s3://<bucket>/<key or prefix>")
        return ModelRef(scheme, location, revision or rev)
    raise ModelRefError(
        f"{text}: unsupported scheme {scheme!r} (use hf://org/name, s3://bucket/key, "
        "file:///path or a plain path)"
    )


@dataclass
class ScannedModel:
    """A scan of one model reference: the engine's report plus what the source knew."""

    ref: ModelRef
    report: ScanReport
    metadata: ModelMetadata
    source_type: SourceType


class RemoteScanner(Protocol):
    """Implemented by each remote source module as ``scan(ref, engine, options)``."""

    def __call__(self, ref: ModelRef, engine: Engine, options: ScanOptions) -> ScannedModel: ...


# One line per remote source type: scheme -> module under modelsec.sources exposing `scan`.
SOURCE_MODULES: dict[str, str] = {
    "hf": "huggingface",
    "s3": "s3",
}


@dataclass
class ScanOptions:
    """How a source scans: progress reporting, display paths, source settings."""

    progress: ProgressCallback | None = None  # called with byte increments as files are fingerprinted
    display: str | None = None  # local paths: show files under the path as the user typed it
    config: dict[str, Any] = field(default_factory=dict)  # source-specific (endpoint, creds)


def scan_model(
    ref: ModelRef, engine: Engine | None = None, options: ScanOptions | None = None
) -> ScannedModel:
    """Scan the model a reference names. Source failures become ERROR-making incompletes
    with a precise message, never an exception and never an empty ALLOWED report."""
    engine = engine or Engine()
    options = options or ScanOptions()
    if ref.scheme == "file":
        report = engine.scan_path(options.display or ref.location, options.progress)
        report.locations = [ref.uri]
        return ScannedModel(ref, report, ModelMetadata(uri=ref.uri, revision=ref.revision), SourceType.LOCAL)
    module_name = SOURCE_MODULES.get(ref.scheme)
    if module_name is None:
        report = ScanReport(target=str(ref), locations=[ref.uri])
        report.incompletes.append(
            Incomplete(str(ref), f"no {ref.scheme}:// source is available in this build", "MS-SRC-001")
        )
        return ScannedModel(ref, report, ModelMetadata(uri=ref.uri), ref.source_type)
    try:
        scan: RemoteScanner = importlib.import_module(f"modelsec.sources.{module_name}").scan
    except ImportError as exc:
        # Remote sources are built on the modelsec[remote] libraries (huggingface_hub, boto3,
        # httpx): without them the model cannot be read, an ERROR that says how to fix it.
        report = ScanReport(target=str(ref), locations=[ref.uri])
        report.incompletes.append(
            Incomplete(
                str(ref),
                f"{ref.scheme}:// sources need modelsec[remote] ({exc}): pip install "
                "'modelsec[remote]'; failing closed",
                CLIENT_MISSING,
            )
        )
        return ScannedModel(ref, report, ModelMetadata(uri=ref.uri), ref.source_type)
    return scan(ref, engine, options)
