"""The reviewed-methods file: code a person read and judged free of side effects.

``hack/pickle_reviewed_methods.txt``, one entry per line::

    <owner module>.<qualname>.<method>  sha256:<hex>  <what it does, and why that is safe>
    <owner module>.<qualname>.<method>  compiled      <what the C/Cython code does>

A Python entry holds the SHA-256 of the method's source (of the code that runs, of every
function it wraps, and of what its closure cells hold): a library upgrade that changes the
code makes the review stale and the method unsafe until someone reads it again.

A note that starts with ``only if`` is a conditional review: the code is safe when the
unpickler hands it the values the condition names (``only if state['nodes'] is a
numpy.ndarray``), and not otherwise. The method stays unsafe in the facts, with the
condition as the reason, so the machine fails closed until it checks the condition. Compiled code has no source to hash,
so its review is by qualified name only (a limitation: an upgrade that changes the C code
goes unnoticed; docs/pickle-allowlist.md). Functions the unpickler calls directly
(``newObj(cls)``) are reviewed the same way.
"""

from __future__ import annotations

import hashlib
import types
from dataclasses import dataclass
from pathlib import Path

from pickle_allowlist.purity import executed_sources

REVIEW_FILE = Path(__file__).resolve().parent.parent / "pickle_reviewed_methods.txt"
COMPILED = "compiled"


CONDITIONAL = "only if "


@dataclass(frozen=True)
class Review:
    qualname: str
    digest: str | None  # "sha256:<hex>" of the source; None for compiled code
    note: str

    @property
    def condition(self) -> str | None:
        """The condition of a conditional review ("only if ..."), else None."""
        return self.note if self.note.startswith(CONDITIONAL) else None


def source_digest(fn: types.FunctionType) -> str:
    parts = executed_sources(fn)
    for cell in fn.__closure__ or ():
        try:
            parts.append(_describe(cell.cell_contents))
        except ValueError:  # an empty cell
            parts.append("<empty>")
    return "sha256:" + hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _describe(value: object) -> str:
    """A stable description of a closure value: what it is, not where it lives in memory."""
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return repr(value)
    qualname = getattr(value, "__qualname__", None)
    module = getattr(value, "__module__", None)
    if qualname is not None:
        return f"{module}.{qualname}"
    return type(value).__qualname__


def parse_reviews(text: str) -> dict[str, Review]:
    reviews: dict[str, Review] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise ValueError(f"{REVIEW_FILE.name}:{number}: want '<name> <sha256:...|compiled> <note>'")
        qualname, digest, note = parts
        if digest != COMPILED and not digest.startswith("sha256:"):
            raise ValueError(f"{REVIEW_FILE.name}:{number}: bad digest {digest!r}")
        if qualname in reviews:
            raise ValueError(f"{REVIEW_FILE.name}:{number}: {qualname} reviewed twice")
        reviews[qualname] = Review(qualname, None if digest == COMPILED else digest, note)
    return reviews


def load_reviews(path: Path = REVIEW_FILE) -> dict[str, Review]:
    return parse_reviews(path.read_text(encoding="utf-8")) if path.exists() else {}
