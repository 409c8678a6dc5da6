"""A bounded number of scan slots, shared fairly between security groups.

One team importing 5,000 models must not starve another team's single urgent scan. A
plain FIFO semaphore would: the urgent scan waits behind all 5,000. Here a free slot goes
to the waiting group that holds the fewest slots right now (max-min fairness), and within
a group to its oldest waiter; between groups holding equally many, to the group served
least recently (round robin), then to the one whose oldest waiter came first. So with 10 slots, a group with 5,000 queued scans and 10 running
and a group with one queued scan and none running, the next free slot is the second
group's.

The same slots serve the in-process pool (``--max-concurrent-scans``) and scan Jobs
(``--max-concurrent-scan-jobs``, cluster-wide because exactly one operator replica is
active). :meth:`FairSlots.positions` tells each waiter where it stands, for the status.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter, deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(eq=False)
class Ticket:
    """One waiter: which group it counts against and when it arrived."""

    group: str
    key: Hashable
    seq: int
    granted: asyncio.Future[None] = field(repr=False)


class FairSlots:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a slot limit must be at least 1")
        self.limit = limit
        self._held: Counter[str] = Counter()
        self._queues: dict[str, deque[Ticket]] = {}
        self._seq = itertools.count()
        self._grants = itertools.count()
        self._last_grant: dict[str, int] = {}  # group -> number of its latest grant
        self.granted = 0  # slots handed to waiters so far

    @property
    def running(self) -> int:
        return sum(self._held.values())

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def held_by(self, group: str) -> int:
        return self._held[group]

    def enqueue(self, group: str, key: Hashable) -> Ticket:
        """Join the queue; the ticket's ``granted`` future resolves when a slot is ours."""
        ticket = Ticket(group, key, next(self._seq), asyncio.get_running_loop().create_future())
        self._queues.setdefault(group, deque()).append(ticket)
        self._dispatch()
        return ticket

    async def wait(self, ticket: Ticket) -> None:
        """Wait for ``ticket``'s slot. Cancelled: leaves the queue, or gives the slot back
        when it had been granted already (never leaks one)."""
        try:
            await asyncio.shield(ticket.granted)
        except asyncio.CancelledError:
            self.cancel(ticket)
            raise

    def cancel(self, ticket: Ticket) -> None:
        if ticket.granted.done():
            if not ticket.granted.cancelled():
                self.release(ticket.group)
            return
        ticket.granted.cancel()
        queue = self._queues.get(ticket.group)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            if not queue:
                del self._queues[ticket.group]
        self._dispatch()

    def adopt(self, group: str) -> None:
        """Count a scan that already runs (a Job found after a restart) without queueing:
        it holds a slot even if that takes the total above the limit for a while, so new
        scans wait until the adopted ones finish."""
        self._held[group] += 1

    def release(self, group: str) -> None:
        if self._held[group] <= 0:
            raise RuntimeError(f"release without a slot held by group {group!r}")
        self._held[group] -= 1
        if not self._held[group]:
            del self._held[group]
        self._dispatch()

    @asynccontextmanager
    async def slot(self, group: str, key: Hashable = None) -> AsyncIterator[None]:
        ticket = self.enqueue(group, key)
        await self.wait(ticket)
        try:
            yield
        finally:
            self.release(group)

    def _rank(self, group: str, held: Counter[str], last: dict[str, int], head: int) -> tuple[int, int, int]:
        return (held[group], last.get(group, -1), head)

    def _dispatch(self) -> None:
        while self._queues and self.running < self.limit:
            group = min(
                self._queues,
                key=lambda g: self._rank(g, self._held, self._last_grant, self._queues[g][0].seq),
            )
            queue = self._queues[group]
            ticket = queue.popleft()
            if not queue:
                del self._queues[group]
            self._held[group] += 1
            self._last_grant[group] = next(self._grants)
            self.granted += 1
            ticket.granted.set_result(None)

    def positions(self) -> dict[Hashable, int]:
        """1-based order in which the waiting tickets would get a slot if nothing else
        arrived and every slot turned over in turn: the grant rule applied to the queue.
        O(waiting x log groups)."""
        held = Counter(self._held)
        last = dict(self._last_grant)
        grants = itertools.count(max(last.values(), default=0) + 1)
        heap = [(*self._rank(g, held, last, q[0].seq), g, 0) for g, q in self._queues.items()]
        heapq.heapify(heap)
        out: dict[Hashable, int] = {}
        while heap:
            *_, group, index = heapq.heappop(heap)
            queue = self._queues[group]
            out[queue[index].key] = len(out) + 1
            held[group] += 1
            last[group] = next(grants)
            if index + 1 < len(queue):
                heapq.heappush(heap, (*self._rank(group, held, last, queue[index + 1].seq), group, index + 1))
        return out
