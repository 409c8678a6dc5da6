"""ONNX models: onnx/reader.py over the wire reader, then operators, external data and
the backdoor analysis, through the ONNX format scanner."""

from __future__ import annotations

from collections.abc import Iterator

from harness import Target, builder_seeds, import_test_helpers
from scanning import scan_as


def _seeds() -> Iterator[bytes]:
    import_test_helpers("onnx")
    import onnx_build

    yield from builder_seeds(
        lambda: onnx_build.mlp().SerializeToString(),
        lambda: onnx_build.cnn().SerializeToString(),
        lambda: onnx_build.attention().SerializeToString(),
        lambda: onnx_build.tree_ensemble().SerializeToString(),
    )


TARGET = Target(
    name="onnx",
    run=scan_as("model.onnx"),
    seeds=_seeds,
    max_len=32 << 10,
    tokens=(
        b"ai.onnx",
        b"ai.onnx.ml",
        b"com.microsoft",
        b"external",
        b"location",
        b"Where",
        b"Equal",
        b"If",
        b"Loop",
        b"Constant",
    ),
)
