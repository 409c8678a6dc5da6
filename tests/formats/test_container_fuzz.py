"""Property tests: random and mutated bytes through every container and tensor parser.

The registry is restricted to these scanners (plus the stand-in pickle scanner) so that a
failure points here. Properties: dispatch returns, no scanner error (``MS-GEN-002``: an
exception escaped a scanner), no resource error, and a top-level format is recorded.
Hangs are caught by the suite's timeout; memory bounds have dedicated tests (claimed
terabyte members, huge pickle arguments, pax headers).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import struct
import tarfile
import zipfile
from collections.abc import Iterator

import numpy as np
import py7zr
import pytest
from containers_support import StubPickle, malicious_pickle, scan_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelsec import formats
from modelsec.context import Limits

MINE = {"zip", "tar", "7z", "compressed", "numpy-npy", "safetensors", "pytorch-legacy"}
SETTINGS = settings(
    max_examples=int(os.environ.get("MODELSEC_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
LIMITS = Limits(max_members=200, max_spool_bytes=8 << 20, max_expanded_bytes=64 << 20)


@pytest.fixture
def only_containers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    mine = tuple(s for s in formats.scanners() if s.name in MINE) + (StubPickle(),)
    ordered = tuple(sorted(mine, key=lambda s: s.priority))
    monkeypatch.setattr(formats, "scanners", lambda: ordered)
    yield


def _check(data: bytes, name: str = "fuzz.bin") -> None:
    result = scan_bytes(data, name, LIMITS)
    bad = [i for i in result.incompletes if i.code in ("MS-GEN-002",)]
    assert not bad, bad
    assert not any("MemoryError" in i.reason or "RecursionError" in i.reason for i in result.incompletes)
    assert result.formats, "no format recorded"


# --- seeds ----------------------------------------------------------------------------------


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", malicious_pickle())
        z.writestr("archive/version", b"3\n")
        z.writestr("b.txt", b"hello " * 20)
    return buf.getvalue()


def _tar(mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data in (("a.pkl", malicious_pickle()), ("b/c.txt", b"hello " * 20)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _7z() -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as a:
        a.writestr(malicious_pickle(), "a.pkl")
        a.writestr(b"hello " * 20, "b.txt")
    return buf.getvalue()


def _npy(obj: bool) -> bytes:
    buf = io.BytesIO()
    arr = np.array([1, "x"], dtype=object) if obj else np.arange(6, dtype=np.int16).reshape(2, 3)
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _safetensors() -> bytes:
    header = json.dumps(
        {
            "__metadata__": {"format": "pt"},
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "U8", "shape": [3], "data_offsets": [8, 11]},
        }
    ).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * 11


def _legacy() -> bytes:
    magic = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."
    keys = b"\x80\x02]q\x00X\x01\x00\x00\x000q\x01a."
    return (
        magic + b"\x80\x02M\xe9\x03." + b"\x80\x02}q\x00." + malicious_pickle() + keys + b"\x01" + b"\0" * 11
    )


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, a=np.arange(10), b=np.array([None], dtype=object))
    return buf.getvalue()


SEEDS = {
    "zip": _zip(),
    "npz": _npz(),
    "tar": _tar("w"),
    "tgz": _tar("w:gz"),
    "tbz": _tar("w:bz2"),
    "txz": _tar("w:xz"),
    "7z": _7z(),
    "npy": _npy(False),
    "npy-object": _npy(True),
    "safetensors": _safetensors(),
    "legacy": _legacy(),
    "gzip": gzip.compress(malicious_pickle()),
    "bz2": bz2.compress(malicious_pickle()),
    "xz": lzma.compress(malicious_pickle()),
}

MAGICS = [
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"7z\xbc\xaf\x27\x1c",
    b"\x93NUMPY\x01\x00",
    b"\x93NUMPY\x03\x00",
    b"\x1f\x8b\x08",
    b"BZh91AY&SY",
    b"\xfd7zXZ\x00",
    b"\x04\x22\x4d\x18",
    b"x\x9c",
    b"]\x00\x00\x80\x00",
    b"ZF0x10               x\x9c",
    b"\x10\x00\x00\x00\x00\x00\x00\x00{",
    b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b".",
]


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, ord("."), ord("{")]))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            del data[pos:]
    return bytes(data)


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seeds_scan_cleanly(only_containers: None, seed: str) -> None:
    _check(SEEDS[seed])


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_mutated_inputs(only_containers: None, seed: str) -> None:
    @SETTINGS
    @given(data=mutated(SEEDS[seed]))
    def run(data: bytes) -> None:
        _check(data, f"fuzz.{seed}")

    run()


@SETTINGS
@given(magic=st.sampled_from(MAGICS), tail=st.binary(max_size=2048))
def test_random_bytes_behind_every_magic(only_containers: None, magic: bytes, tail: bytes) -> None:
    _check(magic + tail)


@SETTINGS
@given(data=st.binary(max_size=4096))
def test_random_bytes(only_containers: None, data: bytes) -> None:
    _check(data)
