"""Helpers shared by the remote-source tests (kept out of conftest.py so that test modules
import them by a name no other conftest shadows)."""

from __future__ import annotations

import socket
from typing import Any

from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, parse_group
from modelsec.rules.base import EvaluationInput
from modelsec.sources import ScannedModel, ScanOptions, parse_model_uri, scan_model

ADMIN = {"aws_access_key_id": "AKIATESTADMIN000", "aws_secret_access_key": "admin-secret-key-000000"}


# The content rules, both blocking: what a scan's findings and incompletes decide.
CONTENT_GROUP = parse_group(
    {"rules": [{"name": "LoadTimeCodeExecution"}, {"name": "SuspiciousComponents"}]}, "test", "content"
)


def outcome(scanned: ScannedModel) -> Outcome:
    return evaluate(
        CONTENT_GROUP, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata)
    ).outcome


def codes(scanned: ScannedModel) -> list[str]:
    return [i.code for i in scanned.report.all_incompletes()]


def reasons(scanned: ScannedModel, code: str) -> list[str]:
    return [i.reason for i in scanned.report.all_incompletes() if i.code == code]


def hf_scan(server: Any, uri: str, **config: object) -> ScannedModel:
    return scan_model(parse_model_uri(uri), Engine(), ScanOptions(config=hf_config(server, **config)))


def s3_scan(uri: str, config: dict[str, Any]) -> ScannedModel:
    return scan_model(parse_model_uri(uri), Engine(), ScanOptions(config=config))


def hf_config(server: Any, **extra: object) -> dict[str, object]:
    """A source config for the test Hub with fast, bounded retries."""
    return {"endpoint": server.url, "retryBaseSeconds": 0.01, "retryMaxSeconds": 0.05, **extra}


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **ADMIN)


def s3_config(endpoint: str, **extra: object) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "accessKeyId": ADMIN["aws_access_key_id"],
        "secretAccessKey": ADMIN["aws_secret_access_key"],
        "retryBaseSeconds": 0.01,
        "retryMaxSeconds": 0.05,
        **extra,
    }


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
