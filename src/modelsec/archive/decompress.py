"""Bounded, streaming decompression for every codec the container scanners meet.

:class:`DecodeStream` turns a compressed byte range of a :class:`ByteSource` into a
file-like stream. It never asks a decompressor for more than the caller's buffer (so a
bomb cannot allocate in one call), charges every output byte to the file's expansion
budget, and stops with :class:`BombDetected` when output outgrows input by more than the
configured ratio. Corrupt or truncated input ends the stream instead of raising, and is
recorded in :attr:`DecodeStream.error` so that the caller can scan what was decoded (a
streaming loader would have consumed it) and still report the damage.
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from modelsec.bytesource import ByteSource, LimitExceeded

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

RAW_CHUNK = 64 * 1024
# LZMA decoders allocate their dictionary up front; cap what a header may ask for.
LZMA_MEMLIMIT = 1 << 30
# A dictionary never needs to be larger than the output it will hold, and a stream's output
# stops at its bomb bound (max(floor, ratio x compressed size)): LZMA dictionaries are cut
# to that bound plus this slack (one decoder step may overshoot it), so a 20-byte .lzma
# that declares a 1 GiB dictionary costs tens of MiB, not 1 GiB. xz block headers cannot
# be rewritten (they carry a CRC); their memory limit gets the same bound, with a floor
# above the 64 MiB dictionary of `xz -9` so that ordinary small files still decode.
DICTIONARY_SLACK = 8 << 20
XZ_MEMLIMIT_FLOOR = 128 << 20
_TRIAL_DICTIONARY = 1 << 16  # detection decodes 256 bytes: references reach no further
# Below this many output bytes the ratio is not enforced: small members of constant data
# (zero-filled buffers, whitespace) legitimately compress by more than the ratio.
BOMB_FLOOR = 32 << 20

GZIP_MAGIC = b"\x1f\x8b"
BZ2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
LZ4_MAGIC = b"\x04\x22\x4d\x18"


class BombDetected(LimitExceeded):
    """Output outgrew input by more than the allowed ratio."""


class UnsupportedCodec(Exception):
    """The codec (or its parameters) cannot be decoded here."""


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def step(self, data: bytes, max_length: int) -> bytes: ...

    def wants_input(self) -> bool: ...


class _ZlibDecoder:
    """zlib keeps unconsumed input in ``unconsumed_tail``; hide that behind ``step``."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._tail = b""
        self._full = False

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def step(self, data: bytes, max_length: int) -> bytes:
        buf = self._tail + data if self._tail else data
        out = self._d.decompress(buf, max_length)
        self._tail = self._d.unconsumed_tail
        self._full = len(out) >= max_length
        return out

    def wants_input(self) -> bool:
        return not self._tail and not self._full


class _Decompressing(Protocol):
    """A decompressor object of the standard library (or lz4): output bounded per call."""

    def decompress(self, data: bytes, /, max_length: int = ...) -> bytes: ...


class _Decompressor(_Decompressing, Protocol):
    """What bz2's, lzma's and lz4's decompressor objects have in common (zlib's keeps
    unconsumed input itself: :class:`_ZlibDecoder`)."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes | None: ...  # lz4: None until the frame ends

    @property
    def needs_input(self) -> bool: ...


class _BufferedDecoder:
    """bz2 / lzma / lz4 decompressors: they buffer input themselves (``needs_input``)."""

    def __init__(self, decompressor: _Decompressor) -> None:
        self._d = decompressor
        self._full = False

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data or b""

    def step(self, data: bytes, max_length: int) -> bytes:
        out = self._d.decompress(data, max_length=max_length)
        self._full = len(out) >= max_length
        return out

    def wants_input(self) -> bool:
        return bool(self._d.needs_input) and not self._full


def _zip_lzma_filters(header: bytes, dictionary_cap: int) -> tuple[list[dict[str, int]], int]:
    """Zip method 14: 2-byte version, 2-byte properties size, LZMA1 properties; the
    dictionary is cut to ``dictionary_cap`` (see :data:`DICTIONARY_SLACK`)."""
    if len(header) < 9:
        raise UnsupportedCodec("zip LZMA header truncated")
    (prop_size,) = struct.unpack_from("<H", header, 2)
    if prop_size != 5:
        raise UnsupportedCodec(f"zip LZMA properties of {prop_size} bytes")
    props = header[4:9]
    byte = props[0]
    if byte >= 9 * 5 * 5:
        raise UnsupportedCodec("invalid LZMA properties")
    lc, rem = byte % 9, byte // 9
    lp, pb = rem % 5, rem // 5
    (dict_size,) = struct.unpack_from("<I", props, 1)
    dict_size = min(dict_size, dictionary_cap)
    if dict_size > LZMA_MEMLIMIT:
        raise UnsupportedCodec(f"LZMA dictionary of {dict_size} bytes exceeds {LZMA_MEMLIMIT}")
    return [{"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": dict_size}], 9


def _lz4_decompressor() -> _Decompressor:
    import lz4.frame  # imported lazily: only lz4 streams need it (untyped: see pyproject)

    decompressor: _Decompressor = lz4.frame.LZ4FrameDecompressor()
    return decompressor


# codec name -> factory, given the stream's dictionary cap; "multi" codecs accept
# concatenated streams (gzip, bz2, xz, lz4), like the command-line tools and Python's own
# modules do. lzma-alone gets its dictionary cut in the header it is fed (DecodeStream).
_FACTORIES: dict[str, Callable[[int], _Decoder]] = {
    "deflate": lambda cap: _ZlibDecoder(-15),
    "zlib": lambda cap: _ZlibDecoder(15),
    "gzip": lambda cap: _ZlibDecoder(31),
    "bz2": lambda cap: _BufferedDecoder(bz2.BZ2Decompressor()),
    "xz": lambda cap: _BufferedDecoder(
        lzma.LZMADecompressor(lzma.FORMAT_XZ, min(LZMA_MEMLIMIT, max(XZ_MEMLIMIT_FLOOR, cap)))
    ),
    "lzma-alone": lambda cap: _BufferedDecoder(lzma.LZMADecompressor(lzma.FORMAT_ALONE, LZMA_MEMLIMIT)),
    "lz4": lambda cap: _BufferedDecoder(_lz4_decompressor()),
}
_MULTI_MAGIC = {"gzip": GZIP_MAGIC, "bz2": BZ2_MAGIC, "xz": XZ_MAGIC, "lz4": LZ4_MAGIC}
CODECS = frozenset(_FACTORIES) | {"zip-lzma"}


class DecodeStream(io.RawIOBase):
    """Decompressed view of ``source[start:start+length]`` with bounded output.

    ``account`` is called with every batch of output bytes (normally
    ``ctx.account_expansion``) and may raise :class:`LimitExceeded`. ``max_ratio`` bounds
    output / input once output exceeds :data:`BOMB_FLOOR`. After the stream ends,
    ``error`` says why if the data was corrupt or truncated, ``trailing_offset`` is the
    source offset of bytes after the last complete stream (or ``None``), and ``crc32`` is
    the CRC-32 of everything produced.
    """

    def __init__(
        self,
        source: ByteSource,
        start: int,
        length: int,
        codec: str,
        *,
        account: Callable[[int], None] | None = None,
        max_ratio: float = 250.0,
        floor: int = BOMB_FLOOR,
        what: str = "stream",
    ) -> None:
        if codec not in CODECS:
            raise UnsupportedCodec(f"codec {codec!r}")
        self._source = source
        self._start = start
        self._end = min(start + length, source.size)
        self._pos = start  # next raw byte to read
        self._pending = b""
        self._codec = codec
        self._multi = codec in _MULTI_MAGIC
        self._account = account
        self._max_ratio = max_ratio
        self._floor = floor
        self._what = what
        self.produced = 0
        self.crc32 = 0
        self.error: str | None = None
        self.trailing_offset: int | None = None
        self.finished = False
        self._decoder = self._new_decoder()

    def _new_decoder(self) -> _Decoder:
        cap = self._dictionary_cap()
        if self._codec == "zip-lzma":
            header = self._source.read_at(self._pos, 9)
            filters, used = _zip_lzma_filters(header, cap)
            self._pos += used
            try:
                raw = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
            except lzma.LZMAError as exc:  # liblzma refuses the options (lc + lp > 4, ...)
                raise UnsupportedCodec(f"invalid LZMA properties ({exc})") from None
            return _BufferedDecoder(raw)
        if self._codec == "lzma-alone" and self._end - self._pos >= 5:
            # properties byte, then the dictionary size: fed to the decoder with the size cut
            header = self._source.read_at(self._pos, 5)
            (declared,) = struct.unpack_from("<I", header, 1)
            self._pending = header[:1] + struct.pack("<I", min(declared, cap))
            self._pos += 5
        return _FACTORIES[self._codec](cap)

    def _dictionary_cap(self) -> int:
        """The most output this stream can produce before :class:`BombDetected` (back-
        references reach no further), plus :data:`DICTIONARY_SLACK`."""
        bound = max(self._floor, int(self._max_ratio * (self._end - self._start)))
        return bound + DICTIONARY_SLACK

    @property
    def consumed(self) -> int:
        """Raw bytes read from the source so far."""
        return self._pos - self._start

    def readable(self) -> bool:
        return True

    def _raw(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._pos >= self._end:
            return b""
        data = self._source.read_at(self._pos, min(RAW_CHUNK, self._end - self._pos))
        self._pos += len(data)
        return data

    def _finish_stream(self) -> bool:
        """The current decoder reached its end; True if another stream follows."""
        rest = self._decoder.unused_data + self._pending
        self._pending = b""
        if not rest and self._pos < self._end:
            rest = self._source.read_at(self._pos, min(RAW_CHUNK, self._end - self._pos))
            self._pos += len(rest)
        if not rest:
            return False
        magic = _MULTI_MAGIC.get(self._codec)
        if self._multi and magic is not None and rest.startswith(magic):
            self._decoder = self._new_decoder()
            self._pending = rest
            return True
        if self._codec == "gzip" and not rest.strip(b"\0"):
            # gzip allows zero padding after the last member
            return False
        self.trailing_offset = self._pos - len(rest)
        return False

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        want = len(view)
        if want == 0 or self.finished:
            return 0
        stalls = 0
        while True:
            if self._decoder.eof:
                if not self._finish_stream():
                    self.finished = True
                    return 0
            data = b""
            if self._decoder.wants_input():
                data = self._raw()
                if not data:
                    self.error = f"{self._what}: compressed data ends before the stream does"
                    self.finished = True
                    return 0
            try:
                out = self._decoder.step(data, want)
            except lzma.LZMAError as exc:
                if "memory" in str(exc).lower():
                    raise UnsupportedCodec(f"{self._what}: {exc}") from None
                self.error = f"{self._what}: corrupt compressed data ({exc})"
                self.finished = True
                return 0
            except (zlib.error, OSError, EOFError, ValueError, RuntimeError) as exc:
                self.error = f"{self._what}: corrupt compressed data ({exc})"
                self.finished = True
                return 0
            if out:
                self._produced(out)
                view[: len(out)] = out
                return len(out)
            stalls = stalls + 1 if not data else 0
            if stalls > 3:  # a decoder that neither consumes nor produces: corrupt input
                self.error = f"{self._what}: decoder made no progress"
                self.finished = True
                return 0

    def _produced(self, out: bytes) -> None:
        self.produced += len(out)
        self.crc32 = zlib.crc32(out, self.crc32)
        if self._account is not None:
            self._account(len(out))
        if self.produced > self._floor and self.produced > self._max_ratio * max(self.consumed, 1):
            raise BombDetected(
                f"{self._what} expands more than {self._max_ratio:g} times "
                f"({self.produced} bytes from {self.consumed})"
            )


def sniff_codec(head: bytes) -> str | None:
    """The single-stream codec whose magic starts ``head`` (zlib needs a trial decode)."""
    if head.startswith(GZIP_MAGIC + b"\x08"):
        return "gzip"
    if head.startswith(BZ2_MAGIC) and len(head) >= 4 and head[3:4] in b"123456789":
        if head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
            return "bz2"
        return None
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(LZ4_MAGIC):
        return "lz4"
    if looks_like_lzma_alone(head):
        return "lzma-alone"
    if looks_like_zlib(head):
        return "zlib"
    return None


def looks_like_zlib(head: bytes) -> bool:
    """A zlib header (2 bytes, weak) confirmed by decoding a little of the stream."""
    if len(head) < 3:
        return False
    cmf, flg = head[0], head[1]
    if cmf & 0x0F != 8 or cmf >> 4 > 7 or ((cmf << 8) | flg) % 31 != 0 or flg & 0x20:
        return False
    return _trial(zlib.decompressobj(15), head)


def looks_like_lzma_alone(head: bytes) -> bool:
    """``.lzma`` (joblib's 'lzma'): properties byte 0x5D, a dictionary size that the
    loaders' decoder accepts, then a stream that decodes; the prefix alone is too weak.

    Every loader opens ``.lzma`` through ``lzma.LZMAFile``/``lzma.open`` with
    ``FORMAT_AUTO`` (joblib after its ``]\x00`` prefix check, pandas by extension), and
    liblzma's auto decoder is *picky*: the dictionary size must be 2^n or 2^n + 2^(n-1).
    Requiring that keeps a protocol-1 pickle that starts with EMPTY_LIST (``]``) from
    being taken for a stream that no loader would decode (a false polyglot the soundness
    campaign found). Any such size is accepted however large: the trial decodes the first
    few hundred bytes with a small dictionary (back-references there cannot reach
    further), and the scan then fails closed on a huge one (:data:`LZMA_MEMLIMIT`). Only
    code that names ``FORMAT_ALONE`` itself reads other sizes; no model loader does."""
    if len(head) < 14 or head[0] != 0x5D or not _picky_dictionary(head[1:5]):
        return False
    trial = head[:1] + struct.pack("<I", _TRIAL_DICTIONARY) + head[5:8192]
    return _trial(lzma.LZMADecompressor(lzma.FORMAT_ALONE), trial)


def _picky_dictionary(size_field: bytes) -> bool:
    """liblzma's ``picky`` check (alone_decoder.c): 2^n, 2^n + 2^(n-1), 0 or 2^32 - 1
    (checked against ``lzma.decompress`` in tests/formats/test_compressed_stream.py)."""
    size = int.from_bytes(size_field, "little")
    if size in (0, 0xFFFFFFFF):
        return True
    rounded = size - 1
    for shift in (2, 3, 4, 8, 16):
        rounded |= rounded >> shift
    return rounded + 1 == size


def _trial(decoder: _Decompressing, head: bytes) -> bool:
    try:
        out = decoder.decompress(head[:8192], 256)
    except Exception:
        return False
    return len(out) > 0
