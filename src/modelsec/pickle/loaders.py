"""Nested deserialisers, the decoders that feed them, and the bytes they would receive.

A pickle that calls ``pickle.loads`` runs a second pickle; when that argument is a literal
(or a literal pushed through ``base64.b64decode``, ``codecs.decode(..., 'hex')``,
``bytes.fromhex``, ``zlib.decompress``, ``_codecs.encode(..., 'latin1')``, ``io.BytesIO``),
:func:`payload_source` reconstructs those bytes, bounded by ``max_inline_bytes``, so the
inner payload is scanned too. Decoding here is pure data transformation from a fixed list
of codecs: nothing is looked up by a name the file chose.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import codecs
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from modelsec.bytesource import ByteSource, BytesSource, SliceSource
from modelsec.pickle.opcodes import Blob, BlobKind
from modelsec.pickle.values import Derived, Value


@dataclass(frozen=True)
class Loader:
    """How a loading function takes its payload (bytes or a file) and as what format."""

    takes: str  # "bytes" (loads-style) or "file" (load-style: a file object)
    expect: str | None  # format to force on the payload; None: recognise by content


_BYTES_PICKLE = Loader("bytes", "pickle")
_FILE_PICKLE = Loader("file", "pickle")
_BYTES_ANY = Loader("bytes", None)
_FILE_ANY = Loader("file", None)
_OPAQUE = Loader("bytes", "")  # flagged, but its payload is not a format we scan

_PICKLERS = ("pickle", "_pickle", "dill", "dill._dill", "cloudpickle", "cloudpickle.cloudpickle")
LOADERS: dict[str, Loader] = {
    **{f"{m}.{f}": _BYTES_PICKLE for m in _PICKLERS for f in ("loads", "_loads")},
    **{f"{m}.{f}": _FILE_PICKLE for m in _PICKLERS for f in ("load", "_load")},
    "torch.storage._load_from_bytes": _BYTES_ANY,
    "torch.load": _FILE_ANY,
    "torch.serialization.load": _FILE_ANY,
    "joblib.load": _FILE_ANY,
    "joblib.numpy_pickle.load": _FILE_ANY,
    "numpy.load": _FILE_ANY,
    "numpy.lib.npyio.load": _FILE_ANY,
    "pandas.read_pickle": _FILE_PICKLE,
    "marshal.loads": _OPAQUE,
    "marshal.load": _OPAQUE,
}

_BASE64 = "base64"
IDENTITY = "identity"  # the transform of bytes(x), bytearray(x), BytesIO(x): the bytes themselves
DECODERS: dict[str, str] = {
    "_codecs.encode": "encode",
    "codecs.encode": "encode",
    "_codecs.decode": "decode",
    "codecs.decode": "decode",
    **dict.fromkeys(
        (
            "base64.b64decode",
            "base64.standard_b64decode",
            "base64.decodebytes",
            "base64.decodestring",
            "binascii.a2b_base64",
        ),
        _BASE64,
    ),
    "base64.urlsafe_b64decode": "base64url",
    "base64.b32decode": "base32",
    "base64.b16decode": "base16",
    "base64.a85decode": "ascii85",
    "base64.b85decode": "base85",
    **dict.fromkeys(
        ("binascii.a2b_hex", "binascii.unhexlify", "builtins.bytes.fromhex", "builtins.bytearray.fromhex"),
        "hex",
    ),
    "zlib.decompress": "zlib",
    "gzip.decompress": "gzip",
    "bz2.decompress": "bz2",
    "lzma.decompress": "lzma",
    **dict.fromkeys(("builtins.bytes", "builtins.bytearray", "io.BytesIO", "_io.BytesIO"), IDENTITY),
}

# codecs.encode/decode: the codec names we apply, normalised; others stay opaque.
_TEXT_CODECS = {
    "latin_1": "latin-1",
    "latin1": "latin-1",
    "iso_8859_1": "latin-1",
    "l1": "latin-1",
    "iso8859_1": "latin-1",
    "utf_8": "utf-8",
    "utf8": "utf-8",
    "ascii": "ascii",
    "us_ascii": "ascii",
    "raw_unicode_escape": "raw-unicode-escape",
}
_BYTES_CODECS = {
    "hex": "hex",
    "hex_codec": "hex",
    "base64": _BASE64,
    "base64_codec": _BASE64,
    "base_64": _BASE64,
    "zlib": "zlib",
    "zlib_codec": "zlib",
    "zip": "zlib",
    "bz2": "bz2",
    "bz2_codec": "bz2",
}


def codec_transform(direction: str, codec: object) -> str:
    """The transform for ``codecs.<direction>(x, codec)``; ``opaque`` if unknown."""
    if not isinstance(codec, str):
        return "opaque"
    key = codec.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _TEXT_CODECS:
        return f"{direction}:{_TEXT_CODECS[key]}"
    if key in _BYTES_CODECS:
        # codecs.decode(x, 'hex') decodes; codecs.encode(x, 'hex') would encode: nobody
        # hides a payload by encoding it at load time, so only decoding is followed.
        return _BYTES_CODECS[key] if direction == "decode" else "opaque"
    return "opaque"


class PayloadTooLarge(Exception):
    """Reconstructing the payload would take more than the inline budget."""


Resolved = str | bytes


def _as_bytes(value: Resolved) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")  # Python 2 strings decoded latin-1 by the reader
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _read_blob(blob: Blob, source: ByteSource, limit: int) -> Resolved | None:
    if blob.length > limit:
        raise PayloadTooLarge(f"{blob.length}-byte literal")
    raw = source.read_at(blob.offset, blob.length)
    try:
        # What the reader makes of the same literal when it is small: a Python 2 str
        # (BINSTRING, STRING) is latin-1 text, as CPython's loaders decode it by default,
        # not bytes (a base64 payload in a large BINSTRING went unread: red team, session 23)
        if blob.kind is BlobKind.RAW:
            return raw.decode("latin-1") if blob.text else raw
        if blob.kind is BlobKind.UTF8:
            return raw.decode("utf-8", "surrogatepass")
        if blob.kind is BlobKind.ESCAPED:
            return raw.decode("raw-unicode-escape")
        stripped = raw.rstrip(bytes(range(33)))
        return codecs.escape_decode(stripped[1:-1])[0].decode("latin-1")
    except (UnicodeDecodeError, ValueError):
        return None


def _bounded(decompress: Callable[[bytes, int], bytes], data: bytes, limit: int) -> bytes:
    out = decompress(data, limit + 1)
    if len(out) > limit:
        raise PayloadTooLarge("decompressed payload")
    return out


_DECOMPRESS: dict[str, Callable[[bytes, int], bytes]] = {
    "zlib": lambda d, n: zlib.decompressobj().decompress(d, n),
    "gzip": lambda d, n: zlib.decompressobj(31).decompress(d, n),
    "bz2": lambda d, n: bz2.BZ2Decompressor().decompress(d, max_length=n),
    "lzma": lambda d, n: lzma.LZMADecompressor().decompress(d, max_length=n),
}
_DECODE: dict[str, Callable[[bytes], bytes]] = {
    _BASE64: lambda d: base64.b64decode(d),
    "base64url": lambda d: base64.urlsafe_b64decode(d),
    "base32": lambda d: base64.b32decode(d),
    "base16": lambda d: base64.b16decode(d, casefold=True),
    "ascii85": lambda d: base64.a85decode(d),
    "base85": lambda d: base64.b85decode(d),
    "hex": lambda d: bytes.fromhex(d.decode("ascii")),
}


def _apply(transform: str, value: Resolved, limit: int) -> Resolved | None:
    try:
        if transform == IDENTITY:
            return value
        if transform.startswith("encode:"):
            if isinstance(value, bytes):
                return None  # str.encode on bytes: the call fails at load time
            return value.encode(transform.split(":", 1)[1], "surrogatepass")
        if transform.startswith("decode:"):
            return _as_bytes(value).decode(transform.split(":", 1)[1])
        if transform in _DECODE:
            data = _as_bytes(value)
            if transform == "hex":
                data = b"".join(data.split())  # fromhex ignores whitespace
            return _DECODE[transform](data)
        if transform in _DECOMPRESS:
            return _bounded(_DECOMPRESS[transform], _as_bytes(value), limit)
    except (ValueError, UnicodeError, binascii.Error, zlib.error, OSError, lzma.LZMAError, EOFError):
        return None
    return None  # "opaque"


def resolve(value: Value, source: ByteSource, limit: int, depth: int = 0) -> Resolved | None:
    """The str/bytes ``value`` stands for, or None if it is not a (decoded) literal."""
    if isinstance(value, (bytes, str)):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, Blob):
        return _read_blob(value, source, limit)
    if isinstance(value, Derived) and depth < 16:
        inner = resolve(value.source, source, limit, depth + 1)
        return None if inner is None else _apply(value.transform, inner, limit)
    return None


def payload_source(value: Value, source: ByteSource, limit: int) -> ByteSource | None:
    """A byte source holding what a loader given ``value`` would read, or None.

    A large raw literal is a slice of the scanned file (nothing copied); anything that
    needs decoding is rebuilt in memory, at most ``limit`` bytes (else PayloadTooLarge).
    """
    if isinstance(value, Blob) and value.kind is BlobKind.RAW:
        return SliceSource(source, value.offset, value.length)
    resolved = resolve(value, source, limit)
    if resolved is None:
        return None
    data = _as_bytes(resolved)
    if len(data) > limit:
        raise PayloadTooLarge(f"{len(data)}-byte payload")
    return BytesSource(data)
