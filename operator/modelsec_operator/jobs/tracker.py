"""What became of each scan Job: one polling loop for all of them.

Every ``poll_seconds`` while any scan waits, three LISTs in the operator's namespace (the
Jobs waited on, their Pods, their ScanResults, by label selectors naming those Jobs)
decide, for each Job waited on, whether it ended:

- a ScanResult written by a Pod of this Job (name, UID and owner checked) -> the result;
- the Job failed: evicted Pod (``PodEvicted``), ``activeDeadlineSeconds`` passed
  (``JobDeadlineExceeded``), its Pod failed (``JobFailed``) -> a retry;
- the Job completed but no result came within two polls -> ``NoResult`` (a retry);
- its Pod not scheduled after ``schedule_timeout`` -> the Job is deleted, ``Unschedulable``;
- the Job is gone (deleted by someone, or its TTL ran out while nobody watched) ->
  ``JobDeleted`` (a retry creates it again).

Polling, rather than watches, keeps this restart-proof and simple: the state is always
read from the API server, and the cost is three reads per interval whatever the number of
scans, each returning only the (at most --max-concurrent-scan-jobs) Jobs running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelsec.k8s.result import ScanResultSpec
from modelsec.safe_text import printable
from modelsec_operator.jobs.api import JobsApi

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobEnd:
    """How a Job ended: a result, or a reason to try again."""

    result: ScanResultSpec | None = None
    reason: str = ""
    message: str = ""
    pod: str = ""


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") == type_
            and condition.get("status") == "True"
        ):
            return condition
    return None


def _owned_by(pod: dict[str, Any], job: dict[str, Any]) -> bool:
    uid = job["metadata"]["uid"]
    return any(
        ref.get("uid") == uid and ref.get("kind") == "Job"
        for ref in pod["metadata"].get("ownerReferences") or []
    )


@dataclass
class _Waiting:
    """One wait for a Job to end: the future to resolve, and what earlier polls saw of the Job."""

    future: asyncio.Future[JobEnd]
    unscheduled_since: float | None = None
    complete_polls: int = 0
    after_poll: int = 0  # judged only on snapshots taken after it began waiting


class JobTracker:
    def __init__(
        self,
        api: JobsApi,
        poll_seconds: float,
        schedule_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.poll_seconds = poll_seconds
        self.schedule_timeout = schedule_timeout
        self.clock = clock
        self._waiting: dict[str, list[_Waiting]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.polls = 0
        self.polls_started = 0

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait(self, job_name: str) -> JobEnd:
        # A snapshot already under way may predate the Job's creation: not for this waiter.
        waiting = _Waiting(asyncio.get_running_loop().create_future(), after_poll=self.polls_started)
        self._waiting.setdefault(job_name, []).append(waiting)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="scan-job-tracker")
        self._wake.set()
        try:
            return await asyncio.shield(waiting.future)
        finally:
            entries = self._waiting.get(job_name, [])
            if waiting in entries:
                entries.remove(waiting)
            if not entries:
                self._waiting.pop(job_name, None)

    async def _loop(self) -> None:
        while self._waiting:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next poll tries again; waiters keep waiting
                log.warning(printable(f"scan Job poll failed: {type(exc).__name__}: {exc}"))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass
            if self._wake.is_set():
                await asyncio.sleep(min(0.2, self.poll_seconds))  # let a burst of new waiters gather

    async def poll(self) -> None:
        self.polls_started += 1
        this_poll = self.polls_started
        jobs, pods, results = await self.api.snapshot(list(self._waiting))
        self.polls += 1
        by_name = {j["metadata"]["name"]: j for j in jobs}
        results_by_pod = {r["metadata"]["name"]: r for r in results}
        now = self.clock()
        for name, entries in list(self._waiting.items()):
            job = by_name.get(name)
            job_pods = [p for p in pods if job is not None and _owned_by(p, job)]
            for waiting in list(entries):
                if waiting.after_poll >= this_poll:
                    continue
                end = self._judge(name, job, job_pods, results_by_pod, waiting, now)
                if end is not None and not waiting.future.done():
                    if end.reason == "Unschedulable":
                        await self.api.delete_job(name)
                    waiting.future.set_result(end)

    def _judge(
        self,
        name: str,
        job: dict[str, Any] | None,
        pods: list[dict[str, Any]],
        results: dict[str, dict[str, Any]],
        waiting: _Waiting,
        now: float,
    ) -> JobEnd | None:
        if job is None:
            return JobEnd(reason="JobDeleted", message=f"scan Job {name} was deleted before it reported")
        for pod in pods:
            found = results.get(pod["metadata"]["name"])
            if found is None:
                continue
            spec = found.get("spec") or {}
            if spec.get("podUID") != pod["metadata"]["uid"] or spec.get("job") != name:
                log.warning(
                    printable(
                        f"ignoring ScanResult {pod['metadata']['name']}: it does not match "
                        f"its Pod's UID or Job {name}"
                    )
                )
                continue
            try:
                return JobEnd(result=ScanResultSpec.model_validate(spec), pod=pod["metadata"]["name"])
            except ValidationError as exc:
                return JobEnd(
                    reason="InvalidResult",
                    pod=pod["metadata"]["name"],
                    message=f"the scan Pod's result is malformed: {str(exc)[:300]}",
                )
        for pod in pods:
            status = pod.get("status") or {}
            disruption = _condition(pod, "DisruptionTarget") or {}
            if status.get("reason") == "Evicted" or disruption:
                detail = (
                    status.get("message")
                    or disruption.get("message")
                    or status.get("reason")
                    or disruption.get("reason")
                    or "no detail"
                )
                return JobEnd(
                    reason="PodEvicted",
                    pod=pod["metadata"]["name"],
                    message=f"scan Pod {pod['metadata']['name']} was evicted or disrupted: {detail}",
                )
        failed = _condition(job, "Failed")
        if failed is not None:
            why = failed.get("reason") or "Failed"
            reason = "JobDeadlineExceeded" if why == "DeadlineExceeded" else "JobFailed"
            return JobEnd(
                reason=reason,
                message=f"scan Job {name} failed ({why}): {failed.get('message') or ''}".strip(),
            )
        if _condition(job, "Complete") is not None:
            waiting.complete_polls += 1
            if waiting.complete_polls >= 2:
                return JobEnd(reason="NoResult", message=f"scan Job {name} completed without a result")
            return None
        unscheduled = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase", "Pending") == "Pending"
            and not _condition(p, "PodScheduled")
        ]
        if pods and len(unscheduled) == len(pods) or (not pods and job is not None):
            if waiting.unscheduled_since is None:
                waiting.unscheduled_since = now
            if now - waiting.unscheduled_since >= self.schedule_timeout:
                return JobEnd(
                    reason="Unschedulable",
                    message=f"scan Job {name} had no Pod scheduled for {self.schedule_timeout:.0f}s "
                    "(node selector, tolerations, resources or quota?)",
                )
        else:
            waiting.unscheduled_since = None
        return None
