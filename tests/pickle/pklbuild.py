"""Build pickle streams opcode by opcode, and scan them.

Malicious fixtures are assembled from these bytes and never loaded: the tests only check
what the scanner reports. Each helper returns the bytes of one opcode with its argument.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Callable
from typing import Any

from modelsec.bytesource import ByteSource, BytesSource
from modelsec.context import Limits
from modelsec.engine import Engine, FileResult
from modelsec.findings import Finding

# -- opcodes -------------------------------------------------------------------------------

MARK, STOP, POP, DUP = b"(", b".", b"0", b"2"
NONE, NEWTRUE, NEWFALSE = b"N", b"\x88", b"\x89"
REDUCE, BUILD, OBJ, NEWOBJ, NEWOBJ_EX = b"R", b"b", b"o", b"\x81", b"\x92"
STACK_GLOBAL, MEMOIZE = b"\x93", b"\x94"
TUPLE, TUPLE1, TUPLE2, TUPLE3, EMPTY_TUPLE = b"t", b"\x85", b"\x86", b"\x87", b")"
LIST, EMPTY_LIST, APPEND, APPENDS = b"l", b"]", b"a", b"e"
DICT, EMPTY_DICT, SETITEM, SETITEMS = b"d", b"}", b"s", b"u"
EMPTY_SET, ADDITEMS, FROZENSET = b"\x8f", b"\x90", b"\x91"
BINPERSID, NEXT_BUFFER, READONLY_BUFFER = b"Q", b"\x97", b"\x98"


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def frame(n: int) -> bytes:
    return b"\x95" + struct.pack("<Q", n)


def global_(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def inst(module: str, name: str) -> bytes:
    return b"i" + module.encode() + b"\n" + name.encode() + b"\n"


def sbu(text: str) -> bytes:
    """SHORT_BINUNICODE"""
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def binunicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def binunicode8(text: str) -> bytes:
    data = text.encode()
    return b"\x8d" + struct.pack("<Q", len(data)) + data


def unicode_line(text: str) -> bytes:
    return b"V" + text.encode("raw-unicode-escape") + b"\n"


def string(text: str) -> bytes:
    """STRING (protocol 0, quoted)"""
    return b"S" + repr(text).encode() + b"\n"


def binstring(text: str) -> bytes:
    data = text.encode("latin-1")
    return b"T" + struct.pack("<i", len(data)) + data


def short_binstring(text: str) -> bytes:
    data = text.encode("latin-1")
    return b"U" + bytes([len(data)]) + data


def short_binbytes(data: bytes) -> bytes:
    return b"C" + bytes([len(data)]) + data


def binbytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def binbytes8(data: bytes) -> bytes:
    return b"\x8e" + struct.pack("<Q", len(data)) + data


def bytearray8(data: bytes) -> bytes:
    return b"\x96" + struct.pack("<Q", len(data)) + data


def binint1(n: int) -> bytes:
    return b"K" + bytes([n])


def binint(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def put(n: int) -> bytes:
    return b"p" + str(n).encode() + b"\n"


def get(n: int) -> bytes:
    return b"g" + str(n).encode() + b"\n"


def binput(n: int) -> bytes:
    return b"q" + bytes([n])


def binget(n: int) -> bytes:
    return b"h" + bytes([n])


def long_binput(n: int) -> bytes:
    return b"r" + struct.pack("<I", n)


def long_binget(n: int) -> bytes:
    return b"j" + struct.pack("<I", n)


def ext1(code: int) -> bytes:
    return b"\x82" + bytes([code])


def ext2(code: int) -> bytes:
    return b"\x83" + struct.pack("<H", code)


def ext4(code: int) -> bytes:
    return b"\x84" + struct.pack("<i", code)


def stack_global(module: str, name: str) -> bytes:
    return sbu(module) + MEMOIZE + sbu(name) + MEMOIZE + STACK_GLOBAL


def call(module: str, name: str, *args: str) -> bytes:
    """module.name(*args) with protocol 4 opcodes, args as strings."""
    return stack_global(module, name) + MARK + b"".join(sbu(a) for a in args) + TUPLE + REDUCE


def piece(obj: object) -> bytes:
    """``obj`` pickled (protocol 2) without PROTO, STOP or memo: a piece to splice into a
    hand-built stream (it refers to nothing outside itself)."""
    out = io.BytesIO()
    pickler = pickle._Pickler(out, protocol=2)  # type: ignore[attr-defined]  # the pure-Python pickler
    pickler.fast = True  # no memo
    pickler.dump(obj)
    return out.getvalue()[2:-1]


def v4(body: bytes) -> bytes:
    """A complete protocol 4 stream around ``body`` (which leaves one value)."""
    return proto(4) + body + STOP


# -- scanning ------------------------------------------------------------------------------


def scan(data: bytes | ByteSource, name: str = "model.pkl", limits: Limits | None = None) -> FileResult:
    source = BytesSource(data) if isinstance(data, bytes) else data
    return Engine(limits).scan_source(name, source)


def codes(result: FileResult) -> set[str]:
    return {f.threat for f in result.findings}


def with_code(result: FileResult, code: str) -> list[Finding]:
    return [f for f in result.findings if f.threat == code]


def subjects(result: FileResult, code: str) -> set[str | None]:
    return {f.subject for f in with_code(result, code)}


def summary(result: FileResult) -> str:
    found = "; ".join(f"{f.threat} {f.subject} @{f.offset} [{f.file}] {f.message}" for f in result.findings)
    missing = "; ".join(f"{i.code} {i.reason}" for i in result.incompletes)
    return f"format={result.format} findings: {found or '-'} incomplete: {missing or '-'}"


def old_joblib_wrapper(filename: str) -> bytes:
    """What joblib < 0.10 wrote: an ``NDArrayWrapper`` whose state names the file that
    ``joblib.load`` reads the array from (``numpy.load(allow_pickle=True)``)."""
    return v4(
        stack_global("joblib.numpy_pickle_compat", "NDArrayWrapper")
        + EMPTY_TUPLE
        + NEWOBJ
        + EMPTY_DICT
        + MARK
        + sbu("filename")
        + sbu(filename)
        + sbu("subclass")
        + stack_global("numpy", "ndarray")
        + SETITEMS
        + BUILD
    )


# -- genuine objects, written the ways models are saved ------------------------------------


def joblib_bytes(obj: object) -> bytes:
    """What ``joblib.dump`` writes for ``obj`` (array bytes after each wrapper)."""
    import joblib

    out = io.BytesIO()
    joblib.dump(obj, out)
    return out.getvalue()


# The scanner reads array bytes differently in each: protocol 2's _codecs.encode, inline
# literals, protocol 5's _frombuffer, the data after joblib's wrappers. Test modules pick
# the ones they parametrize over.
WRITERS: dict[str, Callable[[Any], bytes]] = {
    **{f"pickle-{p}": (lambda obj, p=p: pickle.dumps(obj, protocol=p)) for p in (2, 3, 4, 5)},
    "joblib": joblib_bytes,
}


def writers(*names: str) -> dict[str, Callable[[Any], bytes]]:
    return {name: WRITERS[name] for name in names}
