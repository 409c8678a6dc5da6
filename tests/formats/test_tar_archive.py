"""Tar archives, plain and compressed, benign (tarfile) and hostile (hand-set headers)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest
from containers_support import (
    formats_of,
    incomplete_codes,
    malicious_pickle,
    scan_bytes,
    stub_pickle,  # noqa: F401 - fixture
    threats_of,
)

from modelsec.context import Limits


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_benign_tar_members_scanned_by_content(mode: str) -> None:
    weights = bytes(range(256)) * 12  # fixed bytes: random ones can look like anything
    data = _tar([(_info("model/config.json"), b'{"a": 1}'), (_info("model/w.bin"), weights)], mode)
    result = scan_bytes(data, "model.tar")
    assert result.findings == [] and result.incompletes == []
    found = formats_of(result)
    assert found[""] == "tar"
    assert {"model/config.json", "model/w.bin"} <= set(found)


def test_pickle_member_of_compressed_tar(stub_pickle) -> None:  # noqa: F811
    data = _tar([(_info("model/evil.bin"), malicious_pickle())], "w:gz")
    result = scan_bytes(data, "model.tgz")
    assert "MS-TEST-901" in threats_of(result)
    assert stub_pickle.seen == ["model.tgz!model/evil.bin"]


@pytest.mark.parametrize(
    "info, code",
    [
        (_info("../../etc/cron.d/x"), "MS-ARC-001"),
        (_info("/etc/passwd"), "MS-ARC-002"),
        (_info("link", tarfile.SYMTYPE, "../../../home/u/.ssh/id_rsa"), "MS-ARC-003"),
        (_info("a/b/link", tarfile.SYMTYPE, "/etc/shadow"), "MS-ARC-003"),
        (_info("hard", tarfile.LNKTYPE, "../outside"), "MS-ARC-003"),
        (_info("dev", tarfile.CHRTYPE), "MS-ARC-004"),
        (_info("blk", tarfile.BLKTYPE), "MS-ARC-004"),
        (_info("fifo", tarfile.FIFOTYPE), "MS-ARC-004"),
    ],
)
def test_hostile_members(info: tarfile.TarInfo, code: str) -> None:
    data = _tar([(_info("ok.txt"), b"fine"), (info, b"payload")])
    assert code in threats_of(scan_bytes(data, "evil.tar"))


def test_links_inside_the_tree_are_fine() -> None:
    data = _tar(
        [
            (_info("blobs/abc"), b"weights"),
            (_info("snapshots/main/model.bin", tarfile.SYMTYPE, "../../blobs/abc"), b""),
            (_info("copy", tarfile.LNKTYPE, "blobs/abc"), b""),
        ]
    )
    assert threats_of(scan_bytes(data, "hf-cache.tar")) == set()


def test_duplicate_members(stub_pickle) -> None:  # noqa: F811
    data = _tar([(_info("model.bin"), b"\x80\x02K\x01."), (_info("model.bin"), malicious_pickle())])
    result = scan_bytes(data)
    assert {"MS-ARC-005", "MS-TEST-901"} <= threats_of(result)


def test_pax_header_bomb_is_bounded() -> None:
    # A pax header claiming 2 GiB (tarfile would read it into memory in one piece).
    info = _info("x")
    block = info.tobuf(tarfile.USTAR_FORMAT)
    pax = bytearray(tarfile.TarInfo("././@PaxHeader").tobuf(tarfile.USTAR_FORMAT))
    pax[156] = ord(tarfile.XHDTYPE)
    pax[124:136] = b"%011o\0" % (2 << 30)
    pax[148:156] = b"        "
    pax[148:155] = b"%06o\0" % sum(pax)
    data = bytes(pax) + block + b"\0" * 1024
    result = scan_bytes(data, "pax.tar")
    assert "MS-ARC-023" in incomplete_codes(result)


def test_sparse_member_bomb() -> None:
    # Old GNU sparse member: 1 stored block standing for 1 GiB.
    info = _info("sparse.bin", tarfile.GNUTYPE_SPARSE)
    info.size = 512
    buf = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header = buf[-512:]
    header[386 : 386 + 24] = b"%011o\0" % 0 + b"%011o\0" % 512  # one sparse entry
    header[483:495] = b"%011o\0" % (1 << 30)  # realsize
    header[148:156] = b"        "
    header[148:155] = b"%06o\0" % sum(header)
    buf[-512:] = header
    data = bytes(buf) + b"\0" * 512 + b"\0" * 1024
    assert "MS-ARC-006" in threats_of(scan_bytes(data, "sparse.tar"))


def test_data_hidden_after_end_of_archive(stub_pickle) -> None:  # noqa: F811
    hidden = _tar([(_info("evil.bin"), malicious_pickle())])
    data = _tar([(_info("ok.txt"), b"fine")]) + hidden
    result = scan_bytes(data, "two.tar")
    assert {"MS-ARC-015", "MS-TEST-901"} <= threats_of(result)


def test_truncated_tar_is_malformed() -> None:
    data = _tar([(_info("a.bin"), os.urandom(4096))])[:2000]
    assert "MS-ARC-013" in threats_of(scan_bytes(data, "cut.tar"))


def test_corrupt_gzip_tar_reports_damage() -> None:
    data = bytearray(_tar([(_info("a.bin"), os.urandom(20000))], "w:gz"))
    data[len(data) // 2] ^= 0xFF
    assert "MS-ARC-013" in threats_of(scan_bytes(bytes(data), "bad.tgz"))


def test_gzip_bomb_tar() -> None:
    body = _tar([(_info("zeros.bin"), b"\0" * (40 << 20))])
    data = gzip.compress(body, 9)
    assert "MS-ARC-006" in threats_of(scan_bytes(data, "bomb.tgz"))


def test_member_larger_than_spool_limit_is_incomplete() -> None:
    data = _tar([(_info("big.bin"), os.urandom(5000))])
    result = scan_bytes(data, "big.tar", Limits(max_spool_bytes=4096))
    assert "MS-ARC-023" in incomplete_codes(result)


# --- the oldest torch.save layout: pickles between raw storage bytes ---------------------------

_P2 = b"\x80\x02"
_SYSTEM = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."


def _legacy_torch_tar(storages: bytes, tensors: bytes, pickle: bytes = _P2 + b"}q\x00.") -> bytes:
    return _tar([(_info("storages"), storages), (_info("tensors"), tensors), (_info("pickle"), pickle)])


def _storage_args(key: str) -> bytes:
    """(key, 'cpu', torch.FloatStorage) in protocol 2."""
    text = key.encode()
    return (
        _P2
        + b"X"
        + len(text).to_bytes(4, "little")
        + text
        + b"X\x03\x00\x00\x00cpu"
        + b"ctorch\nFloatStorage\n\x87."
    )


def test_legacy_torch_tar_pickle_after_raw_storage_bytes_is_scanned() -> None:
    """torch.load reads storages as: count, (args, int64 n, n floats) per storage, views.
    The views pickle sits after raw float bytes that no pickle scan walks through."""
    storages = _P2 + b"K\x01." + _storage_args("0") + (4).to_bytes(8, "little") + bytes(16) + _SYSTEM
    tensors = _P2 + b"K\x00."
    result = scan_bytes(_legacy_torch_tar(storages, tensors), "model.pt")
    assert any(f.rule == "LoadTimeCodeExecution" and "storages@" in f.file for f in result.findings), (
        result.findings
    )


def test_legacy_torch_tar_tensor_pickle_after_raw_shape_bytes_is_scanned() -> None:
    args = _P2 + b"(X\x01\x00\x00\x00aX\x01\x00\x00\x00bK\x00t."
    shape = (1).to_bytes(4, "little") + bytes(4) + (2).to_bytes(8, "little") * 2 + bytes(8)
    tensors = _P2 + b"K\x02." + args + shape + _SYSTEM + shape
    storages = _P2 + b"K\x00." + _P2 + b"]."
    result = scan_bytes(_legacy_torch_tar(storages, tensors), "model.pt")
    assert any(f.rule == "LoadTimeCodeExecution" and "tensors@" in f.file for f in result.findings), (
        result.findings
    )


def test_legacy_torch_tar_with_unknown_storage_type_fails_closed() -> None:
    storages = _P2 + b"K\x01." + _storage_args("0").replace(b"FloatStorage", b"NovelStorage") + bytes(24)
    result = scan_bytes(_legacy_torch_tar(storages, _P2 + b"K\x00."), "model.pt")
    assert "MS-ARC-022" in incomplete_codes(result)


def test_legacy_torch_tar_storage_size_comes_from_the_type_not_a_key() -> None:
    """(key "DoubleStorage", "cpu", torch.ByteStorage): torch sizes the raw bytes by the
    type (1 byte an element), so the pickle it runs next starts 64 bytes on, not 512. A
    key that names a storage class made the walk skip 8 bytes an element, over it
    (red team, 2026-12-07)."""
    args = _storage_args("DoubleStorage").replace(b"FloatStorage", b"ByteStorage")
    storages = _P2 + b"K\x01." + args + (64).to_bytes(8, "little") + bytes(64) + _SYSTEM + bytes(448)
    result = scan_bytes(_legacy_torch_tar(storages, _P2 + b"K\x00."), "model.pt")
    assert any(f.rule == "LoadTimeCodeExecution" and "storages@" in f.file for f in result.findings), (
        result.findings
    )


@pytest.mark.parametrize(
    "type_pickle",
    [
        b"\x8c\x05torch\x8c\x0bByteStorage\x93\x87.",  # STACK_GLOBAL: a name built at load time
        b"ctorch\nByteStorage\nctorch\nFloatStorage\n\x86\x87.",  # two classes: which one is the type?
        b"cnumpy\nByteStorage\n\x87.",  # not torch's
    ],
    ids=["stack-global", "two-globals", "other-module"],
)
def test_legacy_torch_tar_storage_type_it_cannot_pin_down_fails_closed(type_pickle: bytes) -> None:
    args = _P2 + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpu" + type_pickle
    storages = _P2 + b"K\x01." + args + (4).to_bytes(8, "little") + bytes(4) + _P2 + b"]."
    result = scan_bytes(_legacy_torch_tar(storages, _P2 + b"K\x00."), "model.pt")
    assert "MS-ARC-022" in incomplete_codes(result)


@pytest.mark.parametrize("kind", [tarfile.LNKTYPE, tarfile.SYMTYPE], ids=["hard-link", "symlink"])
def test_a_link_is_read_as_the_file_it_becomes(kind: bytes) -> None:
    """Extracted, a link is a file holding its target's bytes under its own name, and
    loaders go by that name: torch.load's legacy "storages" reached through a link was
    never walked as storages (red team, 2026-12-07)."""
    storages = _P2 + b"K\x01." + _storage_args("0") + (4).to_bytes(8, "little") + bytes(16) + _SYSTEM
    members = [
        (_info("data/blob"), storages),
        (_info("storages", kind, "data/blob"), b""),
        (_info("tensors"), _P2 + b"K\x00."),
        (_info("pickle"), _P2 + b"}q\x00."),
    ]
    result = scan_bytes(_tar(members), "model.pt")
    assert any(f.rule == "LoadTimeCodeExecution" and "storages@" in f.file for f in result.findings), (
        result.findings
    )


def test_a_link_in_a_compressed_tar_that_names_a_module_fails_closed() -> None:
    members = [
        (_info("notes.txt"), b"__import__('os').system('id')\n"),
        (_info("modeling_x.py", tarfile.SYMTYPE, "notes.txt"), b""),
    ]
    result = scan_bytes(_tar(members, "w:gz"), "model.tar.gz")
    assert "MS-ARC-022" in incomplete_codes(result)
    plain = scan_bytes(_tar(members), "model.tar")  # read in place: scanned as the module
    assert any(f.threat == "MS-PY-001" for f in plain.findings), plain.findings


def test_legacy_torch_tar_benign_layout_is_clean() -> None:
    storages = _P2 + b"K\x01." + _storage_args("0") + (4).to_bytes(8, "little") + bytes(16) + _P2 + b"]."
    args = _P2 + b"(X\x01\x00\x00\x00aX\x01\x00\x00\x000K\x00t."
    shape = (
        (1).to_bytes(4, "little")
        + bytes(4)
        + (4).to_bytes(8, "little")
        + (1).to_bytes(8, "little")
        + bytes(8)
    )
    result = scan_bytes(_legacy_torch_tar(storages, _P2 + b"K\x01." + args + shape), "model.pt")
    assert not result.findings and not result.incompletes, (result.findings, result.incompletes)


def test_a_checksum_match_alone_is_not_a_tar_header() -> None:
    """tarfile parses every numeric field of the first header: a block whose checksum
    matches but whose mode is not octal is refused by tarfile (and torch.load), so it is
    not a tar (a bz2 joblib dump's bytes once passed the checksum test alone)."""
    import tarfile

    from modelsec.formats.tar import is_tar_header

    info = tarfile.TarInfo("model.pkl")
    info.size = 3
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT)[:512])
    assert is_tar_header(bytes(block))
    block[100:108] = b"zzzzzzz\0"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % (sum(block) & 0o777777)
    try:
        tarfile.TarInfo.frombuf(bytes(block), "utf-8", "surrogateescape")
        refused = False
    except tarfile.HeaderError:
        refused = True
    assert refused and not is_tar_header(bytes(block))
