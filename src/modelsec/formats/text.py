"""Plain text (READMEs, licences, source files, configs nobody else claimed).

It runs last: every format with a real signature, and the permissive pickle and template
detectors, get the file first. Text is auxiliary: scanned for nothing, approved everywhere.
"""

from __future__ import annotations

from modelsec.bytesource import ByteSource
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner

_CONTROL = set(range(0, 9)) | {11} | set(range(14, 32)) | {127}


class TextScanner(FormatScanner):
    name = "text"
    category = FormatCategory.AUXILIARY
    priority = 95
    fallback = True  # only when no other format claims the file

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        if not head or b"\x00" in head:
            return False
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut off by the end of the head is still text.
            truncated = len(head) < source.size and exc.reason == "unexpected end of data"
            if not truncated:
                return False
        controls = sum(1 for b in head if b in _CONTROL)
        return controls <= len(head) // 100

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        return None


SCANNER = TextScanner()
