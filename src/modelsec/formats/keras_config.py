"""Keras model configs as JSON: ``config.json`` / ``metadata.json`` of a Keras 3 ``.keras``
archive (handed over member by member by the zip scanner) and standalone ``model.json``.

This module recognises the documents and declares the Keras threats; the analysis lives in
:mod:`modelsec.keras.config`, and :mod:`modelsec.formats.keras_config_scan` turns it into
findings (for the HDF5 and SavedModel scanners too), imported for Keras files only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsec.bytesource import ByteSource
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner

if TYPE_CHECKING:
    from modelsec.context import ScanContext

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
    "Do not load this model; a config has no reason to name file, download or deserialisation utilities.",
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

CONFIG_MARKERS = (b'"module"', b'"registered_name"', b'"keras_version"', b'"backend"', b'"layers"')


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


_MARKER_KEYS = frozenset({"module", "registered_name", "keras_version", "backend", "layers"})


def is_keras_document(value: object) -> bool:
    """A parsed JSON value that Keras would deserialize as a model: what
    :func:`looks_like_keras_json` looks for in bytes, judged on the parsed value (keys
    written with escapes, another encoding or after padding are the same keys to
    ``json.loads``)."""
    if not isinstance(value, dict):
        return False
    if "model_config" in value:
        return True
    if "class_name" not in value or "config" not in value:
        return False
    inner = value["config"]
    return bool(_MARKER_KEYS & value.keys()) or (
        isinstance(inner, dict) and bool(_MARKER_KEYS & inner.keys())
    )


class KerasConfigScanner(FormatScanner):
    name = "keras-config"
    category = FormatCategory.AUXILIARY
    priority = 30

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return looks_like_keras_json(head) is not None

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        from modelsec.formats.keras_config_scan import scan_keras_config  # Keras files only

        scan_keras_config(source, ctx)


SCANNER = KerasConfigScanner()
