"""Bounded, deduplicated scanning off the event loop.

- Concurrency: at most ``max_concurrent`` engine runs, each in a worker thread; callers
  beyond that wait, fairly between security groups (:mod:`..fairqueue`; the queue depth
  metric counts them).
- Deduplication: callers asking for the same :meth:`ScanJob.base_key` while a scan of it
  is in flight share that scan's result, so a model asked for by many ModelScans (one
  per group, or a burst of Pods) is read once.
- Report cache: finished reports are kept per content key (LRU, bounded) so that
  re-evaluating a model against a changed group, or judging it by another group, costs no
  re-read while the content is provably the same (immutable remote revision, or an
  unchanged local stat signature). ``fresh=True`` (periodic rescans) bypasses it.
- ``on_start`` (the Running status write) runs only once an engine run has lasted
  ``running_after`` seconds: a small model goes from Pending to its verdict in two writes
  instead of three (and without a ScanStarted Event), which is what lets the operator
  keep up with thousands of small models; a long scan still shows Running.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

from modelsec.engine import Engine
from modelsec.sources import ScannedModel
from modelsec_operator import metrics
from modelsec_operator.fairqueue import FairSlots
from modelsec_operator.scanning import ScanJob, check_exists, local_signature, run_scan

SCAN_THREAD_PREFIX = "modelsec-scan"


class ReportCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, ScannedModel] = OrderedDict()

    def get(self, key: Hashable) -> ScannedModel | None:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def put(self, key: Hashable, value: ScannedModel) -> None:
        if self.capacity <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class ScanPool:
    def __init__(
        self, max_concurrent: int, cache_size: int, delay_seconds: float = 0.0, running_after: float = 0.0
    ) -> None:
        self.max_concurrent = max_concurrent
        self.running_after = running_after
        self.delay_seconds = delay_seconds
        self.engine = Engine()
        self.cache = ReportCache(cache_size)
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix=SCAN_THREAD_PREFIX)
        self.slots = FairSlots(max_concurrent)
        self._inflight: dict[Hashable, asyncio.Future[ScannedModel]] = {}

    def shutdown(self) -> None:
        # Threads cannot be interrupted; they finish their file and their result is dropped.
        # The ModelScan stays Running and is redone on the next start (never lost).
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def waiting(self) -> int:
        return self.slots.waiting

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def content_key(self, job: ScanJob) -> Hashable | None:
        if not job.cacheable:
            return None
        if job.ref.scheme == "file":
            await asyncio.to_thread(check_exists, job)
            signature = await asyncio.to_thread(local_signature, job.ref.location)
            return (*job.base_key(), signature)
        return job.base_key()

    async def scanned(
        self,
        job: ScanJob,
        *,
        fresh: bool,
        on_start: Callable[[], Awaitable[None]] | None = None,
        group: str = "",
    ) -> tuple[ScannedModel, str]:
        """The report for ``job`` and how it was obtained: "cache", "shared" or "scanned".
        ``group`` is whose share of the slots a fresh engine run counts against."""
        key = await self.content_key(job)
        if key is not None and not fresh and (hit := self.cache.get(key)) is not None:
            metrics.CACHE_HITS.inc()
            return hit, "cache"
        base = job.base_key()
        if (running := self._inflight.get(base)) is not None:
            metrics.DEDUPLICATED.inc()
            return await asyncio.shield(running), "shared"
        future: asyncio.Future[ScannedModel] = asyncio.get_running_loop().create_future()
        self._inflight[base] = future
        try:
            result = await self._run(job, on_start, group)
        except asyncio.CancelledError:
            future.cancel()  # sharers see the cancellation and retry on their own
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody shared
            raise
        else:
            future.set_result(result)
            if key is not None:
                # Keyed by the signature taken *before* reading: if the files changed during
                # the scan, the next lookup computes another key and scans again.
                self.cache.put(key, result)
            return result, "scanned"
        finally:
            del self._inflight[base]

    async def _run(
        self, job: ScanJob, on_start: Callable[[], Awaitable[None]] | None, group: str
    ) -> ScannedModel:
        ticket = self.slots.enqueue(group, job.base_key())
        metrics.QUEUE_DEPTH.set(self.slots.waiting)
        try:
            await self.slots.wait(ticket)
        finally:
            metrics.QUEUE_DEPTH.set(self.slots.waiting)
        announce = _Deferred(on_start, self.running_after)
        try:
            metrics.IN_PROGRESS.inc()
            began = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(
                    self._executor, run_scan, job, self.engine, self.delay_seconds
                )
            finally:
                metrics.IN_PROGRESS.dec()
                await announce.settle()
            metrics.SCAN_SECONDS.observe(time.perf_counter() - began)
            metrics.BYTES_SCANNED.inc(result.report.bytes_scanned)
            return result
        finally:
            self.slots.release(group)


class _Deferred:
    """Call ``action`` after ``delay`` seconds unless settled first. Settling waits for an
    action already under way (a status write must never land after the verdict's)."""

    def __init__(self, action: Callable[[], Awaitable[None]] | None, delay: float) -> None:
        self._started = False
        self._task = asyncio.create_task(self._later(action, delay)) if action is not None else None

    async def _later(self, action: Callable[[], Awaitable[None]], delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        self._started = True
        await action()

    async def settle(self) -> None:
        if self._task is None:
            return
        if self._started or self._task.done():
            await self._task  # its errors (scan deleted, API down) are the caller's
        else:
            self._task.cancel()
