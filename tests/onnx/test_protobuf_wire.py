"""The bounded protobuf wire reader: decoding, bounds, and hostile bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx_build import CountingSource

from modelsec.bytesource import BytesSource, LimitExceeded
from modelsec.protobuf_wire import (
    I32,
    I64,
    LEN,
    SGROUP,
    VARINT,
    BlockCache,
    Message,
    WireError,
    WireLimits,
    to_double,
    to_float,
    to_int32,
    to_int64,
    to_sint64,
)


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    return tag(number, LEN) + varint(len(payload)) + payload


def fields_of(data: bytes, **kw) -> list:
    return list(Message(BytesSource(data), **kw).fields())


def test_decodes_every_wire_type() -> None:
    data = (
        tag(1, VARINT)
        + varint(300)
        + tag(2, I64)
        + struct.pack("<d", 2.5)
        + ld(3, b"hello")
        + tag(4, I32)
        + struct.pack("<f", -1.5)
        + tag(5, VARINT)
        + varint(-7)
    )
    got = fields_of(data)
    assert [(f.number, f.wire_type) for f in got] == [(1, VARINT), (2, I64), (3, LEN), (4, I32), (5, VARINT)]
    assert got[0].value == 300
    assert to_double(got[1].value) == 2.5
    msg = Message(BytesSource(data))
    assert msg.read(got[2]) == b"hello" and msg.text(got[2]) == "hello"
    assert got[2].start == data.index(b"hello") and got[2].length == 5
    assert to_float(got[3].value) == -1.5
    assert to_int64(got[4].value) == -7 and to_int32(got[4].value) == -7


def test_zigzag() -> None:
    assert [to_sint64(x) for x in (0, 1, 2, 3, 4)] == [0, -1, 1, -2, 2]


def test_agrees_with_the_real_protobuf_library() -> None:
    onnx = pytest.importorskip("onnx")
    t = onnx.helper.make_tensor("w", onnx.TensorProto.FLOAT, [2, 3], [1, 2, 3, 4, 5, 6])
    t.int64_data.extend([-1, 5])
    data = t.SerializeToString()
    msg = Message(BytesSource(data))
    by_number = {}
    for f in msg.fields():
        by_number.setdefault(f.number, []).append(f)
    dims = [to_int64(v) for f in by_number[1] for v in msg.iter_packed(f, "varint")]
    assert dims == [2, 3]
    assert msg.text(by_number[8][0]) == "w"
    floats = [to_float(v) for f in by_number[4] for v in msg.iter_packed(f, "fixed32")]
    assert floats == [1, 2, 3, 4, 5, 6]
    ints = [to_int64(v) for f in by_number[7] for v in msg.iter_packed(f, "varint")]
    assert ints == [-1, 5]


def test_unpacked_repeated_scalars_are_yielded_too() -> None:
    data = tag(1, VARINT) + varint(4) + tag(1, VARINT) + varint(9)
    msg = Message(BytesSource(data))
    assert [v for f in msg.fields() for v in msg.iter_packed(f, "varint")] == [4, 9]
    # a wire type that does not match the schema is an unknown field: nothing
    assert list(msg.iter_packed(next(msg.fields()), "fixed32")) == []


def test_nested_messages_and_depth_limit() -> None:
    inner = ld(1, b"x")
    data = inner
    for _ in range(10):
        data = ld(1, data)
    msg = Message(BytesSource(data), limits=WireLimits(max_depth=5))
    with pytest.raises(LimitExceeded):
        m = msg
        while True:
            f = next(m.fields())
            m = m.child(f)
    # with enough depth the walk reaches the leaf
    m = Message(BytesSource(data))
    for _ in range(11):
        m = m.child(next(m.fields()))
    assert bytes(m.source.read_at(m.start, m.size)) == b"x"


def test_huge_claimed_length_does_not_allocate() -> None:
    data = tag(9, LEN) + varint(10 << 30) + b"abc"
    with pytest.raises(WireError, match="runs past the end"):
        fields_of(data)


def test_big_payload_is_skipped_not_read() -> None:
    payload = b"\0" * (8 << 20)
    data = tag(1, VARINT) + varint(7) + ld(9, payload) + ld(2, b"after")
    src = CountingSource(data)
    got = list(Message(src).fields())
    assert [f.number for f in got] == [1, 9, 2]
    assert got[1].length == len(payload)
    assert src.requested < 256 * 1024  # windows around the tags only


def test_read_refuses_over_the_bound() -> None:
    data = ld(1, b"x" * 100)
    msg = Message(BytesSource(data))
    f = next(msg.fields())
    with pytest.raises(LimitExceeded):
        msg.read(f, max_len=10)
    assert msg.read_prefix(f, 3) == b"xxx"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x08", "truncated varint"),
        (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
        (b"\x00\x01", "invalid field number 0"),
        (b"\x0e", "invalid wire type 6"),
        (b"\x0f", "invalid wire type 7"),
        (b"\x09\x01\x02", "truncated fixed64"),
        (b"\x0d\x01", "truncated fixed32"),
        (b"\x0c", "end-group for field 1 without a start-group"),
        (b"\x0b\x08\x01", "group 1 is not closed"),
        (b"\x0b\x14", "end-group 2 closes group 1"),
    ],
)
def test_malformed_bytes_raise_wire_error(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        fields_of(data)


def test_groups_are_located_and_can_be_opened() -> None:
    data = tag(3, SGROUP) + tag(1, VARINT) + varint(5) + tag(3, 4) + tag(4, VARINT) + varint(1)
    msg = Message(BytesSource(data))
    got = list(msg.fields())
    assert [(f.number, f.wire_type) for f in got] == [(3, SGROUP), (4, VARINT)]
    inner = list(msg.child(got[0]).fields())
    assert [(f.number, f.value) for f in inner] == [(1, 5)]


def test_deeply_nested_groups_hit_the_limit() -> None:
    data = tag(1, SGROUP) * 200 + tag(1, 4) * 200
    with pytest.raises(LimitExceeded):
        fields_of(data, limits=WireLimits(max_depth=50))


def test_packed_fixed_with_bad_length() -> None:
    data = ld(4, b"\0" * 5)
    msg = Message(BytesSource(data))
    with pytest.raises(WireError):
        list(msg.iter_packed(next(msg.fields()), "fixed32"))


def test_message_range_is_checked() -> None:
    with pytest.raises(WireError):
        Message(BytesSource(b"abc"), 0, 10)


def test_block_cache_reads_the_same_bytes() -> None:
    data = bytes(range(256)) * 1000
    cache = BlockCache(BytesSource(data), block=1000, blocks=3)
    for off, n in [(0, 10), (995, 10), (5000, 3000), (255_990, 100), (100, 50_000), (256_000, 5)]:
        assert cache.read_at(off, n) == data[off : off + n]
    assert cache.size == len(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_wire_errors(data: bytes) -> None:
    try:
        msg = Message(BytesSource(data), limits=WireLimits(max_depth=8))
        stack = [msg]
        seen = 0
        while stack and seen < 10_000:
            m = stack.pop()
            for f in m.fields():
                seen += 1
                if f.wire_type == LEN and m.depth < 8:
                    stack.append(m.child(f))
                    if f.length < 64:
                        list(m.iter_packed(f, "varint"))
    except (WireError, LimitExceeded):
        pass
