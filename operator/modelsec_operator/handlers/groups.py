"""SecurityGroup: validate rules and source, report Ready, and re-evaluate its scans."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import kopf

from modelsec.k8s import ANNOTATION_EVALUATE, ANNOTATION_RESCAN, MODELSCANS, SECURITYGROUPS
from modelsec.k8s.common import ConditionStatus, set_condition
from modelsec.safe_text import printable
from modelsec_operator.runtime import Runtime
from modelsec_operator.validation import GroupView


@dataclass(frozen=True)
class ScanEntry:
    """What the group side needs to know about one ModelScan (kopf index value)."""

    name: str
    phase: str | None
    group_digest: str | None
    completed_at: str | None
    evaluate_poke: str | None
    rescan_poke: str | None


def scans_by_group(
    name: str, spec: kopf.Spec, status: kopf.Status, annotations: kopf.Annotations, **_: Any
) -> dict[str, ScanEntry]:
    return {
        str(spec.get("securityGroup")): ScanEntry(
            name=name,
            phase=status.get("phase"),
            group_digest=status.get("groupDigest"),
            completed_at=status.get("completedAt"),
            evaluate_poke=annotations.get(ANNOTATION_EVALUATE),
            rescan_poke=annotations.get(ANNOTATION_RESCAN),
        )
    }


def group_status(view: GroupView, previous: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        "observedGeneration": view.generation,
        "digest": view.digest,
        "rules": view.counts.get("rules"),
        "blocking": view.counts.get("blocking"),
        "sourceType": view.source.spec.type.value if view.source and view.source.spec else None,
        "conditions": set_condition(
            previous,
            "Ready",
            ConditionStatus.TRUE if view.ready else ConditionStatus.FALSE,
            view.reason,
            view.message,
            view.generation,
        ),
    }


async def reconcile_group(
    name: str,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    runtime: Runtime = memo.runtime
    scans_by_group: kopf.Index[str, ScanEntry] = kwargs["scans_by_group"]  # indices come by name
    view = await runtime.group_view(name, dict(body))
    assert view is not None
    (logger.info if view.ready else logger.warning)(printable(f"group {view.reason}: {view.message}"))
    if status.get("digest") != view.digest:
        await poke_scans(runtime, view, scans_by_group.get(name, []), logger)
    # The digest is recorded only once every scan of an older version was poked (a failed
    # poke raises before this line and the handler is retried). So an unchanged digest (a
    # restart, a resume) means nothing to poke: new scans read the group as it is, and
    # poking them again would cost two writes per pending scan of the group.
    patch.status.update(group_status(view, status.get("conditions")))


async def poke_scans(
    runtime: Runtime, view: GroupView, entries: Iterable[ScanEntry], logger: kopf.Logger
) -> None:
    """Ask every scan judged by another version of this group to be evaluated again.

    The poke is an annotation holding the group digest: idempotent (two operators, or a
    restart, write the same value), visible (`kubectl describe`), and durable (a scan
    poked while its operator was down is reconciled when it comes back)."""
    stale = [e for e in entries if e.group_digest != view.digest and e.evaluate_poke != view.digest]
    for entry in stale:
        await runtime.kube.patch_metadata(
            MODELSCANS[2], entry.name, annotations={ANNOTATION_EVALUATE: view.digest}
        )
    if stale:
        logger.info(f"re-evaluating {len(stale)} ModelScan(s) against the changed group")


def register(registry: kopf.OperatorRegistry) -> None:
    group, version, plural = SECURITYGROUPS
    for decorate in (kopf.on.resume, kopf.on.create, kopf.on.update):
        decorate(group, version, plural, registry=registry, id="reconcile")(reconcile_group)
    kopf.index(*MODELSCANS, registry=registry, id="scans_by_group")(scans_by_group)
