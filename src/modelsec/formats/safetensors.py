"""safetensors: an 8-byte little-endian header length, a JSON header, a byte buffer.

The format has no code path; what can go wrong is a header that different parsers read
differently (duplicate keys, odd JSON) or offsets that do not describe the buffer exactly
(overlaps let two tensors alias, holes and trailing bytes carry data nobody indexes). The
checks follow the reference implementation (huggingface/safetensors ``tensor.rs``): the
buffer must be covered by the tensors' ``data_offsets`` exactly, in order, without holes,
and each tensor's byte length must equal ``prod(shape) * bits(dtype) / 8``.

Metadata strings are free text; the corpus treats shell-like or URL-like values as a
matter for policy, so they are not findings here.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from modelsec.bytesource import ByteSource, SliceSource
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader

RULE = "SuspiciousComponents"

# Element sizes in bits, as in the reference implementation's Dtype enum.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
METADATA_KEY = "__metadata__"
MAX_METADATA_BYTES = 16 << 20
MAX_REPORTED_TENSORS = 20  # per-tensor problems listed before summarising
U64_MAX = (1 << 64) - 1

MALFORMED_HEADER = threat(
    "MS-ST-001",
    RULE,
    Severity.MEDIUM,
    "Malformed safetensors header",
    "Re-save the tensors with the safetensors library.",
    "The header length, encoding, JSON or metadata is not what the format allows; loaders "
    "reject or, worse, disagree about such files.",
)

DUPLICATE_KEY = threat(
    "MS-ST-002",
    RULE,
    Severity.MEDIUM,
    "Duplicate key in safetensors header",
    "Re-save the tensors with the safetensors library.",
    "The format forbids duplicate keys because JSON parsers disagree on which copy wins: "
    "two tools would load different tensors from the same file.",
)

INVALID_TENSOR = threat(
    "MS-ST-003",
    RULE,
    Severity.MEDIUM,
    "Invalid safetensors tensor entry",
    "Re-save the tensors with the safetensors library.",
    "A tensor's dtype, shape or data_offsets are invalid or its byte length does not match shape and dtype.",
)

OVERLAPPING_TENSORS = threat(
    "MS-ST-004",
    RULE,
    Severity.MEDIUM,
    "Overlapping safetensors tensor data",
    "Re-save the tensors with the safetensors library.",
    "Two tensors share bytes, so writing one changes the other; the format guarantees that "
    "offsets never overlap.",
)

UNINDEXED_DATA = threat(
    "MS-ST-005",
    RULE,
    Severity.MEDIUM,
    "Bytes in the safetensors buffer not covered by any tensor",
    "Re-save the tensors with the safetensors library.",
    "The buffer must be fully indexed; holes and trailing bytes can carry a hidden payload "
    "(trailing bytes were scanned separately).",
)

TRUNCATED = threat(
    "MS-ST-006",
    RULE,
    Severity.MEDIUM,
    "safetensors file shorter than its header says",
    "Re-download or re-save the file.",
    "Tensors point past the end of the file.",
)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U64_MAX


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors header: name, dtype, shape and byte range."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


class SafetensorsScanner(FormatScanner):
    name: ClassVar[str] = "safetensors"
    category: ClassVar[FormatCategory] = FormatCategory.MODEL
    priority: ClassVar[int] = 10
    readers = (Reader("safetensors", "8-byte header length at offset 0, then the JSON header"),)

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        # A little-endian length whose high half is zero (the reference caps headers at
        # 100 MB), then a JSON object: '{' (whitespace tolerated before it, as the
        # reference parser does) opening with a key or closing at once. Anything looser
        # matches random tensor bytes about once in 256.
        if len(head) < 10 or head[4:8] != b"\0\0\0\0":
            return False
        body = head[8 : 8 + 4096].lstrip(b" \t\r\n")
        if not body.startswith(b"{"):
            return False
        rest = body[1:].lstrip(b" \t\r\n")
        return rest[:1] in (b'"', b"}")

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        header = self._read_header(source, ctx)
        if header is None:
            return
        length, values = header
        tensors = self._tensors(values, ctx)
        if tensors is None:
            return
        self._check_layout(source, ctx, length, tensors)

    def _read_header(self, source: ByteSource, ctx: ScanContext) -> tuple[int, dict[str, Any]] | None:
        (length,) = struct.unpack("<Q", source.read_at(0, 8))
        bound = ctx.limits.max_header_bytes
        if length > bound:
            ctx.report(
                MALFORMED_HEADER.at(ctx.path, f"header length {length} exceeds the {bound}-byte bound")
            )
            return None
        if 8 + length > source.size:
            ctx.report(
                MALFORMED_HEADER.at(
                    ctx.path,
                    f"header length {length} runs past the end of the file ({source.size} bytes)",
                )
            )
            return None
        raw = source.read_at(8, length)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            ctx.report(MALFORMED_HEADER.at(ctx.path, f"header is not valid UTF-8 ({exc.reason})"))
            return None
        try:
            values = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
        except _DuplicateKey as exc:
            ctx.report(DUPLICATE_KEY.at(ctx.path, f"key {exc.key!r} appears twice", subject=exc.key))
            return None
        except RecursionError:
            ctx.report(MALFORMED_HEADER.at(ctx.path, "header JSON is nested too deeply"))
            return None
        except ValueError as exc:
            ctx.report(MALFORMED_HEADER.at(ctx.path, f"header is not valid JSON: {exc}"))
            return None
        if not isinstance(values, dict):
            ctx.report(
                MALFORMED_HEADER.at(ctx.path, f"header is a JSON {type(values).__name__}, not an object")
            )
            return None
        return length, values

    def _tensors(self, values: dict[str, Any], ctx: ScanContext) -> list[TensorInfo] | None:
        metadata = values.get(METADATA_KEY)
        if metadata is not None:
            if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
                ctx.report(MALFORMED_HEADER.at(ctx.path, "__metadata__ is not a flat map of strings"))
                return None
            size = sum(len(k) + len(v) for k, v in metadata.items())
            if size > MAX_METADATA_BYTES:
                ctx.report(
                    MALFORMED_HEADER.at(
                        ctx.path, f"__metadata__ holds {size} characters (bound {MAX_METADATA_BYTES})"
                    )
                )
        tensors: list[TensorInfo] = []
        problems: list[str] = []
        for name, info in values.items():
            if name == METADATA_KEY:
                continue
            problem = _tensor_problem(info)
            if problem is not None:
                problems.append(f"tensor {name!r}: {problem}")
                continue
            tensors.append(
                TensorInfo(
                    name,
                    info["dtype"],
                    tuple(info["shape"]),
                    info["data_offsets"][0],
                    info["data_offsets"][1],
                )
            )
        for message in problems[:MAX_REPORTED_TENSORS]:
            ctx.report(INVALID_TENSOR.at(ctx.path, message))
        if len(problems) > MAX_REPORTED_TENSORS:
            ctx.report(
                INVALID_TENSOR.at(
                    ctx.path, f"{len(problems) - MAX_REPORTED_TENSORS} more invalid tensor entries"
                )
            )
        return None if problems else tensors

    def _check_layout(
        self, source: ByteSource, ctx: ScanContext, length: int, tensors: list[TensorInfo]
    ) -> None:
        data_start = 8 + length
        data_size = source.size - data_start
        covered = 0
        overlaps: list[str] = []
        gaps: list[str] = []
        for t in sorted(tensors, key=lambda t: (t.begin, t.end)):
            if t.begin > covered:
                gaps.append(f"bytes [{covered}, {t.begin}) before tensor {t.name!r}")
            elif t.begin < covered and t.end > t.begin:
                overlaps.append(f"tensor {t.name!r} [{t.begin}, {t.end}) overlaps earlier data")
            covered = max(covered, t.end)
        for message in overlaps[:MAX_REPORTED_TENSORS]:
            ctx.report(OVERLAPPING_TENSORS.at(ctx.path, message))
        for message in gaps[:MAX_REPORTED_TENSORS]:
            ctx.report(UNINDEXED_DATA.at(ctx.path, f"{message} are not indexed by any tensor"))
        if covered > data_size:
            ctx.report(
                TRUNCATED.at(
                    ctx.path,
                    f"tensors need {covered} bytes of data, the file holds {data_size}",
                )
            )
        elif covered < data_size:
            ctx.report(
                UNINDEXED_DATA.at(
                    ctx.path,
                    f"{data_size - covered} bytes after the last tensor are not indexed; "
                    "they were scanned separately",
                    offset=data_start + covered,
                )
            )
            ctx.scan_member(SliceSource(source, data_start + covered, data_size - covered), "<trailing>")


def _tensor_problem(info: Any) -> str | None:
    """Why a tensor entry is invalid, or None."""
    if not isinstance(info, dict):
        return f"entry is a JSON {type(info).__name__}, not an object"
    missing = {"dtype", "shape", "data_offsets"} - set(info)
    if missing:
        return f"missing {', '.join(sorted(missing))}"
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        return f"unknown dtype {dtype!r:.50}"
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        return f"shape {shape!r:.80} is not a list of non-negative integers"
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_uint(o) for o in offsets):
        return f"data_offsets {offsets!r:.80} is not a pair of non-negative integers"
    begin, end = offsets
    if end < begin:
        return f"data_offsets end {end} precedes begin {begin}"
    bits = DTYPE_BITS[dtype]
    for dim in shape:  # stop as soon as it overflows, like the reference checked_mul
        bits *= dim
        if bits > U64_MAX:
            return "shape and dtype overflow 64 bits"
    if bits % 8:
        return f"{dtype} tensor of shape {shape} does not end on a byte boundary"
    if end - begin != bits // 8:
        return f"{dtype} tensor of shape {shape} needs {bits // 8} bytes, data_offsets span {end - begin}"
    return None


SCANNER = SafetensorsScanner()
