"""Scan mode ``job``: from a decision to scan to a worker's verdict.

For one reconciliation of one ModelScan (:meth:`JobScanner.verdict`):

1. **Adopt** the Job of this attempt if the status shows one under way (an operator
   restart must not start a duplicate): its name follows from the request and the attempt
   (:func:`..manifest.job_name`), so no write is needed to find it again. It takes a slot
   at once.
2. **Share** a Job already in flight for an identical request: the same model, revision
   and source judged by the same version of the same group (the job key).
3. Otherwise **queue** for a slot (:class:`..fairqueue.FairSlots`, fair between groups;
   ``status.queuePosition`` written when queued and again each time it has dropped to a
   tenth, within a budget of rewrites per slot granted), **create** the Job for this
   attempt (a name that already exists with our key is adopted) and **wait** for the
   tracker to tell how it ended. A Job still running after ``running_status_after``
   seconds is recorded as ``Running`` with ``status.job``; a shorter one only in the
   verdict (which names its Job): the write budget of a small scan is the claim, the
   Job, the verdict and its Event.

A result with a verdict is returned; anything else raises ``ScanRetry`` (transient: the
handler retries with backoff, each attempt a new Job, ``Failed`` with outcome ERROR after
``--max-attempts``) or ``ScanRefused`` (permanent). Never an ALLOWED by default.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelsec.k8s.common import ConditionStatus, set_condition, timestamp
from modelsec.k8s.result import WorkerVerdict
from modelsec.k8s.scan import Phase
from modelsec.safe_text import printable
from modelsec_operator import metrics
from modelsec_operator.fairqueue import FairSlots, Ticket
from modelsec_operator.jobs.api import JobsApi
from modelsec_operator.jobs.manifest import ANNOTATION_ATTEMPT, LABEL_JOB_KEY, JobRequest, build_job, job_name
from modelsec_operator.jobs.settings import JobSettings
from modelsec_operator.jobs.tracker import JobEnd, JobTracker
from modelsec_operator.scanning import ScanJob, ScanRefused, ScanRetry, local_signature
from modelsec_operator.validation import GroupView

log = logging.getLogger(__name__)
# Rewritten queue positions cost at most this many status writes per scan granted a
# slot, all scans together: each scan's own rule (a tenth, every --queue-refresh-seconds)
# allows log10(n) rewrites, and a queue drained slowly would use them all.
POSITION_REWRITES_PER_GRANT = 0.25


class Run(Protocol):
    """What the runner needs of the handler's ScanRun (handlers/scans.py)."""

    name: str
    body: Any
    retry: int
    status: dict[str, Any]
    generation: int | None

    async def claim(
        self, because: str, *, queue_position: int | None = None, queued: str | None = None
    ) -> None: ...

    async def write(self, status: dict[str, Any]) -> None: ...


def job_key(job: ScanJob, group_digest: str) -> str:
    """Identical requests share a Job: same reference, revision and source, same group
    version (the worker judges, so the group is part of what is shared)."""
    return hashlib.sha256("\0".join((*job.base_key(), group_digest)).encode()).hexdigest()


@dataclass(frozen=True)
class JobVerdict:
    """A scan Job's verdict, its Job and Pod, and how it came: from our own Job, adopted or shared."""

    verdict: WorkerVerdict
    job: str
    pod: str
    how: str  # "job", "adopted" or "shared"


class JobScanner:
    def __init__(
        self,
        api: JobsApi,
        settings: JobSettings,
        limit: int,
        tracker: JobTracker,
        local_root: Path | None,
        queue_refresh_seconds: float = 60.0,
        running_status_after: float = 30.0,
    ) -> None:
        self.api = api
        self.settings = settings
        self.slots = FairSlots(limit)
        self.tracker = tracker
        self.local_root = local_root
        self.queue_refresh_seconds = queue_refresh_seconds
        self.running_status_after = running_status_after
        self._inflight: dict[str, asyncio.Future[JobVerdict]] = {}
        self._position_rewrites = 0

    @property
    def namespace(self) -> str:
        return self.api.namespace

    async def verdict(self, run: Run, view: GroupView, job: ScanJob, group: str, why: str) -> JobVerdict:
        key = job_key(job, view.digest)
        if (running := self._inflight.get(key)) is not None:
            metrics.DEDUPLICATED.inc()
            await run.claim(why, queued="waiting for the identical scan already in flight")
            shared = await asyncio.shield(running)
            return JobVerdict(shared.verdict, shared.job, shared.pod, "shared")
        future: asyncio.Future[JobVerdict] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future  # before any await: identical requests join this one
        try:
            return await self._lead(future, self._adopt_or_own(run, view, job, group, why, key))
        finally:
            del self._inflight[key]

    async def _adopt_or_own(
        self, run: Run, view: GroupView, job: ScanJob, group: str, why: str, key: str
    ) -> JobVerdict:
        adoptable = await self._adoptable(run, key)
        if adoptable is not None:
            self.slots.adopt(group)
            return await self._follow(run, adoptable, group, "adopted")
        return await self._own(run, view, job, group, why, key)

    @staticmethod
    async def _lead(future: asyncio.Future[JobVerdict], work: Any) -> JobVerdict:
        """Run ``work``, handing its outcome to the identical requests that share it."""
        try:
            result: JobVerdict = await work
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        else:
            future.set_result(result)
            return result

    async def _adoptable(self, run: Run, key: str) -> str | None:
        if run.status.get("phase") not in (Phase.PENDING.value, Phase.RUNNING.value):
            return None  # no scan under way (a new one, or a verdict to supersede)
        name = job_name(key, run.retry + 1)
        found = await self.api.get_job(name)
        if found is None or (found["metadata"].get("labels") or {}).get(LABEL_JOB_KEY) != key[:63]:
            return None  # gone, or for another version of the request: start afresh
        if (found["metadata"].get("annotations") or {}).get(ANNOTATION_ATTEMPT) != str(run.retry + 1):
            return None  # an earlier attempt's Job, already judged: this attempt needs its own
        log.info(printable(f"{run.name}: adopting scan Job {name} left by a previous operator"))
        return name

    async def _own(
        self, run: Run, view: GroupView, job: ScanJob, group: str, why: str, key: str
    ) -> JobVerdict:
        ticket = self.slots.enqueue(group, run.name)
        metrics.QUEUE_DEPTH.set(self.slots.waiting)
        try:
            await self._queue(run, ticket, why)
        except BaseException:
            self.slots.cancel(ticket)  # leaves the queue, or gives a granted slot back
            raise
        finally:
            metrics.QUEUE_DEPTH.set(self.slots.waiting)
        try:
            name = await self._create(run, view, job, key)
        except BaseException:
            self.slots.release(group)
            raise
        return await self._follow(run, name, group, "job")

    async def _queue(self, run: Run, ticket: Ticket, why: str) -> None:
        """Wait for the slot, keeping ``status.queuePosition`` true to its order of
        magnitude: written on entry and again when it has dropped to a tenth of the
        position last written, checked every ``queue_refresh_seconds``. So a scan in a
        queue of n costs at most log10(n) extra writes (2 in a queue of 1,000), and all
        the rewrites together at most :data:`POSITION_REWRITES_PER_GRANT` per slot granted
        (a rewrite over budget waits for a later check)."""
        written: int | None = None
        while True:
            position = None if ticket.granted.done() else self.slots.positions().get(ticket.key)
            if written is None or (
                position is not None and position <= written // 10 and self._rewrite_allowed()
            ):
                if position is None:
                    if written is None:
                        await run.claim(why)  # a slot was free: no queue to show
                    return
                if written is not None:
                    self._position_rewrites += 1
                await run.claim(why, queue_position=position, queued=self._queued_message(position))
                written = position
            # asyncio.wait, not wait_for: a timeout must not cancel the ticket (it would
            # leave the queue and the scan would run without a slot).
            granted, _ = await asyncio.wait({ticket.granted}, timeout=self.queue_refresh_seconds)
            if granted:
                return

    def _rewrite_allowed(self) -> bool:
        return self._position_rewrites < POSITION_REWRITES_PER_GRANT * self.slots.granted

    def _queued_message(self, position: int) -> str:
        return (
            f"position {position} in the scan queue at {timestamp()} ({self.slots.waiting} waiting, "
            f"{self.slots.running} of {self.slots.limit} scan Jobs running)"
        )

    async def _create(self, run: Run, view: GroupView, job: ScanJob, key: str) -> str:
        assert view.source is not None and view.source.spec is not None
        size = await asyncio.to_thread(_local_size, job) if job.ref.scheme == "file" else None
        request = JobRequest(
            scan_name=run.name,
            scan_uid=run.body["metadata"]["uid"],
            key=key,
            attempt=run.retry + 1,
            group_digest=view.digest,
            source=view.source.spec,
            model_bytes=size,
            local_root=self.local_root,
            placement=view.spec.scan_job if view.spec else None,
        )
        body = build_job(request, self.settings, self.namespace)  # may refuse (SecretNotMountable)
        created = await self.api.create_job(body)
        if created is None:
            existing = await self.api.get_job(request.job_name)
            if existing is None or (existing["metadata"].get("labels") or {}).get(LABEL_JOB_KEY) != key[:63]:
                raise ScanRetry(
                    "JobConflict", f"a Job named {request.job_name} exists and is not this scan's"
                )
            log.info(printable(f"{run.name}: scan Job {request.job_name} exists already; adopting it"))
        return request.job_name

    async def _follow(self, run: Run, name: str, group: str, how: str) -> JobVerdict:
        """Wait for the Job's end; one that outlasts ``running_status_after`` is shown
        Running (with ``status.job``) meanwhile."""
        metrics.IN_PROGRESS.inc()
        started = timestamp()
        ending = asyncio.ensure_future(self.tracker.wait(name))
        try:
            ended, _ = await asyncio.wait({ending}, timeout=self.running_status_after)
            if not ended:
                await self._running(run, name, started)
            end = await ending
        finally:
            ending.cancel()  # the handler was cancelled or a write failed: stop waiting
            metrics.IN_PROGRESS.dec()
            self.slots.release(group)
        return conclude(end, name, how)

    async def _running(self, run: Run, name: str, started: str) -> None:
        await run.write(
            {
                "phase": Phase.RUNNING.value,
                "startedAt": started,
                "job": {"namespace": self.namespace, "name": name},
                "queuePosition": None,
                "conditions": set_condition(
                    run.status.get("conditions"),
                    "Ready",
                    ConditionStatus.FALSE,
                    "Scanning",
                    f"scan Job {self.namespace}/{name} (attempt {run.retry + 1})",
                    run.generation,
                ),
            }
        )


def conclude(end: JobEnd, name: str, how: str) -> JobVerdict:
    if end.result is None:
        raise ScanRetry(end.reason, end.message)
    if end.result.failure is not None:
        failure = end.result.failure
        message = f"scan Job {name}: {failure.message}"
        if failure.retry:
            raise ScanRetry(failure.reason, message)
        raise ScanRefused(failure.reason, message)
    assert end.result.verdict is not None
    return JobVerdict(end.result.verdict, name, end.pod, how)


def _local_size(job: ScanJob) -> int | None:
    try:
        return sum(entry[1] for entry in local_signature(job.ref.location))
    except ScanRetry:
        return None
