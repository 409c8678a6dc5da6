"""A bounded pickle opcode reader over a :class:`~modelsec.bytesource.ByteSource`.

``pickletools.genops`` reads every argument into memory: a 4 GiB ``BINBYTES`` would be
4 GiB of RAM. This reader decodes an opcode's argument only when it is small; larger
strings and byte strings become a :class:`Blob` (where they are, how long, how they are
encoded, their first bytes) and are skipped with bounded reads, so whoever needs the bytes
later (a nested ``pickle.loads`` argument) can re-read exactly that range.

Argument decoding follows CPython's C unpickler, the one ``pickle.load`` uses, and is as
permissive as it is (``INT`` accepts any base-0 literal, frames are transparent). Anything
CPython would reject raises :class:`PickleError` with the opcode's offset.
"""

from __future__ import annotations

import codecs
import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass

from modelsec.bytesource import CHUNK, ByteSource, SequentialReader

HIGHEST_PROTOCOL = 5
INLINE_LIMIT = 8 * 1024  # literals up to this size are decoded and kept; larger ones: Blob
LINE_LIMIT = 64 * 1024  # module/name and numeric lines longer than this are not names
NUMBER_LINE_LIMIT = 5000  # CPython refuses int literals beyond 4300 digits by default
BLOB_HEAD = 64
# Bytes literals (BINBYTES, SHORT_BINBYTES, BINBYTES8) at least this long are a template's
# holes (modelsec.pickle.reuse): array data. Shorter ones (b'b', a dtype's bytes) are
# compared byte for byte.
HOLE_MIN = 64
NO_FRAME = 1 << 63  # "no frame is open": an end no opcode reaches
MAX_FRAME_VIOLATIONS = 8
WINDOW = 64 * 1024  # bytes decoded at a time from the SequentialReader
_BLANKS = bytes(range(33))

# Opcode bytes (pickletools names).
MARK, STOP, POP, POP_MARK, DUP = 0x28, 0x2E, 0x30, 0x31, 0x32
FLOAT, INT, BININT, BININT1, LONG, BININT2 = 0x46, 0x49, 0x4A, 0x4B, 0x4C, 0x4D
NONE, PERSID, BINPERSID, REDUCE = 0x4E, 0x50, 0x51, 0x52
STRING, BINSTRING, SHORT_BINSTRING, UNICODE, BINUNICODE = 0x53, 0x54, 0x55, 0x56, 0x58
APPEND, BUILD, GLOBAL, DICT, EMPTY_DICT, APPENDS = 0x61, 0x62, 0x63, 0x64, 0x7D, 0x65
GET, BINGET, INST, LONG_BINGET, LIST, EMPTY_LIST = 0x67, 0x68, 0x69, 0x6A, 0x6C, 0x5D
OBJ, PUT, BINPUT, LONG_BINPUT, SETITEM, TUPLE = 0x6F, 0x70, 0x71, 0x72, 0x73, 0x74
EMPTY_TUPLE, SETITEMS, BINFLOAT = 0x29, 0x75, 0x47
PROTO, NEWOBJ, EXT1, EXT2, EXT4 = 0x80, 0x81, 0x82, 0x83, 0x84
TUPLE1, TUPLE2, TUPLE3, NEWTRUE, NEWFALSE = 0x85, 0x86, 0x87, 0x88, 0x89
LONG1, LONG4 = 0x8A, 0x8B
BINBYTES, SHORT_BINBYTES = 0x42, 0x43
SHORT_BINUNICODE, BINUNICODE8, BINBYTES8 = 0x8C, 0x8D, 0x8E
EMPTY_SET, ADDITEMS, FROZENSET, NEWOBJ_EX = 0x8F, 0x90, 0x91, 0x92
STACK_GLOBAL, MEMOIZE, FRAME = 0x93, 0x94, 0x95
BYTEARRAY8, NEXT_BUFFER, READONLY_BUFFER = 0x96, 0x97, 0x98

NAMES: dict[int, str] = {
    MARK: "MARK",
    STOP: "STOP",
    POP: "POP",
    POP_MARK: "POP_MARK",
    DUP: "DUP",
    FLOAT: "FLOAT",
    INT: "INT",
    BININT: "BININT",
    BININT1: "BININT1",
    LONG: "LONG",
    BININT2: "BININT2",
    NONE: "NONE",
    PERSID: "PERSID",
    BINPERSID: "BINPERSID",
    REDUCE: "REDUCE",
    STRING: "STRING",
    BINSTRING: "BINSTRING",
    SHORT_BINSTRING: "SHORT_BINSTRING",
    UNICODE: "UNICODE",
    BINUNICODE: "BINUNICODE",
    APPEND: "APPEND",
    BUILD: "BUILD",
    GLOBAL: "GLOBAL",
    DICT: "DICT",
    EMPTY_DICT: "EMPTY_DICT",
    APPENDS: "APPENDS",
    GET: "GET",
    BINGET: "BINGET",
    INST: "INST",
    LONG_BINGET: "LONG_BINGET",
    LIST: "LIST",
    EMPTY_LIST: "EMPTY_LIST",
    OBJ: "OBJ",
    PUT: "PUT",
    BINPUT: "BINPUT",
    LONG_BINPUT: "LONG_BINPUT",
    SETITEM: "SETITEM",
    TUPLE: "TUPLE",
    EMPTY_TUPLE: "EMPTY_TUPLE",
    SETITEMS: "SETITEMS",
    BINFLOAT: "BINFLOAT",
    PROTO: "PROTO",
    NEWOBJ: "NEWOBJ",
    EXT1: "EXT1",
    EXT2: "EXT2",
    EXT4: "EXT4",
    TUPLE1: "TUPLE1",
    TUPLE2: "TUPLE2",
    TUPLE3: "TUPLE3",
    NEWTRUE: "NEWTRUE",
    NEWFALSE: "NEWFALSE",
    LONG1: "LONG1",
    LONG4: "LONG4",
    BINBYTES: "BINBYTES",
    SHORT_BINBYTES: "SHORT_BINBYTES",
    SHORT_BINUNICODE: "SHORT_BINUNICODE",
    BINUNICODE8: "BINUNICODE8",
    BINBYTES8: "BINBYTES8",
    EMPTY_SET: "EMPTY_SET",
    ADDITEMS: "ADDITEMS",
    FROZENSET: "FROZENSET",
    NEWOBJ_EX: "NEWOBJ_EX",
    STACK_GLOBAL: "STACK_GLOBAL",
    MEMOIZE: "MEMOIZE",
    FRAME: "FRAME",
    BYTEARRAY8: "BYTEARRAY8",
    NEXT_BUFFER: "NEXT_BUFFER",
    READONLY_BUFFER: "READONLY_BUFFER",
}


class PickleError(Exception):
    """The stream is not something CPython would unpickle; ``offset`` is where it broke."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.reason = message
        self.offset = offset


class Truncated(PickleError):
    """The data ends inside an opcode or its argument."""


class BlobKind(str, enum.Enum):
    RAW = "raw"  # bytes as stored: BINBYTES*, BYTEARRAY8, BINSTRING, SHORT_BINSTRING
    UTF8 = "utf-8"  # BINUNICODE*: text stored UTF-8 encoded
    ESCAPED = "raw-unicode-escape"  # UNICODE line
    QUOTED = "quoted"  # STRING line: a Python 2 repr, quotes included


@dataclass(frozen=True, slots=True)
class Blob:
    """A literal too large to keep: ``length`` bytes at ``offset`` of the reader's source."""

    offset: int
    length: int
    kind: BlobKind
    head: bytes
    text: bool  # the unpickler produces str (True) or bytes/bytearray (False)


@dataclass(frozen=True, slots=True)
class BigInt:
    """A LONG4 integer too large to decode (its value never matters to the analysis)."""

    nbytes: int


NamePair = tuple[str | Blob, str | Blob]  # GLOBAL and INST: module and name lines
Arg = None | int | float | str | bytes | bytearray | Blob | BigInt | NamePair

# Each unpacks exactly one number of the type named here.
_U2: Callable[[bytes], tuple[int]] = struct.Struct("<H").unpack
_I4: Callable[[bytes], tuple[int]] = struct.Struct("<i").unpack
_U4: Callable[[bytes], tuple[int]] = struct.Struct("<I").unpack
_U8: Callable[[bytes], tuple[int]] = struct.Struct("<Q").unpack
_F8: Callable[[bytes], tuple[float]] = struct.Struct(">d").unpack


def _parse_int_literal(text: bytes) -> int | None:
    """INT/LONG literals as CPython's C unpickler accepts them (strtol base 0, then
    ``int(x, 0)``); None if it would not."""
    for base in (0, 10):
        try:
            return int(text, base)
        except ValueError:
            continue
    return None


class OpcodeReader:
    """Reads ``(opcode, argument, offset)`` triples front to back with bounded memory."""

    def __init__(
        self, source: ByteSource, start: int = 0, holes: list[tuple[int, int]] | None = None
    ) -> None:
        self.source = source
        # Template mode (modelsec.pickle.reuse): bytes literals of HOLE_MIN bytes or more
        # are read as a Blob that holds none of their content, and their spans recorded here.
        self.holes = holes
        self._size = source.size
        self._r = SequentialReader(source, start)
        # A window of bytes peeked from the SequentialReader at its offset; ``_i`` indexes
        # it. Opcodes are decoded from the window and consumed from the reader in bulk,
        # which keeps the per-opcode cost to an index and a slice.
        self._win = b""
        self._i = 0
        self._base = start  # source offset of _win[0]
        self._op_offset = start
        # Frames (protocol 4+): C's unpickler reads through frame boundaries, Python's
        # (pickle._Unpickler, which joblib uses) refuses an opcode that straddles one. Where
        # the two disagree a crafted stream can show each loader something else, so the
        # reader keeps the current frame's end and records every disagreement.
        self._frame_end = NO_FRAME
        self.frame_violations: list[tuple[int, str]] = []
        # (offset, message) of arguments the C unpickler and pickle._Unpickler read
        # differently (a NUL inside a number line)
        self.disagreements: list[tuple[int, str]] = []

    @property
    def offset(self) -> int:
        return self._base + self._i

    def seek(self, offset: int) -> None:
        """Continue reading at ``offset`` (after raw data the stream itself skipped)."""
        self._r = SequentialReader(self.source, offset)
        self._win, self._i, self._base = b"", 0, offset

    def outside_frame(self, what: str) -> None:
        """Record ``what`` (read from the file by something other than this stream's
        opcodes, or where a loader reading the file resumes) if it falls inside the open
        frame. pickle._Unpickler (joblib's, torch's legacy) has read the whole frame into
        memory: the file's position is the frame's end, so it sees other bytes than the
        ones that follow here. Picklers close the frame before such data, and after STOP."""
        if self.offset < self._frame_end != NO_FRAME:
            self._violation(
                self.offset, f"{what} at offset {self.offset} inside the frame ending at {self._frame_end}"
            )

    def skip_raw(self, n: int) -> None:
        """Move past ``n`` bytes of non-pickle data (joblib's array bytes)."""
        self.outside_frame("raw array data")
        self._commit()
        try:
            self._r.skip(n)
        except EOFError:
            raise Truncated(f"{n} bytes of raw data run past the end", self.offset) from None
        self._base = self._r.offset  # offsets of what follows count the skipped bytes

    def next(self) -> tuple[int, Arg, int]:
        """The next opcode, its decoded argument and its offset."""
        i = self._i
        at = self._op_offset = self._base + i
        if i < len(self._win):  # the common case, inlined
            code = self._win[i]
            self._i = i + 1
        else:
            try:
                code = self._byte()
            except EOFError:
                raise Truncated("pickle data ends without STOP", at) from None
        decode = DECODERS[code]
        if decode is NO_ARG:  # most opcodes of plain data: nothing to decode, no call
            arg: Arg = None
        elif decode is None:
            raise PickleError(f"unknown opcode 0x{code:02x}", at)
        else:
            try:
                arg = decode(self)
            except EOFError:
                raise Truncated(f"{NAMES[code]} argument runs past the end of the data", at) from None
        if self._base + self._i > self._frame_end:  # this opcode ends past the frame
            self._leave_frame(code, at)
        return code, arg, at

    def _leave_frame(self, code: int, at: int) -> None:
        end = self._frame_end
        self._frame_end = NO_FRAME
        if at < end and len(self.frame_violations) < MAX_FRAME_VIOLATIONS:
            self.frame_violations.append(
                (at, f"{NAMES[code]} at offset {at} straddles the end of its frame (offset {end})")
            )

    # -- the window --------------------------------------------------------------------

    def _commit(self) -> None:
        """Consume what was decoded from the window (a skip inside the reader's buffer)."""
        if self._i:
            self._r.skip(self._i)
        self._win, self._i, self._base = b"", 0, self._r.offset

    def _refill(self, n: int) -> None:
        self._commit()
        self._win = self._r.peek(max(n, WINDOW))
        if len(self._win) < n:
            raise EOFError

    def _byte(self) -> int:
        i = self._i
        if i >= len(self._win):
            self._refill(1)
            i = 0
        self._i = i + 1
        return self._win[i]

    def _take(self, n: int) -> bytes:
        i = self._i
        j = i + n
        if j > len(self._win):
            self._refill(n)
            i, j = 0, n
        self._i = j
        return self._win[i:j]

    # -- fixed-size arguments ------------------------------------------------------------

    def _no_arg(self) -> None:
        return None

    _u1 = _byte  # one call, not two: BINGET, BINPUT and BININT1 are frequent

    def _u2(self) -> int:
        return _U2(self._take(2))[0]

    def _i4(self) -> int:
        return _I4(self._take(4))[0]

    def _u4(self) -> int:
        return _U4(self._take(4))[0]

    def _f8(self) -> float:
        return _F8(self._take(8))[0]

    def _proto(self) -> int:
        version = self._byte()
        if version > HIGHEST_PROTOCOL:
            raise PickleError(f"unsupported pickle protocol {version}", self._op_offset)
        return version

    def _frame(self) -> int:
        # Frames are otherwise transparent: the C unpickler refuses a frame longer than the
        # data left, but pickle._Unpickler (which joblib uses) decodes what there is, so a
        # short frame is not the end of the stream, only a disagreement between loaders.
        length = _U8(self._take(8))[0]
        at, start = self._op_offset, self.offset
        if at < self._frame_end != NO_FRAME:
            self._violation(at, f"FRAME at offset {at} starts inside the frame ending at {self._frame_end}")
        if start + length > self._size:
            self._violation(
                at, f"FRAME at offset {at} declares {length} bytes, {self._size - start} are left"
            )
        self._frame_end = start + length
        return length

    def _violation(self, at: int, message: str) -> None:
        if len(self.frame_violations) < MAX_FRAME_VIOLATIONS:
            self.frame_violations.append((at, message))

    def _long1(self) -> int:
        n = self._byte()
        return int.from_bytes(self._take(n), "little", signed=True)

    def _long4(self) -> int | BigInt:
        n = _I4(self._take(4))[0]
        if n < 0:
            raise PickleError("LONG4 with a negative byte count", self._op_offset)
        if n <= INLINE_LIMIT:
            return int.from_bytes(self._take(n), "little", signed=True)
        self._skip(n)
        return BigInt(n)

    # -- counted strings -----------------------------------------------------------------

    def _counted(self, n: int, kind: BlobKind, text: bool) -> bytes | Blob:
        if n <= INLINE_LIMIT:
            return self._take(n)
        start = self.offset
        self._commit()
        head = self._r.peek(BLOB_HEAD)
        self._skip(n)
        return Blob(start, n, kind, head, text)

    def _skip(self, n: int) -> None:
        if self.offset + n > self._size:
            raise Truncated(f"{n}-byte argument runs past the end", self._op_offset)
        self._commit()
        self._r.skip(n)
        # the next opcode's offset counts the skipped bytes (it was reported at the
        # literal's start: red team, session 23)
        self._base = self._r.offset

    def _binstring(self) -> str | Blob:
        n = _I4(self._take(4))[0]
        if n < 0:
            raise PickleError("BINSTRING with a negative byte count", self._op_offset)
        return self._py2_string(self._counted(n, BlobKind.RAW, True))

    def _short_binstring(self) -> str | Blob:
        return self._py2_string(self._counted(self._byte(), BlobKind.RAW, True))

    @staticmethod
    def _py2_string(data: bytes | Blob) -> str | Blob:
        # Python 2 str: CPython decodes it with the loader's ``encoding``; latin-1 keeps
        # every byte, so names and nested payloads survive whatever the loader chose.
        return data.decode("latin-1") if isinstance(data, bytes) else data

    def _text(self, n: int) -> str | Blob:
        data = self._counted(n, BlobKind.UTF8, True)
        if isinstance(data, Blob):
            return data
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise PickleError("BINUNICODE is not valid UTF-8", self._op_offset) from None

    def _binunicode(self) -> str | Blob:
        return self._text(_U4(self._take(4))[0])

    def _short_binunicode(self) -> str | Blob:
        return self._text(self._byte())

    def _binunicode8(self) -> str | Blob:
        return self._text(_U8(self._take(8))[0])

    def _binbytes(self) -> bytes | Blob:
        return self._bytes(_U4(self._take(4))[0])

    def _short_binbytes(self) -> bytes | Blob:
        return self._bytes(self._byte())

    def _binbytes8(self) -> bytes | Blob:
        return self._bytes(_U8(self._take(8))[0])

    def _bytes(self, n: int) -> bytes | Blob:
        if self.holes is None or n < HOLE_MIN:
            return self._counted(n, BlobKind.RAW, False)
        start = self.offset
        self._skip(n)
        self.holes.append((start, start + n))
        # A head of zeros: no prefix anything recognises (embedded pickles), whatever the
        # file holds there; reuse.Template checks each file's own bytes for that instead.
        return Blob(start, n, BlobKind.RAW, bytes(BLOB_HEAD), False)

    def _bytearray8(self) -> bytearray | Blob:
        data = self._counted(_U8(self._take(8))[0], BlobKind.RAW, False)
        return bytearray(data) if isinstance(data, bytes) else data

    # -- newline-terminated arguments ----------------------------------------------------

    def _line(self, keep: int, kind: BlobKind) -> bytes | Blob:
        """One line without its ``\\n``; lines over ``keep`` bytes become a Blob."""
        newline = self._win.find(b"\n", self._i, self._i + keep + 1)
        if newline < 0:
            self._commit()
            self._win = self._r.peek(keep + 1)
            newline = self._win.find(b"\n")
            if newline < 0 and len(self._win) <= keep:
                raise Truncated("line argument without a newline", self._op_offset)
        if newline >= 0:
            line = self._win[self._i : newline]
            self._i = newline + 1
            return line
        # Longer than anything worth keeping (a protocol 0 array): find its end in chunks.
        start = pos = self.offset
        while True:
            chunk = self.source.read_at(pos, CHUNK)
            if not chunk:
                raise Truncated("line argument without a newline", self._op_offset)
            newline = chunk.find(b"\n")
            if newline >= 0:
                end = pos + newline
                break
            pos += len(chunk)
        head = self.source.read_at(start, BLOB_HEAD)
        self.seek(end + 1)
        return Blob(start, end - start, kind, head, True)

    def _short_line(self, what: str) -> bytes:
        line = self._line(NUMBER_LINE_LIMIT, BlobKind.RAW)
        if isinstance(line, Blob):
            raise PickleError(f"{what} argument of {line.length} bytes", self._op_offset)
        return line

    def _number_line(self, what: str) -> bytes:
        return self._c_string(self._short_line(what), what)

    def _c_string(self, line: bytes, what: str) -> bytes:
        """A number (or memo index) line as the C unpickler reads it: as a C string, so a
        NUL ends it (strtol, PyLong_FromString and PyOS_string_to_double all stop there,
        and a NUL is accepted where the number ends). pickle._Unpickler refuses the same
        line: a loader disagreement no pickler writes, recorded."""
        nul = line.find(b"\0")
        if nul < 0:
            return line
        if len(self.disagreements) < MAX_FRAME_VIOLATIONS:
            self.disagreements.append(
                (
                    self._op_offset,
                    f"{what} argument at offset {self._op_offset} holds a NUL byte: the C "
                    "unpickler reads the number before it, pickle._Unpickler fails",
                )
            )
        return line[:nul]

    def _int_line(self) -> int | bool:
        line = self._short_line("INT")
        if line == b"00":
            return False
        if line == b"01":
            return True
        line = self._c_string(line, "INT")
        if not line:
            return 0  # "I\0...": strtol reads no digit and stops at the NUL, which C accepts
        value = _parse_int_literal(line)
        if value is None:
            raise PickleError("INT argument is not an integer", self._op_offset)
        return value

    def _long_line(self) -> int:
        line = self._number_line("LONG")
        if line.endswith(b"L"):
            line = line[:-1]
        value = _parse_int_literal(line)
        if value is None:
            raise PickleError("LONG argument is not an integer", self._op_offset)
        return value

    def _float_line(self) -> float:
        line = self._number_line("FLOAT")
        try:
            return float(line)
        except ValueError:
            raise PickleError("FLOAT argument is not a number", self._op_offset) from None

    def _decimal_line(self) -> int:
        line = self._number_line("memo index")
        try:
            return int(line)
        except ValueError:
            raise PickleError("memo index is not an integer", self._op_offset) from None

    def _persid_line(self) -> str:
        line = self._short_line("PERSID")
        try:
            return line.decode("ascii")
        except UnicodeDecodeError:
            raise PickleError("PERSID argument is not ASCII", self._op_offset) from None

    def _string_line(self) -> str | Blob:
        line = self._line(INLINE_LIMIT, BlobKind.QUOTED)
        if isinstance(line, Blob):
            return line
        line = line.rstrip(_BLANKS)  # CPython strips trailing whitespace and controls
        if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
            raise PickleError("STRING argument is not a quoted string", self._op_offset)
        try:
            return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
        except ValueError:
            raise PickleError("STRING argument has a bad escape", self._op_offset) from None

    def _unicode_line(self) -> str | Blob:
        line = self._line(INLINE_LIMIT, BlobKind.ESCAPED)
        if isinstance(line, Blob):
            return line
        try:
            return line.decode("raw-unicode-escape")
        except UnicodeDecodeError:
            raise PickleError("UNICODE argument has a bad escape", self._op_offset) from None

    def _two_lines(self) -> NamePair:
        return self._name_line(), self._name_line()

    def _name_line(self) -> str | Blob:
        line = self._line(LINE_LIMIT, BlobKind.RAW)
        if isinstance(line, Blob):
            return line
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            raise PickleError("module or name is not UTF-8", self._op_offset) from None


Decoder = Callable[[OpcodeReader], Arg]
NO_ARG: Decoder = OpcodeReader._no_arg  # the decoder of opcodes without an argument


def _decoder_table() -> list[Decoder | None]:
    """Opcode -> the OpcodeReader function that decodes its argument (None: not an opcode)."""
    r = OpcodeReader
    table: dict[int, Decoder] = {
        FLOAT: r._float_line,
        INT: r._int_line,
        LONG: r._long_line,
        BININT: r._i4,
        BININT1: r._u1,
        BININT2: r._u2,
        BINFLOAT: r._f8,
        PERSID: r._persid_line,
        STRING: r._string_line,
        UNICODE: r._unicode_line,
        BINSTRING: r._binstring,
        SHORT_BINSTRING: r._short_binstring,
        BINUNICODE: r._binunicode,
        SHORT_BINUNICODE: r._short_binunicode,
        BINUNICODE8: r._binunicode8,
        BINBYTES: r._binbytes,
        SHORT_BINBYTES: r._short_binbytes,
        BINBYTES8: r._binbytes8,
        BYTEARRAY8: r._bytearray8,
        GLOBAL: r._two_lines,
        INST: r._two_lines,
        GET: r._decimal_line,
        PUT: r._decimal_line,
        BINGET: r._u1,
        BINPUT: r._u1,
        LONG_BINGET: r._u4,
        LONG_BINPUT: r._u4,
        LONG1: r._long1,
        LONG4: r._long4,
        PROTO: r._proto,
        FRAME: r._frame,
        EXT1: r._u1,
        EXT2: r._u2,
        EXT4: r._i4,
    }
    decoders: list[Decoder | None] = [None] * 256
    for code in NAMES:
        decoders[code] = table.get(code, NO_ARG)
    return decoders


# Built once per process, not per stream (see machine.HANDLERS).
DECODERS = _decoder_table()
