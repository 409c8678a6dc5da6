"""TFLite: the FlatBuffers reader, the model tables and Flex ops (FlexBuffers options with
an embedded TensorFlow NodeDef), through the TFLite format scanner."""

from __future__ import annotations

from collections.abc import Iterator

from harness import Target, builder_seeds, import_test_helpers
from scanning import scan_as

from modelsec.tensorflow.flatbuffer import FlatBufferError, flex_root_strings

_scan = scan_as("model.tflite")
ADD, CONV_2D, CUSTOM = 0, 3, 32


def run(data: bytes) -> None:
    _scan(data)
    try:
        flex_root_strings(data)
    except FlatBufferError:
        pass


def _seeds() -> Iterator[bytes]:
    import_test_helpers("keras_tf")
    from kt_builders import attr_s, flex_options, node, tflite_model

    yield from builder_seeds(
        lambda: tflite_model([(ADD, None), (CONV_2D, None)], [(0, None), (1, None)], [(0, 0), (0, 0)]),
        lambda: tflite_model([(CUSTOM, "FlexAddV2")], [(0, flex_options("AddV2", node("a", "AddV2")))]),
        lambda: tflite_model(
            [(CUSTOM, "FlexPyFunc")],
            [(0, flex_options("PyFunc", node("p", "PyFunc", attrs=attr_s("token", "pyfunc_0"))))],
        ),
        lambda: flex_options("ReadFile", node("r", "ReadFile")),
    )


TARGET = Target(
    name="tflite",
    run=run,
    seeds=_seeds,
    max_len=16 << 10,
    tokens=(b"TFL3", b"Flex", b"FlexPyFunc", b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f"),
)
