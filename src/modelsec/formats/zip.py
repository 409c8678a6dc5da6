"""Zip archives and the model formats built on them (PyTorch, TorchScript, NumPy .npz,
Keras v3).

The structure is parsed from bytes (:mod:`modelsec.archive.zipparse`), both the central
directory and the local headers. Every member is handed back to the engine by content:
stored members as slices of the archive (no copy), compressed members decoded under the
expansion limits into a bounded spool. Tricks that make tools disagree about the contents
(header mismatches, hidden or overlapping entries, fake encryption flags) are findings,
and every view a loader might take is scanned.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import ClassVar

from modelsec import formats
from modelsec.archive import names as member_names
from modelsec.archive import threats, zipflavour, zipparse
from modelsec.archive.decompress import BOMB_FLOOR, DecodeStream, UnsupportedCodec
from modelsec.archive.members import decode_head, scan_pickle, spool_decoded
from modelsec.archive.zipparse import CentralEntry, LocalHeader, ZipLayout
from modelsec.bytesource import ByteSource, BytesSource, SliceSource, iter_chunks
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner, Reader

# zip compression method -> codec of modelsec.archive.decompress
METHOD_CODECS = {8: "deflate", 12: "bz2", 14: "zip-lzma", 95: "xz"}
METHOD_NAMES = {
    1: "shrink",
    6: "implode",
    9: "deflate64",
    10: "PKWARE imploding",
    18: "IBM TERSE",
    19: "IBM LZ77",
    93: "zstd",
    94: "MP3",
    96: "JPEG",
    97: "WavPack",
    98: "PPMd",
    99: "AES encryption",
}
AES_METHOD = 99
ZIPCRYPTO_HEADER = 12
CRC_CHECK_LIMIT = 64 << 20  # stored members up to this size get their CRC verified
LINK_TARGET_LIMIT = 4096


@dataclass
class MemberView:
    """One way of reading a member: the central directory's or a local header's."""

    display: str  # name shown in findings and used for nested paths
    name: str  # name as recorded (for flavour and link checks)
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    data_offset: int
    crc_known: bool
    entry: CentralEntry | None
    local: LocalHeader | None


class ZipScanner(FormatScanner):
    name: ClassVar[str] = "zip"
    category: ClassVar[FormatCategory] = FormatCategory.CONTAINER
    priority: ClassVar[int] = 20
    readers = (
        Reader(
            "zipfile, numpy.load (.npz), keras",
            "end of central directory in the last 64 KiB, after any prefix",
        ),
        Reader("torch.load", "'PK\\x03\\x04' at offset 0, then the central directory"),
    )

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        if head.startswith((zipparse.LOCAL_SIG, zipparse.EOCD_SIG)):
            return True
        # Data before the archive (self-extractor stub, pickle/zip polyglot): zipfile-based
        # loaders still open it, so it is a zip too.
        eocd = zipparse.find_eocd(source)
        if eocd is None:
            return False
        layout = ZipLayout(size=source.size)
        zipparse.parse_central(source, layout, max_entries=1)
        if not layout.entries or source.read_at(layout.entries[0].local_offset, 4) != (zipparse.LOCAL_SIG):
            return False
        # A zip that is the last member of another container (a tar, a compressed stream)
        # is reached through that container's own members; only claim data that no other
        # container explains.
        other_containers = formats.claimants(head, source, filename, self._other_container)
        return next(other_containers, None) is None

    def _other_container(self, other: FormatScanner) -> bool:
        return other is not self and other.category == FormatCategory.CONTAINER

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        # one entry past the limit, so that count_member reports the limit being reached
        layout = zipparse.parse(source, ctx.limits.max_members + 1)
        recorded = [e.name for e in layout.entries] or [h.name for h in layout.walked]
        flavour = zipflavour.classify(recorded)
        ctx.set_format(flavour, zipflavour.CATEGORIES[flavour])
        _ArchiveScan(source, ctx, layout, flavour).run()


class _ArchiveScan:
    """One zip scan: the checks need shared state (names seen, regions, flavour)."""

    def __init__(self, source: ByteSource, ctx: ScanContext, layout: ZipLayout, flavour: str):
        self.source = source
        self.ctx = ctx
        self.layout = layout
        self.flavour = flavour
        self.names = member_names.ArchiveNames(ctx)
        self.skip_overlapping: set[int] = set()

    def run(self) -> None:
        layout, ctx = self.layout, self.ctx
        for problem in layout.problems:
            ctx.report(threats.MALFORMED_ARCHIVE.at(ctx.path, f"zip structure: {problem}"))
        for disagreement in layout.disagreements:
            ctx.report(threats.DIRECTORY_DISAGREEMENT.at(ctx.path, disagreement))
        if not layout.entries and not layout.walked:
            if not layout.central_ok:
                ctx.report(threats.MALFORMED_ARCHIVE.at(ctx.path, "no readable zip member found"))
            return
        self._check_outside_data()
        self._check_overlaps()
        central_offsets = {e.local_offset for e in layout.entries}
        for entry in layout.entries:
            if not ctx.count_member():
                return
            self._scan_entry(entry)
        for header in layout.walked:
            if header.offset in central_offsets:
                continue
            if not ctx.count_member():
                return
            self._scan_local_only(header)

    # --- whole-archive checks -----------------------------------------------------------

    def _check_outside_data(self) -> None:
        layout, ctx, source = self.layout, self.ctx, self.source
        offsets = [e.local_offset for e in layout.entries] + [h.offset for h in layout.walked]
        start = min(offsets) if offsets else layout.prefix
        if start > 0:
            ctx.report(
                threats.PREFIX_DATA.at(ctx.path, f"{start} bytes precede the first zip member", offset=0)
            )
            ctx.scan_member(SliceSource(source, 0, min(start, source.size)), "<prefix>")
        end = layout.archive_end
        # zero padding after the end record (block-aligned copies) carries nothing
        if (
            end is not None
            and end < source.size
            and any(chunk.strip(b"\0") for chunk in iter_chunks(source, end))
        ):
            ctx.report(
                threats.TRAILING_DATA.at(
                    ctx.path,
                    f"{source.size - end} bytes follow the end of the zip archive",
                    offset=end,
                )
            )
            ctx.scan_member(SliceSource(source, end, source.size - end), "<trailing>")

    def _check_overlaps(self) -> None:
        regions = []
        for entry in self.layout.entries:
            local = self.layout.locals_by_offset.get(entry.local_offset)
            data_start = local.data_offset if local else entry.local_offset
            regions.append((entry.local_offset, data_start + entry.csize, entry.index))
        regions.sort()
        # Decoding every overlapping entry is exactly the work a non-recursive bomb wants;
        # the finding already blocks, so only the first entry of each overlapping group
        # is decoded.
        overlapping = 0
        group_end = -1
        group_first_counted = True
        for start, end, index in regions:
            if start < group_end:
                self.skip_overlapping.add(index)
                overlapping += 1 if group_first_counted else 2
                group_first_counted = True
                group_end = max(group_end, end)
            else:
                group_end = end
                group_first_counted = False
        if overlapping:
            self.ctx.report(
                threats.OVERLAPPING_MEMBERS.at(
                    self.ctx.path,
                    f"{overlapping} zip entries share bytes with another entry; only the "
                    "first entry of each overlapping group was decoded",
                )
            )

    # --- members --------------------------------------------------------------------------

    def _scan_entry(self, entry: CentralEntry) -> None:
        ctx = self.ctx
        name = entry.name
        display = self.names.enter(name)
        local = self.layout.locals_by_offset.get(entry.local_offset)
        if local is None:
            ctx.report(
                threats.MALFORMED_ARCHIVE.at(
                    ctx.member_path(display),
                    f"no local header at offset {entry.local_offset}; loaders cannot read this member",
                    offset=entry.local_offset,
                )
            )
            return
        if entry.index in self.skip_overlapping:
            return
        central_view = MemberView(
            display,
            name,
            entry.flags,
            entry.method,
            entry.crc,
            entry.csize,
            entry.usize,
            local.data_offset,
            True,
            entry,
            local,
        )
        differences = _compare(entry, local)
        if differences:
            ctx.report(
                threats.HEADER_MISMATCH.at(
                    ctx.member_path(display),
                    "local header disagrees with the central directory: " + "; ".join(differences),
                    offset=local.offset,
                    subject=name,
                )
            )
        self._scan_view(central_view)
        if _data_view_differs(entry, local):
            local_display = self.names.display(local.name, "#local")
            member_names.report_name(ctx, local.name, local_display)
            self._scan_view(
                MemberView(
                    local_display,
                    local.name,
                    local.flags,
                    local.method,
                    local.crc,
                    local.csize if local.sizes_known else entry.csize,
                    local.usize if local.sizes_known else entry.usize,
                    local.data_offset,
                    local.sizes_known,
                    entry,
                    local,
                )
            )

    def _scan_local_only(self, header: LocalHeader) -> None:
        display = self.names.display(header.name, "#local" if self.layout.entries else "")
        self.names.admit(header.name, display)
        if self.layout.entries:
            self.ctx.report(
                threats.HIDDEN_MEMBER.at(
                    self.ctx.member_path(display),
                    f"local header for {header.name!r} at offset {header.offset} is not in "
                    "the central directory",
                    offset=header.offset,
                    subject=header.name,
                )
            )
        csize = header.csize
        if not header.sizes_known:
            csize = zipparse.find_descriptor(self.source, header.data_offset) or 0
        self._scan_view(
            MemberView(
                display,
                header.name,
                header.flags,
                header.method,
                header.crc,
                csize,
                header.usize,
                header.data_offset,
                header.sizes_known,
                None,
                header,
            )
        )

    def _scan_view(self, view: MemberView) -> None:
        ctx, source = self.ctx, self.source
        path = ctx.member_path(view.display)
        entry = view.entry
        if (why := _directory_marks(view)) is not None:
            # Nothing stored (an empty deflate stream is 2 bytes): a directory. Otherwise the
            # bytes are scanned whatever size is declared: a local header deferring its sizes
            # to a data descriptor declares 0 and streaming readers read them all.
            if view.usize == 0 and view.csize <= 2:
                return
            # Loaders go by the name they are asked for and read the bytes (zipfile and
            # miniz ignore the mode bits, zipfile a trailing backslash, NpzFile iterates
            # every name): the entry is scanned like any other, and reported.
            ctx.report(
                threats.DIRECTORY_WITH_DATA.at(
                    path,
                    f"{why}, yet declares {view.usize} bytes ({view.csize} stored)",
                    offset=view.data_offset,
                    subject=view.name,
                )
            )
        end = view.data_offset + view.csize
        if end > source.size:
            ctx.report(
                threats.MALFORMED_ARCHIVE.at(
                    path,
                    f"member data ends at {end}, past the end of the file ({source.size})",
                    offset=view.data_offset,
                )
            )
        length = max(0, min(view.csize, source.size - view.data_offset))
        raw = SliceSource(source, min(view.data_offset, source.size), length)
        # zipfile and torch's reader ignore the mode bits: a "symlink" or "device" member is
        # read as the bytes it holds, so those bytes are scanned like any member's.
        if entry is not None and entry.is_symlink:
            self._check_link(view, raw)
        if entry is not None and entry.is_special:
            self.names.special_file(view.display, f"special file (mode {oct(entry.unix_mode or 0)})")
        if view.method == AES_METHOD or view.flags & (zipparse.ENCRYPTION_FLAGS | zipparse.FLAG_PATCHED):
            self._scan_flagged(view, raw)
            return
        self._declared_bomb(view)
        if view.method == 0:
            self._scan_stored(view, raw)
        elif view.method in METHOD_CODECS:
            self._scan_compressed(view, raw)
        else:
            method = METHOD_NAMES.get(view.method, "unknown")
            ctx.incomplete(
                f"compression method {view.method} ({method}) is not supported; member not inspected",
                threats.INCOMPLETE_UNSUPPORTED_METHOD,
                path,
            )

    def _declared_bomb(self, view: MemberView) -> None:
        ratio = self.ctx.limits.max_expansion_ratio
        if view.usize > BOMB_FLOOR and view.usize > ratio * max(view.csize, 1):
            self.ctx.report(
                threats.DECOMPRESSION_BOMB.at(
                    self.ctx.member_path(view.display),
                    f"member declares {view.usize} bytes from {view.csize} compressed "
                    f"(more than {ratio:g} times)",
                )
            )

    def _is_storage(self, view: MemberView) -> bool:
        return zipflavour.is_torch(self.flavour) and zipflavour.is_storage_or_meta(view.name)

    def _dispatch(self, view: MemberView, member: ByteSource) -> None:
        names = [view.name] + ([view.local.name] if view.local is not None else [])
        if zipflavour.is_torch(self.flavour) and any(zipflavour.is_pickle_member(n) for n in names):
            scan_pickle(self.ctx, member, view.display)
        elif self.flavour == zipflavour.KERAS and "config.json" in names:
            # Keras reads the model from config.json by name, with json.loads: however its
            # bytes look (escaped keys, UTF-16, padding), it is a Keras config.
            self.ctx.scan_member(member, view.display, expect="keras-config")
        else:
            self.ctx.scan_member(member, view.display)

    def _scan_stored(self, view: MemberView, raw: ByteSource) -> None:
        ctx = self.ctx
        path = ctx.member_path(view.display)
        if view.usize != view.csize and view.crc_known:
            ctx.report(
                threats.SIZE_MISMATCH.at(
                    path,
                    f"stored member declares {view.usize} bytes but holds {view.csize}",
                )
            )
        if self._is_storage(view):
            if ctx.sniff(raw, view.display, signatures_only=True) is not None:
                ctx.scan_member(raw, view.display)
            return
        if view.crc_known and raw.size <= CRC_CHECK_LIMIT and raw.size == view.csize:
            crc = 0
            for chunk in iter_chunks(raw):
                crc = zlib.crc32(chunk, crc)
            if crc != view.crc:
                ctx.report(threats.CRC_MISMATCH.at(path, f"CRC-32 is {crc:08x}, header says {view.crc:08x}"))
        self._dispatch(view, raw)

    def _stream(self, view: MemberView, raw: ByteSource) -> DecodeStream:
        return DecodeStream(
            raw,
            0,
            raw.size,
            METHOD_CODECS[view.method],
            account=self.ctx.account_expansion,
            max_ratio=self.ctx.limits.max_expansion_ratio,
            what=f"member {view.display}",
        )

    def _scan_compressed(self, view: MemberView, raw: ByteSource) -> None:
        ctx = self.ctx
        path = ctx.member_path(view.display)
        try:
            if self._is_storage(view):
                # Raw tensor bytes: decode only enough to recognise them.
                head = decode_head(self._stream(view, raw))
                if ctx.sniff(BytesSource(head), view.display, signatures_only=True) is None:
                    return
            decoded = spool_decoded(ctx, self._stream(view, raw), view.display)
        except UnsupportedCodec as exc:
            ctx.incomplete(f"cannot decompress: {exc}", threats.INCOMPLETE_UNSUPPORTED_METHOD, path)
            return
        if decoded is None:
            return
        try:
            if decoded.error:
                ctx.report(
                    threats.MALFORMED_ARCHIVE.at(path, f"{decoded.error}; the decoded part was scanned")
                )
            elif view.crc_known:
                if decoded.source.size != view.usize:
                    ctx.report(
                        threats.SIZE_MISMATCH.at(
                            path,
                            f"member decodes to {decoded.source.size} bytes, header says {view.usize}",
                        )
                    )
                if decoded.crc32 != view.crc:
                    ctx.report(
                        threats.CRC_MISMATCH.at(
                            path, f"CRC-32 is {decoded.crc32:08x}, header says {view.crc:08x}"
                        )
                    )
            self._dispatch(view, decoded.source)
        finally:
            decoded.close()

    def _scan_flagged(self, view: MemberView, raw: ByteSource) -> None:
        """Members flagged encrypted / strongly encrypted / patched. Real encryption cannot
        be inspected (incomplete); a flag on plain data is an evasion trick: scan it."""
        ctx = self.ctx
        path = ctx.member_path(view.display)
        flags = []
        if view.flags & zipparse.FLAG_ENCRYPTED:
            flags.append("encrypted")
        if view.flags & zipparse.FLAG_STRONG_ENCRYPTION:
            flags.append("strong encryption")
        if view.flags & zipparse.FLAG_MASKED_HEADERS:
            flags.append("masked headers")
        if view.flags & zipparse.FLAG_PATCHED:
            flags.append("patched data")
        if view.method == AES_METHOD:
            flags.append("AES")
        label = ", ".join(flags)
        encrypted_msg = f"member is encrypted ({label}); its content cannot be inspected without the password"
        zipcrypto_sized = view.method == 0 and view.csize == view.usize + ZIPCRYPTO_HEADER
        if view.method == AES_METHOD or zipcrypto_sized:
            ctx.incomplete(encrypted_msg, threats.INCOMPLETE_ENCRYPTED, path)
            return
        decoded = None
        plain: ByteSource | None = None
        crc: int | None = None
        if view.method == 0:
            plain = raw
            if raw.size <= CRC_CHECK_LIMIT:
                crc = 0
                for chunk in iter_chunks(raw):
                    crc = zlib.crc32(chunk, crc)
        elif view.method in METHOD_CODECS:
            try:
                decoded = spool_decoded(ctx, self._stream(view, raw), view.display)
            except UnsupportedCodec:
                decoded = None
            if decoded is not None and not decoded.error:
                plain, crc = decoded.source, decoded.crc32
        try:
            looks_plain = plain is not None and (
                (crc is not None and crc == view.crc and plain.size > 0)
                or ctx.sniff(plain, view.display) is not None
            )
            if not looks_plain or plain is None:
                ctx.incomplete(encrypted_msg, threats.INCOMPLETE_ENCRYPTED, path)
                return
            ctx.report(
                threats.FAKE_ENCRYPTION.at(
                    path,
                    f"member is flagged {label} but its data is readable plain text; it was scanned",
                    subject=view.name,
                )
            )
            self._dispatch(view, plain)
        finally:
            if decoded is not None:
                decoded.close()

    def _check_link(self, view: MemberView, raw: ByteSource) -> None:
        target_bytes = b""
        if view.method == 0:
            target_bytes = raw.read_at(0, LINK_TARGET_LIMIT)
        elif view.method in METHOD_CODECS:
            try:
                target_bytes = decode_head(self._stream(view, raw), LINK_TARGET_LIMIT)
            except UnsupportedCodec:
                target_bytes = b""
        target = target_bytes.decode("utf-8", errors="replace")
        if member_names.link_escapes(view.name, target):
            self.ctx.report(
                threats.LINK_ESCAPE.at(
                    self.ctx.member_path(view.display),
                    f"symlink member {view.name!r} points to {target!r}, outside the archive",
                    subject=target,
                )
            )


def _compare(entry: CentralEntry, local: LocalHeader) -> list[str]:
    out = []
    if entry.name_raw != local.name_raw:
        out.append(f"name {local.name!r} vs {entry.name!r}")
    if entry.method != local.method:
        out.append(f"method {local.method} vs {entry.method}")
    # bit 3 (data descriptor) and bits 1-2 (deflate level hints) do not change what a
    # reader decodes; every other flag must agree.
    significant = ~(zipparse.FLAG_DESCRIPTOR | 0x0006) & 0xFFFF
    if (entry.flags ^ local.flags) & significant:
        out.append(f"flags {local.flags:#06x} vs {entry.flags:#06x}")
    if local.sizes_known and not local.flags & zipparse.FLAG_DESCRIPTOR:
        if local.crc != entry.crc:
            out.append(f"CRC {local.crc:08x} vs {entry.crc:08x}")
        if local.csize != entry.csize:
            out.append(f"compressed size {local.csize} vs {entry.csize}")
        if local.usize != entry.usize:
            out.append(f"size {local.usize} vs {entry.usize}")
    return out


def _data_view_differs(entry: CentralEntry, local: LocalHeader) -> bool:
    """True if a local-header reader would decode different bytes than a directory reader."""
    if entry.method != local.method:
        return True
    if (entry.flags ^ local.flags) & (zipparse.ENCRYPTION_FLAGS | zipparse.FLAG_PATCHED):
        return True
    return local.sizes_known and local.csize != entry.csize


SCANNER = ZipScanner()


def _directory_marks(view: MemberView) -> str | None:
    """Why a tool might take this member for a directory, or None."""
    if view.name.endswith(("/", "\\")):
        return f"name ends with {view.name[-1]!r}"
    if view.entry is not None and view.entry.is_dir:
        return f"Unix mode {oct(view.entry.unix_mode or 0)} marks a directory"
    return None
