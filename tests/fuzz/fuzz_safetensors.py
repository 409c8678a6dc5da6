"""safetensors: the JSON header and the tensor table it describes."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator

from harness import Target, builder_seeds, corpus_files
from scanning import scan_as


def _raw(header: object, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _seeds() -> Iterator[bytes]:
    import numpy as np

    def real() -> bytes:
        from safetensors.numpy import save

        return save(
            {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2, np.int64)},
            metadata={"format": "pt"},
        )

    yield from builder_seeds(real)
    yield _raw({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4)
    yield _raw({"__metadata__": {"k": "v"}, "a": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]}}, b"x")
    yield from corpus_files(lambda path, head: path.suffix == ".safetensors", 64 << 10)


TARGET = Target(
    name="safetensors",
    run=scan_as("model.safetensors"),
    seeds=_seeds,
    max_len=16 << 10,
    tokens=(
        b'"dtype"',
        b'"shape"',
        b'"data_offsets"',
        b'"__metadata__"',
        b'"F32"',
        b'"BF16"',
        b'"U8"',
        b"\xff\xff\xff\xff\xff\xff\xff\x7f",
    ),
)
