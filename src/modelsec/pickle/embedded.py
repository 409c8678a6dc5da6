"""Pickles hidden in data: a bytes literal that is itself a pickle, or its base64/hex text.

Nothing loads such a payload by itself, but second-stage attacks ship one in an innocent
looking field for code elsewhere to ``pickle.loads``. Cheap prefix tests pick candidates
while the machine runs (:func:`looks_embedded`); the scanner then decodes a candidate
(:func:`embedded_payload`) and scans it as a member only if it parses as a complete pickle.
"""

from __future__ import annotations

import base64
import binascii
import re

from modelsec.bytesource import ByteSource, BytesSource, SliceSource
from modelsec.pickle.loaders import PayloadTooLarge, resolve
from modelsec.pickle.opcodes import HIGHEST_PROTOCOL, Blob, BlobKind
from modelsec.pickle.values import Value

MIN_LENGTH = 8
_PROTO0_START = frozenset(b"c(]}")  # GLOBAL, MARK, EMPTY_LIST, EMPTY_DICT
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
    """Cheap test run on every string literal: could this be (an encoding of) a pickle?"""
    if isinstance(value, (bytes, bytearray)):
        if len(value) < MIN_LENGTH:
            return False
        return _raw_prefix(bytes(value[:2])) or (value[0] in _PROTO0_START and value[-1] == 0x2E)
    if isinstance(value, str):
        return (
            len(value) >= MIN_LENGTH
            and value[0] in _TEXT_STARTS  # most strings (names, keys) stop here
            and (_raw_prefix(value[:2]) or _text_prefix(value) is not None)
        )
    if isinstance(value, Blob) and len(value.head) >= 2:
        if value.kind is BlobKind.RAW and _raw_prefix(value.head[:2]):
            return True
        return value.text and (value.head[:2] == b"gA" or value.head[:3] == b"800")
    return False


def embedded_payload(value: Value, source: ByteSource, limit: int) -> tuple[str, ByteSource] | None:
    """(encoding, bytes) of the pickle ``value`` may carry, or None."""
    if isinstance(value, Blob) and value.kind is BlobKind.RAW and _raw_prefix(value.head[:2]):
        return "raw", SliceSource(source, value.offset, value.length)
    try:
        resolved = resolve(value, source, limit)
    except PayloadTooLarge:
        return None
    if isinstance(resolved, bytes):
        return ("raw", BytesSource(resolved)) if looks_embedded(resolved) else None
    if not isinstance(resolved, str) or len(resolved) < MIN_LENGTH:
        return None
    if _raw_prefix(resolved[:2]):
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
