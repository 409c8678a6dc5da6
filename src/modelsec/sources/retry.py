"""Bounded retries with exponential backoff for remote calls.

Only failures that may go away are retried (throttling, 5xx, timeouts, refused
connections); each source classifies its client's errors into :class:`Transient` or a final
:class:`~modelsec.sources.errors.SourceFailure`. The number of attempts and the longest wait
are bounded, so a scan against a source that keeps refusing ends with an ERROR in bounded
time rather than hanging. With a :class:`~modelsec.sources.deadline.Deadline`, each attempt
is one request with its own total deadline, and no attempt starts (nor backoff sleeps) past
the scan's deadline.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from modelsec.safe_text import printable
from modelsec.sources.errors import SourceFailure

if TYPE_CHECKING:
    from modelsec.sources.deadline import Deadline

log = logging.getLogger(__name__)
T = TypeVar("T")


class Transient(Exception):
    """A failure worth retrying. ``code``/``message`` are what the scan reports if the
    retries run out; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to retry a remote call, and the scan's deadline, if any."""

    max_retries: int = 4
    base_seconds: float = 0.5
    max_seconds: float = 8.0
    deadline: Deadline | None = None

    def wait(self, attempt: int, hint: float | None) -> float:
        """Seconds before retry number ``attempt`` (0-based); a server hint wins but is
        capped, so a hostile Retry-After cannot stall the scan."""
        backoff = self.base_seconds * (2**attempt)
        chosen = hint if hint is not None and hint >= 0 else backoff
        return min(self.max_seconds, chosen)

    def request(self) -> AbstractContextManager[None]:
        """The context one attempt runs in: its request deadline, if there is one."""
        return self.deadline.request() if self.deadline is not None else contextlib.nullcontext()

    def download(self) -> AbstractContextManager[None]:
        """The context a whole-file download runs in: the scan's deadline only."""
        return self.deadline.download() if self.deadline is not None else contextlib.nullcontext()


def call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "request",
) -> T:
    """``fn()``, retried on :class:`Transient`; a :class:`SourceFailure` once the retries
    are spent (saying how many attempts were made) or the scan's deadline has passed."""
    attempt = 0
    while True:
        if policy.deadline is not None:
            policy.deadline.check(what)
        try:
            with policy.request():
                return fn()
        except Transient as exc:
            if attempt >= policy.max_retries:
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                raise SourceFailure(exc.code, f"{exc.message} (gave up after {tries})") from None
            delay = policy.wait(attempt, exc.retry_after)
            log.info("retrying in %.2fs after: %s", delay, printable(exc.message))
            if policy.deadline is not None:
                policy.deadline.sleep(delay, exc.message, sleep)
            else:
                sleep(delay)
            attempt += 1
