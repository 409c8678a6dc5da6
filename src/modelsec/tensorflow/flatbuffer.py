"""A bounded FlatBuffers reader over a :class:`ByteSource` (tables, vtables, vectors,
strings), plus the root-vector subset of FlexBuffers that TFLite Flex ops use.

FlatBuffers are read in place by offsets, so a hostile file can point anywhere: every
offset is checked against the data before it is followed, vectors are checked to fit
before their elements are touched, and callers bound how many elements they visit. Reads
go through a small block cache, so a multi-GiB ``.tflite`` costs only the bytes of the
tables that are actually visited.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelsec.bytesource import ByteSource
from modelsec.protobuf_wire import BlockCache


class FlatBufferError(ValueError):
    """An offset, size or vtable that does not fit the data."""


class FlatBuffer:
    def __init__(self, source: ByteSource) -> None:
        self.src = source if isinstance(source, BlockCache) else BlockCache(source)
        self.size = source.size

    def _read(self, pos: int, n: int) -> bytes:
        if pos < 0 or pos + n > self.size:
            raise FlatBufferError(f"{n}-byte read at offset {pos} outside {self.size} bytes")
        data = self.src.read_at(pos, n)
        if len(data) != n:
            raise FlatBufferError(f"short read at offset {pos}")
        return data

    def u8(self, pos: int) -> int:
        return self._read(pos, 1)[0]

    def u16(self, pos: int) -> int:
        return int.from_bytes(self._read(pos, 2), "little")

    def i32(self, pos: int) -> int:
        return int.from_bytes(self._read(pos, 4), "little", signed=True)

    def u32(self, pos: int) -> int:
        return int.from_bytes(self._read(pos, 4), "little")

    def u64(self, pos: int) -> int:
        return int.from_bytes(self._read(pos, 8), "little")

    def bytes_at(self, pos: int, n: int) -> bytes:
        return self._read(pos, n)

    def root(self) -> Table:
        return Table(self, self.u32(0))


class Table:
    """A table at ``pos``: its vtable says where each field is (0: absent, use default)."""

    __slots__ = ("fb", "pos", "vtable", "vtable_size", "table_size")

    def __init__(self, fb: FlatBuffer, pos: int) -> None:
        if pos < 0 or pos + 4 > fb.size:
            raise FlatBufferError(f"table at offset {pos} outside the data")
        self.fb = fb
        self.pos = pos
        self.vtable = pos - fb.i32(pos)
        if self.vtable < 0 or self.vtable + 4 > fb.size:
            raise FlatBufferError(f"vtable of table at {pos} outside the data")
        self.vtable_size = fb.u16(self.vtable)
        self.table_size = fb.u16(self.vtable + 2)
        if self.vtable_size < 4 or self.vtable_size % 2 or self.vtable + self.vtable_size > fb.size:
            raise FlatBufferError(f"bad vtable size {self.vtable_size} for table at {pos}")
        if self.table_size < 4 or pos + self.table_size > fb.size:
            raise FlatBufferError(f"bad table size {self.table_size} for table at {pos}")

    def _field(self, index: int, width: int) -> int:
        """Absolute position of field ``index`` (0 if absent)."""
        voff = 4 + 2 * index
        if voff + 2 > self.vtable_size:
            return 0
        off = self.fb.u16(self.vtable + voff)
        if off == 0:
            return 0
        if off + width > self.table_size:
            raise FlatBufferError(f"field {index} of table at {self.pos} lies outside the table")
        return self.pos + off

    def has(self, index: int) -> bool:
        return self._field(index, 1) != 0

    def uint(self, index: int, width: int, default: int = 0) -> int:
        at = self._field(index, width)
        if not at:
            return default
        return int.from_bytes(self.fb.bytes_at(at, width), "little")

    def sint(self, index: int, width: int, default: int = 0) -> int:
        at = self._field(index, width)
        if not at:
            return default
        return int.from_bytes(self.fb.bytes_at(at, width), "little", signed=True)

    def _indirect(self, index: int) -> int:
        at = self._field(index, 4)
        if not at:
            return 0
        target = at + self.fb.u32(at)
        if target >= self.fb.size:
            raise FlatBufferError(f"field {index} of table at {self.pos} points outside the data")
        return target

    def table(self, index: int) -> Table | None:
        target = self._indirect(index)
        return Table(self.fb, target) if target else None

    def vector(self, index: int, elem_size: int) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) if absent."""
        vec = self._indirect(index)
        if not vec:
            return 0, 0
        length = self.fb.u32(vec)
        start = vec + 4
        if length * elem_size > self.fb.size - start:
            raise FlatBufferError(
                f"vector field {index} of table at {self.pos} claims {length} elements, more "
                "than the data holds"
            )
        return start, length

    def string(self, index: int, limit: int = 4096) -> str | None:
        vec = self._indirect(index)
        if not vec:
            return None
        length = self.fb.u32(vec)
        if length > self.fb.size - vec - 4:
            raise FlatBufferError(f"string field {index} of table at {self.pos} overruns the data")
        return self.fb.bytes_at(vec + 4, min(length, limit)).decode("utf-8", "replace")

    def tables(self, index: int, limit: int) -> Iterator[Table]:
        """The tables of a vector-of-tables field, at most ``limit`` of them."""
        start, length = self.vector(index, 4)
        for i in range(min(length, limit)):
            at = start + 4 * i
            yield Table(self.fb, at + self.fb.u32(at))

    def vector_len(self, index: int, elem_size: int) -> int:
        return self.vector(index, elem_size)[1]


# --- FlexBuffers ----------------------------------------------------------------------------

FBT_STRING = 5
FBT_KEY = 4
FBT_VECTOR = 10
FBT_BLOB = 25


def flex_root_strings(data: bytes, limit: int = 16) -> list[bytes]:
    """Strings/blobs of a FlexBuffer whose root is an untyped vector (TFLite Flex ops store
    ``[op name, serialized NodeDef]``). Raises :class:`FlatBufferError` on anything else."""

    def uint(pos: int, width: int) -> int:
        if pos < 0 or pos + width > len(data):
            raise FlatBufferError(f"flexbuffer read at {pos} outside {len(data)} bytes")
        return int.from_bytes(data[pos : pos + width], "little")

    if len(data) < 3:
        raise FlatBufferError("flexbuffer shorter than its root")
    root_width = data[-1]
    packed = data[-2]
    if root_width not in (1, 2, 4, 8):
        raise FlatBufferError(f"flexbuffer root width {root_width}")
    root_pos = len(data) - 2 - root_width
    if packed >> 2 != FBT_VECTOR:
        raise FlatBufferError(f"flexbuffer root type {packed >> 2} is not a vector")
    width = 1 << (packed & 3)
    vec = root_pos - uint(root_pos, root_width)
    count = uint(vec - width, width)
    if count > limit or vec + count * width + count > len(data):
        raise FlatBufferError(f"flexbuffer root vector of {count} elements does not fit")
    out: list[bytes] = []
    for i in range(count):
        elem = vec + i * width
        etype = data[vec + count * width + i]
        kind, ewidth = etype >> 2, 1 << (etype & 3)
        if kind not in (FBT_STRING, FBT_BLOB):
            continue
        target = elem - uint(elem, width)
        size = uint(target - ewidth, ewidth)
        if target < 0 or target + size > len(data):
            raise FlatBufferError(f"flexbuffer string {i} does not fit")
        out.append(data[target : target + size])
    return out
