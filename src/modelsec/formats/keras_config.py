"""Keras model configs as JSON: ``config.json`` / ``metadata.json`` of a Keras 3 ``.keras``
archive (handed over member by member by the zip scanner) and standalone ``model.json``.

The analysis itself lives in :mod:`modelsec.keras.config`; this module declares the Keras
threats and turns the analysis into findings, for the HDF5 and SavedModel scanners too.
"""

from __future__ import annotations

import json
from typing import Any

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner
from modelsec.keras.config import ConfigAnalysis, IssueKind, analyze_config

KERAS_LAMBDA = threat(
    "MS-KERAS-001",
    "LoadTimeCodeExecution",
    Severity.HIGH,
    "Keras Lambda with stored Python code",
    "Replace the Lambda with a built-in layer or a registered custom layer whose code you "
    "ship and review; never load the model with safe_mode=False.",
    "A Lambda stores Python bytecode (or source) that Keras rebuilds and runs when the "
    "model is loaded without safe mode, or whenever the layer is called. The message lists "
    "the names the code uses, decoded from the marshal data without running it.",
)
KERAS_CUSTOM_OBJECT = threat(
    "MS-KERAS-002",
    "LoadTimeCodeExecution",
    Severity.HIGH,
    "Keras config needs code from outside Keras",
    "Check that the named module/class is code you trust and install it yourself, or "
    "re-save the model with built-in layers only.",
    "Loading imports the config's `module` and calls the named class or function: a module "
    "outside Keras, a Python builtin or a custom registration runs code the model chooses.",
)
KERAS_UNSAFE_API = threat(
    "MS-KERAS-003",
    "LoadTimeCodeExecution",
    Severity.CRITICAL,
    "Keras config calls a non-modelling Keras API",
    "Do not load this model; a config has no reason to name file, download or "
    "deserialisation utilities.",
    "Functions such as keras.utils.get_file, keras.models.load_model or "
    "keras.config.enable_unsafe_deserialization sit inside Keras' namespace and were used to "
    "bypass safe_mode (CVE-2025-1550 and later).",
)
KERAS_TFOP_CODE = threat(
    "MS-KERAS-004",
    "LoadTimeCodeExecution",
    Severity.CRITICAL,
    "Keras TFOpLambda calls a TensorFlow function that runs Python or loads native code",
    "Do not load this model; replace the call with a graph op.",
)
KERAS_TFOP_IO = threat(
    "MS-KERAS-005",
    "SuspiciousComponents",
    Severity.HIGH,
    "Keras TFOpLambda calls a TensorFlow function that reaches files, network or runtime",
    "Remove the call from the model; models should not read or write files when called.",
)
KERAS_TFOP_OTHER = threat(
    "MS-KERAS-006",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Keras TFOpLambda calls a TensorFlow function outside the math/array set",
    "Review the call; if it is a plain tensor operation, allow it by policy.",
)
KERAS_MALFORMED = threat(
    "MS-KERAS-007",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Malformed Keras config or metadata",
    "Re-save the model with Keras; a config that Keras itself would not write is suspect.",
)

_THREAT_BY_KIND = {
    IssueKind.LAMBDA: KERAS_LAMBDA,
    IssueKind.CUSTOM_OBJECT: KERAS_CUSTOM_OBJECT,
    IssueKind.UNSAFE_API: KERAS_UNSAFE_API,
    IssueKind.TF_OP_CODE: KERAS_TFOP_CODE,
    IssueKind.TF_OP_IO: KERAS_TFOP_IO,
    IssueKind.TF_OP_OTHER: KERAS_TFOP_OTHER,
}

CONFIG_MARKERS = (b'"module"', b'"registered_name"', b'"keras_version"', b'"backend"', b'"layers"')


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


def looks_like_keras_json(head: bytes) -> str | None:
    """``config`` / ``metadata`` if the head of a JSON text is a Keras document."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"{"):
        return None
    if b'"model_config"' in text:
        return "config"
    if b'"class_name"' in text and b'"config"' in text and any(m in text for m in CONFIG_MARKERS):
        return "config"
    if b'"keras_version"' in text and b'"date_saved"' in text and b'"class_name"' not in text:
        return "metadata"
    return None


class KerasConfigScanner(FormatScanner):
    name = "keras-config"
    category = FormatCategory.AUXILIARY
    priority = 30

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return looks_like_keras_json(head) is not None

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        limit = ctx.limits.max_header_bytes
        if source.size > limit:
            raise LimitExceeded(f"Keras JSON of {source.size} bytes exceeds {limit}; not inspected")
        data = source.read_at(0, source.size)
        kind = looks_like_keras_json(data[:65536])
        if kind == "metadata":
            ctx.set_format("keras-metadata", FormatCategory.AUXILIARY)
            self._check_metadata(data, ctx)
            return
        value = analyze_json_text(ctx, data, "Keras config")
        if isinstance(value, dict) and "model_config" in value:
            # {"model_config": ..., "training_config": ...} with nested JSON strings.
            for key in ("model_config", "training_config"):
                inner = value.get(key)
                if isinstance(inner, str):
                    analyze_json_text(ctx, inner, key)

    def _check_metadata(self, data: bytes, ctx: ScanContext) -> None:
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


SCANNER = KerasConfigScanner()
