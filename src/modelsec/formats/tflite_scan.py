"""The scan of a TFLite model (see :mod:`modelsec.formats.tflite`, which recognises the
file and declares the threats): the FlatBuffer read by :mod:`modelsec.tensorflow.tflite`,
its operator codes checked against TFLite's builtins, and Flex ops judged by the TensorFlow
NodeDefs they carry."""

from __future__ import annotations

from modelsec.bytesource import ByteSource, BytesSource
from modelsec.context import ScanContext
from modelsec.findings import Severity
from modelsec.formats.tf_savedmodel import TF_PATH
from modelsec.formats.tf_savedmodel_scan import report_summary
from modelsec.formats.tflite import (
    KNOWN_CUSTOM_OPS,
    TFLITE_CUSTOM_OP,
    TFLITE_FLEX_MISMATCH,
    TFLITE_MALFORMED,
    TFLITE_UNKNOWN_BUILTIN,
)
from modelsec.protobuf_wire import Message, WireError
from modelsec.tensorflow import ops as tfops
from modelsec.tensorflow.flatbuffer import FlatBufferError
from modelsec.tensorflow.graph import GraphSummary, NodeInfo, OpUse, read_node_def
from modelsec.tensorflow.tflite import CUSTOM, FLEX_PREFIX, TFLiteSummary, read_tflite


def report_tflite(summary: TFLiteSummary, ctx: ScanContext) -> None:
    builtins = tfops.tflite_builtins()
    graph = GraphSummary(kind="tflite-flex")
    for code in summary.codes:
        uses = summary.used.get(code.index, 0)
        if code.builtin == CUSTOM:
            name = code.custom or ""
            if name.startswith(FLEX_PREFIX) and len(name) > len(FLEX_PREFIX):
                continue  # judged below, from the NodeDefs
            if name in KNOWN_CUSTOM_OPS:
                continue
            ctx.report(
                TFLITE_CUSTOM_OP.at(
                    ctx.path,
                    f"custom op {name or '<unnamed>'!r} (operator code {code.index}, used by "
                    f"{uses} operator(s)) needs a kernel outside TFLite's builtin set",
                    subject=name or "<unnamed>",
                )
            )
        elif code.builtin not in builtins:
            ctx.report(
                TFLITE_UNKNOWN_BUILTIN.at(
                    ctx.path,
                    f"builtin op code {code.builtin} (operator code {code.index}) is not in the "
                    "TFLite schema",
                    subject=str(code.builtin),
                )
            )
    flex_codes_used = {use.code.index for use in summary.flex}
    for code in summary.codes:
        name = code.custom or ""
        if code.builtin == CUSTOM and name.startswith(FLEX_PREFIX) and code.index not in flex_codes_used:
            # Declared but unused Flex codes are still checked by name.
            _add_named(graph, name[len(FLEX_PREFIX) :], f"operator code {code.index}")
    for use in summary.flex:
        named = (use.code.custom or "")[len(FLEX_PREFIX) :]
        scope = f"Flex {use.where}"
        before = graph.nodes
        if use.node_def is not None:
            try:
                read_node_def(Message(BytesSource(use.node_def)), scope, graph)
            except (WireError, ValueError) as exc:
                use.error = f"embedded NodeDef unreadable: {exc}"
        if graph.nodes == before:
            _add_named(graph, named, scope)
            ctx.report(
                TFLITE_MALFORMED.at(
                    ctx.path,
                    f"Flex op {named!r} at {use.where}: {use.error or 'no NodeDef'}; judged by name only",
                    severity=Severity.HIGH,
                    subject=named,
                )
            )
            continue
        actual = next((op for op, u in graph.ops.items() if u.first.scope == scope), named)
        for op in {actual, use.op_in_options} - {named, ""}:
            ctx.report(
                TFLITE_FLEX_MISMATCH.at(
                    ctx.path,
                    f"Flex op named {named!r} at {use.where} carries a NodeDef for {op!r}",
                    subject=op,
                )
            )
    report_summary(graph, ctx.path, ctx)
    for problem in summary.problems:
        ctx.report(TFLITE_MALFORMED.at(ctx.path, problem))
    for name in summary.external_groups:
        verdict = tfops.judge_path(name)
        if verdict:
            ctx.report(
                TF_PATH.at(ctx.path, f"external buffer group {name!r} is {verdict.reason}", subject=name)
            )
    if summary.truncated:
        ctx.incomplete(f"TFLite model has {summary.truncated}; the rest was not inspected", code="MS-GEN-003")


def _add_named(graph: GraphSummary, op: str, scope: str) -> None:
    """A Flex op known only by name: add a node so the registry and risk checks apply."""
    node = NodeInfo(name=op, op=op, scope=scope, offset=0)
    graph.nodes += 1
    if op in graph.ops:
        graph.ops[op].count += 1
    else:
        graph.ops[op] = OpUse(1, node)
    if tfops.classify(op) is not None:
        graph.risky.append(node)


def scan_tflite(source: ByteSource, ctx: ScanContext) -> None:
    summary = TFLiteSummary()
    try:
        read_tflite(source, summary)
    except FlatBufferError as exc:
        ctx.report(TFLITE_MALFORMED.at(ctx.path, f"FlatBuffer structure invalid: {exc}"))
        ctx.incomplete(f"malformed TFLite FlatBuffer: {exc}; the rest was not inspected")
    report_tflite(summary, ctx)
