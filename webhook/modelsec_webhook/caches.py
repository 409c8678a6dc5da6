"""What the webhook remembers, bounded by the bytes it holds, not by its number of entries.

The webhook's caches are keyed by what requests carry, and requests are chosen by whoever
creates workloads: a count bound lets 4,096 entries of 1 MiB each grow the process by
gigabytes. Here every entry is charged an estimate of its size (key and value) and the
oldest entries go first once the budget is reached. Lookups stay one dict access; sizes
are computed only when an entry is stored, by a function that knows the entry's shape
(:func:`deep_size` is the generic, slower fallback).

:class:`BoundedCache` is the one cache; :class:`AdmissionCache` holds the admission
path's three, each exact for what it keys on:

- extractions, by a SHA-256 of the annotation and container fields extractors read
  (:func:`content_key`): the Pods of one template, a rollout, a retried apply share one;
- judgements, by (namespace, its labels version, reference): shared by every decision
  naming the reference; flushed whenever scans, groups or sources change;
- decisions with their encoded response, by (namespace, labels version, extraction);
  flushed likewise.
"""

from __future__ import annotations

import hashlib
import marshal
import sys
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from modelsec.references import Extraction, Reference, extract_object
from modelsec.references.container import FIELDS as CONTAINER_FIELDS
from modelsec.references.model import ANNOTATIONS
from modelsec.references.workloads import CONTAINER_LISTS, POD_FIELDS, POD_TEMPLATE_PATHS
from modelsec.sources import ModelRef
from modelsec_webhook.decision import Judgement, judge_reference
from modelsec_webhook.view import Namespace, View

if TYPE_CHECKING:
    from modelsec_webhook.admission import Decided

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ENTRY_OVERHEAD = 200  # the dict slot, the tuple of (value, size), small objects around it


def deep_size(value: Any, _depth: int = 0) -> int:
    """An estimate of the memory ``value`` holds: strings, bytes and the containers and
    dataclasses around them, recursively (bounded depth; shared objects counted again,
    which only overestimates)."""
    if isinstance(value, (str, bytes)):
        return sys.getsizeof(value)
    if _depth > 8:
        return 64
    if isinstance(value, (tuple, list, frozenset, set)):
        return sys.getsizeof(value) + sum(deep_size(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(
            deep_size(k, _depth + 1) + deep_size(v, _depth + 1) for k, v in value.items()
        )
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return 64 + sum(deep_size(getattr(value, name), _depth + 1) for name in fields)
    slots = getattr(value, "__dict__", None)
    if slots is not None:
        return 64 + deep_size(slots, _depth + 1)
    return sys.getsizeof(value)


class BoundedCache(Generic[K, V]):
    """``get``/``put`` with a byte budget; first in, first out."""

    def __init__(self, max_bytes: int, size_of: Callable[[K, V], int] | None = None) -> None:
        self.max_bytes = max_bytes
        self.size_of = size_of or (lambda key, value: deep_size(key) + deep_size(value))
        self.entries: dict[K, tuple[V, int]] = {}
        self.bytes = 0

    def get(self, key: K) -> V | None:
        found = self.entries.get(key)
        return None if found is None else found[0]

    def put(self, key: K, value: V) -> None:
        size = self.size_of(key, value) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return  # larger than the whole budget: not worth keeping
        previous = self.entries.pop(key, None)
        if previous is not None:
            self.bytes -= previous[1]
        while self.entries and self.bytes + size > self.max_bytes:
            oldest = next(iter(self.entries))
            self.bytes -= self.entries.pop(oldest)[1]
        self.entries[key] = (value, size)
        self.bytes += size

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.entries)


# --- the admission path's caches -------------------------------------------------------------

# (namespace, labels version, reference, endpoint, pinnable): what a judgement depends on.
JudgementKey = tuple[str, int, ModelRef, "str | None", bool]
# (namespace, labels version or -1 for a namespace not in the view, extraction).
DecisionKey = tuple[str, int, Extraction]

# Size estimates for the admission caches: what the entries hold that a request can make
# large (texts), plus a fixed charge for the objects around them. Cheaper than a generic
# walk, which cost more than the extraction it measured.
_OBJECT = 120


def extraction_size(extraction: Extraction) -> int:
    size = _OBJECT
    for reference in extraction.references:
        size += (
            _OBJECT * 2
            + len(reference.ref.location)
            + len(reference.ref.revision or "")
            + sum(len(origin) + 50 for origin in reference.origins)
        )
    for invalid in extraction.invalid:
        size += _OBJECT + len(invalid.text) + len(invalid.origin) + len(invalid.problem)
    for unresolved in extraction.unresolved:
        size += _OBJECT + len(unresolved.origin) + len(unresolved.why) + 60 * len(unresolved.configmaps)
    return size + len(extraction.malformed or "")


def _extraction_entry_size(_key: bytes, extraction: Extraction) -> int:
    return 80 + extraction_size(extraction)


def _decision_size(key: DecisionKey, decided: Decided) -> int:
    # The key keeps its extraction alive even once the extraction cache dropped it.
    return extraction_size(key[2]) + 2 * len(decided.tail) + _OBJECT * (2 + len(decided.decision.judgements))


def _judgements_size(key: JudgementKey, judgements: tuple[Judgement, ...]) -> int:
    return (
        _OBJECT * 2
        + len(key[2].location)
        + sum(_OBJECT + len(j.detail) + sum(len(w) for w in j.warnings) for j in judgements)
    )


class _NotJSONShaped(Exception):
    pass


def _strict_dig(obj: object, *path: str) -> object:
    """The value at ``path``; None where a step is missing or null. A step through
    anything else than an object is not a key at all: such objects are extracted without
    the cache."""
    for step in path:
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise _NotJSONShaped()
        obj = obj.get(step)
    return obj


def content_key(kind: str, obj: object) -> bytes | None:
    """A SHA-256 of exactly what extractors read from a pod-template object (the
    annotations in references.model.ANNOTATIONS, the container fields in
    references.container.FIELDS, in their lists, the pod-spec fields in
    references.workloads.POD_FIELDS); None for kinds read whole
    (InferenceService) or not at all, and for objects whose shape is not what
    Kubernetes sends (they are extracted, and refused, without the cache).

    marshal is the cheapest injective serialisation of JSON-shaped data: equal digests
    mean equal content, so a hit is always right. Version 2 writes no back-references,
    whose presence would depend on reference counts rather than content. The digest,
    not the serialisation, is kept: a key costs 32 bytes however large the arguments."""
    path = POD_TEMPLATE_PATHS.get(kind)
    if path is None or not isinstance(obj, dict):
        return None
    try:
        template = _strict_dig(obj, *path) if path else obj
        spec = _strict_dig(template, "spec")
        levels = (obj, template) if path else (obj,)
        parts: list[Any] = [kind]
        for level in levels:
            annotations = _strict_dig(level, "metadata", "annotations")
            if annotations is not None and not isinstance(annotations, dict):
                return None
            parts.append([annotations.get(k) for k in ANNOTATIONS] if annotations else None)
        for key, _init in CONTAINER_LISTS:
            items = _strict_dig(spec, key)
            if items is None:
                parts.append(None)
                continue
            if not isinstance(items, list) or not all(isinstance(c, dict) for c in items):
                return None
            parts.append([[c.get(f) for f in CONTAINER_FIELDS] for c in items])
        if spec is not None and not isinstance(spec, dict):
            return None
        parts.append([spec.get(f) for f in POD_FIELDS] if spec else None)
        return hashlib.sha256(marshal.dumps(parts, 2)).digest()
    except (_NotJSONShaped, ValueError):  # not JSON-shaped after all: do not cache
        return None


class AdmissionCache:
    """The admission path's extractions, judgements and decisions (see the module doc),
    ``max_bytes`` each. Judgements and decisions are flushed whenever the view changes."""

    def __init__(self, view: View, max_bytes: int) -> None:
        self.view = view
        self.extractions: BoundedCache[bytes, Extraction] = BoundedCache(max_bytes, _extraction_entry_size)
        self.judgements: BoundedCache[JudgementKey, tuple[Judgement, ...]] = BoundedCache(
            max_bytes, _judgements_size
        )
        self.decisions: BoundedCache[DecisionKey, Decided] = BoundedCache(max_bytes, _decision_size)
        view.on_change.append(self.forget_verdicts)

    def extraction(self, kind: str, obj: object) -> Extraction:
        """The references of ``obj``. Pods come from templates: a ReplicaSet's pods, a
        rollout, a retried apply all carry the same containers, and extraction (shell
        splitting, every extractor over every container) costs more than the key."""
        key = content_key(kind, obj)
        if key is None:
            return extract_object(kind, obj)
        found = self.extractions.get(key)  # (no closure for a miss: this is the hot path)
        if found is None:
            found = extract_object(kind, obj)
            self.extractions.put(key, found)
        return found

    def judged(self, namespace: str, ns: Namespace) -> Callable[[Reference], tuple[Judgement, ...]]:
        """Judgements of one reference in ``namespace`` (as of its labels version), shared
        by every decision that names it."""

        def lookup(reference: Reference) -> tuple[Judgement, ...]:
            key = (namespace, ns.version, reference.ref, reference.endpoint, reference.pinnable)
            found = self.judgements.get(key)
            if found is None:
                found = judge_reference(reference, ns.labels, self.view)
                self.judgements.put(key, found)
            return found

        return lookup

    def forget_verdicts(self) -> None:
        """Scans, groups or sources changed: every decision and judgement may be stale."""
        self.decisions.clear()
        self.judgements.clear()
