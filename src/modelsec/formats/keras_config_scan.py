"""Keras configs into findings: the analysis of :mod:`modelsec.keras.config` reported with
the threats :mod:`modelsec.formats.keras_config` declares (also used by the HDF5 and
SavedModel scanners for the configs they find)."""

from __future__ import annotations

import json
from typing import Any

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.context import ScanContext
from modelsec.findings import Severity
from modelsec.formats.base import FormatCategory
from modelsec.formats.keras_config import (
    KERAS_CUSTOM_OBJECT,
    KERAS_LAMBDA,
    KERAS_MALFORMED,
    KERAS_TFOP_CODE,
    KERAS_TFOP_IO,
    KERAS_TFOP_OTHER,
    KERAS_UNSAFE_API,
    looks_like_keras_json,
)
from modelsec.keras.config import ConfigAnalysis, IssueKind, analyze_config

_THREAT_BY_KIND = {
    IssueKind.LAMBDA: KERAS_LAMBDA,
    IssueKind.CUSTOM_OBJECT: KERAS_CUSTOM_OBJECT,
    IssueKind.UNSAFE_API: KERAS_UNSAFE_API,
    IssueKind.TF_OP_CODE: KERAS_TFOP_CODE,
    IssueKind.TF_OP_IO: KERAS_TFOP_IO,
    IssueKind.TF_OP_OTHER: KERAS_TFOP_OTHER,
}


def report_analysis(ctx: ScanContext, analysis: ConfigAnalysis, where: str = "") -> None:
    """Findings for one analysed config; ``where`` prefixes messages (an HDF5 attribute)."""
    prefix = f"{where}: " if where else ""
    for issue in analysis.issues:
        found = _THREAT_BY_KIND[issue.kind]
        severity = Severity.CRITICAL if issue.critical else None
        ctx.report(
            found.at(
                ctx.path,
                prefix + issue.message,
                subject=issue.subject,
                severity=severity,
                details=issue.details,
            )
        )
    if analysis.dropped_issues:
        ctx.report(
            KERAS_MALFORMED.at(
                ctx.path,
                f"{prefix}{analysis.dropped_issues} more config issues not listed",
                severity=Severity.HIGH,
            )
        )
    if analysis.truncated:
        ctx.incomplete(f"{prefix}{analysis.truncated}")


def analyze_json_text(ctx: ScanContext, text: str | bytes, where: str) -> Any:
    """Parse and analyse a Keras config held as text; returns the parsed value or None."""
    try:
        value = json.loads(text)
    except RecursionError:
        ctx.incomplete(f"{where}: JSON nested too deeply to parse; not inspected")
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        ctx.report(KERAS_MALFORMED.at(ctx.path, f"{where} is not valid JSON ({exc}); not inspected"))
        ctx.incomplete(f"{where} is not valid JSON; its layers could not be inspected")
        return None
    report_analysis(ctx, analyze_config(value), where)
    return value


def scan_keras_config(source: ByteSource, ctx: ScanContext) -> None:
    limit = ctx.limits.max_header_bytes
    if source.size > limit:
        raise LimitExceeded(f"Keras JSON of {source.size} bytes exceeds {limit}; not inspected")
    data = source.read_at(0, source.size)
    kind = looks_like_keras_json(data[:65536])
    if kind == "metadata":
        ctx.set_format("keras-metadata", FormatCategory.AUXILIARY)
        _check_metadata(data, ctx)
        return
    value = analyze_json_text(ctx, data, "Keras config")
    _nested_configs(ctx, value)
    # Other readers of the same JSON (a tokenizer's chat_template beside Keras-looking keys)
    # see its templates: they are analysed here too, as the JSON scanner would.
    from modelsec.templates.config_walk import iter_json_candidates, report_candidates

    if value is not None:
        report_candidates(ctx, iter_json_candidates(value))


def analyze_keras_value(ctx: ScanContext, value: Any) -> None:
    """Analyse a Keras config another scanner has already parsed (the JSON scanner, for a
    document whose byte markers detection could not see)."""
    report_analysis(ctx, analyze_config(value), "Keras config")
    _nested_configs(ctx, value)


def _nested_configs(ctx: ScanContext, value: Any) -> None:
    if isinstance(value, dict) and "model_config" in value:
        # {"model_config": ..., "training_config": ...} with nested JSON strings.
        for key in ("model_config", "training_config"):
            inner = value.get(key)
            if isinstance(inner, str):
                analyze_json_text(ctx, inner, key)


def _check_metadata(data: bytes, ctx: ScanContext) -> None:
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        ctx.report(KERAS_MALFORMED.at(ctx.path, f"metadata.json is not valid JSON ({exc})"))
        return
    if not isinstance(meta, dict):
        ctx.report(KERAS_MALFORMED.at(ctx.path, "metadata.json is not a JSON object"))
        return
    version = meta.get("keras_version")
    if not isinstance(version, str) or not version[:1].isdigit() or len(version) > 64:
        ctx.report(
            KERAS_MALFORMED.at(
                ctx.path, f"metadata.json has an implausible keras_version {str(version)[:64]!r}"
            )
        )
    # Keras writes keras_version and date_saved only; anything that looks like a config
    # here would be ignored by Keras but could fool other tools.
    if "class_name" in json.dumps(meta)[:1_000_000]:
        report_analysis(ctx, analyze_config(meta), "metadata.json")
