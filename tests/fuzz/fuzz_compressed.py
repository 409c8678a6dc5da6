"""Compressed streams (gzip, bz2, xz/lzma, lz4, zlib; joblib's compressed pickles)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import pickle
import zlib
from collections.abc import Iterator

from harness import Target, builder_seeds, corpus_files
from scanning import scan_as

MAGICS = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x5d\x00\x00", b"\x04\x22\x4d\x18", b"ZF0x", b"\x78\x9c")


def _seeds() -> Iterator[bytes]:
    payload = pickle.dumps({"w": [1.0, 2.0], "s": "x" * 50}, protocol=4)
    yield gzip.compress(payload)
    yield bz2.compress(payload)
    yield lzma.compress(payload)
    yield lzma.compress(payload, format=lzma.FORMAT_ALONE)
    yield zlib.compress(payload)
    yield b"ZF0x%x\n" % len(payload) + zlib.compress(payload)  # joblib's legacy ZF header

    def lz4() -> bytes:
        import lz4.frame

        return lz4.frame.compress(payload)

    yield from builder_seeds(lz4)
    yield from corpus_files(lambda path, head: head.startswith(MAGICS), 64 << 10)


TARGET = Target(
    name="compressed",
    run=scan_as("model.pkl.gz"),
    seeds=_seeds,
    max_len=16 << 10,
    tokens=MAGICS,
)
