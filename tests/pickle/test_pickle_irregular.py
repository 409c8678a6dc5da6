"""Streams CPython loads but no pickler writes: frames the C and Python unpicklers read
differently, values left behind at STOP, a second PROTO, unhashable keys, expansion bombs.
Built from bytes, never loaded."""

from __future__ import annotations

import pickle
import struct

import pytest
from pklbuild import (
    ADDITEMS,
    APPEND,
    DUP,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_SET,
    MARK,
    MEMOIZE,
    POP,
    REDUCE,
    SETITEM,
    STOP,
    TUPLE,
    TUPLE1,
    binbytes,
    binget,
    binint,
    codes,
    frame,
    global_,
    proto,
    sbu,
    scan,
    summary,
    with_code,
)

FRAMES, CRAFTED, EXPANSION, MALFORMED = "MS-PKL-111", "MS-PKL-112", "MS-PKL-113", "MS-PKL-110"


def framed(body: bytes, declared: int) -> bytes:
    return proto(5) + frame(declared) + body + STOP


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(framed(binbytes(b"A" * 20), 5), id="bytes argument straddles the frame end"),
        pytest.param(framed(binint(7), 2), id="int argument straddles the frame end"),
        pytest.param(framed(global_("os", "getcwd"), 7), id="GLOBAL line straddles the frame end"),
        pytest.param(proto(5) + frame(30) + b"N" + frame(2) + b"N" + STOP, id="frame inside a frame"),
        pytest.param(proto(5) + frame(100) + b"N" + STOP, id="frame longer than the data"),
    ],
)
def test_frame_disagreement_between_c_and_python_unpicklers(data: bytes) -> None:
    result = scan(data)
    assert FRAMES in codes(result), summary(result)


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize(
    "obj", [[1, 2, 3], b"x" * 100_000, [1, b"y" * 100_000, 2], list(range(100_000)), {"a": [1, (2, 3)]}]
)
def test_frames_as_the_pickler_writes_them_are_clean(obj: object, protocol: int) -> None:
    result = scan(pickle.dumps(obj, protocol=protocol))
    assert not result.findings, summary(result)


def test_values_left_on_the_stack_at_stop() -> None:
    # An injected call whose result is dropped leaves the stack uneven, or DUPs pile up.
    result = scan(proto(4) + EMPTY_LIST + DUP * 150 + STOP)
    assert codes(result) == {CRAFTED}, summary(result)
    assert "150 value(s)" in with_code(result, CRAFTED)[0].message


def test_unclosed_mark_at_stop() -> None:
    result = scan(proto(4) + MARK + EMPTY_LIST + STOP)
    assert CRAFTED in codes(result), summary(result)


def test_second_proto_in_the_middle() -> None:
    body = pickle.dumps([1, 2, 3, 4], protocol=2)[2:-1]
    result = scan(proto(4) + body + proto(1) + proto(2) + STOP)
    assert CRAFTED in codes(result), summary(result)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            proto(2) + EMPTY_DICT + MEMOIZE + binget(0) + sbu("v") + SETITEM + STOP, id="dict as its own key"
        ),
        pytest.param(
            proto(4) + EMPTY_SET + MEMOIZE + MARK + binget(0) + ADDITEMS + STOP, id="set inside itself"
        ),
        pytest.param(
            proto(4) + EMPTY_DICT + EMPTY_LIST + TUPLE1 + sbu("v") + SETITEM + STOP,
            id="tuple holding a list as key",
        ),
    ],
)
def test_unhashable_keys_break_the_stream(data: bytes) -> None:
    result = scan(data)
    assert MALFORMED in codes(result), summary(result)
    assert "unhashable" in with_code(result, MALFORMED)[0].message


def test_hashable_tuple_keys_are_fine() -> None:
    result = scan(pickle.dumps({(1, "a"): 2, frozenset({3}): 4}, protocol=4))
    assert not result.findings, summary(result)


@pytest.mark.parametrize("doublings", [60, 200])
def test_list_appended_to_itself_is_an_expansion_bomb(doublings: int) -> None:
    result = scan(proto(4) + EMPTY_LIST + MEMOIZE + (binget(0) + APPEND) * doublings + STOP)
    assert codes(result) == {EXPANSION}, summary(result)


def test_nested_tuples_sharing_one_list_expand() -> None:
    # t0 = [..]; t(k+1) = (tk, tk, tk, ...) 16 wide, 8 deep: 16**8 leaves from ~200 bytes.
    body = EMPTY_LIST + MEMOIZE
    for level in range(8):
        body += MARK + binget(level) * 16 + TUPLE + MEMOIZE
    result = scan(proto(4) + body + STOP)
    assert EXPANSION in codes(result), summary(result)


def test_large_flat_data_is_not_expansion() -> None:
    data = pickle.dumps([list(range(1000))] * 1000 + [{"k": list(range(100))}], protocol=4)
    result = scan(data)
    assert not result.findings, summary(result)


def test_self_reference_once_is_fine() -> None:
    # A cycle (a list that contains itself) is legal and common in object graphs.
    cyclic: list[object] = []
    cyclic.append(cyclic)
    result = scan(pickle.dumps(cyclic, protocol=2))
    assert not result.findings, summary(result)


def test_injected_eval_with_dropped_result_is_reported_twice_over() -> None:
    # eval("...") pushed and popped inside a real list pickle: the call is found, and so is
    # the uneven stack that gives the splice away.
    body = global_("builtins", "eval") + MARK + sbu("[5]") + TUPLE + REDUCE + POP
    data = proto(2) + body + pickle.dumps([1, 2], protocol=2)[2:-1] + b"1" + STOP
    result = scan(data)
    assert "MS-PKL-100" in codes(result), summary(result)


def test_raw_bytes_that_parse_are_not_reported() -> None:
    # Float data that happens to decode as a few opcodes is no pickle: nothing to report.
    data = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    result = scan(data, name="weights.raw")
    assert CRAFTED not in codes(result) and FRAMES not in codes(result), summary(result)


def test_a_stream_that_stops_inside_its_frame() -> None:
    """pickle._Unpickler reads a frame whole: after a STOP inside one, the file is at the
    frame's end, and the next load (joblib's outer stream after a nested object pickle,
    torch's legacy streams) starts there, not after the STOP (red team, 2026-12-07)."""
    body = sbu("x") + STOP
    data = proto(4) + frame(len(body) + 2) + body + b"N" + STOP
    assert FRAMES in codes(scan(data)), summary(scan(data))


def test_a_stream_whose_frame_ends_at_its_stop_is_regular() -> None:
    body = sbu("x") + STOP
    assert codes(scan(proto(4) + frame(len(body)) + body)) == set()


@pytest.mark.parametrize(("line", "value"), [(b"I5\x00junk\n", 5), (b"I\x00\n", 0), (b"L7\x00L\n", 7)])
def test_a_nul_ends_a_number_line_as_in_the_c_unpickler(line: bytes, value: int) -> None:
    """strtol and PyLong_FromString stop at a NUL, and C accepts it where the number ends;
    pickle._Unpickler refuses the line: the value C reads, and a hand-crafted finding."""
    from modelsec.bytesource import BytesSource
    from modelsec.pickle.opcodes import OpcodeReader

    reader = OpcodeReader(BytesSource(line + STOP))
    assert reader.next()[1] == value
    assert reader.disagreements
    assert CRAFTED in codes(scan(proto(2) + line + STOP))
