"""The shared HTTP-status table (modelsec.sources.status) that both remote sources use."""

from __future__ import annotations

import pytest

from modelsec.sources import retry
from modelsec.sources.errors import (
    ACCESS_DENIED,
    FILE_NOT_FOUND,
    INTEGRITY,
    REMOTE_ERROR,
    THROTTLED,
    SourceFailure,
)
from modelsec.sources.status import StatusMeaning, meaning_of, retry_after_seconds


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (401, ACCESS_DENIED, False),
        (403, ACCESS_DENIED, False),
        (404, FILE_NOT_FOUND, False),
        (408, REMOTE_ERROR, True),
        (412, INTEGRITY, False),
        (416, INTEGRITY, False),
        (429, THROTTLED, True),
        (500, REMOTE_ERROR, True),
        (503, REMOTE_ERROR, True),
        (599, REMOTE_ERROR, True),
        (400, REMOTE_ERROR, False),
        (418, REMOTE_ERROR, False),
    ],
)
def test_status_meaning(status: int, code: str, transient: bool) -> None:
    assert meaning_of(status) == StatusMeaning(code, transient)


def test_a_source_reading_overrides_the_table() -> None:
    s3_reading = {503: StatusMeaning(THROTTLED, transient=True)}
    assert meaning_of(503, s3_reading).code == THROTTLED
    assert meaning_of(500, s3_reading).code == REMOTE_ERROR


def test_transient_meanings_are_retried_with_the_hint_and_final_ones_are_not() -> None:
    retried = meaning_of(429).error("throttled", retry_after=3.0)
    assert isinstance(retried, retry.Transient)
    assert (retried.code, retried.message, retried.retry_after) == (THROTTLED, "throttled", 3.0)
    final = meaning_of(403).error("denied")
    assert isinstance(final, SourceFailure)
    assert (final.code, final.message) == (ACCESS_DENIED, "denied")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 7 ", 7.0),
        (None, None),
        ("", None),
        ("-1", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds
