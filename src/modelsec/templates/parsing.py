"""Parse template text into a Jinja AST, and nothing more.

``Environment.parse`` runs Jinja's lexer and parser only: no compilation, no rendering, no
loader. The environment enables the syntax that real chat-template renderers accept
(``loopcontrols`` for ``break``/``continue``, ``do``, and the ``{% generation %}`` block that
Hugging Face adds) so that templates using it are inspected instead of skipped.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.ext import Extension
from jinja2.parser import Parser

MARKERS = ("{{", "{%")
MAX_TEMPLATE_CHARS = 2 << 20  # real chat templates are a few KiB; 2 MiB is generous
MAX_AST_NODES = 200_000


class GenerationBlock(Extension):
    """``{% generation %}...{% endgeneration %}`` (transformers' AssistantTracker): parsed
    as its body, which is all that matters statically."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


@functools.cache
def environment() -> Environment:
    return Environment(
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", GenerationBlock],
        autoescape=False,
    )


def has_markers(text: str) -> bool:
    """True if ``text`` contains Jinja expression or statement delimiters."""
    return "{{" in text or "{%" in text


@dataclass(frozen=True)
class ParseResult:
    """The AST of a template, or why there is none; ``limit`` when a size or complexity limit is why."""

    tree: nodes.Template | None
    error: str | None = None  # why there is no tree
    limit: bool = False  # the error is a size/complexity limit, not a syntax error


def parse(source: str) -> ParseResult:
    """The AST of ``source``, or the reason there is none. Never raises."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return ParseResult(None, f"template of {len(source)} characters exceeds {MAX_TEMPLATE_CHARS}", True)
    try:
        with warnings.catch_warnings():
            # the lexer decodes string escapes with Python's codec, which warns on invalid
            # ones ('\l'); hostile text must neither spam the user nor, under -W error, fail
            warnings.simplefilter("ignore")
            tree = environment().parse(source)
    except TemplateSyntaxError as exc:
        return ParseResult(None, f"Jinja syntax error at line {exc.lineno}: {exc.message}")
    except RecursionError:
        return ParseResult(None, "template nests too deeply to parse", True)
    except MemoryError:
        return ParseResult(None, "template too large to parse", True)
    except Exception as exc:  # the parser on hostile text: report, never propagate
        return ParseResult(None, f"template parser failed: {type(exc).__name__}: {exc}")
    count = 0
    stack: list[nodes.Node] = [tree]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_AST_NODES:
            return ParseResult(None, f"template has more than {MAX_AST_NODES} syntax nodes", True)
        stack.extend(node.iter_child_nodes())
    return ParseResult(tree)
