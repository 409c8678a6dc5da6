"""Text from untrusted places (file names, archive members, reasons quoting file content)
made safe to show to a human: in a terminal, a Kubernetes Event, a webhook denial, a log.

A file name may hold escape sequences that clear the screen and print a green "ALLOWED";
a reason may hold a newline that forges a second log record. :func:`printable` replaces
every control and format character (C0, DEL, C1, bidi overrides, line and paragraph
separators) by a visible escape, so what is shown is what the bytes are.
"""

from __future__ import annotations

import unicodedata

# Unicode categories that move the cursor, reorder text or are invisible: Cc (C0, DEL, C1),
# Cf (bidi overrides, zero-width joiners), Zl/Zp (line and paragraph separators), Cs (lone
# surrogates, from file names that are not valid UTF-8).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character a terminal or log viewer would interpret escaped.

    Plain text (including non-ASCII letters) is unchanged; a backslash stays a backslash,
    so the result is for display, not for parsing back.
    """
    if text.isprintable():
        return text  # the common case: one C-level scan
    return "".join(_escape(ch) if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text)
