"""The oldest ``torch.save`` layout: a tar whose members ``storages``, ``tensors`` and
``pickle`` are unpickled by ``torch.load`` (``_legacy_load``'s ``legacy_load``).

``pickle`` is one pickle. The other two interleave pickles with raw bytes, and
``torch.load`` unpickles every one of them:

* ``storages``: a pickle of the storage count n; n times a pickle ``(key, location,
  storage type)`` followed by an int64 element count and that many elements (their size
  comes from the storage type); then one pickle of the storage views.
* ``tensors``: a pickle of the tensor count n; n times a pickle ``(key, storage id, type)``
  followed by int32 ndim, 4 padding bytes, ndim int64 sizes, ndim int64 strides and an
  int64 offset.

Scanning such a member as back-to-back pickles would stop at the first raw bytes and
miss every pickle after them, so each stream is located the way torch reads it and
scanned at its offset. What cannot be followed (a count that is not a plain integer, an
unknown storage type, a stream that breaks) stops the walk with an incomplete: fail
closed.
"""

from __future__ import annotations

import struct

from modelsec.archive import threats
from modelsec.archive.members import scan_pickle
from modelsec.archive.pickle_extent import PickleExtent, PickleFramingError, pickle_extent
from modelsec.bytesource import ByteSource, LimitExceeded, SliceSource
from modelsec.context import ScanContext

PICKLE_MEMBERS = frozenset({"storages", "tensors", "pickle"})
MAX_LINE = 1 << 20
MAX_ENTRIES = 1_000_000
# torch/storage.py: bytes per element of each legacy storage class
ELEMENT_SIZES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QUInt8Storage": 1,
    "QInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}


class _Stop(Exception):
    """The walk cannot follow torch any further (already reported)."""


class _Walk:
    def __init__(self, ctx: ScanContext, source: ByteSource, name: str) -> None:
        self.ctx = ctx
        self.source = source
        self.name = name
        self.pos = 0

    def stop(self, why: str) -> _Stop:
        self.ctx.incomplete(
            f"legacy torch member {self.name!r}: {why} at offset {self.pos}; torch.load "
            "unpickles what follows, which was not inspected (failing closed)",
            threats.INCOMPLETE_UNREADABLE,
            self.ctx.member_path(self.name),
        )
        return _Stop()

    def pickle(self) -> PickleExtent:
        """Scan the pickle at ``pos``, move past it; where it was and what it names."""
        try:
            extent = pickle_extent(
                self.source, self.pos, max_opcodes=self.ctx.limits.max_pickle_opcodes, max_line=MAX_LINE
            )
        except (PickleFramingError, LimitExceeded) as exc:
            # what there is goes to the pickle analysis, which reports the break
            scan_pickle(
                self.ctx,
                SliceSource(self.source, self.pos, self.source.size - self.pos),
                f"{self.name}@{self.pos}",
            )
            raise self.stop(f"a pickle stream does not end ({exc})") from None
        scan_pickle(
            self.ctx, SliceSource(self.source, self.pos, extent.end - self.pos), f"{self.name}@{self.pos}"
        )
        self.pos = extent.end
        return extent

    def count(self) -> int:
        start = self.pos
        self.pickle()
        value = small_int(self.source.read_at(start, self.pos - start))
        if value is None or not 0 <= value <= MAX_ENTRIES:
            raise self.stop("the entry count is not a plain integer")
        return value

    def raw(self, n: int) -> bytes:
        data = self.source.read_at(self.pos, n)
        if len(data) < n:
            raise self.stop("the raw data is truncated")
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.source.size:
            raise self.stop("raw data runs past the end of the member")
        self.pos += n


def scan_member(ctx: ScanContext, source: ByteSource, member: str, display: str) -> None:
    """Scan ``member`` (one of :data:`PICKLE_MEMBERS`, shown as ``display``) the way
    ``torch.load`` reads it."""
    if member == "pickle":
        scan_pickle(ctx, source, display)
        return
    walk = _Walk(ctx, source, display)
    try:
        if member == "storages":
            for _ in range(walk.count()):
                size = element_size(walk.pickle())
                if size is None:
                    raise walk.stop("the storage type is not one torch knows")
                (elements,) = struct.unpack("<q", walk.raw(8))
                walk.skip(elements * size)
            walk.pickle()  # the storage views
        else:
            for _ in range(walk.count()):
                walk.pickle()
                (ndim,) = struct.unpack("<i", walk.raw(4))
                walk.skip(4 + 16 * ndim + 8)
    except _Stop:
        return


def element_size(args: PickleExtent) -> int | None:
    """Bytes per element of the storage that ``(key, location, storage type)`` names.

    torch reads ``storage_type._dtype`` from whatever the pickle built; the raw bytes that
    follow are sized by it, and the next pickle starts after them. The size is trusted
    only when the stream can build nothing but literals and one class named by ``GLOBAL``:
    a storage class of ``torch`` or ``torch.cuda``. A literal that names a storage (a key
    such as ``"DoubleStorage"``) is not the type, and a type computed at load time cannot be
    known without running it; either would let the walk skip to another offset than
    torch, over a pickle torch runs."""
    if args.computed or len(args.globals) != 1:
        return None
    module, _, name = args.globals[0].rpartition(".")
    if module not in ("torch", "torch.cuda"):
        return None
    return ELEMENT_SIZES.get(name)


def small_int(data: bytes) -> int | None:
    """The value of a pickle that is just an integer (what torch writes for counts)."""
    pos = 0
    if data[:1] == b"\x80":
        pos = 2
    if data[pos : pos + 1] == b"\x95":  # FRAME
        pos += 9
    op, arg, tail = data[pos : pos + 1], data[pos + 1 : -1], data[-1:]
    if tail != b".":
        return None
    if op == b"K" and len(arg) == 1:
        return arg[0]
    if op == b"M" and len(arg) == 2:
        return int.from_bytes(arg, "little")
    if op == b"J" and len(arg) == 4:
        return int.from_bytes(arg, "little", signed=True)
    if op == b"I" and arg.endswith(b"\n") and arg[:-1].isdigit():
        return int(arg[:-1])
    return None
