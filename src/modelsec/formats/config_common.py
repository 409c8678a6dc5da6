"""What the JSON and YAML config scanners share: their threats, text decoding and the
text-likeness test used by content detection."""

from __future__ import annotations

from modelsec.bytesource import ByteSource
from modelsec.findings import Severity, threat

DUPLICATE_KEY = threat(
    "MS-CFG-001",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Config has duplicate keys",
    "Remove the duplicate keys so that every reader sees the same configuration.",
    "JSON and YAML parsers disagree on which of two equal keys wins (first, last, error): a "
    "reviewer or scanner can be shown one value while the loader uses the other. Every "
    "value is analysed.",
)
YAML_PYTHON_TAG = threat(
    "MS-CFG-002",
    "LoadTimeCodeExecution",
    Severity.CRITICAL,
    "YAML config constructs Python objects",
    "Remove the !!python/... tags; configs must hold plain data.",
    "A ``!!python/object``, ``!!python/name`` or ``!!python/module`` tag imports and calls "
    "Python code when the file is read with an unsafe loader (``yaml.load`` without "
    "SafeLoader, ``yaml.unsafe_load``, older PyYAML defaults).",
)

# Incomplete codes.
CONFIG_TOO_LARGE = "MS-CFG-090"
CONFIG_UNPARSEABLE = "MS-CFG-091"


def decode_text(data: bytes) -> str | None:
    """UTF-8 text (a BOM is dropped); None if the bytes are not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def head_is_text(head: bytes, source: ByteSource) -> bool:
    """The head decodes as UTF-8 (a multi-byte character cut at its end is allowed) and has
    no NUL bytes."""
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = (
            len(head) < source.size and exc.reason == "unexpected end of data" and exc.start >= len(head) - 3
        )
        if not cut:
            return False
    return True
