"""A bounded reader for Python's ``marshal`` format, to see what a Lambda's bytecode uses.

``marshal.loads`` on untrusted bytes can crash the interpreter and would hand us a live
code object; this reader instead walks the format (Objects/marshal.c) and records
names, string constants and nested code objects as plain Python strings. Nothing is
executed or even constructed as a code object.

The byte layout of a code object depends on the Python version that wrote it and the
stream does not say which, so each known layout is tried in turn and the first that
parses completely is used (they differ in the number of leading int32 fields and the
trailing fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DEPTH = 64
MAX_OBJECTS = 200_000
MAX_STRINGS = 10_000
FLAG_REF = 0x80


class MarshalError(ValueError):
    """Not a well-formed marshal stream (or a limit was reached)."""


@dataclass
class CodeSummary:
    """What the marshalled code refers to, as text."""

    layout: str = ""  # which Python version family's code layout matched
    code_objects: int = 0
    names: list[str] = field(default_factory=list)  # co_names: globals/attributes used
    code_names: list[str] = field(default_factory=list)  # co_name of each code object
    strings: list[str] = field(default_factory=list)  # printable str/bytes constants
    varnames: list[str] = field(default_factory=list)

    def copy(self) -> CodeSummary:
        return CodeSummary(
            self.layout,
            self.code_objects,
            list(self.names),
            list(self.code_names),
            list(self.strings),
            list(self.varnames),
        )


class _Ref:
    """Placeholder for a referenced object that is not a string."""


_NON_STR = _Ref()

# Code layouts: number of int32 header fields, then the object fields in order ("i" is a
# raw int32 inside the object list: firstlineno).
_LAYOUTS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    (
        "3.11+",
        5,
        (
            "code",
            "consts",
            "names",
            "localsplusnames",
            "localspluskinds",
            "filename",
            "name",
            "qualname",
            "i",
            "linetable",
            "exceptiontable",
        ),
    ),
    (
        "3.8-3.10",
        6,
        ("code", "consts", "names", "varnames", "freevars", "cellvars", "filename", "name", "i", "lnotab"),
    ),
    (
        "3.0-3.7",
        5,
        ("code", "consts", "names", "varnames", "freevars", "cellvars", "filename", "name", "i", "lnotab"),
    ),
    (
        "2.x",
        4,
        ("code", "consts", "names", "varnames", "freevars", "cellvars", "filename", "name", "i", "lnotab"),
    ),
)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.refs: list[object] = []
        self.objects = 0  # across layout retries too: total work stays bounded
        self.layout = ""
        self.summary = CodeSummary()

    # -- primitives
    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MarshalError(f"truncated: wanted {n} bytes at offset {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _byte(self) -> int:
        return self._take(1)[0]

    def _int32(self) -> int:
        return int.from_bytes(self._take(4), "little", signed=True)

    def _size(self) -> int:
        n = self._int32()
        if n < 0 or n > len(self.data) - self.pos:
            raise MarshalError(f"size {n} at offset {self.pos - 4} exceeds the data")
        return n

    def _note_consts(self, value: object, depth: int) -> None:
        if isinstance(value, str):
            if len(self.summary.strings) < MAX_STRINGS and value.isprintable():
                self.summary.strings.append(value)
        elif isinstance(value, tuple) and depth < 8:
            for item in value:
                self._note_consts(item, depth + 1)

    # -- objects
    def read(self, depth: int = 0) -> object:
        if depth > MAX_DEPTH:
            raise MarshalError(f"nested deeper than {MAX_DEPTH}")
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise MarshalError(f"more than {MAX_OBJECTS} objects")
        start = self.pos
        code = self._byte()
        flag = code & FLAG_REF
        kind = chr(code & ~FLAG_REF)
        ref_index = None
        if flag:
            ref_index = len(self.refs)
            self.refs.append(_NON_STR)  # reserved now: containers refer to their index
        value = self._read_kind(kind, depth, start)
        if ref_index is not None:
            self.refs[ref_index] = value
        return value

    def _read_kind(self, kind: str, depth: int, start: int) -> object:
        if kind in "0NFTS.":
            return _NON_STR
        if kind == "i":
            self._take(4)
            return _NON_STR
        if kind == "I":
            self._take(8)
            return _NON_STR
        if kind in "fx":
            for _ in range(1 if kind == "f" else 2):
                self._take(self._byte())
            return _NON_STR
        if kind == "g":
            self._take(8)
            return _NON_STR
        if kind == "y":
            self._take(16)
            return _NON_STR
        if kind == "l":
            n = self._int32()
            if abs(n) > (len(self.data) - self.pos) // 2:
                raise MarshalError(f"long of {n} digits at offset {start} exceeds the data")
            self._take(abs(n) * 2)
            return _NON_STR
        if kind in "stuaA":
            raw = self._take(self._size())
            return raw.decode("utf-8" if kind in "tu" else "latin-1", "replace")
        if kind in "zZ":
            return self._take(self._byte()).decode("latin-1", "replace")
        if kind == "r":
            index = self._int32()
            if not 0 <= index < len(self.refs):
                raise MarshalError(f"reference {index} at offset {start} to an unknown object")
            return self.refs[index]
        if kind == "R":  # Python 2 interned-string reference: not tracked, still valid
            self._take(4)
            return _NON_STR
        if kind in "()[<>":
            n = self._byte() if kind == ")" else self._size()
            return tuple(self.read(depth + 1) for _ in range(n))
        if kind == "{":
            items: list[object] = []
            while True:
                if self.pos < len(self.data) and self.data[self.pos] == ord("0"):
                    self.pos += 1
                    return tuple(items)
                items.append(self.read(depth + 1))
                items.append(self.read(depth + 1))
        if kind == ":":  # slice (3.14+): start, stop, step
            for _ in range(3):
                self.read(depth + 1)
            return _NON_STR
        if kind == "c":
            return self._read_code(depth, start)
        raise MarshalError(f"unknown marshal type {kind!r} at offset {start}")

    def _read_code(self, depth: int, start: int) -> object:
        # All code objects in one stream come from one Python version: the outermost one
        # picks the layout and nested ones reuse it, so backtracking never compounds.
        layouts = [layout for layout in _LAYOUTS if layout[0] == self.layout] if self.layout else _LAYOUTS
        saved_pos, saved_refs, saved_summary = self.pos, len(self.refs), self.summary
        outermost = not self.layout
        errors = []
        for name, ints, fields in layouts:
            self.pos = saved_pos
            del self.refs[saved_refs:]
            self.summary = saved_summary.copy()
            if outermost:
                self.layout = name
            try:
                self._code_fields(ints, fields, depth)
            except MarshalError as exc:
                errors.append(f"{name}: {exc}")
                continue
            self.summary.layout = self.layout
            return _NON_STR
        if outermost:
            self.layout = ""
        self.summary = saved_summary
        raise MarshalError(f"code object at offset {start} matches no known layout ({'; '.join(errors)})")

    def _code_fields(self, ints: int, fields: tuple[str, ...], depth: int) -> None:
        self._take(4 * ints)
        self.summary.code_objects += 1
        for name in fields:
            if name == "i":
                self._take(4)
                continue
            value = self.read(depth + 1)
            if name == "code" and not self._is_bytes_at_field(value):
                raise MarshalError("bytecode field is not a bytes object")
            if name in ("names", "varnames", "localsplusnames", "consts", "freevars", "cellvars"):
                if not isinstance(value, tuple):
                    raise MarshalError(f"co_{name} is not a tuple")
                if name == "names":
                    self.summary.names.extend(v for v in value if isinstance(v, str))
                elif name == "consts":
                    self._note_consts(value, 0)
                elif name in ("varnames", "localsplusnames"):
                    self.summary.varnames.extend(v for v in value if isinstance(v, str))
            elif name in ("filename", "name", "qualname"):
                if not isinstance(value, str):
                    raise MarshalError(f"co_{name} is not a string")
                if name == "name":
                    self.summary.code_names.append(value)

    @staticmethod
    def _is_bytes_at_field(value: object) -> bool:
        return isinstance(value, str)  # bytes objects are recorded as latin-1 text


def summarize_code(data: bytes) -> CodeSummary:
    """Parse one marshalled object (normally a code object) without executing it."""
    reader = _Reader(data)
    reader.read()
    if reader.pos != len(data):
        raise MarshalError(f"{len(data) - reader.pos} trailing bytes after the object")
    return reader.summary
