"""Zip archives: benign archives from zipfile/numpy, hostile ones built field by field."""

from __future__ import annotations

import io
import os
import stat
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from containers_support import (
    ZipEntry,
    benign_pickle,
    build_zip,
    formats_of,
    incomplete_codes,
    malicious_pickle,
    no_pickle,  # noqa: F401 - fixture
    scan_bytes,
    stub_pickle,  # noqa: F401 - fixture
    threats_of,
    unix_mode_attr,
    verdict_of,
    zip64_extra,
)

from modelsec.context import Limits
from modelsec.policy import Outcome


def _zipfile(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


# --- benign -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_benign_zip_has_no_findings(compression: int) -> None:
    data = _zipfile({"model/config.json": b'{"a": 1}', "README.md": b"# hi\n" * 50}, compression)
    result = scan_bytes(data, "model.zip")
    assert result.findings == [] and result.incompletes == []
    assert formats_of(result)[""] == "zip"
    assert set(formats_of(result)) == {"", "model/config.json", "README.md"}


def test_zip64_and_data_descriptors_are_not_mismatches() -> None:
    class NoSeek(io.RawIOBase):
        def __init__(self) -> None:
            self.buf = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b):  # type: ignore[no-untyped-def]
            self.buf += b
            return len(b)

    sink = NoSeek()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as z:  # type: ignore[arg-type]
        with z.open("a.txt", "w", force_zip64=True) as f:
            f.write(b"hello world\n" * 100)
        z.writestr("b.txt", b"second")
    data = bytes(sink.buf)
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x08
    result = scan_bytes(data, "d.zip")
    assert result.findings == [] and result.incompletes == []


@pytest.mark.parametrize("save", ["savez", "savez_compressed"])
def test_numpy_npz_is_allowed(tmp_path: Path, save: str) -> None:
    path = tmp_path / "arrays.npz"
    getattr(np, save)(path, a=np.arange(10), b=np.ones((3, 4), dtype=np.float32))
    result = scan_bytes(path.read_bytes(), "arrays.npz")
    assert result.findings == [] and result.incompletes == []
    assert formats_of(result) == {"": "numpy-npz", "a.npy": "numpy-npy", "b.npy": "numpy-npy"}
    assert verdict_of(str(path)) == Outcome.ALLOWED


def test_npz_with_object_array_reaches_the_pickle_scanner(stub_pickle, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "obj.npz"
    np.savez(path, a=np.array([{"k": 1}, None], dtype=object))
    result = scan_bytes(path.read_bytes(), "obj.npz")
    assert any(p.endswith("obj.npz!a.npy!<object data>") for p in stub_pickle.seen)
    assert result.incompletes == []


# --- names and links ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, code",
    [
        ("../evil.txt", "MS-ARC-001"),
        ("a/../../evil.txt", "MS-ARC-001"),
        ("..\\..\\evil.txt", "MS-ARC-001"),
        ("/etc/evil.txt", "MS-ARC-002"),
        ("C:\\Windows\\evil.txt", "MS-ARC-002"),
        ("model.pkl\x00.txt", "MS-ARC-018"),
    ],
)
def test_hostile_member_names(name: str, code: str) -> None:
    data = build_zip([ZipEntry(name, b"payload"), ZipEntry("ok/fine.txt", b"x")])
    result = scan_bytes(data, "names.zip")
    assert code in threats_of(result)
    assert not {"MS-ARC-001", "MS-ARC-002"} & {f.threat for f in result.findings if "fine.txt" in f.file}


def test_plain_relative_names_are_fine() -> None:
    data = build_zip([ZipEntry("a/./b/../c.txt", b"x"), ZipEntry("d\\e.txt", b"y")])
    assert threats_of(scan_bytes(data)) == set()


def test_symlink_member_out_of_tree() -> None:
    link = ZipEntry(
        "model/weights.bin",
        b"../../../etc/passwd",
        version_made_by=3 << 8,
        external_attr=unix_mode_attr(stat.S_IFLNK | 0o777),
    )
    inside = ZipEntry(
        "model/alias.bin",
        b"weights.bin",
        version_made_by=3 << 8,
        external_attr=unix_mode_attr(stat.S_IFLNK | 0o777),
    )
    result = scan_bytes(build_zip([link, inside]), "links.zip")
    escapes = [f for f in result.findings if f.threat == "MS-ARC-003"]
    assert len(escapes) == 1 and escapes[0].file.endswith("model/weights.bin")


def test_special_file_member() -> None:
    fifo = ZipEntry("pipe", b"", version_made_by=3 << 8, external_attr=unix_mode_attr(stat.S_IFIFO | 0o644))
    assert "MS-ARC-004" in threats_of(scan_bytes(build_zip([fifo])))


@pytest.mark.parametrize(
    "kind", [stat.S_IFLNK, stat.S_IFIFO, stat.S_IFCHR], ids=["symlink", "fifo", "device"]
)
def test_link_or_special_member_bytes_are_scanned(stub_pickle, kind: int) -> None:  # noqa: F811
    """zipfile and torch's reader ignore the mode bits and read the member's bytes: a
    data.pkl marked as a symlink or a FIFO is unpickled all the same. Its bytes are scanned,
    not only reported (a group that lets the archive findings pass must still see them)."""
    member = ZipEntry(
        "archive/data.pkl",
        malicious_pickle(),
        version_made_by=3 << 8,
        external_attr=unix_mode_attr(kind | 0o644),
    )
    result = scan_bytes(build_zip([member]), "model.pt")
    assert stub_pickle.seen == ["model.pt!archive/data.pkl"]
    assert "MS-TEST-901" in threats_of(result)


def test_duplicate_names_scan_every_copy(stub_pickle) -> None:  # noqa: F811
    data = build_zip([ZipEntry("data.pkl", benign_pickle()), ZipEntry("data.pkl", malicious_pickle())])
    result = scan_bytes(data, "dup.zip")
    assert "MS-ARC-005" in threats_of(result)
    assert "MS-TEST-901" in threats_of(result)
    assert len(stub_pickle.seen) == 2


# --- header tricks ------------------------------------------------------------------------


def test_local_and_central_names_differ() -> None:
    data = build_zip([ZipEntry("data.pkl", b"abc", local={"name": b"datap.kl"})])
    result = scan_bytes(data)
    assert "MS-ARC-008" in threats_of(result)


def test_method_mismatch_scans_both_views(stub_pickle) -> None:  # noqa: F811
    # The directory says "stored" (a reader sees deflate noise); the local header says
    # "deflate" (a streaming reader sees the pickle). Both views must be scanned.
    payload = malicious_pickle()
    deflated = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = deflated.compress(payload) + deflated.flush()
    entry = ZipEntry(
        "model.bin",
        payload,
        method=8,
        raw=raw,
        central={"method": 0, "usize": len(raw)},
    )
    result = scan_bytes(build_zip([entry]), "m.zip")
    assert "MS-ARC-008" in threats_of(result)
    hits = [f for f in result.findings if f.threat == "MS-TEST-901"]
    assert hits and hits[0].file.endswith("model.bin#local")


def test_member_hidden_from_central_directory(stub_pickle) -> None:  # noqa: F811
    data = build_zip(
        [ZipEntry("readme.txt", b"hello"), ZipEntry("evil.pkl", malicious_pickle(), in_central=False)]
    )
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["readme.txt"]
    result = scan_bytes(data, "h.zip")
    assert {"MS-ARC-009", "MS-TEST-901"} <= threats_of(result)


@pytest.mark.parametrize("flag", [0x01, 0x20, 0x40])
def test_fake_encryption_flag_on_plain_member(stub_pickle, flag: int) -> None:  # noqa: F811
    data = build_zip([ZipEntry("model/config.pkl", malicious_pickle(), flags=flag)])
    result = scan_bytes(data, "f.zip")
    assert {"MS-ARC-012", "MS-TEST-901"} <= threats_of(result)
    assert result.incompletes == []


def test_really_encrypted_member_is_incomplete(tmp_path: Path) -> None:
    body = b"secret weights"
    entry = ZipEntry("w.bin", body, flags=0x01, raw=os.urandom(12) + os.urandom(len(body)))
    entry.local["crc"] = entry.central["crc"] = zlib.crc32(body)
    data = build_zip([entry])
    result = scan_bytes(data, "enc.zip")
    assert incomplete_codes(result) == {"MS-ARC-020"}
    assert result.findings == []
    path = tmp_path / "enc.zip"
    path.write_bytes(data)
    assert verdict_of(str(path)) == Outcome.ERROR


def test_unknown_compression_method_is_incomplete() -> None:
    data = build_zip([ZipEntry("w.bin", b"zstd?", method=93)])
    assert "MS-ARC-021" in incomplete_codes(scan_bytes(data))


def test_crc_mismatch() -> None:
    data = build_zip([ZipEntry("a.txt", b"hello", local={"crc": 1}, central={"crc": 1})])
    assert "MS-ARC-016" in threats_of(scan_bytes(data))


def test_entry_count_mismatch_is_malformed() -> None:
    data = build_zip([ZipEntry("a.txt", b"a"), ZipEntry("b.txt", b"b")], declared_entries=1)
    assert "MS-ARC-013" in threats_of(scan_bytes(data))


# --- outside data and broken directories -------------------------------------------------


@pytest.mark.parametrize("shift", [False, True])
def test_pickle_prefix_polyglot(stub_pickle, shift: bool) -> None:  # noqa: F811
    data = build_zip([ZipEntry("a.txt", b"hello")], prefix=malicious_pickle(), shift_offsets=shift)
    assert zipfile.ZipFile(io.BytesIO(data)).read("a.txt") == b"hello"
    result = scan_bytes(data, "poly.bin")
    assert formats_of(result)[""] == "zip"
    assert {"MS-ARC-014", "MS-TEST-901"} <= threats_of(result)
    assert any(f.file.endswith("!<prefix>") for f in result.findings if f.threat == "MS-TEST-901")


def test_trailing_data_is_scanned(stub_pickle) -> None:  # noqa: F811
    data = build_zip([ZipEntry("a.txt", b"hello")], trailing=malicious_pickle())
    result = scan_bytes(data)
    assert {"MS-ARC-015", "MS-TEST-901"} <= threats_of(result)


def test_missing_central_directory_falls_back_to_local_headers(stub_pickle) -> None:  # noqa: F811
    full = build_zip([ZipEntry("archive/data.pkl", malicious_pickle()), ZipEntry("b.txt", b"x")])
    truncated = full[: full.index(b"PK\x01\x02")]
    result = scan_bytes(truncated, "broken.zip")
    assert {"MS-ARC-013", "MS-TEST-901"} <= threats_of(result)


def test_central_directory_pointing_nowhere() -> None:
    data = build_zip([ZipEntry("a.txt", b"hello")], central_offsets={0: 4000})
    result = scan_bytes(data)
    assert "MS-ARC-013" in threats_of(result)


# --- bombs --------------------------------------------------------------------------------


def test_overlapping_entries() -> None:
    data = build_zip(
        [ZipEntry("a.bin", b"A" * 1000, method=8), ZipEntry("b.bin", b"A" * 1000, method=8)],
        central_offsets={1: 0},
    )
    assert "MS-ARC-007" in threats_of(scan_bytes(data, "overlap.zip"))


def test_expansion_ratio_bomb_stops_early() -> None:
    size = 40 << 20
    data = build_zip([ZipEntry("zeros.bin", b"\0" * size, method=8)])
    assert len(data) < size / 500
    result = scan_bytes(data, "bomb.zip")
    assert "MS-ARC-006" in threats_of(result)


def test_tiny_zip_claiming_a_terabyte_does_not_allocate() -> None:
    tera = 1 << 40
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = raw.compress(b"tiny") + raw.flush()
    extra = zip64_extra(tera, len(body))
    entry = ZipEntry(
        "huge.bin",
        b"tiny",
        method=8,
        raw=body,
        local={"usize": 0xFFFFFFFF, "csize": 0xFFFFFFFF, "extra": extra},
        central={"usize": 0xFFFFFFFF, "csize": 0xFFFFFFFF, "extra": extra},
    )
    data = build_zip([entry])
    tracemalloc.start()
    result = scan_bytes(data, "tb.zip")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 << 20
    assert {"MS-ARC-006", "MS-ARC-017"} <= threats_of(result)


def test_total_expansion_budget() -> None:
    members = {f"m{i}.txt": os.urandom(64) * 2000 for i in range(4)}
    result = scan_bytes(_zipfile(members), "budget.zip", Limits(max_expanded_bytes=300_000))
    assert "MS-ARC-023" in incomplete_codes(result)


def test_member_count_limit() -> None:
    data = _zipfile({f"f{i}.txt": b"x" for i in range(10)})
    result = scan_bytes(data, "many.zip", Limits(max_members=5))
    assert "MS-ARC-010" in incomplete_codes(result)


def test_nesting_beyond_depth_is_incomplete() -> None:
    inner = _zipfile({"leaf.txt": b"deep"})
    for level in range(8):
        if level % 2 == 0:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as t:
                info = tarfile.TarInfo(f"level{level}.zip")
                info.size = len(inner)
                t.addfile(info, io.BytesIO(inner))
            inner = buf.getvalue()
        else:
            inner = _zipfile({f"level{level}.tar": inner})
    result = scan_bytes(inner, "nested.zip")
    assert "MS-ARC-011" in incomplete_codes(result)


# --- model flavours -----------------------------------------------------------------------


def test_pytorch_zip_routes_pickles_and_skips_raw_storage(stub_pickle) -> None:  # noqa: F811
    protocol0 = b"cposix\nsystem\n(S'id'\ntR."  # no PROTO opcode: only the name says pickle
    data = _zipfile(
        {
            "archive/data.pkl": protocol0,
            "archive/version": b"3\n",
            "archive/byteorder": b"little",
            "archive/data/0": os.urandom(4096),
            "archive/.data/serialization_id": b"1234",
        },
        zipfile.ZIP_STORED,
    )
    result = scan_bytes(data, "model.pt")
    found = formats_of(result)
    assert found[""] == "pytorch-zip"
    assert "archive/data/0" not in found
    assert stub_pickle.seen == ["model.pt!archive/data.pkl"]


def test_pytorch_zip_storage_is_sniffed_by_signatures_only(stub_pickle) -> None:  # noqa: F811
    # torch never unpickles data/<n>: a pickle there is inert, and permissive detectors
    # would claim random tensor bytes. A real container hidden there is still scanned.
    nested = _zipfile({"inner.bin": malicious_pickle()})
    data = _zipfile(
        {
            "archive/data.pkl": benign_pickle(),
            "archive/version": b"3\n",
            "archive/data/0": malicious_pickle(),
            "archive/data/1": nested,
        },
    )
    result = scan_bytes(data, "model.pt")
    assert "model.pt!archive/data/0" not in stub_pickle.seen
    assert "model.pt!archive/data/1!inner.bin" in stub_pickle.seen
    assert "MS-TEST-901" in threats_of(result)


def test_pytorch_zip_without_pickle_analysis_fails_closed(no_pickle) -> None:  # noqa: F811
    data = _zipfile({"archive/data.pkl": benign_pickle(), "archive/version": b"3\n"})
    assert "MS-ARC-024" in incomplete_codes(scan_bytes(data, "model.pt"))


def test_torchscript_and_keras_flavours() -> None:
    ts = _zipfile(
        {
            "m/code/__torch__/model.py": b"def forward(self):\n  return 1\n",
            "m/constants.pkl": benign_pickle(),
            "m/data.pkl": benign_pickle(),
            "m/version": b"3\n",
        }
    )
    assert formats_of(scan_bytes(ts, "ts.pt"))[""] == "torchscript"
    keras = _zipfile({"config.json": b"{}", "metadata.json": b"{}", "model.weights.h5": b"\x89HDF\r\n\x1a\n"})
    assert formats_of(scan_bytes(keras, "m.keras"))[""] == "keras"


def test_zero_padding_after_the_archive_is_fine() -> None:
    data = _zipfile({"a.txt": b"hello"}) + b"\0" * 4096
    assert threats_of(scan_bytes(data, "padded.zip")) == set()


# --- directory entries (red team, 2026-12-07) ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "made_by", "attr"),
    [
        ("archive/data.pkl", 3 << 8, unix_mode_attr(stat.S_IFDIR | 0o755)),  # mode only, no slash
        ("archive/data.pkl/", 20, 0),  # torch asks miniz for the record by name: it reads it
        ("x.npy\\", 20, 0),  # zipfile on POSIX: a backslash is an ordinary character
    ],
    ids=["unix-mode", "trailing-slash", "trailing-backslash"],
)
def test_directory_entry_with_data_is_scanned_and_reported(
    stub_pickle,  # noqa: F811
    name: str,
    made_by: int,
    attr: int,
) -> None:
    """A member that looks like a directory (mode bits or a trailing slash) but holds bytes
    was dropped unread; zipfile, numpy.load and torch's miniz read those bytes."""
    member = ZipEntry(name, malicious_pickle(), version_made_by=made_by, external_attr=attr)
    result = scan_bytes(build_zip([ZipEntry("archive/version", b"3\n"), member]), "model.pt")
    assert "MS-ARC-019" in threats_of(result)
    assert "MS-TEST-901" in threats_of(result)


def test_directory_entry_declaring_no_size_but_holding_bytes_is_scanned(stub_pickle) -> None:  # noqa: F811
    member = ZipEntry("x/", malicious_pickle(), central={"usize": 0}, local={"usize": 0})
    result = scan_bytes(build_zip([member]), "model.zip")
    assert "MS-TEST-901" in threats_of(result)


def test_empty_directory_entries_are_not_findings() -> None:
    entries = [
        ZipEntry("archive/", b""),
        ZipEntry("data", b"", version_made_by=3 << 8, external_attr=unix_mode_attr(stat.S_IFDIR | 0o755)),
        ZipEntry("weights/", b"", method=8),  # an empty deflate stream: two bytes, nothing declared
        ZipEntry("weights/w.bin", b"\x00" * 64),
    ]
    assert threats_of(scan_bytes(build_zip(entries), "model.zip")) == set()


# --- which central directory (red team, 2026-12-07) -----------------------------------------
# zipfile reads a zip64 end record only just before its locator, otherwise the end record;
# torch's miniz reads it only where the locator points. Two directories in one file show
# each reader another member list.

_ZIP64_END = struct.Struct("<4sQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_END = struct.Struct("<4sHHHHIIH")


def _members(entries: list[tuple[str, bytes]], base: int) -> tuple[bytes, bytes]:
    """Local headers and data written from offset ``base``, and their central directory."""
    body, central = bytearray(), bytearray()
    for name, data in entries:
        offset = base + len(body)
        crc = zlib.crc32(data)
        body += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(name), 0
        )
        body += name.encode() + data
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, crc, len(data), len(data),
            len(name), 0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += name.encode()
    return bytes(body), bytes(central)


def _zip64_end(count: int, cd_size: int, cd_offset: int) -> bytes:
    return _ZIP64_END.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset)


def _torch_pair(first: bytes, second: bytes) -> bytes:
    """[A members][B members][B directory][B zip64 end][A directory][A zip64 end]
    [locator -> B's zip64 end][end record -> A]: zipfile lists A, miniz lists B."""
    names = ("archive/version", "archive/data.pkl")
    a_body, a_dir = _members(list(zip(names, (b"3\n", first))), 0)
    b_body, b_dir = _members(list(zip(names, (b"3\n", second))), len(a_body))
    b_dir_at = len(a_body) + len(b_body)
    b_end_at = b_dir_at + len(b_dir)
    a_dir_at = b_end_at + _ZIP64_END.size
    return (
        a_body + b_body + b_dir + _zip64_end(2, len(b_dir), b_dir_at) + a_dir
        + _zip64_end(2, len(a_dir), a_dir_at)
        + _ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, b_end_at, 1)
        + _END.pack(b"PK\x05\x06", 0, 0, 2, 2, len(a_dir), a_dir_at, 0)
    )  # fmt: skip


def test_zip64_locator_pointing_elsewhere_shows_torch_another_directory(stub_pickle) -> None:  # noqa: F811
    data = _torch_pair(benign_pickle(), malicious_pickle())
    with zipfile.ZipFile(io.BytesIO(data)) as z:  # what zipfile lists: the benign copy
        assert z.read("archive/data.pkl") == benign_pickle()
    result = scan_bytes(data, "model.pt")
    assert "MS-ARC-025" in threats_of(result)
    assert "MS-TEST-901" in threats_of(result)  # the copy only miniz reads was scanned
    assert len(stub_pickle.seen) == 2


def test_zip64_record_found_only_through_the_locator_is_not_what_zipfile_reads(stub_pickle) -> None:  # noqa: F811
    """[A members][B members][A directory][A zip64 end][B directory, its entry's comment
    holding the locator -> A's zip64 end][end record -> B]: no zip64 record just before the
    locator, so zipfile (numpy.load) reads B through the end record, and miniz, following
    the locator, reads A."""
    a_body, a_dir = _members([("x.npy", b"benign")], 0)
    b_body, b_dir = _members([("x.npy", malicious_pickle())], len(a_body))
    a_dir_at = len(a_body) + len(b_body)
    a_end_at = a_dir_at + len(a_dir)
    b_dir_at = a_end_at + _ZIP64_END.size
    locator = _ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, a_end_at, 1)
    b_dir = b_dir[:32] + struct.pack("<H", len(locator)) + b_dir[34:] + locator  # the comment
    data = (
        a_body + b_body + a_dir + _zip64_end(1, len(a_dir), a_dir_at) + b_dir
        + _END.pack(b"PK\x05\x06", 0, 0, 1, 1, len(b_dir), b_dir_at, 0)
    )  # fmt: skip
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("x.npy") == malicious_pickle()
    result = scan_bytes(data, "weights.npz")
    assert "MS-ARC-025" in threats_of(result)
    assert "MS-TEST-901" in threats_of(result)


@pytest.mark.parametrize("sentinels", [True, False], ids=["end-record-defers", "end-record-agrees"])
def test_a_consistent_zip64_end_is_not_a_disagreement(sentinels: bool) -> None:
    body, directory = _members([("archive/version", b"3\n"), ("archive/data/0", b"\0" * 16)], 0)
    end_at = len(body) + len(directory)
    count, size, offset = (0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF) if sentinels else (2, len(directory), len(body))
    data = (
        body + directory + _zip64_end(2, len(directory), len(body))
        + _ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, end_at, 1)
        + _END.pack(b"PK\x05\x06", 0, 0, count, count, size, offset, 0)
    )  # fmt: skip
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert len(z.namelist()) == 2
    result = scan_bytes(data, "model.zip")
    assert threats_of(result) == set()
    assert formats_of(result)
