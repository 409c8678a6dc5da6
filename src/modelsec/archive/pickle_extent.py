"""Where a pickle stream ends, found by walking opcode framing only.

Files that concatenate pickles (legacy ``torch.save``) need the boundaries before each
stream can be handed to the pickle analysis. This walker knows each opcode's argument
layout and nothing else: it never interprets a value, skips long arguments without
holding them (bounded memory), and keeps only short strings, which callers use to read
simple lists (the legacy storage keys). It is not a security analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelsec.bytesource import ByteSource, LimitExceeded, SequentialReader

_LINE = {b"I", b"L", b"F", b"S", b"V", b"P", b"g", b"p"}
_TWO_LINES = {b"c", b"i"}
_FIXED = {
    b"J": 4,
    b"K": 1,
    b"M": 2,
    b"G": 8,
    b"h": 1,
    b"j": 4,
    b"q": 1,
    b"r": 4,
    b"\x80": 1,
    b"\x82": 1,
    b"\x83": 2,
    b"\x84": 4,
    b"\x95": 8,
}
# opcode -> width of its little-endian length prefix
_COUNTED = {
    b"T": 4,
    b"U": 1,
    b"X": 4,
    b"\x8a": 1,
    b"\x8b": 4,
    b"B": 4,
    b"C": 1,
    b"\x8c": 1,
    b"\x8d": 8,
    b"\x8e": 8,
    b"\x96": 8,
}
_TEXT = {b"X", b"\x8c", b"\x8d"}
_NO_ARG = set(b"(.012NRabd}el]ost)uQ\x81\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94\x97\x98")
_STOP = b"."
_COMPUTED = set(
    b"R\x81\x92b\x93oi\x82\x83\x84PQ"
)  # REDUCE NEWOBJ(_EX) BUILD STACK_GLOBAL OBJ INST EXT* PERSID
SHORT_TEXT = 4096  # strings kept for the caller


class PickleFramingError(ValueError):
    """The bytes are not a complete pickle stream; ``offset`` is where it broke."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.offset = offset


@dataclass
class PickleExtent:
    """Where a pickle stream inside other data starts and ends, and what it names."""

    start: int
    end: int  # offset just after STOP
    opcodes: int
    strings: list[str] = field(default_factory=list)  # short text literals and GLOBAL names
    globals: list[str] = field(default_factory=list)  # "module.name" of each GLOBAL and INST
    # an opcode that computes a value at load time (a call, STACK_GLOBAL, an extension
    # code, a persistent id): what the stream builds is not just its literals and globals
    computed: bool = False


def pickle_extent(source: ByteSource, start: int, *, max_opcodes: int, max_line: int) -> PickleExtent:
    reader = SequentialReader(source, start, chunk=64 * 1024)
    extent = PickleExtent(start, start, 0)
    while True:
        at = reader.offset
        try:
            op = reader.read(1)
        except EOFError:
            raise PickleFramingError("pickle stream ends without STOP", at) from None
        extent.opcodes += 1
        if extent.opcodes > max_opcodes:
            raise LimitExceeded(f"pickle stream at offset {start} has more than {max_opcodes} opcodes")
        try:
            if op == _STOP:
                extent.end = reader.offset
                return extent
            if op[0] in _COMPUTED:
                extent.computed = True
            if op[0] in _NO_ARG:
                continue
            if op in _LINE:
                reader.readline(max_line)
            elif op in _TWO_LINES:
                module = reader.readline(max_line)[:-1]
                name = reader.readline(max_line)[:-1]
                if len(module) + len(name) <= SHORT_TEXT:
                    dotted = f"{module.decode('utf-8', 'replace')}.{name.decode('utf-8', 'replace')}"
                    extent.strings.append(dotted)
                    extent.globals.append(dotted)
                else:
                    extent.computed = True  # a name too long to keep is not one a caller can trust
            elif op in _FIXED:
                reader.read(_FIXED[op])
            elif op in _COUNTED:
                width = _COUNTED[op]
                length = int.from_bytes(reader.read(width), "little", signed=(op == b"T"))
                if length < 0:
                    raise PickleFramingError("negative length", at)
                if op in _TEXT and length <= SHORT_TEXT:
                    extent.strings.append(reader.read(length).decode("utf-8", errors="replace"))
                else:
                    reader.skip(length)
            else:
                raise PickleFramingError(f"unknown opcode {op!r}", at)
        except EOFError:
            raise PickleFramingError(f"argument of opcode {op!r} is truncated", at) from None
