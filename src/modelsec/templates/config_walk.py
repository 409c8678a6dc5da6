"""Finding templates inside parsed configs (JSON values, YAML scalars, GGUF metadata).

A template is any string value containing ``{{`` or ``{%``. Values under a key that names a
template (``chat_template``, ``prompt_template``, the ``template`` of a
``[{name, template}]`` list) are *strict*: if they do not parse they are reported as not
inspected. Other values that do not parse are ordinary text (tokenizer vocabularies of code
models are full of ``{{``) and are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelsec.templates import report
from modelsec.templates.threats import TOO_COMPLEX

if TYPE_CHECKING:
    from modelsec.context import ScanContext

MAX_TEMPLATES_PER_FILE = 2_000  # parse attempts per file
MAX_TEMPLATE_BYTES_PER_FILE = 32 << 20


@dataclass(frozen=True)
class Candidate:
    """A template-like string in a config: its key path, its text, whether its key names a template."""

    where: str  # key path inside the file: chat_template, chat_template[1].template, a.b[3]
    text: str
    strict: bool


def is_template_key(key: str | None) -> bool:
    return key is not None and "template" in key.lower()


# (parent path, key or index): a linked path, formatted only for candidates
Path = tuple["Path | None", "str | int"]


def _format(path: Path | None) -> str:
    keys: list[Any] = []
    while path is not None:
        path, key = path
        keys.append(key)
    out = ""
    for key in reversed(keys):
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out = f"{out}.{key}" if out else str(key)
    return out or "(document)"


def iter_json_candidates(root: Any, extra: Iterable[tuple[str, Any]] = ()) -> Iterator[Candidate]:
    """Template candidates in a parsed JSON value (iterative: deep nesting is no problem;
    tokenizer files have hundreds of thousands of strings, so this loop is kept tight).
    ``extra`` are further (path, value) pairs to walk, such as values of duplicate keys."""
    stack: list[tuple[Path | None, str | None, Any]] = [(None, None, root)]
    stack.extend(((None, path), path, value) for path, value in extra)
    while stack:
        path, key, value = stack.pop()
        kind = type(value)
        if kind is str:
            if "{{" in value or "{%" in value:
                yield Candidate(_format(path), value, is_template_key(key))
        elif kind is dict:
            for k, v in value.items():
                vk = type(v)
                if vk is str:
                    if "{{" in v or "{%" in v:
                        yield Candidate(_format((path, k)), v, is_template_key(k))
                elif vk is dict or vk is list:
                    stack.append(((path, k), k, v))
        elif kind is list:
            # a list of templates inherits its key: chat_template: ["{{...}}", ...]
            for i, v in enumerate(value):
                vk = type(v)
                if vk is str:
                    if "{{" in v or "{%" in v:
                        yield Candidate(_format((path, i)), v, is_template_key(key))
                elif vk is dict or vk is list:
                    stack.append(((path, i), key, v))


def report_candidates(ctx: ScanContext, candidates: Iterable[Candidate]) -> int:
    """Analyse each candidate; returns how many were analysed. Bounded per file."""
    attempts = 0
    total = 0
    for cand in candidates:
        attempts += 1
        total += len(cand.text)
        if attempts > MAX_TEMPLATES_PER_FILE or total > MAX_TEMPLATE_BYTES_PER_FILE:
            ctx.incomplete(
                f"more than {MAX_TEMPLATES_PER_FILE} template-like values (or "
                f"{MAX_TEMPLATE_BYTES_PER_FILE} bytes of them); the rest were not inspected",
                code=TOO_COMPLEX,
            )
            return attempts - 1
        report(ctx, cand.text, cand.where, strict=cand.strict)
    return attempts
