"""7z archives through py7zr: list first (limits, names, links, encryption), then decode
members into bounded spools that are scanned by content as each member completes.

Nothing is written to a user directory: py7zr hands every member to our writer factory.
py7zr refuses member names that would escape an extraction directory; since nothing is
extracted, members are given neutral names for decoding and reported under their own.
"""

from __future__ import annotations

import tempfile
from typing import Any, ClassVar

from modelsec.archive import names as member_names
from modelsec.archive import threats
from modelsec.archive.decompress import BOMB_FLOOR, BombDetected
from modelsec.bytesource import ByteSource, LimitExceeded, SpoolSource, as_stream
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner, Reader
from modelsec.formats.tar import routed_by_name

MAGIC = b"7z\xbc\xaf\x27\x1c"
LINK_TARGET_LIMIT = 4096
_NEUTRAL = "modelsec-7z-member-{}"


class _Member:
    def __init__(self, name: str, display: str, is_link: bool) -> None:
        self.name = name
        self.display = display
        self.is_link = is_link
        self.done = False


class _Run:
    """State of one extraction: budgets, members by neutral name, scanning on completion."""

    def __init__(self, ctx: ScanContext, archive_size: int) -> None:
        self.ctx = ctx
        self.archive_size = max(archive_size, 1)
        self.members: dict[str, _Member] = {}
        self.written = 0

    def charge(self, n: int) -> None:
        self.written += n
        self.ctx.account_expansion(n)
        ratio = self.ctx.limits.max_expansion_ratio
        if self.written > BOMB_FLOOR and self.written > ratio * self.archive_size:
            raise BombDetected(
                f"7z archive expands more than {ratio:g} times ({self.written} bytes from "
                f"{self.archive_size})"
            )

    def finished(self, member: _Member, source: SpoolSource) -> None:
        member.done = True
        ctx = self.ctx
        if member.is_link:
            target = source.read_at(0, LINK_TARGET_LIMIT).decode("utf-8", errors="replace")
            if member_names.link_escapes(member.name, target):
                ctx.report(
                    threats.LINK_ESCAPE.at(
                        ctx.member_path(member.display),
                        f"symlink member {member.name!r} points to {target!r}, outside the archive",
                        subject=target,
                    )
                )
            elif routed_by_name(member.name):
                # Extracted, the link holds its target's bytes under a name loaders go by (a
                # .py module, a chat template); those bytes are not read again here.
                ctx.incomplete(
                    f"symlink to {target!r}: extracted, it holds that member's bytes under its "
                    "own name, which decides how it is loaded; not inspected",
                    threats.INCOMPLETE_UNREADABLE,
                    ctx.member_path(member.display),
                )
            return
        ctx.scan_member(source, member.display)


def _writer_classes() -> tuple[type, type]:
    from py7zr.io import Py7zIO, WriterFactory  # py7zr is only imported for 7z files

    class SpoolWriter(Py7zIO):
        def __init__(self, run: _Run, member: _Member) -> None:
            self._run = run
            self._member = member
            self._spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(
                max_size=8 << 20
            )
            self._size = 0

        def write(self, s: bytes | bytearray) -> int:
            self._size += len(s)
            limit = self._run.ctx.limits.max_spool_bytes
            if self._size > limit:
                raise LimitExceeded(f"member {self._member.display} expands past the limit of {limit} bytes")
            self._run.charge(len(s))
            return self._spool.write(s)

        def read(self, size: int | None = None) -> bytes:
            return self._spool.read(-1 if size is None else size)

        def seek(self, offset: int, whence: int = 0) -> int:
            return self._spool.seek(offset, whence)

        def flush(self) -> None:
            pass

        def size(self) -> int:
            return self._size

        def close(self) -> None:
            # py7zr calls close() only once a member decoded completely (CRC checked).
            try:
                self._run.finished(self._member, SpoolSource(self._spool, self._size))
            finally:
                self._spool.close()

    class Factory(WriterFactory):
        def __init__(self, run: _Run) -> None:
            self._run = run

        def create(self, filename: str) -> Any:
            member = self._run.members.get(filename.rsplit("/", 1)[-1])
            if member is None:  # a name we did not assign: never happens, but fail closed
                raise LimitExceeded(f"unexpected 7z member {filename!r}")
            return SpoolWriter(self._run, member)

    return SpoolWriter, Factory


class SevenZipScanner(FormatScanner):
    name: ClassVar[str] = "7z"
    category: ClassVar[FormatCategory] = FormatCategory.CONTAINER
    priority: ClassVar[int] = 10
    readers = (Reader("py7zr, 7-Zip", "signature header at offset 0"),)

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return head.startswith(MAGIC)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        import py7zr
        from py7zr import exceptions as p7e

        try:
            archive = py7zr.SevenZipFile(as_stream(source), mode="r")
        except p7e.PasswordRequired:
            ctx.incomplete(
                "7z archive has encrypted headers; its contents cannot be listed without the password",
                threats.INCOMPLETE_ENCRYPTED,
            )
            return
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # py7zr's parser surfaces damage as assorted exception types
            ctx.report(threats.MALFORMED_ARCHIVE.at(ctx.path, f"7z structure: {type(exc).__name__}: {exc}"))
            return
        try:
            self._scan_archive(archive, source, ctx, p7e)
        except (MemoryError, RecursionError, LimitExceeded):
            raise
        except Exception as exc:  # damage in the member list (sizes, attributes, folders)
            ctx.report(threats.MALFORMED_ARCHIVE.at(ctx.path, f"7z listing: {type(exc).__name__}: {exc}"))
        finally:
            archive.close()

    def _scan_archive(self, archive: Any, source: ByteSource, ctx: ScanContext, p7e: Any) -> None:
        run = _Run(ctx, source.size)
        targets = _listed_targets(archive, run)
        if _declares_bomb(targets, source, ctx):
            return
        if archive.needs_password():
            for _f, neutral in targets:
                ctx.incomplete(
                    "7z member is encrypted; its content cannot be inspected without the password",
                    threats.INCOMPLETE_ENCRYPTED,
                    ctx.member_path(run.members[neutral].display),
                )
            return
        if targets:
            _extract(archive, run, targets, p7e)


_Target = tuple[Any, str]  # py7zr's entry for a member, and the neutral name it decodes under


def _listed_targets(archive: Any, run: _Run) -> list[_Target]:
    """The members to decode; names, duplicates, special files and members past the
    spool limit are reported on the way and not decoded."""
    names = member_names.ArchiveNames(run.ctx)
    targets: list[_Target] = []
    for f in archive.files:
        if not run.ctx.count_member():
            break
        neutral = _admit(f, run, names)
        if neutral is not None:
            targets.append((f, neutral))
    return targets


def _admit(f: Any, run: _Run, names: member_names.ArchiveNames) -> str | None:
    """Register one listed member with ``run``; its neutral name, or None if it is not to
    be decoded."""
    ctx = run.ctx
    name = str(f.filename)
    display = names.enter(name, may_repeat=bool(f.is_directory))
    if f.is_directory:
        if f.emptystream:
            return None
        # 7-Zip takes an entry with a data stream for a file whatever its attributes say
        # (7zIn.cpp: HasStream clears IsDir), and `7z x` writes it out; py7zr skips it.
        ctx.report(
            threats.DIRECTORY_WITH_DATA.at(
                ctx.member_path(display),
                f"marked as a directory, yet holds {int(f.uncompressed or 0)} bytes that 7-Zip extracts as a file",
                subject=name,
            )
        )
    mode = _unix_mode(f)
    if mode is not None and member_names.special_file_type(mode):
        # py7zr writes such a member out as a regular file: its bytes are scanned too.
        names.special_file(display, f"special file (mode {oct(mode)})")
    size = int(f.uncompressed or 0)
    if size > ctx.limits.max_spool_bytes:
        ctx.incomplete(
            f"member of {size} bytes exceeds the {ctx.limits.max_spool_bytes}-byte limit; not inspected",
            threats.INCOMPLETE_LIMIT,
            ctx.member_path(display),
        )
        return None
    neutral = _NEUTRAL.format(f.id)
    run.members[neutral] = _Member(name, display, bool(f.is_symlink))
    return neutral


def _declares_bomb(targets: list[_Target], source: ByteSource, ctx: ScanContext) -> bool:
    """Report (and say so) an archive whose listed sizes already exceed the expansion
    ratio: nothing is decoded then."""
    declared = sum(int(f.uncompressed or 0) for f, _neutral in targets)
    ratio = ctx.limits.max_expansion_ratio
    if declared > BOMB_FLOOR and declared > ratio * max(source.size, 1):
        ctx.report(
            threats.DECOMPRESSION_BOMB.at(
                ctx.path,
                f"7z archive declares {declared} bytes from {source.size} (more than "
                f"{ratio:g} times); not decompressed",
            )
        )
        return True
    return False


def _extract(archive: Any, run: _Run, targets: list[_Target], p7e: Any) -> None:
    """Decode the targets into spools, each scanned as it completes (:meth:`_Run.finished`)."""
    ctx = run.ctx
    for f, neutral in targets:
        f._file_info["filename"] = neutral  # decode under a name py7zr accepts
    _, factory = _writer_classes()
    try:
        archive.extract(targets=[neutral for _f, neutral in targets], factory=factory(run))
    except BombDetected as exc:
        ctx.report(threats.DECOMPRESSION_BOMB.at(ctx.path, str(exc)))
    except LimitExceeded as exc:
        ctx.incomplete(f"{exc}; failing closed", threats.INCOMPLETE_LIMIT)
    except p7e.UnsupportedCompressionMethodError as exc:
        ctx.incomplete(f"7z compression method not supported: {exc}", threats.INCOMPLETE_UNSUPPORTED_METHOD)
    except p7e.PasswordRequired:
        ctx.incomplete("7z member is encrypted", threats.INCOMPLETE_ENCRYPTED)
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # codec errors (lzma, bz2, zstd, ...) surface as assorted types
        ctx.report(
            threats.MALFORMED_ARCHIVE.at(
                ctx.path, f"7z data: {type(exc).__name__}: {exc}; earlier members were scanned"
            )
        )
    else:
        # py7zr skips what it takes for a directory (or anything else it will not write):
        # a member it never handed over is one nobody inspected.
        for member in run.members.values():
            if not member.done:
                ctx.incomplete(
                    "the 7z reader did not decode this member; not inspected",
                    threats.INCOMPLETE_UNREADABLE,
                    ctx.member_path(member.display),
                )


def _unix_mode(f: Any) -> int | None:
    try:
        mode = f._get_unix_extension()
    except Exception:
        return None
    return int(mode) if mode is not None else None


SCANNER = SevenZipScanner()
