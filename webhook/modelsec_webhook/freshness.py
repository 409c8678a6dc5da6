"""How old the webhook's view is, and whether it may still decide from it.

The view is as fresh as its stalest part. Each informer is *current* while it follows its
watch after a complete list; when it fails it stops being current at that moment. A
watch stream can also hang silently (a frozen or unreachable API server keeps the TCP
connection open), so a heartbeat asks the API server ``/readyz`` every
``interval`` seconds and the view counts as current only up to its last answer.

- ``age = now - min(last heartbeat answer, each informer's current-until)``.
- While ``age`` exceeds ``--max-staleness`` (default :data:`DEFAULT_MAX_STALENESS`
  seconds), ``/readyz`` answers 503 and every request naming a model is denied ("failing
  closed, retry shortly"); requests without models are still allowed. Within the bound,
  decisions come from the view: a verdict changed during the last ``age`` seconds may not
  be seen yet, which is the documented cost of answering without an API call.
- When the heartbeat gets an answer again after failing, every informer lists afresh at
  once (:meth:`~.informer.Informer.resync`) instead of waiting out its backoff: a restarted
  API server is followed within a heartbeat, and the view is fresh again after the lists.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence

from modelsec_webhook import metrics
from modelsec_webhook.informer import Informer
from modelsec_webhook.kubeapi import KubeAPI

log = logging.getLogger("modelsec.webhook.freshness")

DEFAULT_MAX_STALENESS = 10.0
DEFAULT_HEARTBEAT = 1.0


class Heartbeat:
    """Asks the API server ``/readyz`` every ``interval`` seconds."""

    def __init__(
        self,
        api: KubeAPI,
        informers: Sequence[Informer],
        interval: float = DEFAULT_HEARTBEAT,
        timeout: float = 2.0,
    ) -> None:
        self.api = api
        self.informers = informers
        self.interval = interval
        self.timeout = timeout
        self.last_ok = -math.inf
        self.failing_since: float | None = None

    async def beat(self) -> bool:
        try:
            await self.api.request("GET", "/readyz", timeout=self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "not answering"
            if self.failing_since is None:
                self.failing_since = time.monotonic()
                log.warning(
                    f"the API server does not answer /readyz ({type(exc).__name__}); "
                    "the view will be stale until it does"
                )
            return False
        now = time.monotonic()
        if self.failing_since is not None:
            log.info(
                f"the API server answers again after {now - self.failing_since:.1f}s; "
                "listing every resource afresh"
            )
            for informer in self.informers:
                informer.resync(lost_since=self.last_ok)
            self.failing_since = None
        self.last_ok = now
        return True

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await self.beat()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))


class Freshness:
    """Whether the view may be used, and if not why (for denials and ``/readyz``)."""

    def __init__(
        self,
        informers: Sequence[Informer],
        heartbeat: Heartbeat | None,
        max_staleness: float = DEFAULT_MAX_STALENESS,
    ) -> None:
        self.informers = informers
        self.heartbeat = heartbeat
        self.max_staleness = max_staleness
        self._synced = False  # every informer listed once (it never goes back)

    def publish(self) -> None:
        """Set the age gauge (when metrics are scraped, not on the request path)."""
        age = self.age()
        metrics.VIEW_AGE.set(age if math.isfinite(age) else -1)

    def age(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        until = min((i.current_until(now) for i in self.informers), default=now)
        if self.heartbeat is not None:
            until = min(until, self.heartbeat.last_ok)
        return max(0.0, now - until)

    def problem(self, detail: bool = False) -> str | None:
        """None while the view may be used; else why not (with each resource's error when
        ``detail``: for /readyz and logs, not for users' denials)."""
        if not self._synced:
            waiting = [i.resource.name for i in self.informers if not i.synced.is_set()]
            if waiting:
                return (
                    "the admission webhook is starting and has not synced its view of "
                    f"{', '.join(waiting)} yet"
                )
            self._synced = True
        age = self.age()  # on every request naming a model: a few comparisons
        if age <= self.max_staleness:
            return None
        stale = [
            f"{i.resource.name} ({i.problem})" if detail else i.resource.name
            for i in self.informers
            if not i.current
        ]
        where = f": {'; '.join(stale)}" if stale else ": the API server does not answer"
        shown = f"{age:.0f}s" if math.isfinite(age) else "too"
        return (
            f"the webhook's view of the cluster is {shown} old, more than the "
            f"{self.max_staleness:g}s it decides on{where}"
        )
