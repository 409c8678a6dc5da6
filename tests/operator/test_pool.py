"""Bounded, deduplicated scanning: one engine run however many ask at once; cached reports
only while the content is provably unchanged."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from modelsec.k8s.source import ModelSourceSpec
from modelsec_operator import pool as pool_module
from modelsec_operator.pool import ScanPool
from modelsec_operator.scanning import ScanRetry, resolve


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    runs: list[str] = []
    real = pool_module.run_scan

    def counting(job, engine, delay):  # type: ignore[no-untyped-def]
        runs.append(job.ref.location)
        return real(job, engine, delay)

    monkeypatch.setattr(pool_module, "run_scan", counting)
    return runs


def _job(root: Path, name: str):  # type: ignore[no-untyped-def]
    spec = ModelSourceSpec.model_validate({"type": "Local", "local": {"path": str(root)}})
    return resolve(f"file://{root}/{name}", None, spec, "digest")


async def test_concurrent_requests_share_one_scan(tmp_path: Path, counted: list[str]) -> None:
    (tmp_path / "m.bin").write_bytes(b"\x00" * 1024)
    pool = ScanPool(max_concurrent=2, cache_size=8, delay_seconds=0.3)
    try:
        results = await asyncio.gather(*(pool.scanned(_job(tmp_path, "m.bin"), fresh=True) for _ in range(5)))
    finally:
        pool.shutdown()
    assert len(counted) == 1
    assert sorted(how for _, how in results) == ["scanned"] + ["shared"] * 4
    assert len({id(scanned) for scanned, _ in results}) == 1


async def test_cache_serves_unchanged_content_and_not_changed_content(
    tmp_path: Path, counted: list[str]
) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"one")
    pool = ScanPool(max_concurrent=1, cache_size=8)
    try:
        first, how1 = await pool.scanned(_job(tmp_path, "m.bin"), fresh=False)
        again, how2 = await pool.scanned(_job(tmp_path, "m.bin"), fresh=False)
        assert (how1, how2) == ("scanned", "cache") and again is first
        fresh, how3 = await pool.scanned(_job(tmp_path, "m.bin"), fresh=True)
        assert how3 == "scanned"
        model.write_bytes(b"two, longer")
        os.utime(model, ns=(1, 1))
        changed, how4 = await pool.scanned(_job(tmp_path, "m.bin"), fresh=False)
        assert how4 == "scanned" and changed.report.fingerprint != first.report.fingerprint
    finally:
        pool.shutdown()
    assert len(counted) == 3


async def test_concurrency_is_bounded(tmp_path: Path, counted: list[str]) -> None:
    for i in range(4):
        (tmp_path / f"m{i}.bin").write_bytes(bytes([i]) * 10)
    pool = ScanPool(max_concurrent=2, cache_size=0, delay_seconds=0.2)
    try:
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(pool.scanned(_job(tmp_path, f"m{i}.bin"), fresh=True) for i in range(4)))
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        pool.shutdown()
    # Four 0.2s scans two at a time take two rounds; all four at once would take one.
    assert elapsed >= 0.4
    assert len(counted) == 4 and pool.waiting == 0 and pool.in_flight == 0


async def test_missing_local_model_is_retried_not_judged(tmp_path: Path) -> None:
    pool = ScanPool(max_concurrent=1, cache_size=8)
    try:
        with pytest.raises(ScanRetry) as retry:
            await pool.scanned(_job(tmp_path, "not-yet.pkl"), fresh=False)
    finally:
        pool.shutdown()
    assert retry.value.reason == "ModelNotFound"


async def test_running_is_announced_only_for_scans_that_last(tmp_path: Path) -> None:
    """The Running write (on_start) costs an API write per scan: small models skip it,
    a scan lasting longer than running_after gets it, before its result is returned."""
    (tmp_path / "m.bin").write_bytes(b"\x00" * 64)
    calls: list[str] = []

    async def announce() -> None:
        await asyncio.sleep(0.05)  # a status write in flight: the result must wait for it
        calls.append("running")

    quick = ScanPool(max_concurrent=1, cache_size=0, running_after=5)
    slow = ScanPool(max_concurrent=1, cache_size=0, delay_seconds=0.5, running_after=0.1)
    try:
        await quick.scanned(_job(tmp_path, "m.bin"), fresh=True, on_start=announce)
        assert calls == []
        await slow.scanned(_job(tmp_path, "m.bin"), fresh=True, on_start=announce)
        assert calls == ["running"]
    finally:
        quick.shutdown()
        slow.shutdown()
