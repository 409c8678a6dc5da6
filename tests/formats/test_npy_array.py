"""NumPy .npy: real arrays from numpy.save, hostile headers and object arrays by hand."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from containers_support import (
    formats_of,
    incomplete_codes,
    malicious_pickle,
    no_pickle,  # noqa: F401 - fixture
    scan_bytes,
    stub_pickle,  # noqa: F401 - fixture
    threats_of,
)


def _saved(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array, allow_pickle=True)
    else:
        np.lib.format.write_array(buf, array, version=version, allow_pickle=True)
    return buf.getvalue()


def _npy(header: str | bytes, data: bytes = b"", major: int = 1) -> bytes:
    raw = header.encode("latin1") if isinstance(header, str) else header
    if major == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + data
    return b"\x93NUMPY" + bytes([major, 0]) + struct.pack("<I", len(raw)) + raw + data


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.zeros((0, 5), dtype=np.float64),
        np.array(3.5),
        np.zeros(4, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
        np.asfortranarray(np.ones((3, 2), dtype=np.float16)),
    ],
)
@pytest.mark.parametrize("version", [None, (2, 0), (3, 0)])
def test_benign_arrays(array: np.ndarray, version: tuple[int, int] | None) -> None:
    result = scan_bytes(_saved(array, version), "a.npy")
    assert formats_of(result) == {"": "numpy-npy"}
    assert result.findings == [] and result.incompletes == []


def test_object_array_from_numpy_goes_to_pickle_scanner(stub_pickle) -> None:  # noqa: F811
    result = scan_bytes(_saved(np.array([1, "two", None], dtype=object)), "o.npy")
    assert stub_pickle.seen == ["o.npy!<object data>"]
    assert result.findings == []


@pytest.mark.parametrize(
    "descr",
    ["|O", "O", "<O8", "[('a', '<i4'), ('b', '|O')]", "[('outer', [('inner', '|O')])]", "('|O', (2,))"],
)
def test_malicious_pickle_behind_object_dtypes(stub_pickle, descr: str) -> None:  # noqa: F811
    header = "{'descr': %s, 'fortran_order': False, 'shape': (1,), }" % (
        descr if descr.startswith(("[", "(")) else repr(descr)
    )
    result = scan_bytes(_npy(header.ljust(118) + "\n", malicious_pickle()), "evil.npy")
    assert "MS-TEST-901" in threats_of(result)


def test_object_array_without_pickle_analysis_fails_closed(no_pickle) -> None:  # noqa: F811
    result = scan_bytes(_saved(np.array([None], dtype=object)), "o.npy")
    assert "MS-ARC-024" in incomplete_codes(result)


@pytest.mark.parametrize(
    "data",
    [
        _npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2,)}"[:20]),
        _npy("__import__('os').system('id')"),
        _npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), 'x': 1}", b"\0" * 8),
        _npy("{'descr': '<i4', 'fortran_order': False}", b"\0" * 8),
        _npy("{'descr': '<i4', 'fortran_order': 0, 'shape': (2,)}", b"\0" * 8),
        _npy("{'descr': '<i4', 'fortran_order': False, 'shape': (-2,)}", b"\0" * 8),
        _npy("{'descr': '<i4', 'fortran_order': False, 'shape': [2]}", b"\0" * 8),
        _npy("{'descr': 'nonsense', 'fortran_order': False, 'shape': (2,)}", b"\0" * 8),
        _npy("{'descr': f'<i4', 'fortran_order': False, 'shape': (2,)}", b"\0" * 8),
        _npy("{**{'descr': '<i4'}, 'fortran_order': False, 'shape': (2,)}", b"\0" * 8),
        _npy("(" * 500 + ")" * 500),
        _npy(b"{'descr': '\xff', 'fortran_order': False, 'shape': (2,)}", b"\0" * 8, major=3),
        b"\x93NUMPY\x09\x00" + b"\0" * 20,
        b"\x93NUMPY\x01\x00\xff\xff{",
        b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{",
    ],
)
def test_malformed_headers(data: bytes) -> None:
    result = scan_bytes(data, "bad.npy")
    assert threats_of(result) == {"MS-NPY-001"}, [f.message for f in result.findings]


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), 'descr': '|O'}",  # last wins
        "{'descr': '|O', 'fortran_order': False, 'shape': (True,)}",  # isinstance(True, int)
    ],
)
def test_lenient_header_numpy_loads_still_has_its_object_data_scanned(stub_pickle, header: str) -> None:  # noqa: F811
    """numpy accepts a repeated key (the last one wins) and booleans in the shape, and then
    unpickles the object data: a malformed header must not hide that data."""
    result = scan_bytes(_npy(header, malicious_pickle()), "evil.npy")
    assert {"MS-NPY-001", "MS-TEST-901"} <= threats_of(result)


def test_python2_long_suffix_header_is_accepted() -> None:
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (2L,), }".ljust(117) + "\n"
    assert threats_of(scan_bytes(_npy(header, b"\0" * 16), "py2.npy")) == set()


def test_truncated_data() -> None:
    data = _saved(np.arange(100, dtype=np.int64))
    assert threats_of(scan_bytes(data[:-8], "t.npy")) == {"MS-NPY-002"}


def test_trailing_data_is_reported_and_scanned(stub_pickle) -> None:  # noqa: F811
    data = _saved(np.arange(4, dtype=np.int64)) + malicious_pickle()
    result = scan_bytes(data, "t.npy")
    assert {"MS-NPY-002", "MS-TEST-901"} <= threats_of(result)
