"""Hypothesis fuzzing of every Keras/TF parser: random and mutated input must never let an
exception escape a scanner (malformed input becomes findings or incompletes), and every
example must finish quickly (the deadline catches hangs and runaway work)."""

from __future__ import annotations

import io
import json
import marshal
from typing import Any

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kt_builders import (
    attr_s,
    attr_string_tensor,
    flex_options,
    function,
    graph_def,
    keras2_dense,
    keras2_lambda_layer,
    keras2_model,
    keras3_lambda_layer,
    keras3_model,
    keras_metadata_pb,
    meta_graph,
    node,
    saved_model,
    tflite_model,
)

from modelsec.bytesource import BytesSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.engine import dispatch
from modelsec.formats import keras_config, keras_h5, tf_savedmodel, tflite
from modelsec.interpretations import REGISTERED
from modelsec.keras.config import analyze_config
from modelsec.keras.marshal_reader import MarshalError, summarize_code

# A generous deadline: examples take milliseconds; only a hang or runaway loop reaches it,
# even on a loaded CI machine.
FAST = settings(max_examples=300, deadline=5000, suppress_health_check=[HealthCheck.too_slow])


def run_scanner(scanner: Any, data: bytes, name: str) -> ScanSink:
    """detect + scan directly (not through the engine, which would hide an escape)."""
    sink = ScanSink(Limits())
    ctx = ScanContext(name, sink, dispatch, formats=REGISTERED)
    source = BytesSource(data)
    try:
        scanner.detect(data[:65536], source, name)
    except Exception:  # detectors may raise; the engine treats that as "no match"
        pass
    scanner.scan(source, ctx)
    return sink


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        action = draw(st.integers(0, 3))
        pos = draw(st.integers(0, len(data) - 1))
        if action == 0:
            data[pos] = draw(st.integers(0, 255))
        elif action == 1:
            del data[pos:]
        elif action == 2:
            data[pos:pos] = draw(st.binary(max_size=16))
        else:
            data[pos : pos + 4] = draw(
                st.sampled_from([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x80\x80\x80\x80\x80"])
            )
    return bytes(data)


# --- marshal -------------------------------------------------------------------------------

CODE_SEEDS = [
    marshal.dumps(compile(src, "<f>", "eval"), v)
    for src in ("lambda x: __import__('os').system(x)", "[eval(a) for a in (1, 2.5, 3j, b'x', None)]")
    for v in (2, 4)
]


@FAST
@given(st.one_of(st.binary(max_size=512), mutated(CODE_SEEDS)))
def test_marshal_reader_only_raises_marshal_error(data: bytes) -> None:
    try:
        summary = summarize_code(data)
    except MarshalError:
        return
    assert summary.code_objects >= 0


# --- Keras configs -------------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_keys = st.sampled_from(
    [
        "class_name",
        "config",
        "module",
        "registered_name",
        "function",
        "function_type",
        "name",
        "layers",
        "code",
        "value",
        "output_shape",
        "mask",
        "x",
    ]
)
json_values = st.recursive(
    st.one_of(
        json_leaf,
        st.sampled_from(
            ["Lambda", "__lambda__", "TFOpLambda", "function", "builtins", "keras.layers", "lambda", "exec"]
        ),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(json_keys, children, max_size=6)
    ),
    max_leaves=60,
)


@FAST
@given(json_values)
def test_config_walker_never_raises(value: Any) -> None:
    analysis = analyze_config(value)
    assert len(analysis.issues) <= 500


CONFIG_SEEDS = [
    json.dumps(keras3_model([keras3_lambda_layer(lambda x: x + 1)])).encode(),
    json.dumps(keras2_model([keras2_dense(), keras2_lambda_layer(lambda x: eval("x"))])).encode(),
    b'{"keras_version": "3.1.0", "date_saved": "x"}',
]


@FAST
@given(mutated(CONFIG_SEEDS))
def test_keras_config_scanner_never_raises(data: bytes) -> None:
    run_scanner(keras_config.SCANNER, data, "config.json")


# --- TensorFlow protobufs ---------------------------------------------------------------------

PB_SEEDS = [
    saved_model(
        meta_graph(
            graph_def(
                [
                    node("c", "Const", attrs=attr_string_tensor("value", ["/x"])),
                    node("r", "RestoreV2", ["c"]),
                    node("p", "PyFunc", attrs=attr_s("token", "t")),
                ],
                [function("f", [node("a", "ReadFile"), node("b", "Zap")])],
            ),
            stripped_ops=["PyFunc"],
            assets=["../a"],
            user_objects=[("_tf_keras_layer", json.dumps(keras2_lambda_layer(lambda x: x)))],
        )
    ),
    graph_def([node("x", "Placeholder"), node("y", "EagerPyFunc")]),
    keras_metadata_pb([("root", "_tf_keras_model", json.dumps(keras2_model([keras2_dense()])))]),
]


@FAST
@given(st.one_of(st.binary(max_size=256), mutated(PB_SEEDS)))
def test_tf_proto_scanner_never_raises(data: bytes) -> None:
    if data:
        run_scanner(tf_savedmodel.SCANNER, data, "saved_model.pb")


# --- TFLite --------------------------------------------------------------------------------------

TFLITE_SEEDS = [
    tflite_model(
        [(0, None), (32, "FlexPyFunc"), (32, "Custom")],
        [(0, None), (1, flex_options("PyFunc", node("p", "PyFunc"))), (2, b"\x00\x01")],
        buffers=[(0, 0), (9, 9)],
    ),
    tflite_model([(3, None)], [(0, None)] * 5),
]


@FAST
@given(mutated(TFLITE_SEEDS))
def test_tflite_scanner_never_raises(data: bytes) -> None:
    run_scanner(tflite.SCANNER, data, "model.tflite")


# --- HDF5: each example starts the probe process (~0.5 s), so fewer examples; the probe's
# own timeout bounds a hang, and a libhdf5 crash must come back as MS-KERAS-022. -----------


def _h5_seed() -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["model_config"] = json.dumps(keras2_model([keras2_lambda_layer(lambda x: x)]))
        f.create_dataset("w", data=np.arange(16, dtype="float32"))
        f.create_dataset("blob", data=np.void(b"\x80\x04K\x01."))
    return buf.getvalue()


H5_SEEDS = [_h5_seed()]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(H5_SEEDS))
def test_hdf5_scanner_never_raises(data: bytes) -> None:
    run_scanner(keras_h5.SCANNER, data, "model.h5")
