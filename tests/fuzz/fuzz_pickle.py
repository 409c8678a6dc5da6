"""Pickle machine (opcode reader, stack machine, scanner) through the pickle format scanner.
Oracle: the detector's byte tests (``pickle_head.rules_in`` and ``rules_out``) agree with
the machine's probe (``looks_like_pickle``) on the input's head."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Iterator

from harness import OracleFailure, Target, builder_seeds, corpus_files, import_test_helpers
from scanning import scan_as

from modelsec.context import HEAD_SIZE
from modelsec.formats.pickle_head import rules_in, rules_out
from modelsec.pickle.scanner import looks_like_pickle

PICKLE_SUFFIXES = {".pkl", ".pickle", ".dill", ".pt", ".bin", ".joblib", ".pth"}
_scan = scan_as("data.pkl", forced="pickle")


def run(data: bytes) -> None:
    head = data[:HEAD_SIZE]
    if head:
        detected = looks_like_pickle(head, len(data))
        if rules_in(head) and not detected:
            raise OracleFailure("rules_in calls a pickle what the probe does not")
        if rules_out(head) and detected:
            raise OracleFailure("rules_out rules out what the probe detects")
    _scan(data)


def _seeds() -> Iterator[bytes]:
    import_test_helpers("pickle")
    import numpy as np
    from pklbuild import call, v4

    values = [
        {"w": [1.5, 2.5], "n": "x", "t": (1, 2), "s": {3}, "b": b"\x00\x01", "o": OrderedDict(a=1)},
        list(range(40)),
        "text",
        2**70,
        -1.5,
        None,
        True,
        frozenset({1}),
        bytearray(b"ab"),
    ]
    for protocol in range(6):
        for value in values:
            yield pickle.dumps(value, protocol=protocol)
    yield from builder_seeds(
        lambda: pickle.dumps(np.arange(6.0).reshape(2, 3), protocol=2),
        lambda: pickle.dumps(np.arange(6.0).reshape(2, 3), protocol=5),
        lambda: pickle.dumps(np.random.RandomState(0), protocol=4),
        lambda: v4(call("os", "system", "id")),
        lambda: v4(call("builtins", "eval", "1+1")),
        lambda: v4(call("pickle", "loads", "x")),
    )
    yield from corpus_files(
        lambda path, head: path.suffix in PICKLE_SUFFIXES and not head.startswith(b"PK"), 64 << 10
    )


TARGET = Target(
    name="pickle",
    run=run,
    seeds=_seeds,
    max_len=16 << 10,
    tokens=(
        b"\x80\x04\x95",
        b"\x80\x02",
        b"cos\nsystem\n",
        b"cbuiltins\neval\n",
        b"\x8c\x08builtins",
        b"\x8c\x02os",
        b"\x93",
        b"R",
        b"b",
        b"\x81",
        b"\x92",
        b"torch._utils\n_rebuild_tensor_v2\n",
        b"numpy.core.multiarray\n_reconstruct\n",
        b"__reduce__",
        b"\x94",
        b"\x95",
        b"\x96",
    ),
)
