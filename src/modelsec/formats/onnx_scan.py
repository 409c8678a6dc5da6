"""The scan of an ONNX model (see :mod:`modelsec.formats.onnx`, which recognises the file
and declares the threats): read the ``ModelProto`` as protobuf wire data, then check its
operators, its external data and its graph for architectural backdoors."""

from __future__ import annotations

import os

from modelsec.backdoor.analysis import AnalysisLimits, analyze
from modelsec.backdoor.findings import findings_for
from modelsec.bytesource import ByteSource, FileSource
from modelsec.context import ScanContext
from modelsec.formats.onnx import (
    CONFLICTING_OPSETS,
    CUSTOM_OPERATOR,
    EXTERNAL_ABSOLUTE,
    EXTERNAL_AMBIGUOUS,
    EXTERNAL_OUTSIDE,
    EXTERNAL_SYMLINK,
    EXTERNAL_TRAVERSAL,
    INCOMPLETE_BACKDOOR,
    INCOMPLETE_LIMIT,
    INCOMPLETE_MALFORMED,
    INCOMPLETE_OPSET,
    MALFORMED,
    PYTHON_OPERATOR,
    UNKNOWN_OPERATOR,
)
from modelsec.onnx import external as ext
from modelsec.onnx import operators as ops
from modelsec.onnx.dataflow import to_dataflow
from modelsec.onnx.display import printable
from modelsec.onnx.model import OnnxModel
from modelsec.onnx.reader import ReaderLimits, read_model
from modelsec.protobuf_wire import BlockCache

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


def scan_onnx(
    source: ByteSource,
    ctx: ScanContext,
    reader_limits: ReaderLimits | None = None,
    analysis_limits: AnalysisLimits | None = None,
) -> None:
    model_dir = _model_dir(source, ctx)
    model = read_model(BlockCache(source), ReaderLimits() if reader_limits is None else reader_limits)
    _report_read_problems(model, ctx)
    _check_operators(model, ctx)
    _check_external(model, model_dir, ctx)
    _check_backdoors(model, ctx, AnalysisLimits() if analysis_limits is None else analysis_limits)


def _report_read_problems(model: OnnxModel, ctx: ScanContext) -> None:
    for error in model.errors:
        if model.malformed:
            ctx.report(MALFORMED.at(ctx.path, f"ONNX model is malformed: {printable(error)}"))
            ctx.incomplete(f"{error}; the rest of the model was not inspected", INCOMPLETE_MALFORMED)
        else:
            ctx.incomplete(error, INCOMPLETE_LIMIT)


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


def _check_backdoors(model: OnnxModel, ctx: ScanContext, limits: AnalysisLimits) -> None:
    dataflow = to_dataflow(model)
    if dataflow is None:
        return
    report = analyze(dataflow, limits)
    for finding in findings_for(report, ctx.path):
        ctx.report(finding)
    if report.incomplete:
        ctx.incomplete(report.incomplete, INCOMPLETE_BACKDOOR)
