"""Answering one AdmissionReview (``admission.k8s.io/v1``): the hot path.

Work per request, cheapest exits first: parse the review; allow exempt namespaces,
operations other than CREATE/UPDATE and kinds that run nothing; allow an UPDATE whose
model-bearing parts did not change (a scale, a label, a status-like touch); extract the
references; allow when there are none. Only then is the view consulted. Three caches
keep repeated work off the path, each exact for what it keys on:

- extractions, by the annotation and container fields extractors read (:func:`content_key`):
  the Pods of one template, a rollout, a retried apply share one;
- judgements, by (namespace, its labels version, reference): shared by every decision
  naming the reference; flushed whenever scans, groups or sources change;
- decisions with their encoded response, by (namespace, labels version, references);
  flushed likewise.

No API call is made here: ModelScans to create and Events to post are handed to
background tasks (:mod:`.sideeffects`).

Anything unexpected while deciding denies the request with a message that says the
webhook failed closed; a malformed review is a 400.
"""

from __future__ import annotations

import json
import logging
import marshal
from dataclasses import dataclass, replace
from typing import Any, Callable

from modelsec.references import EMPTY, Extraction, Reference, extract
from modelsec.references.container import FIELDS as CONTAINER_FIELDS
from modelsec.references.model import ANNOTATIONS
from modelsec.references.workloads import KSERVE_KINDS, POD_TEMPLATE_PATHS, workload_from_object
from modelsec_webhook import metrics
from modelsec_webhook.decision import Decision, Judgement, Settings, decide, judge_reference
from modelsec_webhook.view import Namespace, View

log = logging.getLogger("modelsec.webhook.admission")

API_VERSION = "admission.k8s.io/v1"
CHECKED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
_RESPONSE_HEAD = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":'


class BadReview(ValueError):
    """Not an AdmissionReview we can answer; the message says what is wrong."""


@dataclass(frozen=True)
class AdmissionSettings:
    exempt_namespaces: frozenset[str] = frozenset({"kube-system", "modelsec-system"})
    decision: Settings = Settings()
    cache_size: int = 4096


@dataclass(frozen=True)
class Answer:
    body: bytes
    allowed: bool
    reason: str  # metrics label: exempt, no-models, unchanged, judged, ...
    models: bool


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


class JudgementCache:
    """Judgements of one reference in one namespace (labels version), shared by every
    decision that names it; flushed with the decision cache."""

    def __init__(self, view: View, size: int) -> None:
        self.view = view
        self.size = size
        self.entries: dict[tuple[Any, ...], tuple[Judgement, ...]] = {}

    def judged(self, namespace: str, ns: Namespace) -> Callable[[Reference], tuple[Judgement, ...]]:
        def lookup(reference: Reference) -> tuple[Judgement, ...]:
            key = (namespace, ns.version, reference.ref, reference.endpoint)
            found = self.entries.get(key)
            if found is None:
                if len(self.entries) >= self.size:
                    self.entries.clear()
                found = self.entries[key] = judge_reference(reference, ns.labels, self.view)
            return found

        return lookup

    def clear(self) -> None:
        self.entries.clear()


class DecisionCache:
    """Decisions by (namespace, labels version, extraction); flushed on view changes. A
    full cache is emptied rather than managed: it refills in one request per key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: dict[tuple[Any, ...], Decided] = {}

    def get(self, key: tuple[Any, ...]) -> Decided | None:
        return self.entries.get(key)

    def put(self, key: tuple[Any, ...], decided: Decided) -> None:
        if len(self.entries) >= self.size:
            self.entries.clear()
        self.entries[key] = decided

    def clear(self) -> None:
        self.entries.clear()


def _dig(obj: Any, *path: str) -> Any:
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


def model_bearing(kind: str, obj: Any) -> tuple[Any, ...]:
    """The parts of ``obj`` references are read from; equal parts, equal references."""
    annotations = _dig(obj, "metadata", "annotations")
    if kind in KSERVE_KINDS:
        return (annotations, _dig(obj, "spec"))
    path = POD_TEMPLATE_PATHS.get(kind, ())
    template = _dig(obj, *path) if path else obj
    return (annotations, _dig(template, "metadata", "annotations"), _dig(template, "spec", "containers"),
            _dig(template, "spec", "initContainers"))


def extraction_of(kind: str, obj: Any) -> Extraction:
    workload = workload_from_object(kind, obj)
    return extract(workload) if workload is not None else EMPTY


def same_models(a: Extraction, b: Extraction) -> bool:
    """The same models (where the workload names them aside), the same problems."""
    return (
        {r.sort_key for r in a.references} == {r.sort_key for r in b.references}
        and {(i.text, i.problem) for i in a.invalid} == {(i.text, i.problem) for i in b.invalid}
        and {u.why for u in a.unresolved} == {u.why for u in b.unresolved}
        and len(a.unresolved) == len(b.unresolved)
    )


def content_key(kind: str, obj: Any) -> bytes | None:
    """Exactly what extractors read from a pod-template object (the annotations in
    references.model.ANNOTATIONS, the container fields in references.container.FIELDS),
    serialised; None for kinds read whole (InferenceService) or not at all.

    marshal is the cheapest injective serialisation of JSON-shaped data: equal keys mean
    equal content, so a hit is always right (equal content with unequal keys, were it to
    happen, would only be a miss). Version 2 writes no back-references, whose presence
    would depend on reference counts rather than content."""
    path = POD_TEMPLATE_PATHS.get(kind)
    if path is None or not isinstance(obj, dict):
        return None
    template = _dig(obj, *path) if path else obj
    spec = _dig(template, "spec")
    levels = (obj, template) if path else (obj,)
    parts: list[Any] = [kind]
    for level in levels:
        annotations = _dig(level, "metadata", "annotations")
        parts.append([annotations.get(k) for k in ANNOTATIONS] if isinstance(annotations, dict) else None)
    for key in ("initContainers", "containers"):
        items = _dig(spec, key)
        parts.append([[c.get(f) for f in CONTAINER_FIELDS] if isinstance(c, dict) else c
                      for c in items] if isinstance(items, list) else items)
    try:
        return marshal.dumps(parts, 2)
    except ValueError:  # not JSON-shaped after all: do not cache
        return None


class ExtractionCache:
    """Extractions by :func:`content_key`. Pods come from templates: a ReplicaSet's pods,
    a rollout, a retried apply all carry the same containers, and extraction (shell
    splitting, every extractor over every container) costs more than the key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: dict[bytes, Extraction] = {}

    def of(self, kind: str, obj: Any) -> Extraction:
        key = content_key(kind, obj)
        if key is None:
            return extraction_of(kind, obj)
        found = self.entries.get(key)
        if found is None:
            if len(self.entries) >= self.size:
                self.entries.clear()
            found = self.entries[key] = extraction_of(kind, obj)
        return found


class Admission:
    def __init__(self, view: View, settings: AdmissionSettings,
                 request_scans: Callable[[Decision, str], None] | None = None,
                 record_events: Callable[[Decision, dict[str, str]], None] | None = None,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self.view = view
        self.settings = settings
        self.cache = DecisionCache(settings.cache_size)
        self.extractions = ExtractionCache(settings.cache_size)
        self.judgements = JudgementCache(view, settings.cache_size)
        self.request_scans = request_scans
        self.record_events = record_events
        self.ready = ready
        view.on_change.append(self.cache.clear)
        view.on_change.append(self.judgements.clear)

    # -- the review -------------------------------------------------------------------

    def review(self, body: bytes) -> Answer:
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise BadReview(f"body is not JSON: {exc}") from None
        if not isinstance(document, dict) or document.get("kind") != "AdmissionReview":
            raise BadReview("expected an AdmissionReview")
        if document.get("apiVersion") != API_VERSION:
            raise BadReview(f"unsupported apiVersion {document.get('apiVersion')!r}; "
                            f"register the webhook with admissionReviewVersions: [v1]")
        request = document.get("request")
        if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
            raise BadReview("request.uid is missing")
        uid = request["uid"]
        try:
            return self._answer(uid, request)
        except Exception as exc:  # noqa: BLE001 - fail closed, and say so
            log.exception(f"internal error on request {uid}")
            message = (f"modelsec webhook internal error ({type(exc).__name__}); failing closed. "
                       "Retry, and report it if it persists.")
            return Answer(Decided.of(Decision(False, message)).body(uid), False, "internal-error", True)

    def _answer(self, uid: str, request: dict[str, Any]) -> Answer:
        namespace = request.get("namespace") or ""
        if namespace in self.settings.exempt_namespaces:
            return Answer(self._allowed(uid), True, "exempt", False)
        if request.get("operation") not in CHECKED_OPERATIONS:
            return Answer(self._allowed(uid), True, "not-checked", False)
        kind = _dig(request, "kind", "kind") or ""
        obj = request.get("object")
        if request.get("operation") == "UPDATE":
            old = request.get("oldObject")
            if model_bearing(kind, obj) == model_bearing(kind, old):
                return Answer(self._allowed(uid), True, "unchanged", False)
            extraction = self.extractions.of(kind, obj)
            if same_models(extraction, self.extractions.of(kind, old)):
                return Answer(self._allowed(uid), True, "unchanged", bool(extraction))
        else:
            extraction = self.extractions.of(kind, obj)
        if not extraction:
            return Answer(self._allowed(uid), True, "no-models", False)

        if not self.ready():
            decision = Decision(False, "modelsec: the admission webhook is starting and has not "
                                "synced its view of ModelScans yet; retry shortly")
            return Answer(Decided.of(decision).body(uid), False, "not-ready", True)
        decided = self._decide(extraction, namespace)
        decision = decided.decision
        if not request.get("dryRun"):
            self._side_effects(decision, request, kind, obj, namespace)
        elif decision.scans and not decision.allowed:
            # sideEffects: NoneOnDryRun, so nothing was requested: say so, or a dry-run
            # retried in CI would wait forever for a scan nobody asked for.
            decided = Decided.of(replace(decision, message=decision.message + "\n(dry run: no "
                                 "ModelScan was created; apply for real, or create the ModelScan, "
                                 "to start the scan)"))
        return Answer(decided.body(uid), decision.allowed, "judged", True)

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

    def _side_effects(self, decision: Decision, request: dict[str, Any], kind: str, obj: Any,
                      namespace: str) -> None:
        if not (decision.scans or decision.events):
            return
        metadata = _dig(obj, "metadata") or {}
        name = metadata.get("name") or request.get("name") or ""
        if decision.scans and self.request_scans is not None:
            user = _dig(request, "userInfo", "username") or "?"
            self.request_scans(decision, f"{kind} {namespace}/{name} ({request.get('operation')} by {user})")
        if decision.events and self.record_events is not None:
            involved = {"apiVersion": str((obj or {}).get("apiVersion") or ""), "kind": kind,
                        "name": name, "namespace": namespace}
            if metadata.get("uid"):
                involved["uid"] = metadata["uid"]
            self.record_events(decision, involved)

    # -- responses --------------------------------------------------------------------

    @staticmethod
    def _allowed(uid: str) -> bytes:
        return _RESPONSE_HEAD + json.dumps(uid).encode() + b',"allowed":true}}'
