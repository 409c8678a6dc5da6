"""7z archives: benign ones from py7zr, hostile ones by patching py7zr's output."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import py7zr
import pytest
from containers_support import (
    formats_of,
    incomplete_codes,
    malicious_pickle,
    scan_bytes,
    stub_pickle,  # noqa: F401 - fixture
    threats_of,
    verdict_of,
)

from modelsec.context import Limits
from modelsec.policy import Outcome


def _7z(members: dict[str, bytes], *, plain_header: bool = False, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", **kwargs) as archive:  # type: ignore[arg-type]
        if plain_header:
            archive.set_encoded_header_mode(False)
        for name, data in members.items():
            archive.writestr(data, name)
    return buf.getvalue()


def _rename(data: bytes, old: str, new: str) -> bytes:
    """Swap a member name of equal length in an unencoded header and fix both CRCs."""
    assert len(old) == len(new)
    return _patch_header(data, old.encode("utf-16-le"), new.encode("utf-16-le"))


def _patch_header(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replace bytes of equal length in an unencoded header and fix both CRCs."""
    assert len(old) == len(new) and old in data
    patched = bytearray(data.replace(old, new))
    offset, size = struct.unpack_from("<QQ", patched, 12)
    next_crc = zlib.crc32(patched[32 + offset : 32 + offset + size])
    struct.pack_into("<I", patched, 28, next_crc)
    struct.pack_into("<I", patched, 8, zlib.crc32(patched[12:32]))
    return bytes(patched)


def test_benign_7z() -> None:
    weights = bytes(range(256)) * 8  # fixed bytes: random ones can look like anything
    data = _7z({"model/config.json": b'{"a": 1}', "model/w.bin": weights, "empty": b""})
    result = scan_bytes(data, "m.7z")
    assert result.findings == [] and result.incompletes == []
    assert formats_of(result)[""] == "7z"
    assert {"model/config.json", "model/w.bin"} <= set(formats_of(result))


def test_pickle_member_reaches_pickle_scanner(stub_pickle) -> None:  # noqa: F811
    result = scan_bytes(_7z({"data.pkl": malicious_pickle()}), "m.7z")
    assert "MS-TEST-901" in threats_of(result)
    assert stub_pickle.seen == ["m.7z!data.pkl"]


def test_traversal_name_is_reported_and_member_still_scanned(stub_pickle) -> None:  # noqa: F811
    data = _rename(_7z({"aa/evil.pkl": malicious_pickle()}, plain_header=True), "aa/evil.pkl", "../evil.pkl")
    assert py7zr.SevenZipFile(io.BytesIO(data)).getnames() == ["../evil.pkl"]
    result = scan_bytes(data, "t.7z")
    assert {"MS-ARC-001", "MS-TEST-901"} <= threats_of(result)


def test_encrypted_members_are_incomplete(tmp_path: Path) -> None:
    data = _7z({"s.bin": b"secret"}, password="pw")
    assert incomplete_codes(scan_bytes(data)) == {"MS-ARC-020"}
    path = tmp_path / "enc.7z"
    path.write_bytes(data)
    assert verdict_of(str(path)) == Outcome.ERROR


def test_encrypted_headers_are_incomplete() -> None:
    data = _7z({"s.bin": b"secret"}, password="pw", header_encryption=True)
    assert incomplete_codes(scan_bytes(data)) == {"MS-ARC-020"}


def test_bomb_by_declared_size() -> None:
    data = _7z({"zeros.bin": b"\0" * (40 << 20)})
    assert len(data) < 100_000
    assert "MS-ARC-006" in threats_of(scan_bytes(data, "bomb.7z"))


def test_member_limit_and_spool_limit() -> None:
    data = _7z({f"f{i}.txt": b"x" for i in range(6)})
    assert "MS-ARC-010" in incomplete_codes(scan_bytes(data, limits=Limits(max_members=3)))
    big = _7z({"big.bin": os.urandom(5000)})
    assert "MS-ARC-023" in incomplete_codes(scan_bytes(big, limits=Limits(max_spool_bytes=4096)))


@pytest.mark.parametrize("cut", [40, 100])
def test_truncated_7z_is_malformed(cut: int) -> None:
    data = _7z({"w.bin": os.urandom(500)})
    result = scan_bytes(data[:cut], "cut.7z")
    assert "MS-ARC-013" in threats_of(result)


# -- red team, 2026-12-07 -------------------------------------------------------------------


def test_a_member_with_data_marked_as_a_directory_fails_closed() -> None:
    """7-Zip extracts an entry with a data stream as a file whatever its attributes say;
    py7zr skipped it as a directory, and nothing saw its bytes."""
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.writestr(b"benign readme\n", "README.txt")
        archive.writestr(malicious_pickle(), "model.pkl")
        for entry in archive.header.files_info.files:
            if entry["filename"] == "model.pkl":
                entry["attributes"] = (entry.get("attributes") or 0) | 0x10  # FILE_ATTRIBUTE_DIRECTORY
    result = scan_bytes(buffer.getvalue(), "model.7z")
    assert "MS-ARC-019" in threats_of(result)
    assert "MS-ARC-022" in incomplete_codes(result)


def test_a_symlink_named_like_a_module_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("__import__('os').system('id')\n")
    os.symlink("notes.txt", tmp_path / "modeling_x.py")
    buffer = io.BytesIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with py7zr.SevenZipFile(buffer, "w") as archive:
            archive.write("notes.txt", "notes.txt")
            archive.write("modeling_x.py", "modeling_x.py")
    finally:
        os.chdir(cwd)
    assert "MS-ARC-022" in incomplete_codes(scan_bytes(buffer.getvalue(), "model.7z"))
