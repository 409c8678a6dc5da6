"""Bypasses by size: a literal past 8 KiB is kept as a Blob (a reference to the file), a
LONG4 past it as a BigInt. The attacker chooses the size, so every check must treat those
at least as strictly as the small literal it replaces (red team, session 23). Each test
builds the small form, which was always found, and the padded form, which was ALLOWED.
"""

from __future__ import annotations

import base64
import struct

import pytest
from pklbuild import (
    BUILD,
    EMPTY_DICT,
    MARK,
    NEWFALSE,
    NEWTRUE,
    NONE,
    REDUCE,
    SETITEMS,
    TUPLE,
    TUPLE1,
    TUPLE2,
    TUPLE3,
    binint,
    binunicode,
    codes,
    global_,
    proto,
    scan,
    short_binbytes,
    summary,
)

from modelsec.context import Limits

CONTRACT = "MS-PKL-107"
PADDED = 9000  # past opcodes.INLINE_LIMIT (8 KiB)


def _dtype(typestr: str, state: bytes | None = None) -> bytes:
    """numpy.dtype(typestr, False, True), with a BUILD of ``state`` if given."""
    made = global_("numpy", "dtype") + binunicode(typestr) + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE
    return made + (state + BUILD if state is not None else b"")


def _leaf_state(order: str, flags: bytes) -> bytes:
    """(3, order, None, None, None, -1, -1, flags): a plain dtype's state."""
    return MARK + binint(3) + binunicode(order) + NONE + NONE + NONE + binint(-1) + binint(-1) + flags + TUPLE


def _long4(value: int, length: int) -> bytes:
    return b"\x8b" + struct.pack("<i", length) + value.to_bytes(length, "little", signed=True)


def _object_array(dtype: bytes) -> bytes:
    """An ndarray of one item of ``dtype`` whose 8 data bytes numpy reads as the item."""
    return (
        global_("numpy.core.multiarray", "_reconstruct")
        + global_("numpy", "ndarray")
        + binint(0)
        + TUPLE1
        + short_binbytes(b"b")
        + TUPLE3
        + REDUCE
        + MARK
        + binint(1)
        + binint(1)
        + TUPLE1
        + dtype
        + NEWFALSE
        + short_binbytes(b"A" * 8)
        + TUPLE
        + BUILD
    )


@pytest.mark.parametrize(
    "flags", [binint(0), _long4(1 << (8 * (PADDED - 1)), PADDED)], ids=["int", "long4-9000"]
)
def test_object_dtype_flags_as_a_huge_integer(flags: bytes) -> None:
    """numpy keeps the low 64 bits of a dtype's flags: 2**71992 is 0 to it, an object dtype
    without NPY_ITEM_REFCOUNT, whose array reads its 8 data bytes as a PyObject pointer
    (SIGSEGV on repr). The flags were checked only when they were an int."""
    result = scan(proto(2) + _object_array(_dtype("O", _leaf_state("|", flags))) + b".")
    assert CONTRACT in codes(result), summary(result)


def test_the_flags_numpy_writes_still_pass() -> None:
    result = scan(proto(2) + _object_array(_dtype("O", _leaf_state("|", binint(63)))) + b".")
    assert CONTRACT not in codes(result), summary(result)


def _with_extra_field(key: bytes) -> bytes:
    """A structured dtype "V8" named ("a",) whose fields also hold ``key`` (opcodes that
    push it), neither named nor a title, 4 KiB past the 8-byte item: indexing an array by
    that key reads the heap."""
    leaf = _dtype("i8", _leaf_state("<", binint(0)))
    fields = EMPTY_DICT + MARK + binunicode("a") + leaf + binint(0) + TUPLE2
    fields += key + leaf + binint(4096) + TUPLE2 + SETITEMS
    state = MARK + binint(3) + binunicode("|") + NONE + binunicode("a") + TUPLE1 + fields
    return proto(2) + _dtype("V8", state + binint(8) + binint(1) + binint(16) + TUPLE) + b"."


@pytest.mark.parametrize("pad", [0, PADDED], ids=["short-key", "9000-char-key"])
def test_dtype_field_under_a_long_key(pad: int) -> None:
    """Its key, as a Blob, was left out of the fields the check read."""
    result = scan(_with_extra_field(binunicode("zz" + "z" * pad)))
    assert CONTRACT in codes(result), summary(result)


def test_dtype_field_under_a_computed_key() -> None:
    """A key the stream computes (str of bytes) is "a" at load time and takes the named
    field's place. The fields were read as if it were absent."""
    computed = global_("builtins", "str") + MARK + short_binbytes(b"a") + binunicode("ascii") + TUPLE + REDUCE
    result = scan(_with_extra_field(computed))
    assert CONTRACT in codes(result), summary(result)


def test_a_nine_kib_time_zone_string() -> None:
    """pandas opens "dateutil/<path>" as a time-zone file. A str past 8 KiB is a Blob, and
    the check treated a Blob outside a string maker as no string at all."""
    long_tz = "dateutil//etc/hostname" + "/" * PADDED
    data = proto(4) + global_("pandas", "DatetimeIndex") + MARK + EMPTY_DICT + binunicode(long_tz)
    result = scan(data + TUPLE + REDUCE + b".")
    assert CONTRACT in codes(result), summary(result)


# -- embedded pickles: a second stage kept in a field, for code that loads it later --------


def _inner(pad: int) -> bytes:
    """A protocol-4 pickle that runs os.system, ``pad`` bytes of padding inside it."""
    padding = binunicode("A" * pad) + b"0" if pad else b""  # a str, then POP
    return proto(4) + padding + global_("os", "system") + MARK + binunicode("id") + TUPLE + REDUCE + b"."


def _inner_old(pad: int) -> bytes:
    """The same in protocol 0, starting with its padding (a STRING, then POP)."""
    return b"S'" + b"A" * pad + b"'\n0cos\nsystem\n(S'id'\ntR."


def _field(literal: bytes) -> bytes:
    """{"blob": literal}: the payload sits in a field, nothing loads it here."""
    return proto(4) + EMPTY_DICT + binunicode("blob") + literal + b"s."


def _string_line(text: str) -> bytes:
    return (
        b"S'"
        + text.encode("latin-1").replace(b"\\", b"\\\\").replace(b"'", b"\\'").replace(b"\n", b"\\n")
        + b"'\n"
    )


def _binstring(text: str) -> bytes:
    data = text.encode("latin-1")
    return b"T" + struct.pack("<i", len(data)) + data


def _binbytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


EMBEDDED = {
    "protocol-0-bytes": lambda pad: _binbytes(_inner_old(pad)),
    "protocol-0-str": lambda pad: _binstring(_inner_old(pad).decode("latin-1")),
    "protocol-4-as-str": lambda pad: binunicode(_inner(pad).decode("latin-1")),
    "protocol-4-in-a-STRING-line": lambda pad: _string_line(_inner(pad).decode("latin-1")),
    "base64-in-a-BINSTRING": lambda pad: _binstring(base64.b64encode(_inner(pad)).decode()),
    "hex-in-a-STRING-line": lambda pad: _string_line(_inner(pad).hex()),
}


@pytest.mark.parametrize("pad", [0, PADDED], ids=["small", "padded"])
@pytest.mark.parametrize("form", sorted(EMBEDDED))
def test_embedded_pickle_past_8_kib(form: str, pad: int) -> None:
    """A literal past 8 KiB was tested on its first bytes only, for a few prefixes, and a
    large BINSTRING or STRING was read back as bytes where the reader makes a str: every
    padded form here was ALLOWED. A protocol-0 payload was found only when it started
    with GLOBAL, MARK, EMPTY_LIST or EMPTY_DICT, in any size."""
    result = scan(_field(EMBEDDED[form](pad)))
    assert "MS-PKL-100" in codes(result), summary(result)


def test_embedded_candidate_past_the_inline_budget_is_not_inspected() -> None:
    """A candidate too large to decode was dropped without a word; it is incomplete."""
    literal = binunicode(base64.b64encode(_inner(PADDED)).decode())
    result = scan(_field(literal), limits=Limits(max_inline_bytes=4096))
    assert result.incompletes, summary(result)
    assert any("embedded pickle" in incomplete.reason for incomplete in result.incompletes)


def test_offsets_after_a_large_literal_count_its_bytes() -> None:
    """The opcode after a literal past 8 KiB was placed at the literal's start."""
    head = proto(4) + MARK + binunicode("A" * PADDED)  # the GLOBAL follows the literal
    call = global_("os", "system") + MARK + binunicode("id") + TUPLE + REDUCE
    result = scan(head + call + TUPLE + b".")
    assert {f.offset for f in result.findings if f.threat == "MS-PKL-100"} == {len(head)}, summary(result)


def test_a_large_text_that_is_no_whole_old_pickle_is_not_a_candidate() -> None:
    """Text past the inline budget that starts like a protocol-0 opcode but does not end
    with STOP cannot be a whole pickle: it is not decoded, and not incomplete (a large
    text field would otherwise be ERROR)."""
    text = "a sentence of a model card, " * 400  # starts with 'a' (APPEND), ends without '.'
    result = scan(_field(binunicode(text)), limits=Limits(max_inline_bytes=4096))
    assert not result.incompletes and "MS-PKL-100" not in codes(result), summary(result)
    stop = scan(_field(binunicode(text + ".")), limits=Limits(max_inline_bytes=4096))
    assert stop.incompletes, summary(stop)  # could be one: too large to decode, so not inspected
