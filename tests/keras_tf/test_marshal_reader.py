"""The marshal reader: real code objects of this interpreter, hand-built code objects of
older layouts, and malformed streams (which must raise MarshalError, never crash)."""

from __future__ import annotations

import marshal
import struct

import pytest

from modelsec.keras.marshal_reader import MarshalError, summarize_code


def _s(data: bytes) -> bytes:
    return b"s" + struct.pack("<i", len(data)) + data


def _z(text: str) -> bytes:
    return b"z" + bytes([len(text)]) + text.encode()


def _tuple(*items: bytes) -> bytes:
    return b")" + bytes([len(items)]) + b"".join(items)


def _code(ints: int, *, names: tuple[str, ...], consts: tuple[bytes, ...], tail: list[bytes]) -> bytes:
    return (
        b"c"
        + struct.pack("<i", 0) * ints
        + _s(b"\x64\x00\x53\x00")
        + _tuple(*consts)
        + _tuple(*(_z(n) for n in names))
        + b"".join(tail)
    )


def _legacy_tail(name: str) -> list[bytes]:
    # varnames, freevars, cellvars, filename, name, firstlineno, lnotab
    return [_tuple(_z("x")), _tuple(), _tuple(), _z("<f>"), _z(name), struct.pack("<i", 1), _s(b"")]


@pytest.mark.parametrize("version", range(0, marshal.version + 1))
def test_real_code_objects_every_marshal_version(version: int) -> None:
    code = compile("lambda x: __import__('os').system('id') + [eval(y) for y in x]", "<t>", "eval")
    summary = summarize_code(marshal.dumps(code, version))
    assert {"__import__", "system", "eval"} <= set(summary.names)
    assert "os" in summary.strings and "id" in summary.strings
    assert summary.code_objects >= 2  # the module code and the nested lambda
    assert summary.layout == "3.11+"


def test_python38_layout_with_nested_code() -> None:
    inner = _code(6, names=("system",), consts=(_z("rm -rf /"),), tail=_legacy_tail("<lambda>"))
    outer = _code(6, names=("os", "popen"), consts=(inner, b"N"), tail=_legacy_tail("<module>"))
    summary = summarize_code(outer)
    assert summary.layout == "3.8-3.10"
    assert summary.names == ["system", "os", "popen"]
    assert "rm -rf /" in summary.strings
    assert summary.code_names == ["<lambda>", "<module>"]


def test_python2_layout() -> None:
    summary = summarize_code(_code(4, names=("eval",), consts=(b"N",), tail=_legacy_tail("<lambda>")))
    assert summary.layout == "2.x" and summary.names == ["eval"]


def test_refs_resolve_to_earlier_strings() -> None:
    # FLAG_REF on the first name, then a reference to it in consts.
    names = b")\x02" + bytes([ord("z") | 0x80]) + b"\x06system" + b"r" + struct.pack("<i", 0)
    data = (
        b"c"
        + b"\x00" * 20
        + _s(b"\x00\x00")
        + _tuple()
        + names
        + _tuple()
        + _s(b"")
        + _z("<f>")
        + _z("f")
        + _z("f")
        + struct.pack("<i", 1)
        + _s(b"")
        + _s(b"")
    )
    assert summarize_code(data).names == ["system", "system"]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"c",
        b"c" + b"\x00" * 20,  # truncated after the header
        b"s\xff\xff\xff\x7f",  # a size larger than the data
        b"r\x05\x00\x00\x00",  # reference to nothing
        b"(" + struct.pack("<i", 2**30),  # a huge tuple count
        b"l" + struct.pack("<i", -(2**30)),  # a huge long
        b"Q",  # unknown type
        b"N\x00",  # trailing bytes
        b")\x01" * 200 + b"N",  # nesting past the depth bound
    ],
)
def test_malformed_streams_raise_marshal_error(data: bytes) -> None:
    with pytest.raises(MarshalError):
        summarize_code(data)


def test_object_budget_bounds_work() -> None:
    # 300k small tuples: over the object budget, refused rather than walked.
    data = b"(" + struct.pack("<i", 300_000) + b"N" * 300_000
    with pytest.raises(MarshalError, match="objects"):
        summarize_code(data)
