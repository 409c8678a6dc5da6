"""Helpers for the container and tensor-format tests: scanning bytes, a zip writer that can
lie in every header field, pickles built from opcode bytes, and a stand-in pickle scanner
so that routing tests do not depend on the real pickle analysis."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from modelsec import formats
from modelsec.bytesource import BytesSource
from modelsec.context import Limits
from modelsec.engine import Engine, FileResult
from modelsec.findings import THREATS, Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

# --- scanning -----------------------------------------------------------------------------


def scan_bytes(data: bytes, name: str = "sample", limits: Limits | None = None) -> FileResult:
    return Engine(limits).scan_source(name, BytesSource(data))


def threats_of(result: FileResult) -> set[str]:
    return {f.threat for f in result.findings}


def incomplete_codes(result: FileResult) -> set[str]:
    return {i.code for i in result.incompletes}


def formats_of(result: FileResult) -> dict[str, str]:
    """Display path (after the top-level name) -> format name of its first reading (a
    polyglot has several readings of one path; see :func:`readings_of`)."""
    out: dict[str, str] = {}
    for key, names in readings_of(result).items():
        out[key] = names[0]
    return out


def readings_of(result: FileResult) -> dict[str, list[str]]:
    """Display path (after the top-level name) -> every format it was read as."""
    out: dict[str, list[str]] = {}
    for record in result.formats:
        key = record.path.split("!", 1)[1] if "!" in record.path else ""
        out.setdefault(key, []).append(record.format)
    return out


def verdict_of(path: str) -> Outcome:
    report = Engine().scan_path(path)
    return evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL)).outcome


# --- pickles from opcode bytes ------------------------------------------------------------


def malicious_pickle(command: bytes = b"id") -> bytes:
    """posix.system(command) in protocol 2, written opcode by opcode (never pickle.dumps)."""
    return (
        b"\x80\x02"  # PROTO 2
        + b"cposix\nsystem\n"  # GLOBAL
        + b"X"
        + struct.pack("<I", len(command))
        + command  # BINUNICODE
        + b"\x85"  # TUPLE1
        + b"R"  # REDUCE
        + b"."  # STOP
    )


def benign_pickle() -> bytes:
    """{'a': 1} in protocol 2."""
    return b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."


# --- a stand-in pickle scanner ------------------------------------------------------------

STUB_THREAT = THREATS.get("MS-TEST-901") or threat(
    "MS-TEST-901",
    "LoadTimeCodeExecution",
    Severity.CRITICAL,
    "Test stand-in: pickle calls posix.system",
    "Test only.",
)


@dataclass
class StubPickle(FormatScanner):
    """Claims binary pickles (PROTO opcode) and flags ``posix.system``; records what it saw."""

    seen: list[str] = field(default_factory=list)
    name = "pickle"  # type: ignore[assignment]
    category = FormatCategory.MODEL
    priority = 90  # after every specific signature, as a permissive detector would be

    def detect(self, head: bytes, source, filename: str) -> bool:  # type: ignore[no-untyped-def]
        return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5

    def scan(self, source, ctx) -> None:  # type: ignore[no-untyped-def]
        self.seen.append(ctx.path)
        data = source.read_at(0, source.size)
        if b"posix\nsystem" in data:
            ctx.report(STUB_THREAT.at(ctx.path, "posix.system", subject="posix.system"))


@pytest.fixture
def stub_pickle(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubPickle]:
    """Replace whatever pickle scanner is registered with :class:`StubPickle`."""
    stub = StubPickle()
    real = tuple(s for s in formats.scanners() if s.name != "pickle")
    ordered = tuple(sorted(real + (stub,), key=lambda s: s.priority))
    monkeypatch.setattr(formats, "scanners", lambda: ordered)
    yield stub


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pickle scanner at all: pickle data must fail closed."""
    real = tuple(s for s in formats.scanners() if s.name != "pickle")
    monkeypatch.setattr(formats, "scanners", lambda: real)


# --- a zip writer that can lie ------------------------------------------------------------


@dataclass
class ZipEntry:
    name: str
    data: bytes  # uncompressed content
    method: int = 0  # 0 stored, 8 deflate
    flags: int = 0
    external_attr: int = 0
    version_made_by: int = 20  # high byte 0 = MS-DOS; 3 << 8 for Unix modes
    # per-header overrides: {"name": b"..", "method": 8, "flags": 1, "crc": .., "csize": ..,
    # "usize": .., "extra": b".."} applied to the local or the central header only
    local: dict[str, object] = field(default_factory=dict)
    central: dict[str, object] = field(default_factory=dict)
    in_central: bool = True
    raw: bytes | None = None  # use these bytes as the member's compressed data


def compress(data: bytes, method: int) -> bytes:
    if method == 8:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush()
    return data


def build_zip(
    entries: list[ZipEntry],
    *,
    prefix: bytes = b"",
    trailing: bytes = b"",
    comment: bytes = b"",
    central_offsets: dict[int, int] | None = None,
    declared_entries: int | None = None,
    shift_offsets: bool = False,
) -> bytes:
    """A zip built field by field. ``central_offsets`` maps an entry index to the local
    header offset its central record should claim (overlap tricks). With
    ``shift_offsets`` the recorded offsets include ``prefix`` (a valid self-extractor)."""
    body = bytearray(prefix)
    central = bytearray()
    count = 0
    offsets = []
    for entry in entries:
        stored = entry.raw if entry.raw is not None else compress(entry.data, entry.method)
        crc = zlib.crc32(entry.data)
        base = {
            "name": entry.name.encode(),
            "method": entry.method,
            "flags": entry.flags,
            "crc": crc,
            "csize": len(stored),
            "usize": len(entry.data),
        }
        loc = {**base, **entry.local}
        cen = {**base, **entry.central}
        offset = len(body) - (0 if shift_offsets else len(prefix))
        offsets.append(offset)
        body += struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            loc["flags"],
            loc["method"],
            0,
            0x21,
            loc["crc"],
            loc["csize"],
            loc["usize"],
            len(loc["name"]),  # type: ignore[arg-type]
            len(loc.get("extra", b"")),  # type: ignore[arg-type]
        )
        body += loc["name"]  # type: ignore[operator]
        body += loc.get("extra", b"")  # type: ignore[operator]
        body += stored
        if not entry.in_central:
            continue
        claimed = (central_offsets or {}).get(len(offsets) - 1, offset)
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            entry.version_made_by,
            20,
            cen["flags"],
            cen["method"],
            0,
            0x21,
            cen["crc"],
            cen["csize"],
            cen["usize"],
            len(cen["name"]),
            len(cen.get("extra", b"")),
            0,
            0,
            0,  # type: ignore[arg-type]
            entry.external_attr,
            claimed,
        )
        central += cen["name"]  # type: ignore[operator]
        central += cen.get("extra", b"")  # type: ignore[operator]
        count += 1
    cd_offset = len(body) - (0 if shift_offsets else len(prefix))
    n = count if declared_entries is None else declared_entries
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(central), cd_offset, len(comment))
    return bytes(body + central + eocd + comment + trailing)


def unix_mode_attr(mode: int) -> int:
    return mode << 16


def zip64_extra(usize: int, csize: int) -> bytes:
    return struct.pack("<HHQQ", 0x0001, 16, usize, csize)
