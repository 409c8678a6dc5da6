"""From a ModelScan spec and its source to a :class:`ScanJob`, and running one.

Resolution is where the operator fails closed on references: a ``file:///`` model must
resolve (symlinks included) inside the Local source's directory, an ``s3://`` model inside
the source's bucket and prefix, and the reference's type must match the source's. Anything
else is refused with a message naming both sides, before any byte is read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from modelsec.engine import Engine
from modelsec.k8s.source import HuggingFaceSource, ModelSourceSpec
from modelsec.metadata import SourceType
from modelsec.references.model import dot_segments, reference_problem
from modelsec.sources import ModelRef, ModelRefError, ScannedModel, ScanOptions, parse_model_uri, scan_model

# Incomplete codes from modelsec.sources.errors that say "try again later" rather than
# "this model cannot be judged": the operator retries them with backoff before it records
# an ERROR verdict.
TRANSIENT_SOURCE_CODES = frozenset({"MS-SRC-006", "MS-SRC-007"})


class ScanNotRun(Exception):
    """The scan did not produce a report: ``reason`` is the condition reason (CamelCase,
    also a metrics label), ``message`` says what happened for a human."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ScanRefused(ScanNotRun):
    """The scan cannot be run as specified; permanent until the spec or source changes."""


class ScanRetry(ScanNotRun):
    """Worth trying again later (model not there yet, source unreachable)."""


@dataclass(frozen=True)
class ScanJob:
    """A scan to run: the resolved reference, its source's type and digest, and the client config."""

    ref: ModelRef
    source_type: SourceType
    source_digest: str
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def cacheable(self) -> bool:
        """Content named immutably (a commit SHA, an S3 version id; not a tag) or checked by
        stat (local)."""
        return self.ref.scheme == "file" or self.ref.pinned

    def base_key(self) -> tuple[str, str, str]:
        """What deduplicates in-flight scans: the same reference through the same source."""
        return (self.ref.uri, self.ref.revision or "", self.source_digest)


def resolve(model: str, revision: str | None, source: ModelSourceSpec, source_digest: str) -> ScanJob:
    problem = reference_problem(model, revision)
    if problem:
        raise ScanRefused("InvalidReference", f"{model[:200]!r} is not a usable reference: {problem}")
    try:
        ref = parse_model_uri(model, revision or None)
        return _resolve(model, ref, source, source_digest)
    except ModelRefError as exc:
        raise ScanRefused("InvalidReference", str(exc)) from None
    except ValueError as exc:  # e.g. a path the OS refuses (embedded NUL): never retried
        raise ScanRefused("InvalidReference", f"{model[:200]!r} cannot be resolved: {exc}") from None


def _resolve(model: str, ref: ModelRef, source: ModelSourceSpec, source_digest: str) -> ScanJob:
    if ref.source_type != source.type:
        raise ScanRefused(
            "SourceMismatch",
            f"{model} is a {ref.source_type.value} reference but the group's source is "
            f"{source.type.value}; use a group bound to a {ref.source_type.value} ModelSource",
        )
    if source.type == SourceType.LOCAL:
        assert source.local is not None
        root = Path(os.path.realpath(source.local.path))
        target = Path(os.path.realpath(ref.location))
        if not target.is_relative_to(root):
            raise ScanRefused(
                "OutsideSource",
                f"{model} resolves to {target}, outside the Local source directory {root}; "
                "the operator only reads models inside it (failing closed)",
            )
        return ScanJob(ModelRef("file", str(target), ref.revision), source.type, source_digest)
    if source.type == SourceType.S3:
        assert source.s3 is not None
        bucket, _, key = ref.location.partition("/")
        if dot_segments(key):
            raise ScanRefused(
                "InvalidReference", f"{model}: '.' and '..' segments are ambiguous in S3 keys; failing closed"
            )
        prefix = source.s3.prefix.strip("/")
        inside = not prefix or PurePosixPath(key).is_relative_to(PurePosixPath(prefix))
        if bucket != source.s3.bucket or not inside:
            where = f"s3://{source.s3.bucket}/{prefix}".rstrip("/")
            raise ScanRefused(
                "OutsideSource",
                f"{model} is outside the S3 source {where}; failing closed",
            )
    if source.type == SourceType.HUGGING_FACE:
        hub = source.hugging_face or HuggingFaceSource()  # the struct is optional
        if not hub.serves(ref.location):
            raise ScanRefused(
                "OutsideSource",
                f"{model} does not match the Hugging Face source's models "
                f"({', '.join(hub.models)}); failing closed",
            )
    return ScanJob(ref, source.type, source_digest)


def local_signature(path: str) -> tuple[tuple[str, int, int, int], ...]:
    """(relative path, size, mtime_ns, inode) of every file under ``path``: cheap to take,
    and it changes when content is replaced, so a cached report is never served for
    different bytes (a writer who forges mtimes could as well swap files after a scan)."""
    root = Path(path)
    entries = []
    try:
        if root.is_file():
            st = root.stat()
            return (("", st.st_size, st.st_mtime_ns, st.st_ino),)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                st = p.lstat()
                entries.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns, st.st_ino))
    except OSError as exc:
        raise ScanRetry("ModelNotReadable", f"cannot read {path}: {exc.strerror or exc}") from None
    return tuple(entries)


def check_exists(job: ScanJob) -> None:
    if job.ref.scheme == "file" and not os.path.lexists(job.ref.location):
        raise ScanRetry(
            "ModelNotFound",
            f"{job.ref.uri} does not exist (yet?) in the Local source directory",
        )


def run_scan(job: ScanJob, engine: Engine, delay_seconds: float = 0.0) -> ScannedModel:
    """The blocking part, for a worker thread: read and parse the model, never execute it."""
    if delay_seconds:
        time.sleep(delay_seconds)  # test-only knob, see config.SCAN_DELAY_ENV
    scanned = scan_model(job.ref, engine, ScanOptions(config=dict(job.config)))
    transient = [i for i in scanned.report.all_incompletes() if i.code in TRANSIENT_SOURCE_CODES]
    if transient:
        raise ScanRetry("SourceUnavailable", f"{transient[0].file}: {transient[0].reason}")
    return scanned
