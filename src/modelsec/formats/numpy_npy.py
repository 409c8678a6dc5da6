"""NumPy ``.npy`` arrays: header checks, object arrays routed to the pickle analysis.

The header is a Python dict literal. It is only evaluated (``ast.literal_eval``) after the
parsed tree was checked to be a plain dict of literals, and only up to
:data:`MAX_HEADER` bytes. Arrays whose dtype holds objects store their data as a pickle
(``np.load(allow_pickle=True)`` unpickles it), so that data goes to the pickle scanner;
for all other dtypes the data must be exactly ``prod(shape) * itemsize`` bytes.
"""

from __future__ import annotations

import ast
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from modelsec.archive.members import scan_pickle
from modelsec.bytesource import ByteSource, SliceSource
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader

MAGIC = b"\x93NUMPY"
# numpy itself refuses headers over 10 000 bytes unless the caller trusts the file; far
# beyond that the header is not parsed at all (literal_eval cost grows with it).
MAX_HEADER = 1 << 20
KEYS = {"descr", "fortran_order", "shape"}
_PY2_LONG = re.compile(r"\b(\d+)L\b")

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

_LITERAL_NODES = (
    ast.Expression, ast.Dict, ast.Tuple, ast.List, ast.Constant, ast.UnaryOp, ast.USub,
    ast.UAdd, ast.Load,
)


@dataclass(frozen=True)
class NpyHeader:
    version: tuple[int, int]
    data_offset: int
    descr: Any
    fortran_order: bool
    shape: tuple[int, ...]


class HeaderError(ValueError):
    pass


def parse_header(source: ByteSource) -> NpyHeader:
    """The validated header of an ``.npy`` source; :class:`HeaderError` says what is wrong."""
    fixed = source.read_at(0, 12)
    if len(fixed) < 10 or not fixed.startswith(MAGIC):
        raise HeaderError("file is shorter than the .npy preamble")
    major, minor = fixed[6], fixed[7]
    if major == 1:
        (length,) = struct.unpack_from("<H", fixed, 8)
        start = 10
    elif major in (2, 3):
        if len(fixed) < 12:
            raise HeaderError("file is shorter than the .npy preamble")
        (length,) = struct.unpack_from("<I", fixed, 8)
        start = 12
    else:
        raise HeaderError(f"unsupported format version {major}.{minor}")
    if minor != 0:
        raise HeaderError(f"unsupported format version {major}.{minor}")
    if length > MAX_HEADER:
        raise HeaderError(f"header of {length} bytes exceeds the {MAX_HEADER}-byte bound")
    if start + length > source.size:
        raise HeaderError(
            f"header of {length} bytes runs past the end of the file ({source.size} bytes)"
        )
    raw = source.read_at(start, length)
    try:
        text = raw.decode("utf-8" if major == 3 else "latin1")
    except UnicodeDecodeError as exc:
        raise HeaderError(f"header is not valid UTF-8: {exc}") from None
    try:
        values = _literal_dict(text)
    except HeaderError:
        if major > 2 or not _PY2_LONG.search(text):
            raise
        # numpy accepts headers written by Python 2 ("(3L, 4L)") in versions 1 and 2
        values = _literal_dict(_PY2_LONG.sub(r"\1", text))
    if set(values) != KEYS:
        raise HeaderError(f"header keys are {sorted(map(str, values))}, expected {sorted(KEYS)}")
    shape = values["shape"]
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise HeaderError(f"shape {shape!r} is not a tuple of non-negative integers")
    if not isinstance(values["fortran_order"], bool):
        raise HeaderError("fortran_order is not a boolean")
    return NpyHeader((major, minor), start + length, values["descr"], values["fortran_order"], shape)


def _literal_dict(text: str) -> dict[str, Any]:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise HeaderError(f"header is not a Python literal: {type(exc).__name__}") from None
    if not isinstance(tree.body, ast.Dict):
        raise HeaderError("header is not a dict literal")
    for node in ast.walk(tree):
        if not isinstance(node, _LITERAL_NODES):
            raise HeaderError(f"header contains a {type(node).__name__} expression")
    if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in tree.body.keys):
        raise HeaderError("header keys are not all strings")
    try:
        value = ast.literal_eval(tree)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise HeaderError(f"header is not a literal: {type(exc).__name__}") from None
    if len(value) != len(tree.body.keys):
        raise HeaderError("header repeats a key")
    return value  # type: ignore[no-any-return]


def dtype_of(descr: Any) -> Any:
    """The numpy dtype for a header ``descr``; numpy only builds a type description here,
    it reads no data."""
    import numpy.lib.format as npformat  # lazily: numpy is heavy to import

    try:
        return npformat.descr_to_dtype(descr)
    except (TypeError, ValueError, KeyError, IndexError, RecursionError, MemoryError,
            OverflowError) as exc:
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
        data = source.size - header.data_offset
        if dtype.hasobject:
            # np.load(allow_pickle=True) unpickles everything after the header.
            scan_pickle(ctx, SliceSource(source, header.data_offset, data), "<object data>")
            return
        expected = math.prod(header.shape) * dtype.itemsize
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
                    f"{data - expected} bytes follow the array data; they were scanned "
                    "separately",
                    offset=end,
                )
            )
            ctx.scan_member(SliceSource(source, end, source.size - end), "<trailing>")


SCANNER = NpyScanner()
