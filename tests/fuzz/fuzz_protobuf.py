"""The protobuf wire reader (src/modelsec/protobuf_wire.py), walked without a schema: every
length-delimited field is tried as a nested message, a string and packed varints. Oracle:
the byte test that lets detectors skip a walk (``fields_before_a_break``) claims a break
only where the walk breaks, after exactly the fields it names, and the ONNX detector's
(``cannot_be_onnx``) rules out nothing that ONNX detection claims."""

from __future__ import annotations

from collections.abc import Iterator

from harness import OracleFailure, Target, builder_seeds, import_test_helpers

from modelsec.bytesource import BytesSource, LimitExceeded
from modelsec.formats.onnx import parses_as_model_proto
from modelsec.onnx.detect import RULED_OUT_WITHIN, cannot_be_onnx, looks_like_onnx
from modelsec.protobuf_wire import LEN, BlockCache, Message, WireError, WireLimits, fields_before_a_break

MAX_FIELDS = 20_000  # per input: the walk is the fuzzer's, not the reader's, to bound


def walk(message: Message, budget: list[int]) -> None:
    for field in message.fields():
        budget[0] -= 1
        if budget[0] <= 0:
            return
        if field.wire_type != LEN:
            continue
        message.read_prefix(field, 16)
        try:
            message.text(field, 1 << 16)
        except (WireError, UnicodeDecodeError):
            pass
        try:
            for _ in message.iter_packed(field, "varint"):
                budget[0] -= 1
                if budget[0] <= 0:
                    return
        except WireError:
            pass
        try:
            walk(message.child(field), budget)
        except WireError:
            pass


def _fields_walked(data: bytes, most: int) -> tuple[int, bool]:
    """How many top-level fields a walk yields (up to ``most + 1``) and whether it then
    raised WireError."""
    walked = 0
    try:
        for _ in Message(BytesSource(data), limits=WireLimits(max_depth=3)).fields():
            walked += 1
            if walked > most:
                return walked, False
    except WireError:
        return walked, True
    return walked, False


def check_byte_tests(data: bytes) -> None:
    for head, size in ((data, len(data)), (data[: len(data) // 2], None)):
        claimed = fields_before_a_break(head, RULED_OUT_WITHIN, size)
        if claimed is None:
            continue
        walked, broke = _fields_walked(data, RULED_OUT_WITHIN)
        if not broke or walked != len(claimed):
            raise OracleFailure(
                f"byte test claims a break after {len(claimed)} fields; the walk gave {walked}, broke={broke}"
            )
    if cannot_be_onnx(data, len(data)):
        source = BytesSource(data)
        if looks_like_onnx(data, source) or parses_as_model_proto(source):
            raise OracleFailure("the byte test ruled out a file that ONNX detection claims")


def run(data: bytes) -> None:
    check_byte_tests(data)
    limits = WireLimits(max_depth=32)
    walk(Message(BytesSource(data), limits=limits), [MAX_FIELDS])
    walk(Message(BlockCache(BytesSource(data), block=64, blocks=4), limits=limits), [MAX_FIELDS])


def _seeds() -> Iterator[bytes]:
    import_test_helpers("onnx", "keras_tf")
    import onnx_build
    from kt_builders import graph_def, meta_graph, node, saved_model

    yield from builder_seeds(
        lambda: onnx_build.mlp().SerializeToString(),
        lambda: onnx_build.tree_ensemble().SerializeToString(),
        lambda: saved_model(meta_graph(graph_def([node("a", "Const"), node("b", "ReadFile", ["a"])]))),
    )


TARGET = Target(
    name="protobuf",
    run=run,
    seeds=_seeds,
    max_len=16 << 10,
    expected=(WireError, LimitExceeded),
    tokens=(
        b"\x0a",
        b"\x12",
        b"\x08",
        b"\x80\x80\x80\x80\x10",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        b"\x0b",
        b"\x0c",
    ),
)
