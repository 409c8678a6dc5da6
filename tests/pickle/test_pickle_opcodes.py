"""The bounded opcode reader: arguments decoded like CPython's, large ones left in place."""

from __future__ import annotations

import pickle
import pickletools
import struct

import pytest

from modelsec.bytesource import BytesSource
from modelsec.pickle import opcodes as op
from modelsec.pickle.opcodes import INLINE_LIMIT, Blob, BlobKind, OpcodeReader, PickleError, Truncated


def read_all(data: bytes) -> list[tuple[int, object, int]]:
    reader = OpcodeReader(BytesSource(data))
    out = []
    while True:
        code, arg, offset = reader.next()
        out.append((code, arg, offset))
        if code == op.STOP:
            return out


SAMPLE = {
    "i": [0, 1, -1, 255, 65535, 2**31 - 1, -(2**31), 2**64, -(2**100)],
    "f": 1.25,
    "s": "héllo",
    "b": b"\x00\xff",
    "t": (True, False, None),
    "ba": bytearray(b"xy"),
}


@pytest.mark.parametrize("protocol", range(6))
def test_opcodes_and_offsets_match_pickletools(protocol: int) -> None:
    # pickletools is fine here: the data is ours and tiny.
    data = pickle.dumps(SAMPLE, protocol=protocol)
    expected = [(o.code.encode("latin-1")[0], pos) for o, _, pos in pickletools.genops(data)]
    got = [(code, offset) for code, _, offset in read_all(data)]
    assert got == expected


@pytest.mark.parametrize("protocol", range(6))
def test_arguments_match_pickletools(protocol: int) -> None:
    data = pickle.dumps(SAMPLE, protocol=protocol)
    expected = [arg for _, arg, _ in pickletools.genops(data)]
    for (code, arg, _), want in zip(read_all(data), expected, strict=True):
        if code in (op.GLOBAL, op.INST):
            assert arg == tuple(want.split(" ", 1))
        elif code in (op.BINSTRING, op.SHORT_BINSTRING, op.STRING):
            assert arg == (want.decode("latin-1") if isinstance(want, bytes) else want)
        elif code == op.INT and isinstance(want, bool):
            assert arg is want
        elif code not in (op.MARK, op.STOP) and want is not None:
            assert arg == want, op.NAMES[code]


def test_large_literals_become_blobs_and_are_skipped() -> None:
    big = bytes(range(256)) * 100
    counted = struct.pack("<I", len(big)) + big
    data = b"\x80\x04" + b"B" + counted + b"X" + counted + b"."
    reader = OpcodeReader(BytesSource(data))
    reader.next()
    code, arg, offset = reader.next()
    assert code == op.BINBYTES and isinstance(arg, Blob)
    assert (arg.offset, arg.length, arg.kind, arg.text) == (offset + 5, len(big), BlobKind.RAW, False)
    assert arg.head == big[:64]
    code, arg, _ = reader.next()
    assert code == op.BINUNICODE and isinstance(arg, Blob) and arg.kind is BlobKind.UTF8 and arg.text
    assert reader.next()[0] == op.STOP


def test_small_literals_are_kept() -> None:
    text = "x" * INLINE_LIMIT
    data = pickle.dumps(text, protocol=4)
    args = [arg for _, arg, _ in read_all(data)]
    assert text in args


def test_long_lines_become_blobs() -> None:
    text = "y" * 200_000
    data = b"V" + text.encode() + b"\n."
    (code, arg, _), (stop, _, _) = read_all(data)
    assert code == op.UNICODE and isinstance(arg, Blob) and arg.length == len(text)
    assert arg.kind is BlobKind.ESCAPED and stop == op.STOP


@pytest.mark.parametrize(
    "line, value",
    [
        (b"I00\n", False),
        (b"I01\n", True),
        (b"I42\n", 42),
        (b"I0x1f\n", 31),
        (b"I017\n", 17),
        (b"I 5\n", 5),
        (b"I1_000\n", 1000),
        (b"L123L\n", 123),
        (b"F1.5\n", 1.5),
        (b"F1e999\n", float("inf")),
    ],
)
def test_text_numbers_as_permissive_as_cpython(line: bytes, value: object) -> None:
    code, arg, _ = OpcodeReader(BytesSource(line + b".")).next()
    assert arg == value and type(arg) is type(value)


@pytest.mark.parametrize(
    "data, truncated",
    [
        (b"\x07", False),  # unknown opcode
        (b"\x80\x06", False),  # protocol from the future
        (b"Ix\n", False),
        (b"S'abc\n", False),
        (b"S'a\\x\n", False),  # bad escape
        (b"T\xff\xff\xff\xff", False),  # negative BINSTRING length
        (b"\x8b\xff\xff\xff\xff", False),  # negative LONG4 length
        (b"X\x03\x00\x00\x00\xff\xfe\xfd", False),  # BINUNICODE not UTF-8
        (b"Pb\xc3\xa9\n", False),  # PERSID not ASCII
        (b"cmod\n\xf8\n", False),  # GLOBAL not UTF-8
        (b"J\x01\x02", True),
        (b"B\xff\xff\xff\x7f", True),  # claims 2 GiB that are not there
        (b"\x8e" + struct.pack("<Q", 2**62), True),
        (b"Vno newline", True),
        (b"", True),
    ],
)
def test_what_cpython_rejects_raises(data: bytes, truncated: bool) -> None:
    with pytest.raises(PickleError) as caught:
        OpcodeReader(BytesSource(data)).next()
    assert isinstance(caught.value, Truncated) is truncated
    assert caught.value.offset == 0


def test_frames_are_transparent_even_when_short() -> None:
    data = b"\x80\x04\x95" + struct.pack("<Q", 1000) + b"N."
    codes = [code for code, _, _ in read_all(data)]
    assert codes == [op.PROTO, op.FRAME, op.NONE, op.STOP]


def test_seek_and_skip_raw() -> None:
    data = b"N" + b"\xee" * 10 + b"N."
    reader = OpcodeReader(BytesSource(data))
    reader.next()
    reader.skip_raw(10)
    assert reader.next()[0] == op.NONE and reader.offset == 12
    reader.seek(11)
    assert reader.next() == (op.NONE, None, 11)
    with pytest.raises(Truncated):
        reader.skip_raw(5)


def test_window_boundaries() -> None:
    # Arguments straddling the decoding window are read whole.
    items = ["z" * 200] * 2000  # ~400 KB of SHORT_BINUNICODE and memo opcodes
    data = pickle.dumps(items, protocol=4)
    strings = [arg for code, arg, _ in read_all(data) if code == op.SHORT_BINUNICODE]
    assert strings == ["z" * 200]  # memoised after the first
    data = pickle.dumps([f"{i:0200d}" for i in range(3000)], protocol=4)
    strings = [arg for code, arg, _ in read_all(data) if code == op.SHORT_BINUNICODE]
    assert strings == [f"{i:0200d}" for i in range(3000)]
