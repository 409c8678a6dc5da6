"""The scanning engine: recognise each file by content, dispatch to its format scanner,
recurse into containers, fingerprint, and collect a :class:`ScanReport`.

The engine knows nothing about rules or groups; :mod:`modelsec.policy` turns a report into
a verdict. The CLI, the operator and the webhook all use this one engine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from modelsec import formats
from modelsec.bytesource import ByteSource, FileSource, LimitExceeded
from modelsec.context import FormatRecord, Limits, ScanContext, ScanSink
from modelsec.findings import Finding, Incomplete, Severity, threat
from modelsec.formats.base import HEAD_SIZE, FormatCategory, filename_of

ENGINE_ERROR = "MS-GEN-002"

SYMLINK_ESCAPE = threat(
    "MS-FS-001",
    "SuspiciousComponents",
    Severity.HIGH,
    "Symlink points outside the model directory",
    "Replace the link with the file it should contain, inside the model directory.",
    "A loader that follows the link would read (or a later writer overwrite) a file outside "
    "the model, such as credentials or another model.",
)


@dataclass
class FileResult:
    """One top-level file: its fingerprint and what its scan produced."""

    path: str
    size: int
    sha256: str | None
    format: str
    findings: list[Finding] = field(default_factory=list)
    incompletes: list[Incomplete] = field(default_factory=list)
    formats: list[FormatRecord] = field(default_factory=list)
    dropped_findings: int = 0
    seconds: float = 0.0
    # Source-native fingerprint when no SHA-256 is known (remote files the scan did not read
    # whole): "git-blob:<oid>", "s3-etag:<etag>"; keeps the model fingerprint content-bound.
    digest: str | None = None


@dataclass
class KnownFile:
    """A file whose bytes come from a source (remote range reads) and whose fingerprint the
    source already knows, so the engine must not hash it by reading it whole."""

    path: str  # display path
    source: ByteSource
    sha256: str | None = None
    digest: str | None = None
    # Called once the file is scanned (verify digests, add source incompletes, free the
    # temporary download); its exceptions become incompletes.
    finish: "Callable[[FileResult], None] | None" = None


@dataclass
class ScanReport:
    """Everything one scan of one model produced, before any policy is applied."""

    target: str
    files: list[FileResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # cross-file (directory) findings
    incompletes: list[Incomplete] = field(default_factory=list)
    layout_formats: list[FormatRecord] = field(default_factory=list)  # tf-savedmodel, hf-repo
    locations: list[str] = field(default_factory=list)  # where the model came from
    seconds: float = 0.0
    revision: str | None = None  # what was scanned: commit sha, version ids / etags digest
    bytes_transferred: int | None = None  # remote sources: bytes fetched over the network

    def all_findings(self) -> list[Finding]:
        out = list(self.findings)
        for f in self.files:
            out.extend(f.findings)
        return out

    def all_incompletes(self) -> list[Incomplete]:
        out = list(self.incompletes)
        for f in self.files:
            out.extend(f.incompletes)
        return out

    def all_formats(self) -> list[FormatRecord]:
        return [record for f in self.files for record in f.formats] + self.layout_formats

    @property
    def bytes_scanned(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def fingerprint(self) -> str:
        """One digest for the whole model: SHA-256 over sorted (path, file digest) pairs."""
        import hashlib

        digest = hashlib.sha256()
        root = self.target.rstrip("/")
        for f in sorted(self.files, key=lambda r: r.path):
            rel = f.path[len(root) :].lstrip("/") if f.path.startswith(root) else f.path
            digest.update(f"{rel}\0{f.sha256 or f.digest or '-'}\n".encode())
        return digest.hexdigest()


ProgressCallback = Callable[[int], None]  # called with each increment of bytes fingerprinted


def detect(head: bytes, source: ByteSource, filename: str) -> "formats.FormatScanner | None":
    for scanner in formats.scanners():
        try:
            if scanner.detect(head, source, filename):
                return scanner
        except Exception:  # a detector that trips on odd bytes just doesn't match
            continue
    return None


def dispatch(source: ByteSource, ctx: ScanContext, expect: str | None = None) -> None:
    """Recognise ``source`` and run its scanner inside ``ctx``; never raises."""
    try:
        if source.size == 0:
            ctx.set_format("empty", FormatCategory.AUXILIARY)
            return
        head = source.read_at(0, HEAD_SIZE)
        scanner = formats.by_name(expect) if expect else None
        if scanner is None:
            scanner = detect(head, source, filename_of(ctx.path))
        if scanner is None:
            ctx.set_format("unknown", FormatCategory.UNKNOWN)
            return
        ctx.set_format(scanner.name, scanner.category)
        scanner.scan(source, ctx)
    except LimitExceeded as exc:
        ctx.incomplete(str(exc), code="MS-GEN-003")
    except (MemoryError, RecursionError) as exc:
        ctx.incomplete(f"resource limit while scanning: {type(exc).__name__}", ENGINE_ERROR)
    except Exception as exc:  # fail closed: an unexpected error is an ERROR, never ALLOWED
        ctx.incomplete(f"scanner error: {type(exc).__name__}: {exc}", ENGINE_ERROR)


class Engine:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    def scan_source(self, path: str, source: ByteSource) -> FileResult:
        """Scan one file given as a byte source (local, archive member, remote)."""
        started = time.perf_counter()
        sink = ScanSink(self.limits)
        ctx = ScanContext(path, sink, dispatch)
        dispatch(source, ctx)
        sha256 = None
        if isinstance(source, FileSource):
            sha256 = source.finish_digest()
        top = sink.formats[0].format if sink.formats else "unknown"
        return FileResult(
            path=path,
            size=source.size,
            sha256=sha256,
            format=top,
            findings=sink.findings,
            incompletes=sink.incompletes,
            formats=sink.formats,
            dropped_findings=sink.dropped_findings,
            seconds=time.perf_counter() - started,
        )

    def scan_files(
        self,
        target: str,
        files: Iterable[KnownFile],
        progress: ProgressCallback | None = None,
        locations: list[str] | None = None,
    ) -> ScanReport:
        """Scan files a source supplies (display path + byte source + known fingerprint) as
        one model. ``progress`` gets each file's size once it is done."""
        started = time.perf_counter()
        report = ScanReport(target=target, locations=list(locations or [target]))
        for known in files:
            result = self.scan_source(known.path, known.source)
            result.sha256 = result.sha256 or known.sha256
            result.digest = known.digest
            if known.finish is not None:
                try:
                    known.finish(result)
                except Exception as exc:  # fail closed: a failed check is an ERROR
                    result.incompletes.append(
                        Incomplete(known.path, f"{type(exc).__name__}: {exc}", ENGINE_ERROR)
                    )
            report.files.append(result)
            if progress:
                progress(result.size)
        report.seconds = time.perf_counter() - started
        return report

    def scan_file(
        self, path: str | os.PathLike[str], progress: ProgressCallback | None = None
    ) -> FileResult:
        display = os.fspath(path)
        try:
            with FileSource(display, progress) as source:
                return self.scan_source(display, source)
        except OSError as exc:
            return FileResult(
                path=display,
                size=0,
                sha256=None,
                format="unknown",
                incompletes=[Incomplete(display, f"cannot read: {exc.strerror or exc}", "MS-GEN-004")],
            )

    def scan_paths(
        self, paths: Iterable[str | os.PathLike[str]], progress: ProgressCallback | None = None
    ) -> list[ScanReport]:
        """One report per path given (a file, or a directory taken as one model)."""
        return [self.scan_path(p, progress) for p in paths]

    def scan_path(
        self, path: str | os.PathLike[str], progress: ProgressCallback | None = None
    ) -> ScanReport:
        started = time.perf_counter()
        target = os.fspath(path)
        report = ScanReport(target=target, locations=[os.path.abspath(target)])
        root = Path(target)
        if not root.exists() and not root.is_symlink():
            report.incompletes.append(Incomplete(target, "no such file or directory", "MS-GEN-004"))
        elif root.is_dir():
            files = list(self._walk(root, report))
            for file in files:
                report.files.append(self.scan_file(file, progress))
            self._analyze_directory(root, files, report)
        else:
            report.files.append(self.scan_file(root, progress))
        report.seconds = time.perf_counter() - started
        return report

    def _walk(self, root: Path, report: ScanReport) -> Iterator[Path]:
        """Regular files under ``root`` in a stable order; links that leave the tree are
        findings and are not followed."""
        real_root = root.resolve()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames) + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
                p = Path(dirpath) / name
                if p.is_symlink():
                    target = p.resolve()
                    if not target.is_relative_to(real_root):
                        report.findings.append(
                            SYMLINK_ESCAPE.at(
                                str(p),
                                f"symlink to {os.readlink(p)} leaves the model directory",
                                subject=os.readlink(p),
                            )
                        )
                        continue
                    if target.is_dir():
                        continue  # its files are reached through the real directory
                if p.is_file():
                    yield p

    def analyze_directory(self, root: Path, files: list[Path], report: ScanReport) -> None:
        """Run the multi-file layout checks on ``files`` under ``root`` (remote sources lay
        a model's small files out locally for them)."""
        self._analyze_directory(root, files, report)

    def _analyze_directory(self, root: Path, files: list[Path], report: ScanReport) -> None:
        sink = ScanSink(self.limits)
        for analyzer in formats.directory_analyzers():
            # one context per analyser: each records its own layout format (set_format
            # replaces a context's record, so a shared one let hf-repo erase tf-savedmodel)
            ctx = ScanContext(str(root), sink, dispatch)
            try:
                analyzer.analyze(root, files, ctx)
            except Exception as exc:
                ctx.incomplete(f"{analyzer.name} failed: {type(exc).__name__}: {exc}", ENGINE_ERROR)
        report.findings.extend(sink.findings)
        report.incompletes.extend(sink.incompletes)
        report.layout_formats.extend(sink.formats)
