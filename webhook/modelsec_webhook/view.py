"""The webhook's in-memory view of the cluster, kept current by informers.

Watch events are parsed here, once, into small frozen records: the admission path only
reads dictionaries of records and calls precompiled matchers. Every change to scans,
groups or sources bumps :attr:`View.generation` (the decision cache keys on it);
namespaces carry a version of their own so that relabelling one namespace does not
invalidate decisions about the others.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from modelsec.k8s.enforcement import Enforcement
from modelsec.k8s.group import SecurityGroupResourceSpec
from modelsec.k8s.naming import scan_key
from modelsec.k8s.scan import Phase
from modelsec.k8s.source import ModelSourceSpec
from modelsec.policy import Mode
from modelsec.references import Reference
from modelsec.rules.base import RuleResult
from modelsec.rules.revision_pinned import RevisionPinnedParams
from modelsec.safe_text import printable
from modelsec_webhook import metrics
from modelsec_webhook.matching import (
    Selector,
    SourceMatcher,
    compile_selector,
    selector_problem,
    source_matcher,
)

log = logging.getLogger("modelsec.webhook.view")

MAX_FINDINGS_KEPT = 3
REVISION_PINNED = "RevisionPinned"


# --- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FindingBrief:
    """One finding of a ModelScan, as admission shows it: rule, threat, file and message."""

    rule: str
    threat: str
    file: str
    message: str


@dataclass(frozen=True)
class ScanRecord:
    """What admission needs from one ModelScan."""

    name: str
    key: str
    phase: str | None
    outcome: str | None
    reason: str
    group_digest: str | None
    completed_at: str
    failed: tuple[str, ...] = ()  # Blocking rules that FAILED
    errored: tuple[str, ...] = ()  # Blocking rules that could not be evaluated
    warnings: tuple[tuple[str, str], ...] = ()  # (rule, message) of NonBlocking failures
    findings: tuple[FindingBrief, ...] = ()
    findings_total: int = 0
    revision: str | None = None  # what the scan read (status.revision): pins, and a second key
    scanned_key: str | None = None  # scan key of (model, revision read, group), when it differs
    group: str = ""
    started_at: str = ""  # status.startedAt: how long the current attempt has been running
    queue_position: int | None = None  # status.queuePosition while Pending for a slot

    @property
    def has_verdict(self) -> bool:
        return self.phase in (Phase.COMPLETED, Phase.FAILED) and self.outcome is not None


def scan_record(obj: dict[str, Any]) -> ScanRecord | None:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    model, group = spec.get("model"), spec.get("securityGroup")
    if not isinstance(model, str) or not isinstance(group, str):
        return None
    rules = [r for r in status.get("rules") or [] if isinstance(r, dict)]

    def names(mode: str, *results: str) -> tuple[str, ...]:
        return tuple(
            str(r.get("name")) for r in rules if r.get("mode") == mode and r.get("result") in results
        )

    failed = names(Mode.BLOCKING, RuleResult.FAILED)
    findings = [f for f in status.get("findings") or [] if isinstance(f, dict)]
    decisive = [f for f in findings if f.get("rule") in failed] or findings
    key = scan_key(model, spec.get("revision"), group)
    read = status.get("revision") if isinstance(status.get("revision"), str) else None
    scanned_key = scan_key(model, read, group) if read and status.get("phase") == Phase.COMPLETED else None
    position = status.get("queuePosition")
    return ScanRecord(
        name=str(obj["metadata"]["name"]),
        key=key,
        phase=status.get("phase"),
        outcome=status.get("outcome"),
        reason=str(status.get("reason") or ""),
        group_digest=status.get("groupDigest"),
        completed_at=str(status.get("completedAt") or ""),
        failed=failed,
        errored=names(Mode.BLOCKING, RuleResult.ERROR),
        warnings=tuple(
            (str(r.get("name")), str(r.get("message") or r.get("result")))
            for r in rules
            if r.get("mode") == Mode.NON_BLOCKING and r.get("result") in (RuleResult.FAILED, RuleResult.ERROR)
        ),
        findings=tuple(
            FindingBrief(
                str(f.get("rule", "")),
                str(f.get("threat", "")),
                str(f.get("file", "")),
                str(f.get("message", "")),
            )
            for f in decisive[:MAX_FINDINGS_KEPT]
        ),
        findings_total=int(status.get("findingsTotal") or len(findings)),
        revision=read,
        scanned_key=scanned_key if scanned_key != key else None,
        group=group,
        started_at=str(status.get("startedAt") or ""),
        queue_position=position if isinstance(position, int) else None,
    )


class GroupState(enum.StrEnum):
    READY = "ready"
    VALIDATING = "validating"  # no status for the current generation yet
    NOT_READY = "not-ready"  # the operator found the group unusable


@dataclass(frozen=True)
class GroupRecord:
    """What admission needs from one SecurityGroup."""

    name: str
    source_ref: str
    selects: Selector
    enforcement: Enforcement
    problem: str | None  # the spec cannot be used: every reference it governs is ERROR
    state: GroupState
    state_message: str
    digest: str | None
    revision_pinned: tuple[Mode, RevisionPinnedParams] | None = None


def _ready_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition
    return None


def group_record(obj: dict[str, Any]) -> GroupRecord:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name"))
    raw = obj.get("spec") or {}
    status = obj.get("status") or {}
    problem = None
    try:
        enforcement = Enforcement.model_validate(raw.get("enforcement") or {})
    except ValidationError as exc:
        enforcement = Enforcement()
        problem = f"spec.enforcement: {exc.errors()[0]['msg']}"
    pinned: tuple[Mode, RevisionPinnedParams] | None = None
    try:
        spec = SecurityGroupResourceSpec.model_validate(raw)
        for rule in spec.rules:
            if rule.name == REVISION_PINNED and rule.mode != Mode.DISABLED:
                params = RevisionPinnedParams.parse(rule.params or {})
                pinned = (rule.mode, params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        problem = problem or f"{where}: {first['msg'].removeprefix('Value error, ')}"
    selector = raw.get("namespaceSelector")
    if selector is not None and (trouble := selector_problem(selector)):
        problem = problem or trouble
    ready = _ready_condition(status)
    current = status.get("observedGeneration") == meta.get("generation")
    if ready is None or not current:
        state, message = GroupState.VALIDATING, "the operator has not validated this version of the group yet"
    elif ready.get("status") != "True":
        state = GroupState.NOT_READY
        message = f"{ready.get('reason') or 'NotReady'}: {ready.get('message') or ''}".strip()
    else:
        state, message = GroupState.READY, ""
    return GroupRecord(
        name=name,
        source_ref=str(raw.get("sourceRef") or ""),
        selects=compile_selector(selector),
        enforcement=enforcement,
        problem=problem,
        state=state,
        state_message=message,
        digest=status.get("digest"),
        revision_pinned=pinned,
    )


@dataclass(frozen=True)
class Governor:
    """A group together with the matcher of its source: it governs the references the
    matcher accepts, in the namespaces its selector accepts."""

    group: GroupRecord
    source: SourceMatcher


@dataclass(frozen=True)
class Namespace:
    """A namespace's labels, with a version that changes when they do."""

    labels: Mapping[str, str]
    version: int


# --- the view --------------------------------------------------------------------------


@dataclass
class View:
    """The cluster as admission reads it: ModelScans, groups, sources and namespaces, indexed."""

    scans: dict[str, dict[str, ScanRecord]] = field(default_factory=dict)  # key -> name -> record
    scan_keys: dict[str, str] = field(default_factory=dict)  # name -> key
    # By the key of the revision each scan read (status.revision), when not its spec's.
    scanned: dict[str, dict[str, ScanRecord]] = field(default_factory=dict)
    scanned_keys: dict[str, str] = field(default_factory=dict)  # name -> scanned key
    groups: dict[str, GroupRecord] = field(default_factory=dict)
    sources: dict[str, SourceMatcher | None] = field(default_factory=dict)  # None: invalid spec
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    by_scheme: dict[str, tuple[Governor, ...]] = field(default_factory=dict)
    pinning: bool = False  # some group with a source has spec.enforcement.pin
    verifying: bool = False  # some group with a source has spec.enforcement.verifyAtStart
    generation: int = 0
    _namespace_versions: int = 0
    on_change: list[Callable[[], None]] = field(default_factory=list)

    # -- reading (the admission path) ----------------------------------------------------

    def governors(self, reference: Reference) -> tuple[Governor, ...]:
        candidates = self.by_scheme.get(reference.ref.scheme, ())
        return tuple(g for g in candidates if g.source(reference))

    def covering(self, labels: Mapping[str, str] | None) -> tuple[GroupRecord, ...]:
        """The groups (with a source) that select a namespace with ``labels`` (None: every
        group), whatever references they govern: those that judge a model the webhook
        cannot see."""
        seen: dict[str, GroupRecord] = {}
        for governors in self.by_scheme.values():
            for governor in governors:
                if governor.group.name not in seen and (labels is None or governor.group.selects(labels)):
                    seen[governor.group.name] = governor.group
        return tuple(seen[name] for name in sorted(seen))

    def scan(self, key: str) -> ScanRecord | None:
        """The ModelScan of a (model, revision, group) key: one whose spec names that
        revision, else one whose scan *read* it (``status.revision``): the scan of
        ``hf://org/m`` that read commit C judges ``hf://org/m@C`` too, which is what a
        pinned workload names."""
        records = self.scans.get(key) or self.scanned.get(key)
        if not records:
            return None
        if len(records) == 1:
            return next(iter(records.values()))
        # Several ModelScans of one triple (a user's and the webhook's): the latest verdict.
        return max(records.values(), key=lambda r: (r.has_verdict, r.completed_at, r.name))

    def has_scan(self, name: str) -> bool:
        return name in self.scan_keys

    # -- writing (informer sinks) --------------------------------------------------------

    def _changed(self) -> None:
        self.generation += 1
        for callback in self.on_change:
            callback()

    def _recompile(self) -> None:
        by_scheme: dict[str, list[Governor]] = {}
        for group in self.groups.values():
            source = self.sources.get(group.source_ref)
            if source is None:
                continue  # no such source (the group is not Ready): it governs nothing
            by_scheme.setdefault(source.scheme, []).append(Governor(group, source))
        self.by_scheme = {k: tuple(sorted(v, key=lambda g: g.group.name)) for k, v in by_scheme.items()}
        # Most clusters use neither: the mutating webhook and the verifier check then cost
        # one attribute read per request.
        self.pinning = any(g.group.enforcement.pin for v in self.by_scheme.values() for g in v)
        self.verifying = any(g.group.enforcement.verify_at_start for v in self.by_scheme.values() for g in v)

    def set_scan(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self._drop_scan(name)
        record = scan_record(obj)
        if record is not None:
            self.scans.setdefault(record.key, {})[name] = record
            self.scan_keys[name] = record.key
            if record.scanned_key is not None:
                self.scanned.setdefault(record.scanned_key, {})[name] = record
                self.scanned_keys[name] = record.scanned_key

    def _drop_scan(self, name: str) -> None:
        for keys, table in ((self.scan_keys, self.scans), (self.scanned_keys, self.scanned)):
            key = keys.pop(name, None)
            if key is not None:
                records = table.get(key, {})
                records.pop(name, None)
                if not records:
                    table.pop(key, None)

    def set_group(self, obj: dict[str, Any]) -> None:
        record = group_record(obj)
        self.groups[record.name] = record
        if record.problem:
            log.warning(printable(f"SecurityGroup {record.name}: {record.problem}"))

    def set_source(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        try:
            self.sources[name] = source_matcher(name, ModelSourceSpec.model_validate(obj.get("spec") or {}))
        except ValidationError as exc:
            log.warning(
                printable(f"ModelSource {name}: invalid spec, governs nothing: {exc.errors()[0]['msg']}")
            )
            self.sources[name] = None

    def set_namespace(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        name = meta["name"]
        previous = self.namespaces.get(name)
        if previous is not None and previous.labels == labels:
            return
        self._namespace_versions += 1
        self.namespaces[name] = Namespace(MappingProxyType(dict(labels)), self._namespace_versions)


def _name(obj: Any) -> Any:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return metadata.get("name") if isinstance(metadata, dict) else None


class _Sink:
    """Adapts the view's setters to an informer's replace/upsert/delete."""

    def __init__(
        self,
        view: View,
        resource: str,
        setter: Callable[[dict[str, Any]], None],
        table: Callable[[], dict[str, Any]],
        drop: Callable[[str], object],
        recompile: bool,
        invalidates: bool = True,
    ) -> None:
        self.view = view
        self.resource = resource
        self.setter = setter
        self.table = table
        self.drop = drop
        self.recompile = recompile
        self.invalidates = invalidates

    def _done(self) -> None:
        if self.recompile:
            self.view._recompile()
        metrics.VIEW_OBJECTS.labels(self.resource).set(len(self.table()))
        if self.invalidates:
            self.view._changed()

    def replace(self, items: list[dict[str, Any]]) -> None:
        for name in list(self.table()):
            self.drop(name)
        for obj in items:
            try:
                self.setter(obj)
            except Exception as exc:  # noqa: BLE001 - one bad object must not lose the others
                log.error(
                    f"{self.resource}: cannot read {printable(repr(_name(obj))[:200])}: "
                    f"{type(exc).__name__}: {printable(str(exc)[:200])}"
                )
        self._done()

    def upsert(self, obj: dict[str, Any]) -> None:
        self.setter(obj)
        self._done()

    def delete(self, obj: dict[str, Any]) -> None:
        self.drop(obj["metadata"]["name"])
        self._done()


def sinks(view: View) -> dict[str, _Sink]:
    """One informer sink per watched resource."""
    return {
        "modelscans": _Sink(
            view, "modelscans", view.set_scan, lambda: view.scan_keys, view._drop_scan, recompile=False
        ),
        "securitygroups": _Sink(
            view,
            "securitygroups",
            view.set_group,
            lambda: view.groups,
            lambda n: view.groups.pop(n, None),
            recompile=True,
        ),
        "modelsources": _Sink(
            view,
            "modelsources",
            view.set_source,
            lambda: view.sources,
            lambda n: view.sources.pop(n, None),
            recompile=True,
        ),
        # Namespace versions are part of the decision cache key: no global invalidation.
        "namespaces": _Sink(
            view,
            "namespaces",
            view.set_namespace,
            lambda: view.namespaces,
            lambda n: view.namespaces.pop(n, None),
            recompile=False,
            invalidates=False,
        ),
    }
