"""sentencepiece tokenizer models (``tokenizer.model``, ``spiece.model``): a protobuf
``ModelProto`` whose field 1 repeats ``SentencePiece`` messages (piece string, score
float, type enum), followed by the trainer and normaliser specs.

A tokenizer vocabulary is data, not a model: recognised here so that it is not "unknown"
(a ``.model`` name alone proves nothing). Nothing in it is executed, so nothing is
reported; the loader (the sentencepiece C++ library) only builds a vocabulary from it.
"""

from __future__ import annotations

from typing import ClassVar

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner
from modelsec.protobuf_wire import I32, LEN, VARINT, Field, Message, WireError, WireLimits

DETECT_PIECES = 32  # pieces checked; real vocabularies have thousands
# ModelProto: pieces=1, trainer_spec=2, normalizer_spec=3, self_test_data=4,
# denormalizer_spec=5; all length-delimited.
_TOP_FIELDS = frozenset({1, 2, 3, 4, 5})
# SentencePiece: piece=1 (string), score=2 (float), type=3 (enum)
_PIECE_FIELDS = {1: LEN, 2: I32, 3: VARINT}
MAX_PIECE = 1024


def looks_like_sentencepiece(head: bytes, source: ByteSource) -> bool:
    if not head.startswith(b"\x0a"):  # field 1, length-delimited: the first piece
        return False
    message = Message(source, limits=WireLimits(max_depth=2))
    pieces = 0
    try:
        for field in message.fields():
            if field.number not in _TOP_FIELDS or field.wire_type != LEN:
                return False
            if field.number != 1:
                break
            if not _is_piece(message, field):
                return False
            pieces += 1
            if pieces >= DETECT_PIECES:
                break
    except (WireError, LimitExceeded):
        return False
    return pieces >= min(3, DETECT_PIECES)


def _is_piece(message: Message, field: Field) -> bool:
    has_text = False
    for part in message.child(field).fields():
        if _PIECE_FIELDS.get(part.number) != part.wire_type:
            return False
        if part.number == 1:
            if part.length > MAX_PIECE:
                return False
            try:
                message.read(part, MAX_PIECE).decode("utf-8")
            except UnicodeDecodeError:
                return False
            has_text = True
    return has_text


class SentencePieceScanner(FormatScanner):
    name: ClassVar[str] = "sentencepiece"
    category: ClassVar[FormatCategory] = FormatCategory.AUXILIARY
    priority: ClassVar[int] = 44  # protobufs have no magic: after the formats that do

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return looks_like_sentencepiece(head, source)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        return None


SCANNER = SentencePieceScanner()
