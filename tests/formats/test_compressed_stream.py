"""Single compressed streams: joblib's compressors, bombs, corruption, trailing data."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path

import joblib
import lz4.frame
import numpy as np
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

CODECS = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "lz4": lz4.frame.compress,
    "zlib": zlib.compress,
}


@pytest.mark.parametrize("method", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_joblib_compressed_pickles_reach_the_pickle_scanner(
    stub_pickle,
    tmp_path: Path,
    method: str,  # noqa: F811
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump({"w": np.arange(100, dtype=np.float32)}, path, compress=(method, 3))
    result = scan_bytes(path.read_bytes(), "model.joblib")
    assert formats_of(result)[""] == {"gzip": "gzip"}.get(method, method)
    assert stub_pickle.seen == ["model.joblib!model.joblib"]
    assert result.findings == [] and result.incompletes == []


def test_legacy_joblib_zf_prefix(stub_pickle) -> None:  # noqa: F811
    payload = malicious_pickle()
    data = b"ZF" + hex(len(payload)).encode().ljust(19) + zlib.compress(payload)
    result = scan_bytes(data, "old.pkl.z")
    assert formats_of(result)[""] == "zlib"
    assert "MS-TEST-901" in threats_of(result)


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_malicious_pickle_inside_each_codec(stub_pickle, codec: str) -> None:  # noqa: F811
    result = scan_bytes(CODECS[codec](malicious_pickle()), f"m.pkl.{codec}")
    assert "MS-TEST-901" in threats_of(result)


def test_concatenated_gzip_members_are_one_stream(stub_pickle) -> None:  # noqa: F811
    payload = malicious_pickle()
    data = gzip.compress(payload[:10]) + gzip.compress(payload[10:])
    assert "MS-TEST-901" in threats_of(scan_bytes(data, "m.gz"))


# lz4 cannot exceed ~255:1, so it never crosses the 250:1 bomb ratio
@pytest.mark.parametrize("codec", ["gzip", "bz2", "xz", "zlib"])
def test_bomb(codec: str) -> None:
    data = CODECS[codec](b"\0" * (40 << 20))
    result = scan_bytes(data, f"bomb.{codec}")
    assert "MS-ARC-006" in threats_of(result)


def test_total_budget_is_an_incomplete() -> None:
    data = gzip.compress(bytes(range(256)) * 4000)
    result = scan_bytes(data, "x.gz", Limits(max_expanded_bytes=100_000))
    assert "MS-ARC-023" in incomplete_codes(result)


def test_truncated_stream_is_malformed_but_scanned(stub_pickle) -> None:  # noqa: F811
    data = gzip.compress(malicious_pickle() + bytes(range(256)) * 100)
    result = scan_bytes(data[: len(data) - 20], "cut.gz")
    assert {"MS-ARC-013", "MS-TEST-901"} <= threats_of(result)


def test_trailing_data_after_stream(stub_pickle) -> None:  # noqa: F811
    data = gzip.compress(b"just text\n") + malicious_pickle()
    result = scan_bytes(data, "t.gz")
    assert {"MS-ARC-015", "MS-TEST-901"} <= threats_of(result)


def test_zero_padding_after_gzip_is_fine() -> None:
    data = gzip.compress(b"just text\n") + b"\0" * 512
    assert threats_of(scan_bytes(data, "p.gz")) == set()


def test_text_that_looks_like_a_zlib_header_is_not_zlib() -> None:
    # "x^" is a valid zlib header (0x785E % 31 == 0) but the rest does not inflate.
    result = scan_bytes(b"x^2 + y^2 = z^2\n" * 10, "notes.txt")
    assert formats_of(result)[""] != "zlib"


@pytest.mark.parametrize(
    "size", [*range(0, 4200, 7), 4096, 3 << 20, 5 << 20, 1 << 31, (1 << 31) + 1, 0xFFFFFFFF]
)
def test_lzma_alone_dictionary_sizes_are_those_lzma_open_accepts(size: int) -> None:
    """The loaders open .lzma with FORMAT_AUTO, whose decoder is picky about the size."""
    from modelsec.archive.decompress import looks_like_lzma_alone

    stream = bytearray(lzma.compress(b"a model's bytes " * 64, format=lzma.FORMAT_ALONE))
    stream[1:5] = size.to_bytes(4, "little")
    try:
        lzma.decompress(bytes(stream))
        loaders_read_it = True
    except lzma.LZMAError:
        loaders_read_it = False
    assert looks_like_lzma_alone(bytes(stream)) is loaders_read_it


def test_protocol_1_list_pickle_is_not_an_lzma_polyglot() -> None:
    """Found by the soundness campaign (seed 3, program 113664): EMPTY_LIST is 0x5D, the
    .lzma properties byte, and the rest happened to trial-decode. No loader decodes a
    dictionary size of 0x47284e... (liblzma's auto decoder refuses it), so this is one
    plain pickle, not 'compressed + pickle'."""
    data = bytes.fromhex(
        "5d284e4741167664bfb0a2107100492d3531383730333834313031343634333136383235360a5506666d6f6876664e652e"
    )
    result = scan_bytes(data, "model.pkl")
    assert formats_of(result)[""] == "pickle"
    assert not {"MS-FMT-001", "MS-ARC-013"} & threats_of(result)


def test_lzma_alone_that_only_format_alone_reads_still_fails_closed() -> None:
    """A dictionary size no loader accepts: not taken for .lzma, and not passed either: a
    file named as a pickle that no format accepts is reported (MS-FMT-002, which
    SuspiciousComponents blocks under the built-in groups)."""
    stream = bytearray(lzma.compress(malicious_pickle(), format=lzma.FORMAT_ALONE))
    stream[1:5] = (5 << 20).to_bytes(4, "little")
    result = scan_bytes(bytes(stream), "evil.pkl")
    assert "MS-FMT-002" in threats_of(result) and "MS-FMT-001" not in threats_of(result)
