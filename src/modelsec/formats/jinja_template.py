"""Standalone Jinja templates (``chat_template.jinja``, ``*.j2``, ``*.template``, files in
``additional_chat_templates/``), analysed statically: parsed into an AST, never rendered.

Recognised by content: UTF-8 text that contains ``{{`` or ``{%`` and parses as a Jinja
template. The file name breaks ties only: a template-like name claims a file with Jinja
delimiters that does not parse (so the failure is reported, not ignored), and a YAML name
leaves the file to the YAML scanner. Jinja and the analysis are imported only for text
that passes those cheap checks.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.formats.base import FormatCategory, FormatScanner
from modelsec.formats.config_common import decode_text, head_is_text

if TYPE_CHECKING:
    from jinja2 import nodes

    from modelsec.context import ScanContext

TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2", ".template", ".tmpl", ".tpl")
YAML_SUFFIXES = (".yaml", ".yml")
# "{{" or "{%": one regex pass over the head is several times faster than two `in` tests,
# which CPython runs byte by byte for a two-byte needle (every file meets this detector).
_DELIMITER = re.compile(rb"\{[{%]")


def template_named(filename: str) -> bool:
    lower = filename.lower()
    return lower.endswith(TEMPLATE_SUFFIXES) or "chat_template" in lower


def _max_template_bytes() -> int:
    from modelsec.templates.parsing import MAX_TEMPLATE_CHARS

    return MAX_TEMPLATE_CHARS * 4  # UTF-8 upper bound


def _has_logic(tree: nodes.Template) -> bool:
    """Anything beyond literal text: an expression or a statement."""
    from jinja2 import nodes

    return any(not isinstance(n, (nodes.Output, nodes.TemplateData)) for n in tree.find_all(nodes.Node))


class JinjaTemplateScanner(FormatScanner):
    name = "jinja"
    category = FormatCategory.AUXILIARY
    priority = 82

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        if filename.lower().endswith(YAML_SUFFIXES):
            return False
        named = template_named(filename)
        if named:
            return True  # the name decides, whatever the bytes (a NUL is template text)
        # A NUL fails head_is_text below on every path: binary files (tensor data, most
        # archive members) stop here, before the delimiter search reads their whole head.
        if b"\x00" in head:
            return False
        if not named and _DELIMITER.search(head) is None:
            return False  # templates put their logic early; a name claims the rest
        if not head_is_text(head, source):
            return False
        from modelsec.templates.parsing import has_markers, parse

        if source.size > _max_template_bytes():
            return False
        data = head if source.size <= len(head) else source.read_at(0, source.size)
        text = decode_text(data)
        if text is None or not has_markers(text):
            return False
        result = parse(text)
        return result.tree is not None and _has_logic(result.tree)

    def read_by_name(self, filename: str) -> bool:
        # Loaders read a template file by its name, as raw text (transformers'
        # chat_template.jinja, vLLM --chat-template, llama.cpp --chat-template-file): it is
        # scanned as a template whatever else its bytes are (JSON whose escapes hide "{{"
        # from the decoded view, a tar whose header holds it).
        return template_named(filename)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        from modelsec.templates import report

        if source.size > _max_template_bytes():
            raise LimitExceeded(f"template of {source.size} bytes exceeds {_max_template_bytes()}")
        data = source.read_at(0, source.size)
        text = decode_text(data)
        if text is None:
            # Loaders read templates as UTF-8; analyse what a lenient reader would see.
            text = data.decode("utf-8", errors="replace")
        report(ctx, text, "", strict=True)


SCANNER = JinjaTemplateScanner()
