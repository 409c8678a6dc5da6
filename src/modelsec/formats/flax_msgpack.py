"""Flax weights (``flax_model.msgpack``): one MessagePack object, a map of maps whose leaves
are arrays packed as extension type 1 holding ``packb((shape, dtype name, bytes))``, as
``flax.serialization.msgpack_serialize`` writes them.

``flax.serialization.msgpack_restore`` is ``msgpack.unpackb(data, ext_hook=..., raw=False)``:
it builds dicts, lists, strings, numbers and arrays and calls nothing the file names, so
there is no code path to look for. What can be wrong is structure: a stream that breaks,
or bytes after the object (``unpackb`` rejects them), so tools disagree about the file.
The walk reads token headers and skips payloads: a multi-gigabyte file costs a few small
reads per tensor.

MessagePack has no magic number and most bytes are valid one-byte tokens, so detection
asks for what Flax writes: a map with string keys whose first leaf array is an extension
of type 1 that holds a ``(shape, dtype, bytes)`` triple.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from modelsec.bytesource import ByteSource, SliceSource
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader

MALFORMED = threat(
    "MS-FLAX-001",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Malformed msgpack weights",
    "Re-save the weights with flax.serialization (or convert them to safetensors).",
    "The MessagePack stream breaks, nests too deeply, or has bytes after the object, which "
    "msgpack.unpackb rejects: readers disagree about such a file.",
)

MAX_DEPTH = 512  # nesting msgpack.unpackb accepts by default
MAX_TOKENS = 10_000_000  # headers one scan reads (each costs a read of a few bytes)
DETECT_TOKENS = 64  # detection looks this far for the first array leaf
ARRAY_EXT = 1  # flax's _MsgpackExtType.ndarray
_DTYPE = re.compile(rb"[a-z][a-z0-9_]{1,15}\Z")  # numpy dtype names: float32, bfloat16 ...

_FIXED = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
_SIZED = {
    0xC4: (1, "bin"),
    0xC5: (2, "bin"),
    0xC6: (4, "bin"),
    0xD9: (1, "str"),
    0xDA: (2, "str"),
    0xDB: (4, "str"),
    0xDC: (2, "array"),
    0xDD: (4, "array"),
    0xDE: (2, "map"),
    0xDF: (4, "map"),
    0xC7: (1, "ext"),
    0xC8: (2, "ext"),
    0xC9: (4, "ext"),
}


class MsgpackError(ValueError):
    pass


@dataclass(frozen=True)
class Token:
    """One MessagePack item header: its kind, size and where it and its payload are."""

    kind: str  # map, array, str, bin, ext, atom
    size: int  # items (map: pairs, array: elements) or payload bytes
    offset: int  # of the header
    payload: int  # offset of the payload (str, bin, ext data after the type byte)
    ext_type: int = 0
    is_key: bool = False


class _Reader:
    """Small reads through a one-window buffer (token headers sit close together)."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self._data = b""
        self._at = 0

    def read(self, offset: int, n: int) -> bytes:
        end = self._at + len(self._data)
        if not (self._at <= offset and offset + n <= end):
            self._data = self.source.read_at(offset, max(n, 4096))
            self._at = offset
        data = self._data[offset - self._at : offset - self._at + n]
        if len(data) < n:
            raise MsgpackError(f"the stream ends inside a token at offset {offset}")
        return data


def tokens(source: ByteSource, max_tokens: int) -> Iterator[Token]:
    """The tokens of the one object at offset 0, depth first; payloads are skipped. After the
    last token, yields nothing more; :class:`MsgpackError` if the stream breaks."""
    reader = _Reader(source)
    pos = 0
    pending: list[tuple[int, bool]] = [(1, False)]  # (items left, is a map) per container
    count = 0
    while pending:
        left, is_map = pending[-1]
        if left == 0:
            pending.pop()
            continue
        pending[-1] = (left - 1, is_map)
        is_key = is_map and left % 2 == 0
        count += 1
        if count > max_tokens:
            raise MsgpackError(f"more than {max_tokens} tokens (at offset {pos})")
        token = _token(reader, pos, is_key)
        if token.kind in ("map", "array"):
            if len(pending) > MAX_DEPTH:
                raise MsgpackError(f"nested deeper than {MAX_DEPTH} levels at offset {pos}")
            pending.append((2 * token.size if token.kind == "map" else token.size, token.kind == "map"))
            pos = token.payload
        else:
            pos = token.payload + token.size
            if pos > source.size:
                raise MsgpackError(
                    f"a {token.kind} of {token.size} bytes at offset "
                    f"{token.offset} runs past the end of the file"
                )
        yield token
    yield Token("end", 0, pos, pos)


def _token(reader: _Reader, pos: int, is_key: bool) -> Token:
    b = reader.read(pos, 1)[0]
    if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
        return Token("atom", 0, pos, pos + 1, is_key=is_key)
    if b <= 0x8F:
        return Token("map", b & 0x0F, pos, pos + 1, is_key=is_key)
    if b <= 0x9F:
        return Token("array", b & 0x0F, pos, pos + 1, is_key=is_key)
    if b <= 0xBF:
        return Token("str", b & 0x1F, pos, pos + 1, is_key=is_key)
    if b in _FIXED:
        return Token("atom", _FIXED[b], pos, pos + 1, is_key=is_key)
    if 0xD4 <= b <= 0xD8:  # fixext 1, 2, 4, 8, 16: a type byte, then the data
        ext_type = reader.read(pos + 1, 1)[0]
        return Token("ext", 1 << (b - 0xD4), pos, pos + 2, ext_type, is_key)
    if b not in _SIZED:
        raise MsgpackError(f"byte {b:#04x} at offset {pos} is not a MessagePack type")
    width, kind = _SIZED[b]
    n = int.from_bytes(reader.read(pos + 1, width), "big")
    if kind == "ext":
        ext_type = reader.read(pos + 1 + width, 1)[0]
        return Token("ext", n, pos, pos + 2 + width, ext_type, is_key)
    return Token(kind, n, pos, pos + 1 + width, is_key=is_key)


def _is_array_leaf(source: ByteSource, token: Token) -> bool:
    """Extension type 1 holding packb((shape, dtype name, raw bytes)), all of it."""
    if token.ext_type != ARRAY_EXT or token.size < 4:
        return False
    inner = SliceSource(source, token.payload, token.size)
    try:
        parts = tokens(inner, 4 + 64)
        top = next(parts)
        if top.kind != "array" or top.size != 3:
            return False
        shape = next(parts)
        if shape.kind != "array":
            return False
        for _ in range(shape.size):
            if next(parts).kind != "atom":
                return False
        dtype = next(parts)
        if dtype.kind != "str" or not _DTYPE.match(inner.read_at(dtype.payload, dtype.size)):
            return False
        data = next(parts)
        return data.kind == "bin" and next(parts).kind == "end" and next(parts, None) is None
    except (MsgpackError, StopIteration):
        return False


def looks_like_flax(head: bytes, source: ByteSource) -> bool:
    """A map with string keys whose first leaf is an array extension (within the first
    :data:`DETECT_TOKENS` tokens)."""
    if not head or not (0x81 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        return False
    try:
        for token in tokens(source, DETECT_TOKENS):
            if token.is_key and token.kind != "str":
                return False
            if token.kind == "ext":
                return _is_array_leaf(source, token)
    except MsgpackError:
        return False
    return False


class FlaxMsgpackScanner(FormatScanner):
    name: ClassVar[str] = "flax-msgpack"
    category: ClassVar[FormatCategory] = FormatCategory.MODEL
    priority: ClassVar[int] = 42  # no magic number: after every format that has one
    readers = (
        Reader(
            "flax.serialization.from_bytes (msgpack.unpackb)",
            "one MessagePack object from offset 0 to the end of the file",
        ),
    )

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return looks_like_flax(head, source)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        end = 0
        try:
            for token in tokens(source, MAX_TOKENS):
                end = token.offset
        except MsgpackError as exc:
            ctx.report(MALFORMED.at(ctx.path, f"the MessagePack stream breaks: {exc}"))
            return
        if end != source.size:
            ctx.report(
                MALFORMED.at(
                    ctx.path,
                    f"{source.size - end} bytes follow the MessagePack object (msgpack.unpackb "
                    "rejects the file); they were scanned separately",
                    offset=end,
                )
            )
            ctx.scan_member(SliceSource(source, end, source.size - end), "<trailing>")


SCANNER = FlaxMsgpackScanner()
