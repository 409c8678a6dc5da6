"""Which references name content that cannot change, and the operator's report cache that
relies on it: a verdict is reused only for a commit SHA or an S3 version id, never for a
tag that may since point at other bytes."""

from __future__ import annotations

import asyncio

import pytest
from hf_server import HubServer
from model_fixtures import malicious_pickle
from source_helpers import hf_config

from modelsec.policy import Outcome, evaluate, parse_group
from modelsec.rules.base import EvaluationInput, SourceType
from modelsec.sources import parse_model_uri

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("uri", "pinned"),
    [
        (f"hf://org/name@{SHA}", True),
        (f"hf://org/name@{SHA.upper()}", True),
        ("hf://org/name@v1.0", False),
        ("hf://org/name@main", False),
        (f"hf://org/name@{SHA[:12]}", False),  # a short SHA is resolved by the Hub: may be ambiguous later
        ("hf://org/name", False),
        ("s3://bucket/key@3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", True),
        ("s3://bucket/key@etag:abc:12", False),
        ("s3://bucket/prefix/@sha256:" + "a" * 64, False),
        ("s3://bucket/key", False),
    ],
)
def test_pinned(uri: str, pinned: bool) -> None:
    assert parse_model_uri(uri).pinned is pinned


def test_operator_does_not_reuse_a_verdict_for_a_moved_tag(hub: HubServer) -> None:
    from modelsec_operator.pool import ScanPool
    from modelsec_operator.scanning import ScanJob

    hub.add_repo("acme/tagged", {"model.pkl": b"\x80\x02N."}, git_tags=("v1",))
    group = parse_group({"rules": [{"name": "LoadTimeCodeExecution"}]}, "t", "content")

    def job(uri: str) -> ScanJob:
        return ScanJob(parse_model_uri(uri), SourceType.HUGGING_FACE, "source-digest", config=hf_config(hub))

    async def scan_twice_moving_the_tag() -> list[tuple[str, Outcome]]:
        pool = ScanPool(max_concurrent=1, cache_size=8)
        seen = []
        try:
            for step in range(2):
                if step == 1:  # the tag now names a malicious commit
                    hub.repos["acme/tagged"].refs["v1"] = hub.push(
                        "acme/tagged", {"model.pkl": malicious_pickle()}
                    ).sha
                scanned, how = await pool.scanned(job("hf://acme/tagged@v1"), fresh=False)
                verdict = evaluate(
                    group, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata)
                )
                seen.append((how, verdict.outcome))
            pinned = job(f"hf://acme/tagged@{hub.repos['acme/tagged'].refs['v1']}")
            await pool.scanned(pinned, fresh=False)
            seen.append(((await pool.scanned(pinned, fresh=False))[1], Outcome.BLOCKED))
        finally:
            pool.shutdown()
        return seen

    seen = asyncio.run(scan_twice_moving_the_tag())
    assert seen[:2] == [("scanned", Outcome.ALLOWED), ("scanned", Outcome.BLOCKED)]
    assert seen[2][0] == "cache"  # a commit SHA still is
