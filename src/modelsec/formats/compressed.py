"""Single compressed streams: gzip, bz2, xz, lzma, lz4 frames and zlib (including joblib's
legacy ``ZF`` files). The stream is decoded in bounded chunks under the expansion limits
and its content scanned by content (a joblib pickle, a tar, an ONNX graph ...).

One scanner serves all codecs; it records the codec as the format name (``gzip``,
``bz2``, ``xz``, ``lzma``, ``lz4``, ``zlib``). Compressed tar archives are claimed first by
the tar scanner, which streams them member by member.
"""

from __future__ import annotations

from typing import ClassVar

from modelsec.archive import threats
from modelsec.archive.decompress import DecodeStream, looks_like_zlib, sniff_codec
from modelsec.archive.members import spool_decoded
from modelsec.bytesource import ByteSource, SliceSource
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner, Reader, filename_of

FORMAT_NAMES = {
    "gzip": "gzip",
    "bz2": "bz2",
    "xz": "xz",
    "lzma-alone": "lzma",
    "lz4": "lz4",
    "zlib": "zlib",
}
# joblib < 0.10 ("compat" files): b"ZF", the data length in 19 characters, then a zlib
# stream. joblib.load takes any file that starts with b"ZF" this way and reads the length
# with int(field, 16), so case, blanks, a 0x prefix, a sign and underscores are all
# accepted; one extra space after the field is skipped (python 2 joblib <= 0.8.4 wrote it).
_JOBLIB_ZF_PREFIX = b"ZF"
_JOBLIB_ZF_FIELD = 19  # len("{:#x}".format(2**64)), joblib's _MAX_LEN
_JOBLIB_ZF_HEADER = len(_JOBLIB_ZF_PREFIX) + _JOBLIB_ZF_FIELD
_SUFFIXES = (".gz", ".tgz", ".bz2", ".tbz2", ".tbz", ".xz", ".txz", ".lzma", ".lz4", ".z", ".zlib")


def joblib_zfile(head: bytes) -> tuple[int, int] | None:
    """(offset of the zlib data, declared length) of a joblib "compat" file, read the way
    joblib's ``read_zfile`` reads it; None where joblib.load itself would fail first."""
    if not head.startswith(_JOBLIB_ZF_PREFIX) or len(head) <= _JOBLIB_ZF_HEADER:
        return None
    try:
        declared = int(head[len(_JOBLIB_ZF_PREFIX) : _JOBLIB_ZF_HEADER], 16)
    except ValueError:
        return None
    if declared < 0:  # zlib.decompress refuses a negative buffer size
        return None
    start = _JOBLIB_ZF_HEADER + (head[_JOBLIB_ZF_HEADER : _JOBLIB_ZF_HEADER + 1] == b" ")
    return start, declared


def identify(head: bytes) -> tuple[str, int, int | None] | None:
    """(codec, offset of the compressed data, declared size or None)."""
    zfile = joblib_zfile(head)
    if zfile is not None and looks_like_zlib(head[zfile[0] :]):
        return "zlib", zfile[0], zfile[1]
    codec = sniff_codec(head)
    if codec is None:
        return None
    return codec, 0, None


def inner_name(filename: str) -> str:
    lower = filename.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix) and len(filename) > len(suffix):
            stem = filename[: -len(suffix)]
            return stem + ".tar" if suffix.startswith(".t") else stem
    return filename or "<decompressed>"


class CompressedScanner(FormatScanner):
    name: ClassVar[str] = "compressed"
    category: ClassVar[FormatCategory] = FormatCategory.CONTAINER
    priority: ClassVar[int] = 30
    readers = (
        Reader("joblib.load", "compressor magic at offset 0 (zlib, gzip, bz2, xz, lzma, lz4, 'ZF' zfile)"),
        Reader("gzip, bz2, lzma, zlib, lz4.frame", "a stream header at offset 0"),
    )

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return identify(head) is not None

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        found = identify(source.read_at(0, 64 * 1024))
        if found is None:  # only reachable through an explicit expect="compressed"
            ctx.report(threats.MALFORMED_ARCHIVE.at(ctx.path, "not a recognised compressed stream"))
            return
        codec, start, declared = found
        ctx.set_format(FORMAT_NAMES[codec], FormatCategory.CONTAINER)
        name = inner_name(filename_of(ctx.path))
        stream = DecodeStream(
            source,
            start,
            source.size - start,
            codec,
            account=ctx.account_expansion,
            max_ratio=ctx.limits.max_expansion_ratio,
            what=f"{FORMAT_NAMES[codec]} stream",
        )
        decoded = spool_decoded(ctx, stream, name)
        if decoded is None:
            return
        try:
            if decoded.error:
                ctx.report(
                    threats.MALFORMED_ARCHIVE.at(ctx.path, f"{decoded.error}; the decoded part was scanned")
                )
            elif declared is not None and declared != decoded.source.size:
                ctx.report(
                    threats.SIZE_MISMATCH.at(
                        ctx.path,
                        f"joblib header declares {declared} bytes, the stream holds {decoded.source.size}",
                    )
                )
            if decoded.trailing_offset is not None:
                end = decoded.trailing_offset
                ctx.report(
                    threats.TRAILING_DATA.at(
                        ctx.path,
                        f"{source.size - end} bytes follow the compressed stream; they were "
                        "scanned separately",
                        offset=end,
                    )
                )
                ctx.scan_member(SliceSource(source, end, source.size - end), "<trailing>")
            ctx.scan_member(decoded.source, name)
        finally:
            decoded.close()


SCANNER = CompressedScanner()
