"""Recognise an ONNX ``ModelProto`` by its structure (it has no magic number).

A plausible model has an ``ir_version`` in a sane range, a ``graph`` or ``opset_import``
field, only known fields with the wire types of ``onnx.proto`` (a few unknown ones are
tolerated for future versions), and short UTF-8 producer strings. That rejects random bytes
and the other protobufs a model directory holds: a TensorFlow ``saved_model.pb`` (field 1
schema version, field 2 a large MetaGraphDef, no field 7/8), a ``GraphDef`` (field 1 is a
message, not a varint), a bare ``TensorProto`` (field 2 is a varint), and TFLite
FlatBuffers (``TFL3`` at offset 4).
"""

from __future__ import annotations

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.protobuf_wire import (
    I32,
    I64,
    LEN,
    VARINT,
    Field,
    Message,
    WireError,
    WireLimits,
    fields_before_a_break,
)

MAX_IR_VERSION = 64  # onnx 1.23 writes 14; leave room for the future, not for noise
_EXPECTED = {
    1: VARINT,
    2: LEN,
    3: LEN,
    4: LEN,
    5: VARINT,
    6: LEN,
    7: LEN,
    8: LEN,
    14: LEN,
    20: LEN,
    25: LEN,
    26: LEN,
}
_STRINGS = (2, 3, 4)  # producer_name, producer_version, domain
_GRAPH_FIELDS = {1, 2, 5, 10, 11, 12, 13, 14, 15, 16}  # all LEN
_MAX_FIELDS = 64
_MAX_UNKNOWN = 4


def _plausible_string(msg: Message, f: Field) -> bool:
    if f.length > 4096:
        return False
    try:
        msg.read(f, 4096).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _plausible_graph(msg: Message, f: Field) -> bool:
    """The first few fields of the graph look like a GraphProto (all length-delimited)."""
    try:
        for i, g in enumerate(msg.child(f).fields()):
            if g.number not in _GRAPH_FIELDS or g.wire_type != LEN:
                return False
            if i >= 2:
                break
    except WireError:
        return False
    return True


def _plausible_opset(msg: Message, f: Field) -> bool:
    try:
        for g in msg.child(f).fields():
            if (g.number, g.wire_type) not in ((1, LEN), (2, VARINT)):
                return False
    except WireError:
        return False
    return True


# Fewer fields than either detector's walk reads before it stops (looks_like_onnx: 64).
RULED_OUT_WITHIN = 16


def cannot_be_onnx(head: bytes, size: int) -> bool:
    """True where both detectors (:func:`looks_like_onnx` and the onnx format's
    ``parses_as_model_proto``) certainly say no, judging by the head of a file of ``size``
    bytes: the top level breaks within its first fields (WireError: no model parse), and no
    ``ir_version`` came before the break (a model cut short after a valid ``ir_version``
    still counts as ONNX, to be reported as malformed)."""
    fields = fields_before_a_break(head, RULED_OUT_WITHIN, size)
    if fields is None:
        return False
    return not any(
        number == 1 and wire == VARINT and 1 <= value <= MAX_IR_VERSION for number, wire, value in fields
    )


def looks_like_onnx(head: bytes, source: ByteSource) -> bool:
    if len(head) < 2 or head[4:8] == b"TFL3":
        return False
    msg = Message(source, limits=WireLimits(max_depth=4))
    ir_ok = structure_ok = False
    unknown = 0
    pos = 0  # where the next field's tag starts
    try:
        for i, f in enumerate(msg.fields()):
            pos = f.end if f.wire_type == LEN else f.start + _scalar_size(f.wire_type, f.value)
            if i >= _MAX_FIELDS:
                break
            expected = _EXPECTED.get(f.number)
            if expected is None:
                unknown += 1
                if unknown > _MAX_UNKNOWN or f.wire_type not in (VARINT, LEN, I32, I64):
                    return False
                continue
            if f.wire_type != expected:
                return False
            if f.number == 1:
                ir_ok = 1 <= f.value <= MAX_IR_VERSION
                if not ir_ok:
                    return False
            elif f.number in _STRINGS and not _plausible_string(msg, f):
                return False
            elif f.number == 7:
                if not _plausible_graph(msg, f):
                    return False
                structure_ok = True
            elif f.number == 8:
                if not _plausible_opset(msg, f):
                    return False
                structure_ok = True
    except (WireError, LimitExceeded):
        # A model cut short (an interrupted download) is still an ONNX model if what came
        # before was: the scanner then reports it as malformed instead of letting it pass
        # as an unknown file. The usual cut is inside the graph, the field that fails.
        if ir_ok and not structure_ok:
            structure_ok = _tag_at(source, pos) == (7 << 3 | LEN)
        return ir_ok and structure_ok
    return ir_ok and structure_ok


def _scalar_size(wire: int, value: int) -> int:
    if wire == I64:
        return 8
    if wire == I32:
        return 4
    return max(1, (value.bit_length() + 6) // 7)


def _tag_at(source: ByteSource, pos: int) -> int | None:
    data = source.read_at(pos, 5)
    tag = shift = 0
    for b in data:
        tag |= (b & 0x7F) << shift
        if not b & 0x80:
            return tag
        shift += 7
    return None
