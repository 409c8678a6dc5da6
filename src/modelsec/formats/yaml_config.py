"""YAML configs: templates in their values, ``!!python/...`` tags, duplicate keys.

The text is read as YAML's *event stream* (libyaml's C parser when available, PyYAML's own
otherwise): no node graph and no Python object is ever built, whatever the tags say. The
walk is iterative and bounded (a size limit, an event budget, a nesting bound). An alias is
one event: the anchored content was walked where it was defined, so a billion-laughs
document costs its size, not its expansion.

PyYAML and the template analysis are imported once a file looks like YAML (its first
significant line), not for every file the engine asks this module about.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from yaml import events as ev

    from modelsec.templates.config_walk import Candidate

MAX_YAML_BYTES = 16 << 20
MAX_NODES = 2_000_000  # events, aliases included
MAX_NESTING = 256
MAX_TAG_FINDINGS = 50
MAX_DUPLICATE_FINDINGS = 50
PYTHON_TAG = "tag:yaml.org,2002:python/"
YAML_SUFFIXES = (".yaml", ".yml")
# The first significant line of a YAML document: a directive, a document marker, a list
# item or a ``key:`` mapping entry.
_YAML_START = re.compile(r"^(?:%YAML |%TAG |---|- |-$|[\"']?[\w.\-/ ]{1,200}[\"']?:(?:\s|$))")


# An explicit tag anywhere (a node can open with one, or with an anchor, a flow collection
# or "? key", none of which the first-line test knows): the python/ tags PyYAML's unsafe
# loaders construct are written with one of these, percent-escaped or through %TAG or not.
_EXPLICIT_TAG_MARKERS = (b"!!", b"!<", b"%TAG", b"tag:yaml.org")


class YamlLimit(Exception):
    pass


@dataclass
class _Frame:
    """One open mapping or sequence while YAML is walked line by line."""

    mapping: bool
    path: str
    key: str | None  # the key this collection sits under (a list inherits it)
    index: int = 0
    expect_key: bool = True
    current_key: str | None = None
    keys: set[str] = field(default_factory=set)
    is_key: bool = False  # a complex (collection) mapping key


@dataclass
class YamlWalk:
    """What the walk found besides template candidates."""

    python_tags: list[tuple[str, str, int]] = field(default_factory=list)  # (path, tag, line)
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (key, line)
    documents: int = 0


@functools.cache
def _loader_class() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _events(text: str) -> Iterator[ev.Event]:
    loader = _loader_class()(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    finally:
        loader.dispose()


def _line(event: ev.Event) -> int:
    """The 1-based line an event starts on (0 if the parser kept no position)."""
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 0


def walk(text: str, found: YamlWalk) -> Iterator[Candidate]:
    """Template candidates of every document; tags and duplicate keys go to ``found``.
    Raises yaml.YAMLError for invalid YAML and YamlLimit past a bound."""
    from yaml import events as ev

    from modelsec.templates.config_walk import Candidate, is_template_key

    stack: list[_Frame] = []
    count = 0
    doc_prefix = ""

    def child_path(frame: _Frame | None) -> tuple[str, str | None]:
        """Path and governing key of the value that comes next in ``frame``."""
        if frame is None:
            return doc_prefix, None
        if frame.mapping:
            key = frame.current_key if frame.current_key is not None else "?"
            return (f"{frame.path}.{key}" if frame.path else key), key
        return f"{frame.path}[{frame.index}]", frame.key

    def advance(frame: _Frame | None) -> None:
        if frame is None:
            return
        if frame.mapping:
            frame.expect_key = True
            frame.current_key = None
        else:
            frame.index += 1

    for event in _events(text):
        count += 1
        if count > MAX_NODES:
            raise YamlLimit(f"more than {MAX_NODES} YAML nodes")
        top = stack[-1] if stack else None
        tag = getattr(event, "tag", None)
        if isinstance(tag, str) and tag.startswith(PYTHON_TAG):
            path, _ = child_path(top)
            found.python_tags.append((path or "(document)", tag, _line(event)))
        if isinstance(event, ev.DocumentStartEvent):
            found.documents += 1
            doc_prefix = f"[doc {found.documents - 1}]" if found.documents > 1 else ""
        elif isinstance(event, ev.ScalarEvent):
            if top is not None and top.mapping and top.expect_key:
                mapping_key = event.value
                if mapping_key != "<<":
                    if mapping_key in top.keys:
                        found.duplicates.append((mapping_key, _line(event)))
                    top.keys.add(mapping_key)
                top.current_key = mapping_key
                top.expect_key = False
                continue
            if top is not None and top.is_key:
                advance(top)
                continue
            path, key = child_path(top)
            value = event.value
            if "{{" in value or "{%" in value:
                yield Candidate(path or "(document)", value, is_template_key(key))
            advance(top)
        elif isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
            if len(stack) >= MAX_NESTING:
                raise YamlLimit(f"YAML nested deeper than {MAX_NESTING} levels")
            as_key = top is not None and top.mapping and top.expect_key
            path, key = child_path(top)
            stack.append(
                _Frame(
                    isinstance(event, ev.MappingStartEvent),
                    path,
                    key,
                    is_key=as_key or (top is not None and top.is_key),
                )
            )
        elif isinstance(event, (ev.MappingEndEvent, ev.SequenceEndEvent)):
            done = stack.pop()
            parent = stack[-1] if stack else None
            if (
                parent is not None
                and parent.mapping
                and parent.expect_key
                and done.is_key
                and not parent.is_key
            ):
                parent.current_key = "?"  # a complex key: its value follows
                parent.expect_key = False
            else:
                advance(parent)
        elif isinstance(event, ev.AliasEvent):
            if top is not None and top.mapping and top.expect_key:
                top.current_key = f"*{event.anchor}"
                top.expect_key = False
            else:
                advance(top)


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
    if first is None or not (_YAML_START.match(first) or any(m in head for m in _EXPLICIT_TAG_MARKERS)):
        return False
    named = filename.lower().endswith(YAML_SUFFIXES)
    if source.size > len(head):
        return named  # too big to check by parsing in detection: the name decides
    import yaml

    found = YamlWalk()
    try:
        for _ in walk(text, found):
            pass
    except YamlLimit:
        return True  # YAML-shaped and hostile: the scanner reports the limit
    except yaml.YAMLError:
        return named  # broken YAML under a YAML name: claimed, so the damage is reported
    # a document that is one plain scalar is any text at all, not a config
    return named or _has_collection(text)


def _has_collection(text: str) -> bool:
    from yaml import events as ev

    for event in _events(text):
        if isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
            return True
    return False


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
        import yaml

        from modelsec.templates.config_walk import report_candidates

        found = YamlWalk()
        candidates: list[Candidate] = []
        try:
            for cand in walk(text, found):
                candidates.append(cand)
        except YamlLimit as exc:
            raise LimitExceeded(f"{exc}; not inspected further") from None
        except yaml.YAMLError as exc:
            if "nesting depth" in str(exc):  # libyaml's own bound, hit before ours
                raise LimitExceeded(f"YAML nested too deeply ({_short(exc)}); not inspected") from None
            ctx.incomplete(
                f"not valid YAML ({_short(exc)}); its values were not inspected", CONFIG_UNPARSEABLE
            )
            return
        finally:
            self._report(found, ctx)
        report_candidates(ctx, candidates)

    def _report(self, found: YamlWalk, ctx: ScanContext) -> None:
        for path, tag, line in found.python_tags[:MAX_TAG_FINDINGS]:
            ctx.report(
                YAML_PYTHON_TAG.at(
                    ctx.path,
                    f"{path} (line {line}): tag !!{tag[len('tag:yaml.org,2002:') :]} builds a "
                    "Python object when read with an unsafe loader",
                    subject=tag,
                )
            )
        for key, line in found.duplicates[:MAX_DUPLICATE_FINDINGS]:
            ctx.report(
                DUPLICATE_KEY.at(
                    ctx.path,
                    f"key {key!r} appears more than once in one mapping (line {line}); readers "
                    "disagree on which wins",
                    subject=key,
                )
            )


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


SCANNER = YamlConfigScanner()
