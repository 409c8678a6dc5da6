"""File contents the engine keeps for rules that judge them after the scan.

Rules see a :class:`~modelsec.engine.ScanReport`, never the model's bytes: the operator
evaluates a cached report again when a group changes, long after the source was read.
A signature bundle is the exception: ``SignatureVerified`` needs its bytes, and for a
remote model reading them again would mean another trip to the source (with credentials
the rule does not have). So the engine keeps the bytes of files named like signatures
while it scans them (the same read, nothing fetched twice for small files), bounded per
file and per report so that a model full of ``*.sig`` files cannot exhaust memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelsec.bytesource import ByteSource

SIGNATURE_SUFFIX = ".sig"  # OpenSSF model signing writes model.sig by default
# A bundle holds one line per signed file (~200 bytes, base64 in the envelope): 4 MiB is
# ~15,000 files. Larger signature files are not kept; the rule then says so and fails closed.
MAX_FILE_BYTES = 4 << 20
MAX_REPORT_BYTES = 16 << 20


def is_signature_name(path: str) -> bool:
    """Whether a file (display path) is named like a signature bundle."""
    return path.rsplit("/", 1)[-1].lower().endswith(SIGNATURE_SUFFIX)


def capture(path: str, source: ByteSource) -> bytes | None:
    """The whole content of ``source`` if it is a signature-named file small enough to
    keep, else None. Never raises: a failed read leaves None and the rule that needs the
    bytes reports it (the scan itself has already reported the read failure)."""
    if not is_signature_name(path) or not 0 < source.size <= MAX_FILE_BYTES:
        return None
    try:
        data = source.read_at(0, source.size)
    except Exception:
        return None
    return data if len(data) == source.size else None
