"""Member names, duplicates and special files, judged the same way in every container
(modelsec.archive.names.ArchiveNames); 7z here, whose listing had no tests of its own."""

from __future__ import annotations

import stat
import struct

import pytest
from containers_support import malicious_pickle, scan_bytes, stub_pickle, threats_of  # noqa: F401 - fixture
from test_7z_archive import _7z, _patch_header

from modelsec.archive.names import special_file_type

_UNIX_EXTENSION = 0x8000  # 7-Zip's FILE_ATTRIBUTE_UNIX_EXTENSION: st_mode in the high 16 bits
_ARCHIVE = 0x20


def _with_mode(data: bytes, old_mode: int, new_mode: int) -> bytes:
    def attributes(mode: int) -> bytes:
        return struct.pack("<I", _UNIX_EXTENSION | _ARCHIVE | mode << 16)

    return _patch_header(data, attributes(old_mode), attributes(new_mode))


def test_repeated_7z_names_are_reported_once_and_every_copy_is_scanned(stub_pickle) -> None:  # noqa: F811
    data = _7z({"a.pkl": malicious_pickle(), "b.pkl": malicious_pickle()}, plain_header=True)
    data = _patch_header(data, "b.pkl".encode("utf-16-le"), "a.pkl".encode("utf-16-le"))
    result = scan_bytes(data, "m.7z")
    duplicates = [f for f in result.findings if f.threat == "MS-ARC-005"]
    assert [(f.file, f.subject) for f in duplicates] == [("m.7z!a.pkl", "a.pkl")]
    assert stub_pickle.seen == ["m.7z!a.pkl", "m.7z!a.pkl#2"]


@pytest.mark.parametrize(
    ("mode", "shown"),
    [(0o020600, "0o20600"), (0o010600, "0o10600"), (0o140600, "0o140600"), (0o150600, "0o150600")],
    ids=["character-device", "fifo", "socket", "unknown-type"],
)
def test_special_7z_member_is_reported_and_its_bytes_scanned(stub_pickle, mode: int, shown: str) -> None:  # noqa: F811
    """py7zr writes a "device" or "FIFO" member out as a regular file with its bytes: they
    are scanned as well as reported (a group that lets MS-ARC-004 pass still sees them)."""
    data = _7z({"dev.pkl": malicious_pickle()}, plain_header=True)
    result = scan_bytes(_with_mode(data, 0o100600, mode), "m.7z")
    special = [f for f in result.findings if f.threat == "MS-ARC-004"]
    assert [(f.file, f.message) for f in special] == [
        ("m.7z!dev.pkl", f"member is a special file (mode {shown})")
    ]
    # py7zr writes no file for a socket member, so nothing is there to be read or scanned
    assert stub_pickle.seen == ([] if stat.S_ISSOCK(mode) else ["m.7z!dev.pkl"])


def test_regular_7z_member_with_unix_mode_is_scanned(stub_pickle) -> None:  # noqa: F811
    result = scan_bytes(_7z({"w.pkl": malicious_pickle()}, plain_header=True), "m.7z")
    assert "MS-ARC-004" not in threats_of(result)
    assert stub_pickle.seen == ["m.7z!w.pkl"]


@pytest.mark.parametrize(
    ("mode", "special"),
    [
        (None, False),
        (0o644, False),
        (0o100644, False),
        (0o040755, False),
        (0o120777, False),
        (0o020644, True),
        (0o060644, True),
        (0o010644, True),
        (0o140644, True),
        (0o150644, True),
    ],
)
def test_special_file_type(mode: int | None, special: bool) -> None:
    assert special_file_type(mode) is special
