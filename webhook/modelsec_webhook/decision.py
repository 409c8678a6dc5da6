"""From the references a workload carries to an admission decision. Pure: reads the view,
calls nothing, so it can be cached and unit-tested without a cluster.

Each reference is judged by every group that governs it (its source matches the
reference, its ``namespaceSelector`` matches the namespace) as one of:

- ALLOWED: a current verdict ALLOWED; non-blocking failures become warnings;
- BLOCKED: a current verdict BLOCKED, or ``RevisionPinned`` (Blocking) fails on the
  reference itself;
- PENDING: no verdict yet (no ModelScan: one is requested), the verdict is being redone,
  or the group is being validated;
- ERROR: the verdict is ERROR, or the group cannot judge (invalid, not Ready).

The group's enforcement settings then turn each judgement into a denial, a warning or
an audit record (:mod:`modelsec.k8s.enforcement`).

What the workload itself makes unjudgeable is decided here too:

- an object that cannot be read (malformed) and an explicit reference that is not one
  (``modelsec.io/models``) deny, always;
- a place naming a model modelsec cannot see (:class:`~modelsec.references.Unresolved`: a
  Secret's value, more containers than are read, ``hf://org`` in an argument) is judged
  as ERROR by every group that covers the namespace, whatever its source: its model
  could be any. So it denies under an Enforce group (unless ``errorAction: Allow``),
  warns under Warn, is audited under Audit; where no group covers the namespace
  ``--unresolved-action`` decides (Warn by default), and where the namespace is not in
  the view yet it denies if any group exists.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from modelsec.k8s.enforcement import EnforcementMode, ErrorAction, PendingAction
from modelsec.k8s.naming import scan_key, scan_name
from modelsec.k8s.scan import Phase
from modelsec.metadata import SourceType
from modelsec.policy import Mode, Outcome
from modelsec.references import Extraction, Reference, Unresolved
from modelsec.references.pins import fixes
from modelsec.rules.revision_pinned import judge as judge_revision
from modelsec_webhook import messages
from modelsec_webhook.view import REVISION_PINNED, Governor, GroupRecord, GroupState, ScanRecord, View

PINNABLE = frozenset({SourceType.HUGGING_FACE, SourceType.S3})


class Status(enum.StrEnum):
    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    PENDING = "PENDING"
    ERROR = "ERROR"


class Effect(enum.StrEnum):
    NONE = "none"  # allowed, nothing to say beyond warnings
    DENY = "deny"
    WARN = "warn"
    AUDIT = "audit"


@dataclass(frozen=True)
class Judgement:
    """One reference judged by one group: the status, why, its ModelScan, warnings and effect."""

    reference: Reference
    group: str
    mode: EnforcementMode
    status: Status
    detail: str  # why, for a person: "LoadTimeCodeExecution failed: MS-PKL-100 in x.pkl ..."
    scan: str | None = None  # the ModelScan holding the verdict (or requested)
    warnings: tuple[str, ...] = ()  # non-blocking failures, as "Rule: message"
    request_scan: bool = False
    effect: Effect = Effect.NONE
    # The group pins references (spec.enforcement.pin) and its scan read this revision:
    # what the mutating webhook writes, and what an unpinned reference should have had.
    pin_to: str | None = None
    pins: bool = False  # the group pins references (spec.enforcement.pin)


@dataclass(frozen=True)
class ScanRequest:
    """A ModelScan to request: the reference, the group that judges it, and the scan's name."""

    reference: Reference
    group: str
    name: str


@dataclass(frozen=True)
class Decision:
    """The answer for one workload: allowed or not, why, warnings, audit records, scans to request."""

    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()
    audit: tuple[tuple[str, str], ...] = ()  # auditAnnotations (key, value)
    events: tuple[str, ...] = ()  # Event messages (audit mode)
    scans: tuple[ScanRequest, ...] = ()
    judgements: tuple[Judgement, ...] = ()
    denials: tuple[str, ...] = ()  # the lines of ``message``, to add more (verifier checks)
    pending_only: bool = False  # denied only because verdicts are not there yet (first deploy)


class UnresolvedAction(enum.StrEnum):
    """What to do with a model reference the webhook cannot read, in a namespace no
    SecurityGroup covers (``--unresolved-action``)."""

    ALLOW = "Allow"
    WARN = "Warn"
    DENY = "Deny"


@dataclass(frozen=True)
class Settings:
    """Decision settings: what to do with an unreadable reference where no group covers the namespace."""

    unresolved_action: UnresolvedAction = UnresolvedAction.WARN


# --- judging one reference by one group --------------------------------------------------


@functools.lru_cache(maxsize=4096)
def scan_identity(uri: str, revision: str | None, group: str) -> tuple[str, str]:
    """(scan key, ModelScan name) of a triple: two SHA-256s, worth remembering. Bounded by
    count, but each key is at most a ModelScan's 2,048-character reference (longer ones
    are refused before this), so the cache stays under ~20 MiB."""
    return scan_key(uri, revision, group), scan_name(uri, revision, group)


def judge(reference: Reference, governor: Governor, view: View) -> Judgement:
    group = governor.group
    mode = group.enforcement.mode

    def result(
        status: Status,
        detail: str,
        *,
        scan: str | None = None,
        warnings: tuple[str, ...] = (),
        request_scan: bool = False,
    ) -> Judgement:
        return Judgement(
            reference,
            group.name,
            mode,
            status,
            detail,
            scan,
            warnings,
            request_scan,
            pins=group.enforcement.pin,
        )

    if group.problem:
        return result(Status.ERROR, f"SecurityGroup {group.name} is invalid ({group.problem})")
    warnings: list[str] = []
    if group.revision_pinned is not None and reference.ref.source_type in PINNABLE:
        rule_mode, params = group.revision_pinned
        pin = judge_revision(reference.ref.source_type, reference.ref.revision, params)
        if not pin.pinned and group.enforcement.pin and reference.pinnable:
            # The mutating webhook pins it to what this group's scan reads: it must be
            # scanned for that, and an unpinned one is denied once the verdict is there.
            pass
        elif not pin.pinned:
            if rule_mode == Mode.BLOCKING:
                return result(Status.BLOCKED, f"{REVISION_PINNED} failed: {pin.message}")
            warnings.append(f"{REVISION_PINNED}: {pin.message}")
    if group.state == GroupState.NOT_READY:
        return result(Status.ERROR, f"SecurityGroup {group.name} cannot judge models ({group.state_message})")
    key, name = scan_identity(reference.ref.uri, reference.ref.revision, group.name)
    if group.state == GroupState.VALIDATING:
        return result(
            Status.PENDING,
            "the group changed and is being validated; retry shortly",
            scan=name,
            warnings=tuple(warnings),
        )
    record = view.scan(key)
    if record is None:
        return result(
            Status.PENDING,
            f"not scanned yet (ModelScan {name}); scan pending, retry shortly",
            scan=name,
            request_scan=True,
            warnings=tuple(warnings),
        )
    return _from_scan(reference, group.name, mode, record, group.digest, warnings, group.enforcement.pin)


def _from_scan(
    reference: Reference,
    group: str,
    mode: EnforcementMode,
    record: ScanRecord,
    digest: str | None,
    warnings: list[str],
    pin: bool = False,
) -> Judgement:
    # Only a revision that fixes the content is pinned to (not an unversioned S3 ETag).
    pin_to = (
        record.revision
        if (
            pin
            and record.phase == Phase.COMPLETED
            and record.revision
            and fixes(reference.ref.scheme, record.revision)
        )
        else None
    )

    def result(status: Status, detail: str, extra_warnings: tuple[str, ...] = ()) -> Judgement:
        return Judgement(
            reference,
            group,
            mode,
            status,
            detail,
            record.name,
            tuple(warnings) + extra_warnings,
            pin_to=pin_to,
            pins=pin,
        )

    if not record.has_verdict:
        phase = (record.phase or "queued").lower()
        return result(Status.PENDING, f"scan {phase} (ModelScan {record.name}); retry shortly")
    if digest and record.group_digest != digest:
        return result(
            Status.PENDING,
            f"the verdict is being re-evaluated against the changed "
            f"group (ModelScan {record.name}); retry shortly",
        )
    if record.outcome == Outcome.ALLOWED:
        # RevisionPinned was judged on the reference above; the scan's view of it is moot.
        return result(
            Status.ALLOWED,
            "",
            tuple(f"{rule}: {message}" for rule, message in record.warnings if rule != REVISION_PINNED),
        )
    if record.outcome == Outcome.BLOCKED:
        return result(Status.BLOCKED, messages.blocked_detail(record))
    return result(Status.ERROR, f"could not be judged: {record.reason or 'scan failed'}; failing closed")


def _effect(judgement: Judgement, governor: Governor) -> Effect:
    if judgement.status == Status.ALLOWED:
        return Effect.NONE
    return _effect_of(judgement.status, governor.group)


def _effect_of(status: Status, group: GroupRecord) -> Effect:
    settings = group.enforcement
    if settings.mode == EnforcementMode.AUDIT:
        return Effect.AUDIT
    if settings.mode == EnforcementMode.WARN:
        return Effect.WARN
    if status == Status.PENDING and settings.pending_action == PendingAction.ALLOW_WITH_WARNING:
        return Effect.WARN
    if status == Status.ERROR and settings.error_action == ErrorAction.ALLOW:
        return Effect.WARN
    return Effect.DENY


_STRENGTH = {Effect.DENY: 3, Effect.WARN: 2, Effect.AUDIT: 1, Effect.NONE: 0}


def unresolved_effect(covering: tuple[GroupRecord, ...]) -> tuple[Effect, tuple[str, ...]]:
    """The strongest effect of an unjudgeable model over the groups covering the
    namespace (each judges it ERROR), and the groups that have it."""
    effects = [(_effect_of(Status.ERROR, group), group.name) for group in covering]
    if not effects:
        return Effect.NONE, ()
    strongest = max((effect for effect, _ in effects), key=_STRENGTH.__getitem__)
    return strongest, tuple(name for effect, name in effects if effect is strongest)


# --- the whole workload ------------------------------------------------------------------


def judge_reference(reference: Reference, labels: Mapping[str, str], view: View) -> tuple[Judgement, ...]:
    """Every judgement of ``reference`` in a namespace with ``labels``, effects included.
    Depends on the reference, the namespace and the view only: cacheable on those."""
    out = []
    for governor in view.governors(reference):
        if governor.group.selects(labels):
            judgement = judge(reference, governor, view)
            out.append(replace(judgement, effect=_effect(judgement, governor)))
    return tuple(out)


def decide(
    extraction: Extraction,
    namespace: str,
    labels: Mapping[str, str] | None,
    view: View,
    settings: Settings = Settings(),
    judged: Callable[[Reference], tuple[Judgement, ...]] | None = None,
) -> Decision:
    """The decision for a workload in ``namespace`` (``labels`` None: namespace not known
    to the view yet) carrying ``extraction``. ``judged`` may supply (cached) results of
    :func:`judge_reference`."""
    denials: list[str] = []
    warnings: list[str] = []
    events: list[str] = []
    audit: list[tuple[str, str]] = []
    requests: list[ScanRequest] = []
    judgements: list[Judgement] = []

    extraction = _redirected_unresolved(extraction, view)
    if extraction.malformed:
        denials.append(messages.malformed_line(extraction.malformed))
    for invalid in extraction.invalid:
        denials.append(messages.invalid_line(invalid))
    if extraction.unresolved:
        covering = view.covering(labels)
        names: tuple[str, ...]
        if labels is None:  # not in the view yet: any group could cover it
            effect, names = (Effect.DENY if covering else Effect.NONE), ()
        else:
            effect, names = unresolved_effect(covering)
        for unresolved in extraction.unresolved:
            if not covering:
                line = messages.unresolved_line(unresolved)
                if settings.unresolved_action == UnresolvedAction.DENY:
                    denials.append(line)
                elif settings.unresolved_action == UnresolvedAction.WARN:
                    warnings.append(line)
            elif effect is Effect.DENY:
                denials.append(messages.unresolved_denial(unresolved, names, namespace))
            elif effect is Effect.WARN:
                warnings.append(messages.unresolved_line(unresolved))
            elif effect is Effect.AUDIT:
                events.append(messages.unresolved_denial(unresolved, names, namespace))

    for reference in extraction.references:
        if labels is None:
            if view.governors(reference):
                denials.append(messages.unknown_namespace_line(reference, namespace))
            continue
        for judgement in judged(reference) if judged else judge_reference(reference, labels, view):
            judgements.append(judgement)
            effect = judgement.effect
            if judgement.request_scan and judgement.scan:
                requests.append(ScanRequest(reference, judgement.group, judgement.scan))
            if effect is Effect.DENY:
                denials.append(messages.judgement_line(judgement, reference))
            elif effect is Effect.WARN:
                warnings.append(messages.warning_line(judgement))
            elif effect is Effect.AUDIT:
                events.append(messages.judgement_line(judgement, reference))
            if effect is not Effect.AUDIT:
                warnings.extend(messages.prefixed(judgement, w) for w in judgement.warnings)
            if judgement.pin_to and reference.pinnable and not reference.ref.pinned:
                # The group pins, its scan read a revision, and the workload names the model
                # where a revision could be written, yet it arrives unpinned: the mutating
                # webhook did not run (or the verdict came after it did).
                line = messages.unpinned_line(judgement, reference)
                route = {
                    EnforcementMode.ENFORCE: denials,
                    EnforcementMode.WARN: warnings,
                    EnforcementMode.AUDIT: events,
                }[judgement.mode]
                route.append(line)

    if judgements:
        audit.append(("judgements", messages.audit_summary(judgements)))
    if events:
        audit.append(("audit-would-deny", messages.clip(events[0], messages.MAX_AUDIT_VALUE)))
    pending = sum(1 for j in judgements if j.status == Status.PENDING and j.effect is Effect.DENY)
    return Decision(
        allowed=not denials,
        message=messages.denial(denials) if denials else "",
        warnings=messages.bounded_warnings(warnings),
        audit=tuple(audit),
        events=tuple(events),
        scans=tuple(requests),
        judgements=tuple(judgements),
        denials=tuple(denials),
        pending_only=bool(denials) and pending == len(denials),
    )


def _redirected_unresolved(extraction: Extraction, view: View) -> Extraction:
    """A reference whose downloads the workload's environment sends to another server
    (``HF_ENDPOINT``, ``AWS_ENDPOINT_URL``...) that no ModelSource holds is a model modelsec
    cannot see: unresolved, so every group covering the namespace judges it ERROR, rather
    than ungoverned (fail closed: the server is the workload's choice)."""
    lost = [r for r in extraction.references if r.redirected_by and not view.governors(r)]
    if not lost:
        return extraction
    return replace(
        extraction,
        references=tuple(r for r in extraction.references if r not in lost),
        unresolved=(
            *extraction.unresolved,
            *(
                Unresolved(
                    ", ".join(r.origins) or "workload",
                    f"{r.redirected_by}={r.endpoint} sends the download of {r.ref} to a server "
                    "no ModelSource holds",
                )
                for r in lost
            ),
        ),
    )


def amended(decision: Decision, denials: list[str], warnings: list[str], events: list[str]) -> Decision:
    """``decision`` with more lines: checks made on the object itself after the (cached)
    decision on its references."""
    if not (denials or warnings or events):
        return decision
    all_denials = [*decision.denials, *denials]
    audit = dict(decision.audit)
    if events and "audit-would-deny" not in audit:
        audit["audit-would-deny"] = messages.clip(events[0], messages.MAX_AUDIT_VALUE)
    return replace(
        decision,
        allowed=not all_denials,
        message=messages.denial(all_denials) if all_denials else "",
        warnings=messages.bounded_warnings([*decision.warnings, *warnings]),
        audit=tuple(audit.items()),
        events=(*decision.events, *events),
        denials=tuple(all_denials),
        pending_only=decision.pending_only and not denials,
    )
