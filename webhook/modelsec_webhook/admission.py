"""Answering one AdmissionReview (``admission.k8s.io/v1``): the hot path.

Work per request, cheapest exits first: parse and check the review (:mod:`.review`);
allow exempt namespaces and operations other than CREATE/UPDATE; allow an UPDATE whose
model-bearing parts did not change (a scale, a label, a status-like touch); extract the
references; allow when there are none. Only then is the view consulted, and only while
it is fresh (:mod:`.freshness`). Extractions, judgements and decisions are remembered,
each exact for what it keys on and bounded by the bytes it holds
(:class:`.caches.AdmissionCache`).

No API call is made here: ModelScans to create and Events to post are handed to
background tasks (:mod:`.sideeffects`). The one read a decision may need, ConfigMaps
naming a model where a group applies, is asked of the caller (:class:`NeedConfigMaps`):
the server reads them and asks again.

Anything unexpected while deciding denies the request with a message that says the
webhook failed closed, and logs one line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from modelsec.references import ConfigMapData, Extraction, Unreadable, extract_object
from modelsec.references.workloads import CONTAINER_LISTS, KSERVE_KINDS, POD_TEMPLATE_PATHS
from modelsec.safe_text import printable
from modelsec_webhook import metrics, verifier
from modelsec_webhook.caches import AdmissionCache
from modelsec_webhook.decision import (
    Decision,
    Effect,
    Judgement,
    Settings,
    Status,
    amended,
    decide,
)
from modelsec_webhook.review import AdmissionResponse, BadReview, Refused, Request, member, metadata_of, parse
from modelsec_webhook.view import View

log = logging.getLogger("modelsec.webhook.admission")

__all__ = ["Admission", "AdmissionSettings", "Answer", "BadReview", "NeedConfigMaps"]

CHECKED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
MAX_CONFIGMAP_READS = 32  # ConfigMaps one review may fetch (the rest stay unknown: fail closed)
_RESPONSE_HEAD = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":'
MiB = 1 << 20


@dataclass(frozen=True)
class AdmissionSettings:
    """How admission is set up: exempt namespaces, decision settings, bytes per cache, verifier image."""

    exempt_namespaces: frozenset[str] = frozenset({"kube-system", "modelsec-system"})
    decision: Settings = Settings()
    cache_bytes: int = 32 * MiB  # per cache: extractions, judgements, decisions
    verifier_image: str | None = None  # the image of verifyAtStart init containers


@dataclass(frozen=True)
class Answer:
    """The answer to one review: response body, whether it allows, why (for metrics), verdicts waited for."""

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
    def of(cls, decision: Decision) -> Decided:
        response: AdmissionResponse = {"allowed": decision.allowed}
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


def model_bearing(kind: str, obj: object) -> tuple[object, ...]:
    """The parts of ``obj`` references are read from; equal parts, equal references."""
    annotations = member(obj, "metadata", "annotations")
    if kind in KSERVE_KINDS:
        return (annotations, member(obj, "spec"))
    path = POD_TEMPLATE_PATHS.get(kind, ())
    template = member(obj, *path) if path else obj
    return (
        annotations,
        member(template, "metadata", "annotations"),
        *(member(template, "spec", key) for key, _init in CONTAINER_LISTS),
    )


def same_models(a: Extraction, b: Extraction) -> bool:
    """The same models (where the workload names them aside), the same problems."""
    return (
        {r.sort_key for r in a.references} == {r.sort_key for r in b.references}
        and {(i.text, i.problem) for i in a.invalid} == {(i.text, i.problem) for i in b.invalid}
        and {u.why for u in a.unresolved} == {u.why for u in b.unresolved}
        and len(a.unresolved) == len(b.unresolved)
        and a.malformed == b.malformed
    )


@dataclass
class Admission:
    """Answers AdmissionReviews from the view; scans to request and Events to record go to callbacks."""

    view: View
    settings: AdmissionSettings = field(default_factory=AdmissionSettings)
    request_scans: Callable[[Decision, str], None] | None = None
    record_events: Callable[[Decision, dict[str, str]], None] | None = None
    # None when the view may be used; otherwise why not (starting, stale), for the denial.
    staleness: Callable[[], str | None] = lambda: None
    configmaps: ConfigMapSource = field(default_factory=NoConfigMaps)

    def __post_init__(self) -> None:
        self.caches = AdmissionCache(self.view, self.settings.cache_bytes)

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
            at = (
                f" at {where.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{where.tb_lineno}"
                if where
                else ""
            )
            log.error(
                f"internal error on request {printable(request.uid[:64])}: "
                f"{type(exc).__name__}: {printable(str(exc)[:200])}{at}; denied"
            )
            message = (
                f"modelsec webhook internal error ({type(exc).__name__}); failing closed. "
                "Retry, and report it if it persists."
            )
            return denial(request.uid, message, "internal-error")

    def _answer(self, request: Request, fetched: bool) -> Answer | NeedConfigMaps:
        uid, kind, namespace = request.uid, request.kind, request.namespace
        if namespace in self.settings.exempt_namespaces:
            return Answer(self._allowed(uid), True, "exempt", False)
        if request.operation not in CHECKED_OPERATIONS:
            return Answer(self._allowed(uid), True, "not-checked", False)
        obj = request.object
        assert obj is not None  # parse checked it is an object for CREATE and UPDATE
        if request.operation == "UPDATE":
            old = request.old_object
            if model_bearing(kind, obj) == model_bearing(kind, old):
                return Answer(self._allowed(uid), True, "unchanged", False)
            extraction = self.caches.extraction(kind, obj)
            if same_models(extraction, self.caches.extraction(kind, old)) and not self._verifiers_touched(
                kind, obj, old
            ):
                return Answer(self._allowed(uid), True, "unchanged", bool(extraction))
        else:
            extraction = self.caches.extraction(kind, obj)
        if not extraction:
            return Answer(self._allowed(uid), True, "no-models", False)

        stale = self.staleness()
        if stale is not None:
            return denial(uid, f"modelsec: {stale}; failing closed, retry shortly", "not-ready")
        ns = self.view.namespaces.get(namespace)
        if extraction.configmaps and ns is not None and self.view.covering(ns.labels):
            values = self.configmaps.cached(namespace, extraction.configmaps)
            missing = extraction.configmaps - values.keys()
            if len(missing) > MAX_CONFIGMAP_READS:
                # One small object must not make the webhook fetch thousands: the values stay
                # unknown, and an Enforce group denies as for any value it cannot see.
                why = Unreadable(
                    f"the workload names {len(extraction.configmaps)} ConfigMaps, and the webhook "
                    f"reads at most {MAX_CONFIGMAP_READS} for one request"
                )
                values.update(dict.fromkeys(missing, why))
                missing = frozenset()
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
            decided = Decided.of(
                replace(
                    decision,
                    message=decision.message + "\n(dry run: no "
                    "ModelScan was created; apply for real, or create the ModelScan, "
                    "to start the scan)",
                )
            )
        waiting = _waiting(decision, request.dry_run) if decision.pending_only else ()
        return Answer(decided.body(uid), decision.allowed, "judged", True, waiting)

    def _verifiers_touched(self, kind: str, obj: object, old: object) -> bool:
        """An UPDATE of a Pod whose init containers or volumes changed must not pass as
        "unchanged" while a group verifies at start: that is where the verifier lives."""
        return (
            kind == "Pod"
            and self.view.verifying
            and any(
                member(obj, "spec", key) != member(old, "spec", key) for key in ("initContainers", "volumes")
            )
        )

    def _check_verifiers(self, pod: dict[str, Any], extraction: Extraction, decided: Decided) -> Decided:
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
        decided = self.caches.decisions.get(key)
        if decided is not None:
            metrics.CACHE_HIT()
            return decided
        metrics.CACHE_MISS()
        decision = decide(
            extraction,
            namespace,
            ns.labels if ns else None,
            self.view,
            self.settings.decision,
            self.caches.judged(namespace, ns) if ns else None,
        )
        for judgement in decision.judgements:
            metrics.count_judgement(judgement.status.value, judgement.mode.value)
        decided = Decided.of(decision)
        # An unknown namespace is a race with the namespace watch: do not remember it.
        if ns is not None:
            self.caches.decisions.put(key, decided)
        return decided

    def _side_effects(self, decision: Decision, request: Request) -> None:
        if not (decision.scans or decision.events):
            return
        metadata = metadata_of(request.object)
        name = metadata.get("name") or request.name
        where = f"{request.namespace}/{name}"
        if decision.scans and self.request_scans is not None:
            self.request_scans(
                decision, f"{request.kind} {where} ({request.operation} by {request.username})"
            )
        if decision.events and self.record_events is not None:
            api_version = member(request.object, "apiVersion")
            involved = {
                "apiVersion": api_version if isinstance(api_version, str) else "",
                "kind": request.kind,
                "name": name,
                "namespace": request.namespace,
            }
            if "uid" in metadata:
                involved["uid"] = metadata["uid"]
            self.record_events(decision, involved)

    # -- responses --------------------------------------------------------------------

    @staticmethod
    def _allowed(uid: str) -> bytes:
        return _RESPONSE_HEAD + json.dumps(uid).encode() + b',"allowed":true}}'
