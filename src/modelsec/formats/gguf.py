"""GGUF (llama.cpp / ggml): header, metadata key-values and tensor-info table, read from
bytes with strict bounds; chat templates in the metadata analysed statically.

Layout (ggml ``docs/gguf.md``): magic ``GGUF``, version (uint32; 1 to 3), tensor count and
key-value count (uint64; uint32 in v1), the key-values (key string, uint32 value type,
value), the tensor infos (name string, uint32 n_dims <= 4, dims, uint32 ggml type, uint64
offset relative to the data section), padding to ``general.alignment`` (default 32), data.
Strings are a uint64 length (uint32 in v1) and UTF-8 bytes; arrays a uint32 element type,
a uint64 count and the elements.

Only the header region is read, front to back with a bounded window; tensor data is never
read here (the engine hashes it). Every count and length is checked against what is left of
the file before anything is allocated, so a multi-GB model costs its header and a hostile
one cannot make us allocate what it claims.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from modelsec.bytesource import CHUNK, ByteSource, LimitExceeded
from modelsec.context import ScanContext
from modelsec.findings import Severity, Threat, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NAME = 64  # GGML_MAX_NAME, including the terminating NUL: names are < 64 bytes
MAX_KEY = 65535  # the spec's bound on key length
MAX_ARRAY_NESTING = 3
MAX_TENSORS = 1 << 20  # far beyond any real model; bounds the memory of the checks
MAX_TEMPLATE_BYTES = 8 << 20
TEMPLATE_KEY = "tokenizer.chat_template"
INT64_MAX = (1 << 63) - 1

# gguf value types: code -> (name, fixed size or 0 for string/array)
VALUE_TYPES: dict[int, tuple[str, int]] = {
    0: ("UINT8", 1),
    1: ("INT8", 1),
    2: ("UINT16", 2),
    3: ("INT16", 2),
    4: ("UINT32", 4),
    5: ("INT32", 4),
    6: ("FLOAT32", 4),
    7: ("BOOL", 1),
    8: ("STRING", 0),
    9: ("ARRAY", 0),
    10: ("UINT64", 8),
    11: ("INT64", 8),
    12: ("FLOAT64", 8),
}
STRING, ARRAY, UINT32, BOOL = 8, 9, 4, 7

# ggml tensor types: code -> (name, elements per block, bytes per block). Codes missing here
# were removed from ggml (Q4_2, Q4_3, the Q4_0_x_y and IQ4_NL_x_y repacks) and llama.cpp
# refuses them.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

_REMEDY = (
    "Do not load this file; re-download or re-convert the model from its source. GGUF "
    "loaders trust these fields to map memory."
)
GGUF_HEADER = threat(
    "MS-GGUF-001",
    "SuspiciousComponents",
    Severity.HIGH,
    "Malformed GGUF header",
    _REMEDY,
    "Unknown version, or tensor/key counts the file cannot hold, or a header cut short.",
)
GGUF_METADATA = threat(
    "MS-GGUF-002",
    "SuspiciousComponents",
    Severity.HIGH,
    "Malformed GGUF metadata",
    _REMEDY,
    "A key-value with an unknown type, a string or array longer than the file, arrays nested "
    "too deeply, a key that is not UTF-8, or an invalid general.alignment.",
)
GGUF_TENSOR_INFO = threat(
    "MS-GGUF-003",
    "SuspiciousComponents",
    Severity.HIGH,
    "Malformed GGUF tensor info",
    _REMEDY,
    "A tensor with more than 4 dimensions, dimensions whose product overflows, an unknown "
    "ggml type, rows that are not whole blocks, or a name of 64 bytes or more.",
)
GGUF_TENSOR_DATA = threat(
    "MS-GGUF-004",
    "SuspiciousComponents",
    Severity.HIGH,
    "GGUF tensor data outside the file, misaligned or overlapping",
    _REMEDY,
    "A tensor whose data would lie past the end of the file, at an offset that is not a "
    "multiple of the alignment, or over another tensor's data: memory-mapping loaders read "
    "out of bounds or alias tensors.",
)
GGUF_DUPLICATE = threat(
    "MS-GGUF-005",
    "SuspiciousComponents",
    Severity.HIGH,
    "Duplicate GGUF keys or tensor names",
    _REMEDY,
    "Two metadata entries with one key (two chat templates, two alignments) or two tensors "
    "with one name: readers disagree on which one wins, so what was reviewed is not "
    "necessarily what runs. Every duplicate template is analysed.",
)
INCOMPLETE_LIMIT = "MS-GGUF-090"


class Malformed(Exception):
    """The structure is broken at ``offset``: nothing after it can be located."""

    def __init__(self, kind: str, message: str, offset: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.offset = offset


class _Cursor:
    """Front-to-back reading with a bounded window. Reads never go past ``limit`` (the
    header budget) or the end of the source; skips move without reading."""

    def __init__(self, source: ByteSource, limit: int) -> None:
        self.source = source
        self.size = source.size
        self.limit = limit
        self.pos = 0
        self._buf = b""
        self._buf_start = 0

    def remaining(self) -> int:
        return self.size - self.pos

    def _check(self, n: int, what: str, kind: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise Malformed(
                kind,
                f"{what} of {n} bytes at offset {self.pos} runs past the end of the file ({self.size} bytes)",
                self.pos,
            )
        if self.pos + n > self.limit:
            raise LimitExceeded(
                f"GGUF header region extends past {self.limit} bytes (at offset {self.pos}); "
                "the rest was not inspected"
            )

    def read(self, n: int, what: str = "value", kind: str = "metadata") -> bytes:
        self._check(n, what, kind)
        end = self.pos + n
        if not (self._buf_start <= self.pos and end <= self._buf_start + len(self._buf)):
            self._buf = self.source.read_at(self.pos, min(max(n, CHUNK), self.size - self.pos))
            self._buf_start = self.pos
            if len(self._buf) < n:
                raise Malformed(kind, f"short read at offset {self.pos}", self.pos)
        start = self.pos - self._buf_start
        self.pos = end
        return self._buf[start : start + n]

    def skip(self, n: int, what: str = "value", kind: str = "metadata") -> None:
        self._check(n, what, kind)
        self.pos += n

    def uint(self, size: int, byteorder: Literal["little", "big"], what: str, kind: str = "metadata") -> int:
        """An unsigned integer of ``size`` bytes."""
        return int.from_bytes(self.read(size, what, kind), byteorder)

    def skip_strings(self, count: int, length: struct.Struct, what: str) -> None:
        """Skip ``count`` length-prefixed strings (token lists run to hundreds of thousands:
        this is the hot loop, so it works on the window directly)."""
        size = length.size
        unpack = length.unpack_from
        end_ok = min(self.size, self.limit)
        pos, buf, start = self.pos, self._buf, self._buf_start
        for _ in range(count):
            if pos + size > start + len(buf):
                if pos + size > end_ok:
                    self.pos = pos
                    self._check(size, f"{what} length", "metadata")
                buf = self.source.read_at(pos, min(CHUNK, self.size - pos))
                start = pos
            n = unpack(buf, pos - start)[0]
            pos += size
            if n > self.size - pos:
                self.pos = pos
                raise Malformed(
                    "metadata", f"{what} claims {n} bytes at offset {pos}, only {self.size - pos} remain", pos
                )
            pos += n
        self._buf, self._buf_start = buf, start
        self.pos = pos
        self._check(0, what, "metadata")


@dataclass
class _Tensor:
    """One tensor-info record of a GGUF file."""

    name: str
    offset: int
    nbytes: int | None  # None: unknown type, size not computable
    at: int  # where its info starts in the file


@dataclass
class GGUFHeader:
    """What the scan learnt; also returned for tests and tools."""

    version: int = 0
    big_endian: bool = False
    tensor_count: int = 0
    kv_count: int = 0
    alignment: int = DEFAULT_ALIGNMENT
    keys: list[str] = field(default_factory=list)
    templates: dict[str, list[str]] = field(default_factory=dict)
    tensors: int = 0
    data_start: int | None = None


class _Parser:
    def __init__(self, source: ByteSource, ctx: ScanContext) -> None:
        self.ctx = ctx
        self.cur = _Cursor(source, ctx.limits.max_header_bytes)
        self.header = GGUFHeader()
        self.e = "<"
        self.uint_fmt, self.uint_size = "Q", 8

    # --- reporting ------------------------------------------------------------------------
    def finding(self, which: Threat, message: str, offset: int | None, subject: str | None = None) -> None:
        self.ctx.report(which.at(self.ctx.path, message, offset=offset, subject=subject))

    # --- primitives -----------------------------------------------------------------------
    @property
    def byteorder(self) -> Literal["little", "big"]:
        return "big" if self.e == ">" else "little"

    def uint(self, what: str, kind: str = "metadata") -> int:
        return self.cur.uint(self.uint_size, self.byteorder, what, kind)

    def u32(self, what: str, kind: str = "metadata") -> int:
        return self.cur.uint(4, self.byteorder, what, kind)

    def string_length(self, what: str, kind: str = "metadata") -> int:
        n = self.uint(f"{what} length", kind)
        if n > self.cur.remaining():
            raise Malformed(
                kind,
                f"{what} claims {n} bytes at offset {self.cur.pos}, only {self.cur.remaining()} remain",
                self.cur.pos,
            )
        return n

    # --- the file -------------------------------------------------------------------------
    def run(self) -> GGUFHeader:
        try:
            self._header()
            self._metadata()
            self._tensors()
        except Malformed as exc:
            which = {"header": GGUF_HEADER, "metadata": GGUF_METADATA, "tensor": GGUF_TENSOR_INFO}[exc.kind]
            self.finding(which, f"{exc}; the rest of the file cannot be located", exc.offset)
        return self.header

    def _header(self) -> None:
        h = self.header
        if self.cur.read(4, "magic", "header") != MAGIC:
            raise Malformed("header", "not a GGUF file (bad magic)", 0)
        raw = self.cur.read(4, "version", "header")
        version = struct.unpack("<I", raw)[0]
        if version not in (1, 2, 3):
            swapped = struct.unpack(">I", raw)[0]
            if swapped in (1, 2, 3):
                self.e, version, h.big_endian = ">", swapped, True
            else:
                raise Malformed("header", f"unsupported GGUF version {version} (known: 1 to 3)", 4)
        h.version = version
        if version == 1:
            # v1 used 32-bit counts and lengths; llama.cpp no longer loads it
            self.uint_fmt, self.uint_size = "I", 4
        h.tensor_count = self.uint("tensor count", "header")
        h.kv_count = self.uint("key-value count", "header")
        left = self.cur.remaining()
        # smallest possible entries: a 1-byte key + type + 1-byte value; an empty name with
        # no dimensions + type + offset
        min_kv = self.uint_size + 1 + 4 + 1
        min_tensor = self.uint_size + 4 + 4 + 8
        if h.kv_count > left // min_kv:
            raise Malformed(
                "header",
                f"key-value count {h.kv_count} cannot fit in the {left} bytes that follow the header",
                8 + self.uint_size,
            )
        if h.tensor_count > left // min_tensor:
            raise Malformed(
                "header",
                f"tensor count {h.tensor_count} cannot fit in the {left} bytes that follow the header",
                8,
            )
        if h.tensor_count > MAX_TENSORS:
            raise LimitExceeded(
                f"GGUF declares {h.tensor_count} tensors (limit {MAX_TENSORS}); not inspected"
            )

    def _metadata(self) -> None:
        h = self.header
        seen: set[str] = set()
        for _ in range(h.kv_count):
            at = self.cur.pos
            n = self.string_length("key")
            if n == 0 or n > MAX_KEY:
                raise Malformed("metadata", f"key length {n} at offset {at} is outside 1..{MAX_KEY}", at)
            raw = self.cur.read(n, "key")
            try:
                key = raw.decode("utf-8")
            except UnicodeDecodeError:
                key = raw.decode("utf-8", errors="replace")
                self.finding(GGUF_METADATA, f"key at offset {at} is not UTF-8: {key[:80]!r}", at, key[:80])
            if key in seen:
                self.finding(
                    GGUF_DUPLICATE, f"metadata key {key[:120]!r} appears more than once", at, key[:120]
                )
            seen.add(key)
            h.keys.append(key[:256])
            vtype = self.u32("value type")
            self._value(key, vtype, at, depth=0)

    def _value(self, key: str, vtype: int, at: int, depth: int) -> None:
        if vtype not in VALUE_TYPES:
            raise Malformed("metadata", f"key {key[:120]!r} has unknown value type {vtype}", at)
        if vtype == STRING:
            self._string_value(key, at)
        elif vtype == ARRAY:
            self._array(key, at, depth + 1)
        else:
            size = VALUE_TYPES[vtype][1]
            if key == "general.alignment" and depth == 0:
                raw = self.cur.read(size, key)
                if vtype == UINT32:  # any other type is reported below
                    self._alignment(int.from_bytes(raw, self.byteorder), at)
            elif vtype == BOOL and depth == 0:
                value = self.cur.read(1, key)[0]
                if value > 1:
                    self.finding(
                        GGUF_METADATA, f"key {key[:120]!r} is a bool with byte value {value}", at, key[:120]
                    )
            else:
                self.cur.skip(size, key)
        if key == "general.alignment" and depth == 0 and vtype != UINT32:
            self.finding(
                GGUF_METADATA,
                f"general.alignment has type {VALUE_TYPES[vtype][0]}, not UINT32; loaders reject or misread it",
                at,
                "general.alignment",
            )

    def _alignment(self, value: int, at: int) -> None:
        if value <= 0 or value & (value - 1):
            self.finding(
                GGUF_METADATA,
                f"general.alignment {value} is not a positive power of two",
                at,
                "general.alignment",
            )
            return
        self.header.alignment = value

    def _string_value(self, key: str, at: int) -> None:
        n = self.string_length(f"string value of {key[:120]!r}")
        if not is_template_key(key):
            self.cur.skip(n)
            return
        if n > MAX_TEMPLATE_BYTES:
            self.cur.skip(n)
            self.ctx.incomplete(
                f"GGUF {key} of {n} bytes exceeds {MAX_TEMPLATE_BYTES}; not inspected", code=INCOMPLETE_LIMIT
            )
            return
        raw = self.cur.read(n, f"value of {key}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            self.finding(GGUF_METADATA, f"{key} is not valid UTF-8", at, key)
        self.header.templates.setdefault(key, []).append(text)
        from modelsec.templates import report as report_template  # Jinja: only for templates

        report_template(self.ctx, text, key, strict=True)

    def _array(self, key: str, at: int, depth: int) -> None:
        if depth > MAX_ARRAY_NESTING:
            raise Malformed("metadata", f"key {key[:120]!r} nests arrays deeper than {MAX_ARRAY_NESTING}", at)
        etype = self.u32(f"array element type of {key[:120]!r}")
        if etype not in VALUE_TYPES:
            raise Malformed("metadata", f"array {key[:120]!r} has unknown element type {etype}", at)
        count = self.uint(f"array length of {key[:120]!r}")
        size = VALUE_TYPES[etype][1]
        minimum = size or (self.uint_size if etype == STRING else 4 + self.uint_size)
        if count > self.cur.remaining() // minimum:
            raise Malformed(
                "metadata",
                f"array {key[:120]!r} claims {count} elements, more than the {self.cur.remaining()} remaining bytes can hold",
                at,
            )
        if size:
            self.cur.skip(count * size, f"array {key[:120]!r}")
        elif etype == STRING:
            self.cur.skip_strings(
                count, struct.Struct(self.e + self.uint_fmt), f"string in array {key[:120]!r}"
            )
        else:
            for _ in range(count):
                self._array(key, at, depth + 1)

    def _tensors(self) -> None:
        h = self.header
        tensors: list[_Tensor] = []
        names: set[str] = set()
        for _ in range(h.tensor_count):
            at = self.cur.pos
            n = self.string_length("tensor name", "tensor")
            raw = self.cur.read(n, "tensor name", "tensor")
            name = raw.decode("utf-8", errors="replace")
            if n >= MAX_NAME:
                self.finding(
                    GGUF_TENSOR_INFO,
                    f"tensor name of {n} bytes at offset {at} is longer than ggml allows ({MAX_NAME - 1})",
                    at,
                    name[:80],
                )
            if n == 0:
                self.finding(GGUF_TENSOR_INFO, f"tensor at offset {at} has an empty name", at)
            if name in names:
                self.finding(
                    GGUF_DUPLICATE, f"tensor name {name[:120]!r} appears more than once", at, name[:120]
                )
            names.add(name)
            n_dims = self.u32("n_dims", "tensor")
            if n_dims > MAX_DIMS:
                raise Malformed(
                    "tensor", f"tensor {name[:120]!r} has {n_dims} dimensions (ggml allows {MAX_DIMS})", at
                )
            dims = [self.uint("dimension", "tensor") for _ in range(n_dims)]
            ggml_type = self.u32("ggml type", "tensor")
            offset = self.cur.uint(8, self.byteorder, "tensor offset", "tensor")
            tensors.append(_Tensor(name, offset, self._nbytes(name, dims, ggml_type, at), at))
        h.tensors = len(tensors)
        align = h.alignment
        data_start = -(-self.cur.pos // align) * align
        h.data_start = data_start
        if tensors and data_start > self.cur.size:
            self.finding(
                GGUF_TENSOR_DATA,
                f"data section would start at {data_start}, past the end of the file ({self.cur.size} bytes)",
                self.cur.pos,
            )
            return
        self._check_layout(tensors, data_start)

    def _nbytes(self, name: str, dims: list[int], ggml_type: int, at: int) -> int | None:
        label = name[:120]
        elements = 1
        for d in dims:
            if d > INT64_MAX:
                self.finding(
                    GGUF_TENSOR_INFO,
                    f"tensor {label!r} has a negative dimension ({d - (1 << 64)})",
                    at,
                    label,
                )
                return None
            elements *= d
            if elements > INT64_MAX:
                self.finding(
                    GGUF_TENSOR_INFO,
                    f"tensor {label!r} dimensions {dims} overflow a 64-bit element count",
                    at,
                    label,
                )
                return None
        info = GGML_TYPES.get(ggml_type)
        if info is None:
            self.finding(
                GGUF_TENSOR_INFO, f"tensor {label!r} has unknown or removed ggml type {ggml_type}", at, label
            )
            return None
        type_name, block, type_size = info
        if dims and dims[0] % block:
            self.finding(
                GGUF_TENSOR_INFO,
                f"tensor {label!r} of type {type_name} has rows of {dims[0]} elements, not a multiple of the block size {block}",
                at,
                label,
            )
            return None
        return elements // block * type_size

    def _check_layout(self, tensors: list[_Tensor], data_start: int) -> None:
        align = self.header.alignment
        size = self.cur.size
        placed: list[tuple[int, int, str]] = []
        reported = 0
        for t in tensors:
            label = t.name[:120]
            if t.offset % align:
                self.finding(
                    GGUF_TENSOR_DATA,
                    f"tensor {label!r} at data offset {t.offset} is not aligned to {align}",
                    t.at,
                    label,
                )
                reported += 1
            if t.nbytes is None:
                continue
            start = data_start + t.offset
            if start + t.nbytes > size:
                self.finding(
                    GGUF_TENSOR_DATA,
                    f"tensor {label!r} needs bytes {start}..{start + t.nbytes} but the file ends at {size}",
                    t.at,
                    label,
                )
                reported += 1
                continue
            placed.append((t.offset, t.offset + t.nbytes, label))
            if reported > 100:
                return
        placed.sort()
        for (s1, e1, n1), (s2, _e2, n2) in zip(placed, placed[1:]):
            if s2 < e1:
                self.finding(
                    GGUF_TENSOR_DATA,
                    f"tensors {n1!r} and {n2!r} overlap (data offsets {s1}..{e1} and {s2}..)",
                    None,
                    n2,
                )
                reported += 1
                if reported > 100:
                    return


def is_template_key(key: str) -> bool:
    return key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + ".")


def parse_header(source: ByteSource, ctx: ScanContext) -> GGUFHeader:
    """Parse and check ``source``, reporting into ``ctx``."""
    return _Parser(source, ctx).run()


class GGUFScanner(FormatScanner):
    name = "gguf"
    category: ClassVar[FormatCategory] = FormatCategory.MODEL
    priority = 10
    readers = (Reader("llama.cpp, gguf", "'GGUF' at offset 0"),)

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return head[:4] == MAGIC

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        parse_header(source, ctx)


SCANNER = GGUFScanner()
