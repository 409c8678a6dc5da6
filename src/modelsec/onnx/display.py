"""Model-supplied text made safe to show: names, op types and paths in an ONNX file are
attacker-chosen, and reports end up in terminals (ANSI escapes), JSON writers (lone
surrogates from invalid UTF-8 cannot be encoded) and logs."""

from __future__ import annotations


def printable(text: str, limit: int = 300) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``, ``\\udcff``) and cut
    to ``limit`` characters."""
    out = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[: limit * 2])
    return out if len(out) <= limit and len(text) <= limit * 2 else out[: limit - 3] + "..."
