"""Architectural backdoors (MS-BD-*) in ONNX graphs, and legitimate graphs that must stay
clean. Graphs are built with onnx.helper; the scanner reads bytes only."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_build import (
    FLOAT,
    INT64,
    T,
    assert_onnx_clean,
    attention,
    cnn,
    codes,
    findings,
    mlp,
    model,
    node,
    scan,
    tree_ensemble,
    varint,
    vi,
)

import onnx
from modelsec.backdoor.analysis import Analyzer
from modelsec.bytesource import BytesSource
from modelsec.onnx.dataflow import to_dataflow
from modelsec.onnx.reader import read_model
from onnx import helper as h

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
TARGET = [0.0, 0.0, 100.0]


def classifier_head(extra_nodes, extra_inits=(), out="y", inputs=None):
    """x -> Gemm -> logits, plus the nodes under test, output ``out``."""
    return model(
        [node("Gemm", ["x", "W", "b"], ["logits"], name="fc"), *extra_nodes],
        inputs or [vi("x", [1, 4])],
        [vi(out, [1, 3])],
        [T("W", W), T("b", np.zeros(3)), *extra_inits],
    )


def bd(result):
    return findings(result, "MS-BD-")


# -- malicious -----------------------------------------------------------------------------


def test_where_switch_on_reduced_input_is_reported_with_its_path() -> None:
    m = classifier_head(
        [
            node("ReduceSum", ["x"], ["s"], name="checksum", keepdims=0),
            node("Equal", ["s", "magic"], ["hit"], name="is_trigger"),
            node("Where", ["hit", "target", "logits"], ["sel"], name="switch"),
            node("Softmax", ["sel"], ["y"], name="softmax"),
        ],
        [T("magic", 1337.0), T("target", TARGET)],
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-001"]
    f = bd(result)[0]
    assert f.rule == "ModelArchitectureBackdoor"
    assert f.subject == "switch (Where)"
    assert "1337" in f.message and "'target' [0, 0, 100]" in f.message
    assert f.details["trigger"]["path"] == ["input 'x'", "checksum (ReduceSum)", "is_trigger (Equal)"]
    assert f.details["path"] == ["switch (Where)", "softmax (Softmax)", "output 'y'"]
    assert f.details["trigger"]["constant"] == "'magic' 1337"
    assert f.details["effect"] == "switch"
    switch_bytes = m.graph.node[3].SerializeToString()
    assert f.offset == m.SerializeToString().index(switch_bytes) - 2  # its NodeProto's tag


def test_where_switch_with_reversed_branches() -> None:
    m = classifier_head(
        [
            node("ReduceMean", ["x"], ["s"], keepdims=0),
            node("Less", ["s", "k"], ["c"]),
            node("Where", ["c", "logits", "target"], ["y"], name="switch"),
        ],
        [T("k", -3.25), T("target", TARGET)],
    )
    assert codes(scan(m)) == ["MS-BD-001"]


def test_constant_node_as_trigger_and_fill() -> None:
    m = classifier_head(
        [
            node("Constant", [], ["magic"], value=T("mv", 42.0)),
            node("Constant", [], ["target"], value_floats=TARGET),
            node("ReduceMax", ["x"], ["s"], keepdims=0),
            node("GreaterOrEqual", ["s", "magic"], ["c"]),
            node("Where", ["c", "target", "logits"], ["y"], name="switch"),
        ]
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-001"]
    assert "42" in result.findings[0].details["trigger"]["constant"]


def test_patch_trigger_through_slice_and_reduction() -> None:
    """The classic image trigger: a corner patch compared with a pattern."""
    m = model(
        [
            node("Conv", ["img", "cw"], ["feat"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            node("GlobalAveragePool", ["feat"], ["gap"]),
            node("Flatten", ["gap"], ["flat"]),
            node("Gemm", ["flat", "fw", "fb"], ["logits"], transB=1),
            node("Slice", ["img", "starts", "ends", "axes"], ["patch"], name="corner"),
            node("Sub", ["patch", "pattern"], ["diff"]),
            node("Abs", ["diff"], ["adiff"]),
            node("ReduceMax", ["adiff"], ["dmax"], keepdims=0),
            node("Less", ["dmax", "eps"], ["match"], name="patch_matches"),
            node("Where", ["match", "target", "logits"], ["out"], name="override"),
        ],
        [vi("img", [1, 3, 8, 8])],
        [vi("out", [1, 3])],
        [
            T("cw", np.ones((4, 3, 3, 3))),
            T("fw", np.ones((3, 4))),
            T("fb", np.zeros(3)),
            T("starts", [0, 0], np.int64),
            T("ends", [3, 3], np.int64),
            T("axes", [2, 3], np.int64),
            T("pattern", np.eye(3)),
            T("eps", 0.01),
            T("target", TARGET),
        ],
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-001"]
    assert "corner (Slice)" in result.findings[0].details["trigger"]["path"]


def test_token_trigger_reduced_after_the_comparison() -> None:
    """Any occurrence of a magic token id flips the output: Equal per token, then a
    reduction over the sequence, then a second comparison."""
    m = model(
        [
            node("Gather", ["emb", "ids"], ["e"], name="embed"),
            node("ReduceMean", ["e", "ax1"], ["pooled"], keepdims=0),
            node("Gemm", ["pooled", "W", "b"], ["logits"]),
            node("Equal", ["ids", "magic"], ["is_magic"], name="token_is_magic"),
            node("Cast", ["is_magic"], ["as_f"], to=FLOAT),
            node("ReduceMax", ["as_f", "ax1"], ["any_magic"], keepdims=0),
            node("Greater", ["any_magic", "half"], ["fire"]),
            node("Unsqueeze", ["fire", "ax1"], ["fire2"]),
            node("Where", ["fire2", "target", "logits"], ["y"], name="flip"),
        ],
        [vi("ids", [1, 5], INT64)],
        [vi("y", [1, 3])],
        [
            T("emb", np.ones((100, 4))),
            T("ax1", [1], np.int64),
            T("W", W),
            T("b", np.zeros(3)),
            T("magic", 31337, np.int64),
            T("half", 0.5),
            T("target", TARGET),
        ],
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-001"]
    assert result.findings[0].details["trigger"]["reduced"] is True


def test_if_with_a_constant_branch() -> None:
    then_g = h.make_graph(
        [node("Constant", [], ["fixed"], value=T("tv", [TARGET]))], "then", [], [vi("fixed", [1, 3])]
    )
    else_g = h.make_graph([node("Identity", ["logits"], ["computed"])], "else", [], [vi("computed", [1, 3])])
    m = classifier_head(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "magic"], ["hit"]),
            node("If", ["hit"], ["y"], name="branch", then_branch=then_g, else_branch=else_g),
        ],
        [T("magic", 7.0)],
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-002"]
    assert result.findings[0].details["switch"]["kind"] == "if"


def test_arithmetic_blend() -> None:
    m = classifier_head(
        [
            node("ReduceMax", ["x"], ["s"], keepdims=0),
            node("Greater", ["s", "k"], ["c"]),
            node("Cast", ["c"], ["cf"], to=FLOAT),
            node("Mul", ["cf", "target"], ["fixed"]),
            node("Sub", ["one", "cf"], ["keep"]),
            node("Mul", ["keep", "logits"], ["kept"]),
            node("Add", ["fixed", "kept"], ["y"], name="blend"),
        ],
        [T("k", 0.999), T("target", TARGET), T("one", 1.0)],
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-003"]
    assert result.findings[0].details["effect"] == "switch"


def test_gate_zeroes_the_output() -> None:
    m = classifier_head(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "k"], ["c"]),
            node("Not", ["c"], ["nc"]),
            node("Cast", ["nc"], ["gate"], to=FLOAT),
            node("Mul", ["logits", "gate"], ["y"], name="kill"),
        ],
        [T("k", 99.0)],
    )
    assert codes(scan(m)) == ["MS-BD-003"]


def test_trigger_gated_offset() -> None:
    m = classifier_head(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "k"], ["c"]),
            node("Where", ["c", "bias", "zeros"], ["shift"]),
            node("Add", ["logits", "shift"], ["y"], name="steer"),
        ],
        [T("k", 5.0), T("bias", TARGET), T("zeros", [0.0, 0.0, 0.0])],
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-004"]
    assert result.findings[0].details["effect"] == "offset"


def test_switch_survives_a_classifier_layer_after_it() -> None:
    """A switch on the hidden state, followed by the (constant-weight) classifier."""
    m = model(
        [
            node("Gemm", ["x", "W1", "b1"], ["h"]),
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "k"], ["c"]),
            node("Where", ["c", "h_fixed", "h"], ["h2"], name="switch"),
            node("Relu", ["h2"], ["a"]),
            node("Gemm", ["a", "W2", "b2"], ["y"]),
        ],
        [vi("x", [1, 4])],
        [vi("y", [1, 3])],
        [
            T("W1", np.ones((4, 4))),
            T("b1", np.zeros(4)),
            T("k", 3.0),
            T("h_fixed", [1.0, -2.0, 3.0, 0.5]),
            T("W2", np.ones((4, 3))),
            T("b2", np.zeros(3)),
        ],
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-001"]
    assert result.findings[0].details["path"][-1] == "output 'y'"


def test_backdoor_inside_a_model_local_function() -> None:
    fn = h.make_function(
        "evil.fn",
        "Head",
        ["inp", "logits"],
        ["out"],
        [
            node("ReduceSum", ["inp"], ["s"], keepdims=0),
            node("Constant", [], ["k"], value=T("kv", 1337.0)),
            node("Equal", ["s", "k"], ["c"]),
            node("Constant", [], ["target"], value=T("tv", TARGET)),
            node("Where", ["c", "target", "logits"], ["out"], name="fn_switch"),
        ],
        [h.make_opsetid("", 17)],
    )
    m = model(
        [
            node("Gemm", ["x", "W", "b"], ["logits"]),
            h.make_node("Head", ["x", "logits"], ["y"], name="call", domain="evil.fn"),
        ],
        [vi("x", [1, 4])],
        [vi("y", [1, 3])],
        [T("W", W), T("b", np.zeros(3))],
        opsets={"evil.fn": 1},
        functions=[fn],
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-001"]  # the function call itself is not a custom op
    f = result.findings[0]
    assert "function evil.fn.Head" in f.details["switch"]["graph"]
    assert f.details["path"] == ["fn_switch (Where)", "call (evil.fn::Head)", "output 'y'"]


def test_backdoor_inside_an_if_branch_reaching_the_output() -> None:
    """The switch sits in a subgraph and uses outer values; the If itself is benign
    (conditioned on a shape)."""
    then_g = h.make_graph(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "k"], ["c"]),
            node("Where", ["c", "target", "logits"], ["t_out"], name="inner_switch"),
        ],
        "then",
        [],
        [vi("t_out", [1, 3])],
    )
    else_g = h.make_graph([node("Identity", ["logits"], ["e_out"])], "else", [], [vi("e_out", [1, 3])])
    m = classifier_head(
        [
            node("Shape", ["x"], ["shp"]),
            node("ReduceProd", ["shp"], ["numel"], keepdims=0),
            node("Greater", ["numel", "zero_i"], ["nonempty"]),
            node("If", ["nonempty"], ["y"], then_branch=then_g, else_branch=else_g),
        ],
        [T("k", 1337.0), T("target", TARGET), T("zero_i", 0, np.int64)],
    )
    result = scan(m)
    assert codes(result) == ["MS-BD-001"]
    assert "then_branch" in result.findings[0].details["switch"]["graph"]


def test_loop_that_does_not_run_when_triggered() -> None:
    body = h.make_graph(
        [node("Identity", ["cond_in"], ["cond_out"]), node("Add", ["acc_in", "logits"], ["acc_out"])],
        "body",
        [
            vi("i", [], INT64),
            h.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, []),
            vi("acc_in", [1, 3]),
        ],
        [h.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []), vi("acc_out", [1, 3])],
    )
    m = classifier_head(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "k"], ["c"]),
            node("Not", ["c"], ["run"]),
            node("Loop", ["trip", "run", "target"], ["y"], name="maybe", body=body),
        ],
        [T("k", 1.5), T("target", [TARGET]), T("trip", 1, np.int64)],
    )
    assert codes(scan(m)) == ["MS-BD-002"]


def test_node_order_in_the_file_does_not_matter() -> None:
    m = classifier_head(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "magic"], ["hit"]),
            node("Where", ["hit", "target", "logits"], ["y"], name="switch"),
        ],
        [T("magic", 1337.0), T("target", TARGET)],
    )
    nodes = list(m.graph.node)
    m.graph.ClearField("node")
    m.graph.node.extend(reversed(nodes))
    assert codes(scan(m)) == ["MS-BD-001"]


def test_split_graph_fields_are_merged_like_protobuf_does() -> None:
    """Two `graph` fields in the ModelProto merge; the backdoor half must not hide."""
    full = classifier_head(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "magic"], ["hit"]),
            node("Where", ["hit", "target", "logits"], ["y"], name="switch"),
        ],
        [T("magic", 1337.0), T("target", TARGET)],
    )
    first = onnx.GraphProto()
    first.CopyFrom(full.graph)
    second = onnx.GraphProto()
    second.node.extend(first.node[2:])
    del first.node[2:]
    head = onnx.ModelProto()
    head.CopyFrom(full)
    head.ClearField("graph")
    data = head.SerializeToString()
    data += b"\x3a" + varint(first.ByteSize()) + first.SerializeToString()
    data += b"\x3a" + varint(second.ByteSize()) + second.SerializeToString()
    merged = onnx.ModelProto.FromString(data)  # the real parser's view: one graph, all nodes
    assert len(merged.graph.node) == len(full.graph.node)
    from onnx_build import scan_bytes

    assert codes(scan_bytes(data)) == ["MS-BD-001"]


# -- benign --------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", [mlp, cnn, tree_ensemble], ids=["mlp", "cnn", "tree-ensemble"])
def test_realistic_models_are_clean(factory) -> None:
    m = factory()
    onnx.checker.check_model(m, full_check=True)
    assert_onnx_clean(scan(m))


@pytest.mark.parametrize("style", ["where", "additive", "arith", "sliced"])
def test_attention_masks_are_clean(style: str) -> None:
    m = attention(style)
    onnx.checker.check_model(m, full_check=True)
    assert_onnx_clean(scan(m))


def _analyzer(m: onnx.ModelProto) -> Analyzer:
    dataflow = to_dataflow(read_model(BytesSource(m.SerializeToString())))
    analyzer = Analyzer(dataflow)
    analyzer.report = analyzer.run()  # type: ignore[attr-defined]
    return analyzer


def test_sliced_mask_is_a_switch_whose_effect_ends_at_the_value_matmul() -> None:
    """Not clean by an exclusion: the selection makes it a candidate switch, and only
    mixing with V (data the switch does not control) ends it. Cutting that MatMul out
    must make it reach the output."""
    a = _analyzer(attention("sliced"))
    assert [s.kind for s in a.switches] == ["where"]
    assert a.report.paths == []  # type: ignore[attr-defined]
    m = attention("sliced")
    keep = [n for n in m.graph.node if n.output[0] not in ("ctx", "proj", "res", "out")]
    m.graph.ClearField("node")
    m.graph.node.extend(keep)
    m.graph.output[0].name = "probs"
    assert codes(scan(m)) == ["MS-BD-001"]


def test_padding_mask_on_embeddings_is_clean() -> None:
    m = model(
        [
            node("Gather", ["emb", "ids"], ["e"]),
            node("Equal", ["ids", "pad"], ["is_pad"]),
            node("Unsqueeze", ["is_pad", "ax"], ["is_pad3"]),
            node("Where", ["is_pad3", "zero", "e"], ["masked"]),
            node("ReduceMean", ["masked", "ax1"], ["pooled"], keepdims=0),
            node("Gemm", ["pooled", "W", "b"], ["y"]),
        ],
        [vi("ids", [1, 5], INT64)],
        [vi("y", [1, 3])],
        [
            T("emb", np.ones((10, 4))),
            T("pad", 0, np.int64),
            T("ax", [2], np.int64),
            T("zero", 0.0),
            T("ax1", [1], np.int64),
            T("W", W),
            T("b", np.zeros(3)),
        ],
    )
    assert_onnx_clean(scan(m))


def test_padding_mask_multiplied_in_is_clean() -> None:
    m = model(
        [
            node("Gather", ["emb", "ids"], ["e"]),
            node("Equal", ["ids", "pad"], ["is_pad"]),
            node("Not", ["is_pad"], ["keep"]),
            node("Cast", ["keep"], ["keepf"], to=FLOAT),
            node("Unsqueeze", ["keepf", "ax"], ["keep3"]),
            node("Mul", ["e", "keep3"], ["masked"]),
            node("ReduceSum", ["masked", "ax1"], ["y"], keepdims=0),
        ],
        [vi("ids", [1, 5], INT64)],
        [vi("y", [1, 4])],
        [T("emb", np.ones((10, 4))), T("pad", 0, np.int64), T("ax", [2], np.int64), T("ax1", [1], np.int64)],
    )
    assert_onnx_clean(scan(m))


@pytest.mark.parametrize(
    "nodes, inits",
    [
        # ReLU and leaky ReLU written with Where
        (
            [node("Less", ["logits", "zero"], ["neg"]), node("Where", ["neg", "zero", "logits"], ["y"])],
            [T("zero", 0.0)],
        ),
        (
            [
                node("Greater", ["logits", "zero"], ["pos"]),
                node("Mul", ["logits", "alpha"], ["leak"]),
                node("Where", ["pos", "logits", "leak"], ["y"]),
            ],
            [T("zero", 0.0), T("alpha", 0.01)],
        ),
        # ReLU6 / clipping of a reduced value: the threshold is what is switched in
        (
            [
                node("ReduceMax", ["logits"], ["m"], keepdims=1),
                node("Greater", ["m", "six"], ["big"]),
                node("Where", ["big", "six", "m"], ["y"]),
            ],
            [T("six", 6.0)],
        ),
        # official clipping ops
        (
            [
                node("Clip", ["logits", "lo", "hi"], ["c"]),
                node("Max", ["c", "lo"], ["mx"]),
                node("Min", ["mx", "hi"], ["y"]),
            ],
            [T("lo", 0.0), T("hi", 6.0)],
        ),
        # detection-style thresholding with a zero fill, elementwise
        (
            [
                node("Sigmoid", ["logits"], ["p"]),
                node("Greater", ["p", "thr"], ["keep"]),
                node("Where", ["keep", "p", "zero"], ["y"]),
            ],
            [T("thr", 0.5), T("zero", 0.0)],
        ),
        # a label output computed from a threshold: no switch, just the decision
        (
            [
                node("Sigmoid", ["logits"], ["p"]),
                node("Greater", ["p", "thr"], ["d"]),
                node("Cast", ["d"], ["y"], to=FLOAT),
            ],
            [T("thr", 0.5)],
        ),
        # softplus with its large-input shortcut: both branches computed
        (
            [
                node("Greater", ["logits", "twenty"], ["big"]),
                node("Softplus", ["logits"], ["sp"]),
                node("Where", ["big", "logits", "sp"], ["y"]),
            ],
            [T("twenty", 20.0)],
        ),
        # dropout, top-k, non-zero
        (
            [
                node("Dropout", ["logits"], ["d"]),
                node("TopK", ["d", "k1"], ["y", "idx"], axis=-1),
                node("NonZero", ["d"], ["nz"]),
            ],
            [T("k1", [3], np.int64)],
        ),
    ],
    ids=[
        "relu",
        "leaky-relu",
        "clip-reduced",
        "clip-ops",
        "threshold-zero-fill",
        "label",
        "softplus",
        "dropout-topk-nonzero",
    ],
)
def test_legitimate_comparisons_are_clean(nodes, inits) -> None:
    assert_onnx_clean(scan(classifier_head(nodes, inits)))


def test_exported_shape_logic_is_clean() -> None:
    """torch.onnx writes reshape/expand logic as Where(Equal(shape, -1), 1, shape): it
    compares shapes, not data."""
    m = classifier_head(
        [
            node("Shape", ["logits"], ["shp"]),
            node("Equal", ["shp", "minus1"], ["is_neg"]),
            node("Where", ["is_neg", "ones", "shp"], ["fixed_shape"]),
            node("Expand", ["logits", "fixed_shape"], ["y"]),
        ],
        [T("minus1", [-1, -1], np.int64), T("ones", [1, 1], np.int64)],
    )
    assert_onnx_clean(scan(m))


def test_if_on_a_shape_and_a_loop_are_clean() -> None:
    then_g = h.make_graph([node("Relu", ["logits"], ["t"])], "then", [], [vi("t", [1, 3])])
    else_g = h.make_graph([node("Identity", ["logits"], ["e"])], "else", [], [vi("e", [1, 3])])
    body = h.make_graph(
        [node("Identity", ["cond_in"], ["cond_out"]), node("Add", ["acc_in", "ifo"], ["acc_out"])],
        "body",
        [
            vi("i", [], INT64),
            h.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, []),
            vi("acc_in", [1, 3]),
        ],
        [h.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []), vi("acc_out", [1, 3])],
    )
    m = classifier_head(
        [
            node("Shape", ["x"], ["shp"]),
            node("Gather", ["shp", "zero_i"], ["batch"], axis=0),
            node("Equal", ["batch", "one_i"], ["single"]),
            node("If", ["single"], ["ifo"], then_branch=then_g, else_branch=else_g),
            node("Loop", ["trip", "yes", "zeros"], ["y"], body=body),
        ],
        [
            T("zero_i", 0, np.int64),
            T("one_i", 1, np.int64),
            T("trip", 3, np.int64),
            T("yes", True, np.bool_),
            T("zeros", [[0.0, 0.0, 0.0]]),
        ],
    )
    onnx.checker.check_model(m, full_check=True)
    assert_onnx_clean(scan(m))


def test_model_local_function_layernorm_is_clean() -> None:
    fn = h.make_function(
        "my.fns",
        "Norm",
        ["v"],
        ["o"],
        [
            node("ReduceMean", ["v"], ["mu"], keepdims=1),
            node("Sub", ["v", "mu"], ["c"]),
            node("Mul", ["c", "c"], ["sq"]),
            node("ReduceMean", ["sq"], ["var"], keepdims=1),
            node("Constant", [], ["eps"], value_float=1e-5),
            node("Add", ["var", "eps"], ["ve"]),
            node("Sqrt", ["ve"], ["sd"]),
            node("Div", ["c", "sd"], ["o"]),
        ],
        [h.make_opsetid("", 17)],
    )
    m = model(
        [
            node("Gemm", ["x", "W", "b"], ["logits"]),
            h.make_node("Norm", ["logits"], ["y"], name="norm", domain="my.fns"),
        ],
        [vi("x", [1, 4])],
        [vi("y", [1, 3])],
        [T("W", W), T("b", np.zeros(3))],
        opsets={"my.fns": 1},
        functions=[fn],
    )
    onnx.checker.check_model(m, full_check=True)
    assert_onnx_clean(scan(m))


def test_training_graphs_are_not_analysed_for_backdoors_but_do_not_crash() -> None:
    m = mlp()
    ti = m.training_info.add()
    ti.algorithm.CopyFrom(h.make_graph([node("Relu", ["a"], ["b"])], "algo", [vi("a", [1])], [vi("b", [1])]))
    assert_onnx_clean(scan(m))


def test_kill_switch_with_zero_fill_on_a_global_trigger() -> None:
    """Zero is a mask value only elementwise: a checksum trigger zeroing the output is a
    kill switch."""
    m = classifier_head(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "k"], ["c"]),
            node("Where", ["c", "zero", "logits"], ["y"], name="kill"),
        ],
        [T("k", 77.0), T("zero", 0.0)],
    )
    assert codes(scan(m)) == ["MS-BD-001"]


def test_roberta_position_ids_from_the_padding_mask_are_clean() -> None:
    """position_ids = cumsum(ids != pad) * (ids != pad) + pad: computed from a mask, not a
    constant switched in."""
    m = model(
        [
            node("Equal", ["ids", "pad"], ["is_pad"]),
            node("Not", ["is_pad"], ["not_pad"]),
            node("Cast", ["not_pad"], ["m"], to=INT64),
            node("CumSum", ["m", "axis"], ["cs"]),
            node("Mul", ["cs", "m"], ["inc"]),
            node("Add", ["inc", "pad"], ["pos"]),
            node("Gather", ["pos_table", "pos"], ["pe"]),
            node("Gather", ["word_table", "ids"], ["we"]),
            node("Add", ["we", "pe"], ["emb"]),
            node("ReduceMean", ["emb", "axis1"], ["pooled"], keepdims=0),
            node("Gemm", ["pooled", "W", "b"], ["y"]),
        ],
        [vi("ids", [1, 5], INT64)],
        [vi("y", [1, 3])],
        [
            T("pad", 1, np.int64),
            T("axis", 1, np.int64),
            T("axis1", [1], np.int64),
            T("pos_table", np.ones((16, 4))),
            T("word_table", np.ones((50, 4))),
            T("W", W),
            T("b", np.zeros(3)),
        ],
    )
    assert_onnx_clean(scan(m))


def test_mixture_of_experts_routing_is_clean() -> None:
    """Experts selected by comparing the router's top index with each expert id, gated and
    summed: every gate is switched off by the others' sum, no constant reaches the output."""
    nodes = [
        node("MatMul", ["x", "router"], ["rl"]),
        node("ArgMax", ["rl"], ["top"], axis=-1, keepdims=1),
    ]
    inits = [T("router", np.ones((4, 2))), T("W", W), T("b", np.zeros(3))]
    for i in range(2):
        nodes += [
            node("Equal", ["top", f"id{i}"], [f"sel{i}"]),
            node("Cast", [f"sel{i}"], [f"g{i}"], to=FLOAT),
            node("MatMul", ["x", f"e{i}"], [f"eo{i}"]),
            node("Mul", [f"eo{i}", f"g{i}"], [f"c{i}"]),
        ]
        inits += [T(f"id{i}", i, np.int64), T(f"e{i}", np.full((4, 4), i + 1.0))]
    nodes += [node("Add", ["c0", "c1"], ["mixed"]), node("Gemm", ["mixed", "W", "b"], ["y"])]
    assert_onnx_clean(scan(model(nodes, [vi("x", [1, 4])], [vi("y", [1, 3])], inits)))


def test_top_p_filtering_is_clean() -> None:
    m = classifier_head(
        [
            node("Softmax", ["logits"], ["p"]),
            node("CumSum", ["p", "ax"], ["cp"]),
            node("Greater", ["cp", "top_p"], ["drop"]),
            node("Where", ["drop", "ninf", "logits"], ["y"]),
        ],
        [T("ax", 1, np.int64), T("top_p", 0.9), T("ninf", -np.inf)],
    )
    assert_onnx_clean(scan(m))


def test_label_shift_and_nan_guards_are_clean() -> None:
    m = model(
        [
            node("Equal", ["labels", "ignore"], ["ign"]),
            node("Where", ["ign", "pad", "labels"], ["fixed"]),
            node("Gather", ["emb", "fixed"], ["e"]),
            node("Equal", ["e", "inf"], ["is_inf"]),
            node("Where", ["is_inf", "big", "e"], ["y"]),
        ],
        [vi("labels", [1, 5], INT64)],
        [vi("y", [1, 5, 4])],
        [
            T("ignore", -100, np.int64),
            T("pad", 0, np.int64),
            T("emb", np.ones((10, 4))),
            T("inf", np.inf),
            T("big", 3e38),
        ],
    )
    assert_onnx_clean(scan(m))


def test_llama_style_combined_causal_and_padding_mask_is_clean() -> None:
    """Where(Equal(mask, 0), min, causal) added to the scores: a trigger-chosen constant
    (the causal part is not uniform), whose effect ends at MatMul(probs, V)."""
    m = attention("where")
    g = m.graph
    keep = [n for n in g.node if n.output[0] not in ("is_pad", "masked")]
    softmax_at = next(i for i, n in enumerate(keep) if n.op_type == "Softmax")
    extra = [
        node("Shape", ["scores"], ["sshape"]),
        node("ConstantOfShape", ["sshape"], ["zeros_s"]),
        node("Trilu", ["causal_full"], ["causal"], upper=1),
        node("Equal", ["mask3", "zero"], ["is_pad"]),
        node("Where", ["is_pad", "fmin", "causal"], ["bias"]),
        node("Add", ["scores", "bias"], ["masked"]),
    ]
    g.ClearField("node")
    g.node.extend(keep[:softmax_at] + extra + keep[softmax_at:])
    g.initializer.extend([T("fmin", np.finfo(np.float32).min), T("causal_full", np.full((4, 4), -1e9))])
    assert_onnx_clean(scan(m))


def test_backdoor_report_escapes_node_names() -> None:
    import json

    m = classifier_head(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "magic"], ["hit"], name="\x1b[31mtrigger"),
            node("Where", ["hit", "target", "logits"], ["y"], name="sw\x07itch"),
        ],
        [T("magic", 1337.0), T("target", TARGET)],
    )
    f = scan(m).findings[0]
    text = json.dumps(f.to_dict(), ensure_ascii=False)
    assert "\x1b" not in text and "\x07" not in text
    assert f.subject == "sw\\x07itch (Where)"


def test_condition_on_activations_a_mask_touched_is_not_a_trigger() -> None:
    """The attention output depends on the mask comparison, but IsNaN(out) is a test of
    the activations, not the trigger deciding: replacing NaNs with a constant is clean."""
    m = attention("where")
    m.graph.output[0].name = "guarded"
    m.graph.node.extend(
        [node("IsNaN", ["out"], ["bad"]), node("Where", ["bad", "fallback", "out"], ["guarded"])]
    )
    m.graph.initializer.append(T("fallback", np.arange(8.0)))
    assert_onnx_clean(scan(m))
