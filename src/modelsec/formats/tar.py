"""Tar archives, plain or compressed (gzip, bz2, xz, lzma, lz4), read as a stream.

``tarfile`` parses headers in streaming mode over bytes we supply (decompressed by
:mod:`modelsec.archive.decompress` under the expansion limits); nothing is extracted to
disk. Each regular member is copied into a bounded spool and scanned by content. Names
that escape the archive, links that point out of it and special files (devices, FIFOs)
are findings.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from typing import IO, Any, ClassVar

from modelsec.archive import legacy_torch_tar, threats
from modelsec.archive import names as member_names
from modelsec.archive.decompress import BOMB_FLOOR, BombDetected, DecodeStream, sniff_codec
from modelsec.archive.members import decode_head
from modelsec.bytesource import (
    ByteSource,
    BytesSource,
    LimitExceeded,
    SliceSource,
    SpooledSource,
    as_stream,
    iter_chunks,
)
from modelsec.context import ScanContext
from modelsec.formats.base import HEAD_SIZE, FormatCategory, FormatScanner, Reader

BLOCK = 512
MAX_META_HEADER = 1 << 20  # pax / GNU long-name headers are read whole by tarfile
_META_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


# tarfile's own header-field parsers: detection must accept exactly what tarfile accepts.
# Module-level functions of tarfile that typeshed does not declare (not public API).
_nti: Callable[[bytes], int] = tarfile.nti  # type: ignore[attr-defined]  # see above
_calc_chksums: Callable[[bytes], tuple[int, int]] = tarfile.calc_chksums  # type: ignore[attr-defined]  # see above


def is_tar_header(block: bytes) -> bool:
    """A first header ``tarfile`` accepts (``TarInfo.frombuf``): 512 bytes, not all zero,
    a checksum field, parsed as tarfile parses it (octal text up to a NUL, blanks and an
    ``0o`` prefix allowed, or base-256), equal to the unsigned or signed sum, and numeric
    fields tarfile can parse. Nothing else is required: no magic, no name (torch.load and
    tarfile take v7 headers too)."""
    block = block[:BLOCK]
    if len(block) < BLOCK or not block.strip(b"\x00"):
        return False
    try:
        declared = _nti(block[148:156])
    except tarfile.HeaderError:
        return False
    if declared not in _calc_chksums(block):
        return False
    # The checksum alone is not what tarfile accepts: it parses every numeric field too, and
    # a compressed stream whose bytes happened to pass the checksum test was taken for a tar
    # that tarfile (and torch.load) refuse (a false polyglot, soundness campaign seed 5).
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def compressed_tar_codec(head: bytes) -> str | None:
    codec = sniff_codec(head)
    if codec is None or codec == "zlib":
        return None
    try:
        first = decode_head(DecodeStream(BytesSource(head), 0, len(head), codec), BLOCK)
    except Exception:
        return None
    return codec if is_tar_header(first) else None


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads pax and long-name headers into memory in one piece: bound them."""

    def _proc_member(self, tarfile: Any) -> Any:  # noqa: A002 - tarfile's own signature
        if self.type in _META_TYPES and self.size > MAX_META_HEADER:
            raise LimitExceeded(f"tar extended header of {self.size} bytes exceeds {MAX_META_HEADER}")
        return super()._proc_member(tarfile)  # type: ignore[misc]  # the hook tarfile documents for subclasses; typeshed omits it


class TarScanner(FormatScanner):
    name: ClassVar[str] = "tar"
    category: ClassVar[FormatCategory] = FormatCategory.CONTAINER
    priority: ClassVar[int] = 25  # before the compressed-stream scanner
    readers = (
        Reader("tarfile", "a header block at offset 0 (or a compressed stream of one)"),
        Reader("torch.load (oldest format)", "an uncompressed tar header at offset 0"),
    )

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return is_tar_header(head[:BLOCK]) or compressed_tar_codec(head) is not None

    def covers_claim(self, other: FormatScanner, head: bytes) -> bool:
        # A compressed tar is decoded here, member by member: the compressed-stream reading
        # of the same bytes is this one.
        return other.name == "compressed" and not is_tar_header(head[:BLOCK])

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        head = source.read_at(0, HEAD_SIZE)
        decoder: DecodeStream | None = None
        stream: IO[bytes]
        if is_tar_header(head[:BLOCK]):
            stream = as_stream(source)
        else:
            codec = compressed_tar_codec(head)
            if codec is None:
                ctx.report(threats.MALFORMED_ARCHIVE.at(ctx.path, "not a tar archive"))
                return
            decoder = DecodeStream(
                source,
                0,
                source.size,
                codec,
                account=ctx.account_expansion,
                max_ratio=ctx.limits.max_expansion_ratio,
                what=f"{codec} stream",
            )
            stream = io.BufferedReader(decoder, buffer_size=1 << 20)
        _TarScan(source, ctx, stream, decoder).run()


class _TarScan:
    def __init__(
        self, source: ByteSource, ctx: ScanContext, stream: IO[bytes], decoder: DecodeStream | None
    ) -> None:
        self.source = source
        self.ctx = ctx
        self.stream = stream
        self.decoder = decoder
        self.names = member_names.ArchiveNames(ctx)
        # Regular members by name: (offset of the data in the source, size). Only for a tar
        # read in place: a link is scanned again as the bytes it points to.
        self.regular: dict[str, tuple[int, int]] = {}
        self.pending_links: list[tuple[str, str, str]] = []  # (link name, display, target)

    def run(self) -> None:
        ctx = self.ctx
        try:
            archive = tarfile.open(fileobj=self.stream, mode="r|", tarinfo=_BoundedTarInfo)
            end = self._members(archive)
        except BombDetected as exc:
            ctx.report(threats.DECOMPRESSION_BOMB.at(ctx.path, str(exc)))
            return
        except LimitExceeded as exc:
            ctx.incomplete(f"{exc}; the rest of the archive was not inspected", threats.INCOMPLETE_LIMIT)
            return
        except (tarfile.TarError, ValueError, EOFError, OSError, UnicodeError) as exc:
            message = f"tar structure: {type(exc).__name__}: {exc}"
            if self.decoder is not None and self.decoder.error:
                message = f"{self.decoder.error}; members before the damage were scanned"
            ctx.report(threats.MALFORMED_ARCHIVE.at(ctx.path, message))
            return
        if end is not None:
            self._check_trailing(end)

    def _members(self, archive: tarfile.TarFile) -> int | None:
        """Scan every member; the offset just after the last one, or None if the member
        limit stopped the scan."""
        while True:
            member = archive.next()
            archive.members.clear()  # type: ignore[attr-defined]  # stream mode keeps every header otherwise (typeshed omits the attribute)
            if member is None:
                for name, display, target in self.pending_links:  # symlinks to later members
                    self._link_bytes(name, display, target)
                return archive.offset
            if not self.ctx.count_member():
                return None
            self._member(archive, member)

    def _member(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        ctx = self.ctx
        name = member.name
        display = self.names.enter(name, may_repeat=member.isdir())
        path = ctx.member_path(display)
        if member.issym() or member.islnk():
            kind = "symlink" if member.issym() else "hard link"
            if member_names.link_escapes(name, member.linkname, hard=member.islnk()):
                ctx.report(
                    threats.LINK_ESCAPE.at(
                        path,
                        f"{kind} {name!r} points to {member.linkname!r}, outside the archive",
                        subject=member.linkname,
                    )
                )
                return
            # Extracted, the link is a file with the target's bytes under its own name, and
            # loaders go by that name (torch.load's legacy "storages", a .py module, a
            # chat_template.jinja): the target's bytes are scanned under it too.
            target = member_names.link_target(name, member.linkname, hard=member.islnk())
            if target in self.regular:
                self._link_bytes(name, display, target)
            else:
                self.pending_links.append((name, display, target))
            return
        if member.ischr() or member.isblk() or member.isfifo():
            kind = "character device" if member.ischr() else "block device" if member.isblk() else "FIFO"
            self.names.special_file(display, kind)
            return
        if member.isdir():
            return
        self._regular(archive, member, display)

    def _regular(self, archive: tarfile.TarFile, member: tarfile.TarInfo, display: str) -> None:
        ctx = self.ctx
        path = ctx.member_path(display)
        if member.size > ctx.limits.max_spool_bytes:
            ctx.incomplete(
                f"member of {member.size} bytes exceeds the {ctx.limits.max_spool_bytes}-byte "
                "limit; not inspected",
                threats.INCOMPLETE_LIMIT,
                path,
            )
            return
        if member.issparse():
            stored = _sparse_stored(member)
            ratio = ctx.limits.max_expansion_ratio
            if member.size > BOMB_FLOOR and member.size > ratio * max(stored, 1):
                ctx.report(
                    threats.DECOMPRESSION_BOMB.at(
                        path,
                        f"sparse member expands {stored} stored bytes to {member.size}",
                    )
                )
                return
            ctx.account_expansion(member.size - stored)
        if self.decoder is None and not member.issparse():
            self.regular[member_names.normalized(member.name)] = (member.offset_data, member.size)
        data = archive.extractfile(member)
        if data is None:
            return
        spool = SpooledSource(data, ctx.limits.max_spool_bytes, what=f"member {display}")
        try:
            if spool.size < member.size:
                ctx.report(
                    threats.MALFORMED_ARCHIVE.at(
                        path, f"member holds {spool.size} of its {member.size} bytes"
                    )
                )
            self._dispatch(spool, member.name, display)
        finally:
            spool.close()

    def _dispatch(self, data: ByteSource, name: str, display: str) -> None:
        if name.strip("/") in legacy_torch_tar.PICKLE_MEMBERS:
            legacy_torch_tar.scan_member(self.ctx, data, name.strip("/"), display)
        else:
            self.ctx.scan_member(data, display)

    def _link_bytes(self, name: str, display: str, target: str) -> None:
        """Scan the bytes of the member ``target`` as the file the link ``name`` becomes."""
        found = self.regular.get(target)
        if found is None:
            if self.decoder is not None and routed_by_name(name):  # compressed: bytes gone by now
                self.ctx.incomplete(
                    f"link to {target!r}: extracted, it holds that member's bytes under its own "
                    "name, which cannot be read again from a compressed tar; not inspected",
                    threats.INCOMPLETE_UNREADABLE,
                    self.ctx.member_path(display),
                )
            return  # a link to nothing (or to a directory) extracts to no file to load
        offset, size = found
        self._dispatch(SliceSource(self.source, offset, size), name, display)

    def _check_trailing(self, end: int) -> None:
        """Data after the end-of-archive blocks (GNU ``tar -i`` still reads it)."""
        ctx = self.ctx
        if self.decoder is None:
            start = end + 2 * BLOCK
            for offset, chunk in _chunks_from(self.source, start):
                stripped = chunk.lstrip(b"\x00")
                if stripped:
                    first = offset + len(chunk) - len(stripped)
                    ctx.report(
                        threats.TRAILING_DATA.at(
                            ctx.path,
                            f"non-zero data at offset {first}, after the end of the tar archive; "
                            "it was scanned separately",
                            offset=first,
                        )
                    )
                    ctx.scan_member(SliceSource(self.source, first, self.source.size - first), "<trailing>")
                    return
            return
        try:
            while True:
                chunk = self.stream.read(1 << 20)
                if not chunk:
                    break
                if chunk.strip(b"\x00"):
                    ctx.report(
                        threats.TRAILING_DATA.at(ctx.path, "non-zero data follows the end of the tar archive")
                    )
                    return
        except BombDetected as exc:
            ctx.report(threats.DECOMPRESSION_BOMB.at(ctx.path, str(exc)))
            return
        if self.decoder.error:
            ctx.report(threats.MALFORMED_ARCHIVE.at(ctx.path, self.decoder.error))
        elif self.decoder.trailing_offset is not None:
            ctx.report(
                threats.TRAILING_DATA.at(
                    ctx.path,
                    "data follows the compressed stream",
                    offset=self.decoder.trailing_offset,
                )
            )


def _chunks_from(source: ByteSource, start: int) -> Any:
    offset = start
    for chunk in iter_chunks(source, start):
        yield offset, chunk
        offset += len(chunk)


def _sparse_stored(member: tarfile.TarInfo) -> int:
    """Bytes a sparse member stores: tarfile keeps its map as (offset, size) pairs."""
    pairs: list[tuple[int, int]] = member.sparse or []  # type: ignore[assignment]  # typeshed says bytes
    return sum(size for _offset, size in pairs)


SCANNER = TarScanner()


def routed_by_name(name: str) -> bool:
    """Whether a member's name, not only its bytes, decides how it is read: the legacy
    torch members, Python modules, chat templates. (A link with another name holds bytes
    already scanned by content under its target's name.)"""
    from modelsec.formats.jinja_template import template_named

    base = name.strip("/").rsplit("/", 1)[-1]
    return base in legacy_torch_tar.PICKLE_MEMBERS or base.endswith(".py") or template_named(base)
