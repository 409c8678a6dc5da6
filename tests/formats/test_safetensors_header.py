"""safetensors: real files from safetensors.numpy, and every kind of corrupt header."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from containers_support import (
    formats_of,
    malicious_pickle,
    scan_bytes,
    stub_pickle,  # noqa: F401 - fixture
    threats_of,
    verdict_of,
)
from safetensors.numpy import save, save_file

from modelsec.context import Limits
from modelsec.policy import Outcome


def _st(header: object, data: bytes = b"", *, raw: bytes | None = None, length: int | None = None) -> bytes:
    body = raw if raw is not None else json.dumps(header).encode()
    n = len(body) if length is None else length
    return struct.pack("<Q", n) + body + data


def _tensor(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_benign_file_from_the_library(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(
        {
            "w": np.ones((4, 4), dtype=np.float32),
            "b": np.arange(3, dtype=np.int64),
            "empty": np.zeros((0, 3), dtype=np.float16),
            "scalar": np.array(1.5, dtype=np.float64),
        },
        str(path),
        metadata={"format": "pt", "note": "rm -rf / ; curl http://x"},
    )
    result = scan_bytes(path.read_bytes(), "model.safetensors")
    assert formats_of(result) == {"": "safetensors"}
    assert result.findings == [] and result.incompletes == []
    assert verdict_of(str(path)) == Outcome.ALLOWED


def test_sub_byte_dtypes() -> None:
    header = {"a": _tensor("F4", [4], 0, 2), "b": _tensor("F6_E2M3", [4], 2, 5)}
    assert threats_of(scan_bytes(_st(header, b"\0" * 5))) == set()
    odd = {"a": _tensor("F4", [3], 0, 2)}
    assert threats_of(scan_bytes(_st(odd, b"\0" * 2))) == {"MS-ST-003"}


def test_leading_whitespace_in_header_is_tolerated() -> None:
    body = b'   {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}'
    result = scan_bytes(_st(None, b"\0\0", raw=body))
    assert formats_of(result) == {"": "safetensors"} and result.findings == []


CORRUPT: dict[str, tuple[bytes, str]] = {
    "length beyond file": (_st({}, length=1000), "MS-ST-001"),
    "length beyond bound": (_st({}, length=(200 << 20)), "MS-ST-001"),
    "invalid utf-8": (_st(None, raw=b'{"a\xff": 1}'), "MS-ST-001"),
    "not json": (_st(None, raw=b'{"a": '), "MS-ST-001"),
    "text after the object": (_st(None, raw=b'{} {"a": 1}'), "MS-ST-001"),
    "NaN constant": (_st(None, raw=b'{"a": NaN}'), "MS-ST-001"),
    "deep nesting": (_st(None, raw=b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "MS-ST-001"),
    "metadata not strings": (_st({"__metadata__": {"a": 1}}), "MS-ST-001"),
    "metadata nested": (_st({"__metadata__": {"a": {"b": "c"}}}), "MS-ST-001"),
    "duplicate tensor": (
        _st(
            None,
            b"\0" * 4,
            raw=b'{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},'
            b' "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}',
        ),
        "MS-ST-002",
    ),
    "duplicate nested key": (
        _st(
            None,
            b"\0" * 4,
            raw=b'{"a": {"dtype": "U8", "dtype": "I8", "shape": [4], "data_offsets": [0, 4]}}',
        ),
        "MS-ST-002",
    ),
    "unknown dtype": (_st({"a": _tensor("F128", [1], 0, 16)}, b"\0" * 16), "MS-ST-003"),
    "negative dim": (_st({"a": _tensor("U8", [-1], 0, 0)}), "MS-ST-003"),
    "float dim": (_st({"a": _tensor("U8", [1.5], 0, 1)}, b"\0"), "MS-ST-003"),
    "bool dim": (_st({"a": _tensor("U8", [True], 0, 1)}, b"\0"), "MS-ST-003"),
    "offsets reversed": (_st({"a": _tensor("U8", [0], 4, 0)}, b"\0" * 4), "MS-ST-003"),
    "offsets triple": (
        _st({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]}}, b"\0"),
        "MS-ST-003",
    ),
    "missing shape": (_st({"a": {"dtype": "U8", "data_offsets": [0, 1]}}, b"\0"), "MS-ST-003"),
    "entry not object": (_st({"a": [1, 2]}), "MS-ST-003"),
    "size mismatch": (_st({"a": _tensor("F32", [2], 0, 4)}, b"\0" * 4), "MS-ST-003"),
    "shape overflow": (_st({"a": _tensor("F64", [1 << 62, 8], 0, 8)}, b"\0" * 8), "MS-ST-003"),
    "overlap": (
        _st({"a": _tensor("U8", [4], 0, 4), "b": _tensor("U8", [4], 2, 6)}, b"\0" * 6),
        "MS-ST-004",
    ),
    "gap": (
        _st({"a": _tensor("U8", [4], 0, 4), "b": _tensor("U8", [4], 8, 12)}, b"\0" * 12),
        "MS-ST-005",
    ),
    "hole at start": (_st({"a": _tensor("U8", [4], 4, 8)}, b"\0" * 8), "MS-ST-005"),
    "past end of file": (_st({"a": _tensor("U8", [8], 0, 8)}, b"\0" * 4), "MS-ST-006"),
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_headers(name: str) -> None:
    data, code = CORRUPT[name]
    result = scan_bytes(data, "bad.safetensors")
    assert formats_of(result)[""] == "safetensors"
    assert code in threats_of(result), [f.message for f in result.findings]
    assert result.incompletes == []


def test_trailing_bytes_are_reported_and_scanned(stub_pickle) -> None:  # noqa: F811
    good = save({"a": np.arange(4, dtype=np.uint8)})
    result = scan_bytes(good + malicious_pickle(), "t.safetensors")
    assert {"MS-ST-005", "MS-TEST-901"} <= threats_of(result)


def test_header_bound_follows_limits() -> None:
    good = save({"a": np.arange(4, dtype=np.uint8)})
    result = scan_bytes(good, "t.safetensors", Limits(max_header_bytes=16))
    assert threats_of(result) == {"MS-ST-001"}


@pytest.mark.parametrize(
    "data",
    [
        b'        {"a": 1}\n',  # indented JSON
        struct.pack("<Q", 1 << 40) + b'{"a": 1}',  # length beyond any header: not this format
        struct.pack("<Q", 9) + b"{\x00\x17garbage",  # '{' then binary: random tensor bytes
    ],
)
def test_not_safetensors(data: bytes) -> None:
    assert formats_of(scan_bytes(data, "x.bin"))[""] != "safetensors"
