"""YAML configs: templates in their values, ``!!python/...`` tags, duplicate keys.

The text is *composed* (YAML's node graph) and never *constructed*: no Python object is
built, whatever the tags say. Composition is bounded: a size limit, a node limit counted in
the composer (aliases included), and a nesting limit. Anchors and aliases are walked once
per node, so a billion-laughs document costs its size, not its expansion.
"""

from __future__ import annotations

import re
from typing import Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner
from modelsec.formats.config_common import (
    CONFIG_UNPARSEABLE,
    DUPLICATE_KEY,
    YAML_PYTHON_TAG,
    decode_text,
    head_is_text,
)
from modelsec.templates.config_walk import Candidate, is_template_key, report_candidates
from modelsec.templates.parsing import has_markers

MAX_YAML_BYTES = 16 << 20
MAX_NODES = 1_000_000
MAX_NESTING = 100
MAX_TAG_FINDINGS = 50
PYTHON_TAG = "tag:yaml.org,2002:python/"
YAML_SUFFIXES = (".yaml", ".yml")
# The first significant line of a YAML document: a directive, a document marker, a list
# item or a ``key:`` mapping entry.
_YAML_START = re.compile(r"^(?:%YAML |%TAG |---|- |-$|[\"']?[\w.\-/ ]{1,200}[\"']?:(?:\s|$))")


class YamlLimit(Exception):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader's composer with a node budget and a nesting bound. Only the composer is
    used: ``construct_*`` (where tags would build objects) is never called."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.node_count = 0
        self.nesting = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:  # type: ignore[override]
        self.node_count += 1
        if self.node_count > MAX_NODES:
            raise YamlLimit(f"more than {MAX_NODES} YAML nodes")
        self.nesting += 1
        try:
            if self.nesting > MAX_NESTING:
                raise YamlLimit(f"YAML nested deeper than {MAX_NESTING} levels")
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.nesting -= 1


def compose(text: str) -> list[Node]:
    """Every document's root node. Raises yaml.YAMLError or YamlLimit."""
    loader = _BoundedLoader(text)
    try:
        docs = []
        while loader.check_node():
            docs.append(loader.get_node())
        return docs
    finally:
        loader.dispose()


def _first_significant_line(text: str) -> str | None:
    for line in text.splitlines()[:200]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return line.rstrip()
    return None


def looks_like_yaml(head: bytes, source: ByteSource, filename: str) -> bool:
    if not head_is_text(head, source):
        return False
    text = head.decode("utf-8", errors="ignore")
    first = _first_significant_line(text)
    if first is None or not _YAML_START.match(first):
        return False
    named = filename.lower().endswith(YAML_SUFFIXES)
    if source.size > len(head):
        return named  # too big to check by parsing in detection: the name decides
    try:
        docs = compose(text)
    except (YamlLimit, RecursionError):
        return True  # YAML-shaped and hostile: the scanner reports the limit
    except yaml.YAMLError:
        return named  # broken YAML under a YAML name: claimed, so the damage is reported
    return any(isinstance(d, (MappingNode, SequenceNode)) for d in docs)


class YamlConfigScanner(FormatScanner):
    name = "yaml"
    category = FormatCategory.AUXILIARY
    priority = 84

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return looks_like_yaml(head, source, filename)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        limit = min(MAX_YAML_BYTES, ctx.limits.max_header_bytes)
        if source.size > limit:
            raise LimitExceeded(
                f"YAML of {source.size} bytes exceeds the {limit}-byte limit; its values "
                "(templates, tags) were not inspected"
            )
        text = decode_text(source.read_at(0, source.size))
        if text is None:
            ctx.incomplete("YAML is not UTF-8 text; not inspected", CONFIG_UNPARSEABLE)
            return
        try:
            docs = compose(text)
        except YamlLimit as exc:
            raise LimitExceeded(f"{exc}; not inspected further") from None
        except RecursionError:
            raise LimitExceeded("YAML nested too deeply to compose; not inspected") from None
        except yaml.YAMLError as exc:
            ctx.incomplete(f"not valid YAML ({_short(exc)}); its values were not inspected", CONFIG_UNPARSEABLE)
            return
        report_candidates(ctx, self._walk(docs, ctx))

    def _walk(self, docs: list[Node], ctx: ScanContext) -> Iterator[Candidate]:
        """Template candidates; tags and duplicate keys are reported on the way."""
        seen: set[int] = set()
        tag_findings = 0
        stack: list[tuple[str, str | None, Node]] = [
            (f"[doc {i}]" if len(docs) > 1 else "", None, d) for i, d in enumerate(docs)
        ]
        while stack:
            path, key, node = stack.pop()
            if id(node) in seen:
                continue  # an alias: already walked
            seen.add(id(node))
            if node.tag.startswith(PYTHON_TAG) and tag_findings < MAX_TAG_FINDINGS:
                tag_findings += 1
                ctx.report(
                    YAML_PYTHON_TAG.at(
                        ctx.path,
                        f"{path or '(document)'}: tag !!{node.tag[len('tag:yaml.org,2002:'):]} "
                        "builds a Python object when read with an unsafe loader",
                        subject=node.tag,
                        details={"line": node.start_mark.line + 1},
                    )
                )
            if isinstance(node, ScalarNode):
                if isinstance(node.value, str) and has_markers(node.value):
                    yield Candidate(path or "(document)", node.value, is_template_key(key))
            elif isinstance(node, SequenceNode):
                for i, item in enumerate(node.value):
                    stack.append((f"{path}[{i}]", key, item))
            elif isinstance(node, MappingNode):
                keys_seen: set[str] = set()
                for k_node, v_node in node.value:
                    k = k_node.value if isinstance(k_node, ScalarNode) else "?"
                    if isinstance(k_node, ScalarNode) and k != "<<":
                        if k in keys_seen:
                            ctx.report(
                                DUPLICATE_KEY.at(
                                    ctx.path,
                                    f"key {k!r} appears more than once in one mapping (line "
                                    f"{k_node.start_mark.line + 1}); readers disagree on which wins",
                                    subject=k,
                                )
                            )
                        keys_seen.add(k)
                    stack.append((f"{path}.{k}" if path else str(k), str(k), v_node))
                    stack.append((f"{path}.<key>" if path else "<key>", None, k_node))


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


SCANNER = YamlConfigScanner()
