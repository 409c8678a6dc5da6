"""ONNX models (``ModelProto``): operators, external data, architectural backdoors.

The file is parsed as protobuf wire data by :mod:`modelsec.onnx.reader`; neither ``onnx``
nor a runtime is imported, no graph is run and no external data file is opened. See
``docs/formats/onnx.md``.
"""

from __future__ import annotations

import os

from modelsec.backdoor.analysis import AnalysisLimits, analyze
from modelsec.backdoor.findings import findings_for
from modelsec.bytesource import ByteSource, FileSource, LimitExceeded
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader
from modelsec.onnx import external as ext
from modelsec.onnx import operators as ops
from modelsec.onnx.dataflow import to_dataflow
from modelsec.onnx.display import printable
from modelsec.onnx.detect import looks_like_onnx
from modelsec.onnx.model import OnnxModel
from modelsec.onnx.reader import ReaderLimits, read_model
from modelsec.protobuf_wire import LEN, BlockCache, Message, WireError, WireLimits

OPS = "KnownFrameworkOperators"
SUSPICIOUS = "SuspiciousComponents"

UNKNOWN_OPERATOR = threat(
    "MS-ONNX-001",
    OPS,
    Severity.HIGH,
    "Operator not in the official ONNX opset the model imports",
    "Re-export the model with official operators at a consistent opset version.",
    "The operator does not exist in its official domain at the imported opset version (a "
    "misspelt, future or removed operator, or a domain the model never imports): only a "
    "runtime with extra kernels registered under that name would run it.",
)
CUSTOM_OPERATOR = threat(
    "MS-ONNX-002",
    OPS,
    Severity.HIGH,
    "Custom-domain operator",
    "Use official operators, or review and allow the custom operator library explicitly.",
    "A node uses an operator from a non-official domain that is not a function defined "
    "in the model: running it needs a native custom-op library (com.microsoft contrib "
    "ops, vendor kernels, onnxruntime-extensions).",
)
PYTHON_OPERATOR = threat(
    "MS-ONNX-003",
    OPS,
    Severity.CRITICAL,
    "Python operator in the graph",
    "Do not run the model with Python custom operators enabled; re-export it without them.",
    "Python/PyOp/PythonOp nodes call Python code registered by the runtime "
    "(onnxruntime-extensions), i.e. arbitrary code at inference time.",
)
CONFLICTING_OPSETS = threat(
    "MS-ONNX-004",
    OPS,
    Severity.MEDIUM,
    "Domain imported at several opset versions",
    "Re-export the model with one opset version per domain.",
    "opset_import lists the same domain twice with different versions; which one a "
    "runtime uses is implementation-defined, so operator checks cannot be trusted.",
)
EXTERNAL_ABSOLUTE = threat(
    "MS-ONNX-010",
    SUSPICIOUS,
    Severity.HIGH,
    "External data at an absolute path",
    "Store external tensors next to the model and reference them by relative file name.",
    "A tensor's external_data location is an absolute, drive or UNC path: the runtime "
    "reads that file (any file on the host) into the tensor.",
)
EXTERNAL_TRAVERSAL = threat(
    "MS-ONNX-011",
    SUSPICIOUS,
    Severity.HIGH,
    "External data path climbs out of the model directory",
    "Store external tensors inside the model directory and reference them without '..'.",
    "A tensor's external_data location contains '..': the runtime reads a file outside "
    "the model directory into the tensor.",
)
EXTERNAL_AMBIGUOUS = threat(
    "MS-ONNX-012",
    SUSPICIOUS,
    Severity.MEDIUM,
    "Ambiguous external data location",
    "Use a plain relative file name for external data.",
    "The location uses backslashes, control characters, a URL, '~', invalid UTF-8 or is "
    "empty: runtimes on different systems resolve it differently.",
)
EXTERNAL_SYMLINK = threat(
    "MS-ONNX-013",
    SUSPICIOUS,
    Severity.MEDIUM,
    "External data reached through a symlink",
    "Replace the symlink with the data file itself.",
    "The external data location passes through a symlink inside the model directory; the "
    "file read can change without the model changing.",
)
EXTERNAL_OUTSIDE = threat(
    "MS-ONNX-014",
    SUSPICIOUS,
    Severity.HIGH,
    "External data resolves outside the model directory",
    "Store external tensors as regular files inside the model directory.",
    "On disk the location resolves (through symlinks) outside the model directory, or to "
    "something that is not a regular file (a device or FIFO).",
)
MALFORMED = threat(
    "MS-ONNX-020",
    SUSPICIOUS,
    Severity.MEDIUM,
    "Malformed ONNX model",
    "Re-export the model; a valid ModelProto parses completely.",
    "The file starts as an ONNX ModelProto but its protobuf encoding is broken; parsers "
    "may disagree about what it contains.",
)

# Codes of incompletes (what could not be inspected); not threats.
INCOMPLETE_LIMIT = "MS-ONNX-090"
INCOMPLETE_MALFORMED = "MS-ONNX-091"
INCOMPLETE_OPSET = "MS-ONNX-092"
INCOMPLETE_BACKDOOR = "MS-ONNX-093"

_OPERATOR_THREATS = {
    ops.PYTHON_OP: PYTHON_OPERATOR,
    ops.CUSTOM_DOMAIN: CUSTOM_OPERATOR,
    ops.UNKNOWN_OP: UNKNOWN_OPERATOR,
    ops.NOT_IMPORTED: UNKNOWN_OPERATOR,
    ops.CONFLICTING_IMPORTS: CONFLICTING_OPSETS,
}
_EXTERNAL_THREATS = {
    ext.ABSOLUTE: EXTERNAL_ABSOLUTE,
    ext.TRAVERSAL: EXTERNAL_TRAVERSAL,
    ext.AMBIGUOUS: EXTERNAL_AMBIGUOUS,
    ext.SYMLINK: EXTERNAL_SYMLINK,
    ext.OUTSIDE: EXTERNAL_OUTSIDE,
}


def _model_dir(source: ByteSource, ctx: ScanContext) -> str | None:
    """The directory a runtime resolves external data against, for a model on local
    disk (not an archive member or a remote object)."""
    if ctx.depth == 0 and isinstance(source, FileSource):
        return os.path.dirname(os.path.abspath(source.path))
    return None


# ModelProto.graph, and the GraphProto fields (all length-delimited) a graph starts with
_GRAPH = 7
_GRAPH_FIELDS = frozenset({1, 2, 5, 10, 11, 12, 13, 14, 15, 16})
_NODE, _OP_TYPE = 1, 4
MAX_TOP_FIELDS = 2_000_000  # a walk of ModelProto's top level costs ~0.5 us per field


def parses_as_model_proto(source: ByteSource) -> bool:
    """What ``onnx.load`` and onnxruntime read as a model, beyond the heuristics of
    :func:`looks_like_onnx`: protobuf ignores unknown fields (any number of them) and takes
    fields in any order, and ``onnx.load`` does not check ``ir_version``. So: the top-level
    message parses to the end of the file, and a graph field holds a node with an op_type.
    (Only a bounded walk of the top level and the graph's first fields; no payload is read.)"""
    message = Message(BlockCache(source), limits=WireLimits(max_depth=3))
    graph = False
    try:
        for count, field in enumerate(message.fields()):
            if count >= MAX_TOP_FIELDS:
                break
            if not graph and field.number == _GRAPH and field.wire_type == LEN:
                graph = _has_node(message.child(field))
    except (WireError, LimitExceeded):
        return False
    return graph


def _has_node(graph: Message) -> bool:
    for count, field in enumerate(graph.fields()):
        if field.number not in _GRAPH_FIELDS or field.wire_type != LEN or count > 64:
            return False
        if field.number == _NODE:
            return any(f.number == _OP_TYPE and f.wire_type == LEN for f in graph.child(field).fields())
    return False


class OnnxScanner(FormatScanner):
    name = "onnx"
    category = FormatCategory.MODEL
    priority = 40
    readers = (Reader("onnx.load, onnxruntime", "a protobuf ModelProto from offset 0"),)
    reader_limits = ReaderLimits()
    analysis_limits = AnalysisLimits()

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return looks_like_onnx(head, source) or parses_as_model_proto(source)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        model_dir = _model_dir(source, ctx)
        model = read_model(BlockCache(source), self.reader_limits)
        self._report_read_problems(model, ctx)
        self._check_operators(model, ctx)
        self._check_external(model, model_dir, ctx)
        self._check_backdoors(model, ctx)

    @staticmethod
    def _report_read_problems(model: OnnxModel, ctx: ScanContext) -> None:
        for error in model.errors:
            if model.malformed:
                ctx.report(MALFORMED.at(ctx.path, f"ONNX model is malformed: {printable(error)}"))
                ctx.incomplete(f"{error}; the rest of the model was not inspected", INCOMPLETE_MALFORMED)
            else:
                ctx.incomplete(error, INCOMPLETE_LIMIT)

    @staticmethod
    def _check_operators(model: OnnxModel, ctx: ScanContext) -> None:
        report = ops.check_operators(model)
        for issue in report.issues:
            subject = f"{issue.domain}::{issue.op_type}" if issue.domain else issue.op_type
            more = f" ({issue.count} nodes)" if issue.count > 1 else ""
            ctx.report(
                _OPERATOR_THREATS[issue.kind].at(
                    ctx.path,
                    printable(issue.message, 1000) + more,
                    offset=issue.offset or None,
                    subject=printable(subject or issue.domain),
                    details={"count": issue.count, "nodes": [printable(e) for e in issue.examples]},
                )
            )
        for domain, version in report.newer_than_table.items():
            ctx.incomplete(
                f"the model imports {domain} opset {version}, newer than the scanner's table "
                "(regenerate it with hack/gen_onnx_opsets.py); operators were checked against "
                "the newest known version",
                INCOMPLETE_OPSET,
            )

    @staticmethod
    def _check_external(model: OnnxModel, model_dir: str | None, ctx: ScanContext) -> None:
        for issue in ext.check_external(model, model_dir):
            more = f" ({issue.count} tensors)" if issue.count > 1 else ""
            ctx.report(
                _EXTERNAL_THREATS[issue.kind].at(
                    ctx.path,
                    printable(issue.message, 1000) + more,
                    offset=issue.offset or None,
                    subject=printable(issue.location, 200),
                    details={"tensors": [printable(t) for t in issue.tensors], "count": issue.count},
                )
            )

    def _check_backdoors(self, model: OnnxModel, ctx: ScanContext) -> None:
        dataflow = to_dataflow(model)
        if dataflow is None:
            return
        report = analyze(dataflow, self.analysis_limits)
        for finding in findings_for(report, ctx.path):
            ctx.report(finding)
        if report.incomplete:
            ctx.incomplete(report.incomplete, INCOMPLETE_BACKDOOR)


SCANNER = OnnxScanner()
