"""NumPy ``.npy`` arrays: header checks, object arrays routed to the pickle analysis.

The header is read the way ``numpy.lib.format`` reads it (so that a file numpy loads is
never "unknown" here): magic, version 1.0 / 2.0 / 3.0 with a 2- or 4-byte length, latin-1
(UTF-8 for 3.0) text evaluated with ``ast.literal_eval`` (which builds literals and runs
nothing), Python 2 ``123L`` integers tolerated for versions 1 and 2, exactly the keys
``descr``, ``fortran_order`` and ``shape``. numpy accepts some values it never writes
(booleans or negative numbers in the shape, a repeated key): those are findings, but the
array's data is still scanned as numpy would read it. Arrays whose dtype holds objects
store their data as a pickle (``np.load(allow_pickle=True)`` unpickles it), so that data
goes to the pickle scanner; for all other dtypes the data must be exactly
``prod(shape) * itemsize`` bytes.
"""

from __future__ import annotations

import ast
import io
import math
import struct
import tokenize
from dataclasses import dataclass, field
from typing import Any, ClassVar

from modelsec.archive.members import scan_pickle
from modelsec.bytesource import ByteSource, SliceSource
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader

MAGIC = b"\x93NUMPY"
# numpy refuses headers over 10 000 characters unless the caller trusts the file
# (allow_pickle=True lifts the limit); far beyond that the header is not parsed at all
# (literal_eval cost grows with it): reported instead.
MAX_HEADER = 1 << 20
KEYS = {"descr", "fortran_order", "shape"}
# numpy.lib.format._header_size_info: version -> (length field, text encoding)
_VERSIONS = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}

MALFORMED_HEADER = threat(
    "MS-NPY-001",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Malformed NumPy array header",
    "Re-save the array with numpy.save from trusted data.",
    "The header is not what numpy writes (bad version, length, dict literal, keys, dtype or "
    "shape); numpy versions and other readers disagree on such files.",
)

SIZE_MISMATCH = threat(
    "MS-NPY-002",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "NumPy array data does not match its header",
    "Re-save the array with numpy.save from trusted data.",
    "Truncated data or bytes after the array: appended data is ignored by numpy but can "
    "carry a second payload (it was scanned separately).",
)


@dataclass(frozen=True)
class NpyHeader:
    """A parsed ``.npy`` header: version, where the data starts, dtype, order and shape."""

    version: tuple[int, int]
    data_offset: int
    descr: Any
    fortran_order: bool
    shape: tuple[int, ...]
    oddities: list[str] = field(default_factory=list)  # accepted by numpy, never written


class HeaderError(ValueError):
    pass


def parse_header(source: ByteSource) -> NpyHeader:
    """The header as numpy reads it; :class:`HeaderError` where numpy.load would fail."""
    fixed = source.read_at(0, 12)
    if len(fixed) < 8 or not fixed.startswith(MAGIC):
        raise HeaderError("file is shorter than the .npy preamble")
    version = (fixed[6], fixed[7])
    if version not in _VERSIONS:
        raise HeaderError(f"unsupported format version {version[0]}.{version[1]}")
    length_format, encoding = _VERSIONS[version]
    start = 8 + struct.calcsize(length_format)
    if len(fixed) < start:
        raise HeaderError("file is shorter than the .npy preamble")
    (length,) = struct.unpack_from(length_format, fixed, 8)
    if length > MAX_HEADER:
        raise HeaderError(f"header of {length} bytes exceeds the {MAX_HEADER}-byte bound")
    if start + length > source.size:
        raise HeaderError(f"header of {length} bytes runs past the end of the file ({source.size} bytes)")
    try:
        text = source.read_at(start, length).decode(encoding)
    except UnicodeDecodeError as exc:
        raise HeaderError(f"header is not valid UTF-8: {exc}") from None
    values = _literal(text, python2=version <= (2, 0))
    if not isinstance(values, dict):
        raise HeaderError(f"header is a {type(values).__name__}, not a dict")
    if values.keys() != KEYS:
        raise HeaderError(f"header keys are {sorted(map(repr, values))}, expected {sorted(KEYS)}")
    shape, fortran_order = values["shape"], values["fortran_order"]
    # numpy's own checks: isinstance(x, int) for every dimension, a real bool
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        raise HeaderError(f"shape {shape!r:.200} is not a tuple of integers")
    if not isinstance(fortran_order, bool):
        raise HeaderError("fortran_order is not a boolean")
    oddities = []
    if any(isinstance(d, bool) or d < 0 for d in shape):
        oddities.append(f"shape {shape!r:.200} holds booleans or negative sizes")
    if len(_keys(text)) > len(values):
        oddities.append("header repeats a key (numpy takes the last one)")
    return NpyHeader(version, start + length, values["descr"], fortran_order, shape, oddities)


def _literal(text: str, python2: bool) -> Any:
    """``ast.literal_eval`` of the header, with numpy's fallback for Python 2 headers."""
    try:
        return ast.literal_eval(text)
    except SyntaxError:
        if not python2:
            raise HeaderError("header is not a Python literal") from None
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        raise HeaderError(f"header is not a literal: {type(exc).__name__}") from None
    try:
        return ast.literal_eval(_without_long_suffix(text))
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as exc:
        raise HeaderError(f"header is not a Python literal: {type(exc).__name__}") from None


def _without_long_suffix(text: str) -> str:
    """numpy's ``_filter_header``: drop the ``L`` name token that follows a number."""
    tokens = []
    last_was_number = False
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if not (last_was_number and token.type == tokenize.NAME and token.string == "L"):
                tokens.append(token)
            last_was_number = token.type == tokenize.NUMBER
    except (tokenize.TokenError, SyntaxError) as exc:
        raise HeaderError(f"header is not a Python literal: {type(exc).__name__}") from None
    return tokenize.untokenize(tokens)


def _keys(text: str) -> list[Any]:
    """The keys as written, repeats included (literal_eval keeps the last one)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    body = tree.body
    return list(body.keys) if isinstance(body, ast.Dict) else []


def dtype_of(descr: Any) -> Any:
    """The numpy dtype for a header ``descr``; numpy only builds a type description here,
    it reads no data."""
    import numpy.lib.format as npformat  # lazily: numpy is heavy to import

    try:
        return npformat.descr_to_dtype(descr)
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        RecursionError,
        MemoryError,
        OverflowError,
        SyntaxError,
    ) as exc:  # SyntaxError: ast.literal_eval of '094f8'
        # numpy.load raises the same on this header: the file cannot be loaded as an array
        raise HeaderError(f"dtype {descr!r:.200} is not valid: {type(exc).__name__}") from None


class NpyScanner(FormatScanner):
    name: ClassVar[str] = "numpy-npy"
    category: ClassVar[FormatCategory] = FormatCategory.MODEL
    priority: ClassVar[int] = 10
    readers = (Reader("numpy.load", "'\\x93NUMPY' at offset 0; object data unpickled"),)

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return head.startswith(MAGIC)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        try:
            header = parse_header(source)
            dtype = dtype_of(header.descr)
        except HeaderError as exc:
            ctx.report(MALFORMED_HEADER.at(ctx.path, str(exc)))
            return
        for oddity in header.oddities:
            ctx.report(MALFORMED_HEADER.at(ctx.path, f"{oddity}; numpy still loads it"))
        data = source.size - header.data_offset
        if dtype.hasobject:
            # np.load(allow_pickle=True) unpickles everything after the header.
            scan_pickle(ctx, SliceSource(source, header.data_offset, data), "<object data>")
            return
        expected = math.prod(header.shape) * dtype.itemsize
        if header.oddities and expected < 0:
            return  # reported above; numpy reads whatever follows as the data
        if data < expected:
            ctx.report(
                SIZE_MISMATCH.at(
                    ctx.path,
                    f"array of shape {header.shape} and dtype {dtype.str} needs {expected} "
                    f"bytes, the file holds {data}",
                    offset=header.data_offset,
                )
            )
        elif data > expected:
            end = header.data_offset + expected
            ctx.report(
                SIZE_MISMATCH.at(
                    ctx.path,
                    f"{data - expected} bytes follow the array data; they were scanned separately",
                    offset=end,
                )
            )
            ctx.scan_member(SliceSource(source, end, source.size - end), "<trailing>")


SCANNER = NpyScanner()
