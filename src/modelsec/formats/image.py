"""Images (README figures, sample inputs, a PNG someone named ``.pt``), recognised by
their signature so that they are data, not "unknown".

Nothing is decoded: image decoders are not model loaders, and every model or container
format that could also claim the bytes (a pickle at offset 0, an HDF5 superblock after a
user block, a zip directory at the end) is still asked by the engine and scanned.
"""

from __future__ import annotations

from modelsec.bytesource import ByteSource
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner

# Signatures of at least four fixed bytes (or checked fields), so that raw tensor data does
# not pass for an image.
_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG: SOI followed by a marker
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)


def is_image(head: bytes, size: int) -> bool:
    if head.startswith(_SIGNATURES):
        return not head.startswith(b"\xff\xd8\xff") or (len(head) > 3 and head[3] >= 0xC0)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8 <= size
    if head[:2] == b"BM" and len(head) >= 14:
        return int.from_bytes(head[2:6], "little") == size  # BMP records the file size
    return False


class ImageScanner(FormatScanner):
    name = "image"
    category = FormatCategory.AUXILIARY
    priority = 90

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return is_image(head, source.size)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        return None


SCANNER = ImageScanner()
