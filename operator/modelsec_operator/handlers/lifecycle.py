"""Operator-wide activities: settings, the health probe, and the periodic resync."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from modelsec.k8s import ANNOTATION_RESCAN, MODELSCANS, SECURITYGROUPS
from modelsec.k8s.common import timestamp
from modelsec.k8s.group import SecurityGroupResourceSpec
from modelsec.safe_text import printable
from modelsec_operator.kube import Kube
from modelsec_operator.planning import parse_time
from modelsec_operator.runtime import KOPF_PREFIX, Runtime

log = logging.getLogger(__name__)


async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Handler progress goes to annotations (the CRD schemas are structural and would prune
    # kopf's default status.kopf field); the last-handled state too, except a ModelScan's,
    # which is kept in memory (diffbase.py: it saves a write per scan).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = memo.runtime.diffbase
    settings.posting.level = logging.INFO
    # Scans run in our own bounded pool; kopf's executor only serves sync callbacks.
    settings.execution.max_workers = 4
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60


async def start_resync(memo: kopf.Memo, **kwargs: Any) -> None:
    runtime: Runtime = memo.runtime
    scans_by_group: kopf.Index[str, Any] = kwargs["scans_by_group"]  # indices come by name
    memo.resync_task = asyncio.create_task(resync_forever(runtime, scans_by_group), name="resync")


async def stop(memo: kopf.Memo, **_: Any) -> None:
    task = getattr(memo, "resync_task", None)
    if task is not None:
        task.cancel()
    memo.runtime.pool.shutdown()
    if memo.runtime.jobs is not None:
        memo.runtime.jobs.tracker.close()
    memo.runtime.kube.close()


async def probe_scans(memo: kopf.Memo, **_: Any) -> dict[str, int]:
    pool, jobs = memo.runtime.pool, memo.runtime.jobs
    if jobs is not None:
        return {"scanJobs": jobs.slots.running, "waiting": jobs.slots.waiting}
    return {"inFlight": pool.in_flight, "waiting": pool.waiting, "cachedReports": len(pool.cache)}


async def resync_forever(runtime: Runtime, scans_by_group: kopf.Index[str, Any]) -> None:
    while True:
        await asyncio.sleep(runtime.config.resync_seconds)
        try:
            await resync_once(runtime.kube, scans_by_group)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round tries again; never kill the loop
            log.warning(printable(f"resync failed: {type(exc).__name__}: {exc}"))


async def resync_once(
    kube: Kube, scans_by_group: Mapping[str, Iterable[Any]], now: datetime | None = None
) -> int:
    """Poke the scans whose group's rescanInterval has elapsed since their verdict. The
    poke value is the due time, so concurrent operators write the same thing."""
    now = now or datetime.now(UTC)
    poked = 0
    for group_name in list(scans_by_group.keys()):
        body = await kube.get(SECURITYGROUPS[2], group_name)
        if body is None:
            continue
        try:
            every = SecurityGroupResourceSpec.model_validate(body.get("spec") or {}).rescan_every
        except ValueError:
            continue
        if every is None:
            continue
        for entry in list(scans_by_group.get(group_name, [])):
            due = rescan_due(entry.completed_at, every)
            if due is not None and due <= now and entry.rescan_poke != timestamp(due):
                await kube.patch_metadata(
                    MODELSCANS[2], entry.name, annotations={ANNOTATION_RESCAN: timestamp(due)}
                )
                poked += 1
    return poked


def rescan_due(completed_at: str | None, every: timedelta) -> datetime | None:
    completed = parse_time(completed_at)
    return completed + every if completed else None


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.startup(registry=registry, id="configure")(configure)
    kopf.on.startup(registry=registry, id="resync")(start_resync)
    kopf.on.cleanup(registry=registry, id="stop")(stop)
    kopf.on.probe(registry=registry, id="scans")(probe_scans)
