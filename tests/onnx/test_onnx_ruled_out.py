"""The ONNX detector's byte test (``onnx.detect.cannot_be_onnx``, from
``protobuf_wire.fields_before_a_break``) answers only where both walks it skips
(``looks_like_onnx`` and ``parses_as_model_proto``) would say no: detection must not change
for the time it saves on every file and every archive member (issue 14: many files)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_build import attention, cnn, mlp, tree_ensemble, varint

from modelsec.bytesource import BytesSource
from modelsec.context import HEAD_SIZE
from modelsec.formats.onnx import SCANNER, parses_as_model_proto
from modelsec.onnx.detect import RULED_OUT_WITHIN, cannot_be_onnx, looks_like_onnx
from modelsec.protobuf_wire import MAX_FIELD_NUMBER, Message, WireError, fields_before_a_break


def _len_field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def walks(data: bytes) -> bool:
    source = BytesSource(data)
    return looks_like_onnx(data[:HEAD_SIZE], source) or parses_as_model_proto(source)


def breaks_after(data: bytes, fields: int) -> bool:
    """What fields_before_a_break claims, asked of the walk itself: it yields exactly
    ``fields`` fields, then raises WireError."""
    walked = 0
    try:
        for _ in Message(BytesSource(data)).fields():
            walked += 1
            if walked > fields:
                return False
    except WireError:
        return walked == fields
    return False


def agrees(data: bytes) -> None:
    head = data[:HEAD_SIZE]
    for fields, size in (
        (0, None),
        (1, None),
        (3, None),
        (RULED_OUT_WITHIN, None),
        (RULED_OUT_WITHIN, len(data)),
    ):
        before = fields_before_a_break(head, fields, size)
        if before is not None:
            assert len(before) <= fields, (data[:64], fields)
            assert breaks_after(data, len(before)), (data[:64], fields, before)
    full = walks(data)
    assert SCANNER.detect(head, BytesSource(data), "model") == full, data[:64]
    if cannot_be_onnx(head, len(data)):
        assert not full, data[:64]


def test_real_models_are_not_ruled_out() -> None:
    for factory in (mlp, cnn, tree_ensemble, attention):
        data = factory().SerializeToString()
        assert not cannot_be_onnx(data, len(data))
        assert SCANNER.detect(data[:HEAD_SIZE], BytesSource(data), "model")


def test_a_model_cut_short_after_its_ir_version_is_still_onnx() -> None:
    """looks_like_onnx claims a model whose bytes break after a valid ir_version and graph
    (an interrupted download, reported as malformed): the byte test must leave it."""
    graph = _len_field(1, b"ab")  # a node
    data = b"\x08\x07" + _len_field(7, graph) + b"\x00\x00\x00"
    assert fields_before_a_break(data, RULED_OUT_WITHIN) == [(1, 0, 7), (7, 2, len(graph))]
    assert not cannot_be_onnx(data, len(data))
    assert SCANNER.detect(data, BytesSource(data), "model")
    agrees(data)
    assert cannot_be_onnx(b"\x08\x00" + data[2:], len(data))  # ir_version 0 is no ONNX


def test_pickles_and_tensor_bytes_are_ruled_out() -> None:
    """PROTO 4 reads as field 64 (a varint); FRAME's length then ends in a zero tag. The
    small members of a torch.save zip are whole within their head: a field running past
    their end breaks the walk."""
    for protocol in (4, 5):
        data = pickle.dumps({"layer.weight": list(range(300))}, protocol=protocol)
        assert cannot_be_onnx(data, len(data))
        agrees(data)
    for member in (b"3\n", b"little", np.random.default_rng(0).standard_normal(64, np.float32).tobytes()):
        assert cannot_be_onnx(member, len(member)), member[:8]
        agrees(member)


def test_what_counts_as_a_break() -> None:
    assert fields_before_a_break(b"\x00", 1) == []  # field number 0
    assert fields_before_a_break(b"\x0c", 1) == []  # an end-group outside a group
    assert fields_before_a_break(b"\x0e", 1) == [] and fields_before_a_break(b"\x0f", 1) == []  # wire 6, 7
    assert fields_before_a_break(varint((MAX_FIELD_NUMBER + 1) << 3) + b"\x00", 1) == []
    assert fields_before_a_break(varint(MAX_FIELD_NUMBER << 3) + b"\x01\x00", 0) is None  # stops counting
    assert fields_before_a_break(varint(MAX_FIELD_NUMBER << 3) + b"\x01\x00", 1) == [(MAX_FIELD_NUMBER, 0, 1)]
    assert fields_before_a_break(b"\x0b\x08\x01\x0c\x00", 4) == [(1, 3, 0)]  # a closed group, then 0
    assert fields_before_a_break(b"\x0b\x08\x01\x14\x00", 4) == []  # end-group 2 closes group 1
    assert fields_before_a_break(b"\x0b\x0b\x0b\x0c\x0c\x0c\x00", 4) is None  # nested past the depth read
    assert fields_before_a_break(b"\x0b\x08\x01", 4) is None  # a group running past the head
    assert fields_before_a_break(b"\x12\x40" + b"x" * 10, 4) is None  # a string past the head
    assert fields_before_a_break(b"\x08" + b"\xff" * 10, 4) == []  # a varint longer than 10 bytes
    assert fields_before_a_break(b"\x08" + b"\xff" * 9, 4) is None  # it may end in the next byte
    assert fields_before_a_break(b"", 4) is None and fields_before_a_break(b"\x08\x01", 4) is None
    # the head is the whole message: running past it breaks the walk, ending at a field does not
    assert fields_before_a_break(b"\x12\x40" + b"x" * 10, 4, size=12) == []
    assert fields_before_a_break(b"\x0b\x08\x01", 4, size=3) == []  # a group left open
    assert fields_before_a_break(b"\x08\x01\x08", 4, size=3) == [(1, 0, 1)]  # a truncated tag
    assert fields_before_a_break(b"\x08\x01\x0d\x00", 4, size=4) == [(1, 0, 1)]  # a truncated fixed32
    assert fields_before_a_break(b"\x08\x01", 4, size=2) is None  # the walk just ends
    assert fields_before_a_break(b"\x12\x40" + b"x" * 10, 4, size=13) is None  # a partial head


_NUMBERS = st.one_of(st.integers(0, 40), st.sampled_from([MAX_FIELD_NUMBER, MAX_FIELD_NUMBER + 1]))


def _fields(depth: int = 0) -> st.SearchStrategy[bytes]:
    """Fields of every wire type, valid or not, groups nested to three levels (one past
    what the byte test reads), so that walks reach the interesting tags."""
    scalar = st.one_of(
        st.builds(lambda n, v: varint(n << 3) + varint(v), _NUMBERS, st.integers(0, 2**70)),
        st.builds(lambda n, b: _len_field(n, b) if n else b"\x02\x00" + b, _NUMBERS, st.binary(max_size=20)),
        st.builds(lambda n, w, b: varint(n << 3 | w) + b, _NUMBERS, st.sampled_from([1, 4, 5, 6, 7]), st.binary(max_size=9)),
    )  # fmt: skip
    if depth >= 3:
        return scalar
    group = st.builds(
        lambda n, inner, close: varint(n << 3 | 3) + b"".join(inner) + varint(close << 3 | 4),
        st.integers(1, 20),
        st.lists(_fields(depth + 1), max_size=3),
        st.integers(1, 20),
    )
    return st.one_of(scalar, group)


# ONNX-shaped openings: an ir_version (valid or not) and a plausible graph, then anything.
_ONNX_PREFIX = st.builds(
    lambda ir, graph, nodes: varint(1 << 3) + varint(ir) + (_len_field(7, _len_field(1, b"n") * nodes) if graph else b""),
    st.integers(0, 70),
    st.booleans(),
    st.integers(1, 3),
)  # fmt: skip


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.just(b""), _ONNX_PREFIX),
    st.one_of(st.binary(max_size=64), st.lists(_fields(), max_size=12).map(b"".join)),
    st.binary(max_size=8),
)
def test_the_byte_test_never_rules_out_what_the_walks_detect(
    prefix: bytes, fields: bytes, tail: bytes
) -> None:
    agrees(prefix + fields + tail)


def test_the_corpora_get_the_same_answer(corpora: Path) -> None:
    """Every file of the other tools' corpora, from its first bytes and from a few offsets
    on (skipped where the corpora are not beside the checkout)."""
    files = sorted(p for p in corpora.rglob("*") if p.is_file())
    assert len(files) > 100
    for path in files:
        data = path.read_bytes()[: 4 * HEAD_SIZE]
        for start in (0, 1, 2, 3, 8):
            agrees(data[start:])
