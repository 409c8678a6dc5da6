"""What every remote source does once it has listed a model: filter the files, scan each
through a :class:`RemoteFile`, record fingerprints and source failures, clean up.

A source module (``huggingface``, ``s3``) resolves the reference, lists the files of the
revision with sizes and digests as :class:`RemoteEntry` objects, and hands them here.
"""

from __future__ import annotations

import contextlib
import fnmatch
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from modelsec.engine import Engine, FileResult, KnownFile, ScanReport
from modelsec.findings import Incomplete
from modelsec.sources import retry
from modelsec.sources.config import CommonConfig
from modelsec.sources.credentials import redact, scrub_headers_text
from modelsec.sources.errors import FILE_NOT_FOUND, REMOTE_ERROR, TOO_MANY_FILES, SourceFailure
from modelsec.sources.layout import LocalLayout
from modelsec.sources.remote_file import RangeFetcher, RemoteFile, TempArea, TransferStats


@dataclass
class RemoteEntry:
    """One file of a remote model revision, as listed by its source."""

    path: str  # inside the model ("" for a model that is one object)
    size: int
    fetcher: RangeFetcher
    sha256: str | None = None  # source-supplied (Hub LFS oid, S3 full-object checksum)
    digest: str | None = None  # source-native fingerprint otherwise (git-blob:, s3-etag:)
    git_blob: str | None = None  # Hub git object id of a non-LFS file, checked when read whole


MAX_FILES = 100_000  # a model with more files is a mis-aimed reference (a whole bucket)


def _expand(pattern: str) -> str:
    # Same convention as huggingface_hub's filter_repo_objects: "dir/" means everything in it.
    return pattern + "*" if pattern.endswith("/") else pattern


def selected(path: str, allow: list[str], ignore: list[str]) -> bool:
    if allow and not any(fnmatch.fnmatch(path, _expand(p)) for p in allow):
        return False
    return not any(fnmatch.fnmatch(path, _expand(p)) for p in ignore)


def policy_of(cfg: CommonConfig) -> retry.RetryPolicy:
    return retry.RetryPolicy(cfg.max_retries, cfg.retry_base_seconds, cfg.retry_max_seconds)


def filter_entries(entries: list[RemoteEntry], cfg: CommonConfig, where: str) -> list[RemoteEntry]:
    """The entries to scan; a :class:`SourceFailure` if nothing is left (an empty scan must
    never come out ALLOWED)."""
    kept = [e for e in entries if selected(e.path, cfg.allow_patterns, cfg.ignore_patterns)]
    if not kept:
        if not entries:
            raise SourceFailure(FILE_NOT_FOUND, f"{where}: the model has no files to scan")
        raise SourceFailure(
            FILE_NOT_FOUND,
            f"{where}: none of its {len(entries)} file(s) is selected by allowPatterns="
            f"{cfg.allow_patterns} / ignorePatterns={cfg.ignore_patterns}; nothing to scan",
        )
    if len(kept) > MAX_FILES:
        raise SourceFailure(
            TOO_MANY_FILES,
            f"{where}: {len(kept)} files selected, more than the {MAX_FILES} a model scan "
            "accepts; point the reference at the model's own prefix or use allowPatterns",
        )
    return kept


def scan_entries(
    engine: Engine,
    *,
    target: str,
    locations: list[str],
    entries: list[RemoteEntry],
    cfg: CommonConfig,
    progress: object = None,
) -> ScanReport:
    """Scan ``entries`` as one model (each file, then the multi-file layout checks); the
    temporary area is removed whatever happens."""
    stats = TransferStats()
    temp = TempArea(cfg.temp_root(), cfg.max_download_bytes)
    policy = policy_of(cfg)
    layout = LocalLayout(temp, target, cfg.hash_small_files_bytes)

    def finish(result: FileResult, remote: RemoteFile, entry: RemoteEntry) -> None:
        _finish(result, remote, cfg)
        if entry.path:  # a one-object model has no layout to check, as a local file has none
            layout.add(entry.path, remote, result.path, source_digest=entry.sha256 is not None)

    def known_files() -> Iterator[KnownFile]:
        for entry in entries:
            display = f"{target}/{entry.path}" if entry.path else target
            remote = RemoteFile(
                display,
                entry.size,
                entry.fetcher,
                stats=stats,
                policy=policy,
                temp=temp,
                block_size=cfg.block_size,
                cache_bytes=cfg.cache_bytes,
                whole_fraction=cfg.whole_file_fraction,
                expected_sha256=entry.sha256,
                expected_git_blob=entry.git_blob,
            )
            try:
                yield KnownFile(
                    display, remote, entry.sha256, entry.digest,
                    finish=lambda result, r=remote, e=entry: finish(result, r, e),
                )
            finally:
                remote.close()

    try:
        with contextlib.closing(known_files()) as files:
            report = engine.scan_files(target, files, progress, locations)  # type: ignore[arg-type]
        layout.analyze(engine, report)
    finally:
        temp.cleanup()
    report.bytes_transferred = stats.bytes
    return report


def _finish(result: FileResult, remote: RemoteFile, cfg: CommonConfig) -> None:
    if result.sha256 is None:
        try:
            result.sha256 = remote.complete_digest(cfg.hash_small_files_bytes)
        except SourceFailure:
            pass  # recorded on remote.failure, reported below
    elif remote.sha256 is None and remote.failure is None and result.size == 0:
        remote.complete_digest(0)
    if remote.failure is not None:
        result.incompletes.append(
            Incomplete(result.path, clean(remote.failure.message), remote.failure.code)
        )


def clean(text: str) -> str:
    return redact(scrub_headers_text(text))


def scrubbed(report: ScanReport) -> ScanReport:
    """The report with every incomplete reason run through :func:`clean` (scanner errors
    may quote a source failure's message)."""
    report.incompletes = [replace(i, reason=clean(i.reason)) for i in report.incompletes]
    for f in report.files:
        f.incompletes = [replace(i, reason=clean(i.reason)) for i in f.incompletes]
    return report


def unexpected(exc: Exception, where: str) -> SourceFailure:
    """A bug or an answer we did not foresee: still an ERROR with a message, never a crash."""
    return SourceFailure(REMOTE_ERROR, f"{where}: unexpected {type(exc).__name__}: {exc}")


def failed(report: ScanReport, where: str, failure: SourceFailure) -> ScanReport:
    report.incompletes.append(Incomplete(where, clean(failure.message), failure.code))
    return report


def first_n(items: Iterable[str], n: int = 5) -> str:
    items = list(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more
