"""NumPy .npy headers and data (object arrays hold a pickle) and .npz archives."""

from __future__ import annotations

import io
from collections.abc import Iterator

from harness import Target, builder_seeds, corpus_files
from scanning import scan_as

_npy = scan_as("array.npy")
_npz = scan_as("arrays.npz")


def run(data: bytes) -> None:
    """An npz is a zip of npy members (the zip scanner hands them back to the engine)."""
    (_npz if data.startswith(b"PK") else _npy)(data)


def _seeds() -> Iterator[bytes]:
    import numpy as np

    def save(value: object, **kw: object) -> bytes:
        buf = io.BytesIO()
        np.save(buf, value, **kw)
        return buf.getvalue()

    def savez(**arrays: object) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    yield from builder_seeds(
        lambda: save(np.arange(12, dtype=np.float32).reshape(3, 4)),
        lambda: save(np.asfortranarray(np.ones((2, 3)))),
        lambda: save(np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")])),
        lambda: save(np.array(["ab", "c"])),
        lambda: save(np.array([{"k": 1}, None], dtype=object), allow_pickle=True),
        lambda: savez(a=np.arange(3), b=np.array([1.5])),
        lambda: (
            b"\x93NUMPY\x02\x00"
            + (12).to_bytes(4, "little")
            + b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n"[:12]
        ),
    )
    yield from corpus_files(
        lambda path, head: head.startswith(b"\x93NUMPY") or path.suffix == ".npz", 64 << 10
    )


TARGET = Target(
    name="numpy",
    run=run,
    seeds=_seeds,
    max_len=16 << 10,
    tokens=(
        b"\x93NUMPY\x01\x00",
        b"\x93NUMPY\x02\x00",
        b"\x93NUMPY\x03\x00",
        b"'descr'",
        b"'fortran_order'",
        b"'shape'",
        b"'|O'",
        b"'<f8'",
        b"True",
        b"False",
    ),
)
