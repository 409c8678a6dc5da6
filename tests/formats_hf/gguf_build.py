"""A GGUF writer from the spec, for fixtures the gguf package refuses to write (malformed
headers, big-endian, v1, overlapping tensors). Valid fixtures are also made with
gguf.GGUFWriter in the tests, so the two writers cross-check each other."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_FMT = {
    UINT8: "B",
    INT8: "b",
    UINT16: "H",
    INT16: "h",
    UINT32: "I",
    INT32: "i",
    FLOAT32: "f",
    BOOL: "?",
    UINT64: "Q",
    INT64: "q",
    FLOAT64: "d",
}
F32, F16, Q4_0 = 0, 1, 2


@dataclass
class KV:
    key: str | bytes
    vtype: int
    value: Any  # python value; for ARRAY: (element type, list); or raw bytes if raw=True
    raw: bool = False


@dataclass
class Tensor:
    name: str | bytes
    dims: list[int]
    ggml_type: int = F32
    offset: int = 0


@dataclass
class GGUF:
    kvs: list[KV] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    version: int = 3
    endian: str = "<"
    alignment: int = 32
    tensor_count: int | None = None
    kv_count: int | None = None
    data: bytes | None = None  # tensor data section; default: zeros for the layout

    def _uint(self, n: int) -> bytes:
        return struct.pack(self.endian + ("I" if self.version == 1 else "Q"), n)

    def _str(self, s: str | bytes) -> bytes:
        raw = s.encode() if isinstance(s, str) else s
        return self._uint(len(raw)) + raw

    def _value(self, vtype: int, value: Any) -> bytes:
        if vtype == STRING:
            return self._str(value)
        if vtype == ARRAY:
            etype, items = value
            out = struct.pack(self.endian + "I", etype) + self._uint(len(items))
            return out + b"".join(self._value(etype, v) for v in items)
        return struct.pack(self.endian + _FMT[vtype], value)

    def header(self) -> bytes:
        e = self.endian
        out = bytearray(b"GGUF" + struct.pack(e + "I", self.version))
        out += self._uint(len(self.tensors) if self.tensor_count is None else self.tensor_count)
        out += self._uint(len(self.kvs) if self.kv_count is None else self.kv_count)
        for kv in self.kvs:
            out += self._str(kv.key) + struct.pack(e + "I", kv.vtype)
            out += kv.value if kv.raw else self._value(kv.vtype, kv.value)
        for t in self.tensors:
            out += self._str(t.name) + struct.pack(e + "I", len(t.dims))
            out += b"".join(self._uint(d) for d in t.dims)
            out += struct.pack(e + "I", t.ggml_type) + struct.pack(e + "Q", t.offset)
        return bytes(out)

    def build(self) -> bytes:
        head = self.header()
        pad = (-len(head)) % self.alignment
        data = self.data
        if data is None:
            end = 0
            for t in self.tensors:
                n = 1
                for d in t.dims:
                    n *= d
                size = {F32: 4, F16: 2}.get(t.ggml_type, 1) * n
                end = max(end, t.offset + size)
            data = bytes(end)
        return head + bytes(pad) + data


def layout(specs: list[tuple[str, list[int]]], alignment: int = 32) -> list[Tensor]:
    """F32 tensors placed one after another with padding, as writers do."""
    out, offset = [], 0
    for name, dims in specs:
        out.append(Tensor(name, dims, F32, offset))
        n = 4
        for d in dims:
            n *= d
        offset += n + (-n) % alignment
    return out
