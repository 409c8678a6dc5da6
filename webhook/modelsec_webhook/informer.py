"""List + watch of one resource, feeding a :class:`Sink`, as client-go's reflector does.

- List (paged) and hand the whole set to the sink, then watch from the list's
  ``resourceVersion`` with bookmarks, following every event's resource version.
- A watch that ends (``timeoutSeconds``, a dropped connection) resumes from the last
  version seen; ``410 Gone`` (that version was compacted away) means the view may have
  missed events, so it lists again.
- ``synced`` is set after the first complete list; readiness waits on it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from modelsec_webhook import metrics
from modelsec_webhook.kubeapi import ApiError, KubeAPI

log = logging.getLogger("modelsec.webhook.informer")


class Sink(Protocol):
    def replace(self, items: list[dict[str, Any]]) -> None: ...
    def upsert(self, obj: dict[str, Any]) -> None: ...
    def delete(self, obj: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Resource:
    name: str  # for logs and metrics: "modelscans"
    path: str  # collection path: "/apis/modelsec.io/v1alpha1/modelscans"


class Gone(Exception):
    """The resource version we watch from is too old: list again."""


class Informer:
    def __init__(self, api: KubeAPI, resource: Resource, sink: Sink, *, page_size: int = 500,
                 watch_seconds: int = 300, max_backoff: float = 30.0) -> None:
        self.api = api
        self.resource = resource
        self.sink = sink
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.max_backoff = max_backoff
        self.synced = asyncio.Event()
        self.resource_version: str | None = None

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                    failures = 0
                await self._watch()
                failures = 0
            except Gone:
                metrics.RELISTS.labels(self.resource.name).inc()
                log.info(f"{self.resource.name}: resource version expired (410 Gone); listing again")
                self.resource_version = None
            except asyncio.CancelledError:
                raise
            except (ApiError, aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError) as exc:
                failures += 1
                metrics.WATCH_ERRORS.labels(self.resource.name).inc()
                delay = min(self.max_backoff, 0.5 * 2 ** min(failures, 8)) * random.uniform(0.5, 1.0)
                log.warning(f"{self.resource.name}: {type(exc).__name__}: {exc}; retrying in {delay:.1f}s")
                await asyncio.sleep(delay)

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
            raise ApiError(int(obj.get("code") or 500), str(obj.get("reason") or "WatchError"),
                           str(obj.get("message") or obj))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        try:
            if kind in ("ADDED", "MODIFIED"):
                self.sink.upsert(obj)
            elif kind == "DELETED":
                self.sink.delete(obj)
            elif kind != "BOOKMARK":
                log.debug(f"{self.resource.name}: ignoring watch event {kind}")
        except Exception:  # one odd object must not stop the view from following the rest
            metrics.WATCH_ERRORS.labels(self.resource.name).inc()
            name = (obj.get("metadata") or {}).get("name")
            log.exception(f"{self.resource.name}: could not apply {kind} of {name!r}")
        if version:
            self.resource_version = str(version)
        metrics.WATCH_EVENTS.labels(self.resource.name, str(kind)).inc()
