"""Total deadlines for remote scans: one per request, one per scan.

Socket timeouts bound the wait *between* bytes: a server that sends one byte per second
never trips them, and a scan (with the operator worker running it) would hang forever. A
:class:`Deadline` bounds the totals instead: every request must be answered in full within
``requestDeadline`` seconds, and the whole scan of a model (listings, metadata, range reads,
whole-file downloads, retries and their backoff) must end within ``scanDeadline``.

The limit of the request in progress lives in a context variable, set around each attempt
by :func:`modelsec.sources.retry.call`. The transport (:mod:`modelsec.sources.http`) reads it
before every socket operation and shortens that operation's timeout to what is left, so a
trickling server is cut off at the deadline whatever phase it is in (connecting, headers,
body). Outside any request (a bug) the scan's limit still applies.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from modelsec.sources import retry
from modelsec.sources.errors import DEADLINE, NETWORK, SourceFailure


@dataclass(frozen=True)
class Limit:
    """One deadline: when it ends, and the setting that made it (for messages)."""

    ends: float  # on the deadline's clock
    seconds: float
    setting: str  # "requestDeadline" | "scanDeadline"

    @property
    def is_scan(self) -> bool:
        return self.setting == "scanDeadline"

    def describe(self) -> str:
        if self.is_scan:
            return f"the scan did not finish within {self.seconds:g}s (scanDeadline)"
        return f"no complete answer within {self.seconds:g}s (requestDeadline)"


_ACTIVE: ContextVar[Limit | None] = ContextVar("modelsec_request_limit", default=None)


class DeadlineExceeded(Exception):
    """Raised by the transport when a socket operation would pass the active limit."""

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit.describe())
        self.limit = limit

    def classified(self, what: str) -> Exception:
        """A request that ran out of time may be retried (the scan's deadline still bounds
        the retries); a scan that ran out of time is over."""
        if self.limit.is_scan:
            return SourceFailure(DEADLINE, f"{what}: {self.limit.describe()}; not inspected")
        return retry.Transient(NETWORK, f"{what}: {self.limit.describe()}")


class Deadline:
    """The deadlines of one scan. Not shared between scans."""

    def __init__(
        self, scan_seconds: float, request_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.scan = Limit(clock() + scan_seconds, scan_seconds, "scanDeadline")
        self.request_seconds = request_seconds

    def remaining(self) -> float:
        return self.scan.ends - self._clock()

    def check(self, what: str) -> None:
        """:class:`SourceFailure` (MS-SRC-015) once the scan's deadline has passed."""
        if self.remaining() <= 0:
            raise DeadlineExceeded(self.scan).classified(what)

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """The body runs as one request: it must end within ``requestDeadline`` (and
        within the scan's deadline)."""
        ends = self._clock() + self.request_seconds
        limit = Limit(ends, self.request_seconds, "requestDeadline") if ends < self.scan.ends else self.scan
        token = _ACTIVE.set(limit)
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    @contextlib.contextmanager
    def download(self) -> Iterator[None]:
        """A whole-file download is one long request: only the scan's deadline bounds it
        (its length grows with the file; ``maxDownloadBytes`` bounds the size)."""
        token = _ACTIVE.set(self.scan)
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    def sleep(self, seconds: float, what: str, sleep: Callable[[float], None] = time.sleep) -> None:
        """Back off before a retry, unless the wait itself would pass the scan's deadline."""
        if seconds >= self.remaining():
            raise SourceFailure(
                DEADLINE,
                f"{what} (not retried: waiting {seconds:g}s would pass the scan's deadline of "
                f"{self.scan.seconds:g}s (scanDeadline)); not inspected",
            )
        sleep(seconds)

    def socket_timeout(self, timeout: float | None) -> tuple[float, Limit | None]:
        """The timeout for one socket operation: ``timeout``, or what is left of the active
        limit if that is shorter (then also the limit, so that a timeout can be reported
        as the deadline it is). :class:`DeadlineExceeded` if nothing is left."""
        limit = _ACTIVE.get() or self.scan
        left = limit.ends - self._clock()
        if left <= 0:
            raise DeadlineExceeded(limit)
        if timeout is None or left < timeout:
            return left, limit
        return timeout, None
