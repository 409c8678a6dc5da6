"""The scanning engine: recognise each file by content, dispatch to its format scanner,
recurse into containers, fingerprint, and collect a :class:`ScanReport`.

The engine knows nothing about rules or groups; :mod:`modelsec.policy` turns a report into
a verdict. The CLI, the operator and the webhook all use this one engine.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modelsec import disguise, formats
from modelsec.bytesource import ByteSource, FileSource, LimitExceeded, NotRegularFile, not_regular
from modelsec.context import UNSCANNED_SIBLING, FormatRecord, Limits, ScanContext, ScanSession, ScanSink
from modelsec.findings import Finding, Incomplete, Severity, threat
from modelsec.formats.base import HEAD_SIZE, FormatCategory, FormatScanner, filename_of
from modelsec.integrity import evidence
from modelsec.interpretations import REGISTERED, detect_all, polyglot_finding

ENGINE_ERROR = "MS-GEN-002"
# A path that could not be read: unreadable, not listable, not a regular file, a link loop
# or a dangling link. Never skipped: it makes content rules ERROR.
UNREADABLE = "MS-GEN-004"

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
    # The bytes of a signature bundle, kept for the rules that judge it after the scan
    # (modelsec.integrity.evidence); None for every other file.
    content: bytes | None = None
    # Other files a loader of this one opens (ScanContext.needs_sibling), display paths
    needs: list[str] = field(default_factory=list)


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
    finish: Callable[[FileResult], None] | None = None


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
    content_bytes: int = 0  # FileResult.content kept so far, bounded by add_file

    def add_file(self, result: FileResult) -> None:
        """Append a scanned file; the contents kept for rules stay within
        :data:`~modelsec.integrity.evidence.MAX_REPORT_BYTES` (past it a file's content is
        dropped, and the rule that wanted it fails closed saying so)."""
        if result.content is not None:
            if self.content_bytes + len(result.content) > evidence.MAX_REPORT_BYTES:
                result.content = None
            else:
                self.content_bytes += len(result.content)
        self.files.append(result)

    def check_needs(self) -> None:
        """Every file a loader of a scanned file also opens must be in this scan (a file of
        the directory or the source's listing): a single-file scan of an old
        joblib dump does not cover the ``.npy`` files it loads with ``allow_pickle=True``.
        What is missing makes the scan incomplete (fail closed), naming the file."""
        scanned = {f.path for f in self.files}
        for result in self.files:
            for needed in dict.fromkeys(result.needs):
                if needed not in scanned or needed == result.path:  # (a file is not its own sibling)
                    self.incompletes.append(
                        Incomplete(
                            result.path,
                            f"its loader also opens {needed!r}, which this scan does not hold; "
                            "scan the directory (or archive) the files are in together",
                            UNSCANNED_SIBLING,
                        )
                    )

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
            # surrogatepass: a file name that is not valid UTF-8 (os.fsdecode gives lone
            # surrogates) still fingerprints, deterministically, instead of raising
            digest.update(f"{rel}\0{f.sha256 or f.digest or '-'}\n".encode("utf-8", "surrogatepass"))
        return digest.hexdigest()


ProgressCallback = Callable[[int], None]  # called with each increment of bytes fingerprinted


def dispatch(source: ByteSource, ctx: ScanContext, expect: str | None = None) -> None:
    """Recognise ``source`` and scan every interpretation of it inside ``ctx``; never raises.

    ``expect`` is a format the file's place imposes (the pickle of a PyTorch archive, the
    object data of a NumPy array): a loader reads it that way, so that reading alone is
    scanned. Content that no format recognises is a finding when its name or place says
    it is a model (:mod:`modelsec.disguise`).
    """
    try:
        head = source.read_at(0, HEAD_SIZE) if source.size else b""
        forced = formats.by_name(expect) if expect else None
        readings: tuple[FormatScanner, ...] = ()
        if source.size == 0:
            pass
        elif forced is not None:
            readings = (forced,)
        else:
            # Every reading a supported loader could take (modelsec.interpretations).
            found = detect_all(head, source, filename_of(ctx.path))
            readings = found.scanned
            if found.polyglot:
                ctx.report(polyglot_finding(ctx.path, found))
    except Exception as exc:  # fail closed: an unreadable head is an ERROR, never ALLOWED
        _failed(ctx, exc)
        return
    if not readings:
        ctx.set_format(
            "empty" if source.size == 0 else "unknown",
            FormatCategory.AUXILIARY if source.size == 0 else FormatCategory.UNKNOWN,
        )
    contexts = [ctx] + [ctx.alongside() for _ in readings[1:]]
    for scanner, reading in zip(readings, contexts):
        reading.set_format(scanner.name, scanner.category)
        try:
            scanner.scan(source, reading)
        except Exception as exc:
            _failed(reading, exc)
    if all(
        c.format_record is None
        or c.format_record.category == FormatCategory.UNKNOWN
        or c.format_record.format == "empty"
        for c in contexts
    ):
        disguise.check(ctx, head, source.size, expect)


def _failed(ctx: ScanContext, exc: Exception) -> None:
    if isinstance(exc, LimitExceeded):
        ctx.incomplete(str(exc), code="MS-GEN-003")
    elif isinstance(exc, (MemoryError, RecursionError)):
        ctx.incomplete(f"resource limit while scanning: {type(exc).__name__}", ENGINE_ERROR)
    else:  # fail closed: an unexpected error is an ERROR, never ALLOWED
        ctx.incomplete(f"scanner error: {type(exc).__name__}: {exc}", ENGINE_ERROR)


# A directory is scanned by worker processes (modelsec.parallel) only when there is enough
# work to pay for starting them: a few milliseconds per worker.
PARALLEL_MIN_FILES = 8
PARALLEL_MIN_BYTES = 32 << 20
# Below PARALLEL_MIN_BYTES, files are scanned here first and handed to workers only when the
# rest would pay for them (parallel.FanOut); False starts the workers at once (the tests of
# the workers themselves).
SCAN_HERE_FIRST = True


class Engine:
    """``workers`` > 1 scans the files of a local directory in that many processes (same
    results, same order), None as many as :func:`modelsec.parallel.default_workers` says;
    the operator and the webhook keep the default, one."""

    def __init__(self, limits: Limits | None = None, workers: int | None = 1) -> None:
        self.limits = limits or Limits()
        self.workers = workers
        self.session = ScanSession()  # what format scanners keep from one file to the next

    def scan_source(self, path: str, source: ByteSource) -> FileResult:
        """Scan one file given as a byte source (local, archive member, remote)."""
        started = time.perf_counter()
        sink = ScanSink(self.limits, self.session)
        ctx = ScanContext(path, sink, dispatch, formats=REGISTERED)
        dispatch(source, ctx)
        content = evidence.capture(path, source)
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
            content=content,
            needs=sink.needs,
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
            report.add_file(result)
            if progress:
                progress(result.size)
        report.check_needs()
        report.seconds = time.perf_counter() - started
        return report

    def scan_file(self, path: str | os.PathLike[str], progress: ProgressCallback | None = None) -> FileResult:
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
                incompletes=[Incomplete(display, _os_problem(display, exc), UNREADABLE)],
            )

    def scan_paths(
        self, paths: Iterable[str | os.PathLike[str]], progress: ProgressCallback | None = None
    ) -> list[ScanReport]:
        """One report per path given (a file, or a directory taken as one model)."""
        return [self.scan_path(p, progress) for p in paths]

    def scan_path(self, path: str | os.PathLike[str], progress: ProgressCallback | None = None) -> ScanReport:
        """One model: a regular file, or every file under a directory. Anything else (a
        FIFO, a device, a socket, a link loop) is reported as unreadable, never opened."""
        started = time.perf_counter()
        target = os.fspath(path)
        report = ScanReport(target=target, locations=[os.path.abspath(target)])
        try:
            mode = os.stat(target).st_mode  # a link the user named is followed
        except OSError as exc:
            report.incompletes.append(Incomplete(target, _os_problem(target, exc), UNREADABLE))
        else:
            if stat.S_ISDIR(mode):
                root = Path(target)
                files = list(self._walk(root, report))
                for result in self._scan_local_files(files, progress):
                    report.add_file(result)
                self._analyze_directory(root, files, report)
            elif stat.S_ISREG(mode):
                report.add_file(self.scan_file(target, progress))
            else:
                report.incompletes.append(Incomplete(target, str(not_regular(mode)), UNREADABLE))
        report.check_needs()
        report.seconds = time.perf_counter() - started
        return report

    def _scan_local_files(self, files: list[Path], progress: ProgressCallback | None) -> Iterable[FileResult]:
        """Each file's result, in order: here, or in worker processes when it pays."""
        if self.workers != 1 and len(files) > 1:
            large = _total_size(files) >= PARALLEL_MIN_BYTES
            if large or len(files) >= PARALLEL_MIN_FILES:
                from modelsec.parallel import default_workers, scan_in_workers

                workers = default_workers() if self.workers is None else self.workers
                if workers > 1:
                    if large or not SCAN_HERE_FIRST:
                        return scan_in_workers(self, files, workers, progress)
                    return self._scan_here_first(files, workers, progress)
        return (self.scan_file(file, progress) for file in files)

    def _scan_here_first(
        self, files: list[Path], workers: int, progress: ProgressCallback | None
    ) -> Iterator[FileResult]:
        """Small files: scanned here until the rest would pay for workers (parallel.FanOut)."""
        from modelsec.parallel import FanOut, scan_in_workers

        fan_out = FanOut(workers)
        for index, file in enumerate(files):
            started = time.perf_counter()
            yield self.scan_file(file, progress)
            if fan_out.pays(time.perf_counter() - started, len(files) - index - 1):
                yield from scan_in_workers(self, files[index + 1 :], workers, progress)
                return

    def _walk(self, root: Path, report: ScanReport) -> Iterator[Path]:
        """Regular files under ``root``, depth first, in name order.

        Links that leave the tree are findings and are not followed. Whatever cannot be
        listed or read (a directory without permission, a FIFO, a device, a socket, a link
        loop, a dangling link) becomes an incomplete naming it: a model with a part
        missing is ERROR, never ALLOWED as if the part were not there. Nothing but regular
        files is ever opened, and the walk keeps its own stack (no recursion limit)."""
        real_root = Path(os.path.realpath(root))
        pending = [root]
        while pending:
            directory = pending.pop()
            try:
                with os.scandir(directory) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                report.incompletes.append(
                    Incomplete(str(directory), f"cannot list directory: {_strerror(exc)}", UNREADABLE)
                )
                continue
            subdirectories: list[Path] = []
            for entry in entries:
                path = Path(entry.path)
                try:
                    if entry.is_symlink():
                        if self._link_is_file(path, real_root, report):
                            yield path
                    elif entry.is_dir(follow_symlinks=False):
                        subdirectories.append(path)
                    elif entry.is_file(follow_symlinks=False):
                        yield path
                    else:
                        raise not_regular(entry.stat(follow_symlinks=False).st_mode)
                except OSError as exc:
                    report.incompletes.append(Incomplete(str(path), _os_problem(str(path), exc), UNREADABLE))
            pending.extend(reversed(subdirectories))

    def _link_is_file(self, link: Path, real_root: Path, report: ScanReport) -> bool:
        """Whether a symlink met in the walk is a regular file to scan. A link that leaves
        the tree is a finding; a link to a directory inside it is reached through the real
        directory; a loop, a dangling link or a link to a device raises OSError."""
        pointee = os.readlink(link)
        if not Path(os.path.realpath(link)).is_relative_to(real_root):
            report.findings.append(
                SYMLINK_ESCAPE.at(
                    str(link), f"symlink to {pointee} leaves the model directory", subject=pointee
                )
            )
            return False
        mode = os.stat(link).st_mode  # ELOOP for a loop, ENOENT for a dangling link
        if stat.S_ISDIR(mode):
            return False
        if not stat.S_ISREG(mode):
            raise not_regular(mode)
        return True

    def analyze_directory(self, root: Path, files: list[Path], report: ScanReport) -> None:
        """Run the multi-file layout checks on ``files`` under ``root`` (remote sources lay
        a model's small files out locally for them)."""
        self._analyze_directory(root, files, report)

    def _analyze_directory(self, root: Path, files: list[Path], report: ScanReport) -> None:
        sink = ScanSink(self.limits, self.session)
        for analyzer in formats.directory_analyzers():
            # one context per analyser: each records its own layout format (set_format
            # replaces a context's record, so a shared one let hf-repo erase tf-savedmodel)
            ctx = ScanContext(str(root), sink, dispatch, formats=REGISTERED)
            try:
                analyzer.analyze(root, files, ctx)
            except Exception as exc:
                ctx.incomplete(f"{analyzer.name} failed: {type(exc).__name__}: {exc}", ENGINE_ERROR)
        report.findings.extend(sink.findings)
        report.incompletes.extend(sink.incompletes)
        report.layout_formats.extend(sink.formats)


def _total_size(files: list[Path]) -> int:
    total = 0
    for file in files:
        try:
            total += file.stat().st_size
        except OSError:
            pass  # the scan reports it
    return total


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _os_problem(path: str, exc: OSError) -> str:
    """Why ``path`` could not be read, in one line that says what to fix."""
    if isinstance(exc, NotRegularFile):
        return str(exc)
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        try:
            return f"dangling symbolic link to {os.readlink(path)}"
        except OSError:
            pass
    if exc.errno == errno.ENOENT:
        return "no such file or directory"
    return f"cannot read: {_strerror(exc)}"
