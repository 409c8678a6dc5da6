"""The ONNX detector's byte test (``protobuf_wire.breaks_at_a_tag``) answers only where both
walks it skips (``looks_like_onnx`` and ``parses_as_model_proto``) would say no: detection
must not change for the time it saves on every file (issue 14: many files)."""

from __future__ import annotations

import pickle
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_build import attention, cnn, mlp, tree_ensemble

from modelsec.bytesource import BytesSource
from modelsec.context import HEAD_SIZE
from modelsec.formats.onnx import RULED_OUT_WITHIN, SCANNER, parses_as_model_proto
from modelsec.onnx.detect import looks_like_onnx
from modelsec.protobuf_wire import MAX_FIELD_NUMBER, Message, WireError, breaks_at_a_tag


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def walks(data: bytes) -> bool:
    source = BytesSource(data)
    return looks_like_onnx(data[:HEAD_SIZE], source) or parses_as_model_proto(source)


def breaks_within(data: bytes, fields: int) -> bool:
    """What the byte test claims, asked of the walk itself: it raises at a tag after at
    most ``fields`` fields."""
    walked = 0
    try:
        for _ in Message(BytesSource(data)).fields():
            walked += 1
            if walked > fields:
                return False
    except WireError as exc:
        return walked <= fields and (
            "field number" in str(exc) or "wire type" in str(exc) or "end-group" in str(exc)
        )
    return False


def agrees(data: bytes) -> None:
    head = data[:HEAD_SIZE]
    for fields in (0, 1, 3, RULED_OUT_WITHIN):
        if breaks_at_a_tag(head, fields):
            assert breaks_within(data, fields), (data[:64], fields)
    full = walks(data)
    assert SCANNER.detect(head, BytesSource(data), "model") == full, data[:64]
    if breaks_at_a_tag(head, RULED_OUT_WITHIN):
        assert not full, data[:64]


def test_real_models_are_not_ruled_out() -> None:
    for factory in (mlp, cnn, tree_ensemble, attention):
        data = factory().SerializeToString()
        assert not breaks_at_a_tag(data, RULED_OUT_WITHIN)
        assert SCANNER.detect(data[:HEAD_SIZE], BytesSource(data), "model")


def test_pickles_are_ruled_out_at_their_frame() -> None:
    """PROTO 4 reads as field 64 (a varint); FRAME's length then ends in a zero tag."""
    for protocol in (4, 5):
        data = pickle.dumps({"layer.weight": list(range(300))}, protocol=protocol)
        assert breaks_at_a_tag(data, RULED_OUT_WITHIN)
        agrees(data)


def test_what_counts_as_a_broken_tag() -> None:
    assert breaks_at_a_tag(b"\x00", 1)  # field number 0
    assert breaks_at_a_tag(b"\x0c", 1)  # an end-group
    assert breaks_at_a_tag(b"\x0e", 1) and breaks_at_a_tag(b"\x0f", 1)  # wire types 6, 7
    assert breaks_at_a_tag(_varint((MAX_FIELD_NUMBER + 1) << 3) + b"\x00", 1)
    assert not breaks_at_a_tag(_varint(MAX_FIELD_NUMBER << 3) + b"\x01\x00", 0)  # stops counting
    assert breaks_at_a_tag(_varint(MAX_FIELD_NUMBER << 3) + b"\x01\x00", 1)
    assert not breaks_at_a_tag(b"\x0b\x00", 4)  # a start-group: left to the walk
    assert not breaks_at_a_tag(b"\x12\x40" + b"x" * 10, 4)  # a string past the head
    assert not breaks_at_a_tag(b"\x08" + b"\xff" * 10, 4)  # a varint longer than 10 bytes
    assert not breaks_at_a_tag(b"", 4) and not breaks_at_a_tag(b"\x08\x01", 4)


# Fields of every wire type (valid or not), so that walks reach the interesting tags.
_FIELD = st.one_of(
    st.builds(lambda n, v: _varint(n << 3) + _varint(v), st.integers(0, 40), st.integers(0, 2**70)),
    st.builds(lambda n, b: _varint(n << 3 | 2) + _varint(len(b)) + b, st.integers(0, 40), st.binary(max_size=20)),
    st.builds(lambda n, w, b: _varint(n << 3 | w) + b, st.integers(0, 40), st.sampled_from([1, 3, 4, 5, 6, 7]), st.binary(max_size=9)),
)  # fmt: skip


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=64), st.lists(_FIELD, max_size=24).map(b"".join)), st.binary(max_size=8))
def test_the_byte_test_never_rules_out_what_the_walks_detect(fields: bytes, tail: bytes) -> None:
    agrees(fields + tail)


def test_the_corpora_get_the_same_answer(corpora: Path) -> None:
    """Every file of the other tools' corpora, from its first bytes and from a few offsets
    on (skipped where the corpora are not beside the checkout)."""
    files = sorted(p for p in corpora.rglob("*") if p.is_file())
    assert len(files) > 100
    for path in files:
        data = path.read_bytes()[: 4 * HEAD_SIZE]
        for start in (0, 1, 2, 3, 8):
            agrees(data[start:])
