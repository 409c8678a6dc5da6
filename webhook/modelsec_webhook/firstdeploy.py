"""The first deploy of a model: wait for its scan rather than deny at once.

A workload naming a model nobody scanned yet used to be denied with "scan pending, retry
shortly", so the first ``kubectl apply`` of every new model failed. Now such a request
may wait for the verdict, then be answered with it (admitted, or denied naming the rule
and file), all within one admission call:

- **Budget.** The API server tells each call its timeout (``?timeout=10s`` on the URL,
  the configuration's ``timeoutSeconds``). A request waits at most that, less
  ``--first-deploy-margin`` (the answer must still arrive in time) and less the time
  already spent. Without a timeout on the URL it does not wait.
- **Only when it can pay off.** It waits only if every scan it needs is expected to finish
  within the budget: estimated from the scans of the same SecurityGroup's models (the
  90th percentile of their recent scan times), the queue position the operator publishes,
  and how long the scan has been running (one running three times longer than usual is a
  large model: no wait). With fewer than three finished scans to go by it waits, bounded
  by the budget.
- **Bounded.** At most ``--first-deploy-max-waiting`` requests wait at once; beyond that
  the answer is the immediate "scan pending" denial. ``modelsec_webhook_first_deploy_waiting``
  (gauge) and ``modelsec_webhook_first_deploy_waits_total{result}`` (admitted, denied,
  timeout, capped, not-expected, no-budget) show it.

Waiting costs no CPU: the request sleeps until the view changes (an informer event),
then is answered again from the view, like any other. Requests for models that already
have verdicts never come here.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from modelsec.k8s.scan import Phase
from modelsec_webhook import metrics
from modelsec_webhook.decision import Judgement
from modelsec_webhook.view import ScanRecord, View

MIN_SAMPLES = 3
RECENT = 50  # finished scans of a group the estimate looks at
OVERRUN = 3.0  # running this many typical scan times: a large model, not worth waiting for
_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$"
)


class Waitable(Protocol):
    """An answer (validating or mutating) that may be waiting for verdicts."""

    @property
    def waiting(self) -> Sequence[Judgement]: ...

    @property
    def allowed(self) -> bool: ...


A = TypeVar("A", bound=Waitable)


@dataclass(frozen=True)
class WaitSettings:
    """Whether a first deploy may wait for its verdict, the margin kept, how many may wait at once."""

    enabled: bool = True
    margin_seconds: float = 2.0  # left for answering and the network
    max_waiting: int = 32


def request_timeout(value: str | None) -> float | None:
    """Seconds of a Go duration the API server puts on the URL (``10s``, ``1m30s``)."""
    if not value:
        return None
    match = _DURATION.match(value.strip())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _time(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").timestamp()
    except ValueError:
        return None


class Changes:
    """Wakes every waiter when the view changes (informer events call :meth:`bump`)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def bump(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def next(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass


class Estimates:
    """Typical scan times per SecurityGroup, from the ModelScans in the view; recomputed
    when the view changed (only requests that may wait ask)."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._generation = -1
        self._typical: dict[str, float | None] = {}

    def typical(self, group: str) -> float | None:
        if self._generation != self.view.generation:
            self._typical = {}
            self._generation = self.view.generation
        if group not in self._typical:
            self._typical[group] = self._compute(group)
        return self._typical[group]

    def _compute(self, group: str) -> float | None:
        finished: list[tuple[str, float]] = []
        for records in self.view.scans.values():
            for record in records.values():
                if record.group != group or record.phase != Phase.COMPLETED:
                    continue
                began, ended = _time(record.started_at), _time(record.completed_at)
                if began is not None and ended is not None and ended >= began:
                    finished.append((record.completed_at, ended - began))
        if len(finished) < MIN_SAMPLES:
            return None
        durations = sorted(d for _, d in sorted(finished)[-RECENT:])
        return durations[min(len(durations) - 1, int(0.9 * len(durations)))]

    def expected(self, judgement: Judgement, record: ScanRecord | None, now: float) -> float | None:
        """Seconds until ``judgement`` may have its verdict; None: not foreseeable (too
        long, or stuck)."""
        typical = self.typical(judgement.group)
        if record is None or not record.phase or record.phase == "Pending":
            # Not created yet, or queued: the queue ahead, then the scan itself.
            ahead = record.queue_position if record is not None and record.queue_position else 1
            return 0.0 if typical is None else typical * ahead
        if record.phase == "Running":
            began = _time(record.started_at)
            if typical is None or began is None:
                return 0.0
            running = now - began
            return None if running > OVERRUN * typical else max(0.0, typical - running)
        return 0.0  # a verdict is there, or is being re-evaluated against a changed group


class FirstDeploy:
    def __init__(self, view: View, settings: WaitSettings = WaitSettings()) -> None:
        self.view = view
        self.settings = settings
        self.changes = Changes()
        self.estimates = Estimates(view)
        self.waiting = 0
        view.on_change.append(self.changes.bump)

    def _record(self, judgement: Judgement) -> ScanRecord | None:
        key = self.view.scan_keys.get(judgement.scan or "")
        return self.view.scan(key) if key else None

    def _foreseeable(self, judgements: Sequence[Judgement], remaining: float) -> bool:
        now = time.time()
        for judgement in judgements:
            expected = self.estimates.expected(judgement, self._record(judgement), now)
            if expected is None or expected > remaining:
                return False
        return True

    async def wait(self, first: A, answer: Callable[[], A], timeout: float | None, started: float) -> A:
        """``first`` if it need not or cannot wait; else the answer once no verdict is
        missing any more, or when the budget is spent."""
        if not self.settings.enabled or not first.waiting:
            return first
        if timeout is None:
            metrics.FIRST_DEPLOY.labels("no-budget").inc()
            return first
        deadline = started + timeout - self.settings.margin_seconds
        if self.waiting >= self.settings.max_waiting:
            metrics.FIRST_DEPLOY.labels("capped").inc()
            return first
        if not self._foreseeable(first.waiting, deadline - time.monotonic()):
            metrics.FIRST_DEPLOY.labels("not-expected").inc()
            return first
        self.waiting += 1
        metrics.FIRST_DEPLOY_WAITING.set(self.waiting)
        current = first
        try:
            while current.waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    metrics.FIRST_DEPLOY.labels("timeout").inc()
                    return current
                await self.changes.next(remaining)
                current = answer()  # from the view, as any review is answered
            metrics.FIRST_DEPLOY.labels("admitted" if current.allowed else "denied").inc()
            return current
        finally:
            self.waiting -= 1
            metrics.FIRST_DEPLOY_WAITING.set(self.waiting)
