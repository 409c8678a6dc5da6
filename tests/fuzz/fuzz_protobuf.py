"""The protobuf wire reader (src/modelsec/protobuf_wire.py), walked without a schema: every
length-delimited field is tried as a nested message, a string and packed varints."""

from __future__ import annotations

from collections.abc import Iterator

from harness import Target, builder_seeds, import_test_helpers

from modelsec.bytesource import BytesSource, LimitExceeded
from modelsec.protobuf_wire import LEN, BlockCache, Message, WireError, WireLimits

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


def run(data: bytes) -> None:
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
