"""List + watch of one resource, feeding a :class:`Sink`, as client-go's reflector does.

- List (paged) and hand the whole set to the sink, then watch from the list's
  ``resourceVersion`` with bookmarks, following every event's resource version.
- A watch that ends normally (``timeoutSeconds``) resumes from the last version seen; an
  HTTP error is retried with backoff from the same version; ``410 Gone`` (that version
  was compacted away) and a lost connection mean the view may have missed events, so it
  lists again.
- :meth:`Informer.resync` drops whatever it is doing (a watch that may hang on a dead
  connection, a backoff sleep) and lists afresh at once: the API server heartbeat
  (:mod:`.freshness`) calls it when the server answers again after an outage, so the view
  does not wait out a backoff while the server is back.
- ``synced`` is set after the first complete list; :meth:`current_since` tells how far
  the view of this resource can be trusted (see :mod:`.freshness`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp

from modelsec.safe_text import printable
from modelsec_webhook import metrics
from modelsec_webhook.kubeapi import ApiError, KubeAPI

log = logging.getLogger("modelsec.webhook.informer")
T = TypeVar("T")


class Sink(Protocol):
    def replace(self, items: list[dict[str, Any]]) -> None: ...
    def upsert(self, obj: dict[str, Any]) -> None: ...
    def delete(self, obj: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Resource:
    """A resource to list and watch: its name for logs and metrics, and its collection path."""

    name: str  # for logs and metrics: "modelscans"
    path: str  # collection path: "/apis/modelsec.io/v1alpha1/modelscans"


class Gone(Exception):
    """The resource version we watch from is too old: list again."""


class Resync(Exception):
    """Asked to list again now (the API server is back after an outage)."""


class Informer:
    def __init__(
        self,
        api: KubeAPI,
        resource: Resource,
        sink: Sink,
        *,
        page_size: int = 500,
        watch_seconds: int = 300,
        max_backoff: float = 30.0,
    ) -> None:
        self.api = api
        self.resource = resource
        self.sink = sink
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.max_backoff = max_backoff
        self.synced = asyncio.Event()
        self.resource_version: str | None = None
        self.current = False  # listed, and following the watch without a failure since
        self.lost_at = -math.inf  # when it last stopped being current (monotonic)
        self.problem = "not listed yet"
        self._wake = asyncio.Event()

    def current_until(self, now: float) -> float:
        """Up to when this resource's view is known to be complete: now while current."""
        return now if self.current else self.lost_at

    def resync(self, lost_since: float | None = None) -> None:
        """List again now; until then the view counts as current only up to ``lost_since``
        (when the outage began), whatever the watch stream seemed to say."""
        if self.current:
            self.current = False
            self.lost_at = lost_since if lost_since is not None else time.monotonic()
            self.problem = "listing again after an API server outage"
        self.resource_version = None
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self._interruptible(self._cycle())
                failures = 0
            except Resync:
                metrics.RELISTS.labels(self.resource.name).inc()
                log.info(f"{self.resource.name}: the API server answers again; listing afresh")
            except Gone:
                metrics.RELISTS.labels(self.resource.name).inc()
                log.info(f"{self.resource.name}: resource version expired (410 Gone); listing again")
                self._lost("missed events (410 Gone); listing again")
                self.resource_version = None
            except asyncio.CancelledError:
                raise
            except (TimeoutError, ApiError, aiohttp.ClientError, ValueError, OSError) as exc:
                failures += 1
                self._lost(f"{type(exc).__name__}: {exc}")
                if not isinstance(exc, ApiError):
                    self.resource_version = None  # the connection was lost: events may be too
                metrics.WATCH_ERRORS.labels(self.resource.name).inc()
                delay = self.backoff(failures)
                log.warning(
                    f"{self.resource.name}: {printable(self.problem[:300])}; retrying in {delay:.1f}s "
                    "(at once when the API server answers again)"
                )
                await self._sleep(delay)

    def backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row: exponential, jittered."""
        return min(self.max_backoff, 0.5 * 2.0 ** min(failures, 8)) * random.uniform(0.5, 1.0)

    def _lost(self, why: str) -> None:
        if self.current:
            self.lost_at = time.monotonic()
        self.current = False
        self.problem = why

    async def _sleep(self, delay: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=delay)
        except TimeoutError:
            pass

    async def _interruptible(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({task, waker}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            waker.cancel()
            raise
        if task in done:
            waker.cancel()
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Resync()

    async def _cycle(self) -> None:
        if self.resource_version is None:
            await self._list()
        await self._watch()

    async def _list(self) -> None:
        items: list[dict[str, Any]] = []
        params = {"limit": str(self.page_size)}
        while True:
            page = await self.api.request("GET", self.resource.path, params=params)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            params = {"limit": str(self.page_size), "continue": meta["continue"]}
        self.sink.replace(items)
        self.resource_version = str(meta.get("resourceVersion") or "")
        self.current = True
        self.problem = ""
        if not self.synced.is_set():
            log.info(f"{self.resource.name}: synced {len(items)} object(s)")
        self.synced.set()

    async def _watch(self) -> None:
        params = {
            "resourceVersion": self.resource_version or "",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        try:
            async for event in self.api.watch(self.resource.path, params, self.watch_seconds):
                self._handle(event)
        except ApiError as exc:
            if exc.status == 410:
                raise Gone() from None
            raise

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ApiError(
                int(obj.get("code") or 500),
                str(obj.get("reason") or "WatchError"),
                str(obj.get("message") or obj),
            )
        version = (obj.get("metadata") or {}).get("resourceVersion")
        try:
            if kind in ("ADDED", "MODIFIED"):
                self.sink.upsert(obj)
            elif kind == "DELETED":
                self.sink.delete(obj)
            elif kind != "BOOKMARK":
                log.debug(f"{self.resource.name}: ignoring watch event {printable(str(kind))}")
        except Exception as exc:  # one odd object must not stop the view from following the rest
            metrics.WATCH_ERRORS.labels(self.resource.name).inc()
            name = (obj.get("metadata") or {}).get("name")
            log.error(
                f"{self.resource.name}: could not apply {printable(str(kind))} of "
                f"{printable(repr(name)[:200])}: {type(exc).__name__}: {printable(str(exc)[:200])}"
            )
        if version:
            self.resource_version = str(version)
        metrics.WATCH_EVENTS.labels(self.resource.name, str(kind)).inc()
