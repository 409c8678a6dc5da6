"""Legacy PyTorch files (``torch.save(..., _use_new_zipfile_serialization=False)``).

Layout: five pickles back to back (magic number, protocol version, system info, the
object, the storage keys), then raw storage bytes (per key an 8-byte element count and
the elements). ``torch.load`` unpickles all five, so each one after the (verified) magic
number goes through the pickle analysis, one stream at a time at its offset in the file;
the storage bytes are never unpickled. A stream that breaks is reported by the pickle
analysis; ``torch.load`` stops there too, so nothing after it is read.
"""

from __future__ import annotations

import re
from typing import ClassVar

from modelsec.archive.pickle_extent import PickleFramingError, pickle_extent
from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_MAGIC_LONG1 = b"\x8a\x0a" + MAGIC_NUMBER.to_bytes(10, "little")
_MAGIC_TEXT = b"L" + str(MAGIC_NUMBER).encode() + b"L\n."
# PROTO n, optional FRAME, LONG1 magic, STOP (what pickle writes for protocols 2-5)
_MAGIC_BINARY = re.compile(rb"\A\x80[\x02-\x05](?:\x95[\x00-\xff]{8})?" + re.escape(_MAGIC_LONG1) + rb"\.")
STREAMS = ("protocol version", "system info", "object", "storage keys")
MAX_LINE = 1 << 20

MALFORMED = threat(
    "MS-TORCH-001",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Malformed legacy PyTorch file",
    "Re-save the model with a current torch.save (zip format), or better as safetensors.",
    "The storage data after the pickles does not match the storage keys they list.",
)


def magic_length(head: bytes) -> int | None:
    """Length of the magic-number pickle at the start of ``head``, if it is one."""
    match = _MAGIC_BINARY.match(head)
    if match:
        return match.end()
    if head.startswith(_MAGIC_TEXT):
        return len(_MAGIC_TEXT)
    return None


class LegacyTorchScanner(FormatScanner):
    name: ClassVar[str] = "pytorch-legacy"
    category: ClassVar[FormatCategory] = FormatCategory.MODEL
    priority: ClassVar[int] = 15  # before the generic pickle scanner: same first byte
    readers = (
        Reader("torch.load (legacy format)", "pickles back to back from offset 0, the magic number first"),
    )
    covers = frozenset({"pickle"})  # every stream torch.load unpickles is scanned here

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return magic_length(head) is not None

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        from modelsec.pickle.scanner import scan_pickle_stream  # not for detection (issue 14)

        pos = magic_length(source.read_at(0, 64))
        assert pos is not None  # detect() matched
        for label in STREAMS:
            start = pos
            end = scan_pickle_stream(source, ctx, start)
            if end is None:
                # Broken (reported by the pickle analysis; torch.load stops there too) or
                # stopped by a limit (reported as incomplete). Framing alone may still
                # find the next stream after a limit.
                end = self._frame(source, ctx, start)
                if end is None:
                    return
            pos = end
            if label == "storage keys":
                self._check_storage(source, ctx, pos, self._keys(source, ctx, start))

    def _frame(self, source: ByteSource, ctx: ScanContext, start: int) -> int | None:
        try:
            return pickle_extent(
                source, start, max_opcodes=ctx.limits.max_pickle_opcodes, max_line=MAX_LINE
            ).end
        except (PickleFramingError, LimitExceeded):
            return None

    def _keys(self, source: ByteSource, ctx: ScanContext, start: int) -> list[str]:
        try:
            return pickle_extent(
                source, start, max_opcodes=ctx.limits.max_pickle_opcodes, max_line=MAX_LINE
            ).strings
        except (PickleFramingError, LimitExceeded):
            return []

    def _check_storage(self, source: ByteSource, ctx: ScanContext, pos: int, keys: list[str]) -> None:
        # Element sizes live in the object pickle's storage types, so only the minimum
        # (one 8-byte count per key) is checked here.
        remaining = source.size - pos
        if remaining < 8 * len(keys):
            ctx.report(
                MALFORMED.at(
                    ctx.path,
                    f"{len(keys)} storages listed but only {remaining} bytes of storage data follow",
                    offset=pos,
                )
            )


SCANNER = LegacyTorchScanner()
