"""Answering one AdmissionReview (``admission.k8s.io/v1``): the hot path.

Work per request, cheapest exits first: parse and check the review (:mod:`.review`);
allow exempt namespaces and operations other than CREATE/UPDATE; allow an UPDATE whose
model-bearing parts did not change (a scale, a label, a status-like touch); extract the
references; allow when there are none. Only then is the view consulted, and only while
it is fresh (:mod:`.freshness`). Three caches keep repeated work off the path, each exact
for what it keys on and bounded by the bytes it holds (:mod:`.caches`):

- extractions, by a SHA-256 of the annotation and container fields extractors read
  (:func:`content_key`): the Pods of one template, a rollout, a retried apply share one;
- judgements, by (namespace, its labels version, reference): shared by every decision
  naming the reference; flushed whenever scans, groups or sources change;
- decisions with their encoded response, by (namespace, labels version, references);
  flushed likewise.

No API call is made here: ModelScans to create and Events to post are handed to
background tasks (:mod:`.sideeffects`). The one read a decision may need, ConfigMaps
naming a model where a group applies, is asked of the caller (:class:`NeedConfigMaps`):
the server reads them and asks again.

Anything unexpected while deciding denies the request with a message that says the
webhook failed closed, and logs one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import marshal
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol

from modelsec.references import ConfigMapData, Extraction, Reference, Unreadable, extract_object
from modelsec.references.container import FIELDS as CONTAINER_FIELDS
from modelsec.references.model import ANNOTATIONS
from modelsec.references.workloads import CONTAINER_LISTS, KSERVE_KINDS, POD_TEMPLATE_PATHS
from modelsec.safe_text import printable
from modelsec_webhook import metrics
from modelsec_webhook.caches import BoundedCache
from modelsec_webhook import verifier
from modelsec_webhook.decision import (
    Decision,
    Effect,
    Judgement,
    Settings,
    Status,
    amended,
    decide,
    judge_reference,
)
from modelsec_webhook.review import BadReview, Refused, Request, parse
from modelsec_webhook.view import Namespace, View

log = logging.getLogger("modelsec.webhook.admission")

__all__ = ["Admission", "AdmissionSettings", "Answer", "BadReview", "NeedConfigMaps"]

CHECKED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
_RESPONSE_HEAD = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":'
MiB = 1 << 20


@dataclass(frozen=True)
class AdmissionSettings:
    exempt_namespaces: frozenset[str] = frozenset({"kube-system", "modelsec-system"})
    decision: Settings = Settings()
    cache_bytes: int = 32 * MiB  # per cache: extractions, judgements, decisions
    verifier_image: str | None = None  # the image of verifyAtStart init containers


@dataclass(frozen=True)
class Answer:
    body: bytes
    allowed: bool
    reason: str  # metrics label: exempt, no-models, unchanged, judged, ...
    models: bool
    # Denied only for want of verdicts: the scans these judgements wait for (first deploy).
    waiting: tuple[Judgement, ...] = ()


@dataclass(frozen=True)
class NeedConfigMaps:
    """The decision depends on ConfigMaps not read yet: read them, then answer again."""

    namespace: str
    names: frozenset[str]


class ConfigMapSource(Protocol):
    def cached(self, namespace: str, names: frozenset[str]) -> dict[str, ConfigMapData]: ...


class NoConfigMaps:
    """For callers that read nothing (tests, tools): every ConfigMap stays unknown."""

    def cached(self, namespace: str, names: frozenset[str]) -> dict[str, ConfigMapData]:
        return {}


@dataclass(frozen=True)
class Decided:
    """A decision and its response, encoded once: a response is ``head + uid + tail``."""

    decision: Decision
    tail: bytes

    @classmethod
    def of(cls, decision: Decision) -> "Decided":
        response: dict[str, Any] = {"allowed": decision.allowed}
        if not decision.allowed:
            response["status"] = {"code": 403, "reason": "Forbidden", "message": decision.message}
        if decision.warnings:
            response["warnings"] = list(decision.warnings)
        if decision.audit:
            response["auditAnnotations"] = dict(decision.audit)
        encoded = json.dumps(response, separators=(",", ":")).encode()
        return cls(decision, b"," + encoded[1:] + b"}")  # drop the '{': the uid goes first

    def body(self, uid: str) -> bytes:
        return _RESPONSE_HEAD + json.dumps(uid).encode() + self.tail


def _waiting(decision: Decision, dry_run: bool) -> tuple[Judgement, ...]:
    """The pending judgements a denial waits for; none when one of them can never come: a
    dry run creates no ModelScan (sideEffects: NoneOnDryRun), so it waits only for scans
    that exist already."""
    pending = tuple(j for j in decision.judgements if j.status == Status.PENDING and j.effect is Effect.DENY)
    return () if dry_run and any(j.request_scan for j in pending) else pending


def denial(uid: str, message: str, reason: str, models: bool = True) -> Answer:
    return Answer(Decided.of(Decision(False, message)).body(uid), False, reason, models)


# Size estimates for the byte-bounded caches: what the entries hold that a request can
# make large (texts), plus a fixed charge for the objects around them. Cheaper than a
# generic walk, which cost more than the extraction it measured.
_OBJECT = 120


def extraction_size(extraction: Extraction) -> int:
    size = _OBJECT
    for reference in extraction.references:
        size += _OBJECT * 2 + len(reference.ref.location) + len(reference.ref.revision or "") \
            + sum(len(origin) + 50 for origin in reference.origins)
    for invalid in extraction.invalid:
        size += _OBJECT + len(invalid.text) + len(invalid.origin) + len(invalid.problem)
    for unresolved in extraction.unresolved:
        size += _OBJECT + len(unresolved.origin) + len(unresolved.why) + 60 * len(unresolved.configmaps)
    return size + len(extraction.malformed or "")


def _decision_size(key: tuple[Any, ...], decided: "Decided") -> int:
    # The key keeps its extraction alive even once the extraction cache dropped it.
    return extraction_size(key[2]) + 2 * len(decided.tail) + _OBJECT * (2 + len(decided.decision.judgements))


def _judgements_size(key: tuple[Any, ...], judgements: tuple[Judgement, ...]) -> int:
    return _OBJECT * 2 + len(key[2].location) + sum(
        _OBJECT + len(j.detail) + sum(len(w) for w in j.warnings) for j in judgements)


class JudgementCache:
    """Judgements of one reference in one namespace (labels version), shared by every
    decision that names it; flushed with the decision cache."""

    def __init__(self, view: View, max_bytes: int) -> None:
        self.view = view
        self.entries: BoundedCache[tuple[Any, ...], tuple[Judgement, ...]] = BoundedCache(max_bytes, _judgements_size)

    def judged(self, namespace: str, ns: Namespace) -> Callable[[Reference], tuple[Judgement, ...]]:
        def lookup(reference: Reference) -> tuple[Judgement, ...]:
            key = (namespace, ns.version, reference.ref, reference.endpoint, reference.pinnable)
            found = self.entries.get(key)
            if found is None:
                found = judge_reference(reference, ns.labels, self.view)
                self.entries.put(key, found)
            return found

        return lookup

    def clear(self) -> None:
        self.entries.clear()


def _dig(obj: Any, *path: str) -> Any:
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


class _NotJSONShaped(Exception):
    pass


def _strict_dig(obj: Any, *path: str) -> Any:
    """Like :func:`_dig`, but a step through something other than an object (or null)
    is not a key at all: such objects are extracted without the cache."""
    for step in path:
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise _NotJSONShaped()
        obj = obj.get(step)
    return obj


def model_bearing(kind: str, obj: Any) -> tuple[Any, ...]:
    """The parts of ``obj`` references are read from; equal parts, equal references."""
    annotations = _dig(obj, "metadata", "annotations")
    if kind in KSERVE_KINDS:
        return (annotations, _dig(obj, "spec"))
    path = POD_TEMPLATE_PATHS.get(kind, ())
    template = _dig(obj, *path) if path else obj
    return (annotations, _dig(template, "metadata", "annotations"),
            *(_dig(template, "spec", key) for key, _init in CONTAINER_LISTS))


def same_models(a: Extraction, b: Extraction) -> bool:
    """The same models (where the workload names them aside), the same problems."""
    return (
        {r.sort_key for r in a.references} == {r.sort_key for r in b.references}
        and {(i.text, i.problem) for i in a.invalid} == {(i.text, i.problem) for i in b.invalid}
        and {u.why for u in a.unresolved} == {u.why for u in b.unresolved}
        and len(a.unresolved) == len(b.unresolved)
        and a.malformed == b.malformed
    )


def content_key(kind: str, obj: Any) -> bytes | None:
    """A SHA-256 of exactly what extractors read from a pod-template object (the
    annotations in references.model.ANNOTATIONS, the container fields in
    references.container.FIELDS, in their lists); None for kinds read whole
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
        return hashlib.sha256(marshal.dumps(parts, 2)).digest()
    except (_NotJSONShaped, ValueError):  # not JSON-shaped after all: do not cache
        return None


class ExtractionCache:
    """Extractions by :func:`content_key`. Pods come from templates: a ReplicaSet's pods,
    a rollout, a retried apply all carry the same containers, and extraction (shell
    splitting, every extractor over every container) costs more than the key."""

    def __init__(self, max_bytes: int) -> None:
        self.entries: BoundedCache[bytes, Extraction] = BoundedCache(max_bytes, lambda _k, e: 80 + extraction_size(e))

    def of(self, kind: str, obj: Any) -> Extraction:
        key = content_key(kind, obj)
        if key is None:
            return extract_object(kind, obj)
        found = self.entries.get(key)
        if found is None:
            found = extract_object(kind, obj)
            self.entries.put(key, found)
        return found


@dataclass
class Admission:
    view: View
    settings: AdmissionSettings = field(default_factory=AdmissionSettings)
    request_scans: Callable[[Decision, str], None] | None = None
    record_events: Callable[[Decision, dict[str, str]], None] | None = None
    # None when the view may be used; otherwise why not (starting, stale), for the denial.
    staleness: Callable[[], str | None] = lambda: None
    configmaps: ConfigMapSource = field(default_factory=NoConfigMaps)

    def __post_init__(self) -> None:
        size = self.settings.cache_bytes
        self.cache: BoundedCache[tuple[Any, ...], Decided] = BoundedCache(size, _decision_size)
        self.extractions = ExtractionCache(size)
        self.judgements = JudgementCache(self.view, size)
        self.view.on_change.append(self.cache.clear)
        self.view.on_change.append(self.judgements.clear)

    # -- the review -------------------------------------------------------------------

    def review(self, body: bytes) -> Answer:
        """Parse and answer, reading nothing (ConfigMaps stay unknown). Raises BadReview."""
        request = self.parse(body)
        if isinstance(request, Answer):
            return request
        answer = self.answer(request, fetched=True)
        assert isinstance(answer, Answer)
        return answer

    def parse(self, body: bytes) -> Request | Answer:
        """The checked request, or the denial of one that cannot be understood. Raises
        BadReview for bodies that are not AdmissionReviews at all."""
        try:
            return parse(body)
        except Refused as refused:
            log.warning(f"denied request {printable(refused.uid[:64])}: {printable(str(refused))}")
            return denial(refused.uid, f"modelsec: {refused}; failing closed", "invalid-request", False)

    def answer(self, request: Request, fetched: bool = False) -> Answer | NeedConfigMaps:
        try:
            return self._answer(request, fetched)
        except Exception as exc:  # noqa: BLE001 - fail closed, and say so
            where = exc.__traceback__
            while where is not None and where.tb_next is not None:
                where = where.tb_next
            at = f" at {where.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{where.tb_lineno}" if where else ""
            log.error(f"internal error on request {printable(request.uid[:64])}: "
                      f"{type(exc).__name__}: {printable(str(exc)[:200])}{at}; denied")
            message = (f"modelsec webhook internal error ({type(exc).__name__}); failing closed. "
                       "Retry, and report it if it persists.")
            return denial(request.uid, message, "internal-error")

    def _answer(self, request: Request, fetched: bool) -> Answer | NeedConfigMaps:
        uid, kind, namespace = request.uid, request.kind, request.namespace
        if namespace in self.settings.exempt_namespaces:
            return Answer(self._allowed(uid), True, "exempt", False)
        if request.operation not in CHECKED_OPERATIONS:
            return Answer(self._allowed(uid), True, "not-checked", False)
        obj = request.object
        if request.operation == "UPDATE":
            old = request.old_object
            if model_bearing(kind, obj) == model_bearing(kind, old):
                return Answer(self._allowed(uid), True, "unchanged", False)
            extraction = self.extractions.of(kind, obj)
            if same_models(extraction, self.extractions.of(kind, old)) and not self._verifiers_touched(kind, obj, old):
                return Answer(self._allowed(uid), True, "unchanged", bool(extraction))
        else:
            extraction = self.extractions.of(kind, obj)
        if not extraction:
            return Answer(self._allowed(uid), True, "no-models", False)

        stale = self.staleness()
        if stale is not None:
            return denial(uid, f"modelsec: {stale}; failing closed, retry shortly", "not-ready")
        ns = self.view.namespaces.get(namespace)
        if extraction.configmaps and ns is not None and self.view.covering(ns.labels):
            values = self.configmaps.cached(namespace, extraction.configmaps)
            missing = extraction.configmaps - values.keys()
            if missing and not fetched:
                return NeedConfigMaps(namespace, frozenset(missing))
            for name in missing:
                values[name] = Unreadable("it was not read in time")
            extraction = extract_object(kind, obj, values)
        decided = self._decide(extraction, namespace)
        if kind == "Pod" and self.view.verifying and ns is not None:
            decided = self._check_verifiers(obj, extraction, decided)
        decision = decided.decision
        if not request.dry_run:
            self._side_effects(decision, request)
        elif decision.scans and not decision.allowed:
            # sideEffects: NoneOnDryRun, so nothing was requested: say so, or a dry-run
            # retried in CI would wait forever for a scan nobody asked for.
            decided = Decided.of(replace(decision, message=decision.message + "\n(dry run: no "
                                 "ModelScan was created; apply for real, or create the ModelScan, "
                                 "to start the scan)"))
        waiting = _waiting(decision, request.dry_run) if decision.pending_only else ()
        return Answer(decided.body(uid), decision.allowed, "judged", True, waiting)

    def _verifiers_touched(self, kind: str, obj: Any, old: Any) -> bool:
        """An UPDATE of a Pod whose init containers or volumes changed must not pass as
        "unchanged" while a group verifies at start: that is where the verifier lives."""
        return kind == "Pod" and self.view.verifying and any(
            _dig(obj, "spec", key) != _dig(old, "spec", key) for key in ("initContainers", "volumes"))

    def _check_verifiers(self, pod: Any, extraction: Extraction, decided: Decided) -> Decided:
        """verifyAtStart: the Pod must carry an unaltered verifier per file:// model."""
        needs, remote = verifier.needed(pod, extraction, decided.decision.judgements, self.view)
        found = verifier.problems(pod, needs, self.settings.verifier_image)
        denials, warnings, events = verifier.lines(found, remote)
        if not (denials or warnings or events):
            return decided
        return Decided.of(amended(decided.decision, denials, warnings, events))

    def _decide(self, extraction: Extraction, namespace: str) -> Decided:
        ns = self.view.namespaces.get(namespace)
        key = (namespace, ns.version if ns else -1, extraction)
        decided = self.cache.get(key)
        if decided is not None:
            metrics.CACHE_HIT()
            return decided
        metrics.CACHE_MISS()
        decision = decide(extraction, namespace, ns.labels if ns else None, self.view,
                          self.settings.decision, self.judgements.judged(namespace, ns) if ns else None)
        for judgement in decision.judgements:
            metrics.count_judgement(judgement.status.value, judgement.mode.value)
        decided = Decided.of(decision)
        # An unknown namespace is a race with the namespace watch: do not remember it.
        if ns is not None:
            self.cache.put(key, decided)
        return decided

    def _side_effects(self, decision: Decision, request: Request) -> None:
        if not (decision.scans or decision.events):
            return
        metadata = _dig(request.object, "metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        name = metadata.get("name") or request.name
        name = name if isinstance(name, str) else ""
        where = f"{request.namespace}/{name}"
        if decision.scans and self.request_scans is not None:
            self.request_scans(decision, f"{request.kind} {where} ({request.operation} by {request.username})")
        if decision.events and self.record_events is not None:
            api_version = _dig(request.object, "apiVersion")
            involved = {"apiVersion": api_version if isinstance(api_version, str) else "",
                        "kind": request.kind, "name": name, "namespace": request.namespace}
            if isinstance(metadata.get("uid"), str):
                involved["uid"] = metadata["uid"]
            self.record_events(decision, involved)

    # -- responses --------------------------------------------------------------------

    @staticmethod
    def _allowed(uid: str) -> bytes:
        return _RESPONSE_HEAD + json.dumps(uid).encode() + b',"allowed":true}}'
