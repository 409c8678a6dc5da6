"""RemoteFile: block cache, read-ahead, whole-file fallback, digests, sticky failures."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelsec.bytesource import SequentialReader
from modelsec.sources import retry
from modelsec.sources.errors import INTEGRITY, NETWORK, TEMP_LIMIT, SourceFailure
from modelsec.sources.remote_file import RangeNotSupported, RemoteFile, TempArea, TransferStats

KIB = 1024


class FakeFetcher:
    def __init__(
        self, data: bytes, *, fail_after: int | None = None, ranges: bool = True, transient: int = 0
    ) -> None:
        self.data = data
        self.calls: list[tuple[int, int]] = []
        self.streams = 0
        self.fail_after = fail_after
        self.ranges = ranges
        self.transient = transient

    def fetch(self, start: int, end: int) -> bytes:
        if self.transient:
            self.transient -= 1
            raise retry.Transient(NETWORK, "flaky")
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise SourceFailure(NETWORK, "connection lost")
        if not self.ranges:
            raise RangeNotSupported("x")
        self.calls.append((start, end))
        return self.data[start:end]

    def stream(self) -> Iterator[bytes]:
        self.streams += 1
        for i in range(0, len(self.data), 100 * KIB):
            yield self.data[i : i + 100 * KIB]


def remote(
    data: bytes, fetcher: FakeFetcher | None = None, tmp: Path | None = None, **kw: object
) -> tuple[RemoteFile, FakeFetcher, TransferStats]:
    fetcher = fetcher or FakeFetcher(data)
    stats = TransferStats()
    temp = TempArea(str(tmp) if tmp else "/tmp", int(kw.pop("budget", 1 << 30)))  # type: ignore[call-overload]
    policy = retry.RetryPolicy(max_retries=2, base_seconds=0, max_seconds=0)
    rf = RemoteFile("f", len(data), fetcher, stats=stats, policy=policy, temp=temp, block_size=16 * KIB, **kw)  # type: ignore[arg-type]
    return rf, fetcher, stats


DATA = os.urandom(1 << 20)


def test_small_reads_coalesce_into_cached_blocks() -> None:
    rf, fetcher, stats = remote(DATA)
    assert rf.read_at(0, 8) == DATA[:8]
    assert rf.read_at(8, 100) == DATA[8:108]  # same block: no request
    assert rf.read_at(20 * KIB, 30 * KIB) == DATA[20 * KIB : 50 * KIB]  # blocks 1..3 in one request
    assert fetcher.calls == [(0, 16 * KIB), (16 * KIB, 64 * KIB)]
    assert stats.requests == 2 and stats.bytes == 64 * KIB
    assert rf.read_at(len(DATA) - 4, 100) == DATA[-4:]
    assert rf.read_at(len(DATA), 10) == b""


def test_sequential_reads_grow_read_ahead() -> None:
    rf, fetcher, _ = remote(DATA)
    reader = SequentialReader(rf, chunk=16 * KIB)
    out = b"".join(reader.read(16 * KIB) for _ in range(len(DATA) // (16 * KIB)))
    assert out == DATA
    assert len(fetcher.calls) < 12  # doubling windows, not one request per chunk
    assert rf.sha256 == hashlib.sha256(DATA).hexdigest()  # read whole: hashed on the way


def test_scattered_reads_switch_to_one_whole_download(tmp_path: Path) -> None:
    rf, fetcher, stats = remote(DATA, tmp=tmp_path, expected_sha256=hashlib.sha256(DATA).hexdigest())
    for offset in range(0, len(DATA), 96 * KIB):
        assert rf.read_at(offset, 40 * KIB) == DATA[offset : offset + 40 * KIB]
    assert fetcher.streams == 1 and stats.whole_files == 1
    assert rf.sha256 == hashlib.sha256(DATA).hexdigest()
    assert any(tmp_path.iterdir())
    rf.close()
    rf._temp.cleanup()
    assert not any(tmp_path.iterdir())


def test_whole_download_checked_against_expected_sha256(tmp_path: Path) -> None:
    rf, _, _ = remote(DATA, fetcher=FakeFetcher(DATA, ranges=False), tmp=tmp_path, expected_sha256="0" * 64)
    with pytest.raises(SourceFailure) as err:
        rf.read_at(0, 10)
    assert err.value.code == INTEGRITY and rf.failure is err.value
    with pytest.raises(SourceFailure):  # sticky
        rf.read_at(100, 10)


def test_read_whole_by_ranges_checked_against_git_blob() -> None:
    small = b'{"a": 1}'
    blob = hashlib.sha1(b"blob %d\0" % len(small) + small).hexdigest()
    good, _, _ = remote(small, expected_git_blob=blob)
    assert good.read_at(0, 100) == small and good.sha256 == hashlib.sha256(small).hexdigest()
    bad, _, _ = remote(small, fetcher=FakeFetcher(b'{"a": 2}'), expected_git_blob=blob)
    with pytest.raises(SourceFailure) as err:
        bad.read_at(0, 100)
    assert "git blob id" in err.value.message


def test_temp_budget_enforced(tmp_path: Path) -> None:
    rf, _, _ = remote(DATA, fetcher=FakeFetcher(DATA, ranges=False), tmp=tmp_path, budget=1000)
    with pytest.raises(SourceFailure) as err:
        rf.read_at(0, 10)
    assert err.value.code == TEMP_LIMIT


def test_short_answer_is_an_integrity_failure() -> None:
    rf, _, _ = remote(DATA, fetcher=FakeFetcher(DATA[:1000]))
    with pytest.raises(SourceFailure) as err:
        rf.read_at(0, 10)
    assert err.value.code == INTEGRITY


def test_transient_failures_retried_final_ones_sticky() -> None:
    rf, fetcher, _ = remote(DATA, fetcher=FakeFetcher(DATA, transient=2))
    assert rf.read_at(0, 10) == DATA[:10]
    rf2, _, _ = remote(DATA, fetcher=FakeFetcher(DATA, transient=5))
    with pytest.raises(SourceFailure) as err:
        rf2.read_at(0, 10)
    assert "gave up after 3 attempts" in err.value.message
    rf3, _, _ = remote(DATA, fetcher=FakeFetcher(DATA, fail_after=1))
    rf3.read_at(0, 10)
    with pytest.raises(SourceFailure):
        rf3.read_at(512 * KIB, 10)
    assert rf3.failure is not None


def test_complete_digest_small_files_only() -> None:
    rf, fetcher, _ = remote(DATA)
    rf.read_at(0, 10)
    assert rf.complete_digest(up_to=1024) is None and len(fetcher.calls) == 1
    assert rf.complete_digest(up_to=len(DATA)) == hashlib.sha256(DATA).hexdigest()


def test_retry_policy_caps_server_hints() -> None:
    policy = retry.RetryPolicy(max_retries=3, base_seconds=0.5, max_seconds=4)
    assert [policy.wait(i, None) for i in range(4)] == [0.5, 1.0, 2.0, 4]
    assert policy.wait(0, 3600) == 4 and policy.wait(0, 0) == 0
    slept: list[float] = []
    calls = iter([retry.Transient(NETWORK, "x", 1.0), retry.Transient(NETWORK, "x"), "ok"])

    def fn() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert retry.call(fn, policy, sleep=slept.append) == "ok"
    assert slept == [1.0, 1.0]
