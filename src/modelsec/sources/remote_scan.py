"""What every remote source does once it has listed a model: filter the files, scan each
through a :class:`RemoteFile`, record fingerprints and source failures, clean up.

A source module (``huggingface``, ``s3``) resolves the reference, lists the files of the
revision with sizes and digests as :class:`RemoteEntry` objects, and hands them here.

A digest the source lists is a *claim*. ``FileResult.sha256`` holds only a SHA-256 computed
from the bytes this scan read (and checked against the claim); a file read in part is
fingerprinted by its claim, marked as one and scoped to the endpoint, repository or
bucket, and revision that made it (:meth:`RemoteEntry.claimed_digest`). So the model
fingerprint of a partly read model can never equal the fingerprint of other bytes, here
or from another source, however the server chose its claims.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
from collections.abc import Generator, Iterable
from dataclasses import dataclass, replace

from modelsec.engine import Engine, FileResult, KnownFile, ProgressCallback, ScanReport
from modelsec.findings import Incomplete
from modelsec.sources import retry
from modelsec.sources.config import CommonConfig
from modelsec.sources.credentials import redact, scrub_headers_text
from modelsec.sources.deadline import Deadline
from modelsec.sources.errors import DEADLINE, FILE_NOT_FOUND, REMOTE_ERROR, TOO_MANY_FILES, SourceFailure
from modelsec.sources.layout import LocalLayout
from modelsec.sources.remote_file import RangeFetcher, RemoteFile, TempArea, TransferStats


@dataclass
class RemoteEntry:
    """One file of a remote model revision, as listed by its source."""

    path: str  # inside the model ("" for a model that is one object)
    size: int
    fetcher: RangeFetcher
    sha256: str | None = None  # claimed by the source (Hub LFS oid, S3 full-object checksum)
    digest: str | None = None  # source-native fingerprint otherwise (git-blob:, s3-etag:)
    git_blob: str | None = None  # Hub git object id of a non-LFS file, checked when read whole
    scope: str = ""  # who claims the digests: endpoint + repository/bucket + revision

    def claimed_digest(self) -> str | None:
        """``claimed:<digest>@<scope>``: the source's fingerprint of this file, never
        equal to a SHA-256 we computed nor to the same claim made by another source."""
        claim = f"sha256:{self.sha256}" if self.sha256 else self.digest
        return f"claimed:{claim}@{self.scope}" if claim else None


MAX_FILES = 100_000  # a model with more files is a mis-aimed reference (a whole bucket)


def _expand(pattern: str) -> str:
    # Same convention as huggingface_hub's filter_repo_objects: "dir/" means everything in it.
    return pattern + "*" if pattern.endswith("/") else pattern


def selected(path: str, allow: list[str], ignore: list[str]) -> bool:
    if allow and not any(fnmatch.fnmatch(path, _expand(p)) for p in allow):
        return False
    return not any(fnmatch.fnmatch(path, _expand(p)) for p in ignore)


def policy_of(cfg: CommonConfig, deadline: Deadline) -> retry.RetryPolicy:
    return retry.RetryPolicy(cfg.max_retries, cfg.retry_base_seconds, cfg.retry_max_seconds, deadline)


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
    policy: retry.RetryPolicy,
    progress: ProgressCallback | None = None,
) -> ScanReport:
    """Scan ``entries`` as one model (each file, then the multi-file layout checks); the
    temporary area is removed whatever happens. Once the scan's deadline has passed, the
    files not yet scanned are reported as not inspected (the outcome is ERROR) and what
    was found so far is kept."""
    stats = TransferStats()
    temp = TempArea(cfg.temp_root(), cfg.max_download_bytes)
    layout = LocalLayout(temp, target, cfg.hash_small_files_bytes)
    late: list[Incomplete] = []

    def finish(result: FileResult, remote: RemoteFile, entry: RemoteEntry) -> None:
        _complete_digest(result, remote, entry, cfg)
        if entry.path:  # a one-object model has no layout to check, as a local file has none
            layout.add(entry.path, remote, result.path, source_digest=entry.sha256 is not None)
        if remote.failure is not None:  # from the scan, the digest or the layout's reads
            result.incompletes.append(
                Incomplete(result.path, clean(remote.failure.message), remote.failure.code)
            )

    def known_files() -> Generator[KnownFile, None, None]:
        for index, entry in enumerate(entries):
            if policy.deadline is not None and policy.deadline.remaining() <= 0:
                late.append(_not_reached(target, entries[index:], policy.deadline))
                return
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
                    display,
                    remote,
                    sha256=None,
                    digest=entry.claimed_digest(),
                    finish=functools.partial(finish, remote=remote, entry=entry),
                )
            finally:
                remote.close()

    try:
        with contextlib.closing(known_files()) as files:
            report = engine.scan_files(target, files, progress, locations)
        report.incompletes.extend(late)
        if not late:  # a layout missing the files never reached would mislead the checks
            layout.analyze(engine, report)
    finally:
        temp.cleanup()
    report.bytes_transferred = stats.bytes
    return report


def _complete_digest(result: FileResult, remote: RemoteFile, entry: RemoteEntry, cfg: CommonConfig) -> None:
    """``result.sha256``: computed from the bytes, or None. Small files without a claimed
    SHA-256 are read whole for it; a file listed as empty is asked for (an empty listing
    entry must not hide content). Failures are kept on ``remote.failure``."""
    try:
        remote.confirm_empty()
        remote.complete_digest(cfg.hash_small_files_bytes if entry.sha256 is None else 0)
    except SourceFailure:
        pass  # recorded on remote.failure, reported by the caller
    result.sha256 = remote.sha256


def _not_reached(target: str, skipped: list[RemoteEntry], deadline: Deadline) -> Incomplete:
    return Incomplete(
        target,
        f"the scan did not finish within {deadline.scan.seconds:g}s (scanDeadline); "
        f"{len(skipped)} file(s) not inspected: {first_n(e.path or target for e in skipped)}; "
        "the multi-file checks did not run",
        DEADLINE,
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
