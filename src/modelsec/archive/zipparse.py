"""Zip structure read from bytes: end record, central directory, local headers.

Both views are parsed because loaders disagree about which one to trust: ``zipfile`` and
miniz (``torch.load``) read the central directory, streaming extractors walk the local
headers. Nothing here decompresses or allocates from a declared size; every record is
bounded by the source size. Problems are collected as messages, never raised.
"""

from __future__ import annotations

import stat
import struct
from dataclasses import dataclass, field

from modelsec.archive.names import special_file_type
from modelsec.bytesource import ByteSource

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
ZIP64_EOCD_SIG = b"PK\x06\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
DESCRIPTOR_SIG = b"PK\x07\x08"

FLAG_ENCRYPTED = 0x0001
FLAG_DESCRIPTOR = 0x0008
FLAG_PATCHED = 0x0020
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800
FLAG_MASKED_HEADERS = 0x2000
ENCRYPTION_FLAGS = FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS

_EOCD = struct.Struct("<4sHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
MAX_COMMENT = 0xFFFF
MAX_WALK_SCAN = 1 << 30  # bytes searched for a data descriptor of a member without sizes


def decode_name(raw: bytes, flags: int) -> str:
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", errors="replace")
    return raw.decode("cp437")


@dataclass
class CentralEntry:
    """A zip central-directory entry, as parsed (names raw and decoded)."""

    index: int
    version_made_by: int
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    name_raw: bytes
    extra: bytes
    external_attr: int
    local_offset: int  # absolute offset in the source (prefix shift applied)
    disk: int
    # Read by every check of every member (names, flavour, duplicates): decoded once.
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = decode_name(self.name_raw, self.flags)

    @property
    def unix_mode(self) -> int | None:
        # 3 = Unix, 19 = OS X: the high 16 bits of the external attributes are st_mode
        if (self.version_made_by >> 8) in (3, 19):
            return self.external_attr >> 16
        return None

    @property
    def is_dir(self) -> bool:
        mode = self.unix_mode
        return self.name.endswith(("/", "\\")) or (mode is not None and stat.S_ISDIR(mode))

    @property
    def is_symlink(self) -> bool:
        mode = self.unix_mode
        return mode is not None and stat.S_ISLNK(mode)

    @property
    def is_special(self) -> bool:
        return special_file_type(self.unix_mode)


@dataclass
class LocalHeader:
    """A zip local file header, as parsed at its offset."""

    offset: int
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    name_raw: bytes
    extra: bytes
    data_offset: int
    sizes_known: bool  # False when bit 3 defers sizes to a data descriptor
    name: str = field(init=False)  # as CentralEntry.name

    def __post_init__(self) -> None:
        self.name = decode_name(self.name_raw, self.flags)


@dataclass
class ZipLayout:
    """Everything parsed from one zip source."""

    size: int
    entries: list[CentralEntry] = field(default_factory=list)
    locals_by_offset: dict[int, LocalHeader] = field(default_factory=dict)
    walked: list[LocalHeader] = field(default_factory=list)  # local headers in file order
    eocd_offset: int | None = None
    cd_start: int | None = None
    cd_end: int | None = None
    declared_entries: int | None = None
    prefix: int = 0  # bytes before the archive (self-extractor stub, polyglot head)
    archive_end: int | None = None  # end of the end record and its comment
    problems: list[str] = field(default_factory=list)
    central_ok: bool = False
    multi_disk: bool = False
    # Readers that pick another central directory than zipfile does (torch's miniz follows
    # the zip64 locator; zipfile reads the record just before it): their entries were
    # added to ``entries`` too, and this says which reader sees what.
    disagreements: list[str] = field(default_factory=list)


def _zip64_values(extra: bytes, wanted: list[str]) -> dict[str, int]:
    """Values from the zip64 extra field (0x0001), in the order the spec lists them."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if tag != 0x0001:
            continue
        out: dict[str, int] = {}
        off = 0
        for key in wanted:
            width = 4 if key == "disk" else 8
            if off + width > len(body):
                break
            out[key] = int.from_bytes(body[off : off + width], "little")
            off += width
        return out
    return {}


def find_eocd(source: ByteSource) -> int | None:
    """Offset of the last end-of-central-directory record (as zipfile and miniz pick)."""
    size = source.size
    start = max(0, size - (_EOCD.size + MAX_COMMENT))
    tail = source.read_at(start, size - start)
    idx = tail.rfind(EOCD_SIG)
    while idx >= 0:
        if len(tail) - idx >= _EOCD.size:
            return start + idx
        idx = tail.rfind(EOCD_SIG, 0, idx)
    return None


def read_local(source: ByteSource, offset: int) -> LocalHeader | None:
    raw = source.read_at(offset, _LOCAL.size)
    if len(raw) < _LOCAL.size or not raw.startswith(LOCAL_SIG):
        return None
    (_, _ver, flags, method, _t, _d, crc, csize, usize, nlen, xlen) = _LOCAL.unpack(raw)
    name_raw = source.read_at(offset + _LOCAL.size, nlen)
    extra = source.read_at(offset + _LOCAL.size + nlen, xlen)
    if len(name_raw) < nlen or len(extra) < xlen:
        return None
    if csize == 0xFFFFFFFF or usize == 0xFFFFFFFF:
        z64 = _zip64_values(extra, ["usize", "csize"])
        usize = z64.get("usize", usize)
        csize = z64.get("csize", csize)
    sizes_known = not (flags & FLAG_DESCRIPTOR) or csize != 0
    return LocalHeader(
        offset,
        flags,
        method,
        crc,
        csize,
        usize,
        name_raw,
        extra,
        offset + _LOCAL.size + nlen + xlen,
        sizes_known,
    )


def parse(source: ByteSource, max_entries: int) -> ZipLayout:
    layout = ZipLayout(size=source.size)
    parse_central(source, layout, max_entries)
    _walk_locals(source, layout, max_entries)
    for entry in layout.entries:
        if entry.local_offset not in layout.locals_by_offset:
            header = read_local(source, entry.local_offset)
            if header is not None:
                layout.locals_by_offset[entry.local_offset] = header
    return layout


@dataclass(frozen=True)
class _EndRecord:
    """What the end record (or the zip64 end record) declares about the directory."""

    position: int  # offset of the record the values come from
    disk: int
    cd_disk: int
    entries: int
    cd_size: int
    cd_offset: int


def parse_central(source: ByteSource, layout: ZipLayout, max_entries: int) -> None:
    ends = _read_end_records(source, layout)
    if not ends:
        return
    end, *others = ends
    if end.disk != 0 or end.cd_disk != 0:
        layout.multi_disk = True
        layout.problems.append("multi-disk (spanned) archive")
    layout.declared_entries = end.entries
    directory = _locate_directory(source, layout, end)
    if directory is None:
        return
    count = _read_entries(source, layout, directory, max_entries, layout.prefix)
    if layout.entries and count != end.entries and count < max_entries:
        layout.problems.append(f"end record declares {end.entries} entries, central directory holds {count}")
    layout.central_ok = bool(layout.entries) or (end.entries == 0 and end.cd_size == 0)
    for other in others:
        _read_other_directory(source, layout, other, max_entries)


@dataclass(frozen=True)
class _Reading:
    """The end record one kind of reader takes the directory from."""

    readers: str
    end: _EndRecord


def _read_end_records(source: ByteSource, layout: ZipLayout) -> list[_EndRecord]:
    """The end records readers take the central directory from, zipfile's first, then
    any other that describes another directory (recorded in ``layout.disagreements``)."""
    eocd = find_eocd(source)
    if eocd is None:
        layout.problems.append("no end-of-central-directory record")
        return []
    layout.eocd_offset = eocd
    (_, disk, cd_disk, _n_disk, n_total, cd_size, cd_offset, clen) = _EOCD.unpack(
        source.read_at(eocd, _EOCD.size)
    )
    layout.archive_end = min(eocd + _EOCD.size + clen, source.size)
    if eocd + _EOCD.size + clen > source.size:
        layout.problems.append("archive comment runs past the end of the file")
    classic = _EndRecord(eocd, disk, cd_disk, n_total, cd_size, cd_offset)
    readings = _readings(source, layout, eocd, classic)
    if not readings:
        return []
    first = readings[0]
    distinct = [first]
    for reading in readings[1:]:
        if all(_directory_of(reading.end) != _directory_of(seen.end) for seen in distinct):
            distinct.append(reading)
    for reading in distinct[1:]:
        layout.disagreements.append(
            f"{first.readers}: central directory at offset {first.end.cd_offset} "
            f"({first.end.entries} entries); {reading.readers}: central directory at offset "
            f"{reading.end.cd_offset} ({reading.end.entries} entries)"
        )
    return [reading.end for reading in distinct]


def _readings(source: ByteSource, layout: ZipLayout, eocd: int, classic: _EndRecord) -> list[_Reading]:
    """Which end record each reader uses. Without a zip64 locator every reader uses the
    end record. With one, Python's zipfile reads a zip64 record only just before the
    locator (otherwise the end record), while torch's miniz reads it only where the
    locator points: a crafted file can give them two different directories."""
    loc = source.read_at(eocd - _ZIP64_LOCATOR.size, _ZIP64_LOCATOR.size) if eocd >= 20 else b""
    if not (loc.startswith(ZIP64_LOCATOR_SIG) and len(loc) == _ZIP64_LOCATOR.size):
        return [_Reading("every reader", classic)]
    _, _z_disk, z_offset, _disks = _ZIP64_LOCATOR.unpack(loc)
    before = _zip64_record_at(source, eocd - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size)
    pointed = _zip64_record_at(source, z_offset)
    usable_classic = not _has_zip64_sentinels(classic)
    readings = []
    if before is not None:
        readings.append(_Reading("zipfile (numpy.load, keras)", before))
    elif usable_classic:
        readings.append(_Reading("zipfile (numpy.load, keras)", classic))
    if pointed is not None:
        readings.append(_Reading("torch.load (miniz)", pointed))
    if before is None and pointed is None:
        layout.problems.append("zip64 locator without a zip64 end record")
        if usable_classic and not readings:
            readings.append(_Reading("every reader", classic))
    if usable_classic and all(r.end is not classic for r in readings):
        readings.append(_Reading("readers without zip64 support", classic))
    return readings


def _zip64_record_at(source: ByteSource, pos: int) -> _EndRecord | None:
    raw = source.read_at(pos, _ZIP64_EOCD.size) if pos >= 0 else b""
    if len(raw) != _ZIP64_EOCD.size or not raw.startswith(ZIP64_EOCD_SIG):
        return None
    (_, _sz, _m, _n, disk, cd_disk, _nd, n_total, cd_size, cd_offset) = _ZIP64_EOCD.unpack(raw)
    return _EndRecord(pos, disk, cd_disk, n_total, cd_size, cd_offset)


def _has_zip64_sentinels(end: _EndRecord) -> bool:
    """The end record defers to zip64 (its fields hold the all-ones placeholders)."""
    return end.entries == 0xFFFF or end.cd_size == 0xFFFFFFFF or end.cd_offset == 0xFFFFFFFF


def _directory_of(end: _EndRecord) -> tuple[int, int, int]:
    return end.cd_offset, end.cd_size, end.entries


def _read_other_directory(source: ByteSource, layout: ZipLayout, end: _EndRecord, max_entries: int) -> None:
    """Add the entries of a directory another reader takes (see ``disagreements``) that
    are not already listed: they are scanned like the others."""
    located = _directory_range(source, end)
    if located is None:
        return
    directory, prefix = located
    known = {(e.local_offset, e.name_raw) for e in layout.entries}
    other = ZipLayout(size=layout.size)
    _read_entries(source, other, directory, max(0, max_entries - len(layout.entries)), prefix)
    for entry in other.entries:
        if (entry.local_offset, entry.name_raw) not in known:
            entry.index = len(layout.entries)
            layout.entries.append(entry)


def _directory_range(source: ByteSource, end: _EndRecord) -> tuple[range, int] | None:
    """The central directory's bytes and the prefix (self-extractor stub, polyglot head)
    that shifts the archive, or None if it cannot be anywhere."""
    prefix = end.position - end.cd_size - end.cd_offset
    if prefix < 0:
        prefix = 0
        if end.cd_offset >= end.position:
            return None
    cd_start = end.cd_offset + prefix
    # A self-extractor/polyglot shift applies only if the directory really is there.
    if (
        prefix
        and source.read_at(cd_start, 4) != CENTRAL_SIG
        and source.read_at(end.cd_offset, 4) == CENTRAL_SIG
    ):
        prefix, cd_start = 0, end.cd_offset
    return range(cd_start, min(cd_start + end.cd_size, end.position)), prefix


def _locate_directory(source: ByteSource, layout: ZipLayout, end: _EndRecord) -> range | None:
    """Where the central directory is (offsets in the source), recording the prefix a
    self-extractor stub or polyglot head shifts it by; None if it cannot be anywhere."""
    if end.position - end.cd_size - end.cd_offset < 0:
        layout.problems.append(
            f"central directory (offset {end.cd_offset}, size {end.cd_size}) does not fit "
            "before its end record"
        )
    located = _directory_range(source, end)
    if located is None:
        return None
    directory, layout.prefix = located
    layout.cd_start, layout.cd_end = directory.start, directory.stop
    return directory


def _read_entries(
    source: ByteSource, layout: ZipLayout, directory: range, max_entries: int, prefix: int
) -> int:
    """Append the directory's entries to ``layout`` in order, at most ``max_entries``;
    how many were read. ``prefix`` shifts the offsets they record."""
    pos, index = directory.start, 0
    while pos + _CENTRAL.size <= directory.stop:
        if index >= max_entries:
            break
        length = _read_entry(source, layout, pos, index, directory.stop, prefix)
        if length is None:
            break
        index += 1
        pos += length
    else:
        if pos != directory.stop:
            layout.problems.append("central directory has trailing bytes")
    return index


def _read_entry(
    source: ByteSource, layout: ZipLayout, pos: int, index: int, cd_end: int, prefix: int
) -> int | None:
    """Append the entry at ``pos`` to ``layout``; its length in the directory, or None
    (and a problem) if it is damaged."""
    raw = source.read_at(pos, _CENTRAL.size)
    if not raw.startswith(CENTRAL_SIG):
        layout.problems.append(f"central directory entry {index} has a bad signature")
        return None
    (
        _,
        made_by,
        _needed,
        flags,
        method,
        _t,
        _d,
        crc,
        csize,
        usize,
        nlen,
        xlen,
        clen_e,
        disk_start,
        _internal,
        external,
        offset,
    ) = _CENTRAL.unpack(raw)
    name_raw = source.read_at(pos + _CENTRAL.size, nlen)
    extra = source.read_at(pos + _CENTRAL.size + nlen, xlen)
    length: int = _CENTRAL.size + nlen + xlen + clen_e
    if pos + length > cd_end:
        layout.problems.append(f"central directory entry {index} runs past the directory")
        return None
    wanted = [
        key
        for key, value, full in (
            ("usize", usize, 0xFFFFFFFF),
            ("csize", csize, 0xFFFFFFFF),
            ("offset", offset, 0xFFFFFFFF),
            ("disk", disk_start, 0xFFFF),
        )
        if value == full
    ]
    if wanted:
        z64 = _zip64_values(extra, wanted)
        usize = z64.get("usize", usize)
        csize = z64.get("csize", csize)
        offset = z64.get("offset", offset)
        disk_start = z64.get("disk", disk_start)
    layout.entries.append(
        CentralEntry(
            index,
            made_by,
            flags,
            method,
            crc,
            csize,
            usize,
            name_raw,
            extra,
            external,
            offset + prefix,
            disk_start,
        )
    )
    return length


def _walk_locals(source: ByteSource, layout: ZipLayout, max_entries: int) -> None:
    """Follow local headers from the start of the archive, as a streaming extractor does."""
    by_offset = {e.local_offset: e for e in layout.entries}
    pos = layout.prefix
    if not source.read_at(pos, 4) == LOCAL_SIG:
        first = min(by_offset) if by_offset else None
        if first is None or source.read_at(first, 4) != LOCAL_SIG:
            return
        pos = first
    seen = 0
    while seen < max_entries:
        header = read_local(source, pos)
        if header is None:
            if source.read_at(pos, 4) == LOCAL_SIG:
                layout.problems.append(f"local header at offset {pos} is truncated")
            break
        layout.walked.append(header)
        layout.locals_by_offset[pos] = header
        seen += 1
        csize = header.csize
        central = by_offset.get(pos)
        if not header.sizes_known:
            if central is not None:
                csize = central.csize
            else:
                found = find_descriptor(source, header.data_offset)
                if found is None:
                    layout.problems.append(f"member at offset {pos} has no sizes and no data descriptor")
                    break
                csize = found
        end = header.data_offset + csize
        if end > source.size:
            break
        if header.flags & FLAG_DESCRIPTOR:
            end += _descriptor_length(source, end, header)
        if end <= pos:
            break
        pos = end
        if source.read_at(pos, 4) != LOCAL_SIG:
            break


def has_zip64_extra(extra: bytes) -> bool:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001:
            return True
        pos += 4 + size
    return False


def _descriptor_length(source: ByteSource, pos: int, header: LocalHeader) -> int:
    sig = source.read_at(pos, 4) == DESCRIPTOR_SIG
    base = 20 if has_zip64_extra(header.extra) else 12
    return base + (4 if sig else 0)


def find_descriptor(source: ByteSource, data_offset: int) -> int | None:
    """Compressed size of a member whose sizes live only in its data descriptor: the first
    descriptor signature whose recorded size matches its distance from the data."""
    pos = data_offset
    limit = min(source.size, data_offset + MAX_WALK_SCAN)
    carry = b""
    while pos < limit:
        chunk = source.read_at(pos, min(1 << 20, limit - pos))
        if not chunk:
            return None
        buf = carry + chunk
        base = pos - len(carry)
        idx = buf.find(DESCRIPTOR_SIG)
        while idx >= 0:
            at = base + idx
            rec = source.read_at(at + 8, 4)
            if len(rec) == 4 and int.from_bytes(rec, "little") == at - data_offset:
                return at - data_offset
            idx = buf.find(DESCRIPTOR_SIG, idx + 1)
        carry = buf[-3:]
        pos += len(chunk)
    return None
