"""The mutating webhook (``/mutate``): pin references, add verifiers.

Runs before the validating webhook, on the same kinds, and only does anything where a
SecurityGroup asks for it (otherwise the answer is "allowed, no patch" after one
attribute read):

- ``spec.enforcement.pin``: each reference without a fixed revision, judged by a pinning
  group whose scan read a revision, is rewritten to that revision at every place the
  extractors found it and the serving stack takes one (:mod:`modelsec.references.pins`).
  Each rewrite is listed in the ``modelsec.io/pinned`` annotation of the object and in a
  ``ModelPinned`` Event; places that take no revision come back as warnings. When the
  model has no verdict yet the request may wait for it (first deploy, :mod:`.firstdeploy`)
  so that it can be pinned in the same apply.
- ``spec.enforcement.verifyAtStart``: Pods get one ``modelsec verify`` init container per
  ``file://`` model, last among their init containers (:mod:`.verifier`).

The validating webhook then judges the result as it judges anything, and denies a
reference left unpinned where it could have been pinned, or a Pod without its verifiers.
The answer is a JSON Patch of whole anchors (a container, an annotation, a storage URI),
computed against a copy of the object: never a partial edit of something it did not read.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelsec.references import Extraction, Reference, Unreadable, extract_object
from modelsec.references import pins as pinning
from modelsec.references.pins import Path, Pin, pinnable, why_not
from modelsec.safe_text import printable
from modelsec_webhook import messages, metrics, verifier
from modelsec_webhook.admission import CHECKED_OPERATIONS, Admission, NeedConfigMaps, denial
from modelsec_webhook.decision import Decision, Judgement, ScanRequest, Status
from modelsec_webhook.review import AdmissionResponse, Request, member, metadata_of, response_document
from modelsec_webhook.view import View

log = logging.getLogger("modelsec.webhook.mutation")

PINNED_ANNOTATION = "modelsec.io/pinned"
MAX_PINNED_BYTES = 8192  # the annotation's budget (all annotations of an object: 256 KiB)


@dataclass(frozen=True)
class Pinned:
    """One reference the mutating webhook pinned: the model, revision, group and where it was found."""

    model: str  # the reference as judged (uri)
    revision: str
    group: str
    where: str  # the origin the extractor gave

    def record(self) -> dict[str, str]:
        return {"model": self.model, "revision": self.revision, "group": self.group, "at": self.where}


@dataclass
class Mutated:
    """What the mutating webhook answers."""

    ops: list[dict[str, Any]] = field(default_factory=list)
    pinned: list[Pinned] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    scans: list[ScanRequest] = field(default_factory=list)  # ModelScans to create (first deploy)
    waiting: tuple[Judgement, ...] = ()  # pinning waits for these verdicts
    verifiers: int = 0

    def response(self, uid: str) -> bytes:
        response: AdmissionResponse = {"uid": uid, "allowed": True}
        if self.ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(
                json.dumps(self.ops, separators=(",", ":")).encode()
            ).decode()
        if self.warnings:
            response["warnings"] = list(messages.bounded_warnings(self.warnings))
        return json.dumps(response_document(response), separators=(",", ":")).encode()


def pointer(path: Path) -> str:
    """RFC 6901 JSON Pointer of ``path``."""
    return "".join("/" + str(step).replace("~", "~0").replace("/", "~1") for step in path)


def _anchor_value(obj: object, path: Path) -> object:
    """The value at an anchor of the pinned copy (object members and list items)."""
    for step in path:
        if isinstance(step, int):
            obj = obj[step] if isinstance(obj, list) and step < len(obj) else None
        else:
            obj = obj.get(step) if isinstance(obj, dict) else None
    return obj


def _revision(judgements: tuple[Judgement, ...]) -> tuple[str, str] | None:
    """(revision, group) to pin to: what a pinning group's scan read. Groups are judged in
    name order; when two pinning groups' scans read different revisions, the first wins and
    the validating webhook judges the pinned reference by both (the other group scans that
    revision too)."""
    for judgement in judgements:
        if judgement.pin_to:
            return judgement.pin_to, judgement.group
    return None


def plan_pins(
    extraction: Extraction, judged: dict[Reference, tuple[Judgement, ...]]
) -> tuple[list[tuple[Pin, Pinned]], list[str], list[Judgement]]:
    """(pins to write, warnings, pending judgements a pin waits for)."""
    out: list[tuple[Pin, Pinned]] = []
    warnings: list[str] = []
    pending: list[Judgement] = []
    for reference in extraction.references:
        ref = reference.ref
        if ref.pinned or ref.scheme not in ("hf", "s3"):
            continue
        judgements = tuple(j for j in judged.get(reference, ()) if _pins(j))
        if not judgements:
            continue
        chosen = _revision(judgements)
        if chosen is None:
            pending.extend(j for j in judgements if j.status == Status.PENDING)
            continue
        revision, group = chosen
        for site, origin in zip(reference.sites, reference.site_origins):
            if not pinnable(site, ref.scheme):
                # Warnings are cut at 120 characters: where, then why, before the model.
                warnings.append(
                    printable(f"modelsec: {origin}: not pinned: {why_not(site, ref.scheme)} ({ref})")
                )
                continue
            out.append(
                (Pin(site, ref.scheme, ref.location, revision), Pinned(ref.uri, revision, group, origin))
            )
    return out, warnings, pending


def _pins(judgement: Judgement) -> bool:
    return judgement.pins and (judgement.pin_to is not None or judgement.status == Status.PENDING)


def pinned_annotation(existing: str | None, pinned: list[Pinned]) -> str:
    """The ``modelsec.io/pinned`` value: earlier records (an UPDATE keeps them) and these."""
    records: list[dict[str, str]] = []
    if existing:
        try:
            loaded = json.loads(existing)
            records = [r for r in loaded if isinstance(r, dict)] if isinstance(loaded, list) else []
        except ValueError:
            records = []
    for entry in pinned:
        record = entry.record()
        records = [
            r for r in records if not (r.get("model") == record["model"] and r.get("at") == record["at"])
        ]
        records.append(record)
    text = json.dumps(records, separators=(",", ":"))
    while len(text) > MAX_PINNED_BYTES and len(records) > 1:
        records.pop(0)  # the oldest first
        text = json.dumps(records, separators=(",", ":"))
    return text


def patch_ops(edited: dict[str, Any], anchors: list[Path]) -> list[dict[str, Any]]:
    """``replace`` of each rewritten anchor, with its new value."""
    return [
        {"op": "replace", "path": pointer(anchor), "value": _anchor_value(edited, anchor)}
        for anchor in anchors
    ]


def annotation_op(obj: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    if "annotations" not in metadata_of(obj):
        return {"op": "add", "path": "/metadata/annotations", "value": {key: value}}
    return {"op": "add", "path": pointer(("metadata", "annotations", key)), "value": value}


def verifier_ops(pod: dict[str, Any], containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = verifier.pod_spec(pod)
    init, volumes = verifier.with_verifiers(spec, containers)
    ops = []
    for key, value in (("initContainers", init), ("volumes", volumes)):
        if value != (spec.get(key) or []):
            ops.append({"op": "add", "path": f"/spec/{key}", "value": value})  # add replaces a member
    return ops


def mutate(
    kind: str,
    obj: dict[str, Any],
    extraction: Extraction,
    judged: dict[Reference, tuple[Judgement, ...]],
    view: View,
    verifier_image: str | None,
) -> Mutated:
    """The patch for ``obj`` (pins, then verifiers), from the judgements of its references."""
    result = Mutated()
    planned, result.warnings, pending = plan_pins(extraction, judged)
    edited = obj
    if planned:
        applied = pinning.apply(obj, [pin for pin, _ in planned])
        failed = {id(p) for p, _ in applied.problems}
        for pin, why in applied.problems:
            result.warnings.append(printable(f"modelsec: not pinned: {why} ({pin.scheme}://{pin.location})"))
        result.pinned = [record for pin, record in planned if id(pin) not in failed]
        edited = applied.obj
        result.ops.extend(patch_ops(edited, applied.changed))
        if result.pinned:
            existing = metadata_of(obj).get("annotations", {}).get(PINNED_ANNOTATION)
            value = pinned_annotation(existing if isinstance(existing, str) else None, result.pinned)
            result.ops.append(annotation_op(obj, PINNED_ANNOTATION, value))
    result.waiting = tuple(pending)
    result.scans = [ScanRequest(j.reference, j.group, j.scan) for j in pending if j.request_scan and j.scan]
    if kind == "Pod" and view.verifying:
        judgements = tuple(j for js in judged.values() for j in js)
        needs, _remote = verifier.needed(edited, extraction, judgements, view)
        usable = [n for n in needs if n.problem is None]
        if usable and verifier_image:
            result.ops.extend(verifier_ops(edited, [verifier.container(n, verifier_image) for n in usable]))
            result.verifiers = len(usable)
    return result


# --- the review ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MutateAnswer:
    """The answer to one ``/mutate`` review: response body, why (for metrics), verdicts waited for."""

    body: bytes
    reason: str  # metrics label
    waiting: tuple[Judgement, ...] = ()
    allowed: bool = True


def _involved(request: Request) -> dict[str, str] | None:
    """What an Event about the request's object names: the object, or (a Pod a controller
    creates has no name yet at admission) the controller that owns it."""
    meta = metadata_of(request.object)
    name = meta.get("name") or request.name
    if name:
        api_version = member(request.object, "apiVersion")
        return {
            "apiVersion": api_version if isinstance(api_version, str) else "",
            "kind": request.kind,
            "name": name,
            "namespace": request.namespace,
        }
    for owner in meta.get("ownerReferences", []):
        if owner.get("controller") and "name" in owner:
            involved = {
                "apiVersion": owner.get("apiVersion", ""),
                "kind": owner.get("kind", ""),
                "name": owner["name"],
                "namespace": request.namespace,
            }
            if "uid" in owner:
                involved["uid"] = owner["uid"]
            return involved
    return None


class Mutator:
    """Answers ``/mutate`` reviews from the admission's view and caches."""

    def __init__(
        self, admission: Admission, events: Callable[[dict[str, str], str], None] | None = None
    ) -> None:
        self.admission = admission
        self.events = events

    def answer(self, request: Request, fetched: bool = False) -> MutateAnswer | NeedConfigMaps:
        try:
            return self._answer(request, fetched)
        except Exception as exc:  # noqa: BLE001 - fail closed, and say so
            log.error(
                f"internal error on mutating request {printable(request.uid[:64])}: "
                f"{type(exc).__name__}: {printable(str(exc)[:200])}; denied"
            )
            metrics.MUTATIONS.labels("internal-error").inc()
            message = (
                f"modelsec pinning webhook internal error ({type(exc).__name__}); failing closed. "
                "Retry, and report it if it persists."
            )
            return MutateAnswer(
                denial(request.uid, message, "internal-error").body, "internal-error", allowed=False
            )

    def _allowed(self, request: Request, reason: str) -> MutateAnswer:
        metrics.MUTATIONS.labels(reason).inc()
        return MutateAnswer(Mutated().response(request.uid), reason)

    def _answer(self, request: Request, fetched: bool) -> MutateAnswer | NeedConfigMaps:
        admission, view = self.admission, self.admission.view
        if not (view.pinning or view.verifying):
            return self._allowed(request, "not-needed")
        if (
            request.namespace in admission.settings.exempt_namespaces
            or request.operation not in CHECKED_OPERATIONS
            or request.subresource
            # A Pod's containers cannot change after creation (but for images): an UPDATE
            # is left as it is, and the validating webhook judges it.
            or request.kind == "Pod"
            and request.operation == "UPDATE"
        ):
            return self._allowed(request, "not-needed")
        obj = request.object
        assert obj is not None
        extraction = admission.caches.extraction(request.kind, obj)
        ns = view.namespaces.get(request.namespace)
        if not extraction.references and not extraction.configmaps or ns is None:
            return self._allowed(request, "none")
        if admission.staleness() is not None:
            return self._allowed(request, "none")  # the validating webhook denies, saying why
        if extraction.configmaps and view.covering(ns.labels):
            values = admission.configmaps.cached(request.namespace, extraction.configmaps)
            missing = extraction.configmaps - values.keys()
            if missing and not fetched:
                return NeedConfigMaps(request.namespace, frozenset(missing))
            for name in missing:
                values[name] = Unreadable("it was not read in time")
            extraction = extract_object(request.kind, obj, values)
        judged = admission.caches.judged(request.namespace, ns)
        result = mutate(
            request.kind,
            obj,
            extraction,
            {r: judged(r) for r in extraction.references},
            view,
            admission.settings.verifier_image,
        )
        if not request.dry_run:
            self._side_effects(request, result)
        for pinned in result.pinned:
            metrics.PINS.labels(pinned.model.split("://", 1)[0]).inc()
        label = "+".join(
            part for part, done in (("pinned", result.pinned), ("verifiers", result.verifiers)) if done
        )
        metrics.MUTATIONS.labels(label or "none").inc()
        # A dry run creates no ModelScan: wait only when every scan pinning needs exists.
        waiting = (
            result.waiting if not (request.dry_run and any(j.request_scan for j in result.waiting)) else ()
        )
        return MutateAnswer(result.response(request.uid), label or "none", waiting)

    def _side_effects(self, request: Request, result: Mutated) -> None:
        request_scans = self.admission.request_scans
        if result.scans and request_scans is not None:
            where = f"{request.kind} {request.namespace}/{request.name or '?'}"
            request_scans(
                Decision(False, scans=tuple(result.scans)),
                f"{where} ({request.operation} by {request.username})",
            )
        if result.pinned and self.events is not None and (involved := _involved(request)) is not None:
            listed = "; ".join(
                f"{p.model} -> {p.revision} ({p.where}, SecurityGroup {p.group})" for p in result.pinned
            )
            self.events(
                involved,
                printable(f"pinned {len(result.pinned)} reference(s) to the scanned revision: {listed}"),
            )
