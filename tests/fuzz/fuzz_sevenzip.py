"""7z archives."""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator

from harness import Target, builder_seeds, corpus_files
from scanning import scan_as


def _7z(filters: list[dict[str, int]] | None, encrypted_headers: bool = False) -> bytes:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", filters=filters) as archive:
        archive.writestr(pickle.dumps({"w": [1.0]}, protocol=2), "a.pkl")
        archive.writestr(b"hello " * 10, "b/c.txt")
    return buf.getvalue()


def _seeds() -> Iterator[bytes]:
    import py7zr

    yield from builder_seeds(
        lambda: _7z(None),
        lambda: _7z([{"id": py7zr.FILTER_COPY}]),
        lambda: _7z([{"id": py7zr.FILTER_BZIP2}]),
        lambda: _7z([{"id": py7zr.FILTER_DEFLATE}]),
    )
    yield from corpus_files(lambda path, head: head.startswith(b"7z\xbc\xaf\x27\x1c"), 64 << 10)


TARGET = Target(
    name="7z",
    run=scan_as("fuzz.7z"),
    seeds=_seeds,
    max_len=16 << 10,
    tokens=(b"7z\xbc\xaf\x27\x1c", b"\x00\x04", b"\x01\x04", b"\x17", b"\x0b", b"\x21"),
)
