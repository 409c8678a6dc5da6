"""TFLite FlatBuffers (``.tflite``): operator codes checked against the TFLite schema,
custom ops against a short list of ones TFLite ships, and Flex ops (TensorFlow ops run by
the select-TF-ops delegate) against TensorFlow's registry and the risky-op lists, using
the NodeDef each Flex operator carries rather than only its name.
"""

from __future__ import annotations

from modelsec.bytesource import ByteSource, BytesSource
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader
from modelsec.formats.tf_savedmodel import TF_PATH, report_summary
from modelsec.protobuf_wire import Message, WireError
from modelsec.tensorflow import ops as tfops
from modelsec.tensorflow.flatbuffer import FlatBufferError
from modelsec.tensorflow.graph import GraphSummary, NodeInfo, OpUse, read_node_def
from modelsec.tensorflow.tflite import CUSTOM, FLEX_PREFIX, TFLiteSummary, is_tflite, read_tflite

TFLITE_CUSTOM_OP = threat(
    "MS-TF-030",
    "KnownFrameworkOperators",
    Severity.HIGH,
    "TFLite custom op",
    "Use builtin TFLite ops, or review and allow the custom kernel the model needs.",
    "A custom op runs whatever kernel the interpreter registered under its name: native "
    "code outside TFLite's builtin set.",
)
TFLITE_UNKNOWN_BUILTIN = threat(
    "MS-TF-031",
    "KnownFrameworkOperators",
    Severity.MEDIUM,
    "TFLite builtin op code unknown to the TFLite schema",
    "Check the TFLite version the model needs; update modelsec's registry if it is newer.",
)
TFLITE_MALFORMED = threat(
    "MS-TF-032",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Malformed TFLite model",
    "Re-convert the model; TFLite's own converter never writes such offsets.",
)
TFLITE_FLEX_MISMATCH = threat(
    "MS-TF-033",
    "SuspiciousComponents",
    Severity.HIGH,
    "TFLite Flex op runs a different TensorFlow op than its name says",
    "Do not run this model: the delegate executes the embedded NodeDef, not the name.",
)

# Custom ops that TFLite itself implements (tensorflow/lite/kernels/custom_ops_register.h,
# the detection post-processing op, MediaPipe's common ops).
KNOWN_CUSTOM_OPS = frozenset(
    {
        "TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram", "MaxPoolingWithArgmax2D",
        "MaxUnpooling2D", "Convolution2DTransposeBias", "RandomUniform", "RandomStandardNormal",
        "Multinomial", "Atan2", "Sign",
    }
)


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
            _add_named(graph, name[len(FLEX_PREFIX):], f"operator code {code.index}")
    for use in summary.flex:
        named = (use.code.custom or "")[len(FLEX_PREFIX):]
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
            ctx.report(TF_PATH.at(ctx.path, f"external buffer group {name!r} is {verdict.reason}", subject=name))
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


class TFLiteScanner(FormatScanner):
    name = "tflite"
    category = FormatCategory.MODEL
    priority = 20
    readers = (Reader("TFLite interpreter", "flatbuffer root offset at 0, 'TFL3' at 4"),)

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return is_tflite(head) and int.from_bytes(head[0:4], "little") < source.size

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        summary = TFLiteSummary()
        try:
            read_tflite(source, summary)
        except FlatBufferError as exc:
            ctx.report(TFLITE_MALFORMED.at(ctx.path, f"FlatBuffer structure invalid: {exc}"))
            ctx.incomplete(f"malformed TFLite FlatBuffer: {exc}; the rest was not inspected")
        report_tflite(summary, ctx)


SCANNER = TFLiteScanner()
