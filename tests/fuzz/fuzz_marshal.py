"""The marshal reader (keras/marshal_reader.py) that summarises Lambda-layer code objects
without unmarshalling them."""

from __future__ import annotations

import marshal
from collections.abc import Iterator

from harness import Target

from modelsec.keras.marshal_reader import MarshalError, summarize_code


def run(data: bytes) -> None:
    summarize_code(data)


def _seeds() -> Iterator[bytes]:
    # Our own code, compiled and marshalled (never run): the layouts Lambda layers carry.
    sources = [
        "lambda x: x + 1",
        "def f(x):\n    import os\n    return os.system('id') or x\n",
        "def g(*a, **k):\n    return [i for i in a if i] + list(k.items())\n",
        "class C:\n    def m(self):\n        return (1.5, 2j, b'x', None, ...)\n",
    ]
    for text in sources:
        for version in (2, 3, 4):
            yield marshal.dumps(compile(text, "<fuzz>", "exec"), version)
    yield marshal.dumps(({"a": frozenset({1})}, [1, 2**70], "s"), 4)


TARGET = Target(
    name="marshal",
    run=run,
    seeds=_seeds,
    max_len=8 << 10,
    expected=(MarshalError,),
    tokens=(b"\xe3", b"c", b"r", b"z", b"Z", b"\xda", b")", b"s", b"N", b"\xfa"),
)
