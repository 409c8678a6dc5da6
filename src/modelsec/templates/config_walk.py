"""Finding templates inside parsed configs (JSON values, YAML scalars, GGUF metadata).

A template is any string value containing ``{{`` or ``{%``. Values under a key that names a
template (``chat_template``, ``prompt_template``, the ``template`` of a
``[{name, template}]`` list) are *strict*: if they do not parse they are reported as not
inspected. Other values that do not parse are ordinary text (tokenizer vocabularies of code
models are full of ``{{``) and are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from modelsec.templates import report
from modelsec.templates.parsing import has_markers
from modelsec.templates.threats import TOO_COMPLEX

if TYPE_CHECKING:
    from modelsec.context import ScanContext

MAX_TEMPLATES_PER_FILE = 2_000  # parse attempts per file
MAX_TEMPLATE_BYTES_PER_FILE = 32 << 20


@dataclass(frozen=True)
class Candidate:
    where: str  # key path inside the file: chat_template, chat_template[1].template, a.b[3]
    text: str
    strict: bool


def is_template_key(key: str | None) -> bool:
    return key is not None and "template" in key.lower()


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def iter_json_candidates(root: Any, extra: Iterable[tuple[str, Any]] = ()) -> Iterator[Candidate]:
    """Template candidates in a parsed JSON value (iterative: deep nesting is no problem).
    ``extra`` are further (path, value) pairs to walk, such as values of duplicate keys."""
    stack: list[tuple[str, str | None, Any]] = [("", None, root)]
    stack.extend((path, path.rsplit(".", 1)[-1], value) for path, value in extra)
    while stack:
        path, key, value = stack.pop()
        if isinstance(value, str):
            if has_markers(value):
                yield Candidate(path or "(document)", value, is_template_key(key))
        elif isinstance(value, dict):
            for k, v in value.items():
                stack.append((_child(path, k), str(k), v))
        elif isinstance(value, list):
            # a list of templates inherits its key: chat_template: ["{{...}}", ...]
            for i, v in enumerate(value):
                stack.append((_child(path, i), key, v))


def report_candidates(ctx: "ScanContext", candidates: Iterable[Candidate]) -> int:
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
