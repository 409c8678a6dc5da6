"""Are the files on disk the files that were scanned? (``modelsec verify``)

Each file is read once, front to back, in fixed-size chunks and hashed on the way:
memory stays constant whatever the model's size, and a file whose size already differs
is not read at all. Nothing is parsed or loaded: this is byte comparison only.

A verdict is about bytes. Between a scan and the moment a server loads the model, a
volume can be rewritten, a cache refreshed, a file added beside the weights. The answer
is per file: OK, CHANGED, MISSING (scanned, not on disk), EXTRA (on disk, never scanned),
UNPROVEN (the scan only had the source's claimed digest, see
:mod:`modelsec.integrity.claims`), ERROR (could not be read). The exit code follows:
0 when all match, 1 when anything differs, 2 when something could not be checked.

Symbolic links to files are followed (a loader reading the path gets the target's bytes,
as in a Hugging Face cache snapshot); links to directories, FIFOs, devices and sockets
are never opened and count as differences.
"""

from __future__ import annotations

import concurrent.futures
import enum
import fnmatch
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from modelsec.integrity.expected import Expected, ExpectedFile
from modelsec.safe_text import printable

CHUNK = 4 << 20  # bytes read per system call; large enough that hashing dominates


class Status(str, enum.Enum):
    OK = "OK"
    CHANGED = "CHANGED"  # the bytes (or the kind of file) differ from the scan's
    MISSING = "MISSING"  # scanned, not on disk
    EXTRA = "EXTRA"  # on disk, not in the scan
    UNPROVEN = "UNPROVEN"  # matches only a digest the source claimed, or none can be checked
    ERROR = "ERROR"  # could not be read


DIFFERENT = frozenset({Status.CHANGED, Status.MISSING, Status.EXTRA})


@dataclass(frozen=True)
class Check:
    """One result: a name inside the model ("" for the model as a whole), its status and why."""

    name: str  # inside the model; "" for the model as a whole (fingerprint checks)
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class Options:
    """How to verify: names to ignore, what to accept, a progress callback and files hashed at once."""

    ignore: tuple[str, ...] = ()  # globs of names on disk that are not part of the model
    allow_missing: bool = False  # scanned files absent on disk are reported, not failed
    accept_claimed: bool = False  # a file matching the source's claimed SHA-256 is OK
    progress: Callable[[int], None] | None = None  # called with bytes hashed (from any thread)
    jobs: int = 1  # files hashed at once: more for sharded models on fast storage and cores


@dataclass
class Result:
    """What :func:`verify` found: a check per name, files and bytes read, time taken; its exit code."""

    checks: list[Check] = field(default_factory=list)
    files_read: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    allow_missing: bool = False

    def counts(self) -> dict[Status, int]:
        found = {status: 0 for status in Status}
        for check in self.checks:
            found[check.status] += 1
        return found

    @property
    def exit_code(self) -> int:
        statuses = {c.status for c in self.checks}
        if self.allow_missing:
            statuses.discard(Status.MISSING)
        if statuses & DIFFERENT:
            return 1
        if statuses & {Status.UNPROVEN, Status.ERROR}:
            return 2
        return 0


class VerifyError(ValueError):
    """The path cannot be verified against this scan at all (usage, not a mismatch)."""


@dataclass(frozen=True)
class _OnDisk:
    """An entry found on disk: its name in the model, its path, and why it is not a readable file."""

    name: str
    path: str
    problem: str | None = None  # why it cannot be read as a file (never opened then)


@dataclass(frozen=True)
class _Digests:
    """What hashing a file gave: its size, SHA-256 and, when asked for, git's blob id."""

    size: int
    sha256: str
    git_blob: str | None


def verify(path: str, expected: Expected, options: Options = Options()) -> Result:
    """Compare the file or directory at ``path`` with ``expected``."""
    started = time.perf_counter()
    result = Result(allow_missing=options.allow_missing)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise VerifyError(f"{printable(path)}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        if expected.single_file:
            only = next(iter(expected.files or {}), "?")
            raise VerifyError(
                f"{expected.origin} is a scan of one file ({printable(only)}); give "
                "the path of that file, not a directory"
            )
        on_disk = _walk(path, options.ignore, result)
    elif stat.S_ISREG(mode):
        if expected.files is not None and not expected.single_file:
            raise VerifyError(f"{expected.origin} is a scan of a directory; give the directory")
        name = next(iter(expected.files)) if expected.files else os.path.basename(path)
        on_disk = {name: _OnDisk(name, path)}
    else:
        raise VerifyError(f"{printable(path)}: not a regular file or directory")

    if expected.files is None:
        _check_fingerprint(on_disk, expected, options, result, single=stat.S_ISREG(mode))
    else:
        _check_files(on_disk, expected.files, options, result)
    result.checks.sort(key=lambda c: c.name)
    result.seconds = time.perf_counter() - started
    return result


# --- the files on disk --------------------------------------------------------------------


def _ignored(name: str, patterns: tuple[str, ...]) -> bool:
    # Same convention as a source's ignorePatterns: "dir/" means everything under it.
    return any(fnmatch.fnmatchcase(name, p) or (p.endswith("/") and name.startswith(p)) for p in patterns)


def _walk(root: str, ignore: tuple[str, ...], result: Result) -> dict[str, _OnDisk]:
    """Every entry under ``root`` by name; directories that cannot be listed become ERROR
    checks (a file in them could be anything)."""
    found: dict[str, _OnDisk] = {}
    pending = [""]
    while pending:
        relative = pending.pop()
        directory = os.path.join(root, relative) if relative else root
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            result.checks.append(
                Check(relative or ".", Status.ERROR, f"cannot list directory: {exc.strerror or exc}")
            )
            continue
        for entry in entries:
            name = f"{relative}/{entry.name}" if relative else entry.name
            if _ignored(name, ignore) or _ignored(name + "/", ignore):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                    continue
                problem = _problem(entry)
            except OSError as exc:
                problem = f"cannot read: {exc.strerror or exc}"
            found[name] = _OnDisk(name, entry.path, problem)
    return found


def _problem(entry: os.DirEntry[str]) -> str | None:
    """Why an entry is not a file a loader could read, or None. Links are followed."""
    if entry.is_symlink():
        try:
            mode = os.stat(entry.path).st_mode
        except OSError:
            return f"dangling or looping symbolic link to {os.readlink(entry.path)}"
        if stat.S_ISDIR(mode):
            return "symbolic link to a directory (not followed)"
    else:
        mode = entry.stat(follow_symlinks=False).st_mode
    if not stat.S_ISREG(mode):
        return f"not a regular file ({_kind(mode)})"
    return None


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return kind
    return "unknown type"


def _digests(path: str, want_git_blob: bool, progress: Callable[[int], None] | None) -> _Digests:
    """SHA-256 (and git's blob id) of the file, streaming. O_NONBLOCK: a file swapped for a
    FIFO after the walk must not hang the open; fstat then refuses it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"not a regular file ({_kind(info.st_mode)})")
        sha = hashlib.sha256()
        blob = None
        if want_git_blob:
            from modelsec.sources.remote_file import git_blob_id

            blob = git_blob_id(info.st_size)
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        size = 0
        while count := handle.readinto(buffer):
            chunk = view[:count]
            sha.update(chunk)
            if blob is not None:
                blob.update(chunk)
            size += count
            if progress is not None:
                progress(count)
    return _Digests(size, sha.hexdigest(), blob.hexdigest() if blob is not None else None)


# --- per-file comparison ------------------------------------------------------------------

T = TypeVar("T")
R = TypeVar("R")


def _each(function: Callable[[T], R], items: list[T], jobs: int) -> Iterator[R]:
    """``map`` in order, over ``jobs`` threads when more than one (hashlib releases the GIL
    while it hashes, so threads use several cores)."""
    if jobs <= 1 or len(items) <= 1:
        yield from map(function, items)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(function, items)


def _check_files(
    on_disk: dict[str, _OnDisk], expected: dict[str, ExpectedFile], options: Options, result: Result
) -> None:
    present: list[tuple[_OnDisk, ExpectedFile]] = []
    for name, want in expected.items():
        entry = on_disk.get(name)
        if entry is None:
            result.checks.append(Check(name, Status.MISSING, "scanned, but not on disk"))
        else:
            present.append((entry, want))
    for check, read in _each(lambda pair: _check_file(*pair, options), present, options.jobs):
        result.checks.append(check)
        if read is not None:
            result.files_read += 1
            result.bytes_read += read
    for name, entry in on_disk.items():
        if name not in expected:
            detail = entry.problem or "on disk, but not in the scan"
            result.checks.append(Check(name, Status.EXTRA, detail))


def _check_file(entry: _OnDisk, want: ExpectedFile, options: Options) -> tuple[Check, int | None]:
    """The file's check, and the bytes read for it (None: not read)."""
    name = entry.name
    if entry.problem is not None:
        return Check(name, Status.CHANGED, f"{entry.problem}; the scan read a regular file"), None
    if want.sha256 is None and (want.claim is None or want.claim.kind not in ("sha256", "git-blob")):
        what = f"only {want.claim.kind} {want.claim.value}" if want.claim else "no digest"
        return Check(name, Status.UNPROVEN, f"the scan recorded {what} for it; nothing to compare"), None
    try:
        size = os.stat(entry.path).st_size
        if want.size is not None and size != want.size:
            return Check(name, Status.CHANGED, f"{size} bytes on disk, {want.size} scanned"), None
        got = _digests(entry.path, want.claim is not None and want.claim.kind == "git-blob", options.progress)
    except OSError as exc:
        return Check(name, Status.ERROR, f"cannot read: {exc.strerror or exc}"), None
    return _compare(name, got, want, options), got.size


def _compare(name: str, got: _Digests, want: ExpectedFile, options: Options) -> Check:
    if want.sha256 is not None:
        if got.sha256 != want.sha256:
            return Check(name, Status.CHANGED, f"SHA-256 {got.sha256} on disk, {want.sha256} scanned")
        return Check(name, Status.OK)
    assert want.claim is not None
    actual = got.sha256 if want.claim.kind == "sha256" else got.git_blob
    if actual != want.claim.value:
        return Check(
            name,
            Status.CHANGED,
            f"{want.claim.kind} {actual} on disk, {want.claim.value} claimed by the source at scan time",
        )
    if options.accept_claimed:
        return Check(name, Status.OK, f"matches the {want.claim.kind} the source claimed (accepted)")
    return Check(
        name,
        Status.UNPROVEN,
        f"matches the {want.claim.kind} the source claimed, but the scan "
        "read the file by range and never hashed it: these may not be the bytes it "
        "inspected (--accept-claimed to accept the claim)",
    )


# --- whole-model fingerprint --------------------------------------------------------------


def fingerprint(pairs: dict[str, str]) -> str:
    """SHA-256 over sorted ``name\\0digest`` lines: the formula of
    :attr:`modelsec.engine.ScanReport.fingerprint` (a test holds the two together)."""
    digest = hashlib.sha256()
    for name in sorted(pairs):
        digest.update(f"{name}\0{pairs[name]}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _check_fingerprint(
    on_disk: dict[str, _OnDisk], expected: Expected, options: Options, result: Result, *, single: bool
) -> None:
    def read(entry: _OnDisk) -> _Digests | OSError:
        try:
            return _digests(entry.path, False, options.progress)
        except OSError as exc:
            return exc

    readable = []
    for name, entry in on_disk.items():
        if entry.problem is not None:
            result.checks.append(Check(name, Status.EXTRA, f"{entry.problem}; not part of a scanned model"))
        else:
            readable.append(entry)
    digests: dict[str, str] = {}
    for entry, got in zip(readable, _each(read, readable, options.jobs)):
        if isinstance(got, OSError):
            result.checks.append(Check(entry.name, Status.ERROR, f"cannot read: {got.strerror or got}"))
            continue
        result.files_read += 1
        result.bytes_read += got.size
        digests["" if single else entry.name] = got.sha256
    if any(c.status is Status.ERROR for c in result.checks):
        return  # a fingerprint over part of the files proves nothing either way
    actual = fingerprint(digests)
    if actual == expected.fingerprint:
        result.checks.extend(Check(name, Status.OK) for name in on_disk)
        return
    count = (
        f"; {len(digests)} file(s) on disk, {expected.file_count} scanned"
        if expected.file_count is not None and expected.file_count != len(digests)
        else ""
    )
    unattributed = (
        f"the files differ from the scanned ones (fingerprint {actual}, scanned "
        f"{expected.fingerprint}{count}); {expected.origin} records no per-file "
        "digests, so the file that differs cannot be named (verify against the JSON "
        "report or the ML-BOM to name it)"
    )
    if expected.remote:
        # The fingerprint of a remote model covers the source's claims for files read by
        # range: no copy on disk reproduces those, so a mismatch is not evidence either way.
        result.checks.append(
            Check(
                "",
                Status.UNPROVEN,
                unattributed + "; for a remote model it "
                "also covers the source's claimed digests, which no local copy "
                "reproduces",
            )
        )
    else:
        result.checks.append(Check("", Status.CHANGED, unattributed))
