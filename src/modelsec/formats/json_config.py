"""JSON configs (``config.json``, ``tokenizer_config.json``, ``chat_template.json``, shard
indexes, anything else in JSON): parsed with bounded size, every value that is a template
analysed statically, duplicate keys reported.

Detection is by content: the text starts with ``{`` or ``[`` followed by what JSON allows
there (small files must parse entirely). JSON Lines files are read document by document. It runs after format-specific JSON detectors such
as Keras configs (priority 30) and before templates and plain text.
"""

from __future__ import annotations

import json
from typing import Any

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner
from modelsec.formats.config_common import (
    CONFIG_UNPARSEABLE,
    DUPLICATE_KEY,
    decode_text,
    head_is_text,
)
from modelsec.formats.keras_config import is_keras_document

_WS = b" \t\r\n"
_VALUE_START = b'{["-0123456789tfnNI'
MAX_DUPLICATES_REPORTED = 20


class _Duplicates:
    """An ``object_pairs_hook`` that keeps the values of repeated keys for analysis."""

    def __init__(self) -> None:
        self.found: list[tuple[str, Any]] = []

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)  # the last value of a repeated key wins, as in json.loads
        if len(out) != len(pairs):
            last = {key: i for i, (key, _v) in enumerate(pairs)}
            for i, (key, value) in enumerate(pairs):
                if last[key] != i:
                    self.found.append((key, value))  # shadowed: kept for analysis
        return out


def parse_json(text: str) -> tuple[Any, list[tuple[str, Any]]]:
    """The parsed value and the (key, value) pairs shadowed by duplicate keys. JSON Lines
    (one document per line) parse to the list of their documents. Raises
    ValueError/RecursionError for what is neither."""
    dups = _Duplicates()
    try:
        return json.loads(text, object_pairs_hook=dups), dups.found
    except json.JSONDecodeError as exc:
        if not exc.msg.startswith("Extra data"):
            raise
        first_error = exc
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        docs = [json.loads(line, object_pairs_hook=dups) for line in lines]
    except json.JSONDecodeError:
        raise first_error from None
    return docs, dups.found


def decode_json_text(data: bytes) -> str | None:
    """The text of a JSON document as ``json.loads`` reads bytes: UTF-8 (a BOM dropped), or
    UTF-16 or UTF-32 told by its first bytes (RFC 4627). None if it decodes as none."""
    text = decode_text(data)
    if text is not None:
        return text
    encoding = json.detect_encoding(data)
    if encoding.startswith(("utf-16", "utf-32")):
        try:
            return data.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError:
            return None
    return None


def looks_like_json(head: bytes, source: ByteSource) -> bool:
    if not head_is_text(head, source):
        return _looks_like_wide_json(head)
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    body = body.lstrip(_WS)
    if not body:
        # whitespace to the end of the head: json.loads skips any amount, so must we
        return source.size > len(head)
    if body[:1] not in b"{[":
        return False
    if body.startswith((b"{{", b"{%", b"{#")):
        return False  # a Jinja template, not JSON
    if source.size <= len(head):
        text = decode_text(head)
        if text is None:
            return False
        try:
            parse_json(text)
        except (ValueError, RecursionError):
            return False
        return True
    rest = body[1:].lstrip(_WS)
    if not rest:
        return True  # whitespace to the end of the head: json.loads skips it, so must we
    if body[:1] == b"{":
        return rest[:1] in (b'"', b"}")
    return rest[:1] == b"]" or rest[:1] in [bytes([c]) for c in _VALUE_START]


def _looks_like_wide_json(head: bytes) -> bool:
    """UTF-16 or UTF-32 JSON (json.loads reads it from bytes, Keras does): an object or
    array opening in that encoding."""
    encoding = json.detect_encoding(head)
    if not encoding.startswith(("utf-16", "utf-32")):
        return False
    width = 2 if encoding.startswith("utf-16") else 4
    text = head[: len(head) - len(head) % width].decode(encoding, "replace").removeprefix("\ufeff")
    return text.lstrip(" \t\r\n")[:1] in ("{", "[")


class JsonConfigScanner(FormatScanner):
    name = "json"
    category = FormatCategory.AUXILIARY
    priority = 80

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return looks_like_json(head, source)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        limit = ctx.limits.max_header_bytes
        if source.size > limit:
            raise LimitExceeded(
                f"JSON of {source.size} bytes exceeds the {limit}-byte limit for configs; "
                "its values (templates) were not inspected"
            )
        text = decode_json_text(source.read_at(0, source.size))
        if text is None:
            ctx.incomplete("JSON is not UTF-8 text; its values were not inspected", CONFIG_UNPARSEABLE)
            return
        try:
            value, duplicates = parse_json(text)
        except RecursionError:
            ctx.incomplete(
                "JSON nests too deeply to parse; its values were not inspected", CONFIG_UNPARSEABLE
            )
            return
        except ValueError as exc:
            ctx.incomplete(f"not valid JSON ({exc}); its values were not inspected", CONFIG_UNPARSEABLE)
            return
        report_duplicates(ctx, duplicates)
        if is_keras_document(value):
            # Keras config whose keys its byte detection did not see (escaped, another
            # encoding, past the head): json.loads reads them all the same.
            from modelsec.formats.keras_config_scan import analyze_keras_value

            ctx.set_format("keras-config", FormatCategory.AUXILIARY)
            analyze_keras_value(ctx, value)
        # The template analysis (Jinja), loaded for the first JSON file scanned, not detected.
        from modelsec.templates.config_walk import iter_json_candidates, report_candidates

        report_candidates(ctx, iter_json_candidates(value, extra=duplicates))


def report_duplicates(ctx: ScanContext, duplicates: list[tuple[str, Any]]) -> None:
    for key, _value in duplicates[:MAX_DUPLICATES_REPORTED]:
        ctx.report(
            DUPLICATE_KEY.at(
                ctx.path,
                f"key {key!r} appears more than once in one object; readers disagree on which value wins",
                subject=key,
            )
        )
    if len(duplicates) > MAX_DUPLICATES_REPORTED:
        ctx.report(DUPLICATE_KEY.at(ctx.path, f"{len(duplicates)} duplicate keys in total", subject="(more)"))


SCANNER = JsonConfigScanner()
