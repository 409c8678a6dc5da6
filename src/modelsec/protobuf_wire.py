"""A small, bounded reader for the protobuf wire format, over a :class:`ByteSource`.

Model formats built on protobuf (ONNX ``ModelProto``, TensorFlow ``SavedModel``/``GraphDef``)
are parsed here field by field instead of through generated classes: generated parsers
materialise every byte (a 2 GB ``raw_data`` tensor becomes a 2 GB ``bytes``), and we only
need the structure around the big payloads. This module knows nothing about any schema.

The API is deliberately small:

* :class:`Message` is a message occupying ``[start, end)`` of a source at a nesting depth.
  :meth:`Message.fields` lazily yields :class:`Field` records; a length-delimited field is
  *not* read, only located (``start``/``length``), so skipping a huge tensor costs nothing.
* :meth:`Message.child` opens a length-delimited field (or group) as a nested message,
  enforcing :attr:`WireLimits.max_depth`.
* :meth:`Message.read` / :meth:`Message.text` materialise a payload, refusing more than a
  caller-given bound; :meth:`Message.iter_packed` walks packed repeated scalars lazily.
* ``to_int64`` / ``to_int32`` / ``to_sint64`` / ``to_float`` / ``to_double`` turn the raw
  unsigned values of :class:`Field` into the schema's types.

Malformed data raises :class:`WireError` (a ``ValueError``); a reached limit raises
:class:`~modelsec.bytesource.LimitExceeded`. Nothing else is expected to escape.

Semantics the schema readers must keep in mind (they are protobuf's, not ours): fields may
come in any order; a singular scalar that appears twice takes the *last* value; a singular
*message* that appears twice is *merged* (its repeated fields concatenated), so a reader
must walk every occurrence; a field whose wire type does not match the schema is an
unknown field and is ignored by real parsers.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

from modelsec.bytesource import ByteSource, LimitExceeded

VARINT = 0
I64 = 1
LEN = 2
SGROUP = 3
EGROUP = 4
I32 = 5

MAX_FIELD_NUMBER = (1 << 29) - 1
_WINDOW = 64 * 1024  # bytes a cursor reads at a time
_MASK64 = (1 << 64) - 1


class WireError(ValueError):
    """The bytes are not valid protobuf wire data; ``offset`` is absolute in the source."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.offset = offset


@dataclass(frozen=True)
class WireLimits:
    """Bounds for one parse. ``max_depth`` counts nested messages and groups from the
    outermost message opened with depth 0; ``max_read`` bounds any single materialised
    payload (callers pass tighter bounds for names and strings)."""

    max_depth: int = 64
    max_read: int = 64 << 20


class Field(NamedTuple):
    """One field occurrence. ``offset`` is where its tag starts (absolute).

    For ``VARINT``/``I64``/``I32`` fields ``value`` is the raw unsigned integer (use the
    ``to_*`` helpers) and ``start`` the offset of the value. For ``LEN`` and ``SGROUP``
    fields ``start`` is the absolute offset of the payload and ``value`` its length.
    (A named tuple: models have millions of fields and creating one must be cheap.)
    """

    number: int
    wire_type: int
    offset: int
    start: int
    value: int

    @property
    def length(self) -> int:
        """Payload length of a LEN/group field (0 for scalars)."""
        return self.value if self.wire_type in (LEN, SGROUP) else 0

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def is_len(self) -> bool:
        return self.wire_type == LEN


def to_int64(raw: int) -> int:
    """Two's-complement view of a varint/fixed64 (int64, sfixed64, enum)."""
    raw &= _MASK64
    return raw - (1 << 64) if raw >> 63 else raw


def to_int32(raw: int) -> int:
    """int32 / sfixed32 (negative int32 varints are sign-extended to 64 bits)."""
    raw &= 0xFFFFFFFF
    return raw - (1 << 32) if raw >> 31 else raw


def to_sint64(raw: int) -> int:
    """Zigzag-decoded sint32/sint64."""
    raw &= _MASK64
    return (raw >> 1) ^ -(raw & 1)


# Each unpacks one little-endian IEEE float of the width named.
_FLOAT32: Callable[[bytes], tuple[float]] = struct.Struct("<f").unpack
_FLOAT64: Callable[[bytes], tuple[float]] = struct.Struct("<d").unpack


def to_float(raw: int) -> float:
    """A fixed32 field holding an IEEE float."""
    return _FLOAT32((raw & 0xFFFFFFFF).to_bytes(4, "little"))[0]


def to_double(raw: int) -> float:
    return _FLOAT64((raw & _MASK64).to_bytes(8, "little"))[0]


class _Broken(Exception):
    """The walk is certain to raise here."""


class _Undecided(Exception):
    """The bytes read cannot tell how the walk goes on."""


class _HeadWalk:
    """Reads tags and field bodies from a message's first bytes as :meth:`Message.fields`
    reads them from the whole message. ``whole``: the bytes are all of the message, so
    reading past them is the walk's WireError (a truncated varint, fixed value, length or
    group) rather than something only more bytes could tell."""

    def __init__(self, head: bytes, whole: bool) -> None:
        self.head = head
        self.whole = whole

    def past_the_end(self) -> Exception:
        return _Broken() if self.whole else _Undecided()

    def varint(self, i: int) -> tuple[int, int]:
        """The varint at ``i`` and the index after it, as :meth:`_Cursor.varint` reads it."""
        head = self.head
        if i < len(head) and head[i] < 0x80:  # most tags and lengths: one byte
            return head[i], i + 1
        result = shift = 0
        for j in range(i, min(len(head), i + 10)):
            b = head[j]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result & _MASK64, j + 1
            shift += 7
        if len(head) - i >= 10:
            raise _Broken  # longer than 10 bytes
        raise self.past_the_end()

    def tag(self, i: int) -> tuple[int, int, int]:
        """(number, wire type, next index) of the tag at ``i``, as :meth:`Message._tag`."""
        value, i = self.varint(i)
        number, wire = value >> 3, value & 7
        if number == 0 or number > MAX_FIELD_NUMBER or wire > I32:
            raise _Broken
        return number, wire, i

    def body(self, i: int, number: int, wire: int, depth: int) -> tuple[int, int]:
        """(value, next index) of a field's body, as :meth:`Message._field` reads it: a
        varint's value, a length, 0 for fixed-width fields and groups."""
        if wire == VARINT:
            return self.varint(i)
        if wire in (I64, I32):
            end = i + (8 if wire == I64 else 4)
            if end > len(self.head):
                raise self.past_the_end()
            return 0, end
        if wire == LEN:
            length, start = self.varint(i)
            if start + length > len(self.head):
                raise self.past_the_end()
            return length, start + length
        # SGROUP: nested fields up to the matching end-group. Two levels at most, within any
        # walk's depth limit (a limit reached first would raise LimitExceeded instead).
        if depth >= HEAD_GROUP_DEPTH:
            raise _Undecided
        while True:
            if i >= len(self.head):
                raise self.past_the_end()  # the group is not closed
            inner, inner_wire, i = self.tag(i)
            if inner_wire == EGROUP:
                if inner != number:
                    raise _Broken
                return 0, i
            _, i = self.body(i, inner, inner_wire, depth + 1)


HEAD_GROUP_DEPTH = 2
HeadField = tuple[int, int, int]  # number, wire type, value (see _HeadWalk.body)


def fields_before_a_break(head: bytes, fields: int, size: int | None = None) -> list[HeadField] | None:
    """The top-level fields that a walk of the message ``head`` starts
    (:meth:`Message.fields`, any depth limit of 3 or more) yields before it certainly raises
    :class:`WireError`: at an invalid tag (a field number of 0 or past the maximum, a wire
    type of 6 or 7, an end-group outside its group or closing another), a varint longer than
    10 bytes, or, when ``size`` (the message's) says ``head`` is all of it, a field or group
    that runs past the end. None when the bytes cannot tell within ``fields + 1`` fields (a
    field reaching past a partial head, groups nested deeper than :data:`HEAD_GROUP_DEPTH`,
    the end of the message at a field boundary, where the walk ends without an error).

    Detectors that walk a file's top level skip the walk with this: most files that are
    not protobuf (a pickle's PROTO and FRAME, tensor bytes) break within their first
    fields, and setting up a walk costs more than reading a few tags."""
    walk = _HeadWalk(head, size is not None and size <= len(head))
    out: list[HeadField] = []
    i = 0
    try:
        for _ in range(fields + 1):
            if i >= len(head):
                return None
            number, wire, i = walk.tag(i)
            if wire == EGROUP:
                raise _Broken
            value, i = walk.body(i, number, wire, 0)
            out.append((number, wire, value))
    except _Broken:
        return out
    except _Undecided:
        return None
    return None


class BlockCache:
    """A :class:`ByteSource` that keeps a few aligned blocks of another source in memory.

    Walking nested messages reads the same bytes at several levels (the graph's window,
    then each node's, then each attribute's); over ``pread`` that is cheap, over HTTP range
    requests it is not. Memory stays at ``block * blocks`` bytes; reads larger than a few
    blocks go straight to the parent.
    """

    def __init__(self, parent: ByteSource, block: int = 64 * 1024, blocks: int = 64) -> None:
        self._parent = parent
        self._block = block
        self._max = blocks
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    @property
    def size(self) -> int:
        return self._parent.size

    def _get(self, index: int) -> bytes:
        data = self._cache.get(index)
        if data is not None:
            self._cache.move_to_end(index)
            return data
        data = self._parent.read_at(index * self._block, self._block)
        self._cache[index] = data
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return data

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        size = self.size
        if offset >= size or length == 0:
            return b""
        length = min(length, size - offset)
        if length > 4 * self._block:
            return self._parent.read_at(offset, length)
        first, last = offset // self._block, (offset + length - 1) // self._block
        parts = [self._get(i) for i in range(first, last + 1)]
        joined = parts[0] if len(parts) == 1 else b"".join(parts)
        skip = offset - first * self._block
        return joined[skip : skip + length]


class _Cursor:
    """Sequential decoding of ``[pos, end)`` through a bounded window of bytes. With
    ``preload`` (the bytes of exactly that range, already in memory) it never reads."""

    __slots__ = ("src", "pos", "end", "buf", "base", "whole")

    def __init__(
        self, src: ByteSource, pos: int, end: int, preload: bytes | memoryview | None = None
    ) -> None:
        self.src = src
        self.pos = pos
        self.end = end
        self.buf: bytes | memoryview = preload if preload is not None else b""
        self.base = pos  # source offset of buf[0]
        self.whole = preload is not None

    def _window(self, need: int) -> tuple[bytes | memoryview, int]:
        """The buffer and the index of ``pos`` in it, holding ``need`` bytes if the range
        has them."""
        i = self.pos - self.base
        if not self.whole and (i < 0 or i + need > len(self.buf)):
            want = min(max(_WINDOW, need), self.end - self.pos)
            self.buf = self.src.read_at(self.pos, want) if want > 0 else b""
            self.base = self.pos
            i = 0
        return self.buf, i

    def varint(self) -> int:
        # Fast path: most tags and lengths are one byte. The buffer never extends past
        # ``end``, so an index inside it is inside the message.
        i = self.pos - self.base
        buf = self.buf
        if 0 <= i < len(buf):
            b = buf[i]
            if b < 0x80:
                self.pos += 1
                return b
        start = self.pos
        buf, i = self._window(10)
        limit = min(len(buf), i + 10, i + (self.end - start))
        result = 0
        shift = 0
        while i < limit:
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                self.pos = self.base + i
                return result & _MASK64
            shift += 7
        if i - (start - self.base) >= 10:
            raise WireError("varint longer than 10 bytes", start)
        raise WireError("truncated varint", start)

    def fixed(self, n: int) -> int:
        if self.end - self.pos < n:
            raise WireError(f"truncated fixed{n * 8}", self.pos)
        buf, i = self._window(n)
        if len(buf) - i < n:
            raise WireError(f"truncated fixed{n * 8}", self.pos)
        self.pos += n
        return int.from_bytes(buf[i : i + n], "little")

    def skip(self, n: int) -> None:
        if n > self.end - self.pos:
            raise WireError(f"length {n} runs past the end of its message", self.pos)
        self.pos += n


PackedKind = Literal["varint", "fixed32", "fixed64"]
_SCALAR_WIRE = {"varint": VARINT, "fixed32": I32, "fixed64": I64}


class Message:
    """A protobuf message in ``[start, end)`` of ``source``, at nesting ``depth``."""

    __slots__ = ("source", "start", "end", "depth", "limits", "_data", "_cursor")

    def __init__(
        self,
        source: ByteSource,
        start: int = 0,
        end: int | None = None,
        *,
        depth: int = 0,
        limits: WireLimits | None = None,
        _data: bytes | memoryview | None = None,
    ) -> None:
        end = source.size if end is None else end
        if start < 0 or end < start or end > source.size:
            raise WireError(f"message range [{start}, {end}) outside {source.size} bytes", start)
        self.source = source
        self.start = start
        self.end = end
        self.depth = depth
        self.limits = limits or WireLimits()
        # The bytes of [start, end) when the parent already had them in memory, and the
        # cursor of the latest walk: nested messages and strings are sliced from there
        # instead of being read again.
        self._data = _data
        self._cursor: _Cursor | None = None
        if depth > self.limits.max_depth:
            raise LimitExceeded(
                f"protobuf messages nested deeper than {self.limits.max_depth} levels at offset {start}"
            )

    @property
    def size(self) -> int:
        return self.end - self.start

    def fields(self) -> Iterator[Field]:
        """Yield every field in order, lazily. Raises :class:`WireError` at the first
        malformed byte (fields before it have been yielded)."""
        cur = _Cursor(self.source, self.start, self.end, self._data)
        self._cursor = cur
        end = self.end
        # The two common wire types are decoded inline: this loop runs once per field of
        # the model.
        while cur.pos < end:
            offset = cur.pos
            tag = cur.varint()
            number, wire = tag >> 3, tag & 7
            if number == 0 or number > MAX_FIELD_NUMBER:
                raise WireError(f"invalid field number {number}", offset)
            if wire == LEN:
                length = cur.varint()
                start = cur.pos
                if length > end - start:
                    raise WireError(f"length {length} runs past the end of its message", start)
                cur.pos = start + length
                yield Field(number, LEN, offset, start, length)
            elif wire == VARINT:
                start = cur.pos
                yield Field(number, VARINT, offset, start, cur.varint())
            elif wire == EGROUP:
                raise WireError(f"end-group for field {number} without a start-group", offset)
            elif wire > I32:
                raise WireError(f"invalid wire type {wire}", offset)
            else:
                yield self._field(cur, number, wire, offset, self.depth)

    @staticmethod
    def _tag(cur: _Cursor) -> tuple[int, int]:
        offset = cur.pos
        tag = cur.varint()
        number, wire = tag >> 3, tag & 7
        if number == 0 or number > MAX_FIELD_NUMBER:
            raise WireError(f"invalid field number {number}", offset)
        if wire > I32:
            raise WireError(f"invalid wire type {wire}", offset)
        return number, wire

    def _field(self, cur: _Cursor, number: int, wire: int, offset: int, depth: int) -> Field:
        if wire == VARINT:
            start = cur.pos
            return Field(number, wire, offset, start, cur.varint())
        if wire == I64:
            start = cur.pos
            return Field(number, wire, offset, start, cur.fixed(8))
        if wire == I32:
            start = cur.pos
            return Field(number, wire, offset, start, cur.fixed(4))
        if wire == LEN:
            length = cur.varint()
            start = cur.pos
            cur.skip(length)  # checks the length against the message end: no allocation
            return Field(number, wire, offset, start, length)
        # SGROUP: find the matching end-group, walking (and bounding) nested groups.
        start = cur.pos
        content_end = self._skip_group(cur, number, depth + 1, offset)
        return Field(number, SGROUP, offset, start, content_end - start)

    def _skip_group(self, cur: _Cursor, number: int, depth: int, offset: int) -> int:
        if depth > self.limits.max_depth:
            raise LimitExceeded(
                f"protobuf groups nested deeper than {self.limits.max_depth} levels at offset {offset}"
            )
        while cur.pos < cur.end:
            tag_at = cur.pos
            inner, wire = self._tag(cur)
            if wire == EGROUP:
                if inner != number:
                    raise WireError(f"end-group {inner} closes group {number}", tag_at)
                return tag_at
            self._field(cur, inner, wire, tag_at, depth)
        raise WireError(f"group {number} is not closed", offset)

    def _in_memory(self, start: int, end: int) -> memoryview | None:
        """``[start, end)`` from bytes this message already holds, if it does."""
        if self._data is not None:
            return memoryview(self._data)[start - self.start : end - self.start]
        cur = self._cursor
        if cur is not None:
            i, j = start - cur.base, end - cur.base
            if i >= 0 and j <= len(cur.buf):
                return memoryview(cur.buf)[i:j]
        return None

    def child(self, field: Field) -> Message:
        """The nested message held by a LEN (or group) field, one level deeper."""
        if field.wire_type not in (LEN, SGROUP):
            raise WireError(f"field {field.number} is not length-delimited", field.offset)
        return Message(
            self.source,
            field.start,
            field.end,
            depth=self.depth + 1,
            limits=self.limits,
            _data=self._in_memory(field.start, field.end),
        )

    def read(self, field: Field, max_len: int | None = None) -> bytes:
        """The payload of a LEN field; :class:`LimitExceeded` if longer than ``max_len``
        (default :attr:`WireLimits.max_read`)."""
        bound = self.limits.max_read if max_len is None else max_len
        if field.wire_type != LEN:
            raise WireError(f"field {field.number} is not length-delimited", field.offset)
        n = field.value
        if n > bound:
            raise LimitExceeded(
                f"field {field.number} at offset {field.offset} holds {n} bytes, "
                f"more than the limit of {bound}"
            )
        held = self._in_memory(field.start, field.start + n)
        data = bytes(held) if held is not None else self.source.read_at(field.start, n)
        if len(data) != n:
            raise WireError("payload shorter than its length", field.start)
        return data

    def read_prefix(self, field: Field, n: int) -> bytes:
        """At most the first ``n`` bytes of a LEN payload (for previews and sniffing)."""
        if field.wire_type != LEN:
            raise WireError(f"field {field.number} is not length-delimited", field.offset)
        end = field.start + min(n, field.length)
        held = self._in_memory(field.start, end)
        return bytes(held) if held is not None else self.source.read_at(field.start, end - field.start)

    def text(self, field: Field, max_len: int | None = None) -> str:
        """A LEN payload as text; invalid UTF-8 is replaced, not trusted."""
        return self.read(field, max_len).decode("utf-8", errors="replace")

    def iter_packed(self, field: Field, kind: PackedKind) -> Iterator[int]:
        """Raw values of a repeated scalar field occurrence: a packed LEN payload (read
        lazily, in windows) or a single unpacked value of the matching wire type. Values
        of any other wire type yield nothing (an unknown field to real parsers)."""
        if field.wire_type == _SCALAR_WIRE[kind]:
            yield field.value
            return
        if field.wire_type != LEN:
            return
        cur = _Cursor(self.source, field.start, field.end, self._in_memory(field.start, field.end))
        if kind == "varint":
            while cur.pos < cur.end:
                yield cur.varint()
        else:
            width = 4 if kind == "fixed32" else 8
            if field.length % width:
                raise WireError(f"packed fixed{width * 8} payload of {field.length} bytes", field.start)
            while cur.pos < cur.end:
                yield cur.fixed(width)
