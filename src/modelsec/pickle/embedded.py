"""Pickles hidden in data: a bytes literal that is itself a pickle, or its base64/hex text.

Nothing loads such a payload by itself, but second-stage attacks ship one in an innocent
looking field for code elsewhere to ``pickle.loads``. Cheap prefix tests pick candidates
while the machine runs (:func:`looks_embedded`); the scanner then decodes a candidate
(:func:`embedded_payload`) and scans it as a member only if it parses as a complete pickle.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

from modelsec.bytesource import ByteSource, BytesSource, SliceSource
from modelsec.pickle.loaders import resolve
from modelsec.pickle.opcodes import HIGHEST_PROTOCOL, Blob, BlobKind
from modelsec.pickle.values import Value

MIN_LENGTH = 8
# A protocol 0 or 1 pickle (no PROTO) starts with any of their opcodes and ends with STOP:
# checking the first byte for GLOBAL, MARK, EMPTY_LIST or EMPTY_DICT alone let a payload
# that starts with a STRING (its padding) pass (red team, session 23). A trial parse decides.
_OLD_OPCODES = "().012FGIJKLMNPQRSTUVX]abcdeghijlopqrstu}"
_OLD_START = frozenset(_OLD_OPCODES.encode())
_TEXT_STARTS = "\x80g8"  # a raw pickle read as latin-1, its base64 ("gA"), its hex ("800")
_HEX = re.compile(r"[0-9a-fA-F\s]+")


def _raw_prefix(data: bytes | str) -> bool:
    first = data[0] if isinstance(data, bytes) else ord(data[0])
    if first == 0x80:
        second = data[1] if isinstance(data, bytes) else ord(data[1])
        return second <= HIGHEST_PROTOCOL
    return False


def _text_prefix(text: str) -> str | None:
    if text.startswith("gA"):  # base64 of b"\x80\x0N"
        return "base64"
    if text[:3] == "800" and text[3:4] in "012345":  # hex of b"\x80\x0N"
        return "hex"
    return None


def looks_embedded(value: Value) -> bool:
    """Cheap test run on every string literal: could this be (an encoding of) a pickle?

    A literal past 8 KiB (a Blob) gets the same test on its head, decoded as the reader
    decodes that kind of literal: the attacker chooses the size, so the large form must be
    found wherever the small one is (red team, session 23). What a head cannot tell (the
    last byte of a protocol-0 pickle, a head that does not decode) makes it a candidate,
    and :func:`embedded_payload` decides on the whole literal."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) < MIN_LENGTH:
            return False
        return _raw_prefix(bytes(value[:2])) or (value[-1] == 0x2E and value[0] in _OLD_START)
    if isinstance(value, str):
        return len(value) >= MIN_LENGTH and (
            (value[0] in _TEXT_STARTS and (_raw_prefix(value[:2]) or _text_prefix(value) is not None))
            or (value[-1] == "." and value[0] in _OLD_OPCODES)  # most strings (names, keys) stop here
        )
    if isinstance(value, Blob) and value.head:
        head = _decoded_head(value)
        if not head:
            return True
        if isinstance(head, bytes):
            return _raw_prefix(head[:2]) or head[0] in _OLD_START
        return head[0] in _OLD_OPCODES or (
            head[0] in _TEXT_STARTS and (_raw_prefix(head[:2]) or _text_prefix(head) is not None)
        )
    return False


_HEAD_SLACK = 12  # bytes a head may end inside of: a UTF-8 sequence, an escape (\U0001f600)


def _decoded_head(blob: Blob) -> bytes | str | None:
    """The start of what the reader would have made of ``blob``: bytes for BINBYTES, str for
    text (BINSTRING's latin-1, BINUNICODE's UTF-8, UNICODE's escapes, STRING's quoted
    repr); None if it does not decode."""
    head = blob.head
    if blob.kind is BlobKind.RAW:
        return head.decode("latin-1") if blob.text else head
    if blob.kind is BlobKind.QUOTED:
        if head[:1] not in (b"'", b'"'):
            return None
        head = head[1:]
    for cut in range(min(_HEAD_SLACK, len(head)) + 1):
        part = head[: len(head) - cut]
        try:
            if blob.kind is BlobKind.UTF8:
                return part.decode("utf-8", "surrogatepass")
            if blob.kind is BlobKind.ESCAPED:
                return part.decode("raw-unicode-escape")
            return codecs.escape_decode(part)[0].decode("latin-1")
        except (UnicodeDecodeError, ValueError):
            continue
    return None


def _only_as_an_old_pickle(blob: Blob) -> bool:
    """A text literal whose head makes it a candidate only as a protocol 0/1 pickle (no
    PROTO, base64 or hex prefix), of a kind whose last byte is its last character."""
    if blob.kind not in (BlobKind.UTF8, BlobKind.RAW):  # escapes: '.' may be spelled \x2e
        return False
    head = _decoded_head(blob)
    return (
        isinstance(head, str)
        and bool(head)
        and not (head[0] in _TEXT_STARTS and (_raw_prefix(head[:2]) or _text_prefix(head) is not None))
    )


def _ends_with_stop(blob: Blob, source: ByteSource) -> bool:
    return blob.length > 0 and source.read_at(blob.offset + blob.length - 1, 1) == b"."


def embedded_payload(value: Value, source: ByteSource, limit: int) -> tuple[str, ByteSource] | None:
    """(encoding, bytes) of the pickle ``value`` may carry, or None. Raises
    PayloadTooLarge when the literal (or what it decodes to) is past ``limit``: the caller
    reports it as not inspected."""
    if isinstance(value, Blob) and value.kind is BlobKind.RAW and not value.text:
        if _raw_prefix(value.head[:2]) or (
            value.head[:1] and value.head[0] in _OLD_START and _ends_with_stop(value, source)
        ):
            return "raw", SliceSource(source, value.offset, value.length)
        return None
    if isinstance(value, Blob) and _only_as_an_old_pickle(value) and not _ends_with_stop(value, source):
        return None  # not a whole protocol 0/1 pickle: nothing to decode (a 100 MiB text field)
    resolved = resolve(value, source, limit)
    if isinstance(resolved, bytes):
        return ("raw", BytesSource(resolved)) if looks_embedded(resolved) else None
    if not isinstance(resolved, str) or len(resolved) < MIN_LENGTH:
        return None
    if _raw_prefix(resolved[:2]) or (resolved[-1] == "." and resolved[0] in _OLD_OPCODES):
        try:
            return "raw", BytesSource(resolved.encode("latin-1"))
        except UnicodeEncodeError:
            return None
    encoding = _text_prefix(resolved)
    try:
        if encoding == "base64":
            return "base64", BytesSource(base64.b64decode(resolved, validate=False))
        if encoding == "hex" and _HEX.fullmatch(resolved):
            return "hex", BytesSource(bytes.fromhex(resolved))
    except (binascii.Error, ValueError):
        return None
    return None
