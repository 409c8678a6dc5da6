"""ONNX models (``ModelProto``): operators, external data, architectural backdoors.

This module recognises a model and declares what its scan can find; the scan itself
(:mod:`modelsec.formats.onnx_scan`) is imported for the first ONNX file only. The file is
parsed as protobuf wire data by :mod:`modelsec.onnx.reader`; neither ``onnx`` nor a runtime
is imported, no graph is run and no external data file is opened. See
``docs/formats/onnx.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader
from modelsec.onnx.detect import cannot_be_onnx, looks_like_onnx
from modelsec.protobuf_wire import LEN, BlockCache, Message, WireError, WireLimits

if TYPE_CHECKING:
    from modelsec.backdoor.analysis import AnalysisLimits
    from modelsec.context import ScanContext
    from modelsec.onnx.reader import ReaderLimits

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
    # Bounds of the reader and of the backdoor analysis; None: their defaults.
    reader_limits: ReaderLimits | None = None
    analysis_limits: AnalysisLimits | None = None

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        # Most files that are not protobuf break at a tag among their first fields: skip
        # setting up both walks for them (issue 14: many files).
        if cannot_be_onnx(head, source.size):
            return False
        return looks_like_onnx(head, source) or parses_as_model_proto(source)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        from modelsec.formats.onnx_scan import scan_onnx  # loaded for ONNX files only

        scan_onnx(source, ctx, self.reader_limits, self.analysis_limits)


SCANNER = OnnxScanner()
