"""Zip containers (and what they hold: PyTorch archives, npz, nested members)."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Iterator

from harness import Target, builder_seeds, corpus_files
from scanning import scan_as


def _zip(compression: int, members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _seeds() -> Iterator[bytes]:
    import numpy as np

    payload = pickle.dumps({"w": [1.0, 2.0]}, protocol=2)
    torch_like = {"archive/data.pkl": payload, "archive/version": b"3\n", "archive/data/0": b"\0" * 16}
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        yield _zip(compression, torch_like)
    yield _zip(
        zipfile.ZIP_STORED, {"inner.zip": _zip(zipfile.ZIP_STORED, {"a.pkl": payload}), "b.txt": b"hi"}
    )

    def npz() -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, a=np.arange(4), b=np.array([1.5]))
        return buf.getvalue()

    yield from builder_seeds(npz)
    yield from corpus_files(lambda path, head: head.startswith(b"PK"), 64 << 10)


TARGET = Target(
    name="zip",
    run=scan_as("fuzz.zip"),
    seeds=_seeds,
    max_len=64 << 10,
    tokens=(
        b"PK\x03\x04",
        b"PK\x01\x02",
        b"PK\x05\x06",
        b"PK\x06\x06",
        b"PK\x06\x07",
        b"PK\x07\x08",
        b"\x01\x00",
        b"\x75\x70",
        b"data.pkl",
        b"archive/",
        b"\xff\xff\xff\xff",
    ),
)
