"""Verdicts to ModelScan status, bounded, and superseded verdicts to history entries."""

from __future__ import annotations

from typing import Any

import modelsec
from modelsec.findings import Finding
from modelsec.k8s.common import ConditionStatus, set_condition, timestamp
from modelsec.k8s.scan import (
    MAX_FINDINGS,
    MAX_HISTORY,
    MAX_INCOMPLETES,
    MAX_MESSAGE,
    FindingStatus,
    HistoryEntry,
    IncompleteStatus,
    ModelScanStatus,
    Phase,
    RuleStatus,
)
from modelsec.policy import Mode, Outcome, Verdict
from modelsec.references.model import MAX_REVISION_LENGTH
from modelsec.rules.base import RuleResult
from modelsec.sources import ScannedModel

# Every key the verdict part of the status may hold: cleared (None in a merge patch) when a
# new evaluation starts, so a half-written status can never show a stale outcome.
VERDICT_KEYS = (
    "outcome",
    "reason",
    "rules",
    "findings",
    "findingsTotal",
    "findingsTruncated",
    "incompletes",
    "incompletesTotal",
    "fingerprint",
    "filesScanned",
    "bytesScanned",
    "scannerVersion",
    "startedAt",
    "completedAt",
    "revision",
    "bom",
)


def _clip(text: str | None, limit: int = MAX_MESSAGE) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _revision(scanned: ScannedModel) -> str | None:
    """The revision the scan read; None when the source named none or one a status cannot
    hold (a clipped revision would pin nothing, or the wrong thing)."""
    revision = scanned.metadata.revision or scanned.report.revision
    return revision if revision and len(revision) <= MAX_REVISION_LENGTH else None


def _patch(status: ModelScanStatus) -> dict[str, Any]:
    """A merge patch of exactly the fields set: explicit Nones delete, untouched fields
    (history, conditions) stay as they are on the server."""
    return status.model_dump(by_alias=True, exclude_unset=True, mode="json")


def _finding(f: Finding) -> FindingStatus:
    return FindingStatus(
        rule=f.rule,
        threat=f.threat,
        severity=f.severity.name,
        file=_clip(f.file, 4096),
        message=_clip(f.message),
        subject=_clip(f.subject) if f.subject is not None else None,
        offset=f.offset,
    )


def ordered_findings(verdict: Verdict) -> list[Finding]:
    """Violations of failed Blocking rules first, then warnings, each by severity, so that
    what decided the outcome survives truncation."""
    rank = {Mode.BLOCKING: 0, Mode.NON_BLOCKING: 1, Mode.DISABLED: 2}
    seen: set[Finding] = set()
    out: list[tuple[int, int, Finding]] = []
    for evaluation in verdict.rules:
        for finding in evaluation.violations:
            if finding not in seen:
                seen.add(finding)
                out.append((rank[evaluation.mode], -int(finding.severity), finding))
    out.sort(key=lambda item: (item[0], item[1]))
    return [f for _, _, f in out]


def completed_status(
    verdict: Verdict,
    scanned: ScannedModel,
    *,
    generation: int | None,
    group_digest: str,
    group_generation: int | None,
    worker: str,
    attempts: int,
    conditions: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    report = scanned.report
    findings = ordered_findings(verdict)
    incompletes = report.all_incompletes()
    dropped = sum(f.dropped_findings for f in report.files)
    model = ModelScanStatus(
        phase=Phase.COMPLETED,
        outcome=verdict.outcome,
        reason=_clip(verdict.reason),
        rules=[
            RuleStatus(
                name=e.name,
                mode=e.mode,
                result=e.result,
                violations=len(e.violations),
                message=_clip(e.message),
            )
            for e in verdict.rules
        ],
        findings=[_finding(f) for f in findings[:MAX_FINDINGS]],
        findingsTotal=len(findings) + dropped,
        findingsTruncated=len(findings) > MAX_FINDINGS or dropped > 0,
        incompletes=[
            IncompleteStatus(file=_clip(i.file, 4096), reason=_clip(i.reason), code=i.code)
            for i in incompletes[:MAX_INCOMPLETES]
        ],
        incompletesTotal=len(incompletes),
        fingerprint=report.fingerprint,
        # What was read, even when spec.revision is unset or a branch: the pinning webhook
        # rewrites references to it.
        revision=_revision(scanned),
        filesScanned=len(report.files),
        bytesScanned=report.bytes_scanned,
        scannerVersion=modelsec.__version__,
        completedAt=timestamp(),
        worker=worker,
        attempts=attempts,
        groupDigest=group_digest,
        groupGeneration=group_generation,
        observedGeneration=generation,
    )
    status = _patch(model)
    status["conditions"] = set_condition(
        conditions,
        "Ready",
        ConditionStatus.TRUE,
        verdict.outcome.value.title(),
        _clip(verdict.reason),
        generation,
    )
    return status


def failed_status(
    reason: str,
    message: str,
    *,
    generation: int | None,
    group_digest: str | None,
    group_generation: int | None,
    worker: str,
    attempts: int,
    conditions: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """No verdict could be produced: outcome ERROR, which admits nothing (fail closed)."""
    status: dict[str, Any] = {key: None for key in VERDICT_KEYS}
    status.update(
        _patch(
            ModelScanStatus(
                phase=Phase.FAILED,
                outcome=Outcome.ERROR,
                reason=_clip(message),
                completedAt=timestamp(),
                scannerVersion=modelsec.__version__,
                worker=worker,
                attempts=attempts,
                groupDigest=group_digest,
                groupGeneration=group_generation,
                observedGeneration=generation,
            )
        )
    )
    status["conditions"] = set_condition(
        conditions, "Ready", ConditionStatus.FALSE, reason, _clip(message), generation
    )
    return status


def history_after(old: dict[str, Any], because: str) -> tuple[list[dict[str, Any]], int]:
    """The history list with ``old``'s verdict (if it had one) pushed on top, and the
    running count of entries dropped beyond :data:`MAX_HISTORY`."""
    history = list(old.get("history") or [])
    dropped = int(old.get("historyDropped") or 0)
    phase = old.get("phase")
    if phase in (Phase.COMPLETED.value, Phase.FAILED.value) and old.get("completedAt"):
        rules = old.get("rules") or []
        entry = HistoryEntry(
            phase=Phase(phase),
            outcome=old.get("outcome"),
            reason=_clip(old.get("reason")),
            completedAt=old.get("completedAt"),
            supersededAt=timestamp(),
            supersededBecause=_clip(because),
            groupDigest=old.get("groupDigest"),
            groupGeneration=old.get("groupGeneration"),
            fingerprint=old.get("fingerprint"),
            scannerVersion=old.get("scannerVersion"),
            failedRules=[
                r["name"]
                for r in rules
                if r.get("mode") == Mode.BLOCKING.value and r.get("result") == RuleResult.FAILED.value
            ],
            warnedRules=[
                r["name"]
                for r in rules
                if r.get("mode") == Mode.NON_BLOCKING.value and r.get("result") == RuleResult.FAILED.value
            ],
        ).wire()
        history.insert(0, entry)
    if len(history) > MAX_HISTORY:
        dropped += len(history) - MAX_HISTORY
        history = history[:MAX_HISTORY]
    return history, dropped
