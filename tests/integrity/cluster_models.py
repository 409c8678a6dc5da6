"""A small Local model for the cluster tests of verify: three files of three kinds."""

from __future__ import annotations

from pathlib import Path

NPY = (
    b"\x93NUMPY\x01\x00v\x00"
    + b"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }".ljust(117)
    + b"\n"
    + bytes(16)
)


def write_bert(model: Path) -> Path:
    """config.json, tokenizer/vocab.txt and weights.npy under ``model``."""
    (model / "tokenizer").mkdir(parents=True)
    (model / "config.json").write_text('{"architectures": ["BertModel"]}')
    (model / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    (model / "weights.npy").write_bytes(NPY)
    return model
