"""What keeps a job-mode scan under 5 operator API writes, piece by piece, without a cluster.

The end-to-end count (by the API server's audit log) is
tests/operator/jobs/test_scan_jobs.py::test_a_small_scan_costs_the_operator_four_api_writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from modelsec_operator.diffbase import ScanDiffBase
from modelsec_operator.jobs.manifest import ANNOTATION_ATTEMPT, LABEL_JOB_KEY, job_name
from modelsec_operator.jobs.runner import JobScanner
from modelsec_operator.jobs.settings import JobSettings
from modelsec_operator.jobs.tracker import JobEnd
from modelsec_operator.scanning import ScanRetry

KEY = "cd" * 32


class Run:
    """The handler's ScanRun as the runner sees it, recording what it would write."""

    def __init__(self, status: dict[str, Any] | None = None) -> None:
        self.name, self.body, self.retry, self.generation = "s", {}, 0, 1
        self.status: dict[str, Any] = status or {}
        self.claims: list[int | None] = []
        self.writes: list[dict[str, Any]] = []

    async def claim(
        self, because: str, *, queue_position: int | None = None, queued: str | None = None
    ) -> None:
        self.claims.append(queue_position)

    async def write(self, status: dict[str, Any]) -> None:
        self.writes.append(status)


class Tracker:
    def __init__(self) -> None:
        self.ends: dict[str, asyncio.Future[JobEnd]] = {}

    async def wait(self, name: str) -> JobEnd:
        return await self.ends.setdefault(name, asyncio.get_running_loop().create_future())


class Api:
    namespace = "ms"

    def __init__(self, jobs: dict[str, dict[str, Any]] | None = None) -> None:
        self.jobs = jobs or {}
        self.reads: list[str] = []

    async def get_job(self, name: str) -> dict[str, Any] | None:
        self.reads.append(name)
        return self.jobs.get(name)


def _scanner(limit: int = 1, api: Any = None, tracker: Any = None, **timing: float) -> JobScanner:
    return JobScanner(
        api=api or Api(), settings=JobSettings(), limit=limit, tracker=tracker, local_root=None, **timing
    )


async def test_a_queue_position_is_rewritten_only_when_it_drops_to_a_tenth() -> None:
    """A scan 100th in line writes its position 3 times as the queue drains (100, 10, 1),
    not at every halving (100, 50, 25, 12, 6, 3, 1)."""
    scanner = _scanner(queue_refresh_seconds=0.005)
    holder = scanner.slots.enqueue("g", "holder")
    await scanner.slots.wait(holder)
    for i in range(99):
        scanner.slots.enqueue("g", f"ahead-{i}")
    run = Run()
    ticket = scanner.slots.enqueue("g", run.name)
    waiting = asyncio.create_task(scanner._queue(run, ticket, "new scan"))  # type: ignore[arg-type]
    for _ in range(100):
        await asyncio.sleep(0.02)  # a few refresh periods per step
        scanner.slots.release("g")  # the next in line is granted, and holds the slot
    await asyncio.wait_for(waiting, 2)
    assert run.claims == [100, 10, 1]


async def test_all_queue_position_rewrites_together_stay_within_a_quarter_per_grant() -> None:
    """100 scans waiting behind one slot, drained slowly (every scan's own rule would
    rewrite its position about once or twice): rewrites are paid from the drain, at most
    one per four slots granted, so the queue never costs a fifth write per scan."""
    scanner = _scanner(queue_refresh_seconds=0.005)
    holder = scanner.slots.enqueue("g", "holder")
    await scanner.slots.wait(holder)
    runs = [Run() for _ in range(100)]
    for i, run in enumerate(runs):
        run.name = f"s{i}"
    waiting = [
        asyncio.create_task(scanner._queue(run, scanner.slots.enqueue("g", run.name), "new scan"))  # type: ignore[arg-type]
        for run in runs
    ]
    for _ in range(100):
        await asyncio.sleep(0.02)
        scanner.slots.release("g")
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    rewrites = sum(len(run.claims) - 1 for run in runs)
    assert [run.claims[0] for run in runs] == list(range(1, 101))  # each shown on entry
    assert 0 < rewrites <= 0.25 * scanner.slots.granted, rewrites


async def _writes_while_following(job_lasts: float) -> list[dict[str, Any]]:
    """What the runner writes while a Job lasting ``job_lasts`` seconds runs (it ends in a
    failure, so no verdict follows); the slot it held is given back either way."""
    tracker = Tracker()
    scanner = _scanner(tracker=tracker, running_status_after=0.1)
    run = Run()
    scanner.slots.adopt("g")
    following = asyncio.create_task(scanner._follow(run, "job-1", "g", "job"))  # type: ignore[arg-type]
    await asyncio.sleep(job_lasts)
    tracker.ends["job-1"].set_result(JobEnd(reason="JobFailed", message="exit 1"))
    with pytest.raises(ScanRetry):
        await following
    assert scanner.slots.running == 0
    return run.writes


async def test_a_short_job_is_not_shown_running_a_long_one_once_with_its_name() -> None:
    assert await _writes_while_following(0.02) == []
    long = await _writes_while_following(0.3)
    assert [(w["phase"], w["job"]) for w in long] == [("Running", {"namespace": "ms", "name": "job-1"})]


async def test_a_restart_finds_the_attempts_job_by_name_without_status_job() -> None:
    """status.job is no longer written when a Job starts; the Job's name follows from the
    request and the attempt, so an operator restart still adopts it (one read)."""
    name = job_name(KEY, 1)
    found = {"metadata": {"labels": {LABEL_JOB_KEY: KEY[:63]}, "annotations": {ANNOTATION_ATTEMPT: "1"}}}
    api = Api({name: found})
    scanner = _scanner(api=api)
    assert await scanner._adoptable(Run({"phase": "Pending", "attempts": 1}), KEY) == name  # type: ignore[arg-type]
    assert await scanner._adoptable(Run({"phase": "Running"}), KEY) == name  # type: ignore[arg-type]
    # Nothing under way (a new scan, or a verdict a rescan supersedes): no read at all.
    api.reads.clear()
    assert await scanner._adoptable(Run({}), KEY) is None  # type: ignore[arg-type]
    assert await scanner._adoptable(Run({"phase": "Completed"}), KEY) is None  # type: ignore[arg-type]
    assert api.reads == []
    # Another attempt's Job is not this attempt's.
    retried = Run({"phase": "Pending"})
    retried.retry = 1
    assert await scanner._adoptable(retried, KEY) is None  # type: ignore[arg-type]


def _body(kind: str, uid: str, **annotations: str) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "modelsec.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": "x", "uid": uid, "annotations": dict(annotations)},
            "spec": {"model": "file:///m.pkl"},
        }  # type: ignore[arg-type]
    )


def test_a_modelscans_last_handled_state_is_remembered_not_written() -> None:
    storage = ScanDiffBase(prefix="kopf.modelsec.io", key="last-handled-configuration", capacity=2)
    scan = _body("ModelScan", "u1")
    assert storage.fetch(body=scan) is None  # never handled here: a creation
    patch = kopf.Patch()
    essence = storage.build(body=scan)
    storage.store(body=scan, patch=patch, essence=essence)
    assert not patch  # nothing for kopf to write
    assert storage.fetch(body=scan) == essence and storage.remembers("u1")
    # A rescan request changes the essence: kopf sees the difference (an update).
    poked = _body("ModelScan", "u1", **{"modelsec.io/rescan": "now"})
    assert storage.build(body=poked) != storage.fetch(body=poked)

    # Bounded: the least recently handled is forgotten (its next event is a creation).
    for uid in ("u2", "u3"):
        other = _body("ModelScan", uid)
        storage.store(body=other, patch=kopf.Patch(), essence=storage.build(body=other))
    assert not storage.remembers("u1") and storage.fetch(body=scan) is None

    # Other kinds keep kopf's annotation.
    group = _body("SecurityGroup", "g1")
    patch = kopf.Patch()
    storage.store(body=group, patch=patch, essence=storage.build(body=group))
    assert "kopf.modelsec.io/last-handled-configuration" in patch["metadata"]["annotations"]
    assert not storage.remembers("g1")
