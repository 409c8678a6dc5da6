"""How much nested scanning one pickle source may cause.

Loader payloads (``pickle.loads(b'...')``, ``torch.load(io.BytesIO(...))``) and embedded
pickles are scanned as members of the source that holds them. Each costs a scan and,
unless it is a slice of the file itself, memory for the rebuilt bytes; a crafted file
could ask for millions of either. Past either bound the rest is reported as not inspected
(fail closed), never silently skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelsec.bytesource import ByteSource, SliceSource
from modelsec.context import ScanContext
from modelsec.pickle import threats

MAX_NESTED_SCANS = 1000  # loader payloads and embedded pickles scanned per source
NESTED_BYTES_FACTOR = 4  # nested payload bytes per source: this many times max_inline_bytes


@dataclass
class NestedBudget:
    """The nested scans and rebuilt bytes one source has used so far."""

    ctx: ScanContext
    scans: int = 0
    rebuilt_bytes: int = 0

    @property
    def max_bytes(self) -> int:
        return NESTED_BYTES_FACTOR * self.ctx.limits.max_inline_bytes

    def may_scan(self) -> bool:
        """Count one more nested scan; False past :data:`MAX_NESTED_SCANS` (reported once)."""
        self.scans += 1
        if self.scans == MAX_NESTED_SCANS + 1:
            self.ctx.incomplete(
                f"more than {MAX_NESTED_SCANS} nested pickles in one file; the rest were not inspected",
                code=threats.INCOMPLETE_LIMIT,
            )
        return self.scans <= MAX_NESTED_SCANS

    def charge(self, payload: ByteSource, what: str) -> bool:
        """Count bytes rebuilt in memory for a nested scan; past the budget, fail closed.
        (A slice of the file costs no memory, and each literal is scanned once.)"""
        if isinstance(payload, SliceSource):
            return True
        self.rebuilt_bytes += payload.size
        if self.rebuilt_bytes <= self.max_bytes:
            return True
        self.ctx.incomplete(
            f"{what}: nested payloads exceed {self.max_bytes} bytes in total; not inspected",
            code=threats.INCOMPLETE_PAYLOAD,
        )
        return False
