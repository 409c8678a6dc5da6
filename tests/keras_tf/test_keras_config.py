"""Keras configs (Keras 2/tf-keras and Keras 3) through the engine: Lambdas with real
bytecode, custom objects, non-modelling APIs, TFOpLambda calls, and clean models."""

from __future__ import annotations

import json
from typing import Any

from kt_builders import (
    dumps,
    keras2_dense,
    keras2_lambda_layer,
    keras2_model,
    keras3_dense,
    keras3_lambda_layer,
    keras3_model,
)

from modelsec.bytesource import BytesSource
from modelsec.engine import Engine, FileResult
from modelsec.keras.config import IssueKind, analyze_config, classify_tf_function


def scan(name: str, data: bytes) -> FileResult:
    return Engine().scan_source(name, BytesSource(data))


def threats(result: FileResult) -> list[str]:
    return sorted(f.threat for f in result.findings)


def test_clean_keras3_and_keras2_models_have_no_findings() -> None:
    for data in (dumps(keras3_model([keras3_dense()])), dumps(keras2_model([keras2_dense()]))):
        result = scan("config.json", data)
        assert result.format == "keras-config"
        assert result.findings == [] and result.incompletes == []


def test_keras3_lambda_bytecode_is_decoded() -> None:
    evil = lambda x: __import__("subprocess").check_output(["id"])  # noqa: E731
    result = scan("config.json", dumps(keras3_model([keras3_lambda_layer(evil, "evil")])))
    (finding,) = result.findings
    assert finding.threat == "MS-KERAS-001" and finding.rule == "LoadTimeCodeExecution"
    assert finding.severity.name == "CRITICAL"
    assert "check_output" in finding.details["names"] and "subprocess" in finding.details["strings"]
    assert "'evil'" in finding.message


def test_harmless_lambda_is_still_code_execution() -> None:
    result = scan("config.json", dumps(keras3_model([keras3_lambda_layer(lambda x: x * 2)])))
    (finding,) = result.findings
    assert finding.threat == "MS-KERAS-001" and finding.severity.name == "HIGH"


def test_keras2_lambda_list_form_and_undecodable_bytes() -> None:
    layer = keras2_lambda_layer(lambda x: eval("x"))
    result = scan("model.json", dumps(keras2_model([layer])))
    assert threats(result) == ["MS-KERAS-001"] and "eval" in result.findings[0].message
    layer["config"]["function"] = ["bm90IG1hcnNoYWw=", None, None]  # base64 of "not marshal"
    result = scan("model.json", dumps(keras2_model([layer])))
    assert threats(result) == ["MS-KERAS-001"]
    assert "could not be decoded" in result.findings[0].message


def test_lambda_output_shape_and_lambda_activation() -> None:
    layer = keras2_lambda_layer(lambda x: x)
    layer["config"]["output_shape"] = keras2_lambda_layer(lambda s: __import__("os"))["config"]["function"]
    layer["config"]["output_shape_type"] = "lambda"
    analysis = analyze_config(keras2_model([layer]))
    assert [i.kind for i in analysis.issues] == [IssueKind.LAMBDA, IssueKind.LAMBDA]
    lam = {
        "class_name": "__lambda__",
        "config": {"value": [keras2_lambda_layer(lambda t: t)["config"]["function"][0], None, None]},
    }
    analysis = analyze_config(keras3_model([keras3_dense(activation=lam)]))
    assert [i.kind for i in analysis.issues] == [IssueKind.LAMBDA]


def test_custom_modules_builtins_and_registrations() -> None:
    cases: list[tuple[Any, str, bool]] = [
        (
            {"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"},
            "MS-KERAS-002",
            True,
        ),
        (
            {"module": "os", "class_name": "function", "config": "system", "registered_name": None},
            "MS-KERAS-002",
            True,
        ),
        (
            {
                "module": "my_project.layers",
                "class_name": "Gate",
                "config": {},
                "registered_name": "Custom>Gate",
            },
            "MS-KERAS-002",
            False,
        ),
        (
            {
                "module": "keras.utils",
                "class_name": "function",
                "config": "get_file",
                "registered_name": None,
            },
            "MS-KERAS-003",
            True,
        ),
        (
            {
                "module": "keras.config",
                "class_name": "function",
                "config": "enable_unsafe_deserialization",
                "registered_name": None,
            },
            "MS-KERAS-003",
            True,
        ),
    ]
    for obj, code, critical in cases:
        result = scan("config.json", dumps(keras3_model([keras3_dense(activation=obj)])))
        assert threats(result) == [code], obj
        assert (result.findings[0].severity.name == "CRITICAL") is critical, obj
    # Keras' own builtins-module functions (activation names) are fine.
    ok = {"module": "builtins", "class_name": "function", "config": "relu", "registered_name": "function"}
    assert scan("config.json", dumps(keras3_model([keras3_dense(activation=ok)]))).findings == []


def test_legacy_unknown_class_is_custom_object() -> None:
    layer = {"class_name": "AttentionX", "config": {"name": "att"}, "name": "att", "inbound_nodes": []}
    result = scan("model.json", dumps(keras2_model([keras2_dense(), layer])))
    assert threats(result) == ["MS-KERAS-002"] and "AttentionX" in result.findings[0].message


def test_tfoplambda_functions() -> None:
    assert classify_tf_function("math.add") is None
    assert classify_tf_function("__operators__.getitem") is None
    assert classify_tf_function("reshape") is None
    assert classify_tf_function("py_function") is IssueKind.TF_OP_CODE
    assert classify_tf_function("compat.v1.py_func") is IssueKind.TF_OP_CODE
    assert classify_tf_function("raw_ops.PyFunc") is IssueKind.TF_OP_CODE
    assert classify_tf_function("io.read_file") is IssueKind.TF_OP_IO
    assert classify_tf_function("raw_ops.WriteFile") is IssueKind.TF_OP_IO
    assert classify_tf_function("experimental.dispatch_for_api") is IssueKind.TF_OP_OTHER
    layers = [
        {
            "class_name": "TFOpLambda",
            "config": {"name": "tf.numpy_function", "function": "numpy_function"},
            "name": "n",
            "inbound_nodes": [],
        },
        {
            "class_name": "SlicingOpLambda",
            "config": {"name": "s", "function": "__operators__.getitem"},
            "name": "s",
            "inbound_nodes": [],
        },
    ]
    result = scan("model.json", dumps(keras2_model([keras2_dense()] + layers)))
    assert threats(result) == ["MS-KERAS-004"] and result.findings[0].severity.name == "CRITICAL"


def test_legacy_wrapper_with_nested_json_strings() -> None:
    wrapper = {
        "model_config": json.dumps(keras2_model([keras2_lambda_layer(lambda x: x)])),
        "keras_version": "2.4",
    }
    assert threats(scan("model.json", dumps(wrapper))) == ["MS-KERAS-001"]


def test_keras_metadata_json() -> None:
    result = scan("metadata.json", b'{"keras_version": "3.6.0", "date_saved": "2024-10-01@12:00:00"}')
    assert result.format == "keras-metadata" and result.findings == []
    result = scan("metadata.json", b'{"keras_version": "$(id)", "date_saved": "x"}')
    assert threats(result) == ["MS-KERAS-007"]


def test_invalid_json_fails_closed() -> None:
    result = scan("config.json", b'{"class_name": "Sequential", "config": {"layers": [}, "module": "keras"')
    assert threats(result) == ["MS-KERAS-007"] and result.incompletes


def test_deep_config_is_bounded() -> None:
    deep: Any = {"class_name": "Dense", "config": {}}
    for _ in range(900):
        deep = {"class_name": "Dense", "config": {"inner": deep}}
    analysis = analyze_config(deep)
    assert analysis.truncated  # refused past the depth bound, no RecursionError
    text = b'{"class_name": "X", "config": ' * 100_000 + b"{}" + b"}" * 100_000
    result = scan("config.json", b'{"module": "keras", ' + text[1:])
    assert result.incompletes  # the JSON parser's recursion limit becomes an incomplete


# -- red team, 2026-12-07: configs Keras reads that detection by byte markers missed ------


def _lambda_model() -> dict[str, Any]:
    return keras3_model([keras3_lambda_layer(lambda x: __import__("os").system("id") or x, "evil")])


def _escaped(config: dict[str, Any]) -> bytes:
    """The same JSON with every key spelled with \\u escapes (json.loads reads the same dict)."""
    text = json.dumps(config)
    for key in ("class_name", "config", "module", "registered_name", "layers"):
        text = text.replace(f'"{key}"', '"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"')
    assert json.loads(text) == config
    return text.encode()


def _keras_zip(config_json: bytes) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0", "date_saved": "2026-01-01"}))
        archive.writestr("config.json", config_json)
        archive.writestr("model.weights.h5", b"")
    return buffer.getvalue()


def test_keras_config_with_escaped_keys_is_analysed() -> None:
    result = scan("model.json", _escaped(_lambda_model()))
    assert "MS-KERAS-001" in threats(result)


def test_keras_archive_config_is_analysed_however_its_bytes_look() -> None:
    """Keras opens config.json by name and parses it with json.loads: escaped keys, UTF-16
    and 128 KiB of whitespace before the keys are the same config."""
    plain = json.dumps(_lambda_model())
    for config_json in (
        _escaped(_lambda_model()),
        plain.encode("utf-16"),
        ("{" + " " * (128 << 10) + plain[1:]).encode(),
    ):
        assert "MS-KERAS-001" in threats(scan("model.keras", _keras_zip(config_json)))


def test_layers_that_load_code_are_unsafe_apis() -> None:
    """TorchModuleWrapper hands its config's module to torch.load; TFSMLayer loads a
    SavedModel from a path."""
    for class_name in ("TorchModuleWrapper", "TFSMLayer"):
        layer = keras3_dense("loader")
        layer["class_name"] = class_name
        layer["config"] = {"name": "loader", "module": "gASV", "filepath": "/tmp/x"}
        result = scan("config.json", dumps(keras3_model([layer])))
        assert "MS-KERAS-003" in threats(result), class_name
        layer.pop("module", None)  # Keras 2 style: no module key
        assert "MS-KERAS-003" in threats(scan("config.json", dumps(keras3_model([layer])))), class_name
