"""What an HTTP status means for a scan: one table for every source.

As kopf's ``_cogs/clients/errors.py`` maps a status to an error class, this maps it to the
stable MS-SRC code the scan reports and to whether another attempt may succeed. The
sources keep the words (what was being done, against which endpoint); the meaning of a
status is decided here once, so the Hugging Face and S3 sources cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from modelsec.sources import retry
from modelsec.sources.deadline import DeadlineExceeded
from modelsec.sources.errors import (
    ACCESS_DENIED,
    FILE_NOT_FOUND,
    INTEGRITY,
    REMOTE_ERROR,
    THROTTLED,
    SourceFailure,
)
from modelsec.sources.remote_file import RangeNotSupported


@dataclass(frozen=True)
class StatusMeaning:
    """What an HTTP status means for a scan: the MS-SRC code to report, and whether to retry."""

    code: str  # the MS-SRC code reported when this is the last word
    transient: bool  # worth another attempt (retry.call retries a Transient, bounded)

    def error(self, message: str, retry_after: float | None = None) -> SourceFailure | retry.Transient:
        if self.transient:
            return retry.Transient(self.code, message, retry_after)
        return SourceFailure(self.code, message)


STATUS_MEANINGS: Mapping[int, StatusMeaning] = MappingProxyType(
    {
        401: StatusMeaning(ACCESS_DENIED, transient=False),
        403: StatusMeaning(ACCESS_DENIED, transient=False),
        404: StatusMeaning(FILE_NOT_FOUND, transient=False),
        408: StatusMeaning(REMOTE_ERROR, transient=True),
        # our conditional requests (If-Match) and ranges come from the listing: a refusal
        # of either means the object is no longer what was listed
        412: StatusMeaning(INTEGRITY, transient=False),
        416: StatusMeaning(INTEGRITY, transient=False),
        429: StatusMeaning(THROTTLED, transient=True),
    }
)
SERVER_ERROR = StatusMeaning(REMOTE_ERROR, transient=True)  # 5xx: the server may recover
OTHER_STATUS = StatusMeaning(REMOTE_ERROR, transient=False)


def meaning_of(status: int, overrides: Mapping[int, StatusMeaning] = MappingProxyType({})) -> StatusMeaning:
    """The meaning of ``status``; ``overrides`` holds a source's own readings (S3 answers
    503 SlowDown when it throttles)."""
    known = overrides.get(status) or STATUS_MEANINGS.get(status)
    if known is not None:
        return known
    return SERVER_ERROR if status >= 500 else OTHER_STATUS


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` in whole seconds (the HTTP-date form is not honoured: the backoff
    then decides, capped by :meth:`retry.RetryPolicy.wait`)."""
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def already_classified(exc: Exception, what: str) -> Exception | None:
    """``exc`` as the scan reports it if our own code raised it (and so already chose its
    code), else None: the source's client error tables then decide."""
    if isinstance(exc, (SourceFailure, retry.Transient, RangeNotSupported)):
        return exc
    if isinstance(exc, DeadlineExceeded):
        return exc.classified(what)
    return None
