"""Helpers to build ONNX models with ``onnx.helper`` and scan them with the real engine.

``onnx`` is used here (tests only) to *write* models; the scanner never imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

import onnx
from modelsec.bytesource import BytesSource
from modelsec.engine import Engine, FileResult
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh


class CountingSource:
    """A byte source that records how many bytes were asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requested = 0

    @property
    def size(self) -> int:
        return len(self.data)

    def read_at(self, offset: int, length: int) -> bytes:
        self.requested += length
        return self.data[offset : offset + length]


FLOAT = TP.FLOAT
INT64 = TP.INT64


def varint(n: int) -> bytes:
    """``n`` as a protobuf varint (hand-built messages in the tests)."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def T(name: str, value, dtype=np.float32) -> onnx.TensorProto:  # noqa: N802 - reads like a type
    return nh.from_array(np.asarray(value, dtype=dtype), name)


def vi(name: str, shape: Sequence | None = None, elem: int = FLOAT) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, elem, shape)


def node(op: str, inputs: list[str], outputs: list[str], name: str | None = None, **attrs) -> onnx.NodeProto:
    return h.make_node(op, inputs, outputs, name=name or outputs[0], **attrs)


def model(
    nodes: Iterable[onnx.NodeProto],
    inputs: Iterable[onnx.ValueInfoProto],
    outputs: Iterable[onnx.ValueInfoProto],
    initializers: Iterable[onnx.TensorProto] = (),
    *,
    opset: int = 17,
    opsets: dict[str, int] | None = None,
    functions: Iterable[onnx.FunctionProto] = (),
    name: str = "g",
) -> onnx.ModelProto:
    imports = [h.make_opsetid("", opset)]
    for domain, version in (opsets or {}).items():
        imports.append(h.make_opsetid(domain, version))
    graph = h.make_graph(list(nodes), name, list(inputs), list(outputs), list(initializers))
    m = h.make_model(graph, opset_imports=imports, functions=list(functions), producer_name="modelsec-tests")
    m.ir_version = 9
    return m


def scan_bytes(data: bytes, name: str = "model.onnx") -> FileResult:
    return Engine().scan_source(name, BytesSource(data))


def scan(m: onnx.ModelProto) -> FileResult:
    return scan_bytes(m.SerializeToString())


def scan_file(path: Path) -> FileResult:
    return Engine().scan_file(path)


def codes(result: FileResult) -> list[str]:
    return sorted(f.threat for f in result.findings)


def findings(result: FileResult, prefix: str) -> list:
    return [f for f in result.findings if f.threat.startswith(prefix)]


def assert_onnx_clean(result: FileResult) -> None:
    assert result.format == "onnx", result.formats
    assert result.findings == [], [f.to_dict() for f in result.findings]
    assert result.incompletes == [], result.incompletes


# -- realistic benign models ---------------------------------------------------------------


def mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    return model(
        [
            node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1),
            node("Relu", ["h1"], ["a1"]),
            node("Gemm", ["a1", "w2", "b2"], ["logits"], transB=1),
            node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        [vi("x", ["N", 8])],
        [vi("probs", ["N", 3])],
        [
            T("w1", rng.normal(size=(16, 8))),
            T("b1", np.zeros(16)),
            T("w2", rng.normal(size=(3, 16))),
            T("b2", np.zeros(3)),
        ],
    )


def cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    return model(
        [
            node("Conv", ["img", "cw", "cb"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["c1", "s", "bias", "mean", "var"], ["bn"]),
            node("Relu", ["bn"], ["r1"]),
            node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
            node("GlobalAveragePool", ["p1"], ["gap"]),
            node("Flatten", ["gap"], ["flat"]),
            node("Gemm", ["flat", "fw", "fb"], ["logits"], transB=1),
            node("Dropout", ["logits"], ["dropped"]),
            node("Softmax", ["dropped"], ["probs"]),
        ],
        [vi("img", ["N", 3, 8, 8])],
        [vi("probs", ["N", 10])],
        [
            T("cw", rng.normal(size=(4, 3, 3, 3))),
            T("cb", np.zeros(4)),
            T("s", np.ones(4)),
            T("bias", np.zeros(4)),
            T("mean", np.zeros(4)),
            T("var", np.ones(4)),
            T("fw", rng.normal(size=(10, 4))),
            T("fb", np.zeros(10)),
        ],
    )


def attention(mask_style: str = "where") -> onnx.ModelProto:
    """A single-head self-attention block with a padding mask input, the way exporters
    write it. ``mask_style``: ``where`` (Where(Equal(mask, 0), -inf, scores)), ``additive``
    (scores + Where(Equal(mask, 0), finfo.min, 0)), ``arith`` ((1 - mask) * -10000 + scores),
    ``sliced`` (the mask is sliced to the sequence length first: a selection, so the
    analysis has to rely on MatMul(probs, V) ending the effect)."""
    rng = np.random.default_rng(2)
    d = 8
    nodes = [
        node("MatMul", ["h", "wq"], ["q"]),
        node("MatMul", ["h", "wk"], ["k"]),
        node("MatMul", ["h", "wv"], ["v"]),
        node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        node("MatMul", ["q", "kt"], ["qk"]),
        node("Div", ["qk", "scale"], ["scores"]),
        node("Unsqueeze", ["mask", "axis1"], ["mask3"]),
    ]
    inits = [
        T("wq", rng.normal(size=(d, d))),
        T("wk", rng.normal(size=(d, d))),
        T("wv", rng.normal(size=(d, d))),
        T("wo", rng.normal(size=(d, d))),
        T("scale", np.sqrt(d)),
        T("axis1", [1], np.int64),
        T("zero", 0.0),
        T("ln_s", np.ones(d)),
        T("ln_b", np.zeros(d)),
    ]
    if mask_style == "where":
        nodes += [
            node("Equal", ["mask3", "zero"], ["is_pad"]),
            node("Where", ["is_pad", "ninf", "scores"], ["masked"]),
        ]
        inits.append(T("ninf", -np.inf))
    elif mask_style == "sliced":
        nodes += [
            node("Shape", ["h"], ["hshape"]),
            node("Gather", ["hshape", "one_i"], ["seq"], axis=0),
            node("Unsqueeze", ["seq", "axis0"], ["seq1"]),
            node("Slice", ["mask3", "start", "seq1", "axis2"], ["mask_s"]),
            node("Equal", ["mask_s", "zero"], ["is_pad"]),
            node("Where", ["is_pad", "ninf", "scores"], ["masked"]),
        ]
        inits += [
            T("ninf", -1e9),
            T("one_i", 1, np.int64),
            T("axis0", [0], np.int64),
            T("start", [0], np.int64),
            T("axis2", [2], np.int64),
        ]
    elif mask_style == "additive":
        nodes += [
            node("Equal", ["mask3", "zero"], ["is_pad"]),
            node("Where", ["is_pad", "fmin", "zero"], ["bias"]),
            node("Add", ["scores", "bias"], ["masked"]),
        ]
        inits.append(T("fmin", np.finfo(np.float32).min))
    elif mask_style == "arith":
        nodes += [
            node("Sub", ["one", "mask3"], ["inv"]),
            node("Mul", ["inv", "big_neg"], ["bias"]),
            node("Add", ["scores", "bias"], ["masked"]),
        ]
        inits += [T("one", 1.0), T("big_neg", -10000.0)]
    else:
        raise ValueError(mask_style)
    nodes += [
        node("Softmax", ["masked"], ["probs"], axis=-1),
        node("MatMul", ["probs", "v"], ["ctx"]),
        node("MatMul", ["ctx", "wo"], ["proj"]),
        node("Add", ["proj", "h"], ["res"]),
        node("LayerNormalization", ["res", "ln_s", "ln_b"], ["out"], axis=-1),
    ]
    return model(nodes, [vi("h", ["N", "S", d]), vi("mask", ["N", "S"])], [vi("out", ["N", "S", d])], inits)


def tree_ensemble() -> onnx.ModelProto:
    """An ai.onnx.ml TreeEnsembleClassifier: thresholds live in attributes."""
    n = h.make_node(
        "TreeEnsembleClassifier",
        ["x"],
        ["label", "scores"],
        name="trees",
        domain="ai.onnx.ml",
        class_ids=[0, 1, 0, 1],
        class_nodeids=[1, 1, 2, 2],
        class_treeids=[0, 0, 0, 0],
        class_weights=[1.0, 0.0, 0.0, 1.0],
        classlabels_int64s=[0, 1],
        nodes_falsenodeids=[2, 0, 0],
        nodes_featureids=[0, 0, 0],
        nodes_hitrates=[1.0, 1.0, 1.0],
        nodes_missing_value_tracks_true=[0, 0, 0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_nodeids=[0, 1, 2],
        nodes_treeids=[0, 0, 0],
        nodes_truenodeids=[1, 0, 0],
        nodes_values=[0.5, 0.0, 0.0],
        post_transform="NONE",
    )
    zipmap_free = model(
        [n],
        [vi("x", ["N", 2])],
        [vi("label", ["N"], INT64), vi("scores", ["N", 2])],
        opsets={"ai.onnx.ml": 3},
    )
    return zipmap_free


def save(tmp_path: Path, m: onnx.ModelProto, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(m.SerializeToString())
    return path
