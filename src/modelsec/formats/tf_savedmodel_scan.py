"""The scan of a TensorFlow protobuf (see :mod:`modelsec.formats.tf_savedmodel`, which
recognises the file, declares the threats and checks the SavedModel directory): every node
of the graph and of its library functions, read by :mod:`modelsec.tensorflow.graph`, and the
Keras metadata inside the object graph."""

from __future__ import annotations

import re

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.context import ScanContext
from modelsec.findings import Severity, Threat
from modelsec.formats.keras_config_scan import analyze_json_text
from modelsec.formats.tf_savedmodel import (
    FORMAT_BY_KIND,
    OP_IN_PBTXT,
    TF_DEBUG,
    TF_FILE_READ,
    TF_FILE_WRITE,
    TF_NETWORK,
    TF_PATH,
    TF_PYFUNC,
    TF_UNKNOWN_OP,
)
from modelsec.protobuf_wire import WireError
from modelsec.tensorflow import graph as tfgraph
from modelsec.tensorflow import ops as tfops
from modelsec.tensorflow.graph import GraphSummary, NodeInfo

_RISK_THREAT = {
    tfops.OpRisk.CODE: TF_PYFUNC,
    tfops.OpRisk.FILE_READ: TF_FILE_READ,
    tfops.OpRisk.FILE_WRITE: TF_FILE_WRITE,
    tfops.OpRisk.NETWORK: TF_NETWORK,
    tfops.OpRisk.DEBUG: TF_DEBUG,
}


def _input_node(ref: str) -> str:
    """``^name`` / ``name:0`` / ``name:output:0`` -> ``name``."""
    return ref.lstrip("^").split(":", 1)[0]


def _where(node: NodeInfo) -> str:
    return f"node {node.name!r} ({node.op}) in {node.scope}"


def report_node(node: NodeInfo, summary: GraphSummary, file: str, ctx: ScanContext) -> None:
    """Findings for one node whose op is risky or judged by its attributes."""
    risk = tfops.classify(node.op)
    literal = [
        value
        for ref in node.inputs[:2]
        for value in summary.const_strings.get((node.scope, _input_node(ref)), [])
    ]
    details: dict[str, object] = {"scope": node.scope}
    if node.attrs:
        details["attrs"] = node.attrs
    if node.device:
        details["device"] = node.device
    if literal:
        details["path_constants"] = literal[:8]

    def report(threat: Threat, message: str, subject: str, severity: Severity | None = None) -> None:
        ctx.report(
            threat.at(
                file,
                f"{_where(node)} {message}",
                subject=subject,
                offset=node.offset,
                severity=severity,
                details=details,
            )
        )

    if risk is tfops.OpRisk.PATH_ARGUMENT:
        for value in literal:
            verdict = tfops.judge_path(value)
            if verdict:
                report(TF_PATH, f"uses {value!r}, {verdict.reason}", value)
        return
    if risk is not None:
        extra = ""
        if risk is tfops.OpRisk.CODE:
            token = node.attrs.get("token", [""])[0]
            extra = f" (registered function token {token!r})" if token else ""
        elif node.op == "ImmutableConst":
            extra = f" (memory region {node.attrs.get('memory_region_name', [''])[0]!r})"
        elif literal:
            extra = f" (path {literal[0]!r})"
        urls = node.attrs.get("debug_urls")
        if urls:
            extra += f" (debug URLs {', '.join(urls[:3])})"
        # a debug op that ships its tensors to a URL is exfiltration, not just a debug aid
        severity = Severity.HIGH if urls and risk is tfops.OpRisk.DEBUG else None
        report(_RISK_THREAT[risk], f"{risk.value}{extra}", node.op, severity)
        return
    if node.op == "PrintV2":
        stream = node.attrs.get("output_stream", [""])[0]
        if stream.startswith("file://"):
            report(TF_FILE_WRITE, f"prints to {stream}", node.op)
    elif node.op in ("DecodeProtoV2", "EncodeProto"):
        source = node.attrs.get("descriptor_source", ["local://"])[0]
        if source not in ("", "local://"):
            report(TF_FILE_READ, f"reads proto descriptors from {source!r}", node.op)


def report_summary(summary: GraphSummary, file: str, ctx: ScanContext) -> None:
    for node in summary.risky:
        report_node(node, summary, file, ctx)
    for op, use in sorted(summary.ops.items()):
        if tfops.is_known(op) or op in summary.functions:
            continue
        ctx.report(
            TF_UNKNOWN_OP.at(
                file,
                f"op {op or '<empty>'!r} is not in TensorFlow's op registry ({use.count} "
                f"node(s), first {use.first.name!r} in {use.first.scope})",
                subject=op or "<empty>",
                offset=use.first.offset,
            )
        )
    for op in sorted(summary.declared_ops - set(summary.ops)):
        if not tfops.is_known(op) and op not in summary.functions:
            ctx.report(
                TF_UNKNOWN_OP.at(
                    file,
                    f"op {op!r} is declared in the meta graph's op list but is not in "
                    "TensorFlow's op registry",
                    subject=op,
                )
            )
    for name in summary.asset_files:
        verdict = tfops.judge_path(name)
        if verdict:
            ctx.report(TF_PATH.at(file, f"asset file name {name!r} is {verdict.reason}", subject=name))
    for where, text in summary.keras_metadata:
        analyze_json_text(ctx, text, f"Keras metadata of {where}")


def scan_tf_proto(source: ByteSource, ctx: ScanContext, kind: str) -> None:
    ctx.set_format(*FORMAT_BY_KIND[kind])
    summary = GraphSummary()
    try:
        tfgraph.read(tfgraph.open_message(source), kind, summary)
    except WireError as exc:
        ctx.incomplete(f"malformed {FORMAT_BY_KIND[kind][0]} protobuf: {exc}; the rest was not inspected")
    except LimitExceeded as exc:
        ctx.incomplete(str(exc), code="MS-GEN-003")
    report_summary(summary, ctx.path, ctx)


def report_pbtxt(text: bytes, path: str, ctx: ScanContext) -> None:
    """The ``op: "..."`` lines of a text-format SavedModel, checked as a graph's ops."""
    summary = GraphSummary(kind="saved_model")
    for match in OP_IN_PBTXT.finditer(text):
        op = match.group(1).decode("utf-8", "replace")
        node = NodeInfo(name="?", op=op, scope="text graph", offset=match.start(1))
        if op not in summary.ops:
            summary.ops[op] = tfgraph.OpUse(1, node)
        else:
            summary.ops[op].count += 1
        if tfops.classify(op) not in (None, tfops.OpRisk.PATH_ARGUMENT):
            summary.risky.append(node)
    for match in re.finditer(rb'(?m)^\s*signature\s*\{\s*name:\s*"([^"\\]{1,255})"', text):
        summary.functions.add(match.group(1).decode("utf-8", "replace"))
    report_summary(summary, path, ctx)
